//! Queue-depth autoscaling end to end, against the in-memory API server
//! (`kube-fake-client`) and, for the queues, the real RabbitMQ of `cargo xtask test`
//! (`SALES_AMQP_URL`, `SALES_RABBITMQ_MANAGEMENT_URL`):
//!
//! - an autoscaled service runs as an API Deployment and a consumer Deployment, whose
//!   pods get time to finish their work and no traffic;
//! - the depth the operator reads matches `rabbitmqctl list_queues` (ready +
//!   unacknowledged), the replicas it writes are the formula's, and they come down only
//!   after the stabilization window (driven through the scaler's clock input);
//! - the scaler owns only `spec.replicas` (its own field manager), and the reconcile
//!   leaves it, the status it wrote and its condition alone;
//! - an unreachable broker changes no replicas and says so in the status.
//!
//! `rabbitmqctl` runs as the private node's `rabbitmq` user with the node's environment,
//! as `xtask/src/infra.rs` starts it (plain `rabbitmqctl` against a broker you run).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use kube_fake_client::ClientBuilder;
use lapin::BasicProperties;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use sales_contracts::topology::subscriptions_of;
use sales_operator::autoscaling::broker::Management;
use sales_operator::autoscaling::deletion_cost;
use sales_operator::autoscaling::scaler::{FIELD_MANAGER, Scaler};
use sales_operator::catalogue::{DRAIN_SECONDS, SHUTDOWN_GRACE_SECONDS};
use sales_operator::children::names::MANAGER;
use sales_operator::crd::{ExternalBroker, SalesSystem};
use sales_operator::metrics::Metrics;
use sales_operator::reconcile::{Context, reconcile};
use sales_testkit::TestBroker;
use serde_json::json;

const NS: &str = "sales";
const NAME: &str = "shop-scaled";

fn example() -> SalesSystem {
    common::stored_autoscaling_example(None, "uid-scaled")
}

/// The example on an external broker (`amqp_url` in Secret `broker`), inventory
/// scaled 1..10 on 100 messages per replica with a 5 minute window.
fn on_external_broker(prefix: &str, management_url: &str) -> SalesSystem {
    let mut system = example();
    system.spec.rabbitmq.managed = None;
    system.spec.rabbitmq.external = Some(ExternalBroker {
        secret_name: "broker".into(),
        key: "url".into(),
        management_url: Some(management_url.into()),
    });
    system.spec.rabbitmq.prefix = prefix.into();
    let inventory = &mut system.spec.autoscaling.inventory;
    inventory.enabled = true;
    inventory.min_replicas = 1;
    inventory.max_replicas = 10;
    inventory.target_messages_per_replica = 100;
    inventory.scale_down_stabilization = "5m".into();
    for other in [
        &mut system.spec.autoscaling.notification,
        &mut system.spec.autoscaling.shipping,
    ] {
        other.enabled = false;
    }
    system
}

async fn server(system: &SalesSystem, amqp_url: &str) -> Client {
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "broker", "namespace": NS},
        "stringData": {"url": amqp_url},
    });
    ClientBuilder::new()
        .with_resource::<SalesSystem>()
        .with_status_subresource::<SalesSystem>()
        .with_runtime_objects(vec![serde_json::to_value(system).unwrap(), secret])
        .build()
        .await
        .expect("fake API server")
}

async fn reconcile_once(client: &Client) {
    let system = get(client).await;
    let ctx = Context::new(
        client.clone(),
        common::recorder(client),
        Arc::new(Metrics::new()),
    );
    reconcile(Arc::new(system), Arc::new(ctx))
        .await
        .expect("reconcile succeeds");
}

async fn get(client: &Client) -> SalesSystem {
    Api::<SalesSystem>::namespaced(client.clone(), NS)
        .get(NAME)
        .await
        .unwrap()
}

async fn deployment(client: &Client, name: &str) -> Deployment {
    Api::<Deployment>::namespaced(client.clone(), NS)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("Deployment {name}: {e}"))
}

fn replicas(d: &Deployment) -> Option<i32> {
    d.spec.as_ref().and_then(|s| s.replicas)
}

fn env_of(d: &Deployment) -> BTreeMap<String, String> {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .env
        .iter()
        .flatten()
        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
        .collect()
}

fn condition(system: &SalesSystem, kind: &str) -> Option<(String, String)> {
    system
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

#[test]
fn an_autoscaled_service_runs_as_an_api_and_a_consumer_deployment() {
    let system = example();
    let children = sales_operator::children::desired(&system).unwrap();
    let of_kind = |kind: &str| -> Vec<serde_json::Value> {
        children
            .iter()
            .filter(|c| c.kind() == kind)
            .map(|c| serde_json::to_value(&c.object).unwrap())
            .collect()
    };
    let deployments: BTreeMap<String, Deployment> = of_kind("Deployment")
        .into_iter()
        .map(|v| serde_json::from_value::<Deployment>(v).unwrap())
        .map(|d| (d.name_any(), d))
        .collect();

    // inventory, notification, shipping are scaled; order is not.
    for service in ["inventory", "notification", "shipping"] {
        let api = &deployments[&format!("{NAME}-{service}")];
        let consumer = &deployments[&format!("{NAME}-{service}-consumer")];
        assert_eq!(
            env_of(api).get("SERVICE_ROLE").map(String::as_str),
            Some("api")
        );
        assert_eq!(replicas(api), Some(1), "services.{service}.replicas");
        assert_eq!(
            env_of(consumer).get("SERVICE_ROLE").map(String::as_str),
            Some("consumer")
        );
        assert_eq!(replicas(consumer), None, "the scaler's field");
        let pod = consumer
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap();
        // Consumers finish what they hold: Kubernetes waits longer than SHUTDOWN_GRACE.
        assert!(pod.termination_grace_period_seconds.unwrap() > SHUTDOWN_GRACE_SECONDS);
        // They take no traffic: nothing to drain before SIGTERM.
        assert_eq!(pod.containers[0].lifecycle, None);
        // API pods sleep in preStop while their endpoints go, then get SIGTERM and
        // SHUTDOWN_GRACE to finish: Kubernetes waits for both.
        let api_pod = api.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        let pre_stop = api_pod.containers[0]
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref())
            .and_then(|h| h.sleep.as_ref())
            .map(|s| s.seconds);
        assert_eq!(pre_stop, Some(DRAIN_SECONDS));
        assert!(
            api_pod.termination_grace_period_seconds.unwrap()
                > DRAIN_SECONDS + SHUTDOWN_GRACE_SECONDS
        );
        let container = &pod.containers[0];
        let probe_port = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
            p.as_ref()
                .and_then(|p| p.http_get.as_ref())
                .map(|h| format!("{:?}", h.port))
        };
        assert_eq!(
            probe_port(&container.readiness_probe),
            Some("String(\"admin\")".into())
        );
        assert_eq!(
            probe_port(&container.liveness_probe),
            Some("String(\"admin\")".into())
        );
        let ports: Vec<_> = container
            .ports
            .iter()
            .flatten()
            .map(|p| p.name.clone().unwrap())
            .collect();
        assert_eq!(ports, ["admin"]);
        // Same image and settings as the API pods.
        let api_container = &api
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        assert_eq!(container.image, api_container.image);
        assert_eq!(container.env_from, api_container.env_from);
    }
    let order = &deployments[&format!("{NAME}-order")];
    assert!(!env_of(order).contains_key("SERVICE_ROLE"));
    assert!(!deployments.contains_key(&format!("{NAME}-order-consumer")));

    // No Service sends traffic to consumer pods: the only one selecting them is
    // headless, with the admin port alone (for the ServiceMonitor).
    for value in of_kind("Service") {
        let service: Service = serde_json::from_value(value).unwrap();
        let spec = service.spec.clone().unwrap();
        let selects_consumers = spec
            .selector
            .as_ref()
            .and_then(|s| s.get("sales-system.io/component"))
            .is_some_and(|c| c.ends_with("-consumer"));
        if selects_consumers {
            assert_eq!(
                spec.cluster_ip.as_deref(),
                Some("None"),
                "{}",
                service.name_any()
            );
            let ports: Vec<_> = spec.ports.iter().flatten().map(|p| p.port).collect();
            assert_eq!(ports, [9090], "{}", service.name_any());
        }
    }

    // The consumer pods reach their database and the broker; the operator reaches the
    // broker's management API.
    let policies: BTreeMap<String, NetworkPolicy> = of_kind("NetworkPolicy")
        .into_iter()
        .map(|v| serde_json::from_value::<NetworkPolicy>(v).unwrap())
        .map(|p| (p.name_any(), p))
        .collect();
    let allowed = |policy: &str| serde_json::to_string(&policies[policy]).unwrap();
    assert!(allowed(&format!("{NAME}-inventory-db")).contains("inventory-consumer"));
    let broker = allowed(&format!("{NAME}-rabbitmq"));
    for service in ["inventory", "notification", "shipping"] {
        assert!(
            broker.contains(&format!("\"{service}-consumer\"")),
            "{broker}"
        );
    }
    assert!(broker.contains("15672") && broker.contains("\"sales-operator\""));
    assert!(policies.contains_key(&format!("{NAME}-inventory-consumer")));
}

#[tokio::test]
async fn an_unreachable_broker_scales_nothing_and_says_so() {
    // Port 1 on loopback: nothing listens there.
    let system = on_external_broker("t-unreachable.", "http://127.0.0.1:1");
    let client = server(&system, "amqp://guest:guest@127.0.0.1:1/%2f").await;
    reconcile_once(&client).await;
    let consumer = format!("{NAME}-inventory-consumer");
    // Running 3 (as a previous tick left it).
    Api::<Deployment>::namespaced(client.clone(), NS)
        .patch(
            &consumer,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                                 "metadata": {"name": consumer}, "spec": {"replicas": 3}})),
        )
        .await
        .unwrap();

    let metrics = Arc::new(Metrics::new());
    let scaler = Scaler::new(client.clone(), common::recorder(&client), metrics.clone());
    let start = Timestamp::now();
    for minutes in [0, 10, 30] {
        let now = start + SignedDuration::from_mins(minutes);
        scaler
            .scale(&get(&client).await, now)
            .await
            .expect("a tick");
        assert_eq!(
            replicas(&deployment(&client, &consumer).await),
            Some(3),
            "kept"
        );
    }
    let system = get(&client).await;
    assert_eq!(
        condition(&system, "ConsumersScaled"),
        Some(("False".into(), "BrokerUnreachable".into()))
    );
    let status = &system.status.as_ref().unwrap().consumers["inventory"];
    assert_eq!(
        (status.replicas, status.reason.as_str()),
        (3, "BrokerUnreachable")
    );
    assert!(
        status.message.contains("keeping 3 replicas"),
        "{}",
        status.message
    );
    assert!(
        metrics
            .render()
            .contains(r#"sales_operator_queue_read_errors_total{namespace="sales",reason="BrokerUnreachable",system="shop-scaled"} 3"#),
        "{}",
        metrics.render()
    );
    // The reconcile keeps what the scaler reported.
    reconcile_once(&client).await;
    let system = get(&client).await;
    assert_eq!(
        condition(&system, "ConsumersScaled").map(|c| c.0),
        Some("False".into())
    );
    assert!(system.status.unwrap().consumers.contains_key("inventory"));
    assert_eq!(replicas(&deployment(&client, &consumer).await), Some(3));
}

// ---------------------------------------------------------------------------------------
// Against a management API that answers what the test says
// ---------------------------------------------------------------------------------------

/// What the stand-in management API answers: per queue name the document of
/// `GET /api/queues/{vhost}/{name}` (a missing name: 404), and the list of
/// `GET /api/vhosts/{vhost}/channels`.
#[derive(Default)]
struct Answers {
    queues: BTreeMap<String, serde_json::Value>,
    channels: serde_json::Value,
    /// Every path asked for, in order.
    asked: Vec<String>,
}

/// A stand-in for RabbitMQ's management API on a free loopback port: its base URL and
/// what it answers (change it between ticks).
async fn fake_management() -> (String, Arc<Mutex<Answers>>) {
    let answers = Arc::new(Mutex::new(Answers {
        channels: json!([]),
        ..Answers::default()
    }));
    let state = answers.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let state = state.clone();
        async move {
            use axum::response::IntoResponse;
            let path = uri.path().to_owned();
            let decoded = percent_encoding::percent_decode_str(&path)
                .decode_utf8_lossy()
                .into_owned();
            let mut answers = state.lock().unwrap();
            answers.asked.push(path.clone());
            if path.starts_with("/api/vhosts/") && path.ends_with("/channels") {
                return axum::Json(answers.channels.clone()).into_response();
            }
            let name = decoded.rsplit('/').next().unwrap_or_default().to_owned();
            match answers.queues.get(&name) {
                Some(doc) if path.starts_with("/api/queues/") => {
                    axum::Json(doc.clone()).into_response()
                }
                _ => (
                    axum::http::StatusCode::NOT_FOUND,
                    axum::Json(json!({"error": "Object Not Found", "reason": "Not Found"})),
                )
                    .into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, answers)
}

/// The queue document RabbitMQ gives with its statistics: `ready` waiting, `unacked`
/// in consumers' hands, no traffic.
fn counted(name: &str, ready: u64, unacked: u64) -> serde_json::Value {
    json!({
        "name": name, "vhost": "/", "durable": true, "state": "running", "consumers": 1,
        "messages": ready + unacked, "messages_ready": ready,
        "messages_unacknowledged": unacked,
    })
}

/// The same queue with no message counts: what the management API answers while its
/// statistics have not reached the queue, or with statistics collection disabled
/// (KEDA reads this as an empty queue: kedacore/keda#7180).
fn uncounted(name: &str) -> serde_json::Value {
    json!({"name": name, "vhost": "/", "durable": true, "state": "running", "consumers": 1})
}

fn inventory_queues(prefix: &str) -> Vec<String> {
    let topology = sales_contracts::topology::Topology::new(prefix.to_owned());
    subscriptions_of("inventory")
        .map(|s| topology.queue(s))
        .collect()
}

#[tokio::test]
async fn missing_message_counts_hold_the_replicas_and_say_why() {
    let (management, answers) = fake_management().await;
    let prefix = "t-uncounted.";
    let queues = inventory_queues(prefix);
    // A backlog of 4 x 110 messages: 5 replicas.
    answers.lock().unwrap().queues = queues
        .iter()
        .map(|q| (q.clone(), counted(q, 100, 10)))
        .collect();
    let system = on_external_broker(prefix, &management);
    let client = server(&system, "amqp://guest:guest@127.0.0.1:5672/%2f").await;
    reconcile_once(&client).await;
    let consumer = format!("{NAME}-inventory-consumer");
    let metrics = Arc::new(Metrics::new());
    let scaler = Scaler::new(client.clone(), common::recorder(&client), metrics.clone());
    let t0 = Timestamp::now();
    scaler.scale(&get(&client).await, t0).await.unwrap();
    assert_eq!(replicas(&deployment(&client, &consumer).await), Some(5));

    // The statistics stop (the queues go on filling): no counts in the answers, for
    // longer than the 5 minute window.
    answers.lock().unwrap().queues = queues.iter().map(|q| (q.clone(), uncounted(q))).collect();
    for minutes in [1, 10, 30] {
        scaler
            .scale(&get(&client).await, t0 + SignedDuration::from_mins(minutes))
            .await
            .unwrap();
        let status = &get(&client).await.status.unwrap().consumers["inventory"];
        assert_eq!(
            (
                replicas(&deployment(&client, &consumer).await),
                status.replicas,
                status.reason.as_str()
            ),
            (Some(5), 5, "CountsUnreported"),
            "{minutes} min without counts: {}",
            status.message
        );
        // Why, naming the queues, and that the replicas are held.
        for q in &queues {
            assert!(status.message.contains(q.as_str()), "{}", status.message);
        }
        assert!(
            status.message.contains("keeping 5 replicas"),
            "{}",
            status.message
        );
        assert_eq!(
            status.recommended, None,
            "no recommendation from unknown counts"
        );
    }
    let system = get(&client).await;
    assert_eq!(
        condition(&system, "ConsumersScaled"),
        Some(("False".into(), "CountsUnreported".into()))
    );
    assert!(
        metrics.render().contains(
            r#"sales_operator_queue_read_errors_total{namespace="sales",reason="CountsUnreported",system="shop-scaled"} 3"#
        ),
        "{}",
        metrics.render()
    );

    // The counts come back, the queues empty: the blind half hour counts as needed,
    // so 5 stay for a window after the last blind tick, then come down.
    answers.lock().unwrap().queues = queues
        .iter()
        .map(|q| (q.clone(), counted(q, 0, 0)))
        .collect();
    scaler
        .scale(&get(&client).await, t0 + SignedDuration::from_mins(34))
        .await
        .unwrap();
    let status = &get(&client).await.status.unwrap().consumers["inventory"];
    assert_eq!(
        (status.replicas, status.reason.as_str()),
        (5, "Stabilizing")
    );
    assert_eq!(
        condition(&get(&client).await, "ConsumersScaled"),
        Some(("True".into(), "Scaled".into()))
    );
    scaler
        .scale(&get(&client).await, t0 + SignedDuration::from_mins(35))
        .await
        .unwrap();
    assert_eq!(replicas(&deployment(&client, &consumer).await), Some(1));
}

#[tokio::test]
async fn some_queues_without_counts_hold_too() {
    // One queue of four lost its counts; the other three read empty. A sum over the
    // three would be a guess (the fourth may hold the backlog): no scale-down.
    let (management, answers) = fake_management().await;
    let prefix = "t-partly.";
    let queues = inventory_queues(prefix);
    answers.lock().unwrap().queues = queues
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let doc = if i == 1 {
                uncounted(q)
            } else {
                counted(q, 0, 0)
            };
            (q.clone(), doc)
        })
        .collect();
    let system = on_external_broker(prefix, &management);
    let client = server(&system, "amqp://guest:guest@127.0.0.1:5672/%2f").await;
    reconcile_once(&client).await;
    let consumer = format!("{NAME}-inventory-consumer");
    Api::<Deployment>::namespaced(client.clone(), NS)
        .patch(
            &consumer,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                                 "metadata": {"name": consumer}, "spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    let scaler = Scaler::new(
        client.clone(),
        common::recorder(&client),
        Arc::new(Metrics::new()),
    );
    let t0 = Timestamp::now();
    for minutes in [0, 6, 20] {
        scaler
            .scale(&get(&client).await, t0 + SignedDuration::from_mins(minutes))
            .await
            .unwrap();
        assert_eq!(replicas(&deployment(&client, &consumer).await), Some(4));
    }
    let status = &get(&client).await.status.unwrap().consumers["inventory"];
    assert_eq!(status.reason, "CountsUnreported");
    assert!(status.message.contains(&queues[1]), "{}", status.message);
    assert!(!status.message.contains(&queues[0]), "{}", status.message);
}

/// A running, ready pod of `labels` at `ip`.
fn running_pod(name: &str, labels: &BTreeMap<String, String>, ip: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {"containers": [{"name": "service", "image": "x"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }))
    .unwrap()
}

async fn selector_of(client: &Client, deployment_name: &str) -> BTreeMap<String, String> {
    deployment(client, deployment_name)
        .await
        .spec
        .unwrap()
        .selector
        .match_labels
        .unwrap()
}

async fn deletion_costs(client: &Client) -> BTreeMap<String, Option<String>> {
    Api::<Pod>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| {
            (
                p.name_any(),
                p.annotations().get(deletion_cost::ANNOTATION).cloned(),
            )
        })
        .collect()
}

async fn notes(client: &Client, reason: &str) -> Vec<String> {
    Api::<Event>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.note)
        .collect()
}

#[tokio::test]
async fn a_scale_down_removes_the_idle_consumers_first() {
    let (management, answers) = fake_management().await;
    let prefix = "t-idle-first.";
    let queues = inventory_queues(prefix);
    {
        let mut answers = answers.lock().unwrap();
        answers.queues = queues
            .iter()
            .map(|q| (q.clone(), counted(q, 0, 9)))
            .collect();
        // Pod a (10.0.0.1) holds 5 + 2 messages on two channels, pod b holds none,
        // pod c has no channel at all; 10.0.0.9 is some other pod, holding 40.
        answers.channels = json!([
            {"connection_details": {"peer_host": "10.0.0.1", "peer_port": 40001},
             "messages_unacknowledged": 5},
            {"connection_details": {"peer_host": "10.0.0.1", "peer_port": 40001},
             "messages_unacknowledged": 2},
            {"connection_details": {"peer_host": "10.0.0.2", "peer_port": 40002},
             "messages_unacknowledged": 0},
            {"connection_details": {"peer_host": "10.0.0.9", "peer_port": 40009},
             "messages_unacknowledged": 40},
        ]);
    }
    let system = on_external_broker(prefix, &management);
    let client = server(&system, "amqp://guest:guest@127.0.0.1:5672/%2f").await;
    reconcile_once(&client).await;
    let consumer = format!("{NAME}-inventory-consumer");
    let consumer_labels = selector_of(&client, &consumer).await;
    let api_labels = selector_of(&client, &format!("{NAME}-inventory")).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let mut b = running_pod("consumer-b", &consumer_labels, "10.0.0.2");
    // A cost from an earlier scale-down, when b was busy: rewritten.
    b.annotations_mut()
        .insert(deletion_cost::ANNOTATION.into(), "12".into());
    for pod in [
        running_pod("consumer-a", &consumer_labels, "10.0.0.1"),
        b,
        running_pod("consumer-c", &consumer_labels, "10.0.0.3"),
        running_pod("api", &api_labels, "10.0.0.9"),
    ] {
        pods.create(&Default::default(), &pod).await.unwrap();
    }
    Api::<Deployment>::namespaced(client.clone(), NS)
        .patch(
            &consumer,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                                 "metadata": {"name": consumer}, "spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    let scaler = Scaler::new(
        client.clone(),
        common::recorder(&client),
        Arc::new(Metrics::new()),
    );
    let t0 = Timestamp::now();
    // 9 messages in hand: 1 replica would do, but not within the window. No scale-down,
    // no costs touched.
    scaler.scale(&get(&client).await, t0).await.unwrap();
    assert_eq!(replicas(&deployment(&client, &consumer).await), Some(3));
    let before = deletion_costs(&client).await;
    assert_eq!(
        before.values().filter(|c| c.is_some()).count(),
        1,
        "{before:?}"
    );
    assert!(
        !answers
            .lock()
            .unwrap()
            .asked
            .iter()
            .any(|p| p.ends_with("/channels"))
    );

    // The window has passed: down to 1, and before that the costs are the work in hand.
    scaler
        .scale(&get(&client).await, t0 + SignedDuration::from_mins(5))
        .await
        .unwrap();
    assert_eq!(replicas(&deployment(&client, &consumer).await), Some(1));
    let costs = deletion_costs(&client).await;
    let some = |v: &str| Some(v.to_owned());
    assert_eq!(
        costs,
        BTreeMap::from([
            ("consumer-a".to_owned(), some("7")),
            ("consumer-b".to_owned(), some("0")),
            ("consumer-c".to_owned(), some("0")),
            ("api".to_owned(), None),
        ])
    );
    let asked = answers.lock().unwrap().asked.clone();
    assert!(
        asked.contains(&"/api/vhosts/%2F/channels".to_owned()),
        "{asked:?}"
    );
    let down = notes(&client, "ScaledDown").await;
    assert!(
        down.iter()
            .any(|n| n.contains("3 -> 1") && n.contains("pod-deletion-cost")),
        "{down:?}"
    );
}

#[tokio::test]
async fn without_per_pod_work_a_scale_down_leaves_the_order_to_the_replicaset() {
    // The channels come without their counts (statistics off for channels): no guess,
    // and the costs an earlier scale-down set are removed, so no old number decides.
    let (management, answers) = fake_management().await;
    let prefix = "t-no-work.";
    let queues = inventory_queues(prefix);
    {
        let mut answers = answers.lock().unwrap();
        answers.queues = queues
            .iter()
            .map(|q| (q.clone(), counted(q, 0, 0)))
            .collect();
        answers.channels = json!([
            {"connection_details": {"peer_host": "10.0.0.1", "peer_port": 40001}},
        ]);
    }
    let system = on_external_broker(prefix, &management);
    let client = server(&system, "amqp://guest:guest@127.0.0.1:5672/%2f").await;
    reconcile_once(&client).await;
    let consumer = format!("{NAME}-inventory-consumer");
    let labels = selector_of(&client, &consumer).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let mut a = running_pod("consumer-a", &labels, "10.0.0.1");
    a.annotations_mut()
        .insert(deletion_cost::ANNOTATION.into(), "7".into());
    pods.create(&Default::default(), &a).await.unwrap();
    pods.create(
        &Default::default(),
        &running_pod("consumer-b", &labels, "10.0.0.2"),
    )
    .await
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), NS)
        .patch(
            &consumer,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                                 "metadata": {"name": consumer}, "spec": {"replicas": 2}})),
        )
        .await
        .unwrap();
    let scaler = Scaler::new(
        client.clone(),
        common::recorder(&client),
        Arc::new(Metrics::new()),
    );
    let t0 = Timestamp::now();
    scaler.scale(&get(&client).await, t0).await.unwrap();
    scaler
        .scale(&get(&client).await, t0 + SignedDuration::from_mins(5))
        .await
        .unwrap();
    assert_eq!(replicas(&deployment(&client, &consumer).await), Some(1));
    assert_eq!(
        deletion_costs(&client).await,
        BTreeMap::from([
            ("consumer-a".to_owned(), None),
            ("consumer-b".to_owned(), None)
        ])
    );
    let down = notes(&client, "ScaledDown").await;
    assert!(
        down.iter()
            .any(|n| n.contains("the ReplicaSet picks the pods to remove")),
        "{down:?}"
    );
}

#[tokio::test]
async fn turning_autoscaling_off_removes_the_consumer_deployment_and_its_status() {
    let system = on_external_broker("t-off.", "http://127.0.0.1:1");
    let client = server(&system, "amqp://guest:guest@127.0.0.1:1/%2f").await;
    reconcile_once(&client).await;
    let scaler = Scaler::new(
        client.clone(),
        common::recorder(&client),
        Arc::new(Metrics::new()),
    );
    scaler
        .scale(&get(&client).await, Timestamp::now())
        .await
        .unwrap();
    assert!(
        get(&client)
            .await
            .status
            .unwrap()
            .consumers
            .contains_key("inventory")
    );

    let mut off = get(&client).await;
    off.spec.autoscaling.inventory.enabled = false;
    Api::<SalesSystem>::namespaced(client.clone(), NS)
        .replace(NAME, &Default::default(), &off)
        .await
        .unwrap();
    reconcile_once(&client).await;
    let names: Vec<String> = Api::<Deployment>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|d| d.name_any())
        .collect();
    assert!(
        !names.contains(&format!("{NAME}-inventory-consumer")),
        "{names:?}"
    );
    let api = deployment(&client, &format!("{NAME}-inventory")).await;
    assert!(
        !env_of(&api).contains_key("SERVICE_ROLE"),
        "back to one Deployment"
    );
    let status = get(&client).await.status.unwrap();
    assert!(status.consumers.is_empty(), "{:?}", status.consumers);
    assert!(
        !status
            .conditions
            .iter()
            .any(|c| c.type_ == "ConsumersScaled")
    );
}

// ---------------------------------------------------------------------------------------
// Against the real broker
// ---------------------------------------------------------------------------------------

fn management_url() -> String {
    std::env::var("SALES_RABBITMQ_MANAGEMENT_URL")
        .unwrap_or_else(|_| "http://guest:guest@127.0.0.1:15672".into())
}

/// `rabbitmqctl list_queues name messages_ready messages_unacknowledged`: the private
/// node of `cargo xtask infra` (run as its user, with its environment, as
/// `xtask/src/infra.rs` does), else the machine's default node.
fn rabbitmqctl_list_queues() -> BTreeMap<String, (u64, u64)> {
    let base = std::env::var_os("SALES_INFRA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/sales-system-infra"));
    let dir = base.join("rabbitmq");
    let ctl = ["/usr/lib/rabbitmq/bin/rabbitmqctl", "/usr/sbin/rabbitmqctl"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("rabbitmqctl"));
    // The vhost the tests' AMQP URL names (`cargo xtask test` gives each run its own).
    let vhost = reqwest::Url::parse(&sales_testkit::amqp_url())
        .ok()
        .map(|url| {
            percent_encoding::percent_decode_str(url.path().trim_start_matches('/'))
                .decode_utf8_lossy()
                .into_owned()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "/".to_owned());
    let args = [
        "list_queues",
        "-q",
        "-p",
        vhost.as_str(),
        "name",
        "messages_ready",
        "messages_unacknowledged",
    ];
    let output = if dir.join("mnesia").exists() {
        let p = |name: &str| dir.join(name).display().to_string();
        let env = [
            ("HOME", dir.display().to_string()),
            ("RABBITMQ_NODENAME", "salesdev@localhost".into()),
            ("RABBITMQ_DIST_PORT", "25679".into()),
            ("RABBITMQ_MNESIA_BASE", p("mnesia")),
            ("RABBITMQ_LOG_BASE", p("log")),
            ("RABBITMQ_PID_FILE", p("pid")),
            ("RABBITMQ_ENABLED_PLUGINS_FILE", p("enabled_plugins")),
            ("RABBITMQ_CONFIG_FILE", p("rabbitmq")),
            ("RABBITMQ_CONF_ENV_FILE", p("rabbitmq-env.conf")),
            ("ERL_EPMD_ADDRESS", "127.0.0.1".into()),
        ];
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let mut cmd = if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "rabbitmq", "--", "env"]);
            c.args(env.iter().map(|(k, v)| format!("{k}={v}")));
            c.arg(&ctl);
            c
        } else {
            let mut c = Command::new(&ctl);
            c.envs(env.iter().map(|(k, v)| (k, v)));
            c
        };
        cmd.args(["-n", "salesdev@localhost"]).args(args).output()
    } else {
        Command::new(&ctl).args(args).output()
    }
    .expect("run rabbitmqctl");
    assert!(
        output.status.success(),
        "rabbitmqctl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut f = line.split('\t');
            let (name, ready, unacked) = (f.next()?, f.next()?, f.next()?);
            Some((
                name.to_owned(),
                (ready.trim().parse().ok()?, unacked.trim().parse().ok()?),
            ))
        })
        .collect()
}

#[tokio::test]
async fn the_depth_read_matches_rabbitmqctl_and_drives_the_replicas() {
    let broker = TestBroker::new();
    let conn = broker.connect().await;
    sales_platform::messaging::rabbitmq::declare_topology(&conn, &broker.topology())
        .await
        .expect("declare the queues");
    let queues: Vec<String> = subscriptions_of("inventory")
        .map(|s| broker.topology().queue(s))
        .collect();
    let (stock, paid) = (&queues[1], &queues[2]);
    assert!(stock.ends_with("inventory.update-stock") && paid.ends_with("inventory.paid-order"));

    // 350 + 60 messages; a consumer holds 20 of the first queue without acking them.
    let publisher = conn.create_channel().await.unwrap();
    publisher.confirm_select(Default::default()).await.unwrap();
    for (queue, count) in [(stock, 350), (paid, 60)] {
        for i in 0..count {
            publisher
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    format!("{{\"n\": {i}}}").as_bytes(),
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .unwrap()
                .await
                .unwrap();
        }
    }
    let holder = conn.create_channel().await.unwrap();
    holder
        .basic_qos(20, BasicQosOptions::default())
        .await
        .unwrap();
    let _deliveries = holder
        .basic_consume(
            stock.as_str().into(),
            "holder".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let ours = |all: &BTreeMap<String, (u64, u64)>| -> BTreeMap<String, (u64, u64)> {
        queues
            .iter()
            .map(|q| (q.clone(), all.get(q).copied().unwrap_or((u64::MAX, 0))))
            .collect()
    };
    let expected: BTreeMap<String, (u64, u64)> = queues
        .iter()
        .map(|q| {
            let counts = if q == stock {
                (330, 20)
            } else if q == paid {
                (60, 0)
            } else {
                (0, 0)
            };
            (q.clone(), counts)
        })
        .collect();
    sales_testkit::eventually(
        "rabbitmqctl shows the messages",
        Duration::from_secs(30),
        || async { (ours(&rabbitmqctl_list_queues()) == expected).then_some(()) },
    )
    .await;

    // The management API's numbers trail the queues by a statistics interval.
    let amqp = sales_testkit::amqp_url();
    let mut management = reqwest::Url::parse(&management_url()).unwrap();
    let _ = management.set_username("");
    let _ = management.set_password(None);
    let management = management.as_str().trim_end_matches('/').to_owned();
    let reader = Management::new(&amqp, Some(&management)).unwrap();
    let http = sales_testkit::http_client();
    sales_testkit::eventually(
        "the management API caught up",
        Duration::from_secs(30),
        || async {
            let read = reader.queues(&http, &queues).await.ok()?;
            let seen: BTreeMap<String, (u64, u64)> = read
                .iter()
                .map(|q| (q.name.clone(), (q.ready, q.unacknowledged)))
                .collect();
            (seen == expected).then_some(())
        },
    )
    .await;

    let system = on_external_broker(&broker.prefix, &management);
    let client = server(&system, &amqp).await;
    reconcile_once(&client).await;
    let consumer = format!("{NAME}-inventory-consumer");
    assert_eq!(
        replicas(&deployment(&client, &consumer).await),
        None,
        "not set by the reconcile"
    );

    let metrics = Arc::new(Metrics::new());
    let scaler = Scaler::new(client.clone(), common::recorder(&client), metrics.clone());
    let t0 = Timestamp::now();
    scaler.scale(&get(&client).await, t0).await.unwrap();

    // What the operator read is what rabbitmqctl says, queue by queue.
    let truth = ours(&rabbitmqctl_list_queues());
    let system = get(&client).await;
    let status = system.status.as_ref().unwrap().consumers["inventory"].clone();
    let read: BTreeMap<String, (u64, u64)> = status
        .queues
        .iter()
        .map(|q| (q.name.clone(), (q.ready as u64, q.unacknowledged as u64)))
        .collect();
    assert_eq!(read, truth);
    let depth: u64 = truth.values().map(|(r, u)| r + u).sum();
    assert_eq!((depth, status.depth), (410, 410));
    // clamp(ceil(410 / 100), 1, 10) = 5, written at once.
    assert_eq!(
        (status.replicas, status.recommended, status.reason.as_str()),
        (5, Some(5), "ScaledUp")
    );
    let scaled = deployment(&client, &consumer).await;
    assert_eq!(replicas(&scaled), Some(5));
    // Only spec.replicas, under the scaler's own field manager.
    let managers: BTreeMap<String, String> = scaled
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|m| {
            (
                m.manager.clone().unwrap_or_default(),
                serde_json::to_string(&m.fields_v1).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        managers.get(FIELD_MANAGER).map(String::as_str),
        Some(r#"{"f:spec":{"f:replicas":{}}}"#),
        "{managers:?}"
    );
    assert!(
        managers
            .get(MANAGER)
            .is_none_or(|fields| !fields.contains("f:replicas")),
        "{managers:?}"
    );
    assert_eq!(
        condition(&system, "ConsumersScaled"),
        Some(("True".into(), "Scaled".into()))
    );
    let exported = metrics.render();
    for line in [
        r#"sales_operator_consumer_replicas{namespace="sales",service="inventory",system="shop-scaled"} 5"#,
        r#"sales_operator_consumer_desired_replicas{namespace="sales",service="inventory",system="shop-scaled"} 5"#,
    ] {
        assert!(exported.contains(line), "{line} in\n{exported}");
    }
    assert!(exported.contains(&format!(
        r#"sales_operator_queue_depth{{namespace="sales",queue="{stock}",service="inventory",system="shop-scaled"}} 350"#
    )));

    // A reconcile leaves the replicas alone.
    reconcile_once(&client).await;
    assert_eq!(replicas(&deployment(&client, &consumer).await), Some(5));

    // Drain: the holder lets go, the queues are purged.
    holder.close(200, "done".into()).await.unwrap();
    for q in &queues {
        publisher
            .queue_purge(q.as_str().into(), QueuePurgeOptions::default())
            .await
            .unwrap();
    }
    let empty: BTreeMap<String, (u64, u64)> = queues.iter().map(|q| (q.clone(), (0, 0))).collect();
    sales_testkit::eventually("the queues drained", Duration::from_secs(30), || async {
        let read = reader.queues(&http, &queues).await.ok()?;
        let seen: BTreeMap<String, (u64, u64)> = read
            .iter()
            .map(|q| (q.name.clone(), (q.ready, q.unacknowledged)))
            .collect();
        (seen == empty && ours(&rabbitmqctl_list_queues()) == empty).then_some(())
    })
    .await;

    // Within the window: 5 stays, though 1 would do.
    for seconds in [15, 120, 299] {
        scaler
            .scale(&get(&client).await, t0 + SignedDuration::from_secs(seconds))
            .await
            .unwrap();
        let status = &get(&client).await.status.unwrap().consumers["inventory"];
        assert_eq!(
            (status.replicas, status.recommended, status.reason.as_str()),
            (5, Some(1), "Stabilizing"),
            "{seconds} s after the peak: {}",
            status.message
        );
        assert_eq!(replicas(&deployment(&client, &consumer).await), Some(5));
    }
    // The window has passed: down to the formula's 1.
    scaler
        .scale(&get(&client).await, t0 + SignedDuration::from_secs(300))
        .await
        .unwrap();
    let status = &get(&client).await.status.unwrap().consumers["inventory"];
    assert_eq!((status.replicas, status.reason.as_str()), (1, "ScaledDown"));
    assert_eq!(replicas(&deployment(&client, &consumer).await), Some(1));
    assert!(metrics.render().contains(
        r#"sales_operator_consumer_scalings_total{direction="down",namespace="sales",service="inventory",system="shop-scaled"} 1"#
    ));

    let _ = conn.close(200, "test done".into()).await;
    broker.delete().await;
}

#[tokio::test]
async fn the_consumer_configmap_is_the_services() {
    // The consumer pods load the service's own ConfigMap: one set of settings.
    let system = example();
    let client = server(&system, "amqp://x").await;
    reconcile_once(&client).await;
    let consumer = deployment(&client, &format!("{NAME}-shipping-consumer")).await;
    let from = consumer.spec.unwrap().template.spec.unwrap().containers[0]
        .env_from
        .clone()
        .unwrap()[0]
        .config_map_ref
        .clone()
        .unwrap()
        .name;
    assert_eq!(from, format!("{NAME}-shipping"));
    Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get(&from)
        .await
        .expect("it exists");
}
