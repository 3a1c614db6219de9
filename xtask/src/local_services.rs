//! The service binaries on this machine, for `cargo xtask up`, `bench` and `chaos`: building
//! them, a database per service, starting them with their logs in files, waiting
//! until they are ready, stopping them.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use sales_testkit::launch::{IdentityMaterial, Process, Service, Wiring};
use sqlx::{Connection as _, PgConnection};

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
            sqlx::query(&format!("drop database if exists \"{name}\" with (force)"))
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
            sqlx::query(&format!("create database \"{name}\""))
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
    let mut ports = HashMap::new();
    for service in Service::ALL {
        ports.insert(service, (free_port()?, free_port()?));
    }
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

/// A port nobody listens on, below the kernel's range of ephemeral ports. A port from
/// that range (what binding port 0 gives) can be taken, before the service binds it, by
/// one of the many outgoing connections made meanwhile (seen: a chaos run's order
/// service could not listen, "Address already in use"). Never the same port twice in
/// one run.
fn free_port() -> Result<u16> {
    use std::sync::Mutex;
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (start, end) = (10_000u16, ephemeral_low.clamp(10_500, 32768));
    let span = u64::from(end - start);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let seed = u64::from(std::process::id()).wrapping_mul(7919) ^ nanos;
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for i in 0..span {
        let port = start + u16::try_from((seed.wrapping_add(i)) % span).unwrap_or(0);
        if given.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return Ok(port);
        }
    }
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
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
    std::fs::create_dir_all(logs)?;
    let mut processes: Vec<Process> = Vec::new();
    let started = async {
        let mut spawned = Vec::new();
        for service in Service::ALL {
            let log = File::create(log_file(logs, service))?;
            let at = tokio::time::Instant::now();
            let process = Process::spawn(
                service,
                bin_dir,
                wiring,
                Stdio::from(log.try_clone()?),
                Stdio::from(log),
            )
            .with_context(|| format!("cannot start {}", service.binary()))?;
            processes.push(process);
            spawned.push((service, at));
        }
        let http = reqwest::Client::new();
        let waits = spawned.into_iter().map(|(service, at)| {
            let http = http.clone();
            async move {
                let url = format!("{}/ready", wiring.base_url(service));
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
                            log_file(logs, service).display()
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

/// SIGTERM to each, then wait for it to finish what it holds (killed after the grace).
pub fn stop(processes: &mut [Process]) {
    for p in processes.iter_mut() {
        p.terminate(STOP_GRACE);
    }
}
