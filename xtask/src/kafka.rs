//! A local Kafka-protocol broker for development and tests: `tansu`, an
//! Apache-Kafka-compatible broker written in Rust (crates.io, Apache-2.0). No Apache
//! Kafka package is reachable from the registries this project's machines use, and
//! tansu serves what the services need of Kafka (topics with partitions, the
//! idempotent producer with `acks=all`, consumer groups with cooperative rebalancing,
//! committed offsets, headers): the messaging tests check each of these against it.
//!
//! `SALES_KAFKA_BOOTSTRAP` wins when set (a real Kafka cluster, say) and is only checked
//! for an answer. Otherwise tansu [`TANSU_VERSION`] is built once per machine into
//! `~/.cache/sales-system/` (about 10 minutes on 2 cores; `SALES_TANSU_BIN` names a
//! binary instead) and started on port [`KAFKA_PORT`], its data in memory: a restart
//! starts empty, which tests want. The services create their topics themselves.

use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// The pinned broker version (features `dynostore`: in-memory storage, `postgres`: storage in PostgreSQL).
pub const TANSU_VERSION: &str = "0.6.0";
/// Port of the private broker: below Linux's ephemeral range (32768-60999). A port
/// inside it can be taken as the source port of a client's connection to itself while
/// the broker is down (TCP self-connect; seen here on 59092), and the broker then
/// cannot bind it until that socket's TIME-WAIT ends.
pub const KAFKA_PORT: u16 = 29092;
pub const ENV_KAFKA_BOOTSTRAP: &str = "SALES_KAFKA_BOOTSTRAP";
pub const ENV_TANSU_BIN: &str = "SALES_TANSU_BIN";

/// Where the broker is, starting (or reusing) the private one when none is given.
pub async fn ensure_kafka(infra_dir: &Path) -> Result<String> {
    if let Ok(bootstrap) = std::env::var(ENV_KAFKA_BOOTSTRAP)
        && !bootstrap.trim().is_empty()
    {
        let probe = bootstrap.clone();
        tokio::task::spawn_blocking(move || kafka_answers(&probe))
            .await?
            .with_context(|| format!("{ENV_KAFKA_BOOTSTRAP}={bootstrap} does not answer"))?;
        eprintln!("infra: kafka    using {ENV_KAFKA_BOOTSTRAP} ({bootstrap})");
        return Ok(bootstrap);
    }
    let started = Instant::now();
    let address = format!("127.0.0.1:{KAFKA_PORT}");
    let probe = address.clone();
    if tokio::task::spawn_blocking(move || kafka_answers(&probe))
        .await?
        .is_ok()
    {
        eprintln!("infra: kafka    reusing running private tansu at {address}");
        return Ok(address);
    }
    let binary = ensure_tansu().await?;
    let dir = infra_dir.join("kafka");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let log_path = dir.join("tansu.log");
    let log = fs::File::create(&log_path)?;
    let child = sales_testkit::private_kafka::tansu_broker(&binary, &address)
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: it outlives this xtask, like the other private servers.
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    fs::write(dir.join("tansu.pid"), child.id().to_string())?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let probe = address.clone();
        match tokio::task::spawn_blocking(move || kafka_answers(&probe)).await? {
            Ok(()) => break,
            Err(e) if Instant::now() > deadline => bail!(
                "tansu at {address} does not answer: {e:#}\n{}",
                fs::read_to_string(&log_path).unwrap_or_default()
            ),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    eprintln!(
        "infra: kafka    started private tansu {TANSU_VERSION} at {address} ({:.1}s)",
        started.elapsed().as_secs_f64()
    );
    Ok(address)
}

/// Stop the private broker, if it runs.
pub fn stop_kafka(infra_dir: &Path) -> Result<String> {
    let pid_file = infra_dir.join("kafka/tansu.pid");
    let Ok(pid) = fs::read_to_string(&pid_file) else {
        return Ok("not running".into());
    };
    let pid: i32 = pid.trim().parse().context("tansu.pid")?;
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = fs::remove_file(&pid_file);
    Ok(format!("stopped tansu (pid {pid})"))
}

/// The tansu binary: `SALES_TANSU_BIN`, or the cached build, built now if missing.
pub async fn ensure_tansu() -> Result<PathBuf> {
    if let Ok(bin) = std::env::var(ENV_TANSU_BIN) {
        return Ok(PathBuf::from(bin));
    }
    let home = std::env::var("HOME").context("HOME is not set")?;
    let root = PathBuf::from(home).join(format!(".cache/sales-system/tansu-{TANSU_VERSION}"));
    let binary = root.join("bin/tansu");
    if binary.exists() {
        return Ok(binary);
    }
    eprintln!(
        "infra: kafka    building tansu {TANSU_VERSION} into {} (once per machine; about 10 minutes on 2 cores)",
        root.display()
    );
    let started = Instant::now();
    let target = std::env::temp_dir().join("sales-system-tansu-build");
    let status = tokio::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
        .args(["install", "tansu", "--locked", "--version", TANSU_VERSION])
        .args(["--features", "postgres,dynostore", "--root"])
        .arg(&root)
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .await
        .context("running cargo install tansu")?;
    if !status.success() {
        bail!("cargo install tansu {TANSU_VERSION} failed");
    }
    let _ = fs::remove_dir_all(&target);
    eprintln!(
        "infra: kafka    built tansu in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(binary)
}

/// Ask the broker(s) for the cluster's metadata with librdkafka (which negotiates
/// ApiVersions first): the broker speaks the protocol, not just listens.
fn kafka_answers(bootstrap: &str) -> Result<()> {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    let client: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("socket.connection.setup.timeout.ms", "2000")
        .create()
        .with_context(|| format!("a Kafka client for {bootstrap}"))?;
    client
        .fetch_metadata(None, Duration::from_secs(5))
        .with_context(|| format!("no metadata from the Kafka broker at {bootstrap}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_broker_answers() {
        // The shared broker when one is named, else a tansu of the test's own (as
        // under `cargo xtask test`), alive while `kafka` is.
        let kafka = sales_testkit::TestKafka::new();
        kafka_answers(&kafka.bootstrap).unwrap();
    }

    #[test]
    fn a_closed_port_does_not_answer() {
        let port = sales_testkit::free_port();
        let err = kafka_answers(&format!("127.0.0.1:{port}")).unwrap_err();
        assert!(
            format!("{err:#}").contains(&format!("127.0.0.1:{port}")),
            "{err:#}"
        );
    }
}
