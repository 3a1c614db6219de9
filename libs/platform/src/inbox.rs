//! The inbox keeps one row per message a consumer handled (see [`crate::messaging::handling`]), so
//! a redelivery has no second effect. A redelivery comes within minutes (the retry
//! queues end after 60 s; the broker redelivers what a closed channel held), so rows
//! older than [`INBOX_RETENTION`] protect against nothing and are deleted, in small
//! batches, every [`PRUNE_EVERY`]: the table stays the size of a week's messages.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// How long a handled message's row is kept: far longer than any redelivery.
pub const INBOX_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often old rows are looked for.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Rows deleted per statement, so pruning never holds long locks.
const BATCH: i64 = 5_000;

/// Delete the inbox rows older than `retention`; returns how many.
pub async fn prune(pool: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let mut deleted = 0;
    loop {
        let n = sqlx::query(
            "delete from inbox where ctid = any(array(
                 select ctid from inbox where created_at < now() - make_interval(secs => $1)
                 limit $2))",
        )
        .bind(retention.as_secs_f64())
        .bind(BATCH)
        .execute(pool)
        .await?
        .rows_affected();
        deleted += n;
        if n < BATCH as u64 {
            return Ok(deleted);
        }
    }
}

/// Run [`prune`] every [`PRUNE_EVERY`] until shut down.
pub async fn run_pruning(pool: PgPool, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        match prune(&pool, INBOX_RETENTION).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "pruned handled messages from the inbox"),
            Err(err) => tracing::warn!(error = %err, "could not prune the inbox"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}
