//! Strimzi `KafkaTopic`s: with `messaging.kafka.strimzi`, the operator declares every
//! topic of the system (the topology's event, retry and dead-letter topics) and
//! Strimzi's Topic Operator creates them; the services only check they exist
//! (`KAFKA_CREATE_TOPICS=false`).
//!
//! A KafkaTopic deleted while Strimzi manages it deletes its topic, dead letters
//! included. So the operator never deletes one that way: before pruning one, or when
//! a SalesSystem with `deletionPolicy: Retain` goes, it sets `strimzi.io/managed:
//! "false"` first, which leaves the topic in Kafka.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, GroupVersionKind};
use sales_contracts::topology::Topology;

use super::Child;
use super::names::{Component, Names};
use super::services::meta;
use crate::crd::{KafkaChoice, KafkaSpec};

/// The label that names the Strimzi `Kafka` a topic belongs to.
pub const STRIMZI_CLUSTER_LABEL: &str = "strimzi.io/cluster";
/// `"false"`: the Topic Operator lets go of the topic (deleting the KafkaTopic then
/// leaves the topic in Kafka).
pub const STRIMZI_MANAGED_ANNOTATION: &str = "strimzi.io/managed";

/// Retention of event and retry topics, as the services set it when they create them
/// (`sales_platform::messaging::kafka::EVENT_RETENTION`).
fn event_retention_ms() -> String {
    sales_platform::messaging::kafka::EVENT_RETENTION
        .as_millis()
        .to_string()
}

/// Strimzi's KafkaTopic kind (`kafka.strimzi.io/v1`, Strimzi 0.49 and later).
pub fn kafka_topic_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kafka.strimzi.io", "v1", "KafkaTopic"),
        "kafkatopics",
    )
}

/// One KafkaTopic per topic of the system, with `messaging.kafka.strimzi`.
pub fn kafka_topics(
    names: &Names,
    kafka: &KafkaSpec,
    owner: &Option<OwnerReference>,
) -> Result<Vec<Child>, serde_json::Error> {
    let KafkaChoice::Strimzi(strimzi) = kafka.choice() else {
        return Ok(Vec::new());
    };
    let resource = kafka_topic_resource();
    let mut labels = names.labels(Component::Kafka);
    labels.insert(STRIMZI_CLUSTER_LABEL.into(), strimzi.cluster_name.clone());
    let retention = event_retention_ms();
    Topology::new(kafka.topic_prefix.clone())
        .kafka_topics()
        .into_iter()
        .map(|topic| {
            let retention_ms = if topic.ends_with(".dlt") {
                "-1"
            } else {
                retention.as_str()
            };
            let mut spec = serde_json::json!({
                "topicName": topic,
                "partitions": kafka.partitions,
                "config": BTreeMap::from([("retention.ms", retention_ms)]),
            });
            if let Some(replicas) = kafka.replication() {
                spec["replicas"] = replicas.into();
            }
            let object = serde_json::json!({
                "apiVersion": resource.api_version,
                "kind": resource.kind,
                "metadata": meta(names, names.kafka_topic(&topic), labels.clone(), owner),
                "spec": spec,
            });
            Ok(Child {
                resource: resource.clone(),
                object: serde_json::from_value(object)?,
            })
        })
        .collect()
}
