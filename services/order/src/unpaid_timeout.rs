//! Orders not paid in time are cancelled and their stock restored (seed 000: 30
//! minutes; `UNPAID_ORDER_TIMEOUT`). Every replica may run this: each claims
//! different orders (`for update skip locked`), and paying an order locks the same
//! row, so an order is either paid or timed out, never both.

use std::time::Duration;

use sales_contracts::events::CancelReason;
use tokio_util::sync::CancellationToken;

use crate::OrderContext;
use crate::cancel_order::cancel_locked;
use crate::error::Result;
use crate::order_status::OrderStatus;
use crate::orders;

/// Cancel every order whose `pay_by` has passed. Returns how many.
pub async fn cancel_unpaid_orders(ctx: &OrderContext) -> Result<usize> {
    let mut cancelled = 0;
    loop {
        let mut tx = ctx.pool.begin().await?;
        let due: Vec<i64> = sqlx::query_scalar(
            "select id from orders where status = 'PENDING' and pay_by <= now()
             order by pay_by limit 100 for update skip locked",
        )
        .fetch_all(&mut *tx)
        .await?;
        if due.is_empty() {
            return Ok(cancelled);
        }
        let mut done = Vec::with_capacity(due.len());
        for id in &due {
            let order = orders::lock(&mut tx, *id).await?;
            done.push(cancel_locked(&mut tx, order, CancelReason::UnpaidTimeout).await?);
            tracing::info!(order_id = id, "order not paid in time; cancelled");
        }
        tx.commit().await?;
        for order in &done {
            ctx.metrics.status_entered(OrderStatus::Cancelled);
            ctx.invalidate_order_caches(order).await;
        }
        cancelled += due.len();
    }
}

/// Run [`cancel_unpaid_orders`] every `every` until shut down.
pub async fn run(ctx: OrderContext, every: Duration, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        if let Err(err) = cancel_unpaid_orders(&ctx).await {
            tracing::warn!(error = %err, "could not cancel unpaid orders");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
