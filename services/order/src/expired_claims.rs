//! Claims left behind: the order service died (or a request hung) after it claimed an
//! order and before it finished. A claim expires after `IDEMPOTENCY_CLAIM_TTL`; for as
//! long again, a retry with its key may take it over (keeping its order id and the
//! stock reserved for it). After that it is settled here, by whichever replica gets
//! to it first (`for update skip locked`):
//! - its order was stored (the claim is `stored`): the claim is finished, as the
//!   request would have;
//! - it was not: the claim is given up ([`claims::give_up`]), and the stock it asked
//!   the inventory for goes back through `restore-canceled-item`.
//!
//! A request still working on a claim given up here cannot store its order afterwards
//! (storing requires the claim in progress): it answers 503.

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
        // A claim still `in_progress` once locked has no order: storing one marks the
        // claim `stored` in the same transaction (and the row is checked again after
        // the lock). Its order is looked for all the same, for claims that a version
        // before the `stored` state left in progress after storing their order.
        let expired: Vec<(i64, bool, bool)> = sqlx::query_as(
            "select c.order_id, c.idempotency_key is not null,
                    c.state = 'stored' or exists (select 1 from orders o where o.id = c.order_id)
             from order_claims c
             where c.state in ('in_progress', 'stored')
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
                    if claims::give_up(&mut tx, *order_id, None, true).await? {
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
    sales_platform::shutdown::every(every, shutdown, "settle expired order claims", || {
        settle_expired_claims(&ctx)
    })
    .await;
}
