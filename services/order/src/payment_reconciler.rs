//! Settling charges whose outcome the order never recorded. Paying an order writes
//! down `payment_attempted_at` before the payment service is called and
//! `payment_settled_at` once the outcome is acted on; a crash, a timeout or a lost
//! answer in between leaves the charge unsettled. Every replica, every
//! `PAYMENT_RECONCILE_EVERY`, asks the payment service about the order's payment for
//! each charge unsettled for `PAYMENT_RECONCILE_AFTER` and does what the order
//! service would have done:
//!
//! | order     | its payment             | then                                    |
//! |-----------|-------------------------|-----------------------------------------|
//! | PENDING   | confirmed               | the order is paid (`CONFIRMED`)         |
//! | PENDING   | declined                | the order fails, its stock goes back    |
//! | CANCELLED | confirmed               | the payment is refunded (once: the payment service refunds a payment at most once) |
//! | any       | pending or authorized, a provider call in flight | wait: the payment service settles it first |
//! | any       | pending or authorized, no call in flight | settled: this charge took nothing (a payment opened by hand) |
//! | any       | none, long enough after | settled: the charge never arrived       |
//! | otherwise | anything                | settled: nothing to do                  |
//!
//! The unpaid timeout settles an order's charge this way before it cancels the
//! order, so an order paid at its last moment is confirmed, not cancelled. Charges
//! still unsettled after [`ALERT_AFTER`] are counted in `order_payments_unsettled`
//! (alert `SalesOrderPaymentsUnsettled`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sales_contracts::api::payments::PaymentStatus as ChargeStatus;
use tokio_util::sync::CancellationToken;

use crate::OrderContext;
use crate::error::Result;
use crate::order_status::OrderStatus;
use crate::{orders, pay_order, payment_client};

/// Charges unsettled this long are counted and alerted on.
pub const ALERT_AFTER: Duration = Duration::from_secs(600);

/// What settling one order's charge came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Acted on (or nothing to act on): the charge is settled.
    Yes,
    /// Not yet: the payment is still being decided, or a call failed.
    NotYet,
}

/// Settle the charge of `order_id`, if one was started and is not settled.
pub async fn settle(ctx: &OrderContext, order_id: i64) -> Result<Settled> {
    let started: Option<DateTime<Utc>> = sqlx::query_scalar(
        "select payment_attempted_at from orders
         where id = $1 and payment_attempted_at is not null and payment_settled_at is null",
    )
    .bind(order_id)
    .fetch_optional(&ctx.pool)
    .await?;
    let Some(attempted_at) = started else {
        return Ok(Settled::Yes);
    };
    sqlx::query("update orders set payment_checked_at = now() where id = $1")
        .bind(order_id)
        .execute(&ctx.pool)
        .await?;
    let payment = payment_client::of_order(&ctx.payments, order_id).await?;
    let order = orders::load(&mut *ctx.pool.acquire().await?, order_id).await?;
    let Some(payment) = payment else {
        // The charge never reached the payment service, or has not yet: only after a
        // while is "no payment" an answer.
        let waited = (Utc::now() - attempted_at).to_std().unwrap_or_default();
        if waited < ctx.payment_reconcile_after {
            return Ok(Settled::NotYet);
        }
        mark_settled(ctx, order_id, attempted_at).await?;
        return Ok(Settled::Yes);
    };
    match (order.status, payment.status) {
        (_, ChargeStatus::Pending | ChargeStatus::Authorized)
            if payment.provider_call_in_flight.is_some() =>
        {
            Ok(Settled::NotYet)
        }
        (OrderStatus::Pending, ChargeStatus::Confirmed) => {
            tracing::warn!(
                order_id,
                payment_id = payment.payment_id,
                "the order's payment was captured but never recorded; recording it"
            );
            pay_order::confirm(ctx, order, Some(&payment)).await?;
            Ok(Settled::Yes)
        }
        (OrderStatus::Pending, ChargeStatus::Declined) => {
            tracing::warn!(
                order_id,
                payment_id = payment.payment_id,
                "the order's payment was declined but never recorded; failing the order"
            );
            pay_order::fail(ctx, order, &payment).await?;
            Ok(Settled::Yes)
        }
        (OrderStatus::Cancelled | OrderStatus::Failed, ChargeStatus::Confirmed) => {
            tracing::warn!(
                order_id,
                payment_id = payment.payment_id,
                "the order stopped waiting while its payment was captured; refunding"
            );
            match payment_client::refund(&ctx.payments, payment.payment_id).await {
                Ok(_) => {
                    mark_settled(ctx, order_id, attempted_at).await?;
                    Ok(Settled::Yes)
                }
                Err(err) => {
                    tracing::warn!(order_id, payment_id = payment.payment_id, error = %err, "refund not made yet; trying again later");
                    Ok(Settled::NotYet)
                }
            }
        }
        _ => {
            mark_settled(ctx, order_id, attempted_at).await?;
            Ok(Settled::Yes)
        }
    }
}

/// Record the charge started at `attempted_at` settled (unless a newer one started).
async fn mark_settled(
    ctx: &OrderContext,
    order_id: i64,
    attempted_at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "update orders set payment_settled_at = now()
         where id = $1 and payment_attempted_at = $2 and payment_settled_at is null",
    )
    .bind(order_id)
    .bind(attempted_at)
    .execute(&ctx.pool)
    .await?;
    Ok(())
}

/// Settle every charge unsettled for `PAYMENT_RECONCILE_AFTER`. Returns how many
/// were settled.
pub async fn reconcile(ctx: &OrderContext) -> Result<usize> {
    let due: Vec<i64> = sqlx::query_scalar(
        "select id from orders
         where payment_attempted_at is not null and payment_settled_at is null
           and payment_attempted_at <= now() - make_interval(secs => $1)
         order by coalesce(payment_checked_at, payment_attempted_at) limit 100",
    )
    .bind(ctx.payment_reconcile_after.as_secs_f64())
    .fetch_all(&ctx.pool)
    .await?;
    let mut settled = 0;
    for order_id in due {
        match settle(ctx, order_id).await {
            Ok(Settled::Yes) => settled += 1,
            Ok(Settled::NotYet) => {}
            Err(err) => {
                tracing::warn!(order_id, error = %err, "could not settle the order's charge yet")
            }
        }
    }
    let unsettled: i64 = sqlx::query_scalar(
        "select count(*) from orders
         where payment_attempted_at is not null and payment_settled_at is null
           and payment_attempted_at <= now() - make_interval(secs => $1)",
    )
    .bind(ALERT_AFTER.as_secs_f64())
    .fetch_one(&ctx.pool)
    .await?;
    ctx.metrics.payments_unsettled.set(unsettled);
    Ok(settled)
}

/// Run [`reconcile`] every `every` until shut down.
pub async fn run(ctx: OrderContext, every: Duration, shutdown: CancellationToken) {
    sales_platform::shutdown::every(every, shutdown, "reconcile payments", || reconcile(&ctx))
        .await;
}
