//! What the inventory does with the messages it consumes.

use sales_contracts::Envelope;
use sales_contracts::api::stock::ReservationLine;
use sales_contracts::events::{
    MessageType, PaidOrder, ProductCreated, RestoreCanceledItem, UpdateStock,
};
use sales_platform::messaging::{HandlerError, MessageHandler};
use sqlx::{Postgres, Transaction};

use crate::error::InventoryError;
use crate::{order_reservations, stock};

/// Handles every inventory subscription: `product-created`, `update-stock`,
/// `paid-order`, `restore-canceled-item`.
pub struct InventoryConsumer;

impl MessageHandler for InventoryConsumer {
    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        envelope: &Envelope,
    ) -> Result<(), HandlerError> {
        match envelope.message_type {
            MessageType::ProductCreated => {
                let product: ProductCreated = envelope.decode()?;
                stock::open_item_for_product(
                    tx,
                    product.product_id,
                    &product.sku,
                    product.initial_stock,
                )
                .await
                .map_err(handler_error)?;
                tracing::debug!(product_id = product.product_id, sku = %product.sku, "stock item opened");
            }
            MessageType::UpdateStock => {
                let update: UpdateStock = envelope.decode()?;
                let lines: Vec<ReservationLine> = update
                    .items
                    .iter()
                    .map(|i| ReservationLine {
                        sku: i.sku.clone(),
                        quantity: i.quantity,
                    })
                    .collect();
                let r = order_reservations::hold_for_order(tx, update.order_id, &lines)
                    .await
                    .map_err(handler_error)?;
                tracing::debug!(
                    order_id = update.order_id,
                    reservation_id = r,
                    "stock held for order"
                );
            }
            MessageType::PaidOrder => {
                let paid: PaidOrder = envelope.decode()?;
                let r = order_reservations::commit_for_order(tx, paid.order_id)
                    .await
                    .map_err(|err| match err {
                        InventoryError::NoReservationForOrder(order_id) => {
                            HandlerError::Rejected(format!(
                                "paid-order for order {order_id}, for which no stock is reserved: \
                                 replay it once the order's update-stock has been handled"
                            ))
                        }
                        other => handler_error(other),
                    })?;
                tracing::debug!(order_id = paid.order_id, reservation_id = r, "stock sold");
            }
            MessageType::RestoreCanceledItem => {
                let restore: RestoreCanceledItem = envelope.decode()?;
                let mut orders: Vec<i64> = restore.items.iter().map(|i| i.order_id).collect();
                orders.sort_unstable();
                orders.dedup();
                for order_id in orders {
                    order_reservations::restore_for_order(tx, order_id)
                        .await
                        .map_err(handler_error)?;
                    tracing::debug!(order_id, "stock restored");
                }
            }
            other => {
                return Err(HandlerError::Rejected(format!(
                    "the inventory does not handle {other} messages"
                )));
            }
        }
        Ok(())
    }
}

/// Database trouble may pass; anything else means the message contradicts the data.
fn handler_error(err: InventoryError) -> HandlerError {
    match err {
        InventoryError::Database(e) => HandlerError::Transient(e.into()),
        other => HandlerError::Rejected(other.to_string()),
    }
}
