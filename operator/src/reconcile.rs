//! One reconcile of a SalesSystem, as a pipeline of small steps:
//!
//! 1. read what the spec references (the user's Secrets) — nothing is applied while
//!    one is missing;
//! 2. ensure the generated credentials (create if absent, never replace);
//! 3. build every child (pure, [`crate::children::desired_with`], given the identity
//!    Secret's values for the pods' digest) and server-side apply each one with one
//!    field manager, forcing ownership of the fields it sets;
//! 4. when the spec changed, delete children this spec no longer wants;
//! 5. read the Deployments and StatefulSets and write the status from them.
//!
//! The whole runs inside `kube::runtime::finalizer`: deletion runs [`cleanup`], which
//! applies the deletion policy to what owner references do not cover (volumes).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service as K8sService};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::children::names::{LABEL_COMPONENT, MANAGER, Names};
use crate::children::secrets::{self, GeneratedSecret, Sources};
use crate::children::{self, Child, env, kafka_topics};
use crate::crd::{DeletionPolicy, FINALIZER, SalesSystem, SalesSystemStatus};
use crate::metrics::Metrics;
use crate::status::{self, Observed, Outcome};

/// Requeue a ready system after this, to notice drift that no watch reports.
pub const REQUEUE_READY: Duration = Duration::from_secs(300);
/// Requeue a system that is still coming up (or degraded) after this.
pub const REQUEUE_NOT_READY: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("cannot generate credentials: {0}")]
    Credentials(String),
    #[error("cannot build the children: {0}")]
    Build(#[from] serde_json::Error),
    #[error("could not apply: {0}")]
    Apply(String),
    #[error("the SalesSystem has no namespace")]
    NoNamespace,
    #[error("{0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// The `error` label of `sales_operator_reconcile_errors_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            // A generated Secret is a child that could not be built.
            Error::Build(_) | Error::Credentials(_) => "build",
            Error::Apply(_) => "apply",
            Error::NoNamespace => "no_namespace",
            Error::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(inner)
                | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner.metric_label(),
                _ => "finalizer",
            },
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Makes the random values of generated Secrets.
    pub random: fn(usize) -> String,
    /// Makes the signing keys of a generated identity Secret (Ed25519, PKCS#8 PEM).
    pub signing_key: fn() -> anyhow::Result<String>,
    /// When a ready system is looked at again without a watch event.
    pub requeue_ready: Duration,
    /// When a system still coming up, degraded, or whose reconcile failed is.
    pub requeue_not_ready: Duration,
    /// Where the operator runs (`POD_NAMESPACE`), for the NetworkPolicy that lets it
    /// read the broker's management API; `None`: any namespace.
    pub operator_namespace: Option<String>,
}

impl Context {
    pub fn new(client: Client, recorder: Recorder, metrics: Arc<Metrics>) -> Self {
        Context {
            client,
            recorder,
            metrics,
            random: secrets::random_alphanumeric,
            signing_key: sales_platform::identity::keys::generate_pem,
            requeue_ready: REQUEUE_READY,
            requeue_not_ready: REQUEUE_NOT_READY,
            operator_namespace: None,
        }
    }

    async fn publish(&self, system: &SalesSystem, warning: bool, reason: &str, note: String) {
        crate::events::publish(&self.recorder, system, "Reconcile", warning, reason, note).await;
    }
}

/// Reconcile one SalesSystem (the controller's entry point).
#[tracing::instrument(skip_all, fields(name = %system.name_any(), namespace = system.namespace().unwrap_or_default(), trace_id = tracing::field::Empty))]
pub async fn reconcile(system: Arc<SalesSystem>, ctx: Arc<Context>) -> Result<Action, Error> {
    sales_platform::telemetry::record_trace_id(&tracing::Span::current());
    let _timer = ctx.metrics.reconcile_started();
    let namespace = system.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<SalesSystem> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, system, |event| async {
        match event {
            Finalizer::Apply(system) => apply(&system, &ctx).await,
            Finalizer::Cleanup(system) => cleanup(&system, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// What the controller does after a failed reconcile: count it and retry.
pub fn error_policy(system: Arc<SalesSystem>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(name = %system.name_any(), error = %error, "reconcile failed");
    ctx.metrics
        .errors
        .with_label_values(&[error.metric_label()])
        .inc();
    Action::requeue(ctx.requeue_not_ready)
}

async fn apply(system: &SalesSystem, ctx: &Context) -> Result<Action, Error> {
    let names = children::names_of(system);
    if system.is_paused() {
        let observed = observe(ctx, &names).await?;
        let was_paused = system.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Paused");
        write_status(
            ctx,
            system,
            status::derive(system, &observed, &Outcome::Paused, Timestamp::now()),
        )
        .await?;
        if !was_paused {
            ctx.publish(
                system,
                false,
                "Paused",
                "sales-system.io/paused is set: nothing will be changed".into(),
            )
            .await;
        }
        return Ok(Action::requeue(ctx.requeue_ready));
    }

    let (missing, referenced) = read_references(ctx, system, &names).await?;
    if !missing.is_empty() {
        let observed = observe(ctx, &names).await?;
        let note = format!("referenced but missing: {}", missing.join(", "));
        write_status(
            ctx,
            system,
            status::derive(
                system,
                &observed,
                &Outcome::MissingSecrets(missing),
                Timestamp::now(),
            ),
        )
        .await?;
        ctx.publish(system, true, "SecretMissing", note).await;
        return Ok(Action::requeue(ctx.requeue_not_ready));
    }

    let generated = ensure_generated_secrets(ctx, system, &names).await?;

    let identity_secret = env::identity_secret_name(&names, &system.spec);
    let identity = referenced
        .get(&identity_secret)
        .or_else(|| generated.get(&identity_secret));
    // The Kafka account the services log in with (the brokers' user list with it).
    let kafka_account = system
        .spec
        .kafka()
        .and_then(|kafka| env::kafka_credentials(&names, &kafka))
        .and_then(|(secret, _, _)| referenced.get(&secret).or_else(|| generated.get(&secret)));
    let known = children::KnownSecrets {
        identity,
        kafka_account,
    };
    let desired = children::desired_with(system, ctx.operator_namespace.as_deref(), known)?;
    let mut failures = Vec::new();
    for child in &desired {
        if let Err(err) = apply_child(ctx, &names, child).await {
            failures.push(format!("{} {}: {err}", child.kind(), child.name()));
        }
    }
    let spec_changed =
        system.status.as_ref().and_then(|s| s.observed_generation) != system.metadata.generation;
    if failures.is_empty() && spec_changed {
        prune(ctx, system, &names, &desired).await?;
        ctx.publish(
            system,
            false,
            "Applied",
            format!(
                "applied generation {} ({} objects)",
                system.metadata.generation.unwrap_or(0),
                desired.len()
            ),
        )
        .await;
    }

    let observed = observe(ctx, &names).await?;
    let outcome = if failures.is_empty() {
        Outcome::Applied
    } else {
        Outcome::Failed(failures.join("; "))
    };
    let new_status = status::derive(system, &observed, &outcome, Timestamp::now());
    let was_ready = status::is_ready(system.status.as_ref());
    let now_ready = status::is_ready(Some(&new_status));
    write_status(ctx, system, new_status).await?;
    if !failures.is_empty() {
        let message = failures.join("; ");
        ctx.publish(system, true, "ApplyFailed", message.clone())
            .await;
        return Err(Error::Apply(message));
    }
    if now_ready != was_ready {
        let (reason, note) = if now_ready {
            ("Ready", "every service, database and the broker are ready")
        } else {
            ("NotReady", "waiting for services, databases or the broker")
        };
        ctx.publish(system, !now_ready && was_ready, reason, note.into())
            .await;
    }
    Ok(Action::requeue(if now_ready {
        ctx.requeue_ready
    } else {
        ctx.requeue_not_ready
    }))
}

/// The user's Secrets (or keys) that the spec names but that do not exist, and the
/// values of those that do, by Secret name.
async fn read_references(
    ctx: &Context,
    system: &SalesSystem,
    names: &Names,
) -> Result<(Vec<String>, BTreeMap<String, BTreeMap<String, String>>), Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, key) in env::referenced_secrets(&system.spec) {
        wanted.entry(name).or_default().push(key);
    }
    let mut missing = Vec::new();
    let mut read = BTreeMap::new();
    for (name, keys) in wanted {
        let values = api
            .get_opt(&name)
            .await?
            .map(|s| secret_values(&s))
            .unwrap_or_default();
        for key in keys {
            if !values.contains_key(&key) {
                missing.push(format!("{name}/{key}"));
            }
        }
        read.insert(name, values);
    }
    Ok((missing, read))
}

fn secret_values(secret: &Secret) -> BTreeMap<String, String> {
    let mut values: BTreeMap<String, String> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    values.extend(secret.string_data.clone().unwrap_or_default());
    values
}

/// Create each generated Secret if absent; add only the keys it lacks (and bring the
/// derived ones up to date). Returns each one's values, by name.
async fn ensure_generated_secrets(
    ctx: &Context,
    system: &SalesSystem,
    names: &Names,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let owner = children::owner_of(system);
    let mut all = BTreeMap::new();
    for generated in secrets::generated(names, &system.spec) {
        let values = match api.get_opt(&generated.name).await? {
            None => {
                let values = complete(ctx, &generated, &BTreeMap::new())?;
                let secret = generated.to_secret(names, &owner, values.clone());
                match api.create(&PostParams::default(), &secret).await {
                    Ok(_) => {
                        ctx.publish(
                            system,
                            false,
                            "SecretGenerated",
                            format!("generated Secret {}", generated.name),
                        )
                        .await;
                        values
                    }
                    // Someone made it in between: theirs stands (made whole).
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        let theirs = api.get(&generated.name).await?;
                        complete_secret(ctx, system, &api, &generated, &theirs).await?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Some(existing) => complete_secret(ctx, system, &api, &generated, &existing).await?,
        };
        all.insert(generated.name, values);
    }
    Ok(all)
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
    .await?;
    ctx.publish(
        system,
        false,
        "SecretCompleted",
        format!("set {keys} in Secret {}", generated.name),
    )
    .await;
    Ok(values)
}

async fn apply_child(ctx: &Context, names: &Names, child: &Child) -> Result<(), kube::Error> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &names.namespace, &child.resource);
    api.patch(
        &child.name(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&child.object),
    )
    .await?;
    Ok(())
}

/// The kinds the operator may have created, for pruning.
fn prunable_kinds() -> Vec<ApiResource> {
    vec![
        ApiResource::erase::<ConfigMap>(&()),
        ApiResource::erase::<K8sService>(&()),
        ApiResource::erase::<StatefulSet>(&()),
        ApiResource::erase::<Deployment>(&()),
        ApiResource::erase::<PodDisruptionBudget>(&()),
        ApiResource::erase::<NetworkPolicy>(&()),
        ApiResource::erase::<Ingress>(&()),
        children::service_monitor_resource(),
        kafka_topics::kafka_topic_resource(),
    ]
}

/// Tell Strimzi's Topic Operator to let go of a KafkaTopic, so that deleting the
/// object leaves its topic (and the messages in it) in Kafka.
async fn release_topic(api: &Api<DynamicObject>, name: &str) -> Result<(), kube::Error> {
    let patch = json!({"metadata": {"annotations": {
        kafka_topics::STRIMZI_MANAGED_ANNOTATION: "false"
    }}});
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Delete children of this system that its current spec no longer wants (a database
/// switched to external, the Ingress or ServiceMonitor switched off...). Generated
/// Secrets are never pruned. A kind whose API is absent (no Prometheus Operator) is
/// skipped.
async fn prune(
    ctx: &Context,
    system: &SalesSystem,
    names: &Names,
    desired: &[Child],
) -> Result<(), Error> {
    let wanted: BTreeSet<(String, String)> = desired
        .iter()
        .map(|c| (c.kind().to_owned(), c.name()))
        .collect();
    let uid = system.uid();
    let params = ListParams::default().labels(&names.list_selector());
    let mut pruned = Vec::new();
    for resource in prunable_kinds() {
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), &names.namespace, &resource);
        let list = match api.list(&params).await {
            Ok(list) => list,
            Err(kube::Error::Api(e)) if e.code == 404 => continue,
            Err(e) => return Err(e.into()),
        };
        for object in list.items {
            let ours = object
                .owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref());
            let name = object.name_any();
            if ours && !wanted.contains(&(resource.kind.clone(), name.clone())) {
                if resource.kind == "KafkaTopic" {
                    release_topic(&api, &name).await?;
                }
                match api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => pruned.push(format!("{} {name}", resource.kind)),
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    if !pruned.is_empty() {
        ctx.publish(
            system,
            false,
            "Pruned",
            format!(
                "deleted what the spec no longer asks for: {}",
                pruned.join(", ")
            ),
        )
        .await;
    }
    Ok(())
}

/// The system's Deployments and StatefulSets as they run.
async fn observe(ctx: &Context, names: &Names) -> Result<Observed, Error> {
    let params = ListParams::default().labels(&names.list_selector());
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let stateful_sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &names.namespace);
    Ok(Observed {
        deployments: deployments.list(&params).await?.items,
        stateful_sets: stateful_sets.list(&params).await?.items,
    })
}

/// Write the status, unless it is what the object already shows.
///
/// `status.consumers` is the scaler's: the patch leaves it alone, except to remove the
/// entries of services no longer autoscaled (`null` in a merge patch deletes a key).
async fn write_status(
    ctx: &Context,
    system: &SalesSystem,
    new_status: SalesSystemStatus,
) -> Result<(), Error> {
    if system.status.as_ref() == Some(&new_status) {
        return Ok(());
    }
    let namespace = system.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<SalesSystem> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut body = serde_json::to_value(&new_status)?;
    let stale: serde_json::Map<String, serde_json::Value> = system
        .status
        .iter()
        .flat_map(|s| s.consumers.keys())
        .filter(|service| !new_status.consumers.contains_key(*service))
        .map(|service| (service.clone(), serde_json::Value::Null))
        .collect();
    if let Some(map) = body.as_object_mut() {
        map.remove("consumers");
        if !stale.is_empty() {
            map.insert("consumers".into(), stale.into());
        }
    }
    api.patch_status(
        &system.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": body })),
    )
    .await?;
    Ok(())
}

/// Deletion: what owner references cannot do. The children themselves go with the
/// SalesSystem (garbage collection); the PersistentVolumeClaims of the StatefulSets do
/// not. `Delete` removes them. `Retain` (the default) keeps them and takes the owner
/// reference off the database and broker credentials, so a SalesSystem of the same
/// name finds both again and its databases open with the passwords they were made with.
async fn cleanup(system: &SalesSystem, ctx: &Context) -> Result<Action, Error> {
    let names = children::names_of(system);
    let params = ListParams::default().labels(&names.list_selector());
    match system.spec.deletion_policy {
        DeletionPolicy::Delete => {
            let api: Api<PersistentVolumeClaim> =
                Api::namespaced(ctx.client.clone(), &names.namespace);
            let mut deleted = Vec::new();
            for claim in api.list(&params).await?.items {
                let name = claim.name_any();
                match api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => deleted.push(name),
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            ctx.publish(
                system,
                false,
                "VolumesDeleted",
                format!(
                    "deletionPolicy Delete: deleted {} volume claims {}",
                    deleted.len(),
                    deleted.join(", ")
                ),
            )
            .await;
        }
        DeletionPolicy::Retain => {
            let topics: Api<DynamicObject> = Api::namespaced_with(
                ctx.client.clone(),
                &names.namespace,
                &kafka_topics::kafka_topic_resource(),
            );
            match topics.list(&params).await {
                Ok(list) => {
                    for topic in list.items {
                        release_topic(&topics, &topic.name_any()).await?;
                    }
                }
                // No Strimzi in this cluster: no KafkaTopics either.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
            let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &names.namespace);
            let mut kept = Vec::new();
            for secret in api.list(&params).await?.items {
                let guards_data = secret
                    .labels()
                    .get(LABEL_COMPONENT)
                    .is_some_and(|c| c.ends_with("-db") || c == "rabbitmq" || c == "kafka");
                if !guards_data {
                    continue;
                }
                let name = secret.name_any();
                match api
                    .patch(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"metadata": {"ownerReferences": null}})),
                    )
                    .await
                {
                    Ok(_) => kept.push(name),
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            ctx.publish(
                system,
                false,
                "VolumesRetained",
                format!(
                    "deletionPolicy Retain: kept the volume claims and the credentials {}",
                    kept.join(", ")
                ),
            )
            .await;
        }
    }
    Ok(Action::await_change())
}
