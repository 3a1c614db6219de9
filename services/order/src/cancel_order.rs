//! Cancelling an order, by its customer or because it was not paid in time:
//! `PENDING -> CANCELLED`, with `cancel-order` and `restore-canceled-item` so the
//! inventory puts the stock back and the customer is told.

use chrono::Utc;
use sales_contracts::events::{CancelOrder, CancelReason, CanceledItem, RestoreCanceledItem};
use sales_platform::identity::Caller;
use sales_platform::outbox;
use sqlx::PgConnection;

use crate::error::{OrderError, Result};
use crate::order_status::{OrderEvent, OrderStatus};
use crate::orders::{self, Order};
use crate::{OrderContext, SERVICE};

/// The customer (or an admin) cancels an order.
#[tracing::instrument(skip(ctx, caller), fields(caller = caller.describe()))]
pub async fn cancel_order(ctx: &OrderContext, caller: &Caller, order_id: i64) -> Result<Order> {
    let mut tx = ctx.pool.begin().await?;
    let order = orders::lock(&mut tx, order_id).await?;
    if !caller.may_see(order.customer_id) {
        return Err(OrderError::NotFound(order_id));
    }
    let order = cancel_locked(&mut tx, order, CancelReason::Customer).await?;
    tx.commit().await?;
    ctx.metrics.status_entered(OrderStatus::Cancelled);
    ctx.invalidate_order_caches(&order).await;
    tracing::debug!(order_id, "order cancelled by the customer");
    Ok(order)
}

/// Cancel an order already locked in the caller's transaction.
pub async fn cancel_locked(
    conn: &mut PgConnection,
    order: Order,
    reason: CancelReason,
) -> Result<Order> {
    let order_id = order.order_id;
    let next = order
        .status
        .on(OrderEvent::Cancel)
        .map_err(|source| OrderError::IllegalTransition { order_id, source })?;
    let now = Utc::now();
    let reason_text = match reason {
        CancelReason::Customer => "customer",
        CancelReason::UnpaidTimeout => "unpaid-timeout",
    };
    sqlx::query(
        "update orders set status = $2, cancel_reason = $3, cancelled_at = $4, updated_at = $4
         where id = $1",
    )
    .bind(order_id)
    .bind(next.as_str())
    .bind(reason_text)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    outbox::enqueue(
        conn,
        SERVICE,
        CancelOrder {
            order_id,
            customer_id: order.customer_id,
            reason,
            cancelled_at: now,
        },
    )
    .await?;
    outbox::enqueue(conn, SERVICE, restore_stock_event(&order)).await?;
    orders::load(conn, order_id).await
}

/// `restore-canceled-item` for every line of `order`: its stock goes back.
pub fn restore_stock_event(order: &Order) -> RestoreCanceledItem {
    RestoreCanceledItem {
        items: order
            .items
            .iter()
            .map(|l| CanceledItem {
                order_id: order.order_id,
                product_id: l.product_id.unwrap_or_default(),
                sku: l.sku.clone(),
                quantity: l.quantity,
            })
            .collect(),
    }
}
