//! Everything that can go wrong with a payment, and the HTTP answer for each.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sales_contracts::Money;
use sales_contracts::money::DecimalError;
use sales_platform::ApiError;

use crate::payment_status::{IllegalTransition, as_str};
use crate::provider::Operation;

pub type Result<T, E = PaymentError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("payment {0} not found")]
    NotFound(i64),
    #[error(
        "order {order_id} already has payment {payment_id} for {existing}; a payment for {requested} cannot be made for it"
    )]
    PaymentExists {
        order_id: i64,
        payment_id: i64,
        existing: Money,
        requested: Money,
    },
    #[error("payment {payment_id} {source}")]
    InvalidTransition {
        payment_id: i64,
        source: IllegalTransition,
    },
    #[error(
        "payment {payment_id} has a {operation} call to the provider in flight; ask again once it is answered"
    )]
    CallInFlight {
        payment_id: i64,
        operation: Operation,
    },
    #[error(
        "the payment provider did not answer the {operation} of payment {payment_id}; the call is made again until it is answered: ask again for the outcome"
    )]
    ProviderNoAnswer {
        payment_id: i64,
        operation: Operation,
    },
    #[error("the payment provider refused the {operation} of payment {payment_id}: {reason}")]
    ProviderRefused {
        payment_id: i64,
        operation: Operation,
        reason: String,
    },
    #[error("the payment provider refused idempotency key {key} of payment {payment_id}")]
    ProviderKeyReused { payment_id: i64, key: String },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<DecimalError> for PaymentError {
    fn from(err: DecimalError) -> Self {
        PaymentError::Validation(err.to_string())
    }
}

impl From<PaymentError> for ApiError {
    fn from(err: PaymentError) -> Self {
        let message = err.to_string();
        match err {
            PaymentError::Validation(_) => ApiError::validation(message),
            PaymentError::Forbidden(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
            }
            PaymentError::NotFound(_) => ApiError::not_found(message),
            PaymentError::PaymentExists {
                payment_id,
                existing,
                ..
            } => ApiError::conflict("payment_exists", message).with_details(serde_json::json!({
                "payment_id": payment_id,
                "amount": existing,
            })),
            PaymentError::InvalidTransition { source, .. } => {
                ApiError::conflict("invalid_transition", message)
                    .with_details(serde_json::json!({ "status": as_str(source.from) }))
            }
            PaymentError::CallInFlight { .. } => {
                ApiError::conflict("provider_call_in_flight", message)
            }
            PaymentError::ProviderNoAnswer { payment_id, .. } => ApiError::unavailable(message)
                .with_details(serde_json::json!({ "payment_id": payment_id })),
            PaymentError::ProviderRefused { .. } => ApiError::conflict("provider_refused", message),
            PaymentError::ProviderKeyReused { .. } => ApiError::internal(err),
            PaymentError::Database(e) => ApiError::from(e),
        }
    }
}

impl IntoResponse for PaymentError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}
