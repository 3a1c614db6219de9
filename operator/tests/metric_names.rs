//! The operator exports every metric name the Grafana dashboards and alert rules
//! use (`observability/operator-metrics.txt`), with the type that file gives: its
//! `/metrics` endpoint is started on the real `Metrics`, every labelled family is
//! given one series (a labelled family without a series is not exported at all), and
//! the names are read from what the endpoint serves.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use sales_operator::metrics::{self, CONSUMER_LABELS, Metrics, QUEUE_LABELS};
use tokio_util::sync::CancellationToken;

/// `(name, type)` of every line of `operator-metrics.txt`: `name # type meaning`.
fn listed() -> Vec<(String, String)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../observability/operator-metrics.txt"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, rest) = l.split_once('#').unwrap_or((l, ""));
            let kind = rest.split_whitespace().next().unwrap_or_default();
            (name.trim().to_owned(), kind.to_owned())
        })
        .collect()
}

/// One series in every family, as a running operator with an autoscaled service has.
fn one_series_each(m: &Metrics) {
    let consumer = ["sales", "shop", "inventory"];
    let queue = ["sales", "shop", "inventory", "inventory.update-stock"];
    assert_eq!(consumer.len(), CONSUMER_LABELS.len());
    assert_eq!(queue.len(), QUEUE_LABELS.len());
    drop(m.reconcile_started());
    m.errors.with_label_values(&["apply"]).inc();
    m.leader.set(1);
    m.consumer_replicas.with_label_values(&consumer).set(3);
    m.consumer_desired_replicas
        .with_label_values(&consumer)
        .set(2);
    m.consumer_ready_replicas
        .with_label_values(&consumer)
        .set(3);
    m.consumer_scalings
        .with_label_values(&["sales", "shop", "inventory", "up"])
        .inc();
    m.queue_depth.with_label_values(&queue).set(410);
    m.queue_publish_rate.with_label_values(&queue).set(12.5);
    m.queue_ack_rate.with_label_values(&queue).set(11.0);
    m.queue_read_errors
        .with_label_values(&["sales", "shop", "BrokerUnreachable"])
        .inc();
}

/// What the endpoint serves: the type of every family (`# TYPE` lines) and the names
/// of its samples (`x_bucket`, `x_sum`, `x_count` for a histogram).
fn parse(exposition: &str) -> (BTreeMap<String, String>, BTreeSet<String>) {
    let mut types = BTreeMap::new();
    let mut samples = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                types.insert(name.to_owned(), kind.to_owned());
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            samples.insert(line[..end].to_owned());
        }
    }
    (types, samples)
}

#[tokio::test]
async fn the_operator_exports_what_the_dashboards_use() {
    let wanted = listed();
    assert!(
        wanted.len() >= 4,
        "operator-metrics.txt lists too little: {wanted:?}"
    );

    let m = Arc::new(Metrics::new());
    one_series_each(&m);
    let shutdown = CancellationToken::new();
    let addr = metrics::serve("127.0.0.1:0".parse().unwrap(), m.clone(), shutdown.clone())
        .await
        .unwrap();
    sales_operator::controller::install_crypto_provider();
    let response = sales_testkit::http_get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert!(response.status().is_success(), "{response:?}");
    assert_eq!(
        response.headers()["content-type"],
        prometheus::TEXT_FORMAT,
        "served as Prometheus's text exposition format"
    );
    let exposition = response.text().await.unwrap();
    shutdown.cancel();
    assert_eq!(exposition, m.render());
    let (types, samples) = parse(&exposition);

    for (name, kind) in &wanted {
        let served = types
            .get(name)
            .unwrap_or_else(|| panic!("the operator does not export {name}; it exports {types:?}"));
        assert_eq!(
            served, kind,
            "operator-metrics.txt says {name} is a {kind}, the operator serves a {served}"
        );
        let series: Vec<String> = match kind.as_str() {
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{name}{s}"))
                .collect(),
            "counter" | "gauge" => vec![name.clone()],
            other => panic!("operator-metrics.txt: {name}: unknown type {other:?}"),
        };
        for s in series {
            assert!(
                samples.contains(&s),
                "the operator serves no sample {s} ({name})\n{exposition}"
            );
        }
    }
}

/// The parser reads names, not label values or HELP text.
#[test]
fn samples_are_read_from_the_exposition() {
    let (types, samples) = parse(
        "# HELP a_total A {not} a name\n# TYPE a_total counter\na_total 1\n\
         # TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\n\
         b{x=\"c d\"} 2\n",
    );
    assert_eq!(types["a_total"], "counter");
    assert_eq!(types["h"], "histogram");
    let names: Vec<&str> = samples.iter().map(String::as_str).collect();
    assert_eq!(names, ["a_total", "b", "h_bucket", "h_count", "h_sum"]);
}
