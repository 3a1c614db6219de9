//! One run: the shop made ready, then every step in turn, each measured alone
//! (its load, its events, the CPU and the statements from its start until its
//! events arrived).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use sales_testkit::launch::{Process, Service, Wiring};
use serde_json::json;

use super::load::{self, Shape};
use super::pipeline::Pipeline;
use super::plan::{Step, plan};
use super::report::{Latency, Machine, PipelineReport, Report, ServiceStartup, StepReport};
use super::scenarios::{self, AnonymousToken, Flow, Scenario, Skus, Target};
use super::shop;
use super::statements::Statements;
use super::usage::{self, Meter, url_port};
use super::{BenchArgs, DB_PREFIX};
use crate::BrokerChoice;
use crate::infra::Infra;

/// The system under test, started.
pub struct System<'a> {
    pub root: &'a Path,
    pub infra: &'a Infra,
    pub wiring: &'a Wiring,
    /// The wirings of the order and inventory replicas after the first ones
    /// (`--replicas N`: N-1 of them).
    pub replicas: &'a [Wiring],
    pub processes: &'a [Process],
    /// Each process's time from exec to ready, in the order of `processes`: started
    /// together, on fresh databases and a fresh broker namespace.
    pub ready: Vec<(Service, Duration)>,
    /// The same, each started again alone on the running system (replicas not
    /// counted: they start once).
    pub restarted: Vec<(Service, Duration)>,
    pub kafka: Option<&'a str>,
    pub profile: &'static str,
    pub settings: Vec<String>,
}

/// What the steps share.
struct Session<'a> {
    system: &'a System<'a>,
    args: &'a BenchArgs,
    http: reqwest::Client,
    meter: Meter,
    statements: Statements,
    pipeline: Pipeline,
    direct_auth: Option<Arc<AnonymousToken>>,
    customers: Arc<Vec<String>>,
    products: Arc<Vec<i64>>,
    run_id: i64,
}

pub async fn measure(system: &System<'_>, args: &BenchArgs) -> Result<Report> {
    let started_at = chrono::Utc::now();
    let wiring = system.wiring;
    let pids = labelled_pids(system.processes);
    let idle: Vec<Option<(f64, f64)>> = pids
        .iter()
        .map(|(_, pid)| usage::memory_mib(*pid))
        .collect();
    let mut steps = plan(args);
    let most = args.clients.iter().copied().max().unwrap_or(1);
    let http = sales_platform::tls::http_client_builder()
        .pool_max_idle_per_host(most.max(load::MAX_OUTSTANDING))
        .timeout(Duration::from_secs(60))
        .build()?;
    let needs = |s: Scenario| steps.iter().any(|st| st.series.scenario == s);
    let needs_direct = steps.iter().any(|s| s.series.target == Target::Direct);
    let mut notes = Vec::new();
    let gateway = wiring.base_url(Service::Gateway);
    let (mut products, mut customers) = (Vec::new(), Vec::new());
    if needs(Scenario::Saga) {
        eprintln!("bench: opening the catalogue, registering {most} customers");
        products = shop::open_catalogue(&http, wiring).await?;
        customers = shop::register_customers(&http, &gateway, most).await?;
    }
    eprintln!(
        "bench: stocking {} SKUs and {}",
        args.skus,
        scenarios::HOT_SKU
    );
    shop::stock_skus(&http, wiring, args.skus).await?;
    let direct_auth = if needs_direct {
        let auth = shop::direct_auth(&http, wiring).await?;
        if auth.is_some() {
            notes.push("the order service refuses a request without a token (401): direct orders carry an anonymous gateway token (seed routes open) minted by the bench, what the gateway adds for a client that sends none".into());
        }
        auth
    } else {
        None
    };
    if let Some(url) = &args.peer_url
        && let Some(note) = probe_peer(&http, url).await
    {
        notes.push(note);
        steps.retain(|s| s.series.target != Target::Peer);
    }
    let mut servers = vec![
        ("postgresql", url_port(&system.infra.postgres_url)),
        ("redis", url_port(&system.infra.redis_url)),
    ];
    match system.kafka {
        Some(bootstrap) => servers.push(("kafka (tansu)", url_port(bootstrap))),
        None => servers.push(("rabbitmq", url_port(&system.infra.amqp_url))),
    }
    let servers: Vec<(&str, u16)> = servers
        .into_iter()
        .filter_map(|(n, p)| Some((n, p?)))
        .collect();
    let peer = steps.iter().any(|s| s.series.target == Target::Peer);
    let meter = Meter::new(system.processes, &servers, peer, args.peer_pg_port);
    notes.extend(meter.notes.iter().cloned());
    let statements = Statements::connect(&system.infra.postgres_url, DB_PREFIX).await;
    notes.extend(statements.unavailable());
    let mut session = Session {
        system,
        args,
        http,
        meter,
        statements,
        pipeline: Pipeline::connect(wiring).await?,
        direct_auth,
        customers: Arc::new(customers),
        products: Arc::new(products),
        run_id: started_at.timestamp(),
    };
    let mut reports = Vec::new();
    let mut loaded = vec![0.0_f64; pids.len()];
    let mut aborted = None;
    for (index, step) in steps.iter().enumerate() {
        let report = match session.run_step(*step, index, &pids, &mut loaded).await {
            Ok(report) => report,
            Err(e) => {
                let label = format!("{} at {}", step.series.label(), step.shape.label());
                aborted = Some(format!("{label}: {e:#}; the steps after it did not run"));
                break;
            }
        };
        eprintln!(
            "bench: {} at {}: {:.1} orders/s, p99 {:.1} ms, {} errors",
            report.series,
            step.shape.label(),
            report.orders_per_s,
            report.latency_ms.p99,
            report.errors.values().sum::<u64>()
        );
        reports.push(report);
    }
    let startup = pids
        .iter()
        .zip(idle)
        .zip(loaded)
        .enumerate()
        .map(|(i, (((service, pid), idle), loaded))| ServiceStartup {
            service: service.clone(),
            exec_to_ready_ms: system
                .ready
                .get(i)
                .map_or(0.0, |(_, d)| d.as_secs_f64() * 1000.0),
            restart_to_ready_ms: system
                .restarted
                .get(i)
                .map(|(_, d)| d.as_secs_f64() * 1000.0),
            rss_idle_mib: idle.map_or(0.0, |m| m.0),
            rss_loaded_mib: loaded,
            // VmHWM is kept lazily: never less than what was seen idle.
            rss_peak_mib: usage::memory_mib(*pid)
                .map_or(0.0, |m| m.1)
                .max(idle.map_or(0.0, |m| m.0)),
        })
        .collect();
    Ok(Report {
        started_at: started_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        unix_time: started_at.timestamp(),
        build: system.profile.to_owned(),
        broker: match args.broker {
            BrokerChoice::Rabbitmq => "RabbitMQ".into(),
            BrokerChoice::Kafka => "Kafka (tansu)".into(),
        },
        seconds_per_step: args.seconds,
        settings: system.settings.clone(),
        machine: Machine::describe(system.root),
        startup,
        steps: reports,
        notes,
        aborted,
    })
}

/// `(label, pid)` of each process: the service's name, and for its replicas after the
/// first one the replica's number (`order`, `order 2`, `order 3`).
fn labelled_pids(processes: &[Process]) -> Vec<(String, u32)> {
    let names: Vec<&str> = processes.iter().map(|p| p.service.name()).collect();
    replica_labels(&names)
        .into_iter()
        .zip(processes.iter().map(|p| p.child.id()))
        .collect()
}

fn replica_labels(names: &[&str]) -> Vec<String> {
    names
        .iter()
        .enumerate()
        .map(
            |(i, name)| match names[..i].iter().filter(|n| *n == name).count() {
                0 => (*name).to_owned(),
                before => format!("{name} {}", before + 1),
            },
        )
        .collect()
}

/// `None` if the peer answers a one-call order; else why its steps are left out.
async fn probe_peer(http: &reqwest::Client, url: &str) -> Option<String> {
    let body = json!({"item_sku": scenarios::sku(0), "quantity": 1, "amount": "1.00",
                      "currency": "USD", "idempotency_key": format!("bench-probe-{}", std::process::id())});
    match http.post(peer_orders(url)).json(&body).send().await {
        Ok(r) if r.status().is_success() => None,
        Ok(r) => Some(format!(
            "the peer at {url} answered a probe order {}: {}; its steps are left out",
            r.status(),
            r.text().await.unwrap_or_default()
        )),
        Err(e) => Some(format!(
            "the peer at {url} did not answer a probe order ({e}); its steps are left out"
        )),
    }
}

fn peer_orders(url: &str) -> String {
    format!("{}/api/v1/orders/", url.trim_end_matches('/'))
}

impl Session<'_> {
    fn flow(&self, step: Step, index: usize) -> Flow {
        let keys = format!("bench-{}-{index}", self.run_id);
        let wiring = self.system.wiring;
        let skus = match step.series.scenario {
            Scenario::HotSku => Skus::One(scenarios::HOT_SKU),
            _ => Skus::Spread(self.args.skus),
        };
        let orders = |wiring: &Wiring, service: Service| {
            format!("{}/api/v1/orders/", wiring.base_url(service))
        };
        match (step.series.scenario, step.series.target) {
            (Scenario::Saga, _) => Flow::Saga {
                gateway: wiring.base_url(Service::Gateway),
                customers: self.customers.clone(),
                products: self.products.clone(),
                keys,
            },
            (_, target) => Flow::OneCall {
                urls: match target {
                    // Every order replica, client i at replica i mod N.
                    Target::Direct => std::iter::once(wiring)
                        .chain(self.system.replicas)
                        .map(|w| orders(w, Service::Order))
                        .collect(),
                    Target::Gateway => vec![orders(wiring, Service::Gateway)],
                    Target::Peer => vec![peer_orders(
                        self.args.peer_url.as_deref().unwrap_or_default(),
                    )],
                },
                auth: (target == Target::Direct)
                    .then(|| self.direct_auth.clone())
                    .flatten(),
                skus,
                keys,
            },
        }
    }

    /// Run and measure one step; `loaded`: the most each of `pids` held at the end
    /// of a load, updated.
    async fn run_step(
        &mut self,
        step: Step,
        index: usize,
        pids: &[(String, u32)],
        loaded: &mut [f64],
    ) -> Result<StepReport> {
        let peer = step.series.target == Target::Peer;
        let flow = Arc::new(self.flow(step, index));
        let mark = if peer {
            None
        } else {
            Some(self.pipeline.mark().await?)
        };
        if !peer {
            self.statements.reset().await;
        }
        let before = self.meter.snapshot();
        let label = format!("{} at {}", step.series.label(), step.shape.label());
        let ran = load::run(flow, &self.http, step.shape, self.args.seconds, label).await;
        for ((_, pid), most) in pids.iter().zip(loaded.iter_mut()) {
            *most = most.max(usage::memory_mib(*pid).map_or(0.0, |m| m.0));
        }
        let drained = match mark {
            Some(since) => Some((since, self.pipeline.drain(since).await?)),
            None => None,
        };
        let after = self.meter.snapshot();
        let orders = ran.tally.orders.len();
        let statements = if peer {
            None
        } else {
            self.statements.per_order(orders).await
        };
        let pipeline = match drained {
            Some((since, d)) => {
                let hops = self.pipeline.hops(since).await?;
                Some(PipelineReport {
                    paid: d.paid,
                    shipments: d.shipments,
                    notified: d.notified,
                    complete: d.complete(),
                    drained_after_s: d.after.as_secs_f64(),
                    created_to_shipment_ms: Latency::of(&hops.created_to_shipment),
                    paid_to_shipment_ms: Latency::of(&hops.paid_to_shipment),
                    paid_to_notified_ms: Latency::of(&hops.paid_to_notified),
                })
            }
            None => None,
        };
        let spent = usage::spent(&before, &after);
        let n = orders.max(1) as f64;
        let cpu_ms_per_order: std::collections::BTreeMap<String, f64> = self
            .meter
            .groups
            .iter()
            .filter(|g| g.peer == peer || g.name == "load generator")
            .filter_map(|g| Some((g.name.clone(), spent.get(&g.name)? / n)))
            .collect();
        let (clients, rate) = match step.shape {
            Shape::Closed { clients } => (Some(clients), None),
            Shape::Open { rate } => (None, Some(rate)),
        };
        Ok(StepReport {
            series: step.series.label(),
            peer,
            replicas: (!peer).then_some(usize::from(self.args.replicas)),
            load: if clients.is_some() { "closed" } else { "open" }.into(),
            clients,
            rate,
            seconds: ran.took.as_secs_f64(),
            orders,
            orders_per_s: orders as f64 / ran.took.as_secs_f64().max(0.001),
            latency_ms: Latency::of(&ran.tally.orders),
            calls_ms: match step.series.scenario {
                Scenario::Saga => ran
                    .tally
                    .calls
                    .iter()
                    .map(|(name, h)| ((*name).to_owned(), Latency::of(h)))
                    .collect(),
                _ => Default::default(),
            },
            errors: ran.tally.errors.clone(),
            system_cpu_ms_per_order: cpu_ms_per_order
                .iter()
                .filter(|(g, _)| g.as_str() != "load generator")
                .map(|(_, ms)| ms)
                .sum(),
            cpu_ms_per_order,
            machine_busy: usage::machine_busy(&before, &after),
            others_busy: usage::others_busy(&before, &after),
            statements,
            pipeline,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_after_the_first_are_numbered() {
        let names = [
            "product",
            "order",
            "inventory",
            "order",
            "inventory",
            "order",
        ];
        assert_eq!(
            replica_labels(&names),
            [
                "product",
                "order",
                "inventory",
                "order 2",
                "inventory 2",
                "order 3"
            ]
        );
    }
}
