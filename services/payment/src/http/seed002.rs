//! Seed 002's payment routes, with its shapes:
//!
//! - `POST /payments {"order_id": 1, "amount": 200.5}` -> 201 the row
//!   `{"id", "order_id", "amount", "currency", "status": "pending", "created_at"}`; the
//!   amount is a decimal number in `DEFAULT_CURRENCY` (USD unless configured);
//! - `PUT /payments/{id}/confirm` -> 200 the row, `confirmed` (or `declined` when the
//!   authorizer declines);
//! - `PUT /payments/{id}/refund` -> 200 the row, `refunded` (seed 002's README promises
//!   refunds).
//!
//! The `PUT`s are idempotent: a payment already confirmed (refunded) is returned as it
//! is. Errors use the platform's `{"error": {"code", "message"}}`.
//!
//! Who acts how ([`super::seed_caller`]): someone without an account (the seeds'
//! routes open) opens the seeds' own payment for the order id it names, apart from
//! the order's own, and confirms and refunds only such payments (any other is 404,
//! as if it did not exist); an admin acts on any payment; a customer gets 403.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use sales_contracts::api::ErrorResponse;
use sales_contracts::api::payments::{Payment, PaymentStatus};
use sales_contracts::{Currency, DecimalAmount};
use sales_platform::identity::Caller;
use sales_platform::{Json, Path};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AppState, seed_caller};
use crate::error::PaymentError;

/// Seed 002's new payment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Seed002CreatePayment {
    #[schema(example = 1, minimum = 1)]
    order_id: i64,
    /// Major units, e.g. `200.5`; more than zero, and no more decimal places than the
    /// currency has.
    #[schema(schema_with = sales_contracts::money::request_schemas::positive_decimal_amount)]
    amount: DecimalAmount,
    /// An ISO 4217 code; defaults to `DEFAULT_CURRENCY` (USD).
    #[schema(value_type = Option<String>, example = "USD", pattern = "^[A-Za-z]{3}$")]
    currency: Option<Currency>,
}

/// Seed 002's payment row.
#[derive(Debug, Serialize, ToSchema)]
pub struct Seed002Payment {
    #[schema(example = 1)]
    id: i64,
    #[schema(example = 1)]
    order_id: i64,
    /// Major units, e.g. `200.5`.
    amount: DecimalAmount,
    #[schema(value_type = String, example = "USD")]
    currency: Currency,
    status: PaymentStatus,
    created_at: DateTime<Utc>,
}

impl From<Payment> for Seed002Payment {
    fn from(p: Payment) -> Self {
        Seed002Payment {
            id: p.payment_id,
            order_id: p.order_id,
            amount: DecimalAmount::from_money(p.amount),
            currency: p.amount.currency,
            status: p.status,
            created_at: p.created_at,
        }
    }
}

/// Seed 002: open a `pending` payment for an order. The same order and amount again
/// return the same payment (200).
#[utoipa::path(post, path = "/payments", tag = "seed 002",
    operation_id = "seed002_create_payment",
    request_body = Seed002CreatePayment,
    responses((status = 201, description = "Opened", body = Seed002Payment),
               (status = 200, description = "The order's payment, made earlier", body = Seed002Payment),
               (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
               (status = 409, description = "The order has a payment for another amount", body = ErrorResponse)))]
pub async fn create_payment(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<Seed002CreatePayment>,
) -> Result<(StatusCode, Json<Seed002Payment>), PaymentError> {
    let source = seed_caller(&caller)?.source();
    let currency = body.currency.unwrap_or(state.default_currency);
    let amount = body.amount.to_minor(currency)?;
    let stored = state.payments.open(body.order_id, amount, source).await?;
    let status = if stored.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(stored.payment.into())))
}

/// Seed 002: confirm a payment. A pending one is authorized first and ends `declined`
/// when the authorizer declines.
#[utoipa::path(put, path = "/payments/{id}/confirm", tag = "seed 002",
    params(("id" = i64, Path, description = "The payment id")),
    responses((status = 200, description = "Confirmed, or declined by the authorizer", body = Seed002Payment),
               (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
               (status = 404, description = "Payment not found", body = ErrorResponse),
               (status = 409, description = "Declined or refunded", body = ErrorResponse)))]
pub async fn confirm_payment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Seed002Payment>, PaymentError> {
    let reach = seed_caller(&caller)?.reach();
    Ok(Json(state.payments.confirm(id, reach, true).await?.into()))
}

/// Seed 002: refund a confirmed payment.
#[utoipa::path(put, path = "/payments/{id}/refund", tag = "seed 002",
    params(("id" = i64, Path, description = "The payment id")),
    responses((status = 200, description = "Refunded", body = Seed002Payment),
               (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
               (status = 404, description = "Payment not found", body = ErrorResponse),
               (status = 409, description = "Not confirmed", body = ErrorResponse)))]
pub async fn refund_payment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Seed002Payment>, PaymentError> {
    let reach = seed_caller(&caller)?.reach();
    Ok(Json(state.payments.refund(id, reach, true).await?.into()))
}
