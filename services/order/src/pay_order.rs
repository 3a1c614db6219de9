//! Paying for an order: `PENDING -> CONFIRMED`, and the `paid-order` event that
//! makes the inventory turn the reservation into a sale.

use chrono::Utc;
use sales_contracts::events::PaidOrder;
use sales_platform::caller::Caller;
use sales_platform::outbox;

use crate::error::{OrderError, Result};
use crate::order_status::{OrderEvent, PaymentStatus};
use crate::orders::{self, Order};
use crate::{OrderContext, SERVICE};

/// Pay `order_id`. Only the customer who placed it may (another customer gets 404,
/// as if it did not exist). Paying an order that is not `PENDING` is a 409.
#[tracing::instrument(skip(ctx, caller), fields(customer_id = caller.customer_id))]
pub async fn pay_order(ctx: &OrderContext, caller: &Caller, order_id: i64) -> Result<Order> {
    let mut tx = ctx.pool.begin().await?;
    let order = orders::lock(&mut tx, order_id).await?;
    if !caller.may_see(order.customer_id) {
        return Err(OrderError::NotFound(order_id));
    }
    let next = order
        .status
        .on(OrderEvent::Pay)
        .map_err(|source| OrderError::IllegalTransition { order_id, source })?;
    let paid_at = Utc::now();
    sqlx::query(
        "update orders set status = $2, payment_status = $3, paid_at = $4, updated_at = $4
         where id = $1",
    )
    .bind(order_id)
    .bind(next.as_str())
    .bind(PaymentStatus::Succeeded.as_str())
    .bind(paid_at)
    .execute(&mut *tx)
    .await?;
    outbox::enqueue(
        &mut tx,
        SERVICE,
        PaidOrder {
            order_id,
            customer_id: order.customer_id,
            status: next.as_str().to_owned(),
            total: order.total,
            paid_at,
        },
    )
    .await?;
    let order = orders::load(&mut tx, order_id).await?;
    tx.commit().await?;
    ctx.metrics.status_entered(next);
    ctx.metrics.revenue(order.total);
    tracing::info!(order_id, total = %order.total, "order paid");
    Ok(order)
}
