//! The reconcile of a SalesSystem on Strimzi, on the fake API server: a Kafka the
//! operator creates (applied before its topics, `BrokerReady` once Strimzi calls it
//! ready), one it names (`BrokerReady` says when it is missing), Strimzi not installed
//! (`ProvidersAvailable` names the kinds, the rest is applied), and `deletionPolicy`
//! on deletion: `Delete` lets the Kafka go with the system, `Retain` keeps it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod fake_api;

use std::sync::Arc;

use fake_api::{FakeApi, KAFKA_TOPICS};
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use sales_operator::children::strimzi_cluster::kafka_resource;
use sales_operator::crd::{DeletionPolicy, FINALIZER, SalesSystem};
use sales_operator::reconcile::{Context, reconcile};
use serde_json::{Value, json};

const EXAMPLE: &str = "examples/salessystem-strimzi-create.yaml";
const NAME: &str = "shop-made";
const NS: &str = "sales";
const KAFKAS: (&str, &str, &str, &str, bool) = ("kafka.strimzi.io", "v1", "kafkas", "Kafka", true);
const NODE_POOLS: (&str, &str, &str, &str, bool) = (
    "kafka.strimzi.io",
    "v1",
    "kafkanodepools",
    "KafkaNodePool",
    true,
);
const KAFKA_USERS: (&str, &str, &str, &str, bool) =
    ("kafka.strimzi.io", "v1", "kafkausers", "KafkaUser", true);

fn example(file: &str) -> SalesSystem {
    let text = std::fs::read_to_string(common::workspace().join(file)).unwrap();
    sales_operator::render::parse(&text).unwrap()
}

/// Seed `system` (with its finalizer) and return a client of the server.
fn seeded(api: &FakeApi, mut system: SalesSystem) -> Client {
    system.metadata.finalizers = Some(vec![FINALIZER.into()]);
    api.seed("salessystems", serde_json::to_value(&system).unwrap());
    api.client()
}

async fn reconciled(ctx: &Arc<Context>, client: &Client) -> SalesSystem {
    reconciled_named(ctx, client, NAME).await
}

async fn reconciled_named(ctx: &Arc<Context>, client: &Client, name: &str) -> SalesSystem {
    let api = Api::<SalesSystem>::namespaced(client.clone(), NS);
    let system = api.get(name).await.unwrap();
    reconcile(Arc::new(system), ctx.clone())
        .await
        .expect("the reconcile succeeds");
    api.get(name).await.unwrap()
}

/// `(status, reason, message)` of a condition.
fn condition(system: &SalesSystem, kind: &str) -> (String, String, String) {
    let c = system
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == kind))
        .unwrap_or_else(|| panic!("condition {kind}"));
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

fn install_strimzi(api: &FakeApi) {
    for kind in [KAFKAS, NODE_POOLS, KAFKA_TOPICS, KAFKA_USERS] {
        api.install(kind);
    }
}

/// Strimzi installed: the Kafka and its node pool are applied (before the topics),
/// `BrokerReady` waits for Strimzi's `Ready` of the Kafka's current generation.
#[tokio::test]
async fn the_reconcile_creates_the_kafka_and_waits_for_strimzi_to_call_it_ready() {
    let api = FakeApi::new();
    install_strimzi(&api);
    let client = seeded(&api, example(EXAMPLE));
    let ctx = common::context(&client);

    let shop = reconciled(&ctx, &client).await;
    let kafkas = api.objects("kafkas", NS);
    let pools = api.objects("kafkanodepools", NS);
    assert_eq!(kafkas.len(), 1);
    assert_eq!(pools.len(), 1);
    assert_eq!(pools[0]["metadata"]["name"], "shop-events-dual");
    assert_eq!(api.objects("kafkausers", NS).len(), 1);
    assert!(!api.objects("kafkatopics", NS).is_empty());
    let requests = api.requests();
    let first = |plural: &str| {
        requests
            .iter()
            .position(|r| r.starts_with("PATCH") && r.contains(&format!("/{plural}/")))
            .unwrap()
    };
    assert!(first("kafkas") < first("kafkanodepools"));
    assert!(first("kafkanodepools") < first("kafkatopics"));
    let (status, reason, _) = condition(&shop, "ProvidersAvailable");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Installed"));
    let (ready, _, message) = condition(&shop, "BrokerReady");
    assert_eq!(ready, "False");
    assert!(message.contains("Kafka shop-events"), "{message}");

    // Strimzi reports the Kafka ready for its current spec.
    let kafkas_api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NS, &kafka_resource());
    let generation = kafkas[0]["metadata"]["generation"].as_i64().unwrap_or(1);
    kafkas_api
        .patch_status(
            "shop-events",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"observedGeneration": generation,
                "conditions": [{"type": "Ready", "status": "True"}]}})),
        )
        .await
        .unwrap();
    let shop = reconciled(&ctx, &client).await;
    let (ready, reason, message) = condition(&shop, "BrokerReady");
    assert_eq!((ready.as_str(), reason.as_str()), ("True", "Running"));
    assert_eq!(message, "Kafka shop-events is ready");
}

/// A Kafka the system names (not created): `BrokerReady` says so while it is missing,
/// and follows its `Ready` once it exists; the operator creates neither it nor a
/// node pool.
#[tokio::test]
async fn a_named_kafka_is_looked_for_and_its_readiness_followed() {
    let api = FakeApi::new();
    install_strimzi(&api);
    let client = seeded(&api, example("examples/salessystem-strimzi.yaml"));
    let ctx = common::context(&client);
    let shop = reconciled_named(&ctx, &client, "shop-strimzi").await;
    let (ready, reason, message) = condition(&shop, "BrokerReady");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "KafkaNotFound")
    );
    assert!(
        message.contains("Kafka events not found in namespace sales"),
        "{message}"
    );
    assert!(api.objects("kafkas", NS).is_empty());
    assert!(api.objects("kafkanodepools", NS).is_empty());

    api.seed(
        "kafkas",
        json!({"apiVersion": "kafka.strimzi.io/v1", "kind": "Kafka",
               "metadata": {"name": "events", "namespace": NS},
               "spec": {"kafka": {"listeners": []}},
               "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    );
    let shop = reconciled_named(&ctx, &client, "shop-strimzi").await;
    let (ready, reason, _) = condition(&shop, "BrokerReady");
    assert_eq!((ready.as_str(), reason.as_str()), ("True", "Running"));
}

/// Without Strimzi's CRDs every other child is applied, `ProvidersAvailable` names
/// every Strimzi kind missing (the Kafka's and node pool's first), and `BrokerReady`
/// says Strimzi is not installed; installed, the Kafka is created.
#[tokio::test]
async fn without_strimzi_the_rest_is_applied_and_the_status_names_the_kinds() {
    let api = FakeApi::new();
    let client = seeded(&api, example(EXAMPLE));
    let ctx = common::context(&client);

    let shop = reconciled(&ctx, &client).await;
    assert!(api.objects("deployments", NS).len() >= 8, "the services");
    let (status, reason, message) = condition(&shop, "ProvidersAvailable");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "StrimziNotInstalled")
    );
    for kind in ["Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"] {
        assert!(
            message.contains(&format!("kafka.strimzi.io/v1 {kind},"))
                || message.contains(&format!("kafka.strimzi.io/v1 {kind}:")),
            "{kind}: {message}"
        );
    }
    assert!(
        message.contains("their Kafka, topics and account"),
        "{message}"
    );
    let (ready, reason, _) = condition(&shop, "BrokerReady");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "StrimziNotInstalled")
    );
    assert_eq!(condition(&shop, "Degraded").0, "False");

    install_strimzi(&api);
    let shop = reconciled(&ctx, &client).await;
    assert_eq!(api.objects("kafkas", NS).len(), 1);
    assert_eq!(api.objects("kafkanodepools", NS).len(), 1);
    assert_eq!(condition(&shop, "ProvidersAvailable").0, "True");
}

/// Delete the SalesSystem, then run the reconcile its watch event would (the
/// finalizer's cleanup); the server collects what it owned.
async fn delete_and_clean_up(client: &Client) {
    let systems = Api::<SalesSystem>::namespaced(client.clone(), NS);
    systems
        .delete(NAME, &DeleteParams::background())
        .await
        .unwrap();
    let terminating = systems.get(NAME).await.unwrap();
    reconcile(Arc::new(terminating), common::context(client))
        .await
        .expect("cleanup");
    assert!(systems.get_opt(NAME).await.unwrap().is_none());
}

fn owners(object: &Value) -> usize {
    object["metadata"]["ownerReferences"]
        .as_array()
        .map_or(0, Vec::len)
}

/// `Delete`: the Kafka and its node pool are owned, and go with the SalesSystem
/// (Strimzi then deletes the claims it made with `deleteClaim: true`).
#[tokio::test]
async fn under_delete_the_kafka_goes_with_the_system() {
    let api = FakeApi::new();
    install_strimzi(&api);
    let mut system = example(EXAMPLE);
    system.spec.deletion_policy = DeletionPolicy::Delete;
    let client = seeded(&api, system);
    reconciled(&common::context(&client), &client).await;
    let kafkas = api.objects("kafkas", NS);
    assert_eq!(owners(&kafkas[0]), 1);
    assert_eq!(owners(&api.objects("kafkanodepools", NS)[0]), 1);

    delete_and_clean_up(&client).await;
    assert!(api.objects("kafkas", NS).is_empty());
    assert!(api.objects("kafkanodepools", NS).is_empty());
}

/// `Retain`: the Kafka and its node pool are not owned and stay; one owned from an
/// earlier `Delete` is let go by the cleanup before garbage collection could take it.
#[tokio::test]
async fn under_retain_the_kafka_stays_even_when_once_owned() {
    let api = FakeApi::new();
    install_strimzi(&api);
    let client = seeded(&api, example(EXAMPLE));
    reconciled(&common::context(&client), &client).await;
    assert_eq!(owners(&api.objects("kafkas", NS)[0]), 0);
    assert_eq!(owners(&api.objects("kafkanodepools", NS)[0]), 0);

    // Owned once (`Delete`), then `Retain` set: the SalesSystem is deleted before a
    // reconcile could apply the Kafka without its owner reference.
    let systems = Api::<SalesSystem>::namespaced(client.clone(), NS);
    let patch = |policy: &str| Patch::Merge(json!({"spec": {"deletionPolicy": policy}}));
    systems
        .patch(NAME, &PatchParams::default(), &patch("Delete"))
        .await
        .unwrap();
    reconciled(&common::context(&client), &client).await;
    assert_eq!(owners(&api.objects("kafkas", NS)[0]), 1);
    systems
        .patch(NAME, &PatchParams::default(), &patch("Retain"))
        .await
        .unwrap();
    delete_and_clean_up(&client).await;
    let kafkas = api.objects("kafkas", NS);
    let pools = api.objects("kafkanodepools", NS);
    assert_eq!((kafkas.len(), pools.len()), (1, 1), "Retain keeps both");
    assert_eq!(owners(&kafkas[0]) + owners(&pools[0]), 0);
    assert!(api.objects("deployments", NS).is_empty(), "the rest went");
}
