//! Strimzi `KafkaUser`: with `messaging.kafka.strimzi.authentication: scram-sha-512`,
//! the operator declares the services' account, `<name>-services`, and Strimzi's User
//! Operator creates it in Kafka with a generated SCRAM-SHA-512 password, which it
//! writes to the Secret of the same name (key `password`). The services read that
//! key; until Strimzi has written it their pods wait (the reconcile does not: it never
//! reads the Secret).
//!
//! Its ACLs are what the services do and no more: they produce to, consume from and
//! look up the topics under the system's prefix (Strimzi's Topic Operator creates
//! them, so no `Create`), and join and commit in consumer groups under it. Read and
//! Write imply Describe; an idempotent producer needs only Write on its topics since
//! Kafka 3.0 (KIP-679), so nothing on the cluster.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use super::Child;
use super::kafka_topics::STRIMZI_CLUSTER_LABEL;
use super::names::{Component, Names};
use super::services::meta;
use crate::crd::{KafkaChoice, KafkaSpec, StrimziAuthentication};

/// The key of the Secret Strimzi writes for a SCRAM-SHA-512 user with its password.
pub const PASSWORD_KEY: &str = "password";
/// The SASL mechanism of a Strimzi user.
pub const SCRAM_MECHANISM: &str = "SCRAM-SHA-512";

/// Strimzi's KafkaUser kind (`kafka.strimzi.io/v1`, as the KafkaTopics).
pub fn kafka_user_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kafka.strimzi.io", "v1", "KafkaUser"),
        "kafkausers",
    )
}

/// The services' user on a Strimzi cluster with SCRAM-SHA-512: the KafkaUser's name,
/// which is the user name in Kafka and the name of the Secret with its password.
pub fn services_user(names: &Names, kafka: &KafkaSpec) -> Option<String> {
    match kafka.choice() {
        KafkaChoice::Strimzi(s) if s.authentication == StrimziAuthentication::ScramSha512 => {
            Some(format!("{}-services", names.instance))
        }
        _ => None,
    }
}

/// The ACLs of the services' user: topics and consumer groups under `prefix`.
pub fn acls(prefix: &str) -> Value {
    let rule = |kind: &str, operations: &[&str]| {
        json!({
            "type": "allow",
            "resource": {"type": kind, "name": prefix, "patternType": "prefix"},
            "operations": operations,
        })
    };
    json!([
        rule("topic", &["Describe", "Read", "Write"]),
        rule("group", &["Read"]),
    ])
}

/// The services' KafkaUser, with `messaging.kafka.strimzi.authentication:
/// scram-sha-512`.
pub fn kafka_users(
    names: &Names,
    kafka: &KafkaSpec,
    owner: &Option<OwnerReference>,
) -> Result<Vec<Child>, serde_json::Error> {
    let (KafkaChoice::Strimzi(strimzi), Some(user)) = (kafka.choice(), services_user(names, kafka))
    else {
        return Ok(Vec::new());
    };
    let resource = kafka_user_resource();
    let mut labels = names.labels(Component::Kafka);
    labels.insert(STRIMZI_CLUSTER_LABEL.into(), strimzi.cluster_name.clone());
    let object = json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": meta(names, user, labels, owner),
        "spec": {
            "authentication": {"type": "scram-sha-512"},
            "authorization": {"type": "simple", "acls": acls(&kafka.topic_prefix)},
        },
    });
    Ok(vec![Child {
        resource,
        object: serde_json::from_value(object)?,
    }])
}
