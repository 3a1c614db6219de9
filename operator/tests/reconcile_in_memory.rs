//! The reconcile against an in-memory API server (`kube-fake-client`): a new
//! SalesSystem yields every child, a changed spec changes them, a deleted or edited
//! child is put back, status and conditions follow the workloads, and deletion runs
//! the finalizer with the deletion policy.
//!
//! The fake client has no watches and deletes at once (no `deletionTimestamp`), so
//! these tests call `reconcile` directly and put a SalesSystem that is being deleted
//! into the store as such; the watch loop itself is tested against kmock in
//! `controller_smoke.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Client, CustomResource, Resource, ResourceExt};
use kube_fake_client::ClientBuilder;
use sales_operator::children::names::{ANNOTATION_IDENTITY_HASH, MANAGER};
use sales_operator::children::{self, secrets};
use sales_operator::crd::{DeletionPolicy, FINALIZER, PAUSED_ANNOTATION, SalesSystem};
use sales_operator::events::{Recorder, Reporter};
use sales_operator::metrics::Metrics;
use sales_operator::reconcile::{Context, reconcile};
use serde::{Deserialize, Serialize};
use serde_json::json;

const NS: &str = "sales";

/// The Prometheus Operator's kind, registered so the fake server serves it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default)]
#[kube(
    group = "monitoring.coreos.com",
    version = "v1",
    kind = "ServiceMonitor",
    namespaced,
    schema = "disabled"
)]
struct ServiceMonitorSpec {
    #[serde(flatten)]
    rest: serde_json::Value,
}

fn example(file: &str) -> SalesSystem {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(file);
    let mut system =
        sales_operator::render::parse(&std::fs::read_to_string(path).expect("example"))
            .expect("a SalesSystem");
    system.metadata.namespace = Some(NS.into());
    system.metadata.uid = Some(format!("uid-{}", system.name_any()));
    system.metadata.generation = Some(1);
    system.metadata.finalizers = Some(vec![FINALIZER.into()]);
    system
}

async fn server(objects: Vec<serde_json::Value>) -> Client {
    ClientBuilder::new()
        .with_resource::<SalesSystem>()
        .with_resource::<ServiceMonitor>()
        .with_status_subresource::<SalesSystem>()
        .with_runtime_objects(objects)
        .build()
        .await
        .expect("fake API server")
}

fn counter_random(prefix: &'static str) -> fn(usize) -> String {
    match prefix {
        "a" => |len| "a".repeat(len),
        _ => |len| "b".repeat(len),
    }
}

fn context(client: &Client, random: fn(usize) -> String) -> Arc<Context> {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: MANAGER.into(),
            instance: Some("test".into()),
        },
    );
    let mut ctx = Context::new(client.clone(), recorder, Arc::new(Metrics::new()));
    ctx.random = random;
    Arc::new(ctx)
}

async fn get(client: &Client, name: &str) -> SalesSystem {
    Api::<SalesSystem>::namespaced(client.clone(), NS)
        .get(name)
        .await
        .expect("the SalesSystem")
}

async fn reconcile_once(client: &Client, name: &str) -> Action {
    let system = get(client, name).await;
    reconcile(Arc::new(system), context(client, counter_random("a")))
        .await
        .expect("reconcile succeeds")
}

async fn names_of<K>(client: &Client) -> BTreeSet<String>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .iter()
        .map(|o| o.name_any())
        .collect()
}

/// What `children::desired` and the generated Secrets say should exist, by kind.
fn expected(system: &SalesSystem) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for child in children::desired(system).expect("children") {
        out.entry(child.kind().to_owned())
            .or_default()
            .insert(child.name());
    }
    let names = children::names_of(system);
    for s in secrets::generated(&names, &system.spec) {
        out.entry("Secret".into()).or_default().insert(s.name);
    }
    out
}

async fn actual(client: &Client) -> BTreeMap<String, BTreeSet<String>> {
    let monitors: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NS, &children::service_monitor_resource());
    let mut out = BTreeMap::from([
        ("ConfigMap".to_owned(), names_of::<ConfigMap>(client).await),
        (
            "Deployment".to_owned(),
            names_of::<Deployment>(client).await,
        ),
        ("Ingress".to_owned(), names_of::<Ingress>(client).await),
        (
            "NetworkPolicy".to_owned(),
            names_of::<NetworkPolicy>(client).await,
        ),
        (
            "PodDisruptionBudget".to_owned(),
            names_of::<PodDisruptionBudget>(client).await,
        ),
        ("Secret".to_owned(), names_of::<Secret>(client).await),
        ("Service".to_owned(), names_of::<Service>(client).await),
        (
            "StatefulSet".to_owned(),
            names_of::<StatefulSet>(client).await,
        ),
        (
            "ServiceMonitor".to_owned(),
            monitors
                .list(&ListParams::default())
                .await
                .expect("list")
                .items
                .iter()
                .map(|o| o.name_any())
                .collect(),
        ),
    ]);
    out.retain(|_, v| !v.is_empty());
    out
}

/// A Secret's values, from `data` and `stringData` (which the fake server keeps).
fn values(s: &Secret) -> BTreeMap<String, String> {
    s.data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .chain(s.string_data.clone().unwrap_or_default())
        .collect()
}

/// The identity digest on the pods of each Deployment that has one (the services'; not
/// Redis), by Deployment name.
async fn identity_digests(client: &Client) -> BTreeMap<String, String> {
    Api::<Deployment>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|d| {
            let digest = d
                .spec
                .and_then(|s| s.template.metadata)
                .and_then(|m| m.annotations)
                .and_then(|a| a.get(ANNOTATION_IDENTITY_HASH).cloned())?;
            Some((d.metadata.name.unwrap_or_default(), digest))
        })
        .collect()
}

/// Which Deployments' identity digests differ between `a` and `b`.
fn rolled(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    a.iter()
        .filter(|(name, digest)| b.get(*name) != Some(digest))
        .map(|(name, _)| name.clone())
        .collect()
}

fn to_value(system: &SalesSystem) -> serde_json::Value {
    serde_json::to_value(system).expect("serializes")
}

#[tokio::test]
async fn a_new_salessystem_gets_its_finalizer_first() {
    let mut system = example("salessystem.yaml");
    // Another controller's finalizer: the fake server cannot `test` an absent
    // `/metadata/finalizers` (a real one can; kmock covers that path in the smoke test).
    system.metadata.finalizers = Some(vec!["example.com/other".into()]);
    let client = server(vec![to_value(&system)]).await;
    let action = reconcile_once(&client, "shop").await;
    assert_eq!(action, Action::await_change());
    assert_eq!(
        get(&client, "shop").await.finalizers(),
        ["example.com/other", FINALIZER]
    );
    assert!(names_of::<Deployment>(&client).await.is_empty());
}

#[tokio::test]
async fn a_new_salessystem_yields_every_child() {
    let system = example("salessystem.yaml");
    let client = server(vec![to_value(&system)]).await;
    reconcile_once(&client, "shop").await;

    let want = expected(&system);
    assert_eq!(actual(&client).await, want);
    let total: usize = want.values().map(BTreeSet::len).sum();
    // 80, and the budgets of the 7 databases, RabbitMQ and Redis.
    assert_eq!(total, 80 + 9, "every child of the full example");

    // Every child is controlled by the SalesSystem.
    let deployment = Api::<Deployment>::namespaced(client.clone(), NS)
        .get("shop-order")
        .await
        .expect("order Deployment");
    let owner = &deployment.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("SalesSystem", "uid-shop", Some(true))
    );
    let secret = Api::<Secret>::namespaced(client.clone(), NS)
        .get("shop-order-db")
        .await
        .expect("generated credentials");
    assert_eq!(secret.owner_references()[0].uid, "uid-shop");

    // Status: applied, not ready yet (nothing runs in a fake server).
    let status = get(&client, "shop").await.status.expect("status written");
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.phase.as_deref(), Some("Progressing"));
    let conditions: BTreeMap<_, _> = status
        .conditions
        .iter()
        .map(|c| (c.type_.as_str(), c.status.as_str()))
        .collect();
    assert_eq!(
        conditions,
        BTreeMap::from([
            ("BrokerReady", "False"),
            ("DatabasesReady", "False"),
            ("Degraded", "False"),
            ("MonitoringAvailable", "True"),
            ("Ready", "False"),
            ("ServicesReady", "False"),
        ])
    );
    assert_eq!(status.ready_services.as_deref(), Some("0/8"));
    assert_eq!(
        status.gateway_url.as_deref(),
        Some("https://shop.example.com")
    );
}

#[tokio::test]
async fn a_changed_spec_changes_the_children() {
    let system = example("salessystem.yaml");
    let external_order_db = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "orders-db", "namespace": NS},
        "stringData": {"url": "postgres://u:p@db.example.com/orders"},
    });
    let client = server(vec![to_value(&system), external_order_db]).await;
    reconcile_once(&client, "shop").await;
    assert!(
        names_of::<StatefulSet>(&client)
            .await
            .contains("shop-order-db")
    );

    let mut changed = get(&client, "shop").await;
    changed.spec.services.order.replicas = 3;
    changed.spec.gateway.ingress = None;
    changed.spec.observability.service_monitor.enabled = false;
    changed.spec.observability.log_level = "debug".into();
    changed.spec.postgres.services.order = Some(
        serde_json::from_value(json!({"external": {"secretName": "orders-db"}})).expect("override"),
    );
    let api = Api::<SalesSystem>::namespaced(client.clone(), NS);
    let stored = api
        .replace("shop", &PostParams::default(), &changed)
        .await
        .expect("spec updated");
    assert_eq!(stored.metadata.generation, Some(2));
    reconcile_once(&client, "shop").await;

    let mut want = expected(&get(&client, "shop").await);
    let mut have = actual(&client).await;
    // Secrets are never pruned: the user's and the old generated credentials stay.
    let secrets = have.remove("Secret").unwrap_or_default();
    let generated = want.remove("Secret").unwrap_or_default();
    assert!(secrets.is_superset(&generated));
    assert!(secrets.contains("orders-db") && secrets.contains("shop-order-db"));
    assert_eq!(have, want, "pruned to the new spec");
    assert!(
        !names_of::<StatefulSet>(&client)
            .await
            .contains("shop-order-db")
    );
    assert!(names_of::<Ingress>(&client).await.is_empty());

    let order = Api::<Deployment>::namespaced(client.clone(), NS)
        .get("shop-order")
        .await
        .expect("order");
    let spec = order.spec.expect("spec");
    assert_eq!(spec.replicas, Some(3));
    let container = &spec.template.spec.expect("pod").containers[0];
    let database = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "DATABASE_URL")
        .and_then(|e| e.value_from.clone())
        .and_then(|f| f.secret_key_ref)
        .expect("DATABASE_URL from a Secret");
    assert_eq!(
        (database.name.as_str(), database.key.as_str()),
        ("orders-db", "url")
    );
    let config = Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get("shop-order")
        .await
        .expect("config");
    assert_eq!(config.data.expect("data")["RUST_LOG"], "debug");
    assert_eq!(
        get(&client, "shop")
            .await
            .status
            .and_then(|s| s.observed_generation),
        Some(2)
    );
}

#[tokio::test]
async fn a_deleted_or_edited_child_is_put_back() {
    let system = example("salessystem.yaml");
    let client = server(vec![to_value(&system)]).await;
    reconcile_once(&client, "shop").await;

    let deployments = Api::<Deployment>::namespaced(client.clone(), NS);
    deployments
        .delete("shop-payment", &DeleteParams::default())
        .await
        .expect("delete a child");
    Api::<NetworkPolicy>::namespaced(client.clone(), NS)
        .delete("shop-order-db", &DeleteParams::default())
        .await
        .expect("delete a policy");
    deployments
        .patch(
            "shop-order",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 7}})),
        )
        .await
        .expect("edit a child");

    reconcile_once(&client, "shop").await;
    assert!(
        names_of::<Deployment>(&client)
            .await
            .contains("shop-payment")
    );
    assert!(
        names_of::<NetworkPolicy>(&client)
            .await
            .contains("shop-order-db")
    );
    let order = deployments.get("shop-order").await.expect("order");
    assert_eq!(
        order.spec.and_then(|s| s.replicas),
        Some(2),
        "back to the spec"
    );
}

#[tokio::test]
async fn generated_credentials_are_never_regenerated() {
    let system = example("salessystem.yaml");
    let client = server(vec![to_value(&system)]).await;
    reconcile(
        Arc::new(get(&client, "shop").await),
        context(&client, counter_random("a")),
    )
    .await
    .expect("first");
    let secrets = Api::<Secret>::namespaced(client.clone(), NS);
    let before = secrets.get("shop-auth").await.expect("auth secret");
    let identity_before = values(&secrets.get("shop-identity").await.expect("identity"));
    // A second reconcile with another random source (and new signing keys) changes
    // nothing.
    reconcile(
        Arc::new(get(&client, "shop").await),
        context(&client, counter_random("b")),
    )
    .await
    .expect("second");
    let after = secrets.get("shop-auth").await.expect("auth secret");
    assert_eq!(before.data, after.data);
    let v = values(&after);
    assert_eq!(v.keys().collect::<Vec<_>>(), ["admin-password"]);
    assert_eq!(v["admin-password"], "a".repeat(24));
    let identity = values(&secrets.get("shop-identity").await.expect("identity"));
    assert_eq!(identity, identity_before);
    assert_eq!(identity["client-secret-order"], "a".repeat(48));
    assert!(identity["token-signing-keys"].starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(identity["gateway-signing-keys"].starts_with("-----BEGIN PRIVATE KEY-----"));
    let db = values(&secrets.get("shop-order-db").await.expect("db secret"));
    assert_eq!(
        db["url"],
        format!(
            "postgres://sales:{}@shop-order-db:5432/orders",
            "a".repeat(32)
        )
    );
}

#[tokio::test]
async fn a_changed_identity_secret_rolls_the_pods_that_read_the_change() {
    let system = example("salessystem-autoscaling.yaml");
    let client = server(vec![to_value(&system)]).await;
    reconcile_once(&client, "shop-scaled").await;
    let secrets = Api::<Secret>::namespaced(client.clone(), NS);
    let first = identity_digests(&client).await;
    assert_eq!(first.len(), 11, "8 services and 3 autoscaled consumers");
    // Another reconcile of the same Secret changes no digest.
    reconcile_once(&client, "shop-scaled").await;
    assert_eq!(identity_digests(&client).await, first);

    // Key rotation, step 1: a new gateway key second. Only the gateway rolls.
    let old_key = values(&secrets.get("shop-scaled-identity").await.expect("identity"))
        ["gateway-signing-keys"]
        .clone();
    let new_key = sales_platform::identity::keys::generate_pem().expect("a key");
    let set = |key: &str, value: String| {
        let secrets = secrets.clone();
        let key = key.to_owned();
        async move {
            secrets
                .patch(
                    "shop-scaled-identity",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"stringData": {key: value}})),
                )
                .await
                .expect("edit the identity Secret");
        }
    };
    set("gateway-signing-keys", format!("{old_key}{new_key}")).await;
    reconcile_once(&client, "shop-scaled").await;
    let second = identity_digests(&client).await;
    assert_eq!(rolled(&first, &second), ["shop-scaled-gateway"]);

    // A client secret changed by hand: its service and the customer service (whose
    // `service-clients` the operator brings up to date) roll, the others do not.
    set("client-secret-inventory", "x".repeat(40)).await;
    reconcile_once(&client, "shop-scaled").await;
    let third = identity_digests(&client).await;
    assert_eq!(
        rolled(&second, &third),
        [
            "shop-scaled-customer",
            "shop-scaled-inventory",
            "shop-scaled-inventory-consumer"
        ]
    );
    let identity = values(&secrets.get("shop-scaled-identity").await.expect("identity"));
    assert!(
        identity["service-clients"].contains(&format!("inventory={},", "x".repeat(40))),
        "{}",
        identity["service-clients"]
    );
    assert_eq!(
        identity["gateway-signing-keys"],
        format!("{old_key}{new_key}")
    );
}

#[tokio::test]
async fn a_users_identity_secret_is_read_never_generated() {
    let mut system = example("salessystem-autoscaling.yaml");
    system.spec.auth.identity_secret = Some(sales_operator::crd::IdentitySecretRef {
        secret_name: "mine".into(),
    });
    let client = server(vec![to_value(&system)]).await;
    reconcile_once(&client, "shop-scaled").await;
    // Missing: nothing is applied, and the status names every key it needs.
    assert!(names_of::<Deployment>(&client).await.is_empty());
    let status = get(&client, "shop-scaled").await.status.expect("status");
    let degraded = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .expect("Degraded");
    for key in [
        "token-signing-keys",
        "service-clients",
        "client-secret-gateway",
    ] {
        assert!(
            degraded.message.contains(&format!("mine/{key}")),
            "{}",
            degraded.message
        );
    }

    let mut mine: BTreeMap<String, String> = sales_operator::children::env::identity_secret_keys()
        .into_iter()
        .map(|k| (k, "y".repeat(20)))
        .collect();
    mine.insert(
        "gateway-signing-keys".into(),
        sales_platform::identity::keys::generate_pem().expect("a key"),
    );
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "mine", "namespace": NS},
        "stringData": mine,
    }))
    .expect("secret");
    let secrets = Api::<Secret>::namespaced(client.clone(), NS);
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create");
    reconcile_once(&client, "shop-scaled").await;
    assert!(
        secrets
            .get_opt("shop-scaled-identity")
            .await
            .expect("get")
            .is_none()
    );
    assert_eq!(
        values(&secrets.get("mine").await.expect("mine")),
        mine,
        "left alone"
    );
    let gateway = Api::<Deployment>::namespaced(client.clone(), NS)
        .get("shop-scaled-gateway")
        .await
        .expect("gateway");
    let env = gateway
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod")
        .containers[0]
        .env
        .clone()
        .unwrap_or_default();
    let keys = env
        .iter()
        .find(|e| e.name == "GATEWAY_SIGNING_KEYS")
        .and_then(|e| e.value_from.clone())
        .and_then(|f| f.secret_key_ref)
        .expect("from a Secret");
    assert_eq!(
        (keys.name.as_str(), keys.key.as_str()),
        ("mine", "gateway-signing-keys")
    );
    assert_eq!(identity_digests(&client).await.len(), 11);
}

#[tokio::test]
async fn status_and_conditions_follow_the_workloads() {
    let system = example("salessystem-autoscaling.yaml");
    let client = server(vec![to_value(&system)]).await;
    reconcile_once(&client, "shop-scaled").await;
    assert_eq!(
        get(&client, "shop-scaled")
            .await
            .status
            .and_then(|s| s.phase),
        Some("Progressing".into())
    );

    // The kubelet and controllers report every pod ready. (The fake server bumps
    // `generation` on every write, even a no-op apply, so the Deployments' observed
    // generation is set far ahead.)
    let deployments = Api::<Deployment>::namespaced(client.clone(), NS);
    for d in deployments
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
    {
        let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        deployments
            .patch_status(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {
                    "observedGeneration": 1000,
                    "replicas": replicas, "readyReplicas": replicas,
                    "updatedReplicas": replicas, "availableReplicas": replicas,
                }})),
            )
            .await
            .expect("deployment status");
    }
    let sets = Api::<StatefulSet>::namespaced(client.clone(), NS);
    let all_sets = sets.list(&ListParams::default()).await.expect("list").items;
    assert_eq!(all_sets.len(), 8, "7 databases and the broker");
    for s in all_sets.iter().skip(1) {
        sets.patch_status(
            &s.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 1, "readyReplicas": 1}})),
        )
        .await
        .expect("statefulset status");
    }
    reconcile_once(&client, "shop-scaled").await;
    let status = get(&client, "shop-scaled").await.status.expect("status");
    let condition = |t: &str| {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| (c.status.clone(), c.reason.clone()))
            .expect("condition")
    };
    // One StatefulSet is still starting.
    let waiting = &all_sets[0].name_any();
    let (broker_or_db, _) = if waiting == "shop-scaled-rabbitmq" {
        condition("BrokerReady")
    } else {
        condition("DatabasesReady")
    };
    assert_eq!(broker_or_db, "False");
    assert_eq!(
        condition("ServicesReady"),
        ("True".into(), "RolledOut".into())
    );
    assert_eq!(condition("Ready").0, "False");
    assert_eq!(status.ready_services.as_deref(), Some("8/8"));
    assert_eq!(status.services["order"].ready, 1);

    sets.patch_status(
        waiting,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"replicas": 1, "readyReplicas": 1}})),
    )
    .await
    .expect("statefulset status");
    let action = reconcile_once(&client, "shop-scaled").await;
    let status = get(&client, "shop-scaled").await.status.expect("status");
    assert_eq!(status.phase.as_deref(), Some("Ready"));
    assert!(
        status
            .conditions
            .iter()
            .all(|c| (c.type_ == "Degraded") != (c.status == "True"))
    );
    assert_eq!(
        status.gateway_url.as_deref(),
        Some("http://shop-scaled-gateway.sales.svc:8080")
    );
    assert_eq!(action, Action::requeue(std::time::Duration::from_secs(300)));
}

#[tokio::test]
async fn a_missing_referenced_secret_degrades_and_applies_nothing() {
    let system = example("salessystem-external.yaml");
    let client = server(vec![to_value(&system)]).await;
    reconcile_once(&client, "shop-ext").await;
    assert!(names_of::<Deployment>(&client).await.is_empty());
    let status = get(&client, "shop-ext").await.status.expect("status");
    assert_eq!(status.phase.as_deref(), Some("Degraded"));
    let degraded = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .expect("Degraded");
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "SecretMissing")
    );
    assert!(
        degraded.message.contains("shop-broker/url"),
        "{}",
        degraded.message
    );
    assert!(degraded.message.contains("shop-orders-db/url"));
}

#[tokio::test]
async fn a_paused_salessystem_is_only_reported() {
    let mut system = example("salessystem.yaml");
    system
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(PAUSED_ANNOTATION.into(), "true".into());
    let client = server(vec![to_value(&system)]).await;
    reconcile_once(&client, "shop").await;
    assert!(actual(&client).await.is_empty(), "nothing is created");
    let status = get(&client, "shop").await.status.expect("reported");
    assert_eq!(status.phase.as_deref(), Some("Paused"));
    assert_eq!(status.observed_generation, None);
}

fn claim(system: &SalesSystem, component: &str) -> serde_json::Value {
    let name = system.name_any();
    json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": format!("data-{name}-{component}-0"), "namespace": NS,
            "labels": {
                "app.kubernetes.io/instance": name,
                "app.kubernetes.io/managed-by": MANAGER,
                "sales-system.io/component": component,
            },
        },
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    })
}

/// A system that was reconciled once, now being deleted (with its volumes).
async fn deleting(policy: DeletionPolicy) -> (Client, SalesSystem) {
    let mut system = example("salessystem.yaml");
    system.spec.deletion_policy = policy;
    let client = server(vec![to_value(&system)]).await;
    reconcile_once(&client, "shop").await;
    for component in ["order-db", "rabbitmq"] {
        let pvc: PersistentVolumeClaim =
            serde_json::from_value(claim(&system, component)).expect("pvc");
        Api::<PersistentVolumeClaim>::namespaced(client.clone(), NS)
            .create(&PostParams::default(), &pvc)
            .await
            .expect("pvc");
    }
    let mut gone = get(&client, "shop").await;
    gone.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    (client, gone)
}

#[tokio::test]
async fn deletion_with_policy_delete_removes_the_volumes() {
    let (client, gone) = deleting(DeletionPolicy::Delete).await;
    let action = reconcile(Arc::new(gone), context(&client, counter_random("a")))
        .await
        .expect("cleanup");
    assert_eq!(action, Action::await_change());
    assert!(names_of::<PersistentVolumeClaim>(&client).await.is_empty());
    // The finalizer is off: the fake server let the object go.
    let api = Api::<SalesSystem>::namespaced(client.clone(), NS);
    let left = api.get_opt("shop").await.expect("get");
    assert!(left.is_none_or(|s| s.finalizers().is_empty()));
}

#[tokio::test]
async fn deletion_with_policy_retain_keeps_volumes_and_their_credentials() {
    let (client, gone) = deleting(DeletionPolicy::Retain).await;
    reconcile(Arc::new(gone), context(&client, counter_random("a")))
        .await
        .expect("cleanup");
    assert_eq!(names_of::<PersistentVolumeClaim>(&client).await.len(), 2);
    let secrets = Api::<Secret>::namespaced(client.clone(), NS);
    for name in ["shop-order-db", "shop-rabbitmq"] {
        let s = secrets.get(name).await.expect("kept");
        assert!(s.owner_references().is_empty(), "{name} is no longer owned");
    }
    // Credentials of nothing persistent stay owned (and go with the system).
    let auth = secrets.get("shop-auth").await.expect("auth");
    assert_eq!(auth.owner_references().len(), 1);
}
