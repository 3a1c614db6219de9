//! Stage 5 of the reconcile: read what runs (the Deployments and StatefulSets), derive
//! the status from it and from how the reconcile went ([`crate::status::derive`]),
//! write it, and publish the Events that follow from what changed. A paused system,
//! one whose references are missing, and a reconcile that failed before this stage
//! are reported here too.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::json;

use super::apply::Applied;
use super::{Context, Error, on};
use crate::children;
use crate::children::names::Names;
use crate::crd::{SalesSystem, SalesSystemSpec, SalesSystemStatus};
use crate::status::{self, Observed, Outcome};
use crate::storage::Storage;

/// What the status written after applying changed, for the Events.
pub(super) struct StatusChange {
    was_ready: bool,
    now_ready: bool,
    /// `MonitoringAvailable` turned: whether available now, and its message.
    monitoring: Option<(bool, String)>,
    /// `ProvidersAvailable` turned: whether available now, and its message.
    providers: Option<(bool, String, String)>,
}

/// Derive the status after applying, with the `StorageReady` condition (and the
/// storage step's Events), and write it.
pub(super) async fn write(
    ctx: &Context,
    system: &SalesSystem,
    names: &Names,
    storage: &Storage,
    applied: &Applied,
) -> Result<StatusChange, Error> {
    let mut observed = observe(ctx, &system.spec, names).await?;
    if system.spec.observability.service_monitor.enabled {
        observed.service_monitors = Some(applied.service_monitors_served());
    }
    if !applied.cloudnative_pg_served() {
        observed.cloudnative_pg = Some(false);
    }
    if !applied.rabbitmq_cluster_served() {
        observed.rabbitmq_cluster = Some(Default::default());
    }
    if crate::children::cert_manager::used(&system.spec) {
        let certificates = crate::children::cert_manager::certificate_resource();
        let served = applied.cert_manager_served()
            && ctx.kinds.served(&certificates).await != crate::optional_kinds::Served::No;
        observed.cert_manager = Some(served);
    }
    if crate::providers::uses_strimzi(&system.spec) {
        observed.strimzi = Some(applied.strimzi_missing());
    }
    let outcome = if applied.failures.is_empty() {
        Outcome::Applied
    } else {
        Outcome::Failed(applied.failures.join("; "))
    };
    let mut new_status = status::derive(system, &observed, &outcome, Timestamp::now());
    storage.report(ctx, system, &mut new_status).await;
    let change = StatusChange {
        was_ready: status::is_ready(system.status.as_ref()),
        now_ready: status::is_ready(Some(&new_status)),
        monitoring: status::monitoring_change(system.status.as_ref(), &new_status),
        providers: crate::providers::providers_change(system.status.as_ref(), &new_status),
    };
    write_status(ctx, system, new_status).await?;
    Ok(change)
}

/// The Events that follow from `change` and from the failures of `applied` (which
/// fail the reconcile); else when to look again.
pub(super) async fn announce(
    ctx: &Context,
    system: &SalesSystem,
    change: StatusChange,
    applied: Applied,
) -> Result<Action, Error> {
    if let Some((available, note)) = change.monitoring {
        let reason = if available {
            "MonitoringAvailable"
        } else {
            "MonitoringUnavailable"
        };
        ctx.publish(system, !available, reason, note).await;
    }
    if let Some((available, reason, note)) = change.providers {
        // The condition's reason (`CloudNativePGNotInstalled`...), or available again.
        let reason = if available {
            "ProvidersAvailable"
        } else {
            reason.as_str()
        };
        ctx.publish(system, !available, reason, note).await;
    }
    if !applied.failures.is_empty() {
        let message = applied.failures.join("; ");
        ctx.publish(system, true, "ApplyFailed", message.clone())
            .await;
        return Err(Error::Apply(message));
    }
    let (was_ready, now_ready) = (change.was_ready, change.now_ready);
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

/// `sales-system.io/paused`: the status says so, nothing else is done.
pub(super) async fn paused(
    ctx: &Context,
    system: &SalesSystem,
    names: &Names,
) -> Result<Action, Error> {
    let observed = observe(ctx, &system.spec, names).await?;
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
    Ok(Action::requeue(ctx.requeue_ready))
}

/// Referenced Secrets (or keys) that do not exist: `Degraded`, and a Warning Event.
pub(super) async fn missing_secrets(
    ctx: &Context,
    system: &SalesSystem,
    names: &Names,
    missing: Vec<String>,
) -> Result<Action, Error> {
    let observed = observe(ctx, &system.spec, names).await?;
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
    Ok(Action::requeue(ctx.requeue_not_ready))
}

/// A stage failed before the status was written: `Degraded` with its sentence (as
/// far as the status can be written), and a Warning Event.
pub(super) async fn failure(ctx: &Context, system: &SalesSystem, err: &Error) {
    let message = err.to_string();
    let names = children::names_of(system);
    let observed = observe(ctx, &system.spec, &names).await.unwrap_or_default();
    let failed = status::derive(
        system,
        &observed,
        &Outcome::Failed(message.clone()),
        Timestamp::now(),
    );
    if let Err(e) = write_status(ctx, system, failed).await {
        tracing::debug!(error = %e, "cannot report the failure in the status");
    }
    ctx.publish(system, true, "ReconcileFailed", message).await;
}

/// The system's Deployments and StatefulSets as they run.
async fn observe(ctx: &Context, spec: &SalesSystemSpec, names: &Names) -> Result<Observed, Error> {
    let params = ListParams::default().labels(&names.list_selector());
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let stateful_sets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let (cloudnative_pg, cnpg_clusters, cnpg_databases) =
        super::cloudnative_pg::observe(ctx, spec, names).await?;
    Ok(Observed {
        deployments: deployments
            .list(&params)
            .await
            .map_err(on("listing Deployments"))?
            .items,
        stateful_sets: stateful_sets
            .list(&params)
            .await
            .map_err(on("listing StatefulSets"))?
            .items,
        service_monitors: None,
        cnpg_clusters,
        cnpg_databases,
        cloudnative_pg,
        rabbitmq_cluster: super::rabbitmq_cluster::observe(ctx, spec, names).await?,
        cert_manager: None,
        strimzi: None,
        strimzi_kafka: super::strimzi::observe(ctx, spec, names).await?,
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
    .await
    .map_err(on("the SalesSystem's status"))?;
    Ok(())
}
