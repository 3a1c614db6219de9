//! The run's figures, and where they are written: `target/bench/bench-<unix time>.json`,
//! `latest.json`, `latest.md` (tables for docs/benchmarks.md) and `latest.png`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

use super::statements::StatementsPerOrder;

/// Percentiles of a histogram of microseconds, in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// After the answers: shipments and notifications of the step's paid orders.
#[derive(Clone, Debug, Serialize)]
pub struct PipelineReport {
    pub paid: i64,
    pub shipments: i64,
    pub notified: i64,
    pub complete: bool,
    /// From the end of the load until the last of them arrived.
    pub drained_after_s: f64,
    pub created_to_shipment_ms: Latency,
    pub paid_to_shipment_ms: Latency,
    pub paid_to_notified_ms: Latency,
}

/// One step: a series (scenario at a target) under one load.
#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    pub series: String,
    pub peer: bool,
    /// Processes of the order service, and as many of the inventory service
    /// (`--replicas`); `None` for the peer's steps.
    pub replicas: Option<usize>,
    /// `closed` or `open`.
    pub load: String,
    pub clients: Option<usize>,
    /// Open loop: orders per second offered.
    pub rate: Option<f64>,
    pub seconds: f64,
    pub orders: u64,
    pub orders_per_s: f64,
    /// Whole orders (the saga: its three requests); open loop: from the intended send time.
    pub latency_ms: Latency,
    /// The saga's requests, each.
    pub calls_ms: BTreeMap<String, Latency>,
    /// Failed orders by why: HTTP status, `no answer`, `late`, `200 FAILED`.
    pub errors: BTreeMap<String, u64>,
    /// From the load's start until its events arrived, per order, by process group.
    pub cpu_ms_per_order: BTreeMap<String, f64>,
    /// The system's processes (services and infrastructure; the peer's for a peer
    /// step), without the load generator.
    pub system_cpu_ms_per_order: f64,
    /// How busy the machine's CPUs were (0 to 1).
    pub machine_busy: f64,
    /// Of that, processes outside every measured group (0 to 1).
    pub others_busy: f64,
    pub statements: Option<StatementsPerOrder>,
    pub pipeline: Option<PipelineReport>,
}

impl StepReport {
    pub fn load_label(&self) -> String {
        match (self.clients, self.rate) {
            (Some(c), _) => c.to_string(),
            (None, Some(r)) => format!("{r}/s open"),
            _ => "?".into(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ServiceStartup {
    pub service: String,
    /// Started with every other service at once, on fresh databases (migrations
    /// run) and a fresh broker namespace (queues created).
    pub exec_to_ready_ms: f64,
    /// Started again alone on the running system (a pod restarted or added); `None`
    /// for a replica.
    pub restart_to_ready_ms: Option<f64>,
    /// After every service was ready, before any load.
    pub rss_idle_mib: f64,
    /// The most it held at the end of a step's load.
    pub rss_loaded_mib: f64,
    /// The most it ever held, the shop's setup included (`VmHWM`).
    pub rss_peak_mib: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub model: String,
    pub memory_gib: f64,
    pub kernel: String,
    pub git_head: String,
}

impl Machine {
    pub fn describe(root: &Path) -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let field = |text: &str, key: &str| {
            text.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default()
        };
        let kib: f64 = field(&read("/proc/meminfo"), "MemTotal")
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap_or(0.0);
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .args(args)
                .current_dir(root)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default()
        };
        let dirty = !git(&["status", "--porcelain"]).is_empty();
        Machine {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            model: field(&read("/proc/cpuinfo"), "model name"),
            memory_gib: kib / 1024.0 / 1024.0,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            git_head: format!(
                "{}{}",
                git(&["rev-parse", "--short", "HEAD"]),
                if dirty {
                    " (with uncommitted changes)"
                } else {
                    ""
                }
            ),
        }
    }

    pub fn line(&self) -> String {
        format!(
            "{} cores ({}), {:.1} GiB RAM, Linux {}, git {}",
            self.cores, self.model, self.memory_gib, self.kernel, self.git_head
        )
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub started_at: String,
    pub unix_time: i64,
    /// `release` or `debug`.
    pub build: String,
    pub broker: String,
    pub seconds_per_step: u64,
    /// What the bench changed in the services' settings, and how it reaches them.
    pub settings: Vec<String>,
    pub machine: Machine,
    pub startup: Vec<ServiceStartup>,
    pub steps: Vec<StepReport>,
    pub notes: Vec<String>,
    /// The step that could not be measured (a database error...), if any.
    pub aborted: Option<String>,
}

impl Report {
    /// What makes the run a failure: a step of ours with failed orders or with
    /// events that did not all arrive (the peer's failures are only reported).
    pub fn failures(&self) -> Vec<String> {
        let mut out: Vec<String> = self.aborted.iter().cloned().collect();
        for s in self.steps.iter().filter(|s| !s.peer) {
            let failed: u64 = s.errors.values().sum();
            if failed > 0 {
                out.push(format!(
                    "{} at {}: {failed} orders failed {:?}",
                    s.series,
                    s.load_label(),
                    s.errors
                ));
            }
            if s.orders == 0 {
                out.push(format!(
                    "{} at {}: no order placed",
                    s.series,
                    s.load_label()
                ));
            }
            if let Some(p) = s.pipeline.as_ref().filter(|p| !p.complete) {
                out.push(format!(
                    "{} at {}: the events did not all arrive within 120 s: {} of {} shipments, {} of {} notifications",
                    s.series,
                    s.load_label(),
                    p.shipments,
                    p.paid,
                    p.notified,
                    p.paid
                ));
            }
        }
        out
    }

    /// Write the JSON, the markdown and the PNG under `target/bench/`; the directory.
    pub fn write(&self, root: &Path) -> Result<PathBuf> {
        let dir = root.join("target/bench");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let json = serde_json::to_string_pretty(self)?;
        for name in [
            format!("bench-{}.json", self.unix_time),
            "latest.json".into(),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, &json).with_context(|| format!("writing {}", path.display()))?;
        }
        let md = dir.join("latest.md");
        std::fs::write(&md, super::layout::markdown(self))
            .with_context(|| format!("writing {}", md.display()))?;
        let png = dir.join("latest.png");
        std::fs::write(&png, super::chart::png(self)?)
            .with_context(|| format!("writing {}", png.display()))?;
        Ok(dir)
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A report of two series at two and one client counts, one step with a failure.
    pub fn sample() -> Report {
        let step = |series: &str, peer: bool, clients: usize, per_s: f64| StepReport {
            series: series.into(),
            peer,
            replicas: (!peer).then_some(1),
            load: "closed".into(),
            clients: Some(clients),
            rate: None,
            seconds: 2.0,
            orders: (per_s * 2.0) as u64,
            orders_per_s: per_s,
            latency_ms: Latency {
                p99: 10.0 * clients as f64,
                ..Latency::default()
            },
            calls_ms: BTreeMap::new(),
            errors: BTreeMap::new(),
            cpu_ms_per_order: [
                ("order".to_owned(), 2.0),
                ("load generator".to_owned(), 0.5),
            ]
            .into_iter()
            .collect(),
            system_cpu_ms_per_order: 2.0,
            machine_busy: 0.5,
            others_busy: 0.0,
            statements: None,
            pipeline: None,
        };
        let mut failed = step("one-call", false, 8, 150.0);
        failed.errors.insert("409".into(), 2);
        Report {
            started_at: "2026-12-04 00:00 UTC".into(),
            unix_time: 0,
            build: "release".into(),
            broker: "RabbitMQ".into(),
            seconds_per_step: 2,
            settings: vec![],
            machine: Machine {
                cores: 2,
                model: "test".into(),
                memory_gib: 1.0,
                kernel: "6".into(),
                git_head: "abc".into(),
            },
            startup: vec![],
            steps: vec![
                step("one-call (peer)", true, 1, 40.0),
                step("one-call", false, 1, 60.0),
                step("one-call (peer)", true, 8, 0.0),
                failed,
            ],
            notes: vec![],
            aborted: None,
        }
    }

    #[test]
    fn only_our_failed_orders_fail_the_run() {
        let mut report = sample();
        report.steps[2].errors.insert("no answer".into(), 5);
        let failures = report.failures();
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(failures[0].contains("409"), "{failures:?}");
    }
}
