//! Paying for an order: the payment service charges it, then the order becomes
//! `CONFIRMED` (`paid-order`: the inventory sells the reserved stock, shipping opens
//! a shipment) or, if the payment is declined, `FAILED` (`order-failed`, and the
//! stock goes back).
//!
//! The charge happens outside the order's transaction (it is a call to another
//! service): it is written down on the order first (`payment_attempted_at`), then
//! made, then its outcome is applied by one update that takes the order's row lock
//! and applies only while the order is still `PENDING` (and marks the charge settled). If the order stopped waiting for payment in between
//! (cancelled, timed out), the charge is refunded: the customer never pays for an
//! order they do not get. A crash anywhere in between leaves the charge unsettled
//! for the [`payment_reconciler`](crate::payment_reconciler) to finish. An order of
//! free products (a total of zero) has nothing to charge (the payment service takes
//! no charge below one minor unit): it is confirmed without a payment.

use chrono::{SubsecRound as _, Utc};
use sales_contracts::api::payments::{Payment, PaymentStatus as ChargeStatus};
use sales_contracts::events::{OrderFailed, PaidOrder};
use sales_platform::client::CallError;
use sales_platform::identity::Caller;
use sales_platform::outbox;
use sqlx::AssertSqlSafe;

use crate::cancel_order::restore_stock_event;
use crate::claims::FINISH_STORED_CLAIM;
use crate::error::{OrderError, Result};
use crate::order_status::{IllegalTransition, OrderEvent, OrderStatus, PaymentStatus};
use crate::orders::{self, Order};
use crate::{OrderContext, SERVICE, inventory_client, payment_client, payment_reconciler};

/// Pay `order_id`. Only the customer who placed it may (another customer gets 404,
/// as if it did not exist). Paying an order that is not `PENDING` is a 409; a
/// declined payment is a 402 and leaves the order `FAILED`.
#[tracing::instrument(skip(ctx, caller), fields(caller = caller.describe()))]
pub async fn pay_order(ctx: &OrderContext, caller: &Caller, order_id: i64) -> Result<Order> {
    let order = orders::load(&mut *ctx.pool.acquire().await?, order_id).await?;
    if !caller.may_see(order.customer_id) {
        return Err(OrderError::NotFound(order_id));
    }
    order
        .status
        .on(OrderEvent::Pay)
        .map_err(|source| OrderError::IllegalTransition { order_id, source })?;
    let order = charge_and_settle(ctx, order, Attempt::NoteFirst).await?;
    if order.status == OrderStatus::Failed {
        return Err(OrderError::PaymentDeclined {
            order_id,
            reason: order.failure_reason.unwrap_or_default(),
        });
    }
    Ok(order)
}

/// Charge the order's total and apply the outcome. An order of free products (a
/// total of zero) has nothing to charge: it is confirmed without a payment.
///
/// It runs in a task of its own: a client that hangs up (a gateway's timeout) does
/// not abandon a charge half made; its outcome is recorded all the same.
pub async fn charge_and_settle(
    ctx: &OrderContext,
    order: Order,
    attempt: Attempt,
) -> Result<Order> {
    let order_id = order.order_id;
    let task_ctx = ctx.clone();
    tokio::spawn(async move { charge_and_record(&task_ctx, order, attempt).await })
        .await
        .unwrap_or_else(|err| {
            Err(OrderError::Upstream(CallError::Unavailable {
                service: "payment",
                reason: format!("paying order {order_id} stopped: {err}"),
            }))
        })
}

/// Whether the attempt to charge is already written down on the order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Stored with it: a one-call order is created with `payment_attempted_at` set,
    /// in the transaction that stores it, so charging it costs no extra write.
    Noted,
    /// Write it down first (paying a stored order, a retry of a one-call order).
    NoteFirst,
}

async fn charge_and_record(ctx: &OrderContext, order: Order, attempt: Attempt) -> Result<Order> {
    if order.total.amount == 0 {
        return confirm(ctx, order, None).await;
    }
    if attempt == Attempt::NoteFirst {
        note_attempt(ctx, &order).await?;
    }
    let payment = match payment_client::charge(
        &ctx.payments,
        order.order_id,
        order.customer_id,
        order.total,
    )
    .await
    {
        Ok(payment) => payment,
        Err(err @ OrderError::Upstream(_)) => {
            return outcome_after_lost_answer(ctx, &order, err).await;
        }
        Err(err) => return Err(err),
    };
    let order_id = order.order_id;
    let settled = match payment.status {
        ChargeStatus::Confirmed => confirm(ctx, order, Some(&payment)).await,
        ChargeStatus::Declined => fail(ctx, order, &payment).await,
        other => Err(OrderError::Upstream(CallError::BadAnswer {
            service: "payment",
            reason: format!("a charge ended {other:?}, neither confirmed nor declined"),
        })),
    };
    if let Err(OrderError::IllegalTransition { .. }) = &settled {
        // This very payment was applied first by someone else (a replica's payment
        // reconciler, or a retry of the same request racing this one): its outcome
        // is the answer, not a refusal to pay an order that is paid.
        match applied_elsewhere(ctx, order_id, &payment).await {
            Ok(Some(applied)) => return Ok(applied),
            Ok(None) => {}
            Err(err) => tracing::warn!(order_id, error = %err, "cannot read the order back"),
        }
        // The order stopped waiting while it was charged: refund now (the
        // reconciler would, later).
        if let Err(err) = payment_reconciler::settle(ctx, order_id).await {
            tracing::warn!(order_id, error = %err, "refund left to the payment reconciler");
        }
    }
    settled
}

/// The order as stored, if `payment`'s outcome is already recorded on it (the order
/// carries this payment, paid for a confirmed one, failed for a declined one).
async fn applied_elsewhere(
    ctx: &OrderContext,
    order_id: i64,
    payment: &Payment,
) -> Result<Option<Order>> {
    let now = orders::load(&mut *ctx.pool.acquire().await?, order_id).await?;
    let outcome = match payment.status {
        ChargeStatus::Confirmed => PaymentStatus::Succeeded,
        ChargeStatus::Declined => PaymentStatus::Failed,
        _ => return Ok(None),
    };
    let applied = now.payment_id == Some(payment.payment_id) && now.payment_status == outcome;
    Ok(applied.then_some(now))
}

/// Write down on the order that it is being charged, if it still waits for payment.
async fn note_attempt(ctx: &OrderContext, order: &Order) -> Result<()> {
    let started = sqlx::query(
        "update orders set payment_attempted_at = now(), payment_settled_at = null
         where id = $1 and status = $2 and pay_by > now()",
    )
    .bind(order.order_id)
    .bind(OrderStatus::Pending.as_str())
    .execute(&ctx.pool)
    .await?;
    if started.rows_affected() == 0 {
        // Cancelled or paid since it was read, or its time is up.
        let now = orders::load(&mut *ctx.pool.acquire().await?, order.order_id).await?;
        return Err(match now.status.on(OrderEvent::Pay) {
            Err(source) => OrderError::IllegalTransition {
                order_id: order.order_id,
                source,
            },
            Ok(_) => OrderError::PayByPassed {
                order_id: order.order_id,
                pay_by: now.pay_by,
            },
        });
    }
    Ok(())
}

/// The charge's answer was lost (a timeout, the payment service busy): ask once
/// what became of it. Settled, the order's outcome is the answer; otherwise the
/// error, and the payment reconciler settles it later.
async fn outcome_after_lost_answer(
    ctx: &OrderContext,
    order: &Order,
    err: OrderError,
) -> Result<Order> {
    if let Err(e) = payment_reconciler::settle(ctx, order.order_id).await {
        tracing::warn!(order_id = order.order_id, error = %e, "the charge's outcome is not known yet");
    }
    let now = orders::load(&mut *ctx.pool.acquire().await?, order.order_id).await?;
    match now.status {
        OrderStatus::Pending | OrderStatus::Cancelled => Err(err),
        _ => Ok(now),
    }
}

/// Record `order` paid by `payment` (`None`: nothing was charged, a free order),
/// its charge settled and its claim finished. An order no longer `PENDING` is an `IllegalTransition`.
///
/// `order` is the order as read before it was charged: its owner and total never
/// change, and its status is checked by the update itself (which holds the row
/// lock), so nothing is read again.
pub(crate) async fn confirm(
    ctx: &OrderContext,
    order: Order,
    payment: Option<&Payment>,
) -> Result<Order> {
    let order_id = order.order_id;
    let next = OrderStatus::Pending
        .on(OrderEvent::Pay)
        .map_err(|source| OrderError::IllegalTransition { order_id, source })?;
    // The database keeps microseconds: the answer shows the time as stored.
    let paid_at = Utc::now().trunc_subsecs(6);
    let mut tx = ctx.pool.begin().await?;
    let updated = sqlx::query(AssertSqlSafe(format!(
        "with {FINISH_STORED_CLAIM}
         update orders set status = $2, payment_status = $3, payment_id = $4, paid_at = $5,
                updated_at = $5, payment_settled_at = $5
         where id = $1 and status = $6"
    )))
    .bind(order_id)
    .bind(next.as_str())
    .bind(PaymentStatus::Succeeded.as_str())
    .bind(payment.map(|p| p.payment_id))
    .bind(paid_at)
    .bind(OrderStatus::Pending.as_str())
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        drop(tx);
        return Err(no_longer_pending(ctx, order_id, OrderEvent::Pay).await);
    }
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
    tx.commit().await?;
    let mut order = order;
    order.status = next;
    order.payment_status = PaymentStatus::Succeeded;
    order.payment_id = payment.map(|p| p.payment_id);
    order.paid_at = Some(paid_at);
    order.updated_at = paid_at;
    ctx.metrics.status_entered(next);
    ctx.metrics.revenue(order.total);
    ctx.invalidate_order_caches(&order).await;
    tracing::debug!(order_id, total = %order.total, "order paid");
    Ok(order)
}

/// Record `order`'s payment declined: `FAILED`, its stock released, its charge
/// settled. As in [`confirm`], `order` is the order as read before the charge.
pub(crate) async fn fail(ctx: &OrderContext, order: Order, payment: &Payment) -> Result<Order> {
    let order_id = order.order_id;
    let next = OrderStatus::Pending
        .on(OrderEvent::DeclinePayment)
        .map_err(|source| OrderError::IllegalTransition { order_id, source })?;
    let reason = payment
        .decline_reason
        .clone()
        .unwrap_or_else(|| "declined by the payment service".into());
    let now = Utc::now().trunc_subsecs(6);
    let mut tx = ctx.pool.begin().await?;
    let updated = sqlx::query(AssertSqlSafe(format!(
        "with {FINISH_STORED_CLAIM}
         update orders set status = $2, payment_status = $3, payment_id = $4, failure_reason = $5,
                updated_at = $6, payment_settled_at = $6
         where id = $1 and status = $7"
    )))
    .bind(order_id)
    .bind(next.as_str())
    .bind(PaymentStatus::Failed.as_str())
    .bind(payment.payment_id)
    .bind(&reason)
    .bind(now)
    .bind(OrderStatus::Pending.as_str())
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        drop(tx);
        return Err(no_longer_pending(ctx, order_id, OrderEvent::DeclinePayment).await);
    }
    outbox::enqueue(
        &mut tx,
        SERVICE,
        OrderFailed {
            order_id,
            customer_id: order.customer_id,
            reason: reason.clone(),
            failed_at: now,
        },
    )
    .await?;
    outbox::enqueue(&mut tx, SERVICE, restore_stock_event(&order)).await?;
    tx.commit().await?;
    let mut order = order;
    order.status = next;
    order.payment_status = PaymentStatus::Failed;
    order.payment_id = Some(payment.payment_id);
    order.failure_reason = Some(reason.clone());
    order.updated_at = now;
    // The event restores the stock too; releasing now makes it visible at once
    // (seed 004's clients check the stock right after a declined order).
    if let Some(reservation_id) = order.reservation_id {
        inventory_client::release(&ctx.inventory, reservation_id).await;
    }
    ctx.metrics.status_entered(next);
    ctx.invalidate_order_caches(&order).await;
    tracing::debug!(order_id, %reason, "payment declined; order failed");
    Ok(order)
}

/// An update of a `PENDING` order found it in another status (cancelled or timed
/// out meanwhile): the transition that status refuses (or the error reading it).
async fn no_longer_pending(ctx: &OrderContext, order_id: i64, event: OrderEvent) -> OrderError {
    let status = match ctx.pool.acquire().await {
        Ok(mut conn) => orders::load(&mut conn, order_id).await.map(|o| o.status),
        Err(err) => Err(err.into()),
    };
    match status {
        Ok(from) => OrderError::IllegalTransition {
            order_id,
            source: IllegalTransition { from, event },
        },
        Err(err) => err,
    }
}
