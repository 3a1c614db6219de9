//! What the status says about Strimzi, with `messaging.kafka.strimzi`: its part of
//! `ProvidersAvailable` (are the Strimzi kinds the system needs served) and
//! `BrokerReady` (has Strimzi reported the `Kafka` ready, whether the operator
//! created it or it existed). Pure functions of what the reconcile read;
//! [`crate::status::derive`] puts them in the conditions (through
//! [`crate::providers`]).

use kube::api::DynamicObject;

use crate::crd::{KafkaChoice, SalesSystemSpec, StrimziKafka};
use crate::providers::Verdict;

/// `ProvidersAvailable`'s (and `BrokerReady`'s) reason when Strimzi's CRDs are
/// missing.
pub const STRIMZI_NOT_INSTALLED: &str = "StrimziNotInstalled";
/// `BrokerReady`'s reason when the `Kafka` named (not created) does not exist.
pub const KAFKA_NOT_FOUND: &str = "KafkaNotFound";

/// The Strimzi `Kafka` the services use, as this reconcile found it.
#[derive(Clone, Debug, Default)]
pub struct KafkaSeen {
    /// Whether the cluster serves `kafka.strimzi.io/v1` Kafka.
    pub served: bool,
    /// The object, when it exists.
    pub object: Option<DynamicObject>,
}

/// The system's Strimzi settings, when its Kafka is a Strimzi cluster.
pub fn strimzi(spec: &SalesSystemSpec) -> Option<StrimziKafka> {
    match spec.kafka()?.choice() {
        KafkaChoice::Strimzi(strimzi) => Some(strimzi),
        _ => None,
    }
}

/// Whether the system's Kafka is a Strimzi cluster.
pub fn uses_strimzi(spec: &SalesSystemSpec) -> bool {
    strimzi(spec).is_some()
}

/// `ProvidersAvailable`'s part for Strimzi, with `messaging.kafka.strimzi`:
/// `missing` are the Strimzi kinds the system needs that the cluster does not serve
/// (`None`: not asked this time).
pub fn strimzi_available(spec: &SalesSystemSpec, missing: Option<&[String]>) -> Option<Verdict> {
    let strimzi = strimzi(spec)?;
    let missing = missing?;
    let created = strimzi.create.is_some();
    Some(if missing.is_empty() {
        let what = match created {
            true => "its Kafka, KafkaNodePool, KafkaTopics (and KafkaUser) are the system's",
            false => "its KafkaTopics (and KafkaUser) are the system's",
        };
        (true, "Installed", format!("Strimzi is installed: {what}"))
    } else {
        let kinds = missing
            .iter()
            .map(|kind| format!("kafka.strimzi.io/v1 {kind}"))
            .collect::<Vec<_>>()
            .join(", ");
        let waiting = match created {
            true => "their Kafka, topics and account",
            false => "their topics and account",
        };
        (
            false,
            STRIMZI_NOT_INSTALLED,
            format!(
                "the cluster does not serve {kinds}: install Strimzi's operators \
                 (https://strimzi.io/docs/operators/latest/deploying) with the Topic and \
                 User Operators; everything else is applied, and the services wait for \
                 {waiting}. They are created, and watched, once the CRDs are installed"
            ),
        )
    })
}

/// `BrokerReady` on a Strimzi `Kafka`: ready once Strimzi's `Ready` condition is
/// `True` for the Kafka's current spec (its `status.observedGeneration`).
pub fn kafka_ready(strimzi: &StrimziKafka, namespace: &str, seen: Option<&KafkaSeen>) -> Verdict {
    let name = &strimzi.cluster_name;
    let Some(seen) = seen else {
        return (false, "Starting", format!("Kafka {name} not read yet"));
    };
    if !seen.served {
        return (
            false,
            STRIMZI_NOT_INSTALLED,
            format!("Kafka {name}: Strimzi is not installed"),
        );
    }
    let Some(kafka) = &seen.object else {
        return match strimzi.create {
            Some(_) => (
                false,
                "Starting",
                format!("Kafka {name} is not created yet"),
            ),
            None => (
                false,
                KAFKA_NOT_FOUND,
                format!(
                    "Kafka {name} not found in namespace {namespace}: create it, or name \
                     an existing one in messaging.kafka.strimzi.clusterName"
                ),
            ),
        };
    };
    let status = &kafka.data["status"];
    let ready = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready");
    let generation = kafka.metadata.generation.unwrap_or(0);
    let current = status["observedGeneration"]
        .as_i64()
        .is_none_or(|seen| seen >= generation);
    match ready {
        Some(c) if c["status"] == "True" && current => {
            (true, "Running", format!("Kafka {name} is ready"))
        }
        Some(c) if c["status"] == "True" => (
            false,
            "Starting",
            format!("Kafka {name}: Strimzi has not applied its latest spec yet"),
        ),
        Some(c) => {
            let why = [&c["reason"], &c["message"]]
                .iter()
                .filter_map(|v| v.as_str())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(": ");
            let why = if why.is_empty() {
                String::new()
            } else {
                format!(" ({why})")
            };
            (
                false,
                "Starting",
                format!("Kafka {name} is not ready yet{why}"),
            )
        }
        None => (
            false,
            "Starting",
            format!("Kafka {name}: Strimzi has not reported it ready yet"),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn strimzi(create: bool) -> StrimziKafka {
        serde_json::from_value(json!({
            "clusterName": "events",
            "create": if create { json!({}) } else { serde_json::Value::Null },
        }))
        .unwrap()
    }

    fn seen(kafka: serde_json::Value) -> KafkaSeen {
        KafkaSeen {
            served: true,
            object: Some(serde_json::from_value(kafka).unwrap()),
        }
    }

    #[test]
    fn ready_when_strimzi_says_so_for_the_current_spec() {
        let kafka = |status: &str, observed: i64| {
            json!({"apiVersion": "kafka.strimzi.io/v1", "kind": "Kafka",
                   "metadata": {"name": "events", "generation": 2},
                   "status": {"observedGeneration": observed, "conditions": [
                       {"type": "Ready", "status": status, "reason": "Why", "message": "because"}]}})
        };
        let existing = strimzi(false);
        let ready = kafka_ready(&existing, "sales", Some(&seen(kafka("True", 2))));
        assert_eq!((ready.0, ready.1), (true, "Running"));
        let stale = kafka_ready(&existing, "sales", Some(&seen(kafka("True", 1))));
        assert!(!stale.0 && stale.2.contains("latest spec"), "{stale:?}");
        let failing = kafka_ready(&existing, "sales", Some(&seen(kafka("False", 2))));
        assert!(!failing.0);
        assert!(failing.2.contains("(Why: because)"), "{failing:?}");
    }

    #[test]
    fn missing_kafka_or_strimzi_is_said() {
        let absent = KafkaSeen {
            served: true,
            object: None,
        };
        let named = kafka_ready(&strimzi(false), "sales", Some(&absent));
        assert_eq!(named.1, KAFKA_NOT_FOUND);
        assert!(
            named.2.contains("not found in namespace sales"),
            "{named:?}"
        );
        assert_eq!(
            kafka_ready(&strimzi(true), "sales", Some(&absent)).1,
            "Starting"
        );
        let none = kafka_ready(&strimzi(true), "sales", Some(&KafkaSeen::default()));
        assert_eq!((none.0, none.1), (false, STRIMZI_NOT_INSTALLED));
    }
}
