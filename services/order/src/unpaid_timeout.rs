//! Orders not paid in time are cancelled and their stock restored (seed 000: 30
//! minutes; `UNPAID_ORDER_TIMEOUT`). Every replica may run this: each claims
//! different orders (`for update skip locked`), and paying an order locks the same
//! row, so an order is either paid or timed out, never both.
//!
//! An order whose charge was started and not settled is not cancelled blindly: its
//! charge is settled first ([`payment_reconciler::settle`]): captured, the order is
//! paid; declined, it fails; still being decided, it waits.

use std::time::Duration;

use sales_contracts::events::CancelReason;
use tokio_util::sync::CancellationToken;

use crate::cancel_order::cancel_locked;
use crate::error::Result;
use crate::order_status::OrderStatus;
use crate::orders;
use crate::{OrderContext, payment_reconciler};

/// Cancel every order whose `pay_by` has passed and that has no charge unsettled
/// (those are settled first). Returns how many were cancelled.
pub async fn cancel_unpaid_orders(ctx: &OrderContext) -> Result<usize> {
    let charged: Vec<i64> = sqlx::query_scalar(
        "select id from orders where status = 'PENDING' and pay_by <= now()
           and payment_attempted_at is not null and payment_settled_at is null
         order by pay_by limit 100",
    )
    .fetch_all(&ctx.pool)
    .await?;
    for order_id in charged {
        if let Err(err) = payment_reconciler::settle(ctx, order_id).await {
            tracing::warn!(order_id, error = %err, "the order's charge is not settled yet; not cancelling it");
        }
    }
    let mut cancelled = 0;
    loop {
        let mut tx = ctx.pool.begin().await?;
        let due: Vec<i64> = sqlx::query_scalar(
            "select id from orders where status = 'PENDING' and pay_by <= now()
               and (payment_attempted_at is null or payment_settled_at is not null)
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
    sales_platform::shutdown::every(every, shutdown, "cancel unpaid orders", || {
        cancel_unpaid_orders(&ctx)
    })
    .await;
}
