//! A table laid out as aligned text for the terminal, or as markdown for
//! docs/benchmarks.md; the whole report either way.

use std::fmt::Write as _;

use super::report::Report;
use super::tables::tables;

pub struct Table {
    pub title: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Aligned columns (the last one left as is).
pub fn text(t: &Table) -> String {
    let mut widths: Vec<usize> = t.headers.iter().map(|h| h.chars().count()).collect();
    for row in &t.rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            let pad = w.saturating_sub(cell.chars().count());
            if i == 0 || i + 1 == cells.len() {
                let _ = write!(l, "{cell}{}  ", " ".repeat(pad));
            } else {
                let _ = write!(l, "{}{cell}  ", " ".repeat(pad));
            }
        }
        l.trim_end().to_owned()
    };
    let mut out = format!("{}\n{}\n", t.title, line(&t.headers));
    for row in &t.rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    out
}

pub fn markdown_table(t: &Table) -> String {
    let cell = |c: &str| c.replace('|', "\\|");
    let mut out = format!("### {}\n\n| {} |\n|", t.title, t.headers.join(" | "));
    for _ in &t.headers {
        out.push_str("---|");
    }
    out.push('\n');
    for row in &t.rows {
        let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

/// The run's heading lines.
fn heading(report: &Report) -> Vec<String> {
    let mut lines = vec![
        format!(
            "sales-system bench, {}: {} build, events on {}, {} s per step",
            report.started_at, report.build, report.broker, report.seconds_per_step
        ),
        format!("machine: {}", report.machine.line()),
    ];
    lines.extend(report.settings.iter().map(|s| format!("setting: {s}")));
    lines.extend(report.notes.iter().map(|n| format!("note: {n}")));
    lines.extend(report.aborted.iter().map(|a| format!("ABORTED: {a}")));
    lines.push(LEGEND.into());
    lines
}

const LEGEND: &str = "how to read: latency is the whole order (the saga: its three requests), \
    from the send in a closed loop and from the intended send time in an open one; CPU ms/order \
    counts the services and the infrastructure from a step's start until its events arrived \
    (the load generator apart); CPU busy is the machine's, in parentheses what processes \
    outside those measured took of it";

pub fn print(report: &Report) {
    println!();
    for line in heading(report) {
        println!("{line}");
    }
    for t in tables(report) {
        if !t.rows.is_empty() {
            println!("\n{}", text(&t));
        }
    }
}

pub fn markdown(report: &Report) -> String {
    let mut out = String::from("## cargo xtask bench\n\n");
    for line in heading(report) {
        let _ = writeln!(out, "- {line}");
    }
    for t in tables(report) {
        if !t.rows.is_empty() {
            let _ = write!(out, "\n{}", markdown_table(&t));
        }
    }
    out
}
