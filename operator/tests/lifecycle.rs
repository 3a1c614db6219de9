//! The reconcile against an API server that answers as a real one does where it
//! matters (`fake_api`): optional kinds whose CRD is missing (plain-text `404 page not
//! found`), Events whose message changes, errors as sentences, and credentials that
//! `deletionPolicy: Retain` keeps, through garbage collection by owner uid with
//! finalizers and foreground deletion.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod fake_api;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fake_api::{FakeApi, RABBITMQ_CLUSTERS, RABBITMQ_TOPOLOGY, SERVICE_MONITORS};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use sales_operator::children;
use sales_operator::children::names::MANAGER;
use sales_operator::crd::{FINALIZER, SalesSystem};
use sales_operator::metrics::Metrics;
use sales_operator::optional_kinds::{OptionalKinds, Served};
use sales_operator::reconcile::{Context, Error, reconcile};
use serde_json::{Value, json};

const NS: &str = "sales";

fn example(file: &str) -> SalesSystem {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(file);
    let mut system =
        sales_operator::render::parse(&std::fs::read_to_string(path).expect("example"))
            .expect("a SalesSystem");
    system.metadata.namespace = Some(NS.into());
    system.metadata.finalizers = Some(vec![FINALIZER.into()]);
    system
}

/// A context whose optional kinds are asked on every reconcile (no cache).
fn uncached_context(client: &Client) -> Arc<Context> {
    let mut ctx = Arc::try_unwrap(context(client))
        .ok()
        .expect("one reference");
    ctx.kinds = Arc::new(OptionalKinds::new(client.clone(), Duration::ZERO));
    Arc::new(ctx)
}

fn context(client: &Client) -> Arc<Context> {
    let recorder = sales_operator::events::Recorder::new(
        client.clone(),
        sales_operator::events::Reporter {
            controller: MANAGER.into(),
            instance: Some("test".into()),
        },
    );
    Arc::new(Context::new(
        client.clone(),
        recorder,
        Arc::new(Metrics::new()),
    ))
}

async fn get(client: &Client, name: &str) -> SalesSystem {
    Api::<SalesSystem>::namespaced(client.clone(), NS)
        .get(name)
        .await
        .expect("the SalesSystem")
}

async fn reconcile_with(ctx: &Arc<Context>, client: &Client, name: &str) -> Result<Action, Error> {
    reconcile(Arc::new(get(client, name).await), ctx.clone()).await
}

fn condition<'a>(system: &'a SalesSystem, kind: &str) -> Option<&'a Condition> {
    system
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == kind)
}

/// A child of `system` that its spec does not ask for (left by an older spec).
fn stale_config_map(system: &Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": "shop-retired", "namespace": NS,
            "labels": {"app.kubernetes.io/instance": "shop",
                       "app.kubernetes.io/managed-by": MANAGER},
            "ownerReferences": [{
                "apiVersion": "sales-system.io/v1alpha1", "kind": "SalesSystem",
                "name": "shop", "uid": system["metadata"]["uid"], "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "data": {"old": "yes"},
    })
}

/// No Prometheus Operator: the ServiceMonitor is skipped and said so in a condition
/// of its own; every other child is applied and pruned and the system is not
/// degraded. Once the CRD is installed, the next reconcile applies it.
#[tokio::test]
async fn a_missing_service_monitor_kind_is_reported_and_everything_else_reconciled() {
    let api = FakeApi::new();
    let system = api.seed(
        "salessystems",
        serde_json::to_value(example("salessystem.yaml")).unwrap(),
    );
    api.seed("configmaps", stale_config_map(&system));
    let client = api.client();
    let ctx = uncached_context(&client);

    reconcile_with(&ctx, &client, "shop")
        .await
        .expect("the reconcile succeeds without the ServiceMonitor kind");
    let shop = get(&client, "shop").await;
    let status = shop.status.clone().expect("status");
    assert_eq!(status.phase.as_deref(), Some("Progressing"), "{status:#?}");
    assert_eq!(status.observed_generation, Some(1));
    let degraded = condition(&shop, "Degraded").expect("Degraded");
    assert_eq!(degraded.status, "False", "{degraded:?}");
    let monitoring = condition(&shop, "MonitoringAvailable").expect("MonitoringAvailable");
    assert_eq!(
        (monitoring.status.as_str(), monitoring.reason.as_str()),
        ("False", "ServiceMonitorKindMissing")
    );
    assert!(
        monitoring
            .message
            .contains("monitoring.coreos.com/v1 ServiceMonitor")
            && !monitoring.message.contains("404 page not found")
            && !monitoring.message.contains("Failed to parse"),
        "{}",
        monitoring.message
    );
    // Everything else applied; the stale child pruned.
    let deployments = Api::<Deployment>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .expect("list");
    assert_eq!(deployments.items.len(), 9, "8 services and Redis");
    assert!(
        api.objects("configmaps", NS)
            .iter()
            .all(|c| c["metadata"]["name"] != "shop-retired"),
        "pruned"
    );
    let events = events_of(&api, "MonitoringUnavailable");
    assert_eq!(events.len(), 1, "a Warning says so: {events:#?}");

    // Another reconcile says it once, not again.
    reconcile_with(&ctx, &client, "shop").await.expect("again");
    assert_eq!(events_of(&api, "MonitoringUnavailable").len(), 1);

    // The Prometheus Operator arrives: the same operator applies the ServiceMonitor.
    api.install(SERVICE_MONITORS);
    reconcile_with(&ctx, &client, "shop")
        .await
        .expect("the reconcile succeeds");
    let monitors: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NS, &children::service_monitor_resource());
    assert!(monitors.get_opt("shop").await.expect("get").is_some());
    let shop = get(&client, "shop").await;
    let monitoring = condition(&shop, "MonitoringAvailable").expect("MonitoringAvailable");
    assert_eq!(monitoring.status, "True", "{monitoring:?}");
    assert_eq!(events_of(&api, "MonitoringAvailable").len(), 1);
}

/// Discovery answers are kept for the refresh interval, then asked again.
#[tokio::test]
async fn optional_kinds_are_asked_again_after_the_refresh() {
    let api = FakeApi::new();
    let client = api.client();
    let monitors = children::service_monitor_resource();
    let kinds = OptionalKinds::new(client.clone(), Duration::from_millis(200));
    assert_eq!(kinds.served(&monitors).await, Served::No);
    assert!(kinds.served_now(&Default::default()).await.is_empty());
    api.install(SERVICE_MONITORS);
    assert_eq!(kinds.served(&monitors).await, Served::No, "cached");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(kinds.served(&monitors).await, Served::Yes);
    let served = kinds.served_now(&Default::default()).await;
    assert_eq!(
        served.iter().map(String::as_str).collect::<Vec<_>>(),
        ["ServiceMonitor.monitoring.coreos.com/v1"]
    );
    let asked = api
        .requests()
        .iter()
        .filter(|r| *r == "GET /apis/monitoring.coreos.com/v1")
        .count();
    // Once, once more for `served_now` (always fresh), none cached, then twice.
    assert_eq!(asked, 4, "{:?}", api.requests());

    // Discovery failing (a throttled or struggling API server) changes nothing:
    // the kind stays as last seen, so the watches are not rebuilt.
    api.force_once(
        "GET",
        "/apis/monitoring.coreos.com/v1",
        503,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "message": "the server is currently unable to handle the request",
               "reason": "ServiceUnavailable", "code": 503}),
    );
    assert_eq!(kinds.served_now(&served).await, served);
    assert_eq!(kinds.served(&monitors).await, Served::Yes, "asked again");
}

/// Every Event of the system with `reason`, oldest first (by when last observed).
fn events_of(api: &FakeApi, reason: &str) -> Vec<Event> {
    let mut events: Vec<Event> = api
        .objects("events", NS)
        .into_iter()
        .map(|e| serde_json::from_value(e).expect("an Event"))
        .filter(|e: &Event| e.reason.as_deref() == Some(reason))
        .collect();
    events.sort_by_key(|e| {
        e.series
            .as_ref()
            .map(|s| s.last_observed_time.0)
            .or(e.event_time.as_ref().map(|t| t.0))
    });
    events
}

fn latest_note(api: &FakeApi, reason: &str) -> String {
    events_of(api, reason)
        .last()
        .and_then(|e| e.note.clone())
        .unwrap_or_else(|| panic!("no {reason} Event"))
}

/// The newest Event of a reason says what happened last, not what happened first.
#[tokio::test]
async fn events_carry_the_current_message() {
    let api = FakeApi::new();
    api.install(SERVICE_MONITORS);
    api.seed(
        "salessystems",
        serde_json::to_value(example("salessystem.yaml")).unwrap(),
    );
    let client = api.client();
    let ctx = context(&client);
    reconcile_with(&ctx, &client, "shop").await.expect("first");
    assert!(latest_note(&api, "Applied").starts_with("applied generation 1 "));

    Api::<SalesSystem>::namespaced(client.clone(), NS)
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"services": {"order": {"replicas": 3}}}})),
        )
        .await
        .expect("a new generation");
    reconcile_with(&ctx, &client, "shop").await.expect("second");
    let note = latest_note(&api, "Applied");
    assert!(note.starts_with("applied generation 2 "), "{note}");

    // Two different failures in a row: the Event and the condition say the second.
    let order = "/apis/apps/v1/namespaces/sales/deployments/shop-order";
    let invalid = |field: &str| {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "reason": "Invalid", "code": 422,
               "message": format!("Deployment.apps \"shop-order\" is invalid: {field}: Invalid value")})
    };
    api.force_once(
        "PATCH",
        order,
        422,
        invalid("spec.template.spec.containers[0].image"),
    );
    reconcile_with(&ctx, &client, "shop")
        .await
        .expect_err("the apply fails");
    let first = latest_note(&api, "ApplyFailed");
    assert!(first.contains("containers[0].image"), "{first}");
    api.force_once("PATCH", order, 422, invalid("spec.replicas"));
    reconcile_with(&ctx, &client, "shop")
        .await
        .expect_err("the apply fails again");
    let second = latest_note(&api, "ApplyFailed");
    assert!(
        second.contains("spec.replicas") && !second.contains("containers[0].image"),
        "{second}"
    );
    let shop = get(&client, "shop").await;
    let degraded = condition(&shop, "Degraded").expect("Degraded");
    assert!(degraded.message.contains("spec.replicas"), "{degraded:?}");

    // Both read as sentences: what failed, on which object, and the server's reason;
    // not the client library's debug output.
    for text in [&second, &degraded.message] {
        assert!(
            text.contains("Deployment shop-order"),
            "names the object: {text}"
        );
        assert!(
            !text.contains("ApiError") && !text.contains("Status {") && !text.contains("code: "),
            "no debug output: {text}"
        );
    }
}

/// The names of the system's database and broker credentials.
fn guarded(api: &FakeApi) -> BTreeMap<String, Value> {
    api.objects("secrets", NS)
        .into_iter()
        .filter(|s| {
            let component = s["metadata"]["labels"]["sales-system.io/component"]
                .as_str()
                .unwrap_or_default();
            component.ends_with("-db") || component == "rabbitmq"
        })
        .map(|s| {
            (
                s["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                s,
            )
        })
        .collect()
}

fn owner_uids(secret: &Value) -> Vec<String> {
    secret["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str().map(str::to_owned))
        .collect()
}

/// Delete the SalesSystem as kubectl does, then run the reconcile its watch event
/// would (the finalizer's cleanup); the server collects what it owned.
async fn delete_and_clean_up(api: &FakeApi, client: &Client, params: &DeleteParams) {
    let systems = Api::<SalesSystem>::namespaced(client.clone(), NS);
    systems.delete("shop", params).await.expect("delete");
    let terminating = get(client, "shop").await;
    assert!(terminating.metadata.deletion_timestamp.is_some());
    reconcile(Arc::new(terminating), context(client))
        .await
        .expect("cleanup");
    assert!(
        systems.get_opt("shop").await.expect("get").is_none(),
        "gone once the finalizer is off: {:?}",
        api.objects("salessystems", NS)
    );
}

/// Retain keeps the credentials; a SalesSystem of the same name owns them again, so
/// deleting that one with `Delete` removes them.
#[tokio::test]
async fn credentials_kept_by_retain_are_owned_again_and_go_with_delete() {
    let api = FakeApi::new();
    api.install(SERVICE_MONITORS);
    let first = api.seed(
        "salessystems",
        serde_json::to_value(example("salessystem.yaml")).unwrap(),
    );
    let client = api.client();
    reconcile_with(&context(&client), &client, "shop")
        .await
        .expect("reconcile");
    let made = guarded(&api);
    assert_eq!(made.len(), 8, "seven databases and the broker");
    let first_uid = first["metadata"]["uid"].as_str().unwrap().to_owned();
    assert!(
        made.values()
            .all(|s| owner_uids(s) == std::slice::from_ref(&first_uid))
    );

    delete_and_clean_up(&api, &client, &DeleteParams::background()).await;
    let kept = guarded(&api);
    assert_eq!(kept.len(), 8, "Retain keeps them");
    assert!(kept.values().all(|s| owner_uids(s).is_empty()));
    assert!(
        Api::<Deployment>::namespaced(client.clone(), NS)
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .is_empty(),
        "the rest went with the system"
    );

    // The same system again, then deleted with `Delete`.
    let mut again = example("salessystem.yaml");
    again.spec.deletion_policy = sales_operator::crd::DeletionPolicy::Delete;
    let second = api.seed("salessystems", serde_json::to_value(again).unwrap());
    let second_uid = second["metadata"]["uid"].as_str().unwrap().to_owned();
    reconcile_with(&context(&client), &client, "shop")
        .await
        .expect("reconcile");
    let adopted = guarded(&api);
    for (name, secret) in &adopted {
        assert_eq!(
            owner_uids(secret),
            std::slice::from_ref(&second_uid),
            "{name} is owned again"
        );
        assert_eq!(
            secret["data"], kept[name]["data"],
            "{name} keeps its passwords"
        );
    }
    delete_and_clean_up(&api, &client, &DeleteParams::background()).await;
    assert!(guarded(&api).is_empty(), "{:#?}", guarded(&api).keys());
    assert!(
        Api::<Secret>::namespaced(client.clone(), NS)
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
}

/// A foreground deletion has the garbage collector delete the dependents while the
/// finalizer has not run yet: the credentials must still be there for Retain.
#[tokio::test]
async fn a_foreground_deletion_keeps_the_credentials_retain_asks_for() {
    let api = FakeApi::new();
    api.install(SERVICE_MONITORS);
    api.seed(
        "salessystems",
        serde_json::to_value(example("salessystem.yaml")).unwrap(),
    );
    let client = api.client();
    reconcile_with(&context(&client), &client, "shop")
        .await
        .expect("reconcile");
    let made = guarded(&api);
    assert_eq!(made.len(), 8);

    delete_and_clean_up(&api, &client, &DeleteParams::foreground()).await;
    let kept = guarded(&api);
    assert_eq!(
        kept.keys().collect::<Vec<_>>(),
        made.keys().collect::<Vec<_>>()
    );
    for (name, secret) in &kept {
        assert_eq!(secret["data"], made[name]["data"], "{name}: same passwords");
        assert!(owner_uids(secret).is_empty(), "{name}");
        assert!(
            secret["metadata"]["deletionTimestamp"].is_null(),
            "{name} is not being deleted"
        );
        assert!(
            secret["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty()),
            "{name}: nothing holds a kept Secret"
        );
    }
}

/// A database or broker Secret deleted while its system lives (by hand, or pruned by
/// a GitOps tool that does not know it) comes back with the same values: the data on
/// the volumes was set up with them, new random passwords would lock every service
/// out. (Its finalizer is what lets the operator still read them.)
#[tokio::test]
async fn a_credentials_secret_deleted_while_the_system_lives_comes_back_with_its_values() {
    let api = FakeApi::new();
    api.install(SERVICE_MONITORS);
    api.seed(
        "salessystems",
        serde_json::to_value(example("salessystem.yaml")).unwrap(),
    );
    let client = api.client();
    reconcile_with(&context(&client), &client, "shop")
        .await
        .expect("reconcile");
    let made = guarded(&api);
    let (name, before) = made.iter().next().expect("a database Secret");
    Api::<Secret>::namespaced(client.clone(), NS)
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete");
    reconcile_with(&context(&client), &client, "shop")
        .await
        .expect("reconcile");
    let after = guarded(&api);
    let again = after.get(name).expect("made again");
    assert!(again["metadata"]["deletionTimestamp"].is_null());
    assert_eq!(again["data"], before["data"], "{name} keeps its passwords");
}

/// The images the order service's Deployment runs.
async fn order_images(client: &Client) -> Vec<String> {
    let order = Api::<Deployment>::namespaced(client.clone(), NS)
        .get("shop-order")
        .await
        .expect("the order Deployment");
    let pod = order.spec.unwrap().template.spec.unwrap();
    pod.containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
        .map(|c| c.image.clone().unwrap())
        .collect()
}

/// A new version of the services waits for the data tier: while the databases are not
/// ready, a running Deployment keeps its images (and an Event says why), everything
/// else applies; once they are ready, the next reconcile rolls the new images.
#[tokio::test]
async fn a_new_version_waits_until_the_broker_and_databases_are_ready() {
    let api = FakeApi::new();
    api.seed(
        "salessystems",
        serde_json::to_value(example("salessystem.yaml")).unwrap(),
    );
    let client = api.client();
    let ctx = uncached_context(&client);
    reconcile_with(&ctx, &client, "shop").await.expect("first");
    let before = order_images(&client).await;
    assert!(!before.is_empty() && before.iter().all(|i| !i.ends_with(":9.9.9")));
    let shop = get(&client, "shop").await;
    assert_eq!(
        condition(&shop, "DatabasesReady").map(|c| c.status.as_str()),
        Some("False"),
        "no database pod is ready yet"
    );

    // Version 9.9.9 and one more order replica, while the databases start.
    let systems: Api<SalesSystem> = Api::namespaced(client.clone(), NS);
    systems
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {
                "image": {"tag": "9.9.9"},
                "services": {"order": {"replicas": 2}},
            }})),
        )
        .await
        .unwrap();
    reconcile_with(&ctx, &client, "shop").await.expect("second");
    assert_eq!(
        order_images(&client).await,
        before,
        "the running images stay"
    );
    let order = Api::<Deployment>::namespaced(client.clone(), NS)
        .get("shop-order")
        .await
        .unwrap();
    assert_eq!(order.spec.unwrap().replicas, Some(2), "the rest applies");
    let waiting = events_of(&api, "UpgradeWaiting");
    assert_eq!(waiting.len(), 1, "{waiting:#?}");
    let note = waiting[0].note.clone().unwrap_or_default();
    assert!(
        note.contains("DatabasesReady") && note.contains("shop-order"),
        "{note}"
    );

    // Every StatefulSet's pod becomes ready: the status says so, then the new
    // version rolls.
    let sets: Api<k8s_openapi::api::apps::v1::StatefulSet> = Api::namespaced(client.clone(), NS);
    for set in sets.list(&ListParams::default()).await.unwrap().items {
        let name = set.metadata.name.clone().unwrap();
        let replicas = set.spec.and_then(|s| s.replicas).unwrap_or(1);
        sets.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "replicas": replicas, "readyReplicas": replicas,
                "availableReplicas": replicas, "currentReplicas": replicas,
                "updatedReplicas": replicas,
                "observedGeneration": set.metadata.generation,
            }})),
        )
        .await
        .unwrap();
    }
    reconcile_with(&ctx, &client, "shop").await.expect("third");
    let shop = get(&client, "shop").await;
    for kind in ["BrokerReady", "DatabasesReady"] {
        assert_eq!(
            condition(&shop, kind).map(|c| c.status.as_str()),
            Some("True"),
            "{kind}: {:#?}",
            shop.status
        );
    }
    reconcile_with(&ctx, &client, "shop").await.expect("fourth");
    let after = order_images(&client).await;
    assert!(after.iter().all(|i| i.ends_with(":9.9.9")), "{after:?}");
}

/// The broker on RabbitMQ's cluster operator, not installed: the condition of its own
/// says so (and the broker is not ready), everything else is applied and nothing is
/// degraded; once the CRDs are served (with the topology operator's) the
/// RabbitmqCluster is created, and the broker is ready when the cluster operator says
/// it is available and the topology operator that the vhost, user and permissions are.
#[tokio::test]
async fn a_missing_rabbitmq_cluster_operator_is_reported_and_everything_else_reconciled() {
    let api = FakeApi::new();
    let mut system = serde_json::to_value(example("salessystem.yaml")).unwrap();
    system["spec"]["rabbitmq"] = json!({"cluster": {"create": {"replicas": 3}}});
    system["spec"]["observability"]["serviceMonitor"]["enabled"] = json!(false);
    api.seed("salessystems", system);
    let client = api.client();
    let ctx = uncached_context(&client);

    reconcile_with(&ctx, &client, "shop").await.expect("first");
    let shop = get(&client, "shop").await;
    let providers = condition(&shop, "ProvidersAvailable").expect("ProvidersAvailable");
    assert_eq!(
        (providers.status.as_str(), providers.reason.as_str()),
        ("False", "RabbitMQClusterOperatorNotInstalled"),
        "{providers:?}"
    );
    assert!(
        providers
            .message
            .contains("rabbitmq.com/v1beta1 RabbitmqCluster")
    );
    let broker = condition(&shop, "BrokerReady").expect("BrokerReady");
    assert_eq!(
        (broker.status.as_str(), broker.reason.as_str()),
        ("False", "RabbitMQClusterOperatorNotInstalled")
    );
    assert_eq!(condition(&shop, "Degraded").unwrap().status, "False");
    let deployments = Api::<Deployment>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(deployments.items.len() >= 8, "the services are applied");
    assert_eq!(
        events_of(&api, "RabbitMQClusterOperatorNotInstalled").len(),
        1
    );

    api.install(RABBITMQ_CLUSTERS);
    for kind in RABBITMQ_TOPOLOGY {
        api.install(kind);
    }
    reconcile_with(&ctx, &client, "shop").await.expect("second");
    let clusters: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        NS,
        &children::rabbitmq_cluster::rabbitmq_cluster_resource(),
    );
    assert!(clusters.get_opt("shop-rabbitmq").await.unwrap().is_some());
    let shop = get(&client, "shop").await;
    assert_eq!(
        condition(&shop, "ProvidersAvailable").unwrap().status,
        "True"
    );
    let broker = condition(&shop, "BrokerReady").unwrap();
    assert_eq!(
        (broker.status.as_str(), broker.reason.as_str()),
        ("False", "Starting")
    );

    clusters
        .patch_status(
            "shop-rabbitmq",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [
                {"type": "ClusterAvailable", "status": "True"},
            ]}})),
        )
        .await
        .unwrap();
    for (resource, name) in [
        (children::rabbitmq_topology::vhost_resource(), "shop"),
        (
            children::rabbitmq_topology::user_resource(),
            "shop-services",
        ),
        (
            children::rabbitmq_topology::permission_resource(),
            "shop-services",
        ),
    ] {
        Api::<DynamicObject>::namespaced_with(client.clone(), NS, &resource)
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"conditions": [
                    {"type": "Ready", "status": "True"},
                ]}})),
            )
            .await
            .unwrap();
    }
    reconcile_with(&ctx, &client, "shop").await.expect("third");
    let shop = get(&client, "shop").await;
    assert_eq!(condition(&shop, "BrokerReady").unwrap().status, "True");
}
