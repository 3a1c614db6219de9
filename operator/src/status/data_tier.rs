//! `BrokerReady` and `DatabasesReady`: whether the data tier the services need is up,
//! from the StatefulSets the operator runs, or what the providers (RabbitMQ's cluster
//! operator, Strimzi, CloudNativePG) say of theirs.

use kube::ResourceExt;

use super::{Check, Observed};
use crate::catalogue::AppService;
use crate::children::names::{Component, Names};
use crate::crd::{DatabaseChoice, SalesSystemSpec};

fn stateful_ready(observed: &Observed, name: &str) -> bool {
    stateful_ready_at_least(observed, name, 1)
}

/// At least `wanted` pods of the StatefulSet are ready.
fn stateful_ready_at_least(observed: &Observed, name: &str, wanted: i32) -> bool {
    observed
        .stateful_sets
        .iter()
        .find(|s| s.name_any() == name)
        .and_then(|s| s.status.as_ref())
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
        >= wanted
}

/// `BrokerReady`: RabbitMQ has a ready pod, a majority of the Kafka nodes is ready,
/// or Strimzi says the `Kafka` is ready; an external broker counts as ready.
pub(super) fn broker_ready(spec: &SalesSystemSpec, names: &Names, observed: &Observed) -> Check {
    if let Some(provider) = spec.rabbitmq_cluster() {
        let name = crate::children::rabbitmq_cluster::cluster_name(names, provider);
        let (ok, reason, message) =
            crate::providers::rabbitmq_cluster_ready(&name, observed.rabbitmq_cluster.as_ref());
        return Check {
            ok,
            reason,
            message,
        };
    }
    if let Some(strimzi) = crate::strimzi_status::strimzi(spec) {
        let (ok, reason, message) = crate::strimzi_status::kafka_ready(
            &strimzi,
            &names.namespace,
            observed.strimzi_kafka.as_ref(),
        );
        return Check {
            ok,
            reason,
            message,
        };
    }
    match (spec.managed_rabbitmq(), spec.managed_kafka()) {
        // A majority of the nodes: a quorum, and a leader for every partition.
        (None, Some(kafka))
            if stateful_ready_at_least(
                observed,
                &names.of(Component::Kafka),
                kafka.replicas.max(1) / 2 + 1,
            ) =>
        {
            Check {
                ok: true,
                reason: "Running",
                message: "a majority of the Kafka nodes is ready".into(),
            }
        }
        (None, Some(kafka)) => Check {
            ok: false,
            reason: "Starting",
            message: format!(
                "waiting for {} of the {} Kafka nodes to be ready",
                kafka.replicas.max(1) / 2 + 1,
                kafka.replicas.max(1)
            ),
        },
        (None, None) => Check {
            ok: true,
            reason: "External",
            message: "an external broker is used".into(),
        },
        (Some(_), _) if stateful_ready(observed, &names.of(Component::Broker)) => Check {
            ok: true,
            reason: "Running",
            message: "RabbitMQ is ready".into(),
        },
        (Some(_), _) => Check {
            ok: false,
            reason: "Starting",
            message: "RabbitMQ has no ready pod yet".into(),
        },
    }
}

/// `DatabasesReady`: every managed database's StatefulSet has a ready pod, every
/// CloudNativePG Cluster is ready; external ones count as ready.
pub(super) fn databases_ready(spec: &SalesSystemSpec, names: &Names, observed: &Observed) -> Check {
    let (cnpg, mut waiting_databases) = crate::providers::waiting_databases(
        spec,
        names,
        &observed.cnpg_clusters,
        &observed.cnpg_databases,
        observed.cloudnative_pg,
    );
    let mut managed_databases = cnpg;
    for service in AppService::with_database() {
        if let Some(DatabaseChoice::Managed(_)) = spec.postgres.choice(service) {
            managed_databases += 1;
            if !stateful_ready(observed, &names.of(Component::Database(service))) {
                waiting_databases.push(service.name().to_owned());
            }
        }
    }
    if waiting_databases.is_empty() {
        Check {
            ok: true,
            reason: if managed_databases == 0 {
                "External"
            } else {
                "Running"
            },
            message: format!("{managed_databases} managed databases ready"),
        }
    } else {
        Check {
            ok: false,
            reason: "Starting",
            message: format!(
                "waiting for the databases of {}",
                waiting_databases.join(", ")
            ),
        }
    }
}
