//! Rate limits with counters in Redis, so they hold across gateway replicas.
//!
//! A fixed window per client: `RATE_LIMIT_REQUESTS` per `RATE_LIMIT_WINDOW`, windows
//! aligned on the Unix epoch so every replica counts in the same one. A counter is
//! one Redis key, `{prefix}{client}:{window}`, incremented (and given an expiry on
//! its first use) by one atomic script.
//!
//! Redis that does not answer within `RATE_LIMIT_REDIS_TIMEOUT` does not stop the
//! gateway, nor lift the limit: the request is counted by this replica alone
//! ([`LocalCounts`], the same windows and limit), counted in
//! `gateway_rate_limit_local_total`, and for a second after a failure Redis is not
//! asked at all, so an outage costs at most one short wait per second. With N
//! replicas a client may then get up to N times the limit. The connection comes back
//! by itself.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::metrics::GatewayMetrics;

/// Increment the window's counter; the first increment sets its expiry.
const INCREMENT: &str = r"
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return count
";

/// The most clients one replica counts alone; past it the oldest counts are dropped.
const LOCAL_CAPACITY: usize = 100_000;

/// After a Redis failure, requests are counted locally for this long.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// A connection failing this long is rebuilt from scratch.
const REBUILD_AFTER: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct RateLimitConfig {
    /// Requests allowed per window and client; 0 turns the limit off.
    pub requests: u64,
    pub window: Duration,
    /// Prefix of every key.
    pub prefix: String,
    /// Longest wait for Redis on a request.
    pub redis_timeout: Duration,
}

/// What the limit says about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit; `reset_after` seconds until the window ends.
    Allowed {
        limit: u64,
        remaining: u64,
        reset_after: u64,
    },
    /// Over the limit until the window ends, in `retry_after` seconds.
    Limited { limit: u64, retry_after: u64 },
    /// Not checked: the limit is off (`RATE_LIMIT_REQUESTS=0`).
    Unchecked { limit: u64 },
}

/// Where the current window stands at `now_ms` (milliseconds since the epoch):
/// its number, and milliseconds until it ends.
pub fn window_at(now_ms: u128, window: Duration) -> (u128, u128) {
    let len = window.as_millis().max(1);
    let index = now_ms / len;
    (index, (index + 1) * len - now_ms)
}

/// The verdict for the `count`-th request of a window with `ms_left` to go.
pub fn verdict(count: u64, limit: u64, ms_left: u128) -> Verdict {
    let secs_left = u64::try_from(ms_left.div_ceil(1000))
        .unwrap_or(u64::MAX)
        .max(1);
    if count > limit {
        Verdict::Limited {
            limit,
            retry_after: secs_left,
        }
    } else {
        Verdict::Allowed {
            limit,
            remaining: limit - count,
            reset_after: secs_left,
        }
    }
}

struct Connection {
    manager: Option<ConnectionManager>,
    /// When the current run of failures began.
    failing_since: Option<Instant>,
    /// No Redis calls before this.
    paused_until: Option<Instant>,
}

/// Counts kept by this replica while Redis is away: client -> (window, count).
#[derive(Default)]
pub struct LocalCounts {
    counts: Mutex<HashMap<String, (u128, u64)>>,
}

impl LocalCounts {
    /// Count one request of `client` in window `index`; its count in that window.
    pub fn count(&self, client: &str, index: u128) -> u64 {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() >= LOCAL_CAPACITY && !counts.contains_key(client) {
            counts.retain(|_, (window, _)| *window == index);
            if counts.len() >= LOCAL_CAPACITY {
                tracing::warn!(
                    "too many clients counted locally; starting the window's counts over"
                );
                counts.clear();
            }
        }
        let entry = counts.entry(client.to_owned()).or_insert((index, 0));
        if entry.0 != index {
            *entry = (index, 0);
        }
        entry.1 += 1;
        entry.1
    }
}

pub struct RateLimiter {
    config: RateLimitConfig,
    local: LocalCounts,
    client: redis::Client,
    connection: Mutex<Connection>,
    script: redis::Script,
    metrics: GatewayMetrics,
}

impl RateLimiter {
    /// Does not connect: the first request does (and the gateway starts without Redis).
    pub fn new(
        redis_url: &str,
        tls_ca_file: Option<&std::path::Path>,
        config: RateLimitConfig,
        metrics: GatewayMetrics,
    ) -> anyhow::Result<RateLimiter> {
        let client = sales_platform::cache::redis_client(redis_url, tls_ca_file)?;
        Ok(RateLimiter {
            config,
            client,
            connection: Mutex::new(Connection {
                manager: None,
                failing_since: None,
                paused_until: None,
            }),
            script: redis::Script::new(INCREMENT),
            local: LocalCounts::default(),
            metrics,
        })
    }

    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// Count one request of `client` (e.g. `customer:42`, `ip:203.0.113.9`).
    pub async fn check(&self, client: &str) -> Verdict {
        let limit = self.config.requests;
        if limit == 0 {
            return Verdict::Unchecked { limit };
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let (index, ms_left) = window_at(now_ms, self.config.window);
        let key = format!("{}{client}:{index}", self.config.prefix);
        let ttl_ms = u64::try_from(ms_left + 1000).unwrap_or(u64::MAX);

        let locally = || {
            self.metrics.rate_limit_local.inc();
            verdict(self.local.count(client, index), limit, ms_left)
        };
        let mut manager = match self.manager() {
            Ok(manager) => manager,
            Err(None) => return locally(),
            Err(Some(error)) => {
                self.failed(&error);
                return locally();
            }
        };
        let mut invocation = self.script.key(&key);
        invocation.arg(ttl_ms);
        let counted = tokio::time::timeout(
            self.config.redis_timeout,
            invocation.invoke_async::<u64>(&mut manager),
        )
        .await;
        match counted {
            Ok(Ok(count)) => {
                self.succeeded();
                verdict(count, limit, ms_left)
            }
            Ok(Err(err)) => {
                self.failed(&err.to_string());
                locally()
            }
            Err(_) => {
                self.failed("no answer in time");
                locally()
            }
        }
    }

    /// The connection to use now: `Err(None)` while Redis is paused after a
    /// failure, `Err(Some(why))` when no connection can be set up.
    fn manager(&self) -> Result<ConnectionManager, Option<String>> {
        let mut conn = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        if conn.paused_until.is_some_and(|t| Instant::now() < t) {
            return Err(None);
        }
        if conn.manager.is_none() {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_millis(500)))
                .set_response_timeout(Some(
                    self.config.redis_timeout.max(Duration::from_millis(50)),
                ))
                .set_number_of_retries(1)
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_millis(500));
            let manager = ConnectionManager::new_lazy_with_config(self.client.clone(), config)
                .map_err(|e| Some(e.to_string()))?;
            conn.manager = Some(manager);
        }
        conn.manager.clone().ok_or(None)
    }

    fn succeeded(&self) {
        let mut conn = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        if conn.failing_since.take().is_some() {
            tracing::info!("Redis answers again; rate limits are shared by every replica again");
        }
        conn.paused_until = None;
    }

    fn failed(&self, error: &str) {
        let now = Instant::now();
        let mut conn = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        let since = *conn.failing_since.get_or_insert_with(|| {
            tracing::warn!(
                error,
                "Redis does not answer; each replica counts rate limits alone until it does"
            );
            now
        });
        conn.paused_until = Some(now + PAUSE_AFTER_FAILURE);
        if now.duration_since(since) >= REBUILD_AFTER {
            // Start over with a new connection manager at the next attempt.
            conn.manager = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_counts_follow_the_window() {
        let local = LocalCounts::default();
        assert_eq!(local.count("ip:1", 7), 1);
        assert_eq!(local.count("ip:1", 7), 2);
        assert_eq!(local.count("ip:2", 7), 1);
        assert_eq!(local.count("ip:1", 8), 1, "a new window starts over");
    }

    #[test]
    fn windows_are_aligned_on_the_epoch() {
        let w = Duration::from_secs(900);
        assert_eq!(window_at(0, w), (0, 900_000));
        assert_eq!(window_at(899_999, w), (0, 1));
        assert_eq!(window_at(900_000, w), (1, 900_000));
        assert_eq!(window_at(1_000_000, w), (1, 800_000));
    }

    #[test]
    fn verdicts() {
        assert_eq!(
            verdict(1, 100, 800_000),
            Verdict::Allowed {
                limit: 100,
                remaining: 99,
                reset_after: 800
            }
        );
        assert_eq!(
            verdict(100, 100, 1),
            Verdict::Allowed {
                limit: 100,
                remaining: 0,
                reset_after: 1
            }
        );
        assert_eq!(
            verdict(101, 100, 1_500),
            Verdict::Limited {
                limit: 100,
                retry_after: 2
            }
        );
    }
}
