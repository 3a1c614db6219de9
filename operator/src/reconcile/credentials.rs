//! The generated credentials (database, broker, identity... Secrets): created when
//! absent and never replaced, completed with the keys they lack, adopted again when
//! kept by `Retain` from an earlier SalesSystem of this name. On deletion,
//! [`keep`] and [`release`] carry out `Retain` and `Delete` for them.
//!
//! Those that open data carry [`CREDENTIALS_FINALIZER`], so that a foreground
//! deletion cannot collect them before the deletion policy applies.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::references::{Values, secret_values};
use super::{Context, Error, on};
use crate::children;
use crate::children::names::Names;
use crate::children::secrets::{self, CREDENTIALS_FINALIZER, GeneratedSecret, Sources};
use crate::crd::SalesSystem;

/// Create each generated Secret if absent; add only the keys it lacks (and bring the
/// derived ones up to date). Returns each one's values, by name.
pub(super) async fn ensure_generated_secrets(
    ctx: &Context,
    system: &SalesSystem,
    names: &Names,
) -> Result<BTreeMap<String, Values>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let owner = children::owner_of(system);
    let mut all = BTreeMap::new();
    for generated in secrets::generated(names, &system.spec) {
        let what = format!("Secret {}", generated.name);
        let mut existing = api.get_opt(&generated.name).await.map_err(on(&what))?;
        // The values of one deleted while the system lives: made again with them.
        let mut deleted_values = None;
        if let Some(secret) = existing
            .as_ref()
            .filter(|s| s.metadata.deletion_timestamp.is_some())
        {
            // Deleted by hand (or pruned by a GitOps tool) while the system lives. The
            // data it opens was set up with these values: new random ones would lock
            // every service out. Its finalizer kept them readable; let it go and make
            // it again with the same values.
            deleted_values = Some(secret_values(secret));
            release(&api, secret).await.map_err(on(&what))?;
            existing = api.get_opt(&generated.name).await.map_err(on(&what))?;
            if existing.is_some() {
                return Err(Error::Apply(format!(
                    "{what} is being deleted (another finalizer holds it); it is generated \
                     anew once it is gone"
                )));
            }
        }
        if let (Some(secret), Some(owner)) = (&existing, &owner) {
            adopt(ctx, system, &api, names, secret, owner).await?;
        }
        let values = match existing {
            None => {
                let remade = deleted_values.is_some();
                let values = complete(ctx, &generated, &deleted_values.unwrap_or_default())?;
                let secret = generated.to_secret(names, &owner, values.clone());
                match api.create(&PostParams::default(), &secret).await {
                    Ok(_) => {
                        let note = if remade {
                            format!(
                                "Secret {} was deleted while the system runs: made again \
                                 with the same values",
                                generated.name
                            )
                        } else {
                            format!("generated Secret {}", generated.name)
                        };
                        ctx.publish(system, remade, "SecretGenerated", note).await;
                        values
                    }
                    // Someone made it in between: theirs stands (made whole).
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        let theirs = api.get(&generated.name).await.map_err(on(&what))?;
                        complete_secret(ctx, system, &api, &generated, &theirs).await?
                    }
                    Err(e) => return Err(on(what)(e)),
                }
            }
            Some(existing) => complete_secret(ctx, system, &api, &generated, &existing).await?,
        };
        all.insert(generated.name, values);
    }
    Ok(all)
}

/// Make an existing generated Secret the system's again (see
/// [`secrets::adoption`]): one kept by `Retain` from an earlier SalesSystem of this
/// name gets this one's owner reference, so that `Delete` removes it later.
pub(super) async fn adopt(
    ctx: &Context,
    system: &SalesSystem,
    api: &Api<Secret>,
    names: &Names,
    secret: &Secret,
    owner: &OwnerReference,
) -> Result<(), Error> {
    let Some(patch) = secrets::adoption(secret, names, owner) else {
        return Ok(());
    };
    let name = secret.name_any();
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(on(format!("Secret {name}")))?;
    if !secret.owner_references().iter().any(|r| r.uid == owner.uid) {
        ctx.publish(
            system,
            false,
            "SecretAdopted",
            format!(
                "Secret {name}, kept from an earlier SalesSystem of this name, belongs to this \
                 one again: it goes with it when deletionPolicy is Delete"
            ),
        )
        .await;
    }
    Ok(())
}

/// Take [`CREDENTIALS_FINALIZER`] off `secret` (nothing when it does not hold it).
pub(super) async fn release(api: &Api<Secret>, secret: &Secret) -> Result<(), kube::Error> {
    if !secret
        .finalizers()
        .iter()
        .any(|f| f == CREDENTIALS_FINALIZER)
    {
        return Ok(());
    }
    let left: Vec<&String> = secret
        .finalizers()
        .iter()
        .filter(|f| *f != CREDENTIALS_FINALIZER)
        .collect();
    let patch = json!({"metadata": {
        "resourceVersion": secret.resource_version(),
        "finalizers": left,
    }});
    super::release::merge_patch_if_present(api, &secret.name_any(), patch).await
}

/// `existing` with every key `generated` must hold.
fn complete(
    ctx: &Context,
    generated: &GeneratedSecret,
    existing: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, Error> {
    let mut random = ctx.random;
    let mut signing_key = ctx.signing_key;
    generated
        .credentials
        .complete(
            existing,
            &mut Sources {
                random: &mut random,
                signing_key: &mut signing_key,
            },
        )
        .map_err(|e| Error::Credentials(format!("Secret {}: {e:#}", generated.name)))
}

/// Add the keys `existing` lacks, and bring derived ones up to date; its values after.
async fn complete_secret(
    ctx: &Context,
    system: &SalesSystem,
    api: &Api<Secret>,
    generated: &GeneratedSecret,
    existing: &Secret,
) -> Result<BTreeMap<String, String>, Error> {
    let have = secret_values(existing);
    let values = complete(ctx, generated, &have)?;
    let changed: BTreeMap<&String, &String> = values
        .iter()
        .filter(|(k, v)| have.get(*k) != Some(*v))
        .collect();
    if changed.is_empty() {
        return Ok(values);
    }
    let keys = changed
        .keys()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    api.patch(
        &generated.name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "stringData": changed })),
    )
    .await
    .map_err(on(format!("Secret {}", generated.name)))?;
    ctx.publish(
        system,
        false,
        "SecretCompleted",
        format!("set {keys} in Secret {}", generated.name),
    )
    .await;
    Ok(values)
}

/// `Retain` for one credential Secret: off with this system's owner reference and
/// [`CREDENTIALS_FINALIZER`]; if the garbage collector already asked for its deletion
/// (a foreground deletion), the Secret is made again from its values, unowned.
pub(super) async fn keep(
    api: &Api<Secret>,
    secret: &Secret,
    uid: Option<&str>,
) -> Result<(), Error> {
    let name = secret.name_any();
    let what = format!("Secret {name}");
    if secret.metadata.deletion_timestamp.is_some() {
        release(api, secret).await.map_err(on(&what))?;
        let copy = Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: secret.metadata.namespace.clone(),
                labels: secret.metadata.labels.clone(),
                annotations: secret.metadata.annotations.clone(),
                ..Default::default()
            },
            data: secret.data.clone(),
            type_: secret.type_.clone(),
            immutable: secret.immutable,
            ..Default::default()
        };
        return match api.create(&PostParams::default(), &copy).await {
            Ok(_) => Ok(()),
            // The namespace is being deleted: nothing can be kept in it (the API
            // server refuses new objects there), and waiting would only hold it up.
            Err(kube::Error::Api(e)) if e.code == 403 && e.message.contains("being terminated") => {
                tracing::warn!(secret = %name, "the namespace is being deleted: its credentials go with it");
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Err(Error::Apply(format!(
                "{what} is being deleted and another finalizer holds it: it is kept once it \
                 is gone"
            ))),
            Err(e) => Err(on(what)(e)),
        };
    }
    let owners: Vec<_> = secret
        .owner_references()
        .iter()
        .filter(|r| Some(r.uid.as_str()) != uid)
        .cloned()
        .collect();
    let finalizers: Vec<&String> = secret
        .finalizers()
        .iter()
        .filter(|f| *f != CREDENTIALS_FINALIZER)
        .collect();
    if owners.len() == secret.owner_references().len()
        && finalizers.len() == secret.finalizers().len()
    {
        return Ok(());
    }
    let patch = json!({"metadata": {
        "resourceVersion": secret.resource_version(),
        "ownerReferences": if owners.is_empty() { serde_json::Value::Null } else { json!(owners) },
        "finalizers": if finalizers.is_empty() { serde_json::Value::Null } else { json!(finalizers) },
    }});
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(on(what)(e)),
    }
}
