//! Customers' current token versions, shared through Redis so every gateway replica
//! refuses a revoked token at once.
//!
//! The customer service is the only writer: it sets `{prefix}{customer_id}` to the
//! new version when it raises one (logout, password change, role change), and fills
//! a missing key with the current version when it answers an introspection. The
//! gateway only reads. A key that is missing, or Redis that does not answer, is not
//! an answer: the gateway then asks the customer service (introspection), which
//! decides from its database. So Redis speeds the check up; it never decides it.

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::Mutex;

/// The longest wait for Redis on one call.
const CALL_TIMEOUT: Duration = Duration::from_millis(150);
/// After a failure, Redis is not asked for this long (an outage costs one wait a
/// second, not one per request).
const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// How long a published version is kept: long enough to spare most introspections,
/// short enough that keys of customers gone quiet do not pile up.
pub const KEEP_FOR: Duration = Duration::from_secs(3600);

pub struct TokenVersions {
    client: redis::Client,
    prefix: String,
    connection: Mutex<Option<ConnectionManager>>,
    paused_until: std::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for TokenVersions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVersions")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl TokenVersions {
    /// Versions in the Redis at `url` (connected on first use), under `prefix`;
    /// `rediss://` with `tls_ca_file` as [`crate::cache::redis_client`] takes them.
    pub fn new(
        url: &str,
        tls_ca_file: Option<&std::path::Path>,
        prefix: &str,
    ) -> anyhow::Result<TokenVersions> {
        let client = crate::cache::redis_client(url, tls_ca_file)?;
        Ok(TokenVersions {
            client,
            prefix: prefix.to_owned(),
            connection: Mutex::new(None),
            paused_until: std::sync::Mutex::new(None),
        })
    }

    fn key(&self, customer_id: i64) -> String {
        format!("{}{customer_id}", self.prefix)
    }

    async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        let mut slot = self.connection.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1);
        let c = ConnectionManager::new_with_config(self.client.clone(), config).await?;
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn timed<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, String> {
        {
            let paused = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
            if paused.is_some_and(|until| Instant::now() < until) {
                return Err("Redis failed a moment ago; not asking again yet".into());
            }
        }
        let outcome = match tokio::time::timeout(CALL_TIMEOUT * 2, call).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "Redis did not answer in time".to_owned(),
        };
        *self.paused_until.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Instant::now() + PAUSE_AFTER_FAILURE);
        Err(outcome)
    }

    /// The published version: `Ok(None)` when there is none.
    pub async fn get(&self, customer_id: i64) -> Result<Option<i64>, String> {
        let key = self.key(customer_id);
        self.timed(async {
            let mut c = self.connection().await?;
            c.get::<_, Option<i64>>(&key).await
        })
        .await
    }

    /// Publish `version` (the customer service, after raising it).
    pub async fn set(&self, customer_id: i64, version: i64) -> Result<(), String> {
        let key = self.key(customer_id);
        self.timed(async {
            let mut c = self.connection().await?;
            c.set_ex::<_, _, ()>(&key, version, KEEP_FOR.as_secs())
                .await
        })
        .await
    }

    /// Publish `version` unless a version is there already (the customer service,
    /// answering an introspection: a concurrent raise must win).
    pub async fn set_if_absent(&self, customer_id: i64, version: i64) -> Result<(), String> {
        let key = self.key(customer_id);
        self.timed(async {
            let mut c = self.connection().await?;
            redis::cmd("SET")
                .arg(&key)
                .arg(version)
                .arg("NX")
                .arg("EX")
                .arg(KEEP_FOR.as_secs())
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }
}
