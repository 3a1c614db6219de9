//! What one order writes to the logs at `RUST_LOG=info` with `LOG_FORMAT=json`:
//!
//! - every line is one JSON object, and every line written inside a span carries the
//!   trace's `trace_id` and the span's `span_id` as top-level fields (Grafana jumps
//!   from a log line to its trace by them);
//! - per request, one INFO line (`method`, `route`, `status`, `elapsed_ms`,
//!   `trace_id`), and per message consumed one; the steps in between are DEBUG;
//! - the lines' sizes per service are printed (docs/observability.md quotes them).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use system_tests::{Service, System, SystemOptions};

/// A processed-message count of `queue` on `service`'s admin `/metrics`.
async fn processed(sys: &System, service: Service, queue: &str) -> f64 {
    let Ok(response) = sales_testkit::http_get(format!("{}/metrics", sys.admin_url(service))).await
    else {
        return 0.0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("messages_consumed_total{"))
        .filter(|l| l.contains(&format!("queue=\"{queue}\"")))
        .filter(|l| l.contains("outcome=\"processed\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_order_logs_one_line_per_request_each_with_its_trace() {
    let env: HashMap<Service, Vec<(String, String)>> = Service::ALL
        .iter()
        .map(|s| (*s, vec![("RUST_LOG".into(), "info".into())]))
        .collect();
    let sys = System::start_with(SystemOptions {
        env,
        logs_to_files: true,
        ..Default::default()
    })
    .await;
    let mug = sys.add_product("LOG-MUG", 1200, 10).await;
    let (_, token) = sys.register("logs@example.com", "Logs").await;
    // The queues' counters before the order (the product's creation was consumed too).
    let before = (
        processed(&sys, Service::Inventory, "inventory.update-stock").await,
        processed(&sys, Service::Notification, "notification.create-order").await,
    );
    let offsets: BTreeMap<Service, usize> =
        sys.logs().into_iter().map(|(s, l)| (s, l.len())).collect();

    let (status, order) = sys
        .call(
            Method::POST,
            "/api/v1/orders",
            Some(json!({"items": [{"product_id": mug, "quantity": 1}]})),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    // Done when both consumers of its messages processed them.
    sales_testkit::eventually(
        "the order's messages to be processed",
        Duration::from_secs(30),
        || async {
            let now = (
                processed(&sys, Service::Inventory, "inventory.update-stock").await,
                processed(&sys, Service::Notification, "notification.create-order").await,
            );
            (now.0 > before.0 && now.1 > before.1).then_some(())
        },
    )
    .await;
    // Lines are written as the work ends; the last ones (the consumers') follow the
    // counters by microseconds.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let window: Vec<(Service, String)> = sys
        .logs()
        .into_iter()
        .map(|(s, l)| (s, l[offsets[&s]..].to_owned()))
        .collect();
    let mut report = String::from("one order at RUST_LOG=info, LOG_FORMAT=json:\n");
    let (mut bytes, mut lines) = (0, 0);
    for (service, text) in &window {
        let n = text.lines().count();
        report += &format!(
            "  {:<13} {:>6} bytes {:>3} lines\n",
            service.name(),
            text.len(),
            n
        );
        bytes += text.len();
        lines += n;
    }
    report += &format!("  {:<13} {bytes:>6} bytes {lines:>3} lines\n", "all");
    eprintln!("{report}");

    let parsed: Vec<(Service, Value)> = window
        .iter()
        .flat_map(|(s, text)| {
            text.lines().map(move |line| {
                let value: Value = serde_json::from_str(line).unwrap_or_else(|e| {
                    panic!("{} wrote a line that is not JSON ({e}): {line}", s.name())
                });
                (*s, value)
            })
        })
        .collect();
    let rendered = parsed
        .iter()
        .map(|(s, v)| format!("{}: {v}", s.name()))
        .collect::<Vec<_>>()
        .join("\n");

    // The gateway's line for the order: the trace every other line belongs to.
    let request_line = |service: Service, method: &str, route: &str| {
        let found: Vec<&Value> = parsed
            .iter()
            .filter(|(s, v)| {
                *s == service
                    && v["level"] == "INFO"
                    && v["method"] == method
                    && v["route"].as_str().is_some_and(|r| r == route)
            })
            .map(|(_, v)| v)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one INFO line of {} for {method} {route}:\n{rendered}",
            service.name()
        );
        found[0].clone()
    };
    // The gateway's route is the prefix it forwards.
    let gateway = request_line(Service::Gateway, "POST", "/api/v1/orders…");
    let trace_id = gateway["trace_id"].as_str().unwrap_or_default().to_owned();
    assert!(is_hex(&trace_id, 32), "{gateway}");
    assert_eq!(gateway["status"], 201, "{gateway}");
    assert!(gateway["elapsed_ms"].as_f64().is_some(), "{gateway}");
    for (service, method, route) in [
        (Service::Order, "POST", "/api/v1/orders"),
        (Service::Inventory, "POST", "/api/v1/inventory/reservations"),
    ] {
        let line = request_line(service, method, route);
        assert_eq!(line["trace_id"], trace_id.as_str(), "{line}");
        assert!(line["status"].as_u64().is_some_and(|s| s < 300), "{line}");
    }

    // Every line of the window was written inside a span (a request or a message),
    // with top-level ids. Besides the order's trace, the window has the requests the
    // identity plane makes on the side (public keys, introspection, service tokens),
    // each a trace of its own with its one line.
    for (service, line) in &parsed {
        assert!(
            line["trace_id"].as_str().is_some_and(|id| is_hex(id, 32))
                && line["span_id"].as_str().is_some_and(|id| is_hex(id, 16)),
            "{}: a line without trace_id and span_id: {line}",
            service.name()
        );
        assert!(
            line["trace_id"] == trace_id.as_str() || line["message"] == "request served",
            "{}: a step logged at INFO outside the order's trace: {line}",
            service.name()
        );
    }
    let in_order: Vec<&Value> = parsed
        .iter()
        .filter(|(_, v)| v["trace_id"] == trace_id.as_str() && v["level"] == "INFO")
        .map(|(_, v)| v)
        .collect();
    // The gateway's, the order service's, its calls' (the catalogue's prices, the
    // stock reservation) and the two messages' (update-stock, create-order): no step
    // lines.
    assert!(
        in_order.len() <= 6,
        "{} INFO lines in the order's trace:\n{rendered}",
        in_order.len()
    );
    let handled = in_order
        .iter()
        .filter(|v| v["message"] == "message handled" && v["outcome"] == "processed")
        .count();
    assert_eq!(handled, 2, "one line per message:\n{rendered}");
    sys.stop().await;
}
