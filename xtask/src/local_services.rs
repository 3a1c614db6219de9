//! The service binaries on this machine, for `cargo xtask up`, `bench` and `chaos`: building
//! them, a database per service, starting them with their logs in files, waiting
//! until they are ready, stopping them.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use sales_testkit::free_port;
use sales_testkit::launch::{IdentityMaterial, Process, Service, Wiring};
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};

use crate::infra::Infra;

/// How long a service may take to answer `/ready` (migrations included).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopping service may take to finish what it holds.
const STOP_GRACE: Duration = Duration::from_secs(25);

/// `cargo build` of every binary, in release mode or not; the directory they land in.
pub async fn build(root: &Path, release: bool) -> Result<PathBuf> {
    let mut build = crate::cargo_command(root);
    build.args(["build", "--workspace", "--bins"]);
    if release {
        build.arg("--release");
    }
    if !build
        .status()
        .await
        .context("cannot run cargo build")?
        .success()
    {
        bail!("cargo build failed");
    }
    Ok(root
        .join("target")
        .join(if release { "release" } else { "debug" }))
}

/// What to do with a service's database that exists already.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Keep it, data and all (`up`).
    Keep,
    /// Drop it and start empty (`bench`).
    Recreate,
}

/// A database per service, named `<prefix><service's database>`: its URL per service.
pub async fn databases(
    postgres_url: &str,
    prefix: &str,
    existing: Existing,
) -> Result<HashMap<Service, String>> {
    let mut admin = PgConnection::connect(postgres_url)
        .await
        .context("cannot connect to PostgreSQL")?;
    let mut urls = HashMap::new();
    for service in Service::ALL {
        let Some(database) = service.database() else {
            continue;
        };
        let name = format!("{prefix}{database}");
        if existing == Existing::Recreate {
            sqlx::query(AssertSqlSafe(format!(
                "drop database if exists \"{name}\" with (force)"
            )))
            .execute(&mut admin)
            .await
            .with_context(|| format!("cannot drop database {name}"))?;
        }
        let exists: bool =
            sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
                .bind(&name)
                .fetch_one(&mut admin)
                .await?;
        if !exists {
            sqlx::query(AssertSqlSafe(format!("create database \"{name}\"")))
                .execute(&mut admin)
                .await
                .with_context(|| format!("cannot create database {name}"))?;
        }
        urls.insert(
            service,
            sales_testkit::replace_database(postgres_url, &name),
        );
    }
    let _ = admin.close().await;
    Ok(urls)
}

/// A system of its own beside `cargo xtask up`'s (for `bench` and `chaos`): fresh
/// databases named `<db_prefix><service's database>`, free ports, new keys, its own
/// broker (`amqp_url`, namespace `amqp_prefix`) and Redis prefix, and the gateway's
/// rate limit set to `requests_per_minute` per client.
pub struct Isolated<'a> {
    pub db_prefix: &'a str,
    pub amqp_url: &'a str,
    pub amqp_prefix: &'a str,
    pub redis_prefix: String,
    pub log_filter: &'a str,
    pub requests_per_minute: u64,
    /// More variables for every service (after the defaults: they win).
    pub env: Vec<(String, String)>,
}

/// The wiring of an [`Isolated`] system.
pub async fn isolated_wiring(infra: &Infra, iso: Isolated<'_>) -> Result<Wiring> {
    let database_urls = databases(&infra.postgres_url, iso.db_prefix, Existing::Recreate).await?;
    // Queues of an earlier run may hold its messages; they are not this run's.
    sales_testkit::delete_broker_namespace(iso.amqp_url, iso.amqp_prefix).await;
    let ports = Service::ALL
        .into_iter()
        .map(|service| (service, (free_port(), free_port())))
        .collect();
    let mut env = vec![
        (
            "RATE_LIMIT_REQUESTS".into(),
            iso.requests_per_minute.to_string(),
        ),
        ("RATE_LIMIT_WINDOW".into(), "1m".into()),
        // Every load client registers from 127.0.0.1.
        ("REGISTRATIONS_PER_ADDRESS".into(), "1000000".into()),
    ];
    env.extend(iso.env);
    Ok(Wiring {
        ports,
        database_urls,
        amqp_url: iso.amqp_url.to_owned(),
        amqp_prefix: iso.amqp_prefix.to_owned(),
        log_format: "text".into(),
        log_filter: iso.log_filter.to_owned(),
        env,
        service_env: HashMap::new(),
        redis_url: infra.redis_url.clone(),
        redis_prefix: iso.redis_prefix,
        identity: IdentityMaterial::generate()?,
        admin: None,
    })
}

/// Every service's log file in `logs`.
pub fn log_file(logs: &Path, service: Service) -> PathBuf {
    logs.join(format!("{}.log", service.name()))
}

/// Start every service from `bin_dir`, output to `logs/<service>.log`, and wait until
/// all answer `/ready`. On failure, those started are stopped again.
pub async fn start(bin_dir: &Path, wiring: &Wiring, logs: &Path) -> Result<Vec<Process>> {
    Ok(start_timed(bin_dir, wiring, logs).await?.0)
}

/// [`start`], and how long each service took from its exec to its first ready answer
/// (`/ready` polled every 2 ms, all services at once).
pub async fn start_timed(
    bin_dir: &Path,
    wiring: &Wiring,
    logs: &Path,
) -> Result<(Vec<Process>, Vec<(Service, Duration)>)> {
    let launches: Vec<Launch> = Service::ALL
        .into_iter()
        .map(|service| Launch {
            service,
            wiring,
            log: log_file(logs, service),
        })
        .collect();
    start_each(bin_dir, &launches).await
}

/// One process to start: which service, wired how, its output where.
pub struct Launch<'a> {
    pub service: Service,
    pub wiring: &'a Wiring,
    pub log: PathBuf,
}

/// Start every launch at once and wait until all answer `/ready` (on the port their
/// wiring gives them); how long each took, in the launches' order. On failure, those
/// started are stopped again.
pub async fn start_each(
    bin_dir: &Path,
    launches: &[Launch<'_>],
) -> Result<(Vec<Process>, Vec<(Service, Duration)>)> {
    let mut processes: Vec<Process> = Vec::new();
    let started = async {
        let mut spawned = Vec::new();
        for launch in launches {
            if let Some(dir) = launch.log.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let log = File::create(&launch.log)?;
            let at = tokio::time::Instant::now();
            let process = Process::spawn(
                launch.service,
                bin_dir,
                launch.wiring,
                Stdio::from(log.try_clone()?),
                Stdio::from(log),
            )
            .with_context(|| format!("cannot start {}", launch.service.binary()))?;
            processes.push(process);
            spawned.push((launch, at));
        }
        let http = sales_testkit::http_client();
        let waits = spawned.into_iter().map(|(launch, at)| {
            let http = http.clone();
            async move {
                let service = launch.service;
                let url = format!("{}/ready", launch.wiring.base_url(service));
                loop {
                    if let Ok(r) = http.get(&url).send().await
                        && r.status().is_success()
                        // 200 with `degraded`: not ready yet (as `wait_ready` reads it).
                        && r.json::<serde_json::Value>().await.is_ok_and(|b| b.get("degraded").is_none())
                    {
                        return Ok((service, at.elapsed()));
                    }
                    if at.elapsed() > READY_TIMEOUT {
                        bail!(
                            "the {} service did not become ready; see {}",
                            service.name(),
                            launch.log.display()
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        });
        futures::future::try_join_all(waits).await
    }
    .await;
    match started {
        Ok(ready) => Ok((processes, ready)),
        Err(err) => {
            stop(&mut processes);
            Err(err)
        }
    }
}

/// Stop each process in turn and start it again while the others run: its database
/// already migrated, its queues already declared, as when a pod restarts or one more
/// is added to a running system. How long each took from exec to ready, in the
/// order of `processes`; the new processes take the old ones' places.
pub async fn restart_each_timed(
    bin_dir: &Path,
    wiring: &Wiring,
    logs: &Path,
    processes: &mut [Process],
) -> Result<Vec<(Service, Duration)>> {
    let mut times = Vec::with_capacity(processes.len());
    for slot in processes.iter_mut() {
        let service = slot.service;
        slot.terminate(STOP_GRACE);
        let launch = Launch {
            service,
            wiring,
            log: logs.join(format!("{}-restarted.log", service.name())),
        };
        let (started, ready) = start_each(bin_dir, std::slice::from_ref(&launch)).await?;
        match started.into_iter().next() {
            Some(process) => *slot = process,
            None => bail!("the {} service was not started again", service.name()),
        }
        times.extend(ready);
    }
    Ok(times)
}

/// The services `cargo xtask bench --replicas` runs as several processes.
pub const REPLICATED: [Service; 2] = [Service::Order, Service::Inventory];

/// Replica 2, 3... of the order and inventory services: `wiring` with those two on
/// ports of their own (same databases, broker namespace, Redis prefix and keys). The
/// replica's order process calls the replica's inventory process; every other call
/// goes to the first process of its service.
pub fn replica_wiring(wiring: &Wiring) -> Wiring {
    let mut replica = wiring.clone();
    for service in REPLICATED {
        replica.ports.insert(service, (free_port(), free_port()));
    }
    replica
}

/// Log file of replica `k` (1 is the first, `<service>.log`; then `<service>-2.log`...).
pub fn replica_log_file(logs: &Path, service: Service, k: usize) -> PathBuf {
    if k <= 1 {
        return log_file(logs, service);
    }
    logs.join(format!("{}-{k}.log", service.name()))
}

/// SIGTERM to each, then wait for it to finish what it holds (killed after the grace).
pub fn stop(processes: &mut [Process]) {
    for p in processes.iter_mut() {
        p.terminate(STOP_GRACE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_wiring() -> Wiring {
        Wiring {
            ports: Service::ALL
                .into_iter()
                .zip(20_000u16..)
                .map(|(service, port)| (service, (port, port + 1000)))
                .collect(),
            database_urls: Service::ALL
                .into_iter()
                .filter_map(|s| Some((s, format!("postgres://127.0.0.1/bench_{}", s.database()?))))
                .collect(),
            amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            amqp_prefix: "bench.".into(),
            log_format: "text".into(),
            log_filter: "warn".into(),
            env: Vec::new(),
            service_env: HashMap::new(),
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_prefix: "bench1:".into(),
            identity: IdentityMaterial::generate().unwrap(),
            admin: None,
        }
    }

    /// The value a process gets (the last one set wins).
    fn var(env: &[(String, String)], key: &str) -> String {
        env.iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    #[test]
    fn an_order_replica_calls_its_own_inventory_replica_and_shares_the_rest() {
        let first = first_wiring();
        let replica = replica_wiring(&first);
        for service in Service::ALL {
            let moved = replica.ports[&service] != first.ports[&service];
            assert_eq!(moved, REPLICATED.contains(&service), "{service:?}");
        }
        let order = replica.env_for(Service::Order);
        let (http, admin) = replica.ports[&Service::Order];
        assert_eq!(var(&order, "HTTP_ADDR"), format!("127.0.0.1:{http}"));
        assert_eq!(var(&order, "ADMIN_ADDR"), format!("127.0.0.1:{admin}"));
        assert_eq!(
            var(&order, "INVENTORY_SERVICE_URL"),
            replica.base_url(Service::Inventory)
        );
        assert_eq!(
            var(&order, "PAYMENT_SERVICE_URL"),
            first.base_url(Service::Payment)
        );
        for service in REPLICATED {
            let (mine, theirs) = (replica.env_for(service), first.env_for(service));
            for shared in [
                "DATABASE_URL",
                "AMQP_URL",
                "AMQP_PREFIX",
                "CACHE_PREFIX",
                "SERVICE_CLIENT_SECRET",
            ] {
                assert_eq!(var(&mine, shared), var(&theirs, shared), "{shared}");
            }
        }
        let third = replica_wiring(&first);
        assert_ne!(third.ports[&Service::Order], replica.ports[&Service::Order]);
        assert_ne!(
            third.ports[&Service::Inventory],
            replica.ports[&Service::Inventory]
        );
    }

    #[test]
    fn replica_logs_are_numbered_after_the_first() {
        let logs = Path::new("/logs");
        assert_eq!(
            replica_log_file(logs, Service::Order, 1),
            Path::new("/logs/order.log")
        );
        assert_eq!(
            replica_log_file(logs, Service::Inventory, 3),
            Path::new("/logs/inventory-3.log")
        );
    }
}
