//! The report: faults x invariants (each order counted under the fault it was placed
//! in or just after), the load's figures, what was done when, and every violation.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Duration, Utc};

use super::invariants::{Invariant, Violation};
use super::load::Stats;
use super::timeline::Window;
use crate::storefront::percentile;

/// An order counts under a fault placed from this long before its window...
const BEFORE: Duration = Duration::seconds(2);
/// ...until this long after it (recovery: retries, redeliveries).
const AFTER: Duration = Duration::seconds(10);

/// One row of the table: orders placed under it and violations per invariant.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Row {
    pub label: String,
    pub orders: usize,
    pub violations: BTreeMap<Invariant, usize>,
}

/// A row per fault window, one for orders placed in no window, and one for what
/// concerns no single order (stock per SKU).
pub fn rows(
    started_at: DateTime<Utc>,
    windows: &[Window],
    orders: &BTreeMap<i64, DateTime<Utc>>,
    violations: &[Violation],
) -> Vec<Row> {
    let label = |w: &Window| {
        format!(
            "{} at {} s, for {} s",
            w.scenario,
            (w.start - started_at).num_seconds(),
            (w.end - w.start).num_seconds()
        )
    };
    let mut rows: Vec<Row> = windows
        .iter()
        .map(|w| Row {
            label: label(w),
            ..Row::default()
        })
        .collect();
    rows.push(Row {
        label: "no fault".into(),
        ..Row::default()
    });
    rows.push(Row {
        label: "whole run (per SKU, or an order that does not exist)".into(),
        ..Row::default()
    });
    let (no_fault, whole) = (windows.len(), windows.len() + 1);
    let under = |at: &DateTime<Utc>| -> Vec<usize> {
        let hit: Vec<usize> = windows
            .iter()
            .enumerate()
            .filter(|(_, w)| *at >= w.start - BEFORE && *at <= w.end + AFTER)
            .map(|(i, _)| i)
            .collect();
        if hit.is_empty() { vec![no_fault] } else { hit }
    };
    for at in orders.values() {
        for i in under(at) {
            rows[i].orders += 1;
        }
    }
    for v in violations {
        let targets = match v.order_id.and_then(|id| orders.get(&id)) {
            Some(at) => under(at),
            None => vec![whole],
        };
        for i in targets {
            *rows[i].violations.entry(v.invariant).or_default() += 1;
        }
    }
    rows
}

pub struct Figures<'a> {
    pub command: String,
    pub started_at: DateTime<Utc>,
    pub load_seconds: f64,
    pub settled_after: Option<f64>,
    pub clients: usize,
    pub stats: &'a Stats,
    pub fault_log: &'a [String],
    pub restarts: &'a [(String, u32)],
    pub rows: &'a [Row],
    pub violations: &'a [Violation],
    pub totals: String,
    /// Why the fault run stopped before its end, if it did.
    pub incomplete: Option<String>,
}

pub fn markdown(f: &Figures<'_>) -> String {
    let mut out = String::new();
    let s = f.stats;
    let mut verdict = if f.violations.is_empty() {
        "PASS: no invariant violated".to_owned()
    } else {
        format!("FAIL: {} violations", f.violations.len())
    };
    if let Some(why) = &f.incomplete {
        verdict = format!("FAIL: the fault run did not complete ({why}); {verdict}");
    }
    let _ = writeln!(
        out,
        "# Chaos run, {}\n",
        f.started_at.format("%Y-%m-%d %H:%M UTC")
    );
    let _ = writeln!(
        out,
        "`{}`: {} clients, {:.0} s of load; {}.\n",
        f.command,
        f.clients,
        f.load_seconds,
        match f.settled_after {
            Some(t) => format!("everything settled {t:.0} s after the load stopped"),
            None => "the system had NOT settled by the deadline; checked anyway".into(),
        }
    );
    let _ = writeln!(out, "**{verdict}**\n\n## Faults x invariants\n");
    let _ = writeln!(
        out,
        "Each order is counted under the fault it was placed in (from 2 s before the window to 10 s after it); a cell is `pass` or `FAIL n` (violations).\n"
    );
    let _ = write!(out, "| fault (window) | orders |");
    for i in Invariant::ALL {
        let _ = write!(out, " {} |", i.name());
    }
    let _ = write!(out, "\n|---|---:|");
    for _ in Invariant::ALL {
        out.push_str("---|");
    }
    out.push('\n');
    for r in f.rows {
        let _ = write!(out, "| {} | {} |", r.label, r.orders);
        for i in Invariant::ALL {
            match r.violations.get(&i) {
                Some(n) => {
                    let _ = write!(out, " FAIL {n} |");
                }
                None => out.push_str(" pass |"),
            }
        }
        out.push('\n');
    }
    let per_s = |n: u64| n as f64 / f.load_seconds.max(1.0);
    let payments = s.paid + s.declined;
    let _ = writeln!(out, "\n## Load\n");
    let _ = writeln!(
        out,
        "- orders placed: {} ({:.1}/s); paid {}, declined {} ({:.0}% of payments), cancelled {}, paid and cancelled at once {}, left unpaid {}; refused {}, requests given up {}",
        s.placed,
        per_s(s.placed),
        s.paid,
        s.declined,
        100.0 * s.declined as f64 / payments.max(1) as f64,
        s.cancelled,
        s.raced,
        s.left_unpaid,
        s.refused,
        s.gave_up
    );
    let _ = writeln!(out, "- {}\n", f.totals);
    let _ = writeln!(
        out,
        "| step | answered | p50 ms | p99 ms | p50 ms with retries | p99 ms with retries | max ms with retries |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for (step, attempts) in &s.attempt_us {
        let mut a = attempts.clone();
        a.sort_unstable();
        let mut e = s.step_us.get(step).cloned().unwrap_or_default();
        e.sort_unstable();
        let _ = writeln!(
            out,
            "| {step} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            a.len(),
            percentile(&a, 0.5),
            percentile(&a, 0.99),
            percentile(&e, 0.5),
            percentile(&e, 0.99),
            percentile(&e, 1.0)
        );
    }
    let _ = writeln!(
        out,
        "\nFailed attempts and refusals by kind (a retried request counts once per failed attempt):\n\n| kind | count |\n|---|---:|"
    );
    for (kind, n) in &s.errors {
        let _ = writeln!(out, "| {kind} | {n} |");
    }
    let _ = writeln!(out, "\n## What was done\n\n```text");
    for line in f.fault_log {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(
        out,
        "```\n\nService restarts by the supervisor: {}\n",
        f.restarts
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(out, "## Violations\n");
    if f.violations.is_empty() {
        let _ = writeln!(out, "None.");
    }
    for i in Invariant::ALL {
        let of: Vec<&Violation> = f.violations.iter().filter(|v| v.invariant == i).collect();
        if of.is_empty() {
            continue;
        }
        let _ = writeln!(out, "### {} ({})\n", i.name(), of.len());
        for v in of.iter().take(40) {
            let _ = writeln!(out, "- {}", v.detail);
        }
        if of.len() > 40 {
            let _ = writeln!(out, "- ... and {} more", of.len() - 40);
        }
        out.push('\n');
    }
    let _ = writeln!(out, "\nTimeline: `timeline.png` beside this file.");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_and_their_violations_land_under_the_fault_they_were_placed_in() {
        let t0 = Utc::now();
        let at = |s: i64| t0 + Duration::seconds(s);
        let windows = [Window {
            scenario: "rabbitmq-kill".into(),
            start: at(10),
            end: at(20),
        }];
        let orders: BTreeMap<i64, DateTime<Utc>> = [(1, at(0)), (2, at(15)), (3, at(29))].into();
        let v = |order_id| Violation {
            invariant: Invariant::Money,
            order_id,
            detail: String::new(),
        };
        let rows = rows(t0, &windows, &orders, &[v(Some(2)), v(Some(1)), v(None)]);
        let summary: Vec<(usize, Option<usize>)> = rows
            .iter()
            .map(|r| (r.orders, r.violations.get(&Invariant::Money).copied()))
            .collect();
        assert_eq!(summary, [(2, Some(1)), (1, Some(1)), (0, Some(1))]);
    }
}
