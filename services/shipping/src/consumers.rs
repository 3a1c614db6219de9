//! What the shipping service does with the messages it consumes.

use sales_contracts::Envelope;
use sales_contracts::events::{MessageType, PaidOrder};
use sales_platform::messaging::{HandlerError, MessageHandler};
use sqlx::{Postgres, Transaction};

use crate::error::ShippingError;
use crate::metrics::ShippingMetrics;
use crate::shipments;
use crate::status::ShipmentStatus;

/// Handles the shipping subscription: `paid-order` opens the order's shipment.
pub struct ShippingConsumer {
    pub metrics: ShippingMetrics,
}

impl MessageHandler for ShippingConsumer {
    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        envelope: &Envelope,
    ) -> Result<(), HandlerError> {
        match envelope.message_type {
            MessageType::PaidOrder => {
                let paid: PaidOrder = envelope.decode()?;
                let (shipment, opened) = shipments::open(tx, paid.order_id, paid.customer_id, true)
                    .await
                    .map_err(handler_error)?;
                if opened {
                    // Counted before the consumer commits: a failed commit (rare)
                    // counts a shipment its redelivery counts again.
                    self.metrics.status_entered(ShipmentStatus::Pending);
                    tracing::debug!(
                        order_id = paid.order_id,
                        shipment_id = shipment.id,
                        "shipment opened"
                    );
                } else {
                    tracing::debug!(
                        order_id = paid.order_id,
                        shipment_id = shipment.id,
                        "the order already has a shipment"
                    );
                }
            }
            other => {
                return Err(HandlerError::Rejected(format!(
                    "the shipping service does not handle {other} messages"
                )));
            }
        }
        Ok(())
    }
}

/// Database trouble may pass; anything else means the message can never apply.
fn handler_error(err: ShippingError) -> HandlerError {
    match err {
        ShippingError::Database(e) => HandlerError::Transient(e.into()),
        other => HandlerError::Rejected(other.to_string()),
    }
}
