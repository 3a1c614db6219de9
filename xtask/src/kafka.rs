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
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
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
        let first = bootstrap.split(',').next().unwrap_or_default().to_owned();
        tokio::task::spawn_blocking(move || api_versions(&first))
            .await?
            .with_context(|| format!("{ENV_KAFKA_BOOTSTRAP}={bootstrap} does not answer"))?;
        eprintln!("infra: kafka    using {ENV_KAFKA_BOOTSTRAP} ({bootstrap})");
        return Ok(bootstrap);
    }
    let started = Instant::now();
    let address = format!("127.0.0.1:{KAFKA_PORT}");
    let probe = address.clone();
    if tokio::task::spawn_blocking(move || api_versions(&probe))
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
        match tokio::task::spawn_blocking(move || api_versions(&probe)).await? {
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

/// Send Kafka's ApiVersions (v0) request and read a well-formed answer: the broker
/// speaks the protocol, not just listens.
fn api_versions(address: &str) -> Result<()> {
    let socket = address
        .parse()
        .with_context(|| format!("{address} is not host:port"))?;
    let mut stream = TcpStream::connect_timeout(&socket, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let client = b"xtask";
    let mut request = Vec::new();
    request.extend_from_slice(&18i16.to_be_bytes()); // ApiVersions
    request.extend_from_slice(&0i16.to_be_bytes()); // version 0
    request.extend_from_slice(&7i32.to_be_bytes()); // correlation id
    request.extend_from_slice(&(client.len() as i16).to_be_bytes());
    request.extend_from_slice(client);
    stream.write_all(&(request.len() as i32).to_be_bytes())?;
    stream.write_all(&request)?;
    let mut header = [0u8; 10];
    stream.read_exact(&mut header)?;
    let correlation = i32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let error = i16::from_be_bytes([header[8], header[9]]);
    if correlation != 7 || error != 0 {
        bail!("unexpected ApiVersions answer (correlation {correlation}, error {error})");
    }
    Ok(())
}
