//! `messaging.kafka.strimzi.create`: a Kafka run by Strimzi's cluster operator for this
//! system, as Strimzi 1.x runs one (KRaft only, nodes in node pools):
//!
//! - a `kafka.strimzi.io/v1 Kafka` named `clusterName`, with the one listener the
//!   services use ([`crate::crd::StrimziKafka::port`]): `plain` on 9092 (internal, no
//!   TLS, no authentication), or with `authentication: scram-sha-512` `scram` on 9094
//!   (internal, no TLS, SCRAM-SHA-512) and `authorization: {type: simple}`; under
//!   `spec.tls` the same with `tls: true` (its certificate from Strimzi's cluster CA),
//!   as `tls` on 9093 or `scramtls` on 9095; so that the
//!   services' `KafkaUser` gets exactly its ACLs (no listener without authentication
//!   is opened then: with simple authorization it would serve nobody); the Topic and
//!   User Operators; replication settings that fit the node count; and no automatic
//!   topic creation (the `KafkaTopic`s are the topics);
//! - a `KafkaNodePool` `<clusterName>-dual` of `create.replicas` nodes that are both
//!   KRaft controllers and brokers, each with one persistent volume (`jbod` of one,
//!   holding the KRaft metadata too: `kraftMetadata: shared`), labelled
//!   `strimzi.io/cluster: <clusterName>`.
//!
//! Both hold the events, so they follow `deletionPolicy` as a `RabbitmqCluster` the
//! operator creates does: with `Delete` they are owned by the SalesSystem, and the
//! volumes carry `deleteClaim: true` (Strimzi makes the Kafka own its claims, so they
//! go with it); with `Retain` they are not owned, `deleteClaim` is `false`, and the
//! Kafka stays, volumes and all, when the SalesSystem goes (the deletion takes off an
//! owner reference left from an earlier `Delete`). Pruning never deletes them.
//!
//! The kinds are optional ([`crate::optional_kinds`]): without Strimzi's CRDs they are
//! skipped and the status says so (`ProvidersAvailable=False`, reason
//! `StrimziNotInstalled`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use super::Child;
use super::kafka_topics::STRIMZI_CLUSTER_LABEL;
use super::names::{Component, Names};
use super::services::meta;
use super::{placement, provider_placement};
use crate::crd::{
    CreateStrimziKafka, DeletionPolicy, KafkaChoice, SalesSystemSpec, StrimziAuthentication,
    StrimziKafka,
};

/// Strimzi's API group.
pub const GROUP: &str = "kafka.strimzi.io";

/// Strimzi's `Kafka` kind (`kafka.strimzi.io/v1`, Strimzi 0.49 and later).
pub fn kafka_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1", "Kafka"), "kafkas")
}

/// Strimzi's `KafkaNodePool` kind (`kafka.strimzi.io/v1`).
pub fn kafka_node_pool_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, "v1", "KafkaNodePool"),
        "kafkanodepools",
    )
}

/// Whether `kind` is one of Strimzi's the operator creates.
pub fn is_strimzi_kind(kind: &str) -> bool {
    [
        kafka_resource(),
        kafka_node_pool_resource(),
        super::kafka_topics::kafka_topic_resource(),
        super::kafka_users::kafka_user_resource(),
    ]
    .iter()
    .any(|resource| resource.kind == kind)
}

/// The node pool of a created Kafka: `<cluster>-dual` (one name per cluster, as node
/// pools share the namespace).
pub fn node_pool_name(cluster: &str) -> String {
    format!("{cluster}-dual")
}

/// The Strimzi Kafka of `spec`, and what to create, when the operator creates it.
pub fn created(spec: &SalesSystemSpec) -> Option<(StrimziKafka, CreateStrimziKafka)> {
    match spec.kafka()?.choice() {
        KafkaChoice::Strimzi(strimzi) => {
            let create = strimzi.create.clone()?;
            Some((strimzi, create))
        }
        _ => None,
    }
}

/// The Kafka and its node pool, with `messaging.kafka.strimzi.create`.
pub fn children(
    names: &Names,
    spec: &SalesSystemSpec,
    owner: &Option<OwnerReference>,
) -> Result<Vec<Child>, serde_json::Error> {
    let Some((strimzi, create)) = created(spec) else {
        return Ok(Vec::new());
    };
    // They hold the events: owned (and collected with the system) only with Delete.
    let (owner, delete_claim) = match spec.deletion_policy {
        DeletionPolicy::Delete => (owner.clone(), true),
        DeletionPolicy::Retain => (None, false),
    };
    let cluster = &strimzi.cluster_name;
    let labels = names.labels(Component::Kafka);
    let resource = kafka_resource();
    let kafka = json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": meta(names, cluster.clone(), labels.clone(), &owner),
        "spec": kafka_spec(&strimzi, &create, spec.tls.enabled()),
    });
    let pool_resource = kafka_node_pool_resource();
    let mut pool_labels = labels;
    pool_labels.insert(STRIMZI_CLUSTER_LABEL.into(), cluster.clone());
    let pool = json!({
        "apiVersion": pool_resource.api_version,
        "kind": pool_resource.kind,
        "metadata": meta(names, node_pool_name(cluster), pool_labels, &owner),
        "spec": pool_spec(spec, cluster, &create, delete_claim)?,
    });
    Ok(vec![
        Child {
            resource,
            object: serde_json::from_value(kafka)?,
        },
        Child {
            resource: pool_resource,
            object: serde_json::from_value(pool)?,
        },
    ])
}

/// The Kafka's spec: the services' listener, the entity operators, and replication
/// that fits `replicas` nodes (as Strimzi's own examples set it).
fn kafka_spec(strimzi: &StrimziKafka, create: &CreateStrimziKafka, tls: bool) -> Value {
    let port = strimzi.port(tls);
    let listener = match (strimzi.authentication, tls) {
        (StrimziAuthentication::None, false) => json!({
            "name": "plain", "port": port, "type": "internal", "tls": false,
        }),
        (StrimziAuthentication::None, true) => json!({
            "name": "tls", "port": port, "type": "internal", "tls": true,
        }),
        (StrimziAuthentication::ScramSha512, _) => json!({
            "name": if tls { "scramtls" } else { "scram" },
            "port": port, "type": "internal", "tls": tls,
            "authentication": {"type": "scram-sha-512"},
        }),
    };
    let (replication, in_sync) = replication(create.replicas);
    let mut kafka = json!({
        "listeners": [listener],
        "config": {
            "default.replication.factor": replication,
            "min.insync.replicas": in_sync,
            "offsets.topic.replication.factor": replication,
            "transaction.state.log.replication.factor": replication,
            "transaction.state.log.min.isr": in_sync,
            // Topics are made by the Topic Operator from the KafkaTopics, never by a
            // client asking for one that is missing.
            "auto.create.topics.enable": false,
        },
    });
    if strimzi.authentication == StrimziAuthentication::ScramSha512 {
        kafka["authorization"] = json!({"type": "simple"});
    }
    if let Some(version) = &create.version {
        kafka["version"] = version.clone().into();
    }
    if let Some(metadata_version) = &create.metadata_version {
        kafka["metadataVersion"] = metadata_version.clone().into();
    }
    json!({
        "kafka": kafka,
        "entityOperator": {"topicOperator": {}, "userOperator": {}},
    })
}

/// `(default.replication.factor, min.insync.replicas)` on `replicas` nodes: three
/// copies (or one per node) of which two must be in sync on three nodes or more, so
/// that one node may be away without stopping writes.
pub fn replication(replicas: i32) -> (i32, i32) {
    let copies = replicas.clamp(1, 3);
    (copies, if copies >= 3 { 2 } else { 1 })
}

/// The node pool's spec: dual-role nodes, one persistent volume each, placed by
/// `spec.placement`.
fn pool_spec(
    system: &SalesSystemSpec,
    cluster: &str,
    create: &CreateStrimziKafka,
    delete_claim: bool,
) -> Result<Value, serde_json::Error> {
    let mut volume = json!({
        "id": 0,
        "type": "persistent-claim",
        "size": create.storage.size.0,
        "deleteClaim": delete_claim,
        "kraftMetadata": "shared",
    });
    if let Some(class) = &create.storage.storage_class_name {
        volume["class"] = class.clone().into();
    }
    let mut spec = json!({
        "replicas": create.replicas,
        "roles": ["controller", "broker"],
        "storage": {"type": "jbod", "volumes": [volume]},
    });
    if let Some(resources) = &create.resources {
        spec["resources"] = serde_json::to_value(resources)?;
    }
    // Strimzi labels the pool's pods with their cluster and pool.
    let pods = BTreeMap::from([
        (STRIMZI_CLUSTER_LABEL.to_owned(), cluster.to_owned()),
        ("strimzi.io/pool-name".to_owned(), node_pool_name(cluster)),
    ]);
    let placement = placement::given(system, Component::Kafka);
    if let Some(template) = provider_placement::strimzi_node_pool(&placement, &pods)? {
        spec["template"] = template;
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_fits_the_node_count() {
        assert_eq!(replication(1), (1, 1));
        assert_eq!(replication(3), (3, 2));
        assert_eq!(replication(5), (3, 2));
    }
}
