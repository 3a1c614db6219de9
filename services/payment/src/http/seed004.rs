//! Seed 004's payment route, with its shapes:
//!
//! `POST /api/v1/payments/authorize {"order_id": 1, "amount": 200.50, "currency": "USD"}`
//! -> 200 `{"authorized": true, "payment_id": 1}`; authorized iff the amount is below
//! the limit (`DECLINE_AT`, 1000). The order's payment is made in `authorized` or
//! `declined` state; asking again for the same order returns the same payment.
//!
//! Someone without an account (the seeds' routes open) makes and finds the seeds' own
//! payment for the order id it names, apart from the order's own payment, which it
//! can neither see, change nor block; an admin acts on the order's own; a customer
//! gets 403 ([`super::seed_caller`]).

use axum::extract::State;
use sales_contracts::api::ErrorResponse;
use sales_contracts::{Currency, DecimalAmount};
use sales_platform::Json;
use sales_platform::identity::Caller;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AppState, seed_caller};
use crate::error::PaymentError;
use crate::payment_status::was_authorized;

/// Seed 004's authorization request. The amount is in major units, read exactly.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Seed004Authorize {
    #[schema(example = 1, minimum = 1)]
    order_id: i64,
    /// Major units: `200.50` is two hundred dollars and fifty cents. More than zero,
    /// and no more decimal places than the currency has.
    #[schema(schema_with = sales_contracts::money::request_schemas::positive_decimal_amount)]
    amount: DecimalAmount,
    /// An ISO 4217 code.
    #[schema(value_type = String, example = "USD", pattern = "^[A-Za-z]{3}$")]
    currency: Currency,
}

/// Seed 004's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Seed004Authorization {
    /// Whether the payment was authorized (it was declined otherwise).
    authorized: bool,
    #[schema(example = 1)]
    payment_id: i64,
}

/// Seed 004: authorize a payment for an order (authorized iff the amount is below
/// the limit). Idempotent per order: the same order and amount return the same payment.
#[utoipa::path(post, path = "/api/v1/payments/authorize", tag = "seed 004",
    operation_id = "seed004_authorize",
    request_body = Seed004Authorize,
    responses((status = 200, body = Seed004Authorization),
               (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
               (status = 409, description = "The order has a payment for another amount", body = ErrorResponse)))]
pub async fn authorize(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<Seed004Authorize>,
) -> Result<Json<Seed004Authorization>, PaymentError> {
    let source = seed_caller(&caller)?.source();
    let amount = body.amount.to_minor(body.currency)?;
    let stored = state
        .payments
        .authorize_order(body.order_id, amount, source)
        .await?;
    Ok(Json(Seed004Authorization {
        authorized: was_authorized(stored.payment.status),
        payment_id: stored.payment.payment_id,
    }))
}
