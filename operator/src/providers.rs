//! What the status says about what another operator runs: databases on
//! CloudNativePG (is each Cluster ready, for `DatabasesReady`), the broker on RabbitMQ's
//! cluster operator (is the RabbitmqCluster available, for `BrokerReady`), and
//! `ProvidersAvailable`, whether the cluster serves the kinds the spec needs. Pure functions of what the
//! reconcile read; [`crate::status::derive`] puts them in the conditions.

use kube::ResourceExt;
use kube::api::DynamicObject;

use crate::catalogue::AppService;
use crate::children::cloudnative_pg;
use crate::children::names::Names;
use crate::crd::{SalesSystemSpec, SalesSystemStatus};

/// The condition that says whether the providers the spec names are installed.
pub const PROVIDERS_AVAILABLE: &str = "ProvidersAvailable";
/// Its reason when CloudNativePG's CRDs are missing.
pub const CLOUDNATIVE_PG_NOT_INSTALLED: &str = "CloudNativePGNotInstalled";
/// Its reason when RabbitMQ's cluster operator's CRD is missing.
pub const RABBITMQ_CLUSTER_OPERATOR_NOT_INSTALLED: &str = "RabbitMQClusterOperatorNotInstalled";
/// Its reason when cert-manager's CRDs are missing (`tls.mode: certManager`).
pub const CERT_MANAGER_NOT_INSTALLED: &str = "CertManagerNotInstalled";
/// Its reason when Strimzi's KafkaTopic or KafkaUser CRD is missing
/// (`messaging.kafka.strimzi`).
pub const STRIMZI_NOT_INSTALLED: &str = "StrimziNotInstalled";

/// The RabbitmqCluster the services use, as this reconcile found it.
#[derive(Clone, Debug, Default)]
pub struct RabbitmqClusterSeen {
    /// Whether the cluster serves `rabbitmq.com/v1beta1` RabbitmqCluster.
    pub served: bool,
    /// The object, when it exists.
    pub object: Option<DynamicObject>,
}

/// One provider condition: ok, reason, message.
pub type Verdict = (bool, &'static str, String);

/// `ProvidersAvailable`, when some database is on CloudNativePG: `served` is whether
/// the cluster serves `postgresql.cnpg.io/v1` (`None`: not asked this time).
pub fn providers_available(spec: &SalesSystemSpec, served: Option<bool>) -> Option<Verdict> {
    if cloudnative_pg::services(spec).is_empty() {
        return None;
    }
    Some(match served? {
        true => (
            true,
            "Installed",
            "CloudNativePG is installed: its Clusters hold the databases given to it".into(),
        ),
        false => (
            false,
            CLOUDNATIVE_PG_NOT_INSTALLED,
            "the cluster does not serve postgresql.cnpg.io/v1 Cluster: install the \
             CloudNativePG operator (https://cloudnative-pg.io/documentation/current/installation_upgrade/); \
             everything else is applied, and the services on CloudNativePG wait for their \
             database. The Clusters are created, and watched, once its CRDs are installed"
                .into(),
        ),
    })
}

/// Ready instances and instances of a CloudNativePG Cluster, and whether it is
/// ready: its `Ready` condition is `True`, or every instance is ready.
pub fn cluster_readiness(cluster: &DynamicObject) -> (i64, i64, bool) {
    let status = &cluster.data["status"];
    let wanted = status["instances"]
        .as_i64()
        .or_else(|| cluster.data["spec"]["instances"].as_i64())
        .unwrap_or(1);
    let ready = status["readyInstances"].as_i64().unwrap_or(0);
    let condition = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    (ready, wanted, condition || (wanted > 0 && ready >= wanted))
}

/// The databases on CloudNativePG: how many, and a sentence for each that is not
/// ready yet (its Cluster missing, or not all its instances ready).
pub fn waiting_databases(
    spec: &SalesSystemSpec,
    names: &Names,
    clusters: &[DynamicObject],
    served: Option<bool>,
) -> (usize, Vec<String>) {
    let on_cnpg = cloudnative_pg::services(spec);
    let mut waiting = Vec::new();
    for (service, cnpg) in &on_cnpg {
        let name = cloudnative_pg::cluster_name(names, *service, cnpg);
        waiting.extend(waiting_for(*service, &name, clusters, served));
    }
    (on_cnpg.len(), waiting)
}

fn waiting_for(
    service: AppService,
    name: &str,
    clusters: &[DynamicObject],
    served: Option<bool>,
) -> Option<String> {
    if served == Some(false) {
        return Some(format!(
            "{} (CloudNativePG is not installed)",
            service.name()
        ));
    }
    match clusters.iter().find(|c| c.name_any() == name) {
        None => Some(format!(
            "{} (CloudNativePG Cluster {name} not found)",
            service.name()
        )),
        Some(cluster) => match cluster_readiness(cluster) {
            (_, _, true) => None,
            (ready, wanted, false) => Some(format!(
                "{} (CloudNativePG Cluster {name}: {ready}/{wanted} instances ready)",
                service.name()
            )),
        },
    }
}

/// `ProvidersAvailable` turned between `before` and `after`: whether available now,
/// its reason and its message, for an Event (available from the start is no news).
pub fn providers_change(
    before: Option<&SalesSystemStatus>,
    after: &SalesSystemStatus,
) -> Option<(bool, String, String)> {
    let now = after
        .conditions
        .iter()
        .find(|c| c.type_ == PROVIDERS_AVAILABLE)?;
    let was = before
        .into_iter()
        .flat_map(|s| s.conditions.iter())
        .find(|c| c.type_ == PROVIDERS_AVAILABLE)
        .map(|c| c.status.as_str());
    if was == Some(now.status.as_str()) {
        return None;
    }
    let available = now.status == "True";
    if available && was.is_none() {
        return None;
    }
    Some((available, now.reason.clone(), now.message.clone()))
}

/// `ProvidersAvailable`'s part for RabbitMQ's cluster operator, when the broker is a
/// RabbitmqCluster (`None` for the rest, or when not read this time).
pub fn rabbitmq_cluster_available(
    spec: &SalesSystemSpec,
    seen: Option<&RabbitmqClusterSeen>,
) -> Option<Verdict> {
    spec.rabbitmq_cluster()?;
    Some(match seen?.served {
        true => (
            true,
            "Installed",
            "RabbitMQ's cluster operator is installed: a RabbitmqCluster carries the events"
                .into(),
        ),
        false => (
            false,
            RABBITMQ_CLUSTER_OPERATOR_NOT_INSTALLED,
            "the cluster does not serve rabbitmq.com/v1beta1 RabbitmqCluster: install \
             RabbitMQ's cluster operator (https://www.rabbitmq.com/kubernetes/operator/install-operator); \
             everything else is applied, and the services wait for their broker. The \
             RabbitmqCluster is created, and watched, once its CRD is installed"
                .into(),
        ),
    })
}

/// `ProvidersAvailable`'s part for cert-manager, with `tls.mode: certManager`:
/// `served` is whether the cluster serves `cert-manager.io/v1` Certificate (`None`:
/// not asked this time).
pub fn cert_manager_available(spec: &SalesSystemSpec, served: Option<bool>) -> Option<Verdict> {
    if !crate::children::cert_manager::used(spec) {
        return None;
    }
    Some(match served? {
        true => (
            true,
            "Installed",
            "cert-manager is installed: it issues the built-in servers' certificates".into(),
        ),
        false => (
            false,
            CERT_MANAGER_NOT_INSTALLED,
            "the cluster does not serve cert-manager.io/v1 Certificate: install cert-manager \
             (https://cert-manager.io/docs/installation/), or use tls.mode operatorCA; \
             everything else is applied, and the built-in PostgreSQL, RabbitMQ and Redis \
             wait for their certificates' Secrets. The Certificates are created once its \
             CRDs are installed"
                .into(),
        ),
    })
}

/// `ProvidersAvailable`'s part for Strimzi, with `messaging.kafka.strimzi`:
/// `missing` are the Strimzi kinds the system needs that the cluster does not serve
/// (`None`: not asked this time).
pub fn strimzi_available(spec: &SalesSystemSpec, missing: Option<&[String]>) -> Option<Verdict> {
    if !uses_strimzi(spec) {
        return None;
    }
    let missing = missing?;
    Some(if missing.is_empty() {
        (
            true,
            "Installed",
            "Strimzi is installed: its KafkaTopics (and KafkaUser) are the system's".into(),
        )
    } else {
        let kinds = missing
            .iter()
            .map(|kind| format!("kafka.strimzi.io/v1 {kind}"))
            .collect::<Vec<_>>()
            .join(", ");
        (
            false,
            STRIMZI_NOT_INSTALLED,
            format!(
                "the cluster does not serve {kinds}: install Strimzi's operators \
                 (https://strimzi.io/docs/operators/latest/deploying) with the Topic and \
                 User Operators; everything else is applied, and the services wait for \
                 their topics and account. They are created, and watched, once the CRDs \
                 are installed"
            ),
        )
    })
}

/// Whether the system's Kafka is a Strimzi cluster.
pub fn uses_strimzi(spec: &SalesSystemSpec) -> bool {
    spec.kafka()
        .is_some_and(|kafka| matches!(kafka.choice(), crate::crd::KafkaChoice::Strimzi(_)))
}

/// `ProvidersAvailable` from each provider's part: available when every part is,
/// else the first missing one's reason, with every part's message.
pub fn combine(parts: Vec<Verdict>) -> Option<Verdict> {
    let first = parts.first()?.clone();
    let ok = parts.iter().all(|(ok, _, _)| *ok);
    let reason = parts
        .iter()
        .find(|(ok, _, _)| !ok)
        .map_or(first.1, |(_, reason, _)| *reason);
    let message = parts
        .iter()
        .map(|(_, _, message)| message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    Some((ok, reason, message))
}

/// `BrokerReady` when the broker is the RabbitmqCluster `name`: available once the
/// cluster operator says `ClusterAvailable` (or `AllReplicasReady`).
pub fn rabbitmq_cluster_ready(name: &str, seen: Option<&RabbitmqClusterSeen>) -> Verdict {
    let Some(seen) = seen else {
        return (
            false,
            "Starting",
            format!("RabbitmqCluster {name} not read yet"),
        );
    };
    if !seen.served {
        return (
            false,
            RABBITMQ_CLUSTER_OPERATOR_NOT_INSTALLED,
            format!("RabbitmqCluster {name}: RabbitMQ's cluster operator is not installed"),
        );
    }
    let Some(cluster) = &seen.object else {
        return (
            false,
            "Starting",
            format!("RabbitmqCluster {name} not found"),
        );
    };
    let available = cluster.data["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| {
            (c["type"] == "ClusterAvailable" || c["type"] == "AllReplicasReady")
                && c["status"] == "True"
        });
    if available {
        (
            true,
            "Running",
            format!("RabbitmqCluster {name} is available"),
        )
    } else {
        (
            false,
            "Starting",
            format!("RabbitmqCluster {name} is not available yet"),
        )
    }
}
