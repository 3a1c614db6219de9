//! `cargo xtask bench`: how fast the system takes orders, and where the time goes.
//!
//! Every service runs as its own process (release build unless `--debug`) against
//! fresh `sales_bench_*` databases and a private broker namespace (`bench.`), so a
//! run neither sees nor disturbs `cargo xtask up`'s data. The scenarios
//! ([`scenarios`]): seed 004's one-call order, the full saga through the gateway, and
//! every order on one hot SKU; each runs in steps, closed loop at each `--clients`
//! count and then open loop at each `--rate` ([`load`]). Per step: orders per
//! second, latency percentiles (HDR), errors by status, CPU per order of every
//! process ([`usage`]), statements per order ([`statements`]), and the services' own
//! timestamps from payment to shipment and notification ([`pipeline`]). Per service:
//! time from exec to ready, memory idle and at its peak. `--peer-url` runs the
//! one-call order at a peer system too, alternating with ours. `--replicas N` runs
//! the order and the inventory service as N processes each on the same databases,
//! broker namespace and Redis (scale-out: docs/benchmarks.md).
//!
//! The tables go to stdout; JSON, markdown and a PNG to `target/bench/` ([`report`]).
//! The run fails (after writing them) if an order of ours failed or events did not
//! all arrive; nothing passes or fails on the numbers.

mod chart;
mod layout;
mod load;
mod pipeline;
mod plan;
mod report;
mod scenarios;
mod session;
mod shop;
mod statements;
mod tables;
mod usage;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use sales_testkit::launch::{Process, Service, Wiring};

use crate::local_services::{self, Isolated, Launch};
use crate::{BrokerChoice, infra};

/// Broker namespace of the benchmark's exchange and queues.
const AMQP_PREFIX: &str = "bench.";
/// Prefix of the benchmark's databases.
const DB_PREFIX: &str = "sales_bench_";
/// Set for the release build of xtask that a debug one hands the benchmark over to.
const RELEASE_LOAD: &str = "SALES_BENCH_RELEASE_LOAD_GENERATOR";

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScenarioArg {
    OneCall,
    Saga,
    HotSku,
    All,
}

/// Where the one-call and hot-sku orders go.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The order service itself, as seed 004's order service is hit.
    Direct,
    Gateway,
    Both,
}

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Scenarios, comma-separated: one-call, saga, hot-sku, or all.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    scenario: Vec<ScenarioArg>,
    /// Closed-loop steps: concurrent clients, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,64,256")]
    clients: Vec<usize>,
    /// Length of each step, in seconds.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Open-loop steps after the closed ones: orders per second offered
    /// (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    rate: Vec<f64>,
    /// Benchmark the debug build (quicker to build, far slower to run).
    #[arg(long)]
    debug: bool,
    /// The broker that carries the events.
    #[arg(long, value_enum, default_value = "rabbitmq")]
    broker: BrokerChoice,
    /// Where one-call and hot-sku orders go.
    #[arg(long, value_enum, default_value = "direct")]
    via: Via,
    /// A peer system's base URL (its `POST /api/v1/orders/` takes the same body): the
    /// one-call order runs there too, alternating with ours. Its SKU-0..SKU-999 must be
    /// in stock; its CPU is every process whose command line holds `uvicorn`.
    #[arg(long)]
    peer_url: Option<String>,
    /// The peer's own PostgreSQL port, to count its CPU too.
    #[arg(long, requires = "peer_url")]
    peer_pg_port: Option<u16>,
    /// One-call SKUs stocked (SKU-0 ...).
    #[arg(long, default_value_t = 1000)]
    skus: usize,
    /// Run the service binaries in this directory instead of this checkout's (the
    /// release build of another commit, say, to compare the two on one machine).
    #[arg(long)]
    services_from: Option<std::path::PathBuf>,
    /// Processes of the order service, and as many of the inventory service, on the
    /// same databases, broker namespace and Redis, each on ports of its own: order
    /// replica k calls inventory replica k, the other services call the first ones,
    /// the inventory replicas consume the same queues, and direct orders from
    /// client i go to order replica i mod N. At most 6: with a pool of 10 connections
    /// per process, 170 of the private PostgreSQL's 200.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=6))]
    replicas: u16,
}

impl BenchArgs {
    /// The one-call order and the saga, two clients for two seconds each on the
    /// debug build: does the flow still work?
    pub fn smoke() -> BenchArgs {
        BenchArgs {
            scenario: vec![ScenarioArg::OneCall, ScenarioArg::Saga],
            clients: vec![2],
            seconds: 2,
            rate: Vec::new(),
            debug: true,
            broker: BrokerChoice::Rabbitmq,
            via: Via::Direct,
            peer_url: None,
            peer_pg_port: None,
            skus: 100,
            services_from: None,
            replicas: 1,
        }
    }
}

pub async fn run(root: &Path, args: &BenchArgs) -> Result<()> {
    if args.seconds == 0 || args.clients.contains(&0) || args.skus == 0 {
        bail!("--clients, --seconds and --skus must be at least 1");
    }
    if args.rate.iter().any(|r| !r.is_finite() || *r <= 0.0) {
        bail!("--rate must be more than 0 orders per second");
    }
    let profile = if args.debug { "debug" } else { "release" };
    let handed_over = std::env::var_os(RELEASE_LOAD).is_some();
    let bin_dir = if handed_over {
        // Built a moment ago by the debug build that handed the benchmark over.
        root.join("target/release")
    } else {
        eprintln!("bench: building the services ({profile})");
        local_services::build(root, !args.debug).await?
    };
    // The load generator shares the machine: the debug build `cargo xtask` runs
    // would spend several times the CPU per order of a release one. The release build
    // of xtask was just built beside the services: it runs the benchmark.
    if !args.debug && cfg!(debug_assertions) && !handed_over {
        return hand_over(&bin_dir).await;
    }
    let infra = infra::ensure_infra(root).await?;
    let kafka_prefix = format!("bench{}.", std::process::id());
    let mut env = vec![
        // Seed 004's one-call order is for callers without an account.
        ("SEED_COMPAT_OPEN".to_owned(), "true".to_owned()),
        // Every client of the bench is one address (127.0.0.1), and callers without
        // an account are bounded per address: not what is measured here.
        (
            "MAX_UNPAID_ORDERS_PER_CUSTOMER".to_owned(),
            "1000000".to_owned(),
        ),
        (
            "MAX_RESERVED_UNITS_PER_CUSTOMER".to_owned(),
            "1000000".to_owned(),
        ),
    ];
    let kafka = match args.broker {
        BrokerChoice::Kafka => {
            let bootstrap = crate::kafka::ensure_kafka(&infra::private_dir(root)).await?;
            env.extend([
                ("MESSAGING_KIND".to_owned(), "kafka".to_owned()),
                ("KAFKA_BOOTSTRAP_SERVERS".to_owned(), bootstrap.clone()),
                ("KAFKA_TOPIC_PREFIX".to_owned(), kafka_prefix.clone()),
                // tansu cannot fetch from inside a batch (docs/messaging.md).
                ("KAFKA_BATCH_MESSAGES".to_owned(), "1".to_owned()),
            ]);
            Some(bootstrap)
        }
        BrokerChoice::Rabbitmq => None,
    };
    let settings: Vec<String> = env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .chain(["gateway rate limit 1000000000 requests a minute".to_owned()])
        .chain(args.peer_url.iter().map(|url| {
            format!(
                "peer: {url}; its CPU: every process whose command line holds `uvicorn`{}",
                args.peer_pg_port.map_or(String::new(), |p| format!(
                    ", and the PostgreSQL on port {p}"
                ))
            )
        }))
        .chain(
            args.services_from
                .iter()
                .map(|dir| format!("the services' binaries: {}", dir.display())),
        )
        .chain((args.replicas > 1).then(|| {
            format!(
                "order and inventory: {} processes each (replicas), each service's on its one database",
                args.replicas
            )
        }))
        .collect();
    let wiring = local_services::isolated_wiring(
        &infra,
        Isolated {
            db_prefix: DB_PREFIX,
            amqp_url: &infra.amqp_url,
            amqp_prefix: AMQP_PREFIX,
            redis_prefix: format!("bench{}:", std::process::id()),
            log_filter: "warn",
            requests_per_minute: 1_000_000_000,
            env,
        },
    )
    .await?;
    let logs = root.join("target/sales-bench/logs");
    let services = args.services_from.as_deref().unwrap_or(&bin_dir);
    eprintln!("bench: the services run from {}", services.display());
    let (mut processes, mut ready) = local_services::start_timed(services, &wiring, &logs)
        .await
        .with_context(|| format!("service logs: {}", logs.display()))?;
    let restarted =
        match local_services::restart_each_timed(services, &wiring, &logs, &mut processes).await {
            Ok(restarted) => restarted,
            Err(e) => {
                local_services::stop(&mut processes);
                return Err(e.context(format!("service logs: {}", logs.display())));
            }
        };
    let replicas = match start_replicas(services, &wiring, &logs, args.replicas).await {
        Ok((wirings, more, more_ready)) => {
            processes.extend(more);
            ready.extend(more_ready);
            wirings
        }
        Err(e) => {
            local_services::stop(&mut processes);
            return Err(e.context(format!("service logs: {}", logs.display())));
        }
    };
    let system = session::System {
        root,
        infra: &infra,
        wiring: &wiring,
        replicas: &replicas,
        processes: &processes,
        ready,
        restarted,
        kafka: kafka.as_deref(),
        profile,
        settings,
    };
    let outcome = session::measure(&system, args).await;
    local_services::stop(&mut processes);
    if let Some(bootstrap) = &kafka {
        sales_testkit::transport::delete_kafka_topics(bootstrap, &kafka_prefix).await;
    }
    let report = outcome.with_context(|| format!("service logs: {}", logs.display()))?;
    layout::print(&report);
    let dir = report.write(root)?;
    eprintln!(
        "bench: report in {} (latest.json, latest.md, latest.png)",
        dir.display()
    );
    let failures = report.failures();
    if !failures.is_empty() {
        bail!(
            "the run measured something else than the system working:\n{}\n(service logs: {})",
            failures.join("\n"),
            logs.display()
        );
    }
    Ok(())
}

/// Replicas 2 to `replicas` of the order and inventory services, started once the
/// first ones are ready (their databases migrated): each replica's wiring, its
/// processes, and how long each took to be ready.
async fn start_replicas(
    bin_dir: &Path,
    wiring: &Wiring,
    logs: &Path,
    replicas: u16,
) -> Result<(Vec<Wiring>, Vec<Process>, Vec<(Service, Duration)>)> {
    let wirings: Vec<Wiring> = (2..=replicas)
        .map(|_| local_services::replica_wiring(wiring))
        .collect();
    let launches: Vec<Launch> = wirings
        .iter()
        .zip(2..)
        .flat_map(|(wiring, k)| {
            local_services::REPLICATED.map(|service| Launch {
                service,
                wiring,
                log: local_services::replica_log_file(logs, service, k),
            })
        })
        .collect();
    if !launches.is_empty() {
        eprintln!(
            "bench: starting {} more processes of the order and inventory services",
            launches.len()
        );
    }
    let (processes, ready) = local_services::start_each(bin_dir, &launches).await?;
    Ok((wirings, processes, ready))
}

/// Run this same command with the release build of xtask in `bin_dir`.
async fn hand_over(bin_dir: &Path) -> Result<()> {
    let xtask = bin_dir.join("xtask");
    eprintln!("bench: the load runs from {}", xtask.display());
    let status = tokio::process::Command::new(&xtask)
        .args(std::env::args_os().skip(1))
        .env(RELEASE_LOAD, "1")
        .status()
        .await
        .with_context(|| format!("cannot run {}", xtask.display()))?;
    if !status.success() {
        bail!("the benchmark failed ({} {status})", xtask.display());
    }
    Ok(())
}
