//! `cargo xtask chaos`: a fault run under load, with an invariant checker.
//!
//! Starts every service as `cargo xtask up` does, beside it (`system`), with customers
//! ordering through the gateway (`load`); kills, restarts and freezes RabbitMQ,
//! PostgreSQL and the services (`faults`), each scenario on its own and mixed; stops the
//! load, lets the system settle, then checks what must hold against the services'
//! databases and the broker (`invariants`). Writes `target/chaos/report.md` (faults x
//! invariants, load figures, what was done, every violation; `report`) and
//! `target/chaos/timeline.png` (`timeline`). Exits non-zero on any violation.

mod broker_api;
mod faults;
mod invariants;
mod load;
mod report;
mod system;
mod timeline;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use chrono::Utc;
use sales_testkit::launch::Service;
use sqlx::{Connection as _, PgConnection};

use self::broker_api::BrokerApi;
use self::faults::{Saboteur, Scenario};
use self::invariants::{Databases, Expected};
use self::load::Shop;
use self::system::{System, VHOST};
use self::timeline::Timeline;
use crate::infra::{self, Infra};
use crate::storefront::{self, ProductSpec};

/// Units of each product at the start: more than any run sells.
const INITIAL_STOCK: i64 = 100_000;

#[derive(clap::Args, Debug, Clone)]
pub struct ChaosArgs {
    /// Concurrent customers, each placing an order, then paying, cancelling or leaving
    /// it (default 8; --short 6).
    #[arg(long)]
    pub clients: Option<usize>,
    /// Seconds of load at least; it goes on until the last fault's recovery is seen
    /// (default 60; --short 40).
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Fault scenarios, comma-separated (default: all; with --short: postgres-immediate,service-kills,rabbitmq-kill).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub faults: Vec<Scenario>,
    /// The short run of `cargo xtask test`: a couple of faults, about two minutes.
    #[arg(long)]
    pub short: bool,
    /// How long the system has to settle after the load (default 120, --short 40).
    #[arg(long)]
    pub settle_seconds: Option<u64>,
    /// How long RabbitMQ stays away in broker-outage (longer than any retry budget).
    #[arg(long, default_value_t = 130)]
    pub outage_seconds: u64,
    /// The gateway's limit, requests per client per minute (high: the load is not throttled).
    #[arg(long, default_value_t = 1_000_000_000)]
    pub rate_limit: u64,
    /// Kill the private PostgreSQL and RabbitMQ although other programs use them.
    #[arg(long)]
    pub disturb_others: bool,
    /// Run the release build of the services.
    #[arg(long)]
    pub release: bool,
    /// The type of the services' queues (`AMQP_QUEUE_TYPE`): quorum queues are what a
    /// replicated broker runs; on this single node they take the same faults.
    #[arg(long, value_enum, default_value_t = QueueType::Classic)]
    pub queue_type: QueueType,
}

/// `--queue-type`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueType {
    Classic,
    Quorum,
}

impl QueueType {
    fn name(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
        }
    }
}

impl ChaosArgs {
    /// What `cargo xtask test` runs.
    pub fn short_run() -> ChaosArgs {
        ChaosArgs {
            clients: None,
            seconds: None,
            faults: Vec::new(),
            short: true,
            settle_seconds: None,
            outage_seconds: 130,
            rate_limit: 1_000_000_000,
            disturb_others: false,
            release: false,
            queue_type: QueueType::Classic,
        }
    }

    fn scenarios(&self) -> Vec<Scenario> {
        match (self.faults.is_empty(), self.short) {
            (false, _) => self.faults.clone(),
            (true, true) => vec![
                Scenario::PostgresImmediate,
                Scenario::ServiceKills,
                Scenario::RabbitmqKill,
            ],
            (true, false) => Scenario::ALL.to_vec(),
        }
    }

    fn clients(&self) -> usize {
        self.clients.unwrap_or(if self.short { 6 } else { 8 })
    }

    fn seconds(&self) -> u64 {
        self.seconds.unwrap_or(if self.short { 40 } else { 60 })
    }

    fn command(&self) -> String {
        let mut c = format!(
            "cargo xtask chaos --clients {} --seconds {}",
            self.clients(),
            self.seconds()
        );
        if self.short {
            c.push_str(" --short");
        }
        let names: Vec<&str> = self.scenarios().iter().map(|s| s.name()).collect();
        c.push_str(&format!(" --faults {}", names.join(",")));
        if self.queue_type != QueueType::Classic {
            c.push_str(&format!(" --queue-type {}", self.queue_type.name()));
        }
        c
    }
}

pub async fn run(root: &Path, args: &ChaosArgs) -> Result<ExitCode> {
    if args.clients() == 0 {
        bail!("--clients must be at least 1");
    }
    // Faults run this program to start servers. A build may have replaced its file
    // since it started (`cargo xtask test` builds every binary first): Linux then
    // names it "<path> (deleted)", and the path itself holds the rebuilt program,
    // which has the same `infra ensure` (the short run in `cargo xtask test` failed
    // with "No such file or directory" before this).
    let exe = program_path(std::env::current_exe().context("this program's path")?);
    let scenarios = args.scenarios();
    let infra = infra::ensure_infra(root).await?;
    let infra_dir = faults::private_infra(&infra, &scenarios)?;
    let management = infra.rabbitmq_management_url.as_deref().context(
        "chaos needs RabbitMQ's management API (SALES_RABBITMQ_MANAGEMENT_URL) for queue depths and dead letters",
    )?;
    let broker = Arc::new(BrokerApi::new(management)?);
    alone(&infra, &broker, &scenarios, args.disturb_others).await?;
    let system = system::start(root, &infra, broker, args).await?;
    let saboteur = Arc::new(Saboteur::new(infra_dir, exe, system.fleet.clone()));
    let outcome = tokio::select! {
        r = drive(root, args, &scenarios, &system, &saboteur) => r,
        _ = sales_platform::shutdown::signal() => Err(anyhow::anyhow!("interrupted")),
    };
    system.fleet.stop();
    // Whatever a fault left stopped is started again.
    if let Err(e) = saboteur.start_infra().await {
        eprintln!("chaos: could not start the private infrastructure again: {e:#}");
    }
    outcome.with_context(|| format!("service logs: {}", system.logs.display()))
}

/// Others using the servers chaos is about to kill: refused unless told to go ahead.
async fn alone(
    infra: &Infra,
    broker: &BrokerApi,
    scenarios: &[Scenario],
    disturb: bool,
) -> Result<()> {
    let mut others = Vec::new();
    if scenarios.iter().any(|s| s.touches_postgres()) {
        let mut pg = PgConnection::connect(&infra.postgres_url).await?;
        let rows: Vec<(Option<String>, i64)> = sqlx::query_as(
            "select datname, count(*) from pg_stat_activity
             where backend_type = 'client backend' and pid <> pg_backend_pid()
               and coalesce(datname, '') not like 'sales\\_chaos\\_%' group by datname",
        )
        .fetch_all(&mut pg)
        .await?;
        others.extend(
            rows.into_iter()
                .map(|(db, n)| format!("{n} PostgreSQL sessions in {}", db.unwrap_or_default())),
        );
    }
    if scenarios.iter().any(|s| s.touches_rabbitmq()) {
        let vhosts = broker.connection_vhosts().await?;
        let n = vhosts.iter().filter(|v| *v != VHOST).count();
        if n > 0 {
            others.push(format!("{n} RabbitMQ connections to other vhosts"));
        }
    }
    if others.is_empty() {
        return Ok(());
    }
    let what = others.join("; ");
    if disturb {
        eprintln!(
            "chaos: the private infrastructure has other users, who will see its faults: {what}"
        );
        return Ok(());
    }
    bail!(
        "the private infrastructure has other users ({what}); chaos would kill their servers too: run it when they are done, or pass --disturb-others"
    )
}

async fn drive(
    root: &Path,
    args: &ChaosArgs,
    scenarios: &[Scenario],
    system: &System,
    saboteur: &Arc<Saboteur>,
) -> Result<ExitCode> {
    let http = sales_platform::tls::http_client_builder()
        .timeout(Duration::from_secs(15))
        .pool_max_idle_per_host(args.clients())
        .build()?;
    let specs: Vec<ProductSpec> = load::CATALOGUE
        .iter()
        .map(|(sku, name, price)| ProductSpec {
            sku: (*sku).into(),
            name: (*name).into(),
            price_cents: *price,
            stock: INITIAL_STOCK,
        })
        .collect();
    let ids = storefront::make_catalogue(&http, &system.wiring, &specs).await?;
    let gateway = system.wiring.base_url(Service::Gateway);
    let run_id = format!("chaos-{}", Utc::now().timestamp());
    let mut tokens = Vec::new();
    for c in 0..args.clients() {
        tokens.push(register(&http, &gateway, &format!("{run_id}-{c}@example.com")).await?);
    }

    let timeline = Arc::new(Timeline::new());
    saboteur.start_clock();
    let shop = Arc::new(Shop {
        http,
        gateway,
        products: ids,
        run_id,
        retry_budget: Duration::from_secs(if args.short { 60 } else { 180 }),
        stop: AtomicBool::new(false),
        ledger: Mutex::default(),
        stats: Mutex::default(),
        timeline: timeline.clone(),
    });
    let sampling = Arc::new(AtomicBool::new(true));
    tokio::spawn(sample_queues(
        system.broker.clone(),
        timeline.clone(),
        sampling.clone(),
    ));
    eprintln!(
        "chaos: {} clients ordering through the gateway; faults: {}",
        args.clients(),
        scenarios
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let customers: Vec<_> = tokens
        .into_iter()
        .enumerate()
        .map(|(c, t)| tokio::spawn(load::customer(shop.clone(), c, t)))
        .collect();

    let load_started = Instant::now();
    let (warm_up, gap) = if args.short { (6, 8) } else { (10, 15) };
    tokio::time::sleep(Duration::from_secs(warm_up)).await;
    let mut fault_error = None;
    for phase in faults::plan(scenarios, args.short, args.outage_seconds) {
        if let Err(e) = saboteur.run(&phase, &timeline).await {
            saboteur.say(format!("the fault {} failed: {e:#}", phase.scenario.name()));
            fault_error = Some(e);
            break;
        }
        tokio::time::sleep(Duration::from_secs(gap)).await;
    }
    if fault_error.is_some() {
        // Whatever the failed fault left stopped comes back before the load ends.
        if let Err(e) = saboteur.start_infra().await {
            saboteur.say(format!("the private infrastructure is not back: {e:#}"));
        }
    }
    let rest = Duration::from_secs(args.seconds()).saturating_sub(load_started.elapsed());
    tokio::time::sleep(rest).await;
    shop.stop.store(true, Ordering::Relaxed);
    saboteur.say("the load stops; each client finishes the order at hand".into());
    for c in customers {
        let _ = c.await;
    }
    let load_seconds = load_started.elapsed().as_secs_f64();

    let settle_for =
        Duration::from_secs(
            args.settle_seconds
                .unwrap_or(if args.short { 40 } else { 120 }),
        );
    let dbs = databases(system);
    let settled_after = settle(&dbs, &system.broker, settle_for).await;
    saboteur.say(match settled_after {
        Some(t) => format!(
            "settled {t:.0} s after the load: outboxes and queues empty, no order past its pay-by or half placed, no charge unsettled"
        ),
        None => format!(
            "not settled {} s after the load; checking anyway",
            settle_for.as_secs()
        ),
    });
    sampling.store(false, Ordering::Relaxed);

    // Dead letters that cannot be read count as a violation, not as no dead letters.
    let (dead, unreadable) = match dead_letters(&system.broker).await {
        Ok(dead) => (dead, None),
        Err(e) => (
            Vec::new(),
            Some(format!("the dead-letter queues could not be read: {e:#}")),
        ),
    };
    let world = invariants::read_world(&dbs, dead).await?;
    let (told, keys) = shop
        .ledger
        .lock()
        .map(|l| (l.told.clone(), l.keys.clone()))
        .unwrap_or_default();
    let expected = Expected {
        initial_stock: specs.iter().map(|s| (s.sku.clone(), s.stock)).collect(),
        told,
        keys,
        now: Utc::now(),
    };
    let mut violations = invariants::check(&world, &expected);
    violations.extend(unreadable.map(|detail| invariants::Violation {
        invariant: invariants::Invariant::DeadLetters,
        order_id: None,
        detail,
    }));
    let stats = shop
        .stats
        .lock()
        .map(|mut s| std::mem::take(&mut *s))
        .unwrap_or_default();
    violations.extend(invariants::server_errors(&stats.errors));
    let created: BTreeMap<i64, chrono::DateTime<Utc>> =
        world.orders.iter().map(|o| (o.id, o.created_at)).collect();
    let rows = report::rows(
        timeline.started_at,
        &timeline.windows(),
        &created,
        &violations,
    );
    let log = saboteur.log.lock().map(|l| l.clone()).unwrap_or_default();
    let restarts: Vec<(String, u32)> = system
        .fleet
        .restarts()
        .into_iter()
        .map(|(s, n)| (s.name().to_owned(), n))
        .collect();
    let text = report::markdown(&report::Figures {
        command: args.command(),
        started_at: timeline.started_at,
        load_seconds,
        settled_after,
        clients: args.clients(),
        stats: &stats,
        fault_log: &log,
        restarts: &restarts,
        rows: &rows,
        violations: &violations,
        incomplete: fault_error.as_ref().map(|e| format!("{e:#}")),
        totals: invariants::totals(&world, &expected),
    });
    let out_dir = root.join("target/chaos");
    std::fs::create_dir_all(&out_dir)?;
    std::fs::write(out_dir.join("report.md"), &text)?;
    let png = timeline.png(
        &format!("Chaos run: {} clients; faults shaded", args.clients()),
        1600,
        900,
    )?;
    std::fs::write(out_dir.join("timeline.png"), png)?;
    println!("{text}");
    println!(
        "report: {}\ntimeline: {}",
        out_dir.join("report.md").display(),
        out_dir.join("timeline.png").display()
    );
    Ok(if violations.is_empty() && fault_error.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A customer registered and logged in, retried while the system warms up.
async fn register(http: &reqwest::Client, gateway: &str, email: &str) -> Result<String> {
    let mut tries = 0;
    loop {
        match storefront::register(http, gateway, email).await {
            Ok(token) => return Ok(token),
            Err(e) if tries < 5 => {
                tries += 1;
                eprintln!("chaos: registering {email} failed ({e:#}); trying again");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn databases(system: &System) -> Databases {
    let url = |s: Service| {
        system
            .wiring
            .database_urls
            .get(&s)
            .cloned()
            .unwrap_or_default()
    };
    Databases {
        orders: url(Service::Order),
        payments: url(Service::Payment),
        inventory: url(Service::Inventory),
        shipping: url(Service::Shipping),
        notifications: url(Service::Notification),
    }
}

/// Queue depths every second until `running` goes false (none while the broker is away).
async fn sample_queues(broker: Arc<BrokerApi>, timeline: Arc<Timeline>, running: Arc<AtomicBool>) {
    while running.load(Ordering::Relaxed) {
        if let Ok(queues) = broker.queues(VHOST).await {
            let sum = |f: &dyn Fn(&str) -> bool| {
                queues
                    .iter()
                    .filter(|q| f(&q.name))
                    .filter_map(|q| q.messages)
                    .sum::<u64>()
            };
            let dead = sum(&|n| n.ends_with(".dead"));
            let retrying = sum(&|n| n.contains(".retry-"));
            let depth = sum(&|n| !n.ends_with(".dead") && !n.contains(".retry-"));
            timeline.at_now(|s| {
                s.depth = Some(depth);
                s.retrying = Some(retrying);
                s.dead = Some(dead);
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Wait until nothing is in flight: every outbox and queue empty, no order PENDING
/// past its pay-by time, no order being placed (a claim a killed order service left
/// is settled once it expires), no charge the order has not settled and no payment provider
/// call unanswered (a refund the payment service could not make during a fault is
/// made by the reconcilers), seen on two looks in a row, 2 s apart (the broker's
/// queue figures are a second old). How long that took, or `None` at the deadline.
async fn settle(dbs: &Databases, broker: &BrokerApi, deadline: Duration) -> Option<f64> {
    let started = Instant::now();
    let mut quiet_looks = 0;
    while started.elapsed() < deadline {
        if quiet(dbs, broker).await.unwrap_or(false) {
            quiet_looks += 1;
            if quiet_looks == 2 {
                return Some(started.elapsed().as_secs_f64());
            }
        } else {
            quiet_looks = 0;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    None
}

async fn quiet(dbs: &Databases, broker: &BrokerApi) -> Result<bool> {
    // No queue listed at all is as unknown as a queue without figures.
    let queues = broker.queues(VHOST).await?;
    let mut live = queues
        .iter()
        .filter(|q| !q.name.ends_with(".dead"))
        .peekable();
    let in_queues: Option<u64> = match live.peek() {
        None => None,
        Some(_) => live.map(|q| q.messages).sum(),
    };
    if in_queues != Some(0) {
        return Ok(false);
    }
    for url in [
        &dbs.orders,
        &dbs.payments,
        &dbs.inventory,
        &dbs.shipping,
        &dbs.notifications,
    ] {
        let mut conn = PgConnection::connect(url).await?;
        let waiting: i64 = sqlx::query_scalar(
            "select case when to_regclass('outbox') is null then 0 else (select count(*) from outbox) end",
        )
        .fetch_one(&mut conn)
        .await?;
        if waiting > 0 {
            return Ok(false);
        }
    }
    let mut orders = PgConnection::connect(&dbs.orders).await?;
    let overdue: i64 = sqlx::query_scalar(
        "select (select count(*) from orders
                 where (status = 'PENDING' and pay_by <= now())
                    or (payment_attempted_at is not null and payment_settled_at is null))
              + (select count(*) from order_claims where state = 'in_progress')",
    )
    .fetch_one(&mut orders)
    .await?;
    let mut payments = PgConnection::connect(&dbs.payments).await?;
    let in_doubt: i64 =
        sqlx::query_scalar("select count(*) from payments where provider_call is not null")
            .fetch_one(&mut payments)
            .await?;
    Ok(overdue == 0 && in_doubt == 0)
}

/// Every message in the run's dead-letter queues.
async fn dead_letters(broker: &BrokerApi) -> Result<Vec<broker_api::DeadLetter>> {
    let mut out = Vec::new();
    for q in broker
        .queues(VHOST)
        .await?
        .iter()
        .filter(|q| q.name.ends_with(".dead") && q.messages != Some(0))
    {
        let depth = q.messages.unwrap_or(1000).min(1000);
        out.extend(broker.dead_letters(VHOST, &q.name, depth).await?);
    }
    Ok(out)
}

/// `path` without the " (deleted)" Linux adds to a running program's replaced file.
fn program_path(path: std::path::PathBuf) -> std::path::PathBuf {
    match path.to_str().and_then(|p| p.strip_suffix(" (deleted)")) {
        Some(live) => std::path::PathBuf::from(live),
        None => path,
    }
}
