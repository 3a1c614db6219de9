//! `messaging.kafka.strimzi.create`: the `Kafka` and `KafkaNodePool` the operator has
//! Strimzi run, valid against Strimzi 1.2.0's own CRDs, with the services, topics and
//! user on them; their ownership by `deletionPolicy`; and the CRD's (and `render`'s)
//! refusals of changes Strimzi cannot make. The reconcile: `strimzi_lifecycle.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use sales_operator::children::env::plain_settings;
use sales_operator::children::{desired, names_of};
use sales_operator::crd::{DeletionPolicy, SalesSystem, StrimziAuthentication};
use sales_operator::render;
use serde_json::{Value, json};

const EXAMPLE: &str = "examples/salessystem-strimzi-create.yaml";
const NAME: &str = "shop-made";
const NS: &str = "sales";
const KAFKA_CRD: &str = "testdata/schemas/kafka.strimzi.io_kafkas.yaml";
const NODE_POOL_CRD: &str = "testdata/schemas/kafka.strimzi.io_kafkanodepools.yaml";

fn example() -> SalesSystem {
    let text = std::fs::read_to_string(common::workspace().join(EXAMPLE)).unwrap();
    render::parse(&text).unwrap()
}

/// The children of `system` of one kind, as JSON.
fn of_kind(system: &SalesSystem, kind: &str) -> Vec<Value> {
    desired(system)
        .unwrap()
        .iter()
        .map(|c| serde_json::to_value(&c.object).unwrap())
        .filter(|c| c["kind"] == kind)
        .collect()
}

/// `objects` against Strimzi's Kafka and KafkaNodePool CRDs: every object of either
/// kind checked, and none refused.
fn assert_strimzi_accepts(objects: &[Value], name: &str) {
    let dir = common::scratch_dir(name);
    let file = dir.join("strimzi.yaml");
    std::fs::write(&file, sales_operator::yaml::documents(objects)).unwrap();
    let files: Vec<PathBuf> = vec![file];
    let mut checked = 0;
    for crd in [KAFKA_CRD, NODE_POOL_CRD] {
        let results =
            common::validate_custom_resources(None, &common::workspace().join(crd), &files);
        for (file, errors) in &results {
            assert!(errors.is_empty(), "{crd}: {file}: {errors:?}");
        }
        checked += results.len();
    }
    assert_eq!(checked, objects.len(), "every object was checked");
}

#[test]
fn render_prints_a_kafka_and_node_pool_that_strimzis_crds_accept() {
    let file = common::workspace().join(EXAMPLE);
    let yaml = common::operator(&["render", "-f", &file.display().to_string()]);
    let objects: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&yaml)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .filter(|v: &Value| v["kind"] == "Kafka" || v["kind"] == "KafkaNodePool")
        .collect();
    assert_eq!(objects.len(), 2, "{objects:#?}");
    assert_strimzi_accepts(&objects, "strimzi-create-render");

    let kafka = &objects[0];
    assert_eq!(kafka["apiVersion"], "kafka.strimzi.io/v1");
    assert_eq!(kafka["metadata"]["name"], "shop-events");
    assert_eq!(kafka["metadata"]["namespace"], NS);
    let spec = &kafka["spec"]["kafka"];
    assert_eq!(
        spec["listeners"],
        json!([{"name": "scram", "port": 9094, "type": "internal", "tls": false,
                "authentication": {"type": "scram-sha-512"}}]),
        "the services' listener only: no way in without SCRAM"
    );
    assert_eq!(spec["authorization"], json!({"type": "simple"}));
    assert!(spec.get("version").is_none(), "Strimzi's default version");
    let config = &spec["config"];
    assert_eq!(config["default.replication.factor"], 3);
    assert_eq!(config["min.insync.replicas"], 2);
    assert_eq!(config["offsets.topic.replication.factor"], 3);
    assert_eq!(config["transaction.state.log.replication.factor"], 3);
    assert_eq!(config["transaction.state.log.min.isr"], 2);
    assert_eq!(config["auto.create.topics.enable"], false);
    assert_eq!(
        kafka["spec"]["entityOperator"],
        json!({"topicOperator": {}, "userOperator": {}})
    );

    let pool = &objects[1];
    assert_eq!(pool["metadata"]["name"], "shop-events-dual");
    assert_eq!(
        pool["metadata"]["labels"]["strimzi.io/cluster"],
        "shop-events"
    );
    assert_eq!(pool["spec"]["replicas"], 3);
    assert_eq!(pool["spec"]["roles"], json!(["controller", "broker"]));
    assert_eq!(
        pool["spec"]["storage"],
        json!({"type": "jbod", "volumes": [{"id": 0, "type": "persistent-claim",
               "size": "20Gi", "deleteClaim": false, "kraftMetadata": "shared"}]}),
        "Retain (the default): Strimzi keeps the claims"
    );
    assert_eq!(pool["spec"]["resources"]["limits"]["memory"], "2Gi");
    for object in &objects {
        assert_eq!(
            object["metadata"]["labels"]["app.kubernetes.io/instance"],
            NAME
        );
    }
}

/// The services, their topics and their user are on the Kafka the operator creates.
#[test]
fn the_services_topics_and_user_are_on_the_created_kafka() {
    let system = example();
    let names = names_of(&system);
    let settings = plain_settings(
        &names,
        &system.spec,
        sales_operator::catalogue::AppService::Order,
    );
    assert_eq!(
        settings.get("KAFKA_BOOTSTRAP_SERVERS").map(String::as_str),
        Some("shop-events-kafka-bootstrap.sales.svc:9094")
    );
    assert_eq!(
        settings.get("KAFKA_SASL_USERNAME").map(String::as_str),
        Some("shop-made-services")
    );
    let topics = of_kind(&system, "KafkaTopic");
    assert!(!topics.is_empty());
    for topic in &topics {
        assert_eq!(
            topic["metadata"]["labels"]["strimzi.io/cluster"],
            "shop-events"
        );
        assert!(
            topic["spec"].get("replicas").is_none(),
            "the Kafka's default.replication.factor"
        );
    }
    let users = of_kind(&system, "KafkaUser");
    assert_eq!(
        users[0]["metadata"]["labels"]["strimzi.io/cluster"],
        "shop-events"
    );
    // Applied in that order: the Kafka before its node pool, both before the topics.
    let kinds: Vec<String> = desired(&system)
        .unwrap()
        .iter()
        .map(|c| c.kind().to_owned())
        .filter(|k| k.starts_with("Kafka"))
        .collect();
    assert_eq!(&kinds[..3], ["Kafka", "KafkaNodePool", "KafkaTopic"]);
}

/// One node without authentication, a storage class and a Kafka version, under
/// `Delete`: a `plain` listener, replication of one, `deleteClaim: true`, and both
/// objects owned by the SalesSystem; under `Retain`, neither is owned.
#[test]
fn a_single_plain_node_under_delete_is_owned_and_deletes_its_claims() {
    let mut system = example();
    system.metadata.uid = Some("uid-made".into());
    let mut kafka = system.spec.messaging.kafka.clone().unwrap();
    let strimzi = kafka.strimzi.as_mut().unwrap();
    strimzi.authentication = StrimziAuthentication::None;
    let create = strimzi.create.as_mut().unwrap();
    create.replicas = 1;
    create.storage.storage_class_name = Some("fast".into());
    create.version = Some("4.1.1".into());
    create.metadata_version = Some("4.1-IV1".into());
    kafka.topic_prefix = String::new();
    system.spec.messaging.kafka = Some(kafka);
    system.spec.deletion_policy = DeletionPolicy::Delete;

    let objects = [of_kind(&system, "Kafka"), of_kind(&system, "KafkaNodePool")].concat();
    assert_eq!(objects.len(), 2);
    assert_strimzi_accepts(&objects, "strimzi-create-plain");
    let (kafka, pool) = (&objects[0], &objects[1]);
    assert_eq!(
        kafka["spec"]["kafka"]["listeners"],
        json!([{"name": "plain", "port": 9092, "type": "internal", "tls": false}])
    );
    assert!(kafka["spec"]["kafka"].get("authorization").is_none());
    assert_eq!(kafka["spec"]["kafka"]["version"], "4.1.1");
    assert_eq!(kafka["spec"]["kafka"]["metadataVersion"], "4.1-IV1");
    let config = &kafka["spec"]["kafka"]["config"];
    assert_eq!(
        (
            &config["default.replication.factor"],
            &config["min.insync.replicas"]
        ),
        (&json!(1), &json!(1))
    );
    let volume = &pool["spec"]["storage"]["volumes"][0];
    assert_eq!(volume["deleteClaim"], true);
    assert_eq!(volume["class"], "fast");
    assert!(of_kind(&system, "KafkaUser").is_empty());
    for object in &objects {
        let owners = object["metadata"]["ownerReferences"].as_array().unwrap();
        assert_eq!(owners.len(), 1, "{object}");
        assert_eq!(owners[0]["uid"], "uid-made");
    }

    system.spec.deletion_policy = DeletionPolicy::Retain;
    for object in [of_kind(&system, "Kafka"), of_kind(&system, "KafkaNodePool")].concat() {
        assert!(
            object["metadata"].get("ownerReferences").is_none(),
            "{object}"
        );
    }
    let pool = &of_kind(&system, "KafkaNodePool")[0];
    assert_eq!(pool["spec"]["storage"]["volumes"][0]["deleteClaim"], false);
}

/// An update: its name, the edit of the example, and the refusal's message (`None`:
/// accepted).
type UpdateCase = (&'static str, fn(&mut Value), Option<&'static str>);

/// Updates Strimzi cannot follow are refused, by `render --old`'s admission and by
/// the CRD's transition rules as the API server runs them; other updates are not.
#[test]
fn changing_create_its_name_or_its_nodes_is_refused_on_update() {
    let old_path = common::workspace().join(EXAMPLE);
    let old_text = std::fs::read_to_string(&old_path).unwrap();
    let base: Value = serde_yaml_ng::from_str(&old_text).unwrap();
    let dir = common::scratch_dir("strimzi-create-updates");
    let cases: [UpdateCase; 5] = [
        (
            "removed",
            |v| {
                v["spec"]["messaging"]["kafka"]["strimzi"]
                    .as_object_mut()
                    .unwrap()
                    .remove("create");
            },
            Some("messaging.kafka.strimzi.create cannot be added or removed"),
        ),
        (
            "renamed",
            |v| v["spec"]["messaging"]["kafka"]["strimzi"]["clusterName"] = "other".into(),
            Some("messaging.kafka.strimzi.clusterName cannot change with create"),
        ),
        (
            "resized",
            |v| v["spec"]["messaging"]["kafka"]["strimzi"]["create"]["replicas"] = 5.into(),
            Some("messaging.kafka.strimzi.create.replicas cannot change"),
        ),
        (
            "grown",
            |v| {
                v["spec"]["messaging"]["kafka"]["strimzi"]["create"]["storage"]["size"] =
                    "50Gi".into();
                v["spec"]["messaging"]["kafka"]["partitions"] = 12.into();
            },
            None,
        ),
        (
            "left-alone",
            |v| v["spec"]["deletionPolicy"] = "Delete".into(),
            None,
        ),
    ];
    let mut files = Vec::new();
    for (name, edit, refused) in &cases {
        let mut value = base.clone();
        edit(&mut value);
        let text = serde_json::to_string(&value).unwrap();
        render::parse(&text).expect("valid as a new SalesSystem");
        let update = render::parse_update(&text, &old_text);
        match refused {
            Some(message) => {
                let err = format!("{:#}", update.unwrap_err());
                assert!(err.contains(message), "{name}: {err}");
            }
            None => {
                update.unwrap_or_else(|e| panic!("{name}: {e:#}"));
            }
        }
        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(&file, text).unwrap();
        files.push(file);
    }
    // The reverse: create added to a system that named an existing Kafka.
    let mut named = base.clone();
    (cases[0].1)(&mut named);
    let named_text = serde_json::to_string(&named).unwrap();
    let err = format!(
        "{:#}",
        render::parse_update(&old_text, &named_text).unwrap_err()
    );
    assert!(err.contains("cannot be added or removed"), "{err}");

    let crd = common::workspace().join("operator/crd/salessystem.yaml");
    let results = common::validate_custom_resources(Some(&old_path), &crd, &files);
    assert_eq!(results.len(), cases.len());
    for ((_, errors), (name, _, refused)) in results.iter().zip(&cases) {
        match refused {
            Some(message) => assert!(
                errors.iter().any(|e| e.contains(message)),
                "{name}: {errors:?}"
            ),
            None => assert!(errors.is_empty(), "{name}: {errors:?}"),
        }
    }
}
