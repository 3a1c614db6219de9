//! Claims left behind: the order service died (or a request hung) after it claimed an
//! order and before it finished. A claim expires after `IDEMPOTENCY_CLAIM_TTL`; for as
//! long again, a retry with its key may take it over (keeping its order id and the
//! stock reserved for it). After that it is settled here, by whichever replica gets
//! to it first (`for update skip locked`):
//! - its order was stored after all: the claim is finished, as the request would have;
//! - it was not: the claim is given up ([`claims::give_up`]), and the stock it asked
//!   the inventory for goes back through `restore-canceled-item`.
//!
//! A request still working on a claim settled here cannot store its order afterwards
//! (storing locks the claim and requires it): it answers 503.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::OrderContext;
use crate::claims;
use crate::error::Result;

/// Settle claims expired for a claim's lifetime, 100 at a time, until none is
/// left; returns how many.
pub async fn settle_expired_claims(ctx: &OrderContext) -> Result<usize> {
    let mut settled = 0;
    loop {
        let mut tx = ctx.pool.begin().await?;
        let expired: Vec<(i64, bool, bool)> = sqlx::query_as(
            "select c.order_id, c.idempotency_key is not null,
                    exists (select 1 from orders o where o.id = c.order_id)
             from order_claims c
             where c.state = 'in_progress'
               and c.expires_at < now() - $1 * interval '1 millisecond'
             order by c.expires_at limit 100
             for update of c skip locked",
        )
        .bind(claims::millis(ctx.limits.claim_ttl))
        .fetch_all(&mut *tx)
        .await?;
        if expired.is_empty() {
            return Ok(settled);
        }
        let mut restored = 0;
        for (order_id, keyed, stored) in &expired {
            match (stored, keyed) {
                (true, true) => claims::mark_done(&mut tx, *order_id).await?,
                (true, false) => claims::delete(&mut tx, *order_id).await?,
                (false, _) => {
                    if claims::give_up(&mut tx, *order_id, true).await? {
                        restored += 1;
                    }
                }
            }
        }
        tx.commit().await?;
        for _ in 0..restored {
            ctx.metrics.placements_abandoned("expired");
        }
        settled += expired.len();
    }
}

/// Run [`settle_expired_claims`] every `every` until shut down.
pub async fn run(ctx: OrderContext, every: Duration, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        if let Err(err) = settle_expired_claims(&ctx).await {
            tracing::warn!(error = %err, "could not settle expired order claims");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
