//! The exact API requests of one reconcile, pinned with a `tower_test` mock (the
//! controller-rs fixture pattern): the lean example (external broker, databases and
//! Redis; no admin, policies, Ingress or ServiceMonitor), freshly created with its
//! finalizer in place. Any request not in the list, or in another order, fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use kube::client::Body;
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use sales_operator::crd::{FINALIZER, SalesSystem};
use sales_operator::events::{Recorder, Reporter};
use sales_operator::metrics::Metrics;
use sales_operator::reconcile::{Context, reconcile};
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn lean() -> SalesSystem {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/salessystem-minimal.yaml");
    let mut system =
        sales_operator::render::parse(&std::fs::read_to_string(path).expect("example"))
            .expect("a SalesSystem");
    system.metadata.uid = Some("uid-lean".into());
    system.metadata.generation = Some(1);
    system.metadata.finalizers = Some(vec![FINALIZER.into()]);
    system
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).expect("JSON")))
        .expect("a response")
}

fn not_found() -> Response<Body> {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "reason": "NotFound", "code": 404, "message": "not found"}),
    )
}

/// Answers like an API server holding the lean system's infrastructure Secret and,
/// with `stale_topic`, a KafkaTopic of the system its spec no longer wants; records
/// `METHOD path` of every request.
async fn serve(
    mut handle: Handle,
    seen: Arc<Mutex<Vec<String>>>,
    system: Value,
    stale_topic: bool,
) {
    while let Some((request, send)) = handle.next_request().await {
        let method = request.method().to_string();
        let uri = request.uri().clone();
        let path = uri.path().to_owned();
        let query = uri.query().unwrap_or_default().to_owned();
        let content_type = request
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body: Value = request
            .into_body()
            .collect_bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        let line = match method.as_str() {
            "PATCH" if content_type.contains("apply-patch") => {
                assert!(
                    query.contains("fieldManager=sales-operator") && query.contains("force=true"),
                    "server-side apply with one field manager, forced: {query}"
                );
                format!("APPLY {path}")
            }
            "PATCH" if path.contains("/kafkatopics/") => format!(
                "PATCH {path} ({content_type}) strimzi.io/managed={}",
                body["metadata"]["annotations"]["strimzi.io/managed"]
            ),
            "PATCH" => format!("PATCH {path} ({content_type})"),
            "GET" if !query.is_empty() && query.contains("labelSelector") => format!("LIST {path}"),
            _ => format!("{method} {path}"),
        };
        seen.lock().map(|mut s| s.push(line.clone())).ok();
        let response = match (method.as_str(), path.as_str()) {
            ("GET", "/api/v1/namespaces/sales/secrets/lean-infra") => json_response(
                StatusCode::OK,
                &json!({"apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": "lean-infra", "namespace": "sales"},
                        "stringData": {"amqp": "amqp://x", "redis": "redis://x",
                            "product": "postgres://p", "order": "postgres://o",
                            "customer": "postgres://c", "payment": "postgres://pa",
                            "inventory": "postgres://i", "shipping": "postgres://s",
                            "notification": "postgres://n"}}),
            ),
            ("GET", p)
                if stale_topic && line.starts_with("LIST") && p.ends_with("/kafkatopics") =>
            {
                json_response(
                    StatusCode::OK,
                    &json!({"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaTopicList",
                        "metadata": {}, "items": [{
                            "apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaTopic",
                            "metadata": {"name": "lean-old.sales.paid-order", "namespace": "sales",
                                "ownerReferences": [{"apiVersion": "sales-system.io/v1alpha1",
                                    "kind": "SalesSystem", "name": "lean", "uid": "uid-lean",
                                    "controller": true}]},
                            "spec": {"topicName": "old.sales.paid-order"}}]}),
                )
            }
            ("DELETE", _) => json_response(
                StatusCode::OK,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
            ),
            ("GET", _) if line.starts_with("LIST") => json_response(
                StatusCode::OK,
                &json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": []}),
            ),
            ("GET", _) => not_found(),
            // The finalizer taken off (a JSON patch): the object as it stands.
            ("PATCH", p) if p.ends_with("/salessystems/lean") => {
                json_response(StatusCode::OK, &system)
            }
            ("PATCH", p) if p.ends_with("/status") => {
                let mut updated = system.clone();
                updated["status"] = body["status"].clone();
                json_response(StatusCode::OK, &updated)
            }
            ("POST" | "PATCH", _) => json_response(StatusCode::OK, &body),
            _ => not_found(),
        };
        send.send_response(response);
    }
}

/// One reconcile of `system` against [`serve`]: the requests it made, and what it
/// asked to be done next.
async fn one_reconcile(system: SalesSystem, stale_topic: bool) -> (Vec<String>, Action) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = tokio::spawn(serve(
        handle,
        seen.clone(),
        serde_json::to_value(&system).unwrap_or_default(),
        stale_topic,
    ));
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "sales-operator".into(),
            instance: Some("test".into()),
        },
    );
    let ctx = Arc::new(Context::new(client, recorder, Arc::new(Metrics::new())));
    let action = tokio::time::timeout(Duration::from_secs(10), reconcile(Arc::new(system), ctx))
        .await
        .expect("the reconcile finishes (an unanswered request would hang it)")
        .expect("reconcile succeeds");
    server.abort();
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    (seen, action)
}

#[tokio::test]
async fn one_reconcile_makes_exactly_these_requests() {
    let (seen, action) = one_reconcile(lean(), false).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));

    let ns = "/api/v1/namespaces/sales";
    let apps = "/apis/apps/v1/namespaces/sales";
    let policy = "/apis/policy/v1/namespaces/sales";
    let events = "POST /apis/events.k8s.io/v1/namespaces/sales/events".to_owned();
    let services = [
        "product",
        "order",
        "customer",
        "payment",
        "inventory",
        "shipping",
        "notification",
        "gateway",
    ];
    let mut expected = vec![
        // 1. the user's Secret, read once for all its keys
        format!("GET {ns}/secrets/lean-infra"),
        // 2. the generated identity (signing keys, client secrets): absent, so
        //    created (and an Event says so)
        format!("GET {ns}/secrets/lean-identity"),
        format!("POST {ns}/secrets"),
        events.clone(),
    ];
    // 3. every child, server-side applied in order
    for s in services {
        expected.push(format!("APPLY {ns}/configmaps/lean-{s}"));
    }
    for s in services {
        expected.push(format!("APPLY {ns}/services/lean-{s}"));
        expected.push(format!("APPLY {apps}/deployments/lean-{s}"));
    }
    for s in services {
        expected.push(format!("APPLY {policy}/poddisruptionbudgets/lean-{s}"));
    }
    // 4. a new generation: look for children the spec no longer wants
    for list in [
        format!("{ns}/configmaps"),
        format!("{ns}/services"),
        format!("{apps}/statefulsets"),
        format!("{apps}/deployments"),
        "/apis/batch/v1/namespaces/sales/cronjobs".into(),
        format!("{policy}/poddisruptionbudgets"),
        "/apis/networking.k8s.io/v1/namespaces/sales/networkpolicies".into(),
        "/apis/networking.k8s.io/v1/namespaces/sales/ingresses".into(),
        "/apis/monitoring.coreos.com/v1/namespaces/sales/servicemonitors".into(),
        "/apis/kafka.strimzi.io/v1/namespaces/sales/kafkatopics".into(),
        "/apis/kafka.strimzi.io/v1/namespaces/sales/kafkausers".into(),
        "/apis/postgresql.cnpg.io/v1/namespaces/sales/clusters".into(),
        "/apis/postgresql.cnpg.io/v1/namespaces/sales/scheduledbackups".into(),
    ] {
        expected.push(format!("LIST {list}"));
    }
    expected.extend([
        events,
        // 5. what runs, then the status
        format!("LIST {apps}/deployments"),
        format!("LIST {apps}/statefulsets"),
        "PATCH /apis/sales-system.io/v1alpha1/namespaces/sales/salessystems/lean/status (application/merge-patch+json)".into(),
    ]);
    assert_eq!(seen, expected);
    assert_eq!(seen.len(), 53);
    assert_eq!(lean().name_any(), "lean");
}

/// A KafkaTopic the spec no longer wants is let go by Strimzi first
/// (`strimzi.io/managed: "false"`), then deleted: its topic and messages stay in Kafka.
#[tokio::test]
async fn a_stale_kafka_topic_is_released_before_it_is_deleted() {
    let (seen, _) = one_reconcile(lean(), true).await;
    let topic = "/apis/kafka.strimzi.io/v1/namespaces/sales/kafkatopics/lean-old.sales.paid-order";
    let touched: Vec<&String> = seen.iter().filter(|l| l.contains(topic)).collect();
    assert_eq!(
        touched,
        [
            &format!("PATCH {topic} (application/merge-patch+json) strimzi.io/managed=\"false\""),
            &format!("DELETE {topic}"),
        ]
    );
}

/// A SalesSystem deleted with `deletionPolicy: Retain` lets Strimzi go of its
/// KafkaTopics before garbage collection deletes them: the topics stay in Kafka.
#[tokio::test]
async fn a_retained_system_releases_its_kafka_topics_and_deletes_none() {
    let mut system = lean();
    system.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
    );
    let (seen, _) = one_reconcile(system, true).await;
    let topic = "/apis/kafka.strimzi.io/v1/namespaces/sales/kafkatopics/lean-old.sales.paid-order";
    let touched: Vec<&String> = seen.iter().filter(|l| l.contains(topic)).collect();
    assert_eq!(
        touched,
        [&format!(
            "PATCH {topic} (application/merge-patch+json) strimzi.io/managed=\"false\""
        )],
        "{seen:#?}"
    );
}
