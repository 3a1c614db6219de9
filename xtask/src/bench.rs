//! `cargo xtask bench`: throughput, latency, CPU and memory of the whole system
//! under a steady order load through the gateway. It prints numbers; nothing here
//! passes or fails on them.
//!
//! Every service runs as its own process (release build unless `--debug`) against
//! fresh `sales_bench_*` databases and a private broker namespace (`bench.`), so a
//! run neither sees nor disturbs `cargo xtask up`'s data. Each client is a customer
//! who, in a loop, reads a product (a cached catalogue read), places an order for one
//! unit of it (stock reserved, events committed) and pays it (payment authorized and
//! captured, `paid-order` published). After the load, the bench waits until every
//! paid order has its shipment and every event its notification, and reports how
//! long the pipeline took to drain, how many events the consumers handled per
//! second, and how long each paid order took to get its shipment (the `paid-order`
//! hop, from the order's `paid_at` to the shipment's `created_at`).
//!
//! `--broker kafka` runs the same on the local Kafka-protocol broker (tansu), with
//! topics of its own that are deleted afterwards.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use sales_testkit::launch::{Process, Service, Wiring};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::local_services::{self, Isolated};
use crate::storefront::{self, ProductSpec, percentile};
use crate::{BrokerChoice, infra};

/// Products in the benchmark's catalogue; each client picks one at random per order.
const PRODUCTS: usize = 20;
/// Price of each product in cents: well under the payment service's decline limit.
const PRICE_CENTS: i64 = 1500;
/// Broker namespace of the benchmark's exchange and queues.
const AMQP_PREFIX: &str = "bench.";

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Concurrent clients (customers), each running browse, order, pay in a loop.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// How long the load runs, in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Benchmark the debug build (quicker to build, far slower to run).
    #[arg(long)]
    debug: bool,
    /// The broker that carries the events.
    #[arg(long, value_enum, default_value = "rabbitmq")]
    broker: BrokerChoice,
}

impl BenchArgs {
    /// Two clients for two seconds on the debug build: does the flow still work?
    pub fn smoke() -> BenchArgs {
        BenchArgs {
            clients: 2,
            seconds: 2,
            debug: true,
            broker: BrokerChoice::Rabbitmq,
        }
    }
}

/// The three steps each client repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Step {
    BrowseProduct,
    PlaceOrder,
    PayOrder,
}

impl Step {
    fn label(self) -> &'static str {
        match self {
            Step::BrowseProduct => "browse product",
            Step::PlaceOrder => "place order",
            Step::PayOrder => "pay order",
        }
    }
}

#[derive(Default)]
struct Samples {
    /// Latency of each answered request, in microseconds.
    ok: Vec<u64>,
    /// Answers other than 2xx, by status (0: no answer).
    errors: BTreeMap<u16, u64>,
}

pub async fn run(root: &Path, args: &BenchArgs) -> Result<()> {
    if args.clients == 0 || args.seconds == 0 {
        bail!("--clients and --seconds must be at least 1");
    }
    let infra = infra::ensure_infra(root).await?;
    let kafka_prefix = format!("bench{}.", std::process::id());
    let mut env = Vec::new();
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
    let profile = if args.debug { "debug" } else { "release" };
    eprintln!("bench: building the services ({profile})");
    let bin_dir = local_services::build(root, !args.debug).await?;
    let wiring = local_services::isolated_wiring(
        &infra,
        Isolated {
            db_prefix: "sales_bench_",
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
    let mut processes = local_services::start(&bin_dir, &wiring, &logs)
        .await
        .with_context(|| format!("service logs: {}", logs.display()))?;
    let outcome = measure(&wiring, args, &processes, profile).await;
    local_services::stop(&mut processes);
    if let Some(bootstrap) = &kafka {
        sales_testkit::transport::delete_kafka_topics(bootstrap, &kafka_prefix).await;
    }
    outcome.with_context(|| format!("service logs: {}", logs.display()))
}

async fn measure(
    wiring: &Wiring,
    args: &BenchArgs,
    processes: &[Process],
    profile: &str,
) -> Result<()> {
    for service in Service::ALL {
        sales_testkit::wait_ready(
            &format!("{}/ready", wiring.base_url(service)),
            Duration::from_secs(60),
        )
        .await
        .with_context(|| format!("the {} service did not become ready", service.name()))?;
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;
    let catalogue: Vec<ProductSpec> = (0..PRODUCTS)
        .map(|n| ProductSpec {
            sku: format!("BENCH-{n:03}"),
            name: format!("Bench product {n}"),
            price_cents: PRICE_CENTS,
            stock: 1_000_000,
        })
        .collect();
    let products = storefront::make_catalogue(&http, wiring, &catalogue).await?;
    let gateway = wiring.base_url(Service::Gateway);
    let mut tokens = Vec::with_capacity(args.clients);
    for client in 0..args.clients {
        let email = format!("bench-{client}@example.com");
        tokens.push(storefront::register(&http, &gateway, &email).await?);
    }
    let before = usage(processes);
    let neighbours_before = neighbours_cpu();

    eprintln!(
        "bench: {} clients for {} s through the gateway",
        args.clients, args.seconds
    );
    let samples: Arc<Mutex<BTreeMap<Step, Samples>>> = Arc::default();
    let started = Instant::now();
    let until = started + Duration::from_secs(args.seconds);
    let mut workers = Vec::new();
    for (client, token) in tokens.into_iter().enumerate() {
        let (http, gateway, products, samples) = (
            http.clone(),
            gateway.clone(),
            products.clone(),
            samples.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut local: BTreeMap<Step, Samples> = BTreeMap::new();
            let mut round = 0usize;
            while Instant::now() < until {
                let product = products[(client * 7 + round * 13) % products.len()];
                round += 1;
                let auth = format!("Bearer {token}");
                let browse = http
                    .get(format!("{gateway}/api/v1/products/{product}"))
                    .header("authorization", &auth);
                timed(&mut local, Step::BrowseProduct, browse).await;
                let place = http
                    .post(format!("{gateway}/api/v1/orders"))
                    .header("authorization", &auth)
                    .header("idempotency-key", format!("bench-{client}-{round}"))
                    .json(&json!({"items": [{"product_id": product, "quantity": 1}]}));
                let Some(order) = timed(&mut local, Step::PlaceOrder, place).await else {
                    continue;
                };
                let Some(order_id) = order["order_id"].as_i64() else {
                    continue;
                };
                let pay = http
                    .post(format!("{gateway}/api/v1/orders/{order_id}/pay"))
                    .header("authorization", &auth);
                timed(&mut local, Step::PayOrder, pay).await;
            }
            let mut all = samples.lock().await;
            for (step, s) in local {
                let into = all.entry(step).or_default();
                into.ok.extend(s.ok);
                for (status, n) in s.errors {
                    *into.errors.entry(status).or_default() += n;
                }
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let load_took = started.elapsed();
    let samples = std::mem::take(&mut *samples.lock().await);
    let placed = samples.get(&Step::PlaceOrder).map_or(0, |s| s.ok.len());
    let paid = samples.get(&Step::PayOrder).map_or(0, |s| s.ok.len());

    // The event pipeline: a shipment per paid order, a notification per event.
    let drain_started = Instant::now();
    let expected_notifications = placed + paid;
    let (shipments, notifications) = loop {
        let shipments = consumed(&http, wiring, Service::Shipping).await;
        let notifications = consumed(&http, wiring, Service::Notification).await;
        if (shipments >= paid && notifications >= expected_notifications)
            || drain_started.elapsed() > Duration::from_secs(120)
        {
            break (shipments, notifications);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let drained_after = drain_started.elapsed();
    let lag = mean_lag(&http, wiring, Service::Notification).await;
    let mut handled = 0;
    for service in [
        Service::Inventory,
        Service::Shipping,
        Service::Notification,
        Service::Order,
    ] {
        handled += consumed(&http, wiring, service).await;
    }
    let to_shipment = paid_to_shipment(wiring).await?;
    let after = usage(processes);
    let neighbours_after = neighbours_cpu();

    println!();
    println!(
        "sales-system bench: {profile} build, {} clients, {:.1} s of load through the gateway, events on {}",
        args.clients,
        load_took.as_secs_f64(),
        match args.broker {
            BrokerChoice::Rabbitmq => "RabbitMQ",
            BrokerChoice::Kafka => "Kafka (tansu)",
        }
    );
    println!();
    println!(
        "{:<16} {:>8} {:>7} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "step", "ok", "errors", "per s", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for (step, s) in &samples {
        let mut ok = s.ok.clone();
        ok.sort_unstable();
        let errors: u64 = s.errors.values().sum();
        println!(
            "{:<16} {:>8} {:>7} {:>9.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
            step.label(),
            ok.len(),
            errors,
            ok.len() as f64 / load_took.as_secs_f64(),
            percentile(&ok, 0.50),
            percentile(&ok, 0.95),
            percentile(&ok, 0.99),
            percentile(&ok, 1.0),
        );
        if !s.errors.is_empty() {
            println!("{:<16} errors by status (0: no answer): {:?}", "", s.errors);
        }
    }
    println!();
    println!(
        "events: {shipments} of {paid} shipments opened and {notifications} of {expected_notifications} notifications recorded, {:.2} s after the load stopped; mean time from event to notification {}",
        drained_after.as_secs_f64(),
        lag.map_or("n/a".into(), |l| format!("{:.1} ms", l * 1000.0)),
    );
    let window = load_took + drained_after;
    println!(
        "events handled by the consumers: {handled}, {:.1} per s from the load's start to the last event",
        handled as f64 / window.as_secs_f64()
    );
    println!(
        "paid -> shipment opened ({} orders): p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        to_shipment.len(),
        percentile(&to_shipment, 0.50),
        percentile(&to_shipment, 0.95),
        percentile(&to_shipment, 0.99),
        percentile(&to_shipment, 1.0),
    );
    println!();
    println!(
        "{:<14} {:>12} {:>10} {:>14}",
        "service", "cpu s (load)", "rss MiB", "peak rss MiB"
    );
    for p in processes {
        let name = p.service.name();
        let (Some(b), Some(a)) = (before.get(name), after.get(name)) else {
            continue;
        };
        println!(
            "{:<14} {:>12.2} {:>10.1} {:>14.1}",
            name,
            a.cpu_seconds - b.cpu_seconds,
            a.rss_kib as f64 / 1024.0,
            a.peak_rss_kib as f64 / 1024.0,
        );
    }
    println!();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let spent: Vec<String> = neighbours_after
        .iter()
        .map(|(name, after)| {
            let before = neighbours_before.get(name).copied().unwrap_or(0.0);
            format!("{name} {:.2} s", (after - before).max(0.0))
        })
        .collect();
    println!(
        "the machine: {cores} cores, {:.1} cpu s in the {:.1} s from the load's start to the last event; also spent: {}",
        window.as_secs_f64() * cores as f64,
        window.as_secs_f64(),
        spent.join(", ")
    );
    // A run whose requests failed, or whose events did not all arrive, measured
    // something else than the system working.
    let failed: u64 = samples.values().flat_map(|s| s.errors.values()).sum();
    if failed > 0 || placed == 0 {
        bail!("{failed} requests failed and {placed} orders were placed; see the table above");
    }
    if shipments < paid || notifications < expected_notifications {
        bail!(
            "the events did not all arrive within 120 s: {shipments} of {paid} shipments, {notifications} of {expected_notifications} notifications"
        );
    }
    Ok(())
}

/// Send `request`, record its latency under `step`; the JSON answer when 2xx.
async fn timed(
    samples: &mut BTreeMap<Step, Samples>,
    step: Step,
    request: reqwest::RequestBuilder,
) -> Option<Value> {
    let sent = Instant::now();
    let answer = request.send().await;
    let s = samples.entry(step).or_default();
    match answer {
        Ok(r) if r.status().is_success() => {
            let body = r.json::<Value>().await.ok();
            s.ok.push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
            body
        }
        Ok(r) => {
            *s.errors.entry(r.status().as_u16()).or_default() += 1;
            None
        }
        Err(_) => {
            *s.errors.entry(0).or_default() += 1;
            None
        }
    }
}

/// For every paid order that has a shipment: microseconds from the order's `paid_at`
/// (order database) to the shipment's `created_at` (shipping database), sorted.
async fn paid_to_shipment(wiring: &Wiring) -> Result<Vec<u64>> {
    use sqlx::Connection as _;
    let url = |service: Service| {
        wiring
            .database_urls
            .get(&service)
            .cloned()
            .with_context(|| format!("no database for {}", service.name()))
    };
    let mut orders = sqlx::PgConnection::connect(&url(Service::Order)?).await?;
    let paid: HashMap<i64, chrono::DateTime<chrono::Utc>> =
        sqlx::query_as("select id, paid_at from orders where paid_at is not null")
            .fetch_all(&mut orders)
            .await?
            .into_iter()
            .collect();
    let mut shipping = sqlx::PgConnection::connect(&url(Service::Shipping)?).await?;
    let opened: Vec<(i64, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("select order_id, created_at from shipments")
            .fetch_all(&mut shipping)
            .await?;
    let mut out: Vec<u64> = opened
        .into_iter()
        .filter_map(|(order, created)| {
            let took = created.signed_duration_since(*paid.get(&order)?);
            u64::try_from(took.num_microseconds()?).ok()
        })
        .collect();
    out.sort_unstable();
    Ok(out)
}

/// Messages a service has handled (every queue, outcome `processed`), from its metrics.
async fn consumed(http: &reqwest::Client, wiring: &Wiring, service: Service) -> usize {
    let text = metrics(http, wiring, service).await;
    text.lines()
        .filter(|l| {
            l.starts_with("messages_consumed_total{") && l.contains("outcome=\"processed\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as usize
}

/// Mean time from an event happening to `service` handling it, in seconds.
async fn mean_lag(http: &reqwest::Client, wiring: &Wiring, service: Service) -> Option<f64> {
    let text = metrics(http, wiring, service).await;
    let total = |suffix: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(&format!("message_lag_seconds_{suffix}{{")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let count = total("count");
    (count > 0.0).then(|| total("sum") / count)
}

async fn metrics(http: &reqwest::Client, wiring: &Wiring, service: Service) -> String {
    let url = format!("{}/metrics", wiring.admin_url(service));
    match http.get(url).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// CPU time and memory of one process, from `/proc`.
struct Usage {
    cpu_seconds: f64,
    rss_kib: u64,
    peak_rss_kib: u64,
}

fn usage(processes: &[Process]) -> HashMap<&'static str, Usage> {
    processes
        .iter()
        .filter_map(|p| Some((p.service.name(), process_usage(p.child.id())?)))
        .collect()
}

/// What else shares the machine, by program: CPU seconds of every process of the
/// infrastructure (PostgreSQL's backends, RabbitMQ's Erlang VM, Redis, tansu), and of this
/// load generator.
fn neighbours_cpu() -> BTreeMap<&'static str, f64> {
    const PROGRAMS: [(&str, &str); 4] = [
        ("postgres", "postgresql"),
        ("beam.smp", "rabbitmq"),
        ("redis-server", "redis"),
        ("tansu", "kafka (tansu)"),
    ];
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let Some((_, name)) = PROGRAMS.iter().find(|(c, _)| *c == comm.trim()) else {
            continue;
        };
        if let Some(u) = process_usage(pid) {
            *out.entry(*name).or_default() += u.cpu_seconds;
        }
    }
    if let Some(me) = process_usage(std::process::id()) {
        out.insert("load generator", me.cpu_seconds);
    }
    out
}

fn process_usage(pid: u32) -> Option<Usage> {
    // Linux reports CPU time in clock ticks of 1/100 s on every platform it runs on
    // here (USER_HZ).
    const TICKS_PER_SECOND: f64 = 100.0;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15: indices 11 and 12 after the name.
    let cpu_seconds = (ticks(11) + ticks(12)) / TICKS_PER_SECOND;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Some(Usage {
        cpu_seconds,
        rss_kib: kib("VmRSS:"),
        peak_rss_kib: kib("VmHWM:"),
    })
}
