//! Notifications: what the customer is told when their order changes status.

use chrono::{DateTime, Utc};
use sales_contracts::Envelope;
use sales_contracts::events::{
    CancelOrder, CancelReason, CreateOrder, MessageType, OrderFailed, PaidOrder, ShipmentDelivered,
    ShipmentShipped,
};
use sales_platform::messaging::{HandlerError, MessageHandler};
use serde::Serialize;
use sqlx::{PgConnection, Postgres, Transaction};
use utoipa::ToSchema;

/// A notification sent about an order.
#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Notification {
    pub id: i64,
    pub order_id: i64,
    pub customer_id: Option<i64>,
    /// The message type that caused it, e.g. `paid-order`.
    pub event: String,
    /// The order's status after the change, e.g. `CONFIRMED`.
    pub order_status: String,
    /// What the customer reads.
    pub message: String,
    /// When the change happened (its event's time): the list's order.
    pub occurred_at: DateTime<Utc>,
    /// When this service recorded it.
    pub created_at: DateTime<Utc>,
}

/// What a message means for the customer: (order, customer, status, text).
pub fn describe(
    envelope: &Envelope,
) -> Result<(i64, Option<i64>, &'static str, String), HandlerError> {
    Ok(match envelope.message_type {
        MessageType::CreateOrder => {
            let e: CreateOrder = envelope.decode()?;
            (
                e.order_id,
                e.customer_id,
                "PENDING",
                format!(
                    "Order {} for {} is placed and waiting for payment (unpaid) until {}.",
                    e.order_id,
                    e.total,
                    e.pay_by.format("%Y-%m-%d %H:%M UTC")
                ),
            )
        }
        MessageType::PaidOrder => {
            let e: PaidOrder = envelope.decode()?;
            (
                e.order_id,
                e.customer_id,
                "CONFIRMED",
                format!("Order {} is paid ({}). Thank you!", e.order_id, e.total),
            )
        }
        MessageType::CancelOrder => {
            let e: CancelOrder = envelope.decode()?;
            let why = match e.reason {
                CancelReason::Customer => "as you asked",
                CancelReason::UnpaidTimeout => "because it was not paid in time",
            };
            (
                e.order_id,
                e.customer_id,
                "CANCELLED",
                format!("Order {} was cancelled {why}.", e.order_id),
            )
        }
        MessageType::OrderFailed => {
            let e: OrderFailed = envelope.decode()?;
            (
                e.order_id,
                e.customer_id,
                "FAILED",
                format!(
                    "Payment for order {} was declined ({}); the order was not placed.",
                    e.order_id, e.reason
                ),
            )
        }
        MessageType::ShipmentShipped => {
            let e: ShipmentShipped = envelope.decode()?;
            (
                e.order_id,
                e.customer_id,
                "SHIPPED",
                format!(
                    "Order {} has shipped (shipment {}).",
                    e.order_id, e.shipment_id
                ),
            )
        }
        MessageType::ShipmentDelivered => {
            let e: ShipmentDelivered = envelope.decode()?;
            (
                e.order_id,
                e.customer_id,
                "DELIVERED",
                format!("Order {} was delivered.", e.order_id),
            )
        }
        other => {
            return Err(HandlerError::Rejected(format!(
                "notifications are not sent for {other} messages"
            )));
        }
    })
}

/// Records a notification for every order status message.
pub struct NotificationConsumer;

impl MessageHandler for NotificationConsumer {
    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        envelope: &Envelope,
    ) -> Result<(), HandlerError> {
        let (order_id, customer_id, status, message) = describe(envelope)?;
        sqlx::query(
            "insert into notifications
                 (message_id, order_id, customer_id, event, order_status, message, occurred_at)
             values ($1, $2, $3, $4, $5, $6, $7) on conflict (message_id) do nothing",
        )
        .bind(envelope.message_id)
        .bind(order_id)
        .bind(customer_id)
        .bind(envelope.message_type.as_str())
        .bind(status)
        .bind(&message)
        .bind(envelope.occurred_at)
        .execute(&mut **tx)
        .await?;
        tracing::debug!(order_id, status, "notification recorded");
        Ok(())
    }
}

/// Notifications, the latest change first (by when it happened, not when its message
/// arrived), optionally for one order or one customer.
pub async fn list(
    conn: &mut PgConnection,
    order_id: Option<i64>,
    customer_id: Option<i64>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Notification>, sqlx::Error> {
    sqlx::query_as(
        "select id, order_id, customer_id, event, order_status, message, occurred_at, created_at
         from notifications
         where ($1::bigint is null or order_id = $1) and ($2::bigint is null or customer_id = $2)
         order by occurred_at desc, id desc limit $3 offset $4",
    )
    .bind(order_id)
    .bind(customer_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await
}
