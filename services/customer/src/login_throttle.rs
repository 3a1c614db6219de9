//! Throttling password guessing, per account and per client address.
//!
//! Each failed login counts against the account (`account:<email>`) and the client's
//! address (`address:<ip>`, the address the gateway vouches for in its token); each
//! registration counts against the address (`register:<ip>`). A count lives in a
//! window that starts at its first failure. Once an account or an address has used
//! up its window's allowance, its logins are refused with 429 and `Retry-After`
//! before any password is checked, until the window ends: then the account's owner
//! logs in as before. A successful login clears the account's count.
//!
//! An attempt takes its place in the counts before its password is checked ([`take`])
//! and gives it back when it was not a failure ([`give_back`]), so concurrent guesses
//! cannot all slip past one check. Counts live in the customer service's database, so
//! every replica sees the same ones and they survive restarts.

use std::net::IpAddr;
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::error::{CustomerError, Result};

/// The allowances (`LOGIN_FAILURES_PER_ACCOUNT`, `LOGIN_FAILURES_PER_ADDRESS`,
/// `REGISTRATIONS_PER_ADDRESS`, all per `LOGIN_FAILURE_WINDOW`).
#[derive(Clone, Copy, Debug)]
pub struct ThrottleConfig {
    pub failures_per_account: i32,
    pub failures_per_address: i32,
    pub registrations_per_address: i32,
    pub window: Duration,
}

/// What one attempt counts against.
#[derive(Clone, Debug)]
pub struct Subjects {
    subjects: Vec<(String, i32)>,
}

impl Subjects {
    /// A login for `email` from `address`.
    pub fn login(config: &ThrottleConfig, email: &str, address: Option<IpAddr>) -> Subjects {
        let mut subjects = vec![(
            format!("account:{}", email.to_lowercase()),
            config.failures_per_account,
        )];
        if let Some(ip) = address {
            subjects.push((format!("address:{ip}"), config.failures_per_address));
        }
        Subjects { subjects }
    }

    /// A registration from `address`.
    pub fn registration(config: &ThrottleConfig, address: Option<IpAddr>) -> Subjects {
        Subjects {
            subjects: address
                .map(|ip| (format!("register:{ip}"), config.registrations_per_address))
                .into_iter()
                .collect(),
        }
    }

    fn names(&self) -> Vec<String> {
        self.subjects.iter().map(|(s, _)| s.clone()).collect()
    }
}

/// Take a place in every subject's count before a password is checked, refusing
/// (429) if that goes past any allowance: concurrent guesses cannot all pass a check
/// made before any of them is counted. A check that turns out not to be a failure
/// gives its place back ([`give_back`]).
pub async fn take(pool: &PgPool, config: &ThrottleConfig, subjects: &Subjects) -> Result<()> {
    if subjects.subjects.is_empty() {
        return Ok(());
    }
    let counted: Vec<(String, i32, f64)> = sqlx::query_as(
        "insert into login_failures (subject, failures, window_started_at)
         select unnest($1::text[]), 1, now()
         on conflict (subject) do update set
             failures = case
                 when login_failures.window_started_at + make_interval(secs => $2) > now()
                     then login_failures.failures + 1
                 else 1 end,
             window_started_at = case
                 when login_failures.window_started_at + make_interval(secs => $2) > now()
                     then login_failures.window_started_at
                 else now() end,
             updated_at = now()
         returning subject, failures,
             extract(epoch from (window_started_at + make_interval(secs => $2) - now()))::float8",
    )
    .bind(subjects.names())
    .bind(config.window.as_secs_f64())
    .fetch_all(pool)
    .await?;
    let retry_after = counted
        .iter()
        .filter(|(subject, failures, _)| {
            subjects
                .subjects
                .iter()
                .any(|(s, allowed)| s == subject && failures > allowed)
        })
        .map(|(_, _, left)| left.ceil().max(1.0) as u64)
        .max();
    match retry_after {
        Some(seconds) => Err(CustomerError::Throttled {
            retry_after: seconds,
        }),
        None => Ok(()),
    }
}

/// Give back the place [`take`] took: the password was right, or was not checked
/// (hashing busy, database trouble).
pub async fn give_back(pool: &PgPool, config: &ThrottleConfig, subjects: &Subjects) -> Result<()> {
    if subjects.subjects.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "update login_failures set failures = greatest(failures - 1, 0), updated_at = now()
         where subject = any($1) and window_started_at + make_interval(secs => $2) > now()",
    )
    .bind(subjects.names())
    .bind(config.window.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

/// The account's owner logged in: its failures no longer count.
pub async fn clear_account(pool: &PgPool, email: &str) -> Result<()> {
    sqlx::query("delete from login_failures where subject = $1")
        .bind(format!("account:{}", email.to_lowercase()))
        .execute(pool)
        .await?;
    Ok(())
}

/// Forget windows that ended (run now and then).
pub async fn prune(pool: &PgPool, config: &ThrottleConfig) -> Result<u64> {
    let done = sqlx::query(
        "delete from login_failures where window_started_at + make_interval(secs => $1) < now()",
    )
    .bind(config.window.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// [`prune`] every few minutes until shut down.
pub async fn run_pruning(pool: PgPool, config: ThrottleConfig, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(300));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                if let Err(err) = prune(&pool, &config).await {
                    tracing::warn!(error = %err, "cannot prune old login failures");
                }
            }
        }
    }
}
