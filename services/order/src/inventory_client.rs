//! Reserving stock for an order in the inventory service, and giving it back when
//! the order cannot be stored.

use axum::http::{Method, StatusCode};
use sales_contracts::api::stock::{Reservation, ReservationLine, ReserveStock, Shortage};
use sales_platform::client::{CallError, ServiceClient};

use crate::error::{OrderError, Result};

/// Reserve every line for `order_id`, or nothing. Safe to retry: the inventory
/// returns the first reservation for an order.
pub async fn reserve_for_order(
    client: &ServiceClient,
    order_id: i64,
    lines: Vec<ReservationLine>,
) -> Result<Reservation> {
    let requested = |sku: &str| {
        lines
            .iter()
            .find(|l| l.sku == sku)
            .map(|l| l.quantity)
            .unwrap_or(0)
    };
    let request = ReserveStock {
        order_id: Some(order_id),
        items: lines.clone(),
    };
    match client
        .post("/api/v1/inventory/reservations", &request)
        .await
    {
        Ok(reservation) => Ok(reservation),
        Err(err) if err.status() == Some(StatusCode::CONFLICT) => {
            let shortages: Vec<Shortage> = err
                .error_body()
                .and_then(|b| b.error.details.as_ref())
                .and_then(|d| d.get("shortages"))
                .and_then(|s| serde_json::from_value(s.clone()).ok())
                .unwrap_or_default();
            Err(OrderError::Unavailable(shortages))
        }
        Err(err) if err.status() == Some(StatusCode::NOT_FOUND) => {
            // The inventory has no stock item for it (a product just created, or a
            // SKU nobody stocks): nothing can be reserved.
            let skus: Vec<String> = err
                .error_body()
                .and_then(|b| b.error.details.as_ref())
                .and_then(|d| d.get("unknown_skus"))
                .and_then(|s| serde_json::from_value(s.clone()).ok())
                .unwrap_or_default();
            Err(OrderError::NotStocked(
                skus.into_iter()
                    .map(|sku| Shortage {
                        requested: requested(&sku),
                        sku,
                        available: 0,
                    })
                    .collect(),
            ))
        }
        Err(err) => Err(OrderError::Upstream(err)),
    }
}

/// Give a reservation back (best effort: if this fails, the reservation expires by itself).
pub async fn release(client: &ServiceClient, reservation_id: i64) {
    let result: Result<Reservation, CallError> = client
        .call::<(), Reservation>(
            Method::POST,
            &format!("/api/v1/inventory/reservations/{reservation_id}/release"),
            None,
        )
        .await;
    if let Err(err) = result {
        tracing::warn!(reservation_id, error = %err, "could not release the reservation; it will expire");
    }
}
