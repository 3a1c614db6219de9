//! The TLS Secrets of `spec.tls` ([`crate::children::tls`]): with `operatorCA`, the
//! operator's CA and each built-in server's certificate, made when absent, read back
//! and kept, renewed 30 days before their end (or when the names or the CA change);
//! with `certManager`, the server Secrets cert-manager writes, read for the pods'
//! digest; and a Strimzi Kafka's cluster CA, read for the same. The values, by Secret
//! name, go to the children's build.

use std::collections::BTreeMap;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::references::{Values, secret_values};
use super::{Context, Error, credentials, on};
use crate::children::names::Names;
use crate::children::secrets::{CREDENTIALS_FINALIZER, guards_data};
use crate::children::services::meta;
use crate::children::{self, tls};
use crate::crd::{SalesSystem, TlsMode};

/// Ensure the TLS Secrets `system` needs; the values of those that exist after, by
/// name (the CA's key left out).
pub(super) async fn ensure(
    ctx: &Context,
    system: &SalesSystem,
    names: &Names,
) -> Result<BTreeMap<String, Values>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let servers = tls::servers(names, &system.spec);
    let mut all = BTreeMap::new();
    match system.spec.tls.mode {
        TlsMode::Off => {}
        TlsMode::CertManager => {
            // cert-manager writes them; read the ones it wrote so far.
            for server in servers {
                let what = format!("Secret {}", server.secret);
                if let Some(secret) = api.get_opt(&server.secret).await.map_err(on(&what))? {
                    all.insert(server.secret, secret_values(&secret));
                }
            }
        }
        TlsMode::OperatorCa => {
            let now = SystemTime::now();
            let ca_name = tls::ca_secret(names);
            let ca = write(ctx, system, names, &api, &ca_name, None, |existing| {
                tls::ca_to_write(existing, &names.instance, now)
            })
            .await?;
            for server in servers {
                let values = write(
                    ctx,
                    system,
                    names,
                    &api,
                    &server.secret,
                    Some(server.component),
                    |existing| tls::server_to_write(existing, &ca, &server.dns_names, now),
                )
                .await?;
                all.insert(server.secret, values);
            }
            let public = ca
                .into_iter()
                .filter(|(key, _)| key != tls::CA_KEY_KEY)
                .collect();
            all.insert(ca_name, public);
        }
    }
    // Strimzi's cluster CA, which the services trust for its listener: read for the
    // pods' digest, so that a CA Strimzi renews rolls them (librdkafka reads its CA
    // file once, when a client is made).
    if let Some(strimzi) = tls::strimzi_ca_read(&system.spec) {
        let what = format!("Secret {strimzi}");
        if let Some(secret) = api.get_opt(&strimzi).await.map_err(on(&what))? {
            all.insert(strimzi, secret_values(&secret));
        }
    }
    Ok(all)
}

/// Read Secret `name`, and create or update it with what `plan` says of its values
/// (`None`: keep them); its values after.
async fn write(
    ctx: &Context,
    system: &SalesSystem,
    names: &Names,
    api: &Api<Secret>,
    name: &str,
    component: Option<children::names::Component>,
    plan: impl FnOnce(Option<&Values>) -> anyhow::Result<Option<Values>>,
) -> Result<Values, Error> {
    let what = format!("Secret {name}");
    let labels = match component {
        Some(c) => names.labels(c),
        None => tls::ca_labels(names),
    };
    let (existing, deleted) = read(api, name, &labels).await?;
    let owner = children::owner_of(system);
    if let (Some(secret), Some(owner)) = (&existing, &owner) {
        credentials::adopt(ctx, system, api, names, secret, owner).await?;
    }
    let values = existing.as_ref().map(secret_values).or(deleted);
    let planned =
        plan(values.as_ref()).map_err(|e| Error::Credentials(format!("{what}: {e:#}")))?;
    let new = match (planned, &existing) {
        (None, Some(_)) => return Ok(values.unwrap_or_default()),
        (None, None) => values.unwrap_or_default(),
        (Some(new), _) => new,
    };
    if existing.is_some() {
        api.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "stringData": new })),
        )
        .await
        .map_err(on(&what))?;
        let note = format!("renewed the certificate in {what}");
        ctx.publish(system, false, "CertificateRenewed", note).await;
        return Ok(new);
    }
    let mut metadata = meta(names, name.to_owned(), labels.clone(), &owner);
    if guards_data(&labels) {
        metadata.finalizers = Some(vec![CREDENTIALS_FINALIZER.to_owned()]);
    }
    let type_ = match component {
        Some(_) => "kubernetes.io/tls",
        None => "Opaque",
    };
    let secret = Secret {
        metadata,
        type_: Some(type_.into()),
        string_data: Some(new.clone()),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            let note = format!("generated {what}");
            ctx.publish(system, false, "SecretGenerated", note).await;
        }
        // Made in between: the next reconcile reads it.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            return Err(Error::Apply(format!(
                "{what} was created by someone else meanwhile; read again next time"
            )));
        }
        Err(e) => return Err(on(what)(e)),
    }
    Ok(new)
}

/// Secret `name` as it stands, with the `labels` it lacked added (one made before the
/// CA had its component, which `Retain` keeps it by); or, when it was being deleted
/// while the system lives (by hand, or by a GitOps tool that does not know it), its
/// values, with the finalizer that kept it readable taken off, so it is made again
/// with them: the certificates the servers present stay those clients trust.
async fn read(
    api: &Api<Secret>,
    name: &str,
    labels: &Values,
) -> Result<(Option<Secret>, Option<Values>), Error> {
    let what = format!("Secret {name}");
    let Some(secret) = api.get_opt(name).await.map_err(on(&what))? else {
        return Ok((None, None));
    };
    if secret.metadata.deletion_timestamp.is_some() {
        credentials::release(api, &secret)
            .await
            .map_err(on(&what))?;
        if api.get_opt(name).await.map_err(on(&what))?.is_some() {
            return Err(Error::Apply(format!(
                "{what} is being deleted (another finalizer holds it); it is made again once \
                 it is gone"
            )));
        }
        return Ok((None, Some(secret_values(&secret))));
    }
    if labels
        .iter()
        .all(|(k, v)| secret.labels().get(k) == Some(v))
    {
        return Ok((Some(secret), None));
    }
    let patch = json!({ "metadata": { "labels": labels } });
    let patched = api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(on(&what))?;
    Ok((Some(patched), None))
}
