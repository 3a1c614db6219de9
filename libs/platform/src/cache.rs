//! A read-through cache in Redis that never serves a stale read after a write has
//! been acknowledged, and steps aside when Redis is away.
//!
//! Each cached thing has a key (`product:7`) with a version counter (`product:7:v`).
//! Entries are stored under the version current when they were read from the
//! database (`product:7@3`). A write commits, then [`Cache::invalidate`] bumps the
//! version: any entry stored before the bump, even by a reader that raced the
//! write, is under an old version and never read again. The writer bumps after
//! its transaction commits and before it answers, so once a write is acknowledged
//! every later read misses the old entries and reads the database.
//!
//! Redis failures never fail a request: each call has a short timeout, and after a
//! failure the cache is skipped for a moment. An invalidation that could not reach
//! Redis is kept and replayed before this process reads from the cache again.
//! (Another replica could, in that window, read an entry this one failed to
//! invalidate; entries expire after the TTL, which bounds that.)

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::IntCounterVec;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use crate::metrics::Metrics;

const CALL_TIMEOUT: Duration = Duration::from_millis(150);
const STEP_ASIDE_FOR: Duration = Duration::from_secs(1);

/// Reads the version and the entry under it in one round trip.
const READ_SCRIPT: &str = r"
local v = redis.call('GET', KEYS[1]) or '0'
return {v, redis.call('GET', KEYS[2] .. '@' .. v)}
";

#[derive(Clone)]
pub struct Cache {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    client: redis::Client,
    prefix: String,
    ttl: Duration,
    state: Mutex<State>,
    requests: IntCounterVec,
    script: redis::Script,
}

struct State {
    connection: Option<ConnectionManager>,
    skip_until: Option<Instant>,
    /// Invalidations that did not reach Redis, replayed before the next read.
    pending: BTreeSet<String>,
}

impl Cache {
    /// No caching: every read goes to the database.
    pub fn disabled() -> Cache {
        Cache { inner: None }
    }

    /// A cache on `client` (connecting lazily; see [`redis_client`]). Keys start
    /// with `prefix`.
    pub fn new(client: redis::Client, prefix: &str, ttl: Duration, metrics: &Metrics) -> Cache {
        Cache {
            inner: Some(Arc::new(Inner {
                client,
                prefix: prefix.to_owned(),
                ttl,
                state: Mutex::new(State {
                    connection: None,
                    skip_until: None,
                    pending: BTreeSet::new(),
                }),
                requests: metrics.counter_vec(
                    "cache_requests_total",
                    "Cache lookups, by cache and outcome (hit, miss, error, skipped)",
                    &["cache", "outcome"],
                ),
                script: redis::Script::new(READ_SCRIPT),
            })),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The cached value of `key`, or `load()`'s, which is then cached. `cache` names
    /// the kind of entry for the metrics (`product`, `orders_by_product`).
    pub async fn get_or_load<T, E, F, Fut>(&self, cache: &str, key: &str, load: F) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let Some(inner) = &self.inner else {
            return load().await;
        };
        let full = format!("{}{key}", inner.prefix);
        let (outcome, version) = match inner.read(&full).await {
            Ok((version, Some(bytes))) => match serde_json::from_slice::<T>(&bytes) {
                Ok(value) => {
                    inner.requests.with_label_values(&[cache, "hit"]).inc();
                    return Ok(value);
                }
                Err(_) => ("miss", Some(version)),
            },
            Ok((version, None)) => ("miss", Some(version)),
            Err(Skipped) => ("skipped", None),
        };
        inner.requests.with_label_values(&[cache, outcome]).inc();
        let value = load().await?;
        if let Some(version) = version
            && let Ok(bytes) = serde_json::to_vec(&value)
        {
            inner.write(&format!("{full}@{version}"), bytes).await;
        }
        Ok(value)
    }

    /// Make every cached entry of `key` unreachable. Call after the change commits,
    /// before answering.
    pub async fn invalidate(&self, key: &str) {
        if let Some(inner) = &self.inner {
            let full = format!("{}{key}", inner.prefix);
            inner.bump(&full).await;
        }
    }
}

/// A Redis client for `url` (`REDIS_URL`). `rediss://` is TLS: the server's
/// certificate must name the URL's host and chain to `ca_file`'s CAs
/// (`REDIS_TLS_CA_FILE`), or without one to the system's roots. A CA file with a
/// plaintext `redis://` URL, and `rediss://...#insecure` (no verification), are refused.
pub fn redis_client(url: &str, ca_file: Option<&std::path::Path>) -> anyhow::Result<redis::Client> {
    let client = redis::Client::open(url)
        .map_err(|e| anyhow::anyhow!("REDIS_URL is not a valid Redis URL: {e}"))?;
    let redis::ConnectionAddr::TcpTls { insecure, .. } = client.get_connection_info().addr() else {
        if ca_file.is_some() {
            anyhow::bail!(
                "REDIS_TLS_CA_FILE is set but REDIS_URL is redis:// (plaintext); use rediss://"
            );
        }
        return Ok(client);
    };
    if *insecure {
        anyhow::bail!(
            "REDIS_URL: `#insecure` turns off certificate checks; remove it (REDIS_TLS_CA_FILE names a private CA)"
        );
    }
    crate::tls::install_crypto_provider();
    let Some(path) = ca_file else {
        return Ok(client);
    };
    let root_cert = crate::tls::read_ca_bundle("REDIS_TLS_CA_FILE", path)?;
    let certificates = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(root_cert),
    };
    redis::Client::build_with_tls(url, certificates)
        .map_err(|e| anyhow::anyhow!("REDIS_TLS_CA_FILE: {}: {e}", path.display()))
}

struct Skipped;

impl Inner {
    /// A connection, unless Redis failed a moment ago. Replays pending invalidations first.
    async fn connection(&self) -> Result<ConnectionManager, Skipped> {
        let mut state = self.state.lock().await;
        if state.skip_until.is_some_and(|t| Instant::now() < t) {
            return Err(Skipped);
        }
        if state.connection.is_none() {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CALL_TIMEOUT))
                .set_response_timeout(Some(CALL_TIMEOUT))
                .set_number_of_retries(1);
            match tokio::time::timeout(
                CALL_TIMEOUT * 2,
                ConnectionManager::new_with_config(self.client.clone(), config),
            )
            .await
            {
                Ok(Ok(c)) => state.connection = Some(c),
                _ => {
                    state.skip_until = Some(Instant::now() + STEP_ASIDE_FOR);
                    return Err(Skipped);
                }
            }
        }
        let Some(mut conn) = state.connection.clone() else {
            return Err(Skipped);
        };
        while let Some(key) = state.pending.first().cloned() {
            let bumped: Result<Result<i64, _>, _> =
                tokio::time::timeout(CALL_TIMEOUT, conn.incr(format!("{key}:v"), 1)).await;
            if !matches!(bumped, Ok(Ok(_))) {
                state.skip_until = Some(Instant::now() + STEP_ASIDE_FOR);
                return Err(Skipped);
            }
            state.pending.remove(&key);
        }
        Ok(conn)
    }

    async fn failed(&self, what: &str, err: impl std::fmt::Display) {
        tracing::warn!(error = %err, "Redis {what} failed; serving without the cache for a moment");
        self.state.lock().await.skip_until = Some(Instant::now() + STEP_ASIDE_FOR);
    }

    async fn read(&self, key: &str) -> Result<(String, Option<Vec<u8>>), Skipped> {
        let mut conn = self.connection().await?;
        let mut invocation = self.script.key(format!("{key}:v"));
        invocation.key(key);
        let call = invocation.invoke_async::<(String, Option<Vec<u8>>)>(&mut conn);
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(e)) => {
                self.failed("read", e).await;
                Err(Skipped)
            }
            Err(e) => {
                self.failed("read", e).await;
                Err(Skipped)
            }
        }
    }

    async fn write(&self, key: &str, bytes: Vec<u8>) {
        let Ok(mut conn) = self.connection().await else {
            return;
        };
        let call = conn.set_ex::<_, _, ()>(key, bytes, self.ttl.as_secs().max(1));
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.failed("write", e).await,
            Err(e) => self.failed("write", e).await,
        }
    }

    async fn bump(&self, key: &str) {
        let bumped = match self.connection().await {
            Ok(mut conn) => matches!(
                tokio::time::timeout(CALL_TIMEOUT, conn.incr::<_, _, i64>(format!("{key}:v"), 1))
                    .await,
                Ok(Ok(_))
            ),
            Err(Skipped) => false,
        };
        if !bumped {
            tracing::warn!(
                key,
                "could not invalidate in Redis; will retry before the next cached read"
            );
            let mut state = self.state.lock().await;
            state.pending.insert(key.to_owned());
            state.skip_until = Some(Instant::now() + STEP_ASIDE_FOR);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_that_contradict_the_url_are_refused_at_start() {
        let ca = Some(std::path::Path::new("/nonexistent/ca.crt"));
        let plain = redis_client("redis://cache:6379", ca)
            .unwrap_err()
            .to_string();
        assert!(
            plain.starts_with("REDIS_TLS_CA_FILE is set but REDIS_URL is redis://"),
            "{plain}"
        );
        let insecure = redis_client("rediss://cache:6379/#insecure", None)
            .unwrap_err()
            .to_string();
        assert!(insecure.contains("#insecure"), "{insecure}");
        let missing = redis_client("rediss://cache:6379", ca)
            .unwrap_err()
            .to_string();
        assert!(
            missing.starts_with("REDIS_TLS_CA_FILE: cannot read /nonexistent/ca.crt"),
            "{missing}"
        );
        assert!(redis_client("rediss://cache:6379", None).is_ok());
        assert!(redis_client("redis://cache:6379", None).is_ok());
    }
}
