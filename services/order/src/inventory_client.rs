//! Reserving stock for an order in the inventory service, and giving it back when
//! the order cannot be stored.

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Utc};
use sales_contracts::api::stock::{Reservation, ReservationLine, ReserveStock, Shortage};
use sales_platform::client::{CallError, ServiceClient};

use crate::error::{OrderError, Result};

/// Reserve every line for `order_id`, or nothing, held until `pay_by` (the order's
/// deadline: one clock for the order and its stock). Safe to retry: the inventory
/// returns the first reservation for an order.
pub async fn reserve_for_order(
    client: &ServiceClient,
    order_id: i64,
    lines: Vec<ReservationLine>,
    pay_by: DateTime<Utc>,
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
        hold_until: Some(pay_by),
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
        Err(err)
            if matches!(
                err.status(),
                Some(StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY)
            ) =>
        {
            // The inventory cannot take these items as named (a SKU no stock item can
            // have, say): the request's fault, not an outage.
            let reason = err
                .error_body()
                .map(|b| b.error.message.clone())
                .unwrap_or_else(|| "the items are not valid".into());
            Err(OrderError::Validation(format!(
                "the inventory cannot reserve these items: {reason}"
            )))
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sales_platform::ApiError;
    use serde_json::{Value, json};

    use super::*;

    /// An inventory that answers every reservation with `status` and `body`.
    async fn inventory_answering(status: StatusCode, body: Value) -> ServiceClient {
        let app = axum::Router::new().route(
            "/api/v1/inventory/reservations",
            axum::routing::post(move || async move { (status, axum::Json(body)) }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        ServiceClient::new("inventory", &url, Duration::from_secs(5)).unwrap()
    }

    fn line(sku: &str) -> Vec<ReservationLine> {
        vec![ReservationLine {
            sku: sku.into(),
            quantity: 1,
        }]
    }

    #[tokio::test]
    async fn items_the_inventory_refuses_as_invalid_are_the_clients_error_not_a_503() {
        let message = "sku must not be only dots, nor contain control characters, /, \\, ; or %";
        for status in [StatusCode::BAD_REQUEST, StatusCode::UNPROCESSABLE_ENTITY] {
            let inventory = inventory_answering(
                status,
                json!({"error": {"code": "validation_failed", "message": message}}),
            )
            .await;
            let err = reserve_for_order(&inventory, 7, line("a/b"), chrono::Utc::now())
                .await
                .unwrap_err();
            let answer = ApiError::from(err);
            assert!(
                answer.status.is_client_error(),
                "{status}: {} {}",
                answer.status,
                answer.message
            );
            assert_eq!(answer.code, "validation_failed");
            assert!(answer.message.contains(message), "{}", answer.message);
        }
    }

    #[tokio::test]
    async fn an_inventory_in_trouble_is_still_unavailable() {
        let inventory = inventory_answering(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": {"code": "internal", "message": "boom"}}),
        )
        .await;
        let err = reserve_for_order(&inventory, 7, line("A"), chrono::Utc::now())
            .await
            .unwrap_err();
        assert_eq!(ApiError::from(err).status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
