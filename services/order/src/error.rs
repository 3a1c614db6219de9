//! What can go wrong with an order, and the HTTP answer for each.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sales_contracts::api::stock::Shortage;
use sales_platform::ApiError;
use sales_platform::client::CallError;

use crate::order_status::IllegalTransition;

pub type Result<T, E = OrderError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("{0}")]
    Validation(String),
    #[error("order {0} not found")]
    NotFound(i64),
    #[error("unknown product(s): {}", join(.0))]
    UnknownProducts(Vec<i64>),
    /// Seed 000's refusal: no order is made.
    #[error("Product is not available: {}", describe(.0))]
    Unavailable(Vec<Shortage>),
    #[error("order {order_id}: {source}")]
    IllegalTransition {
        order_id: i64,
        source: IllegalTransition,
    },
    #[error("this idempotency key was used for a different request; use a new key for a new order")]
    IdempotencyKeyReused,
    #[error("the amount {given} does not match the order's total {total} at catalogue prices")]
    AmountMismatch { given: String, total: String },
    #[error(
        "payment for order {order_id} was declined: {reason}; the order failed and its stock was released"
    )]
    PaymentDeclined { order_id: i64, reason: String },
    #[error("{0}")]
    Upstream(CallError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn join(ids: &[i64]) -> String {
    ids.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(shortages: &[Shortage]) -> String {
    shortages
        .iter()
        .map(|s| {
            format!(
                "{} (requested {}, available {})",
                s.sku, s.requested, s.available
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<OrderError> for ApiError {
    fn from(err: OrderError) -> Self {
        let message = err.to_string();
        match err {
            OrderError::Validation(_) => ApiError::validation(message),
            OrderError::NotFound(_) => ApiError::not_found(message),
            OrderError::UnknownProducts(ids) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_product", message)
                    .with_details(serde_json::json!({ "unknown_product_ids": ids }))
            }
            OrderError::Unavailable(shortages) => {
                ApiError::conflict("product_unavailable", message)
                    .with_details(serde_json::json!({ "shortages": shortages }))
            }
            OrderError::IllegalTransition { source, .. } => {
                ApiError::conflict("invalid_transition", message)
                    .with_details(serde_json::json!({ "status": source.from }))
            }
            OrderError::AmountMismatch { .. } => ApiError::conflict("amount_mismatch", message),
            OrderError::PaymentDeclined { .. } => {
                ApiError::new(StatusCode::PAYMENT_REQUIRED, "payment_declined", message)
            }
            OrderError::IdempotencyKeyReused => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                message,
            ),
            OrderError::Upstream(e) => {
                tracing::warn!(error = %e, "upstream call failed");
                ApiError::unavailable(message)
            }
            OrderError::Database(e) => ApiError::from(e),
        }
    }
}

impl IntoResponse for OrderError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}
