//! Everything that can go wrong with a shipment, and the HTTP answer for each.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sales_platform::ApiError;

use crate::status::{IllegalTransition, ShipmentStatus};

pub type Result<T, E = ShippingError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ShippingError {
    #[error("{0}")]
    Validation(String),
    /// A status the API does not know, or cannot move to; `allowed` lists what it can.
    #[error("{field} must be one of {}; got {got:?}", ShipmentStatus::list(.allowed))]
    UnknownStatus {
        field: &'static str,
        got: String,
        allowed: &'static [ShipmentStatus],
    },
    #[error("shipment {0} not found")]
    NotFound(i64),
    /// A caller tried to do what only an admin may.
    #[error("only an admin may {0}")]
    Forbidden(&'static str),
    #[error("shipment {shipment_id} is {} and cannot move to {}; {}",
        .source.from, .source.to, .source.from.next_hint())]
    InvalidTransition {
        shipment_id: i64,
        source: IllegalTransition,
    },
    /// Only a paid order ships: its `paid-order` has not come (yet).
    #[error(
        "shipment {shipment_id} cannot ship: order {order_id} has not been paid (its paid-order has not arrived)"
    )]
    OrderNotPaid { shipment_id: i64, order_id: i64 },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<ShippingError> for ApiError {
    fn from(err: ShippingError) -> Self {
        let message = err.to_string();
        match err {
            ShippingError::Validation(_) => ApiError::validation(message),
            ShippingError::UnknownStatus { allowed, .. } => ApiError::validation(message)
                .with_details(serde_json::json!({ "allowed": allowed })),
            ShippingError::NotFound(_) => ApiError::not_found(message),
            ShippingError::Forbidden(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
            }
            ShippingError::InvalidTransition { source, .. } => {
                ApiError::conflict("invalid_transition", message).with_details(serde_json::json!({
                    "status": source.from,
                    "requested": source.to,
                    "allowed": source.from.next().into_iter().collect::<Vec<_>>(),
                }))
            }
            ShippingError::OrderNotPaid { .. } => ApiError::conflict("order_not_paid", message),
            ShippingError::Database(e) => ApiError::from(e),
        }
    }
}

impl IntoResponse for ShippingError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}
