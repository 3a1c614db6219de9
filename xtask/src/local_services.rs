//! The service binaries on this machine, for `cargo xtask up` and `bench`: building
//! them, a database per service, starting them with their logs in files, waiting
//! until they are ready, stopping them.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use sales_testkit::launch::{Process, Service, Wiring};
use sqlx::{Connection as _, PgConnection};

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

/// Every service's log file in `logs`.
pub fn log_file(logs: &Path, service: Service) -> PathBuf {
    logs.join(format!("{}.log", service.name()))
}

/// Start every service from `bin_dir`, output to `logs/<service>.log`, and wait until
/// all answer `/ready`. On failure, those started are stopped again.
pub async fn start(bin_dir: &Path, wiring: &Wiring, logs: &Path) -> Result<Vec<Process>> {
    std::fs::create_dir_all(logs)?;
    let mut processes: Vec<Process> = Vec::new();
    let started = async {
        for service in Service::ALL {
            let log = File::create(log_file(logs, service))?;
            let process = Process::spawn(
                service,
                bin_dir,
                wiring,
                Stdio::from(log.try_clone()?),
                Stdio::from(log),
            )
            .with_context(|| format!("cannot start {}", service.binary()))?;
            processes.push(process);
        }
        for service in Service::ALL {
            sales_testkit::wait_ready(
                &format!("{}/ready", wiring.base_url(service)),
                READY_TIMEOUT,
            )
            .await
            .with_context(|| {
                format!(
                    "the {} service did not become ready; see {}",
                    service.name(),
                    log_file(logs, service).display()
                )
            })?;
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    match started {
        Ok(()) => Ok(processes),
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
