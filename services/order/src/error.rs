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
    /// Items the catalogue does not list: on the canonical routes every line is
    /// priced from the catalogue, so they cannot be ordered (422).
    #[error("not in the catalogue: {}; order only products the catalogue lists", describe_unknown(.product_ids, .skus))]
    UnknownItems {
        product_ids: Vec<i64>,
        skus: Vec<String>,
    },
    /// Seed 000's refusal: no order is made.
    #[error("Product is not available: {}", describe(.0))]
    Unavailable(Vec<Shortage>),
    /// The inventory has no stock item for these SKUs (seed 004: "item not found");
    /// on the canonical routes the same refusal as [`OrderError::Unavailable`].
    #[error("Product is not available: {}", describe(.0))]
    NotStocked(Vec<Shortage>),
    #[error("order {order_id}: {source}")]
    IllegalTransition {
        order_id: i64,
        source: IllegalTransition,
    },
    #[error("this idempotency key was used for a different request; use a new key for a new order")]
    IdempotencyKeyReused,
    /// Another request with this key is still being handled (the duplicate waited
    /// for it a while): 409 with `Retry-After`.
    #[error(
        "a request with this idempotency key is still being processed; retry in a moment to get its order"
    )]
    IdempotencyKeyInUse,
    /// The caller already has as many unpaid orders as one may have at once.
    #[error(
        "{} {count} unpaid orders, the most allowed at once ({limit}): pay or cancel one of them before placing another{}",
        .holder.has(), .holder.hint()
    )]
    TooManyUnpaidOrders {
        holder: Holder,
        count: i64,
        limit: i64,
    },
    /// The order would take the caller's reserved units over the bound.
    #[error(
        "{} {held} units reserved in unpaid orders; {requested} more would exceed the most allowed at once ({limit}): pay or cancel an unpaid order, or order fewer units{}",
        .holder.has(), .holder.hint()
    )]
    TooManyReservedUnits {
        holder: Holder,
        held: i64,
        requested: i64,
        limit: i64,
    },
    #[error("the amount {given} does not match the order's total {total} at catalogue prices")]
    AmountMismatch { given: String, total: String },
    /// At the catalogue's prices the order's total does not fit in 64 bits of minor
    /// units: the catalogue makes this order impossible, the request is not malformed.
    #[error("at catalogue prices this order's total is too large to be charged; order fewer units")]
    TotalTooLarge,
    /// The catalogue prices the products in different currencies: one order is paid
    /// in one currency.
    #[error(
        "the catalogue prices these products in different currencies ({0}); order them separately"
    )]
    MixedCurrencies(String),
    #[error(
        "payment for order {order_id} was declined: {reason}; the order failed and its stock was released"
    )]
    PaymentDeclined { order_id: i64, reason: String },
    #[error(
        "order {order_id} was not paid by its pay-by time ({pay_by}); it is being cancelled and can no longer be paid"
    )]
    PayByPassed {
        order_id: i64,
        pay_by: chrono::DateTime<chrono::Utc>,
    },
    #[error("order {order_id} cannot be charged: {reason}")]
    PaymentConflict { order_id: i64, reason: String },
    #[error(
        "placing order {order_id} took longer than its claim lasts (IDEMPOTENCY_CLAIM_TTL); it was given up and its stock given back: try again"
    )]
    ClaimExpired { order_id: i64 },
    #[error("{0}")]
    Upstream(CallError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Whose bounds an order counts against, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    /// A signed-in customer.
    Customer,
    /// Callers without an account, from one client address; unpaid orders are
    /// cancelled after this long.
    Address { unpaid_timeout: String },
}

impl Holder {
    fn has(&self) -> &'static str {
        match self {
            Holder::Customer => "you have",
            Holder::Address { .. } => "orders placed without an account from this address have",
        }
    }

    fn hint(&self) -> String {
        match self {
            Holder::Customer => String::new(),
            Holder::Address { unpaid_timeout } => {
                format!(" (an unpaid order is cancelled after {unpaid_timeout}), or sign in")
            }
        }
    }
}

fn describe_unknown(product_ids: &[i64], skus: &[String]) -> String {
    product_ids
        .iter()
        .map(|id| format!("product {id}"))
        .chain(skus.iter().cloned())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Seconds a client should wait before retrying an answer with this code, if any.
pub fn retry_after(code: &str) -> Option<&'static str> {
    (code == "idempotency_key_in_use").then_some("1")
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
            OrderError::UnknownItems { product_ids, skus } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_items", message)
                    .with_details(serde_json::json!({
                        "unknown_product_ids": product_ids,
                        "unknown_skus": skus,
                    }))
            }
            OrderError::Unavailable(shortages) | OrderError::NotStocked(shortages) => {
                ApiError::conflict("product_unavailable", message)
                    .with_details(serde_json::json!({ "shortages": shortages }))
            }
            OrderError::IllegalTransition { source, .. } => {
                ApiError::conflict("invalid_transition", message)
                    .with_details(serde_json::json!({ "status": source.from }))
            }
            OrderError::AmountMismatch { .. } => ApiError::conflict("amount_mismatch", message),
            OrderError::TotalTooLarge => ApiError::conflict("total_too_large", message),
            OrderError::MixedCurrencies(_) => ApiError::conflict("mixed_currencies", message),
            OrderError::PaymentDeclined { .. } => {
                ApiError::new(StatusCode::PAYMENT_REQUIRED, "payment_declined", message)
            }
            OrderError::PayByPassed { .. } => ApiError::conflict("pay_by_passed", message),
            OrderError::PaymentConflict { .. } => ApiError::conflict("payment_conflict", message),
            OrderError::IdempotencyKeyReused => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                message,
            ),
            OrderError::IdempotencyKeyInUse => ApiError::conflict("idempotency_key_in_use", message),
            OrderError::TooManyUnpaidOrders { count, limit, .. } => {
                ApiError::conflict("too_many_unpaid_orders", message)
                    .with_details(serde_json::json!({ "unpaid_orders": count, "limit": limit }))
            }
            OrderError::TooManyReservedUnits {
                held,
                requested,
                limit,
                ..
            } => ApiError::conflict("too_many_reserved_units", message).with_details(
                serde_json::json!({ "reserved_units": held, "requested": requested, "limit": limit }),
            ),
            OrderError::ClaimExpired { .. } => ApiError::unavailable(message),
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
        HttpError(ApiError::from(self)).into_response()
    }
}

/// An error answer of the canonical API: [`ApiError`]'s body, with `Retry-After`
/// where waiting helps.
#[derive(Debug)]
pub struct HttpError(pub ApiError);

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        HttpError(e)
    }
}

impl From<OrderError> for HttpError {
    fn from(e: OrderError) -> Self {
        HttpError(e.into())
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let wait = retry_after(&self.0.code);
        let mut response = self.0.into_response();
        if let Some(wait) = wait {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(wait),
            );
        }
        response
    }
}
