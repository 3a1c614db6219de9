//! The system chaos runs against: every service as a process, started the way
//! `cargo xtask up` starts them (`local_services`), beside `up`'s own: fresh
//! `sales_chaos_*` databases with `synchronous_commit` on, a RabbitMQ vhost of its
//! own, free ports; and a supervisor that starts a killed service again with
//! `up`'s back-off (`restarts`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use sales_testkit::launch::{Service, Signal, Wiring};
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};

use super::ChaosArgs;
use super::broker_api::BrokerApi;
use crate::infra::Infra;
use crate::local_services::{self, Isolated};
use crate::restarts::{self, Watched};

/// The run's RabbitMQ vhost: its queues are the ones sampled and checked.
pub const VHOST: &str = "sales-chaos";
const DB_PREFIX: &str = "sales_chaos_";

/// Services, watched and started again when they die.
pub struct Fleet {
    watched: Mutex<Vec<Watched>>,
    bin_dir: PathBuf,
    wiring: Wiring,
    logs: PathBuf,
    stopping: AtomicBool,
}

impl Fleet {
    /// Look at every service once (see `restarts::check`).
    fn check(&self) {
        if self.stopping.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(mut w) = self.watched.lock() {
            restarts::check(&mut w, &self.bin_dir, &self.wiring, &self.logs);
        }
    }

    /// Send `signal` to `service`'s current process; its pid.
    pub fn signal(&self, service: Service, signal: Signal) -> Result<u32> {
        let w = self
            .watched
            .lock()
            .map_err(|_| anyhow::anyhow!("the fleet's lock is poisoned"))?;
        let p = w
            .iter()
            .find(|w| w.process.service == service)
            .with_context(|| format!("no {} process", service.name()))?;
        p.process
            .signal(signal)
            .with_context(|| format!("signalling the {} service", service.name()))?;
        Ok(p.process.child.id())
    }

    /// Wait until `service` answers `/ready` (after a restart the supervisor may still
    /// be waiting out its back-off).
    pub async fn wait_ready(&self, service: Service, timeout: Duration) -> Result<()> {
        let url = format!("{}/ready", self.wiring.base_url(service));
        let http = sales_platform::tls::http_client_builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if http
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "the {} service is not ready after {timeout:?}",
                    service.name()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Restarts so far, per service.
    pub fn restarts(&self) -> Vec<(Service, u32)> {
        self.watched
            .lock()
            .map(|w| {
                w.iter()
                    .map(|w| (w.process.service, w.restarts()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Resume any frozen service, then stop them all gracefully.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        for service in Service::ALL {
            let _ = self.signal(service, Signal::SIGCONT);
        }
        if let Ok(mut w) = self.watched.lock() {
            let mut processes: Vec<_> = w.drain(..).map(|w| w.process).collect();
            local_services::stop(&mut processes);
        }
    }
}

pub struct System {
    pub wiring: Wiring,
    pub fleet: Arc<Fleet>,
    pub broker: Arc<BrokerApi>,
    pub logs: PathBuf,
}

/// Settings of the services under chaos beside the isolated defaults.
fn chaos_env(args: &ChaosArgs) -> Vec<(String, String)> {
    let queue_type = args.queue_type.name();
    [
        ("AMQP_QUEUE_TYPE", queue_type),
        // Orders left unpaid are cancelled within the run, under the faults.
        ("UNPAID_ORDER_TIMEOUT", "60s"),
        // Charges and provider calls a fault left unsettled are settled within the
        // run (production: 1 min and 30 s).
        ("PAYMENT_RECONCILE_AFTER", "5s"),
        ("PAYMENT_RECONCILE_EVERY", "1s"),
        ("PROVIDER_CALL_IN_DOUBT_AFTER", "5s"),
        ("PROVIDER_RECONCILE_EVERY", "1s"),
        // A claim a killed order service left is settled, its stock given back,
        // within the run (production: 30 s).
        ("IDEMPOTENCY_CLAIM_TTL", "10s"),
        // The per-customer bounds guard against abuse, not what chaos looks at.
        ("MAX_UNPAID_ORDERS_PER_CUSTOMER", "10000"),
        ("MAX_RESERVED_UNITS_PER_CUSTOMER", "1000000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Build (`release` or debug), make the databases and the vhost, start every service.
pub async fn start(
    root: &Path,
    infra: &Infra,
    broker: Arc<BrokerApi>,
    args: &ChaosArgs,
) -> Result<System> {
    let mut amqp = reqwest::Url::parse(&infra.amqp_url).context("AMQP URL")?;
    let amqp_user = if amqp.username().is_empty() {
        "guest".to_owned()
    } else {
        amqp.username().to_owned()
    };
    broker.fresh_vhost(VHOST, &amqp_user).await?;
    amqp.set_path(&format!("/{VHOST}"));

    let bin_dir = local_services::build(root, args.release).await?;
    let wiring = local_services::isolated_wiring(
        infra,
        Isolated {
            db_prefix: DB_PREFIX,
            amqp_url: amqp.as_str(),
            amqp_prefix: "",
            redis_prefix: format!("chaos{}:", std::process::id()),
            log_filter: "info,sqlx=warn",
            requests_per_minute: args.rate_limit,
            env: chaos_env(args),
        },
    )
    .await?;
    synchronous_commit_on(&infra.postgres_url, &wiring).await?;
    let logs = root.join("target/chaos/logs");
    let processes = local_services::start(&bin_dir, &wiring, &logs)
        .await
        .with_context(|| format!("service logs: {}", logs.display()))?;
    let fleet = Arc::new(Fleet {
        watched: Mutex::new(processes.into_iter().map(Watched::new).collect()),
        bin_dir,
        wiring: wiring.clone(),
        logs: logs.clone(),
        stopping: AtomicBool::new(false),
    });
    let watcher = fleet.clone();
    tokio::spawn(async move {
        while !watcher.stopping.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            watcher.check();
        }
    });
    Ok(System {
        wiring,
        fleet,
        broker,
        logs,
    })
}

/// `synchronous_commit = on` for every chaos database. The private server runs with
/// `-c synchronous_commit=off` on its command line, which `ALTER SYSTEM` cannot
/// override; a database's own setting can, for every new session in it. With it off,
/// an immediate stop loses commits already acknowledged, by design.
async fn synchronous_commit_on(admin_url: &str, wiring: &Wiring) -> Result<()> {
    let mut admin = PgConnection::connect(admin_url).await?;
    for service in Service::ALL {
        let Some(database) = service.database() else {
            continue;
        };
        sqlx::query(AssertSqlSafe(format!(
            "alter database \"{DB_PREFIX}{database}\" set synchronous_commit = on"
        )))
        .execute(&mut admin)
        .await?;
        let url = &wiring.database_urls[&service];
        let mut conn = PgConnection::connect(url).await?;
        let setting: String = sqlx::query_scalar("show synchronous_commit")
            .fetch_one(&mut conn)
            .await?;
        if setting != "on" {
            bail!("synchronous_commit is {setting} in {DB_PREFIX}{database} after ALTER DATABASE");
        }
    }
    eprintln!(
        "chaos: synchronous_commit = on in every {DB_PREFIX}* database (ALTER DATABASE ... SET; the private server's command line sets it off)"
    );
    Ok(())
}
