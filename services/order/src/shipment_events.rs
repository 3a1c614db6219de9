//! The shipping service's events move the order along: `shipment-shipped` ->
//! `SHIPPED`, `shipment-delivered` -> `DELIVERED`.
//!
//! The two arrive through separate queues, so "delivered" can be handled before
//! "shipped": a delivery implies the shipment left, and an order already further
//! along ignores the older news.

use chrono::Utc;
use sales_contracts::Envelope;
use sales_contracts::events::{MessageType, ShipmentDelivered, ShipmentShipped};
use sales_platform::messaging::{HandlerError, MessageHandler};
use sqlx::{AssertSqlSafe, Postgres, Transaction};

use crate::OrderContext;
use crate::error::OrderError;
use crate::order_status::{OrderEvent, OrderStatus};
use crate::orders;

pub struct ShipmentConsumer {
    pub ctx: OrderContext,
}

fn order_id_of(envelope: &Envelope) -> Result<i64, HandlerError> {
    Ok(match envelope.message_type {
        MessageType::ShipmentShipped => envelope.decode::<ShipmentShipped>()?.order_id,
        MessageType::ShipmentDelivered => envelope.decode::<ShipmentDelivered>()?.order_id,
        other => {
            return Err(HandlerError::Rejected(format!(
                "the order service does not handle {other} messages"
            )));
        }
    })
}

impl MessageHandler for ShipmentConsumer {
    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        envelope: &Envelope,
    ) -> Result<(), HandlerError> {
        let order_id = order_id_of(envelope)?;
        let order = orders::lock(tx, order_id).await.map_err(|e| match e {
            OrderError::Database(e) => HandlerError::Transient(e.into()),
            other => HandlerError::Rejected(other.to_string()),
        })?;
        let wanted = match envelope.message_type {
            MessageType::ShipmentShipped => OrderStatus::Shipped,
            _ => OrderStatus::Delivered,
        };
        let mut status = order.status;
        let mut steps = Vec::new();
        while status != wanted {
            let event = match status {
                OrderStatus::Confirmed => OrderEvent::Ship,
                OrderStatus::Shipped if wanted == OrderStatus::Delivered => OrderEvent::Deliver,
                // Already past it (delivered before "shipped" arrived): old news.
                OrderStatus::Delivered => break,
                other => {
                    return Err(HandlerError::Rejected(format!(
                        "order {order_id} is {} and cannot be {}",
                        other.as_str(),
                        wanted.as_str().to_lowercase()
                    )));
                }
            };
            status = status
                .on(event)
                .map_err(|e| HandlerError::Rejected(format!("order {order_id}: {e}")))?;
            steps.push(status);
        }
        let now = Utc::now();
        for step in &steps {
            let column = if *step == OrderStatus::Shipped {
                "shipped_at"
            } else {
                "delivered_at"
            };
            sqlx::query(AssertSqlSafe(format!(
                "update orders set status = $2, {column} = $3, updated_at = $3 where id = $1"
            )))
            .bind(order_id)
            .bind(step.as_str())
            .bind(now)
            .execute(&mut **tx)
            .await?;
            self.ctx.metrics.status_entered(*step);
        }
        if !steps.is_empty() {
            tracing::debug!(
                order_id,
                status = status.as_str(),
                "order moved by its shipment"
            );
        }
        Ok(())
    }

    async fn after_commit(&self, envelope: &Envelope) {
        let Ok(order_id) = order_id_of(envelope) else {
            return;
        };
        if let Ok(mut conn) = self.ctx.pool.acquire().await
            && let Ok(order) = orders::load(&mut conn, order_id).await
        {
            self.ctx.invalidate_order_caches(&order).await;
        }
    }
}
