//! What a SalesSystem on Kafka becomes: the managed KRaft cluster (nodes, quorum,
//! listeners, credentials), or Strimzi KafkaTopics for every topic of the topology.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use sales_contracts::topology::Topology;
use sales_operator::children::secrets::generated;
use sales_operator::children::{desired, names_of};
use serde_json::Value;

fn example(name: &str) -> sales_operator::crd::SalesSystem {
    let yaml = std::fs::read_to_string(common::workspace().join("examples").join(name)).unwrap();
    sales_operator::render::parse(&yaml).unwrap()
}

fn children(name: &str) -> Vec<Value> {
    desired(&example(name))
        .unwrap()
        .iter()
        .map(|c| serde_json::to_value(&c.object).unwrap())
        .collect()
}

fn named<'a>(children: &'a [Value], kind: &str, name: &str) -> &'a Value {
    children
        .iter()
        .find(|c| c["kind"] == kind && c["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name}"))
}

fn env(container: &Value) -> BTreeMap<String, Value> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_owned(), e.clone()))
        .collect()
}

#[test]
fn the_managed_kafka_is_a_three_node_kraft_quorum() {
    let children = children("salessystem-kafka.yaml");
    let sts = named(&children, "StatefulSet", "shop-kafka-kafka");
    let spec = &sts["spec"];
    assert_eq!(spec["replicas"], 3);
    assert_eq!(spec["podManagementPolicy"], "Parallel");
    assert_eq!(spec["serviceName"], "shop-kafka-kafka-nodes");
    assert_eq!(
        spec["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "10Gi"
    );
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsUser"], 1000);
    assert_eq!(
        pod["enableServiceLinks"], false,
        "no KAFKA_PORT junk in the config"
    );
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "apache/kafka:4.1.1");
    let env = env(container);
    let value = |k: &str| env[k]["value"].as_str().unwrap().to_owned();
    assert_eq!(
        value("KAFKA_CONTROLLER_QUORUM_VOTERS"),
        (0..3)
            .map(|i| format!("{i}@shop-kafka-kafka-{i}.shop-kafka-kafka-nodes.sales.svc:9093"))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(
        env["KAFKA_NODE_ID"]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.labels['apps.kubernetes.io/pod-index']"
    );
    assert_eq!(
        value("KAFKA_ADVERTISED_LISTENERS"),
        "CLIENT://$(POD_NAME).shop-kafka-kafka-nodes.sales.svc:9092,BROKER://$(POD_NAME).shop-kafka-kafka-nodes.sales.svc:9091"
    );
    // POD_NAME is defined before the variable that refers to it.
    let order: Vec<&String> = env.keys().collect();
    let names: Vec<String> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        names.iter().position(|n| n == "POD_NAME")
            < names.iter().position(|n| n == "KAFKA_ADVERTISED_LISTENERS"),
        "{order:?}"
    );
    assert_eq!(
        value("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"),
        "CLIENT:SASL_PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT"
    );
    for (key, want) in [
        ("KAFKA_MIN_INSYNC_REPLICAS", "2"),
        ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "3"),
        ("KAFKA_DEFAULT_REPLICATION_FACTOR", "3"),
        ("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false"),
    ] {
        assert_eq!(value(key), want, "{key}");
    }
    for (variable, key) in [
        ("CLUSTER_ID", "cluster-id"),
        ("KAFKA_LISTENER_NAME_CLIENT_PLAIN_SASL_JAAS_CONFIG", "jaas"),
    ] {
        let from = &env[variable]["valueFrom"]["secretKeyRef"];
        assert_eq!(
            (from["name"].as_str(), from["key"].as_str()),
            (Some("shop-kafka-kafka"), Some(key))
        );
    }
    // Every mount the image writes to, on a read-only root filesystem.
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    let mounts: Vec<&str> = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    for path in [
        "/var/lib/kafka/data",
        "/opt/kafka/config",
        "/opt/kafka/logs",
        "/tmp",
    ] {
        assert!(mounts.contains(&path), "{path} in {mounts:?}");
    }
    assert!(
        value("KAFKA_LOG_DIRS").starts_with("/var/lib/kafka/data/"),
        "not the volume's root (lost+found)"
    );

    let nodes = named(&children, "Service", "shop-kafka-kafka-nodes");
    assert_eq!(nodes["spec"]["clusterIP"], "None");
    assert_eq!(nodes["spec"]["publishNotReadyAddresses"], true);
    let bootstrap = named(&children, "Service", "shop-kafka-kafka");
    assert_eq!(bootstrap["spec"]["ports"][0]["port"], 9092);
    let budget = named(&children, "PodDisruptionBudget", "shop-kafka-kafka");
    assert_eq!(budget["spec"]["maxUnavailable"], 1);
    assert!(children.iter().all(|c| c["kind"] != "KafkaTopic"));
    assert!(
        children
            .iter()
            .all(|c| !c["metadata"]["name"].as_str().unwrap().contains("rabbitmq"))
    );

    let system = example("salessystem-kafka.yaml");
    let secrets: Vec<String> = generated(&names_of(&system), &system.spec)
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(
        secrets.contains(&"shop-kafka-kafka".to_owned()),
        "{secrets:?}"
    );
    assert!(
        !secrets.contains(&"shop-kafka-rabbitmq".to_owned()),
        "{secrets:?}"
    );
}

#[test]
fn one_node_keeps_every_internal_topic_at_one_copy() {
    let mut system = example("salessystem-kafka.yaml");
    let kafka = system.spec.messaging.kafka.as_mut().unwrap();
    kafka.managed.as_mut().unwrap().replicas = 1;
    kafka.replication_factor = None;
    let children: Vec<Value> = desired(&system)
        .unwrap()
        .iter()
        .map(|c| serde_json::to_value(&c.object).unwrap())
        .collect();
    let sts = named(&children, "StatefulSet", "shop-kafka-kafka");
    let env = env(&sts["spec"]["template"]["spec"]["containers"][0]);
    for key in [
        "KAFKA_MIN_INSYNC_REPLICAS",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
        "KAFKA_DEFAULT_REPLICATION_FACTOR",
    ] {
        assert_eq!(env[key]["value"], "1", "{key}");
    }
    let config = named(&children, "ConfigMap", "shop-kafka-inventory");
    assert_eq!(config["data"]["KAFKA_REPLICATION_FACTOR"], "1");
}

#[test]
fn strimzi_gets_a_kafka_topic_for_every_topic_and_no_broker_is_run() {
    let children = children("salessystem-strimzi.yaml");
    let topics: Vec<&Value> = children
        .iter()
        .filter(|c| c["kind"] == "KafkaTopic")
        .collect();
    let wanted = Topology::new("shop.").kafka_topics();
    assert_eq!(topics.len(), wanted.len());
    let mut seen: Vec<String> = Vec::new();
    for topic in &topics {
        assert_eq!(topic["apiVersion"], "kafka.strimzi.io/v1");
        assert_eq!(topic["metadata"]["labels"]["strimzi.io/cluster"], "events");
        assert_eq!(topic["spec"]["partitions"], 3);
        assert_eq!(topic["spec"]["replicas"], 3);
        let name = topic["spec"]["topicName"].as_str().unwrap().to_owned();
        let retention = topic["spec"]["config"]["retention.ms"].as_str().unwrap();
        if name.ends_with(".dlt") {
            assert_eq!(retention, "-1", "dead letters are kept until replayed");
        } else {
            assert_eq!(retention, "259200000", "3 days");
        }
        let object = topic["metadata"]["name"].as_str().unwrap();
        assert!(
            object.len() <= 253 && object.starts_with("shop-strimzi-shop."),
            "{object}"
        );
        seen.push(name);
    }
    seen.sort();
    let mut wanted = wanted;
    wanted.sort();
    assert_eq!(seen, wanted);
    assert!(
        children.iter().all(|c| c["kind"] != "StatefulSet"
            || c["metadata"]["name"].as_str().unwrap().ends_with("-db")),
        "only the databases are run"
    );
}

/// An RFC 1123 subdomain as Kubernetes checks object names (`IsDNS1123Subdomain`: at
/// most 253 characters, dot-separated runs of lower-case letters, digits and `-` that
/// start and end with a letter or digit).
fn dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Whatever the prefix (it may hold capitals, `_` and runs of dots), the KafkaTopics'
/// names are valid, and two systems never name two different topics alike.
#[test]
fn kafka_topic_names_are_valid_and_unique_for_any_prefix() {
    use sales_operator::children::names::Names;
    let mut seen = std::collections::BTreeMap::new();
    for (instance, prefix) in [
        ("shop", ""),
        ("shop", "x-"),
        ("shop-x", ""),
        ("shop", "A_."),
        ("shop", "a.."),
        ("shop", "-._-"),
        ("shop", "Shop_.X..y-."),
        ("shop", &"p".repeat(64)),
        ("a23456789012345678901234567890", &"q.".repeat(32)),
    ] {
        let names = Names::new(instance, "sales");
        for topic in Topology::new(prefix).kafka_topics() {
            let object = names.kafka_topic(&topic);
            assert!(
                dns_subdomain(&object),
                "{instance} {prefix:?} {topic}: {object}"
            );
            if let Some(other) = seen.insert(object.clone(), (instance, topic.clone())) {
                assert_eq!(other, (instance, topic.clone()), "{object} twice");
            }
        }
    }
}
