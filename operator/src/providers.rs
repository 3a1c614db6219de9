//! What the status says about what another operator runs: databases on
//! CloudNativePG (is each Cluster ready, each Database of the shared one applied, for
//! `DatabasesReady`), the broker on RabbitMQ's
//! cluster operator (is the RabbitmqCluster available, and are the system's Vhost, User
//! and Permission of the Messaging Topology Operator ready, for `BrokerReady`), and
//! `ProvidersAvailable`, whether the cluster serves the kinds the spec needs (Strimzi's
//! part, and `BrokerReady` on a Strimzi Kafka: [`crate::strimzi_status`]). Pure
//! functions of what the reconcile read; [`crate::status::derive`] puts them in the
//! conditions.

use kube::ResourceExt;
use kube::api::DynamicObject;

use crate::catalogue::AppService;
use crate::children::names::Names;
use crate::children::{cloudnative_pg, cloudnative_pg_shared};
use crate::crd::{SalesSystemSpec, SalesSystemStatus};

/// The condition that says whether the providers the spec names are installed.
pub const PROVIDERS_AVAILABLE: &str = "ProvidersAvailable";
/// Its reason when CloudNativePG's CRDs are missing.
pub const CLOUDNATIVE_PG_NOT_INSTALLED: &str = "CloudNativePGNotInstalled";
/// Its reason when RabbitMQ's cluster operator's CRD is missing.
pub const RABBITMQ_CLUSTER_OPERATOR_NOT_INSTALLED: &str = "RabbitMQClusterOperatorNotInstalled";
/// Its reason (and `BrokerReady`'s) when RabbitMQ's Messaging Topology Operator's CRDs
/// (Vhost, User, Permission) are missing.
pub const RABBITMQ_TOPOLOGY_OPERATOR_NOT_INSTALLED: &str = "RabbitMQTopologyOperatorNotInstalled";
/// `BrokerReady`'s reason when the topology operator reports the Vhost, User or
/// Permission not ready (it could not declare it on the cluster).
pub const RABBITMQ_TOPOLOGY_NOT_READY: &str = "RabbitMQTopologyNotReady";
/// Its reason when cert-manager's CRDs are missing (`tls.mode: certManager`).
pub const CERT_MANAGER_NOT_INSTALLED: &str = "CertManagerNotInstalled";
/// Strimzi's part (`messaging.kafka.strimzi`), in its own module.
pub use crate::strimzi_status::{STRIMZI_NOT_INSTALLED, strimzi_available, uses_strimzi};

/// The RabbitmqCluster the services use, as this reconcile found it, with the
/// system's objects of the Messaging Topology Operator.
#[derive(Clone, Debug, Default)]
pub struct RabbitmqClusterSeen {
    /// Whether the cluster serves `rabbitmq.com/v1beta1` RabbitmqCluster.
    pub served: bool,
    /// The object, when it exists.
    pub object: Option<DynamicObject>,
    /// The topology operator's kinds (`Vhost`, `User`, `Permission`) the cluster
    /// does not serve.
    pub topology_missing: Vec<String>,
    /// The system's Vhost, User and Permission, as read.
    pub topology: Vec<TopologyObjectSeen>,
}

/// One of the system's objects of the Messaging Topology Operator, as read.
#[derive(Clone, Debug)]
pub struct TopologyObjectSeen {
    pub kind: String,
    pub name: String,
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
    // The shared Cluster's databases are `Database` objects (CloudNativePG 1.25+).
    let (kinds, version) = match cloudnative_pg_shared::services(spec).is_empty() {
        true => ("Cluster", ""),
        false => ("Cluster and Database", " (1.25 or later)"),
    };
    Some(match served? {
        true => (
            true,
            "Installed",
            "CloudNativePG is installed: its Clusters hold the databases given to it".into(),
        ),
        false => (
            false,
            CLOUDNATIVE_PG_NOT_INSTALLED,
            format!(
                "the cluster does not serve postgresql.cnpg.io/v1 {kinds}: install the \
                 CloudNativePG operator{version} \
                 (https://cloudnative-pg.io/documentation/current/installation_upgrade/); \
                 everything else is applied, and the services on CloudNativePG wait for \
                 their database. The Clusters are created, and watched, once its CRDs are \
                 installed"
            ),
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
/// ready yet (its Cluster missing, or not all its instances ready; in the shared
/// Cluster also its `Database` object missing, or not applied yet).
pub fn waiting_databases(
    spec: &SalesSystemSpec,
    names: &Names,
    clusters: &[DynamicObject],
    databases: &[DynamicObject],
    served: Option<bool>,
) -> (usize, Vec<String>) {
    let on_cnpg = cloudnative_pg::services(spec);
    let mut waiting = Vec::new();
    for (service, cnpg) in &on_cnpg {
        let name = cloudnative_pg::cluster_name(names, *service, cnpg);
        let cluster = waiting_for(*service, &name, clusters, served);
        waiting.extend(cluster.or_else(|| {
            let database = cloudnative_pg_shared::role_secret(names, *service);
            cnpg.shared
                .then(|| database_waiting(*service, &database, databases))
                .flatten()
        }));
    }
    (on_cnpg.len(), waiting)
}

/// A sentence when the CloudNativePG `Database` object `name` of `service` is
/// missing, or not applied yet: its `status.applied` is not `true` for its current
/// generation (CloudNativePG's `status.message` says why, e.g. a role missing).
fn database_waiting(
    service: AppService,
    name: &str,
    databases: &[DynamicObject],
) -> Option<String> {
    let Some(database) = databases.iter().find(|d| d.name_any() == name) else {
        return Some(format!(
            "{} (CloudNativePG Database {name} not found)",
            service.name()
        ));
    };
    let status = &database.data["status"];
    let current = match (
        status["observedGeneration"].as_i64(),
        database.metadata.generation,
    ) {
        (Some(seen), Some(generation)) => seen >= generation,
        _ => true,
    };
    if status["applied"] == true && current {
        return None;
    }
    Some(match status["message"].as_str().filter(|m| !m.is_empty()) {
        Some(message) => format!(
            "{} (CloudNativePG Database {name} not applied: {message})",
            service.name()
        ),
        None => format!(
            "{} (CloudNativePG Database {name} not applied yet)",
            service.name()
        ),
    })
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
    let seen = seen?;
    Some(if !seen.served {
        (
            false,
            RABBITMQ_CLUSTER_OPERATOR_NOT_INSTALLED,
            "the cluster does not serve rabbitmq.com/v1beta1 RabbitmqCluster: install \
             RabbitMQ's cluster operator (https://www.rabbitmq.com/kubernetes/operator/install-operator) \
             and its Messaging Topology Operator; everything else is applied, and the \
             services wait for their broker. The RabbitmqCluster is created, and watched, \
             once its CRD is installed"
                .into(),
        )
    } else if !seen.topology_missing.is_empty() {
        let kinds = seen
            .topology_missing
            .iter()
            .map(|kind| format!("rabbitmq.com/v1beta1 {kind}"))
            .collect::<Vec<_>>()
            .join(", ");
        (
            false,
            RABBITMQ_TOPOLOGY_OPERATOR_NOT_INSTALLED,
            format!(
                "the cluster does not serve {kinds}: install RabbitMQ's Messaging Topology \
                 Operator (https://www.rabbitmq.com/kubernetes/operator/install-topology-operator); \
                 everything else is applied, and the services wait for their broker \
                 account (the operator never gives them the cluster's default \
                 administrator). The vhost, user and permissions are created, and \
                 watched, once its CRDs are installed"
            ),
        )
    } else {
        (
            true,
            "Installed",
            "RabbitMQ's cluster operator and Messaging Topology Operator are installed: a \
             RabbitmqCluster carries the events, on the system's own vhost and user"
                .into(),
        )
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
/// cluster operator says `ClusterAvailable` (or `AllReplicasReady`) and the topology
/// operator says the system's Vhost, User and Permission are `Ready` (for their
/// current generation).
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
    if !available {
        return (
            false,
            "Starting",
            format!("RabbitmqCluster {name} is not available yet"),
        );
    }
    if !seen.topology_missing.is_empty() {
        return (
            false,
            RABBITMQ_TOPOLOGY_OPERATOR_NOT_INSTALLED,
            format!(
                "RabbitmqCluster {name} is available, but RabbitMQ's Messaging Topology \
                 Operator is not installed: the services have no vhost or user on it"
            ),
        );
    }
    let mut failed = false;
    let mut waiting = Vec::new();
    for seen in &seen.topology {
        let what = format!("{} {}", seen.kind, seen.name);
        match seen.object.as_ref().map(topology_ready) {
            None => waiting.push(format!("{what} not found")),
            Some(TopologyReady::Ready) => {}
            Some(TopologyReady::Pending) => waiting.push(format!("{what} not declared yet")),
            Some(TopologyReady::Failed(message)) => {
                failed = true;
                waiting.push(format!("{what} is not ready: {message}"));
            }
        }
    }
    if failed && cluster.data["spec"]["tls"]["secretName"].is_string() {
        // The topology operator reaches a TLS cluster over HTTPS, with its own roots.
        waiting.push(
            "the cluster serves TLS: the Messaging Topology Operator must trust its CA \
             (docs/operator/tls.md#providers)"
                .into(),
        );
    }
    if !waiting.is_empty() {
        let reason = if failed {
            RABBITMQ_TOPOLOGY_NOT_READY
        } else {
            "Starting"
        };
        return (
            false,
            reason,
            format!(
                "RabbitmqCluster {name} is available; the services' vhost and user are not \
                 ready: {}",
                waiting.join("; ")
            ),
        );
    }
    (
        true,
        "Running",
        format!("RabbitmqCluster {name} is available, with the services' vhost and user"),
    )
}

/// What the topology operator says of one of its objects.
enum TopologyReady {
    /// `Ready` is `True` for the object's current generation.
    Ready,
    /// No `Ready` condition yet, or one of an earlier generation.
    Pending,
    /// `Ready` is `False` (or `Unknown`): its message.
    Failed(String),
}

fn topology_ready(object: &DynamicObject) -> TopologyReady {
    let status = &object.data["status"];
    let current = match (
        status["observedGeneration"].as_i64(),
        object.metadata.generation,
    ) {
        (Some(observed), Some(generation)) => observed >= generation,
        _ => true,
    };
    let ready = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready");
    match ready {
        None => TopologyReady::Pending,
        Some(_) if !current => TopologyReady::Pending,
        Some(c) if c["status"] == "True" => TopologyReady::Ready,
        Some(c) => TopologyReady::Failed(
            c["message"]
                .as_str()
                .filter(|m| !m.is_empty())
                .or_else(|| c["reason"].as_str())
                .unwrap_or("no reason given")
                .to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn object(value: serde_json::Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    /// A topology object that failed on a TLS cluster points at the CA its operator
    /// must trust; on a plaintext cluster the message says nothing of it.
    #[test]
    fn a_failed_topology_object_on_a_tls_cluster_names_the_ca_to_trust() {
        let verdict = |tls: bool| {
            let mut cluster = serde_json::json!({
                "apiVersion": "rabbitmq.com/v1beta1", "kind": "RabbitmqCluster",
                "metadata": {"name": "shop-rabbitmq"},
                "status": {"conditions": [{"type": "ClusterAvailable", "status": "True"}]},
            });
            if tls {
                cluster["spec"] = serde_json::json!({"tls": {"secretName": "shop-rabbitmq-tls"}});
            }
            let user = object(serde_json::json!({
                "apiVersion": "rabbitmq.com/v1beta1", "kind": "User",
                "metadata": {"name": "shop-services", "generation": 1},
                "status": {"observedGeneration": 1, "conditions": [{"type": "Ready",
                    "status": "False", "message": "x509: certificate signed by unknown authority"}]},
            }));
            let seen = RabbitmqClusterSeen {
                served: true,
                object: Some(object(cluster)),
                topology_missing: Vec::new(),
                topology: vec![TopologyObjectSeen {
                    kind: "User".into(),
                    name: "shop-services".into(),
                    object: Some(user),
                }],
            };
            rabbitmq_cluster_ready("shop-rabbitmq", Some(&seen))
        };
        let (ready, reason, message) = verdict(true);
        assert!(!ready);
        assert_eq!(reason, RABBITMQ_TOPOLOGY_NOT_READY);
        assert!(
            message.contains("the Messaging Topology Operator must trust its CA"),
            "{message}"
        );
        let (_, _, message) = verdict(false);
        assert!(!message.contains("must trust"), "{message}");
    }
}
