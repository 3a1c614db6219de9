//! The SalesSystem's status, derived (purely) from what was applied and what is
//! running: the Deployments' and StatefulSets' own status.
//!
//! Conditions: `BrokerReady`, `DatabasesReady` (the managed StatefulSets have a ready
//! pod; external ones count as ready), `ServicesReady` (every Deployment has rolled out
//! its current generation and has all its replicas ready), `Degraded` (the last
//! reconcile failed, a referenced Secret is missing, or a rollout is stuck), and
//! `Ready` (all of the first three, and not degraded). With
//! `observability.serviceMonitor.enabled`, `MonitoringAvailable` says whether the
//! ServiceMonitor could be applied: `False` (reason `ServiceMonitorKindMissing`) when
//! the cluster does not serve the kind (no Prometheus Operator), which neither
//! degrades the system nor stops the rest from being applied. Each condition is one
//! function ([`data_tier`]'s `broker_ready`, [`degraded`]...); [`derive`] puts them together.
//!
//! `ConsumersScaled` and `status.consumers` belong to the scaler
//! (`crate::autoscaling`): the reconcile keeps what the scaler wrote for the services
//! still autoscaled and drops the rest. An autoscaled consumer Deployment counts as
//! rolled out once it has seen its generation and, unless scaled to zero, has a ready
//! pod: a scale-up in progress does not make the system unready.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::catalogue::AppService;
use crate::children::names::{Component, Names};
use crate::children::{self};
use crate::crd::{SalesSystem, SalesSystemSpec, SalesSystemStatus, ServiceReplicas};

pub const READY: &str = "Ready";
pub const BROKER_READY: &str = "BrokerReady";
pub const DATABASES_READY: &str = "DatabasesReady";
pub const SERVICES_READY: &str = "ServicesReady";
pub const DEGRADED: &str = "Degraded";
pub const MONITORING_AVAILABLE: &str = "MonitoringAvailable";
/// Written by the scaler, kept by the reconcile.
pub const CONSUMERS_SCALED: &str = "ConsumersScaled";

/// How the reconcile that reports went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every child applied.
    Applied,
    /// Referenced Secrets (or keys) that do not exist: nothing was applied.
    MissingSecrets(Vec<String>),
    /// Some children could not be applied.
    Failed(String),
    /// `sales-system.io/paused`: nothing was changed.
    Paused,
}

/// The workloads of one system as read from the cluster.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub deployments: Vec<Deployment>,
    pub stateful_sets: Vec<StatefulSet>,
    /// Whether the cluster serves ServiceMonitors, when this reconcile asked (it
    /// does when the spec wants one); `None`: not asked, the condition stays as it was.
    pub service_monitors: Option<bool>,
    /// The CloudNativePG Clusters of the namespace (when some database is on it).
    pub cnpg_clusters: Vec<kube::api::DynamicObject>,
    /// The CloudNativePG Databases of the namespace (when the shared Cluster is used).
    pub cnpg_databases: Vec<kube::api::DynamicObject>,
    /// Whether the cluster serves CloudNativePG's kinds, when this reconcile asked;
    /// `None`: not asked, `ProvidersAvailable` stays as it was.
    pub cloudnative_pg: Option<bool>,
    /// The RabbitmqCluster the services use, when the broker is one.
    pub rabbitmq_cluster: Option<crate::providers::RabbitmqClusterSeen>,
    /// Whether the cluster serves cert-manager's Certificate, when `tls.mode` is
    /// `certManager` and this reconcile asked.
    pub cert_manager: Option<bool>,
    /// The Strimzi kinds the system needs that the cluster does not serve, when the
    /// Kafka is Strimzi's and this reconcile applied.
    pub strimzi: Option<Vec<String>>,
    /// The Strimzi `Kafka` the services use, when the Kafka is Strimzi's.
    pub strimzi_kafka: Option<crate::strimzi_status::KafkaSeen>,
}

struct Check {
    ok: bool,
    reason: &'static str,
    message: String,
}

mod data_tier;
use data_tier::{broker_ready, databases_ready};

fn replicas_of(observed: &Observed, name: &str, desired: i32) -> (ServiceReplicas, bool) {
    let deployment = observed.deployments.iter().find(|d| d.name_any() == name);
    let status = deployment
        .and_then(|d| d.status.clone())
        .unwrap_or_default();
    let replicas = ServiceReplicas {
        desired,
        ready: status.ready_replicas.unwrap_or(0),
        updated: status.updated_replicas.unwrap_or(0),
    };
    let rolled_out = deployment.is_some_and(|d| {
        status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
    });
    let ok = rolled_out
        && replicas.ready >= desired
        && replicas.updated >= desired
        && status.replicas.unwrap_or(0) <= desired;
    (replicas, ok)
}

/// An autoscaled consumer Deployment: seen its generation, and a ready pod unless it
/// is scaled to zero. Its replicas are the scaler's, so they are not compared.
fn consumer_rolled_out(observed: &Observed, name: &str) -> bool {
    let Some(deployment) = observed.deployments.iter().find(|d| d.name_any() == name) else {
        return false;
    };
    let status = deployment.status.clone().unwrap_or_default();
    let replicas = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    status.observed_generation.unwrap_or(0) >= deployment.metadata.generation.unwrap_or(0)
        && (replicas == 0 || status.ready_replicas.unwrap_or(0) >= 1)
}

fn stuck_rollouts(observed: &Observed) -> Vec<String> {
    observed
        .deployments
        .iter()
        .filter(|d| {
            d.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.type_ == "Progressing"
                            && c.status == "False"
                            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
                    })
                })
        })
        .map(|d| d.name_any())
        .collect()
}

/// The status to write after a reconcile of `system` that ended in `outcome`: one
/// condition per function below, then the phase.
pub fn derive(
    system: &SalesSystem,
    observed: &Observed,
    outcome: &Outcome,
    now: Timestamp,
) -> SalesSystemStatus {
    let names = children::names_of(system);
    let spec = &system.spec;
    let previous = system.status.clone().unwrap_or_default();

    let broker = broker_ready(spec, &names, observed);
    let databases = databases_ready(spec, &names, observed);
    let services = services_ready(spec, &names, observed);
    let degraded = degraded(outcome, observed);
    let ready = ready(&broker, &databases, &services.check, &degraded);

    let generation = system.metadata.generation;
    let observed_generation = match outcome {
        Outcome::Applied => generation,
        _ => previous.observed_generation,
    };
    let mut conditions = Vec::new();
    for (kind, check) in [
        (READY, &ready),
        (BROKER_READY, &broker),
        (DATABASES_READY, &databases),
        (SERVICES_READY, &services.check),
        (DEGRADED, &degraded),
    ] {
        conditions.push(condition(
            &previous.conditions,
            kind,
            check,
            generation,
            now,
        ));
    }
    let parts: Vec<_> = [
        crate::providers::providers_available(spec, observed.cloudnative_pg),
        crate::providers::rabbitmq_cluster_available(spec, observed.rabbitmq_cluster.as_ref()),
        crate::providers::cert_manager_available(spec, observed.cert_manager),
        crate::providers::strimzi_available(spec, observed.strimzi.as_deref()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if let Some((ok, reason, message)) = crate::providers::combine(parts) {
        let check = Check {
            ok,
            reason,
            message,
        };
        let kind = crate::providers::PROVIDERS_AVAILABLE;
        conditions.push(condition(
            &previous.conditions,
            kind,
            &check,
            generation,
            now,
        ));
    } else if let Some(kept) = previous
        .conditions
        .iter()
        .find(|c| c.type_ == crate::providers::PROVIDERS_AVAILABLE)
        .filter(|_| {
            !crate::children::cloudnative_pg::services(spec).is_empty()
                || spec.rabbitmq_cluster().is_some()
                || crate::children::cert_manager::used(spec)
                || crate::providers::uses_strimzi(spec)
        })
    {
        conditions.push(kept.clone());
    }
    if spec.observability.service_monitor.enabled {
        conditions.extend(monitoring_available(
            &previous.conditions,
            &names,
            observed,
            generation,
            now,
        ));
    }
    let autoscaled: Vec<String> = spec
        .autoscaling
        .scaled_services()
        .map(|s| s.name().to_owned())
        .collect();
    conditions.extend(consumers_scaled(&previous.conditions, &autoscaled));
    let consumers = previous
        .consumers
        .into_iter()
        .filter(|(service, _)| autoscaled.contains(service))
        .collect();

    SalesSystemStatus {
        observed_generation,
        phase: Some(phase(outcome, &degraded, &ready).into()),
        conditions,
        services: services.per_service,
        consumers,
        ready_services: Some(format!(
            "{}/{}",
            services.ready_count,
            AppService::ALL.len()
        )),
        gateway_url: Some(children::gateway_url(&names, spec)),
    }
}

/// `ServicesReady`, with what `status.services` and `status.readyServices` show.
struct Services {
    check: Check,
    per_service: BTreeMap<String, ServiceReplicas>,
    /// Application services ready (the managed cache is not counted).
    ready_count: usize,
}

/// `ServicesReady`: every service's Deployment (and its autoscaled consumer's, and
/// the managed cache's) has rolled out.
fn services_ready(spec: &SalesSystemSpec, names: &Names, observed: &Observed) -> Services {
    let mut per_service = BTreeMap::new();
    let mut waiting_services = Vec::new();
    for service in AppService::ALL {
        let desired = spec.services.get(service).replicas;
        let (replicas, mut ok) =
            replicas_of(observed, &names.of(Component::Service(service)), desired);
        if spec.autoscaling.enabled(service) {
            ok &= consumer_rolled_out(observed, &names.of(Component::Consumer(service)));
        }
        if !ok {
            waiting_services.push(service.name().to_owned());
        }
        per_service.insert(service.name().to_owned(), replicas);
    }
    if spec.redis.managed().is_some() {
        let (_, ok) = replicas_of(observed, &names.of(Component::Cache), 1);
        if !ok {
            waiting_services.push("redis".into());
        }
    }
    let ready_count = AppService::ALL.len()
        - waiting_services
            .iter()
            .filter(|s| s.as_str() != "redis")
            .count();
    let check = if waiting_services.is_empty() {
        Check {
            ok: true,
            reason: "RolledOut",
            message: "every service has all its replicas ready".into(),
        }
    } else {
        Check {
            ok: false,
            reason: "RollingOut",
            message: format!("not ready yet: {}", waiting_services.join(", ")),
        }
    };
    Services {
        check,
        per_service,
        ready_count,
    }
}

/// `Degraded`: the reconcile failed, a referenced Secret is missing, or a rollout is
/// stuck (`ok` means degraded).
fn degraded(outcome: &Outcome, observed: &Observed) -> Check {
    let stuck = stuck_rollouts(observed);
    match outcome {
        Outcome::Failed(message) => Check {
            ok: true,
            reason: "ReconcileFailed",
            message: message.clone(),
        },
        Outcome::MissingSecrets(missing) => Check {
            ok: true,
            reason: "SecretMissing",
            message: format!("referenced but missing: {}", missing.join(", ")),
        },
        _ if !stuck.is_empty() => Check {
            ok: true,
            reason: "RolloutStuck",
            message: format!("rollout exceeded its deadline: {}", stuck.join(", ")),
        },
        _ => Check {
            ok: false,
            reason: "AsExpected",
            message: "nothing is failing".into(),
        },
    }
}

/// `Ready`: broker, databases and services ready, and not degraded; else what is
/// not, in that order.
fn ready(broker: &Check, databases: &Check, services: &Check, degraded: &Check) -> Check {
    let all_ready = broker.ok && databases.ok && services.ok && !degraded.ok;
    Check {
        ok: all_ready,
        reason: if all_ready { "AllReady" } else { "NotReady" },
        message: if all_ready {
            "the system is serving".into()
        } else {
            [broker, databases, services]
                .iter()
                .filter(|c| !c.ok)
                .map(|c| c.message.as_str())
                .chain(degraded.ok.then_some(degraded.message.as_str()))
                .collect::<Vec<_>>()
                .join("; ")
        },
    }
}

/// `MonitoringAvailable` (asked for with `observability.serviceMonitor.enabled`):
/// whether the ServiceMonitor could be applied; as it was when this reconcile did
/// not find out ([`Observed::service_monitors`] is `None`).
fn monitoring_available(
    previous: &[Condition],
    names: &Names,
    observed: &Observed,
    generation: Option<i64>,
    now: Timestamp,
) -> Option<Condition> {
    let check = match observed.service_monitors {
        Some(true) => Check {
            ok: true,
            reason: "ServiceMonitorApplied",
            message: format!(
                "the ServiceMonitor {} tells the Prometheus Operator to scrape every \
                 service's /metrics",
                names.service_monitor()
            ),
        },
        Some(false) => Check {
            ok: false,
            reason: "ServiceMonitorKindMissing",
            message: format!(
                "the cluster does not serve monitoring.coreos.com/v1 ServiceMonitor (the \
                 Prometheus Operator's CRDs are not installed), so the ServiceMonitor {} \
                 is not created; everything else is. It is created, and watched, once the \
                 CRD is installed",
                names.service_monitor()
            ),
        },
        None => {
            return previous
                .iter()
                .find(|c| c.type_ == MONITORING_AVAILABLE)
                .cloned();
        }
    };
    Some(condition(
        previous,
        MONITORING_AVAILABLE,
        &check,
        generation,
        now,
    ))
}

/// `ConsumersScaled`: the scaler's, kept (as it wrote it) while some consumer is
/// autoscaled.
fn consumers_scaled(previous: &[Condition], autoscaled: &[String]) -> Option<Condition> {
    if autoscaled.is_empty() {
        return None;
    }
    previous
        .iter()
        .find(|c| c.type_ == CONSUMERS_SCALED)
        .cloned()
}

/// `status.phase`: Paused, else Degraded, else Ready, else Progressing.
fn phase(outcome: &Outcome, degraded: &Check, ready: &Check) -> &'static str {
    match outcome {
        Outcome::Paused => "Paused",
        _ if degraded.ok => "Degraded",
        _ if ready.ok => "Ready",
        _ => "Progressing",
    }
}

/// A condition that keeps its `lastTransitionTime` while its status stays the same.
fn condition(
    previous: &[Condition],
    kind: &str,
    check: &Check,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if check.ok { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == kind && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: kind.into(),
        status: status.into(),
        reason: check.reason.into(),
        message: check.message.clone(),
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// The status of condition `kind`, if present.
pub fn condition_status<'a>(status: &'a SalesSystemStatus, kind: &str) -> Option<&'a str> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.as_str())
}

/// Phase and Ready as shown last, to notice transitions worth an Event.
pub fn is_ready(status: Option<&SalesSystemStatus>) -> bool {
    status.and_then(|s| condition_status(s, READY)) == Some("True")
}

/// `MonitoringAvailable` turned True or False between `before` and `after`: whether
/// it is available now, and the condition's message (for an Event).
pub fn monitoring_change(
    before: Option<&SalesSystemStatus>,
    after: &SalesSystemStatus,
) -> Option<(bool, String)> {
    let now = after
        .conditions
        .iter()
        .find(|c| c.type_ == MONITORING_AVAILABLE)?;
    let was = before.and_then(|s| condition_status(s, MONITORING_AVAILABLE));
    if was == Some(now.status.as_str()) {
        return None;
    }
    let available = now.status == "True";
    // Available from the start is no news; unavailable from the start is.
    if available && was.is_none() {
        return None;
    }
    Some((available, now.message.clone()))
}
