//! Test support for the sales services. Tests talk to real servers: PostgreSQL,
//! RabbitMQ and Redis at the URLs `cargo xtask test` exports (`SALES_POSTGRES_URL`,
//! `SALES_AMQP_URL`, `SALES_REDIS_URL`), or the standard local ports when unset.
//! Each test gets its own database and its own broker namespace (a name prefix), and
//! removes them when done.

pub mod fault_proxy;
pub mod identity;
pub mod launch;
pub mod private_kafka;
pub mod private_servers;
pub mod rabbitmq_cluster;
pub mod run_as;
pub mod test_ca;
pub mod tls_front;
pub mod transport;

pub use transport::{TestKafka, TestTransport, kafka_bootstrap};

use std::time::Duration;

use sales_contracts::topology::{QueueType, RETRY_DELAYS, SUBSCRIPTIONS, Topology};
use sales_platform::config::{BrokerArgs, DatabaseArgs, HttpArgs, KafkaArgs, MessagingKind};
use secrecy::SecretString;
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};

/// `cargo` (the one running us, `$CARGO`), without the variables cargo sets for the
/// program it runs (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, ...): xtask under `cargo run`,
/// a test binary under `cargo test`. Build scripts watch some of them (ring's
/// `rerun-if-env-changed=CARGO_PKG_NAME`), so passing them on would make every build
/// started from there rerun ring's build script and recompile everything above it,
/// and the next plain `cargo build` again.
pub fn cargo_command() -> std::process::Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("CARGO_PKG_")
            || matches!(
                name,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_MANIFEST_LINKS"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
            )
        {
            cmd.env_remove(name);
        }
    }
    cmd
}

pub fn postgres_admin_url() -> String {
    std::env::var("SALES_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub fn amqp_url() -> String {
    std::env::var("SALES_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A port that is free now, outside the kernel's ephemeral range (32768 and up), so
/// no connection another test opens can take it before our server binds it. Tests
/// running at the same time may still pick the same one: callers start again on
/// another port when their server cannot bind.
pub fn free_port() -> u16 {
    use std::sync::Mutex;
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let candidate = 20_000 + (uuid::Uuid::new_v4().as_u128() % 12_000) as u16;
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if handed_out.contains(&candidate) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", candidate)).is_ok() {
            handed_out.push(candidate);
            return candidate;
        }
    }
}

pub fn redis_url() -> String {
    std::env::var("SALES_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Logs to the test's output when `TEST_LOG` is set.
pub fn init_test_logging() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info,sqlx=warn".to_owned()),
            )
            .with_test_writer()
            .try_init();
    }
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// A database created for one test.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create(label: &str) -> TestDatabase {
        let name = format!("t_{label}_{}", short_id());
        let admin = postgres_admin_url();
        let mut conn = PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {admin}: {e}; run `cargo xtask test` or set SALES_POSTGRES_URL"));
        // The name is ours (a label from the test and a random id), not outside input.
        sqlx::query(AssertSqlSafe(format!("create database \"{name}\"")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        let _ = conn.close().await;
        let url = replace_database(&admin, &name);
        TestDatabase { name, url }
    }

    pub fn args(&self) -> DatabaseArgs {
        DatabaseArgs {
            database_url: SecretString::from(self.url.clone()),
            database_max_connections: 10,
            database_acquire_timeout: Duration::from_secs(5),
        }
    }

    pub async fn pool(&self) -> PgPool {
        PgPool::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.name))
    }

    /// Drop the database (connections still open are terminated).
    pub async fn drop_database(self) {
        if let Ok(mut conn) = PgConnection::connect(&postgres_admin_url()).await {
            let _ = sqlx::query(AssertSqlSafe(format!(
                "drop database if exists \"{}\" with (force)",
                self.name
            )))
            .execute(&mut conn)
            .await;
            let _ = conn.close().await;
        }
    }
}

/// `postgres://u@h:p/old?x` with the database name replaced.
pub fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

/// A private namespace on the shared broker: every exchange and queue name of the
/// system prefixed with a unique string.
pub struct TestBroker {
    pub prefix: String,
    pub queue_type: QueueType,
}

impl TestBroker {
    pub fn new() -> TestBroker {
        TestBroker {
            prefix: format!("t{}.", short_id()),
            queue_type: QueueType::Classic,
        }
    }

    /// A namespace of quorum queues.
    pub fn quorum() -> TestBroker {
        TestBroker {
            queue_type: QueueType::Quorum,
            ..TestBroker::new()
        }
    }

    pub fn topology(&self) -> Topology {
        Topology::new(self.prefix.clone()).with_queue_type(self.queue_type)
    }

    pub fn args(&self) -> BrokerArgs {
        BrokerArgs {
            messaging_kind: MessagingKind::Rabbitmq,
            amqp_url: Some(SecretString::from(amqp_url())),
            amqp_tls_ca_file: None,
            amqp_prefix: self.prefix.clone(),
            amqp_prefetch: 16,
            amqp_queue_type: self.queue_type,
            kafka: KafkaArgs::default(),
        }
    }

    pub async fn connect(&self) -> lapin::Connection {
        lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| panic!("cannot reach RabbitMQ at {}: {e}; run `cargo xtask test` or set SALES_AMQP_URL", amqp_url()))
    }

    /// Publish `body` as is to this namespace's exchange with `routing_key` (a message
    /// type), persistent, and wait for the broker's confirm.
    pub async fn publish_raw(&self, routing_key: &str, body: &[u8]) {
        self.publish_many(routing_key, &[body]).await;
    }

    /// Publish every body to this namespace's exchange with `routing_key`, on one
    /// channel, each confirmed before the next goes.
    pub async fn publish_many(&self, routing_key: &str, bodies: &[&[u8]]) {
        let conn = self.connect().await;
        let channel = conn
            .create_channel()
            .await
            .unwrap_or_else(|e| panic!("cannot open a channel: {e}"));
        channel
            .confirm_select(Default::default())
            .await
            .unwrap_or_else(|e| panic!("cannot turn on publisher confirms: {e}"));
        let exchange = self.topology().exchange();
        for body in bodies {
            channel
                .basic_publish(
                    exchange.as_str().into(),
                    routing_key.into(),
                    lapin::options::BasicPublishOptions::default(),
                    body,
                    lapin::BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .unwrap_or_else(|e| panic!("cannot publish: {e}"))
                .await
                .unwrap_or_else(|e| panic!("the broker did not confirm: {e}"));
        }
        let _ = conn.close(200, "done".into()).await;
    }

    /// Delete this namespace's exchange and queues.
    pub async fn delete(self) {
        delete_broker_namespace(&amqp_url(), &self.prefix).await;
    }
}

/// Delete the exchange and every queue (with its retry and dead-letter queues) of
/// the broker namespace `prefix`, where they exist. Best effort: an unreachable broker
/// leaves them.
pub async fn delete_broker_namespace(amqp_url: &str, prefix: &str) {
    let topology = Topology::new(prefix.to_owned());
    let Ok(conn) =
        lapin::Connection::connect(amqp_url, lapin::ConnectionProperties::default()).await
    else {
        return;
    };
    let Ok(channel) = conn.create_channel().await else {
        return;
    };
    for sub in SUBSCRIPTIONS {
        let mut names = vec![topology.queue(*sub), topology.dead_letter_queue(*sub)];
        names.extend((0..RETRY_DELAYS.len()).map(|t| topology.retry_queue(*sub, t)));
        for name in names {
            let _ = channel
                .queue_delete(name.as_str().into(), Default::default())
                .await;
        }
    }
    let _ = channel
        .exchange_delete(topology.exchange().as_str().into(), Default::default())
        .await;
    let _ = conn.close(200, "namespace deleted".into()).await;
}

impl Default for TestBroker {
    fn default() -> Self {
        Self::new()
    }
}

/// Listen on any free port on loopback.
pub fn http_args() -> HttpArgs {
    HttpArgs {
        http_addr: ([127, 0, 0, 1], 0).into(),
        admin_addr: ([127, 0, 0, 1], 0).into(),
        max_body_bytes: 64 * 1024,
        shutdown_grace: Duration::from_secs(10),
        shutdown_drain_delay: Duration::ZERO,
        role: sales_platform::config::ServiceRole::All,
    }
}

/// An HTTP client for tests, built by [`http_client_builder`]: reqwest's own
/// `Client::new()` and `reqwest::get` panic in a process with no rustls provider.
pub fn http_client() -> reqwest::Client {
    http_client_builder()
        .build()
        .unwrap_or_else(|e| panic!("cannot build an HTTP client: {e}"))
}

/// [`sales_platform::tls::http_client_builder`]: ring installed as the process's
/// rustls provider, then reqwest's builder.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    sales_platform::tls::http_client_builder()
}

/// `reqwest::get` with [`http_client`].
pub async fn http_get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    http_client().get(url).send().await
}

/// Poll `url` until it answers 200 with nothing `degraded` (a service is ready without
/// the broker; tests that publish to it want its queues declared), or `timeout` passes.
pub async fn wait_ready(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let client = http_client();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            if body.get("degraded").is_none() {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("{url} not ready after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Poll `check` until it returns `Some`, or panic after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Like [`eventually`], but `check` says what it saw when it is not done yet (`Err`),
/// and the panic after `timeout` quotes the last of that.
pub async fn eventually_seen<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let seen = match check().await {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}; last seen: {seen}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::replace_database;

    #[test]
    fn replaces_database_name() {
        assert_eq!(
            replace_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            replace_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(replace_database("postgres://h:1", "x"), "postgres://h:1/x");
    }
}
