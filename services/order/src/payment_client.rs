//! Charging an order in the payment service, and refunding a charge the order could
//! not keep.

use axum::http::Method;
use sales_contracts::Money;
use sales_contracts::api::payments::{ChargeOrder, Payment};
use sales_platform::client::ServiceClient;

use crate::error::{OrderError, Result};

/// Authorize and capture `amount` for `order_id`, placed by `customer_id` (who may
/// then read the payment). Safe to retry: the payment service keeps one payment per
/// order and returns it again.
pub async fn charge(
    client: &ServiceClient,
    order_id: i64,
    customer_id: Option<i64>,
    amount: Money,
) -> Result<Payment> {
    let charge = ChargeOrder {
        order_id,
        amount,
        customer_id,
    };
    client
        .post("/api/v1/payments/charge", &charge)
        .await
        .map_err(|err| match err.error_body() {
            // The order's own payment was made by hand for another amount: no
            // charge can be made until an administrator sorts it out.
            Some(body) if body.error.code == "payment_exists" => OrderError::PaymentConflict {
                order_id,
                reason: body.error.message.clone(),
            },
            _ => OrderError::Upstream(err),
        })
}

/// Give the money back (the order was cancelled while its payment went through).
pub async fn refund(client: &ServiceClient, payment_id: i64) -> Result<Payment> {
    client
        .call::<(), Payment>(
            Method::POST,
            &format!("/api/v1/payments/{payment_id}/refund"),
            None,
        )
        .await
        .map_err(OrderError::Upstream)
}

/// The order's own payment, if the payment service has one (`None`: the charge
/// never reached it).
pub async fn of_order(client: &ServiceClient, order_id: i64) -> Result<Option<Payment>> {
    match client
        .get::<Payment>(&format!("/api/v1/payments/orders/{order_id}"))
        .await
    {
        Ok(payment) => Ok(Some(payment)),
        Err(err) if err.status() == Some(axum::http::StatusCode::NOT_FOUND) => Ok(None),
        Err(err) => Err(OrderError::Upstream(err)),
    }
}
