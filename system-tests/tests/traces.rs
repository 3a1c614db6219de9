//! Traces, read from a real OTLP/HTTP receiver started here (protobuf
//! `ExportTraceServiceRequest`s posted to `/v1/traces`, as a collector takes them): the
//! services are pointed at it with the standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
//! one order is placed through the gateway, and its trace must be one connected tree,
//! gateway -> order -> inventory -> broker -> consumers, whose span names, kinds and
//! attributes follow the OpenTelemetry semantic conventions (HTTP and messaging).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use system_tests::{Service, System, SystemOptions};

// OTLP's span kinds.
const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const PRODUCER: i32 = 4;
const CONSUMER: i32 = 5;

#[derive(Clone, Debug)]
struct CollectedSpan {
    service: String,
    resource: BTreeMap<String, String>,
    trace_id: String,
    span_id: String,
    /// Empty for a root span.
    parent_id: String,
    name: String,
    kind: i32,
    attributes: BTreeMap<String, String>,
    /// `(trace id, span id)` of each linked span.
    links: Vec<(String, String)>,
}

impl CollectedSpan {
    fn attr(&self, key: &str) -> &str {
        self.attributes.get(key).map(String::as_str).unwrap_or("")
    }
}

impl std::fmt::Display for CollectedSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} [{}] {:?} kind={} id={} parent={} {:?}",
            self.trace_id,
            self.service,
            self.name,
            self.kind,
            self.span_id,
            self.parent_id,
            self.attributes
        )
    }
}

/// An OTLP/HTTP receiver that keeps every span it is sent.
struct Collector {
    endpoint: String,
    spans: Arc<Mutex<Vec<CollectedSpan>>>,
    server: tokio::task::JoinHandle<()>,
}

fn any_value(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(V::StringValue(s)) => s.clone(),
        Some(V::IntValue(i)) => i.to_string(),
        Some(V::BoolValue(b)) => b.to_string(),
        Some(V::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

type KeyValues = [opentelemetry_proto::tonic::common::v1::KeyValue];

fn attributes(kvs: &KeyValues) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), any_value(&kv.value)))
        .collect()
}

impl Collector {
    async fn start() -> Collector {
        use axum::body::Bytes;
        use axum::extract::State;
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use prost::Message;

        type Store = Arc<Mutex<Vec<CollectedSpan>>>;
        async fn export(
            State(store): State<Store>,
            body: Bytes,
        ) -> impl axum::response::IntoResponse {
            let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                return (StatusCode::BAD_REQUEST, Vec::new());
            };
            let mut spans = Vec::new();
            for resource_spans in request.resource_spans {
                let resource = resource_spans
                    .resource
                    .map(|r| attributes(&r.attributes))
                    .unwrap_or_default();
                let service = resource.get("service.name").cloned().unwrap_or_default();
                for scope in resource_spans.scope_spans {
                    for span in scope.spans {
                        spans.push(CollectedSpan {
                            service: service.clone(),
                            resource: resource.clone(),
                            trace_id: hex(&span.trace_id),
                            span_id: hex(&span.span_id),
                            parent_id: hex(&span.parent_span_id),
                            name: span.name,
                            kind: span.kind,
                            attributes: attributes(&span.attributes),
                            links: span
                                .links
                                .iter()
                                .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                                .collect(),
                        });
                    }
                }
            }
            store.lock().unwrap().extend(spans);
            (StatusCode::OK, Vec::new())
        }

        let spans: Store = Arc::default();
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(export))
            .with_state(spans.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Collector {
            endpoint: format!("http://127.0.0.1:{port}/v1/traces"),
            spans,
            server,
        }
    }

    fn spans(&self) -> Vec<CollectedSpan> {
        self.spans.lock().unwrap().clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Is `span` below `ancestor` in `trace`?
fn descends_from(span: &CollectedSpan, ancestor: &CollectedSpan, trace: &[CollectedSpan]) -> bool {
    let mut parent = span.parent_id.clone();
    for _ in 0..trace.len() {
        if parent == ancestor.span_id {
            return true;
        }
        match trace.iter().find(|s| s.span_id == parent) {
            Some(p) => parent = p.parent_id.clone(),
            None => return false,
        }
    }
    false
}

fn one<'a>(
    trace: &'a [CollectedSpan],
    what: &str,
    rendered: &str,
    pred: impl Fn(&CollectedSpan) -> bool,
) -> &'a CollectedSpan {
    let found: Vec<&CollectedSpan> = trace.iter().filter(|s| pred(s)).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one span: {what}; the trace:\n{rendered}"
    );
    found[0]
}

// Several threads: the receiver must keep answering while `System::stop` blocks
// this one, or the services' exporters time out flushing their last spans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_order_through_the_gateway_makes_one_connected_trace() {
    one_connected_trace(false).await;
}

/// The same over Kafka: the trace context crosses each Kafka hop in the record headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_kafka_one_order_through_the_gateway_makes_one_connected_trace() {
    one_connected_trace(true).await;
}

/// Says whether a span is the one looked for.
type SpanTest = Box<dyn Fn(&CollectedSpan) -> bool>;

/// The consumer of `queue` (`inventory.update-stock`) in `service`.
fn consumer_of(service: &'static str, queue: &'static str) -> impl Fn(&CollectedSpan) -> bool {
    move |s: &CollectedSpan| {
        s.service == service
            && s.kind == CONSUMER
            && s.attr("messaging.operation.type") == "process"
            && s.attr("sales.subscription") == queue
    }
}

async fn one_connected_trace(kafka: bool) {
    let collector = Collector::start().await;
    let env: HashMap<Service, Vec<(String, String)>> = Service::ALL
        .iter()
        .map(|s| {
            (
                *s,
                vec![
                    (
                        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT".into(),
                        collector.endpoint.clone(),
                    ),
                    (
                        "OTEL_RESOURCE_ATTRIBUTES".into(),
                        "deployment.environment.name=system-test".into(),
                    ),
                    // Spans are `info`: the tests' default `warn` still makes them
                    // (TRACE_FILTER is separate), but logs them less.
                    ("RUST_LOG".into(), "info".into()),
                    // Batches go out every 200 ms instead of 5 s.
                    ("OTEL_BSP_SCHEDULE_DELAY".into(), "200".into()),
                ],
            )
        })
        .collect();
    let sys = System::start_with(SystemOptions {
        env,
        kafka,
        ..Default::default()
    })
    .await;
    let mug = sys.add_product("OBS-MUG", 1200, 10).await;
    let (_, token) = sys.register("trace@example.com", "Trace").await;
    let (status, order) = sys
        .call(
            Method::POST,
            "/api/v1/orders",
            Some(json!({"items": [{"product_id": mug, "quantity": 1}]})),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");

    // The order's trace: the one of the gateway's call to the order service.
    let is_order_call = |s: &CollectedSpan| {
        s.service == "gateway" && s.kind == CLIENT && s.attr("service.peer.name") == "order"
    };
    let wanted: [(&str, SpanTest); 5] = [
        (
            "notification consuming create-order",
            Box::new(consumer_of("notification", "notification.create-order")),
        ),
        (
            "inventory consuming update-stock",
            Box::new(consumer_of("inventory", "inventory.update-stock")),
        ),
        (
            "the inventory's server span",
            Box::new(|s: &CollectedSpan| s.service == "inventory" && s.kind == SERVER),
        ),
        (
            "the gateway's server span",
            Box::new(|s: &CollectedSpan| s.service == "gateway" && s.kind == SERVER),
        ),
        (
            "the order service's publish",
            Box::new(|s: &CollectedSpan| s.service == "order" && s.kind == PRODUCER),
        ),
    ];
    // Until every span expected has arrived (the exporters send every 200 ms), then
    // a last moment for the rest of their batches.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let (trace_id, all) = loop {
        let all = collector.spans();
        let trace_id = all
            .iter()
            .find(|s| is_order_call(s))
            .map(|s| s.trace_id.clone());
        let missing: Vec<&str> = match &trace_id {
            None => vec!["the gateway calling the order service"],
            Some(id) => wanted
                .iter()
                .filter(|(_, pred)| !all.iter().any(|s| &s.trace_id == id && pred(s)))
                .map(|(what, _)| *what)
                .collect(),
        };
        if missing.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            break (trace_id, collector.spans());
        }
        let services: BTreeSet<&str> = all.iter().map(|s| s.service.as_str()).collect();
        assert!(
            tokio::time::Instant::now() < deadline,
            "after 60 s, still missing {missing:?}; {} spans from {services:?}",
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let trace_id = trace_id.unwrap();
    let trace: Vec<CollectedSpan> = all
        .iter()
        .filter(|s| s.trace_id == trace_id)
        .cloned()
        .collect();
    let rendered = trace
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");

    // The resource: the service's name, the system's namespace and version, and what
    // OTEL_RESOURCE_ATTRIBUTES adds.
    for span in &trace {
        assert_eq!(span.resource["service.namespace"], "sales-system", "{span}");
        assert!(span.resource.contains_key("service.version"), "{span}");
        assert_eq!(
            span.resource["deployment.environment.name"], "system-test",
            "{span}"
        );
    }

    // gateway: the server span (the root), named `{method} {route}`.
    let gateway = one(&trace, "the gateway's server span", &rendered, |s| {
        s.service == "gateway" && s.kind == SERVER
    });
    assert!(gateway.parent_id.is_empty(), "the root:\n{rendered}");
    assert_eq!(gateway.name, "POST /api/v1/orders…", "{rendered}");
    assert_eq!(gateway.attr("http.request.method"), "POST");
    assert_eq!(gateway.attr("http.route"), "/api/v1/orders…");
    assert_eq!(gateway.attr("url.path"), "/api/v1/orders");
    assert_eq!(gateway.attr("server.address"), "127.0.0.1");
    assert_eq!(gateway.attr("http.response.status_code"), "201");

    // ... its client call to the order service, named `{method}`.
    let to_order = one(
        &trace,
        "the gateway calling the order",
        &rendered,
        is_order_call,
    );
    assert!(descends_from(to_order, gateway, &trace), "{rendered}");
    assert_eq!(to_order.name, "POST", "{rendered}");
    assert_eq!(to_order.attr("http.request.method"), "POST");
    assert_eq!(to_order.attr("server.address"), "127.0.0.1");
    assert!(!to_order.attr("server.port").is_empty(), "{to_order}");
    assert!(
        to_order.attr("url.full").starts_with("http://127.0.0.1:")
            && to_order.attr("url.full").ends_with("/api/v1/orders"),
        "{to_order}"
    );
    assert_eq!(to_order.attr("http.response.status_code"), "201");

    // order: its server span continues the gateway's call.
    let order_server = one(&trace, "the order service's server span", &rendered, |s| {
        s.service == "order" && s.kind == SERVER
    });
    assert_eq!(order_server.name, "POST /api/v1/orders", "{rendered}");
    assert_eq!(order_server.attr("http.route"), "/api/v1/orders");
    assert_eq!(order_server.parent_id, to_order.span_id, "{rendered}");

    // order -> inventory: the client span of the reservation, and the inventory's
    // server span under it.
    let reserve = one(&trace, "the order reserving stock", &rendered, |s| {
        s.service == "order"
            && s.kind == CLIENT
            && s.attr("service.peer.name") == "inventory"
            && s.attr("url.full")
                .ends_with("/api/v1/inventory/reservations")
    });
    assert_eq!(reserve.name, "POST", "{rendered}");
    assert!(descends_from(reserve, order_server, &trace), "{rendered}");
    let inventory_server = one(&trace, "the inventory's server span", &rendered, |s| {
        s.service == "inventory" && s.kind == SERVER
    });
    assert_eq!(inventory_server.name, "POST /api/v1/inventory/reservations");
    assert_eq!(inventory_server.parent_id, reserve.span_id, "{rendered}");

    // order -> product: the prices, when the order service asked the catalogue.
    for product_server in trace
        .iter()
        .filter(|s| s.service == "product" && s.kind == SERVER)
    {
        let caller = trace
            .iter()
            .find(|s| s.span_id == product_server.parent_id)
            .unwrap_or_else(|| panic!("the product span's parent is missing:\n{rendered}"));
        assert_eq!(
            (caller.service.as_str(), caller.kind),
            ("order", CLIENT),
            "{rendered}"
        );
    }

    // The consumers continue the order's trace, each as the child of the producer
    // span that published its message.
    let system = if kafka { "kafka" } else { "rabbitmq" };
    for (service, queue, message_type) in [
        ("notification", "notification.create-order", "create-order"),
        ("inventory", "inventory.update-stock", "update-stock"),
    ] {
        let consumer = one(
            &trace,
            &format!("{service} consuming {queue}"),
            &rendered,
            consumer_of(service, queue),
        );
        let destination = consumer.attr("messaging.destination.name");
        assert_eq!(
            consumer.name,
            format!("process {destination}"),
            "{rendered}"
        );
        assert_eq!(consumer.attr("messaging.system"), system, "{consumer}");
        if kafka {
            // The event topic, read by the subscription's consumer group.
            assert!(
                destination.ends_with(&format!("sales.{message_type}")),
                "{consumer}"
            );
            assert!(
                consumer
                    .attr("messaging.consumer.group.name")
                    .ends_with(queue),
                "{consumer}"
            );
        } else {
            assert!(destination.ends_with(queue), "{consumer}");
        }
        let producer = trace
            .iter()
            .find(|s| s.span_id == consumer.parent_id)
            .unwrap_or_else(|| panic!("the parent of {queue}'s consumer is missing:\n{rendered}"));
        assert_eq!(
            (producer.service.as_str(), producer.kind),
            ("order", PRODUCER),
            "{rendered}"
        );
        let published_to = producer.attr("messaging.destination.name");
        assert_eq!(
            producer.name,
            format!("publish {published_to}"),
            "{rendered}"
        );
        assert_eq!(producer.attr("messaging.system"), system, "{producer}");
        assert_eq!(
            producer.attr("messaging.operation.type"),
            "send",
            "{producer}"
        );
        assert_eq!(
            producer.attr("messaging.operation.name"),
            "publish",
            "{producer}"
        );
        if kafka {
            assert_eq!(published_to, destination, "{producer}");
        } else {
            // RabbitMQ: to the exchange, routed by type.
            assert!(published_to.ends_with("sales.events"), "{producer}");
            assert_eq!(
                producer.attr("messaging.rabbitmq.destination.routing_key"),
                message_type,
                "{producer}"
            );
        }
        let message_id = producer.attr("messaging.message.id");
        assert!(uuid::Uuid::parse_str(message_id).is_ok(), "{producer}");
        assert_eq!(
            consumer.attr("messaging.message.id"),
            message_id,
            "{consumer}"
        );
        assert!(descends_from(consumer, order_server, &trace), "{rendered}");

        // The relay's batch is a trace of its own, linked to each message it sent.
        let batch = all
            .iter()
            .find(|s| {
                s.service == "order"
                    && s.links
                        .contains(&(producer.trace_id.clone(), producer.span_id.clone()))
            })
            .unwrap_or_else(|| panic!("no span links to {producer}"));
        assert!(batch.parent_id.is_empty(), "{batch}");
        assert_ne!(batch.trace_id, trace_id, "{batch}");
    }

    // The database work is in the trace: the order and its events are written by
    // the order service, the stock reserved by the inventory, the inbox rows by the
    // consumers.
    for (service, name) in [
        ("order", "db insert order"),
        ("order", "db outbox insert"),
        ("inventory", "db reserve stock"),
        ("notification", "db inbox insert"),
        ("inventory", "db inbox insert"),
    ] {
        let db = trace
            .iter()
            .find(|s| s.service == service && s.name == name)
            .unwrap_or_else(|| panic!("no {name:?} span of {service} in the trace:\n{rendered}"));
        assert_eq!(db.attr("db.system"), "postgresql");
        assert!(descends_from(db, order_server, &trace), "{rendered}");
    }

    // One connected trace: one root, and every other span's parent in it.
    let roots: Vec<&CollectedSpan> = trace.iter().filter(|s| s.parent_id.is_empty()).collect();
    assert_eq!(roots.len(), 1, "{rendered}");
    for span in &trace {
        assert!(
            span.parent_id.is_empty() || trace.iter().any(|p| p.span_id == span.parent_id),
            "{span}: its parent is not in the trace:\n{rendered}"
        );
    }

    eprintln!("the order's trace ({} spans):\n{rendered}", trace.len());
    sys.stop().await;
}
