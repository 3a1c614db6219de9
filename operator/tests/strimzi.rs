//! A SalesSystem on Strimzi with `authentication: scram-sha-512`: the services'
//! `KafkaUser` (valid against Strimzi's own CRD, its ACLs limited to the system's
//! prefix), the services' SCRAM settings with the password from the Secret Strimzi
//! writes, and the reconcile when the cluster does not serve KafkaUser.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod fake_api;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use fake_api::{FakeApi, KAFKA_TOPICS};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams};
use sales_operator::children::env::{plain_settings, secret_env};
use sales_operator::children::{desired, names_of};
use sales_operator::crd::{FINALIZER, SalesSystem};
use sales_operator::metrics::Metrics;
use sales_operator::reconcile::{Context, reconcile};
use serde_json::Value;

const EXAMPLE: &str = "salessystem-strimzi-scram.yaml";
const KAFKA_USER_CRD: &str = "testdata/schemas/kafka.strimzi.io_kafkausers.yaml";
const KAFKA_USERS: (&str, &str, &str, &str, bool) =
    ("kafka.strimzi.io", "v1", "kafkausers", "KafkaUser", true);

fn example(file: &str) -> SalesSystem {
    let path = common::workspace().join("examples").join(file);
    sales_operator::render::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn kafka_users(system: &SalesSystem) -> Vec<Value> {
    desired(system)
        .unwrap()
        .iter()
        .map(|c| serde_json::to_value(&c.object).unwrap())
        .filter(|c| c["kind"] == "KafkaUser")
        .collect()
}

#[test]
fn scram_gets_one_kafka_user_with_acls_on_the_prefix_only() {
    let users = kafka_users(&example(EXAMPLE));
    assert_eq!(users.len(), 1, "{users:#?}");
    let user = &users[0];
    assert_eq!(user["apiVersion"], "kafka.strimzi.io/v1");
    assert_eq!(user["metadata"]["name"], "shop-scram-services");
    assert_eq!(user["metadata"]["namespace"], "sales");
    assert_eq!(user["metadata"]["labels"]["strimzi.io/cluster"], "events");
    assert_eq!(user["spec"]["authentication"]["type"], "scram-sha-512");
    assert_eq!(user["spec"]["authorization"]["type"], "simple");
    let acls = user["spec"]["authorization"]["acls"].as_array().unwrap();
    let mut granted = Vec::new();
    for acl in acls {
        assert_eq!(acl["type"], "allow");
        let resource = &acl["resource"];
        assert_eq!(
            (&resource["name"], &resource["patternType"]),
            (&"shop-scram.".into(), &"prefix".into()),
            "only what lies under the prefix: {acl}"
        );
        for op in acl["operations"].as_array().unwrap() {
            granted.push(format!(
                "{}:{}",
                resource["type"].as_str().unwrap(),
                op.as_str().unwrap()
            ));
        }
    }
    granted.sort();
    // Strimzi's Topic Operator creates the topics: no Create, no Delete, nothing on
    // the cluster (an idempotent producer needs only Write since Kafka 3.0).
    assert_eq!(
        granted,
        ["group:Read", "topic:Describe", "topic:Read", "topic:Write"]
    );
    // Every topic and consumer group of the system is under the prefix.
    let topology = sales_contracts::topology::Topology::new("shop-scram.");
    assert!(
        topology
            .kafka_topics()
            .iter()
            .all(|t| t.starts_with("shop-scram."))
    );
}

#[test]
fn without_authentication_no_kafka_user_is_made() {
    assert!(kafka_users(&example("salessystem-strimzi.yaml")).is_empty());
    assert!(kafka_users(&example("salessystem-kafka.yaml")).is_empty());
}

#[test]
fn the_services_log_in_with_scram_and_the_password_strimzi_writes() {
    let system = example(EXAMPLE);
    let names = names_of(&system);
    for service in sales_operator::catalogue::AppService::ALL {
        if !service.uses_broker() {
            continue;
        }
        let plain = plain_settings(&names, &system.spec, service);
        let get = |k: &str| plain.get(k).map(String::as_str);
        assert_eq!(
            get("KAFKA_BOOTSTRAP_SERVERS"),
            Some("events-kafka-bootstrap.sales.svc:9094")
        );
        assert_eq!(get("KAFKA_SECURITY_PROTOCOL"), Some("sasl_plaintext"));
        assert_eq!(get("KAFKA_SASL_MECHANISM"), Some("SCRAM-SHA-512"));
        assert_eq!(get("KAFKA_SASL_USERNAME"), Some("shop-scram-services"));
        assert_eq!(get("KAFKA_CREATE_TOPICS"), Some("false"));
        let secrets = secret_env(&names, &system.spec, service);
        let password: Vec<_> = secrets
            .iter()
            .filter(|e| e.name.starts_with("KAFKA_"))
            .collect();
        assert_eq!(password.len(), 1, "{password:#?}");
        assert_eq!(password[0].name, "KAFKA_SASL_PASSWORD");
        let from = password[0]
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .unwrap();
        assert_eq!(
            (from.name.as_str(), from.key.as_str()),
            ("shop-scram-services", "password")
        );
    }
    // Strimzi writes that Secret: it is not one the user must provide first.
    assert!(
        sales_operator::children::env::referenced_secrets(&system.spec)
            .iter()
            .all(|(name, _)| name != "shop-scram-services")
    );
}

#[test]
fn render_prints_a_kafka_user_that_strimzis_crd_accepts() {
    let file = common::workspace().join("examples").join(EXAMPLE);
    let yaml = common::operator(&["render", "-f", &file.display().to_string()]);
    let users: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&yaml)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .filter(|v: &Value| v["kind"] == "KafkaUser")
        .collect();
    assert_eq!(users.len(), 1);
    let dir = common::scratch_dir("strimzi");
    let out = dir.join("kafkausers.yaml");
    std::fs::write(&out, sales_operator::yaml::documents(&users)).unwrap();
    let output = Command::new(common::python())
        .arg(common::tool_script("validate_custom_resources.py"))
        .arg(common::workspace().join(KAFKA_USER_CRD))
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "one KafkaUser checked: {lines:?}");
    assert_eq!(lines[0]["errors"], serde_json::json!([]), "{lines:?}");
}

#[test]
fn scram_without_a_topic_prefix_is_refused_by_the_crd() {
    let crd = common::workspace().join("operator/crd/salessystem.yaml");
    let dir = common::scratch_dir("strimzi-invalid");
    let text = std::fs::read_to_string(common::workspace().join("examples").join(EXAMPLE))
        .unwrap()
        .replace("      topicPrefix: shop-scram.\n", "");
    let file = dir.join("no-prefix.yaml");
    std::fs::write(&file, text).unwrap();
    let output = Command::new(common::python())
        .arg(common::tool_script("validate_custom_resources.py"))
        .arg(crd)
        .arg(Path::new(&file))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("scram-sha-512 needs a topicPrefix"),
        "{stdout}"
    );
}

fn context(client: &kube::Client) -> Arc<Context> {
    let recorder = sales_operator::events::Recorder::new(
        client.clone(),
        sales_operator::events::Reporter {
            controller: sales_operator::children::names::MANAGER.into(),
            instance: Some("test".into()),
        },
    );
    Arc::new(Context::new(
        client.clone(),
        recorder,
        Arc::new(Metrics::new()),
    ))
}

/// Strimzi's KafkaTopic is served but not KafkaUser: the reconcile applies every
/// other child and succeeds, `ProvidersAvailable` says which kind is missing
/// (`StrimziNotInstalled`), and the KafkaUser is applied once it is served. It never
/// waits for the Secret Strimzi writes.
#[tokio::test]
async fn a_missing_kafka_user_kind_is_reported_and_everything_else_applied() {
    let api = FakeApi::new();
    api.install(KAFKA_TOPICS);
    let mut system = example(EXAMPLE);
    system.metadata.finalizers = Some(vec![FINALIZER.into()]);
    api.seed("salessystems", serde_json::to_value(&system).unwrap());
    let client = api.client();
    let ctx = context(&client);
    let get = || async {
        Arc::new(
            Api::<SalesSystem>::namespaced(client.clone(), "sales")
                .get("shop-scram")
                .await
                .unwrap(),
        )
    };
    let providers = |shop: &SalesSystem| {
        shop.status
            .as_ref()
            .and_then(|s| {
                s.conditions
                    .iter()
                    .find(|c| c.type_ == "ProvidersAvailable")
            })
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
            .expect("ProvidersAvailable")
    };

    reconcile(get().await, ctx.clone())
        .await
        .expect("a provider not installed is a condition, not a failed reconcile");
    let deployments = Api::<Deployment>::namespaced(client.clone(), "sales")
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(deployments.items.len() >= 8, "the services are applied");
    assert_eq!(
        api.objects("kafkatopics", "sales").len(),
        sales_contracts::topology::Topology::default()
            .kafka_topics()
            .len()
    );
    let (status, reason, message) = providers(&*get().await);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "StrimziNotInstalled")
    );
    assert!(
        message.contains("kafka.strimzi.io/v1 KafkaUser") && !message.contains("KafkaTopic,"),
        "{message}"
    );

    // Strimzi's User Operator CRD arrives (the discovery cache is 30 s: forget it).
    api.install(KAFKA_USERS);
    ctx.kinds
        .forget(&sales_operator::children::kafka_users::kafka_user_resource())
        .await;
    reconcile(get().await, ctx.clone())
        .await
        .expect("everything applies, the password Secret not yet written");
    let users = api.objects("kafkausers", "sales");
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["metadata"]["name"], "shop-scram-services");
    let (status, reason, _) = providers(&*get().await);
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Installed"));
}
