//! What the report's tables show: a row per step, a table per question (how fast,
//! where the CPU goes, how many statements, how long until shipped and notified).

use std::collections::BTreeSet;

use super::layout::Table;
use super::report::{Report, StepReport};

fn table(title: impl Into<String>, headers: &[&str]) -> Table {
    Table {
        title: title.into(),
        headers: headers.iter().map(|h| (*h).to_owned()).collect(),
        rows: Vec::new(),
    }
}

fn f1(v: f64) -> String {
    format!("{v:.1}")
}

fn f2(v: f64) -> String {
    format!("{v:.2}")
}

/// `409×3, no answer×1`, or `0`.
fn errors(s: &StepReport) -> String {
    if s.errors.is_empty() {
        return "0".into();
    }
    let parts: Vec<String> = s
        .errors
        .iter()
        .map(|(why, n)| format!("{why}×{n}"))
        .collect();
    parts.join(", ")
}

/// Processes of the order and of the inventory service; empty for the peer's steps.
fn replicas(s: &StepReport) -> String {
    s.replicas.map_or(String::new(), |n| n.to_string())
}

/// The series in the order they first ran.
fn series(report: &Report) -> Vec<&str> {
    let mut seen = Vec::new();
    for s in &report.steps {
        if !seen.contains(&s.series.as_str()) {
            seen.push(s.series.as_str());
        }
    }
    seen
}

pub fn tables(report: &Report) -> Vec<Table> {
    let mut out = Vec::new();
    for name in series(report) {
        let mut t = table(
            format!("{name}: orders, latency (ms) and cost per order"),
            &[
                "clients",
                "replicas",
                "orders/s",
                "p50",
                "p90",
                "p99",
                "p99.9",
                "max",
                "errors",
                "CPU ms/order",
                "top processes (CPU ms/order)",
                "load gen",
                "stmts/order",
                "CPU busy (others)",
            ],
        );
        for s in report.steps.iter().filter(|s| s.series == name) {
            let mut top: Vec<(&String, &f64)> = s
                .cpu_ms_per_order
                .iter()
                .filter(|(g, _)| g.as_str() != "load generator")
                .collect();
            top.sort_by(|a, b| b.1.total_cmp(a.1));
            let top: Vec<String> = top
                .iter()
                .take(3)
                .map(|(g, ms)| format!("{g} {ms:.2}"))
                .collect();
            let l = &s.latency_ms;
            t.rows.push(vec![
                s.load_label(),
                replicas(s),
                f1(s.orders_per_s),
                f1(l.p50),
                f1(l.p90),
                f1(l.p99),
                f1(l.p999),
                f1(l.max),
                errors(s),
                f2(s.system_cpu_ms_per_order),
                top.join(", "),
                f2(s.cpu_ms_per_order
                    .get("load generator")
                    .copied()
                    .unwrap_or(0.0)),
                s.statements
                    .as_ref()
                    .map_or("n/a".into(), |st| f1(st.total)),
                format!(
                    "{:.0}% ({:.0}%)",
                    s.machine_busy * 100.0,
                    s.others_busy * 100.0
                ),
            ]);
        }
        out.push(t);
    }
    out.extend(peer_table(report));
    out.push(after_the_answer(report));
    if report.steps.iter().any(|s| !s.calls_ms.is_empty()) {
        let mut t = table(
            "saga: each request through the gateway (ms)",
            &[
                "clients",
                "browse p50",
                "browse p99",
                "place p50",
                "place p99",
                "pay p50",
                "pay p99",
            ],
        );
        for s in report.steps.iter().filter(|s| !s.calls_ms.is_empty()) {
            let mut row = vec![s.load_label()];
            for call in ["browse", "place", "pay"] {
                let l = s.calls_ms.get(call).cloned().unwrap_or_default();
                row.extend([f1(l.p50), f1(l.p99)]);
            }
            t.rows.push(row);
        }
        out.push(t);
    }
    out.push(cpu_table(report));
    out.push(statements_table(report));
    out.extend(top_statements(report));
    let mut t = table(
        "startup and memory per service",
        &[
            "service",
            "exec -> ready ms, all at once, fresh databases",
            "exec -> ready ms, restarted alone",
            "RSS idle MiB",
            "RSS loaded MiB",
            "RSS peak MiB (setup included)",
        ],
    );
    for s in &report.startup {
        t.rows.push(vec![
            s.service.clone(),
            f1(s.exec_to_ready_ms),
            s.restart_to_ready_ms.map_or_else(|| "-".into(), f1),
            f1(s.rss_idle_mib),
            f1(s.rss_loaded_mib),
            f1(s.rss_peak_mib),
        ]);
    }
    out.push(t);
    out
}

fn peer_table(report: &Report) -> Option<Table> {
    let peers: Vec<&StepReport> = report.steps.iter().filter(|s| s.peer).collect();
    if peers.is_empty() {
        return None;
    }
    let mut t = table(
        "one-call: ours (direct) and the peer, alternating per step",
        &[
            "clients",
            "ours orders/s",
            "peer orders/s",
            "ours / peer",
            "ours p99",
            "peer p99",
            "ours CPU ms/order",
            "peer CPU ms/order",
            "peer errors",
        ],
    );
    for p in peers {
        let Some(o) = report.steps.iter().find(|s| {
            !s.peer && s.series == "one-call" && s.clients == p.clients && s.rate == p.rate
        }) else {
            continue;
        };
        let ratio = if p.orders_per_s > 0.0 {
            format!("{:.2}", o.orders_per_s / p.orders_per_s)
        } else {
            "∞".into()
        };
        t.rows.push(vec![
            p.load_label(),
            f1(o.orders_per_s),
            f1(p.orders_per_s),
            ratio,
            f1(o.latency_ms.p99),
            f1(p.latency_ms.p99),
            f2(o.system_cpu_ms_per_order),
            f2(p.system_cpu_ms_per_order),
            errors(p),
        ]);
    }
    Some(t)
}

fn after_the_answer(report: &Report) -> Table {
    let mut t = table(
        "after the answer: shipment opened and customer notified (the services' timestamps, ms)",
        &[
            "series",
            "clients",
            "paid orders",
            "created->shipment p50",
            "p99",
            "paid->shipment p50",
            "p99",
            "paid->notified p50",
            "p99",
            "drained after s",
        ],
    );
    for s in &report.steps {
        let Some(p) = &s.pipeline else { continue };
        t.rows.push(vec![
            s.series.clone(),
            s.load_label(),
            format!(
                "{}{}",
                p.paid,
                if p.complete { "" } else { " (incomplete)" }
            ),
            f1(p.created_to_shipment_ms.p50),
            f1(p.created_to_shipment_ms.p99),
            f1(p.paid_to_shipment_ms.p50),
            f1(p.paid_to_shipment_ms.p99),
            f1(p.paid_to_notified_ms.p50),
            f1(p.paid_to_notified_ms.p99),
            f2(p.drained_after_s),
        ]);
    }
    t
}

fn cpu_table(report: &Report) -> Table {
    let groups: BTreeSet<&String> = report
        .steps
        .iter()
        .flat_map(|s| s.cpu_ms_per_order.keys())
        .collect();
    let mut headers = vec!["series", "clients", "replicas"];
    headers.extend(groups.iter().map(|g| g.as_str()));
    let mut t = table(
        "CPU ms per order, per process (a service's replicas summed)",
        &headers,
    );
    for s in &report.steps {
        let mut row = vec![s.series.clone(), s.load_label(), replicas(s)];
        for g in &groups {
            row.push(s.cpu_ms_per_order.get(*g).map_or("".into(), |ms| f2(*ms)));
        }
        t.rows.push(row);
    }
    t
}

fn statements_table(report: &Report) -> Table {
    let dbs: BTreeSet<&String> = report
        .steps
        .iter()
        .filter_map(|s| s.statements.as_ref())
        .flat_map(|st| st.by_database.keys())
        .collect();
    let mut headers = vec!["series", "clients", "replicas", "total", "BEGIN", "exec ms"];
    headers.extend(dbs.iter().map(|d| d.as_str()));
    let mut t = table(
        "statements per order, per service database (pg_stat_statements; BEGIN: transactions; exec ms: PostgreSQL executing them)",
        &headers,
    );
    for s in report.steps.iter().filter(|s| !s.peer) {
        let Some(st) = &s.statements else { continue };
        let mut row = vec![
            s.series.clone(),
            s.load_label(),
            replicas(s),
            f1(st.total),
            f1(st.transactions),
            f2(st.exec_ms),
        ];
        for d in &dbs {
            row.push(st.by_database.get(*d).map_or("".into(), |n| f2(*n)));
        }
        t.rows.push(row);
    }
    t
}

/// The ten most called statements of each series' largest step.
fn top_statements(report: &Report) -> Vec<Table> {
    let mut out = Vec::new();
    for name in series(report) {
        let Some(s) = report
            .steps
            .iter()
            .filter(|s| s.series == name && s.statements.is_some())
            .max_by_key(|s| s.clients.unwrap_or(0))
        else {
            continue;
        };
        let Some(st) = &s.statements else { continue };
        let mut t = table(
            format!("{name} at {}: top statements", s.load_label()),
            &["calls/order", "mean ms", "database", "statement"],
        );
        for top in &st.top {
            t.rows.push(vec![
                f2(top.calls_per_order),
                format!("{:.3}", top.mean_ms),
                top.database.clone(),
                top.query.clone(),
            ]);
        }
        out.push(t);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::layout::{markdown, text};
    use crate::bench::report::tests::sample;

    #[test]
    fn the_peer_is_compared_step_by_step() {
        let md = markdown(&sample());
        assert!(md.contains("| 1 | 60.0 | 40.0 | 1.50 |"), "{md}");
        assert!(md.contains("| 8 | 150.0 | 0.0 | ∞ |"), "{md}");
        assert!(md.contains("409×2"), "{md}");
        assert!(text(&tables(&sample())[0]).starts_with("one-call (peer): orders"));
        // Our steps say how many replicas ran, the peer's leave it empty.
        assert!(md.contains("| 1 |  | 40.0 |"), "{md}");
        assert!(md.contains("| 1 | 1 | 60.0 |"), "{md}");
    }
}
