//! The payment service's HTTP API: the canonical payments API under
//! `/api/v1/payments`, seed 002's `POST /payments` and `PUT /payments/{id}/confirm|refund`
//! ([`seed002`]) and seed 004's `POST /api/v1/payments/authorize` ([`seed004`]).
//!
//! Who may call which route is the access table ([`access`]): customers may only read
//! their own payments; changes need an admin, or the order service's token to charge
//! and refund. On the seeds' routes ([`seed_caller`]) an admin acts on the orders'
//! payments, a caller without an account only on the seeds' own ([`Source::Seed`]),
//! and a customer changes nothing.

pub mod access;
pub mod seed002;
pub mod seed004;

use axum::extract::State;
use axum::http::StatusCode;
use sales_contracts::Currency;
use sales_contracts::Money;
use sales_contracts::api::ErrorResponse;
use sales_contracts::api::payments::{ChargeOrder, Payment, PaymentStatus};
use sales_platform::identity::Caller;
use sales_platform::identity::caller::Principal;
use sales_platform::listing::Page;
use sales_platform::{ApiError, Json, Path, Query};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::PaymentError;
use crate::payments::{Payments, Reach, Source, Stored};

#[derive(Clone)]
pub struct AppState {
    pub payments: Payments,
    /// The currency of seed 002's amounts, which name none.
    pub default_currency: Currency,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Payment service",
        description = "Payments, one per order, through a simulated authorizer (no money moves): \
            an amount at or above `DECLINE_AT` (1000 by default, in major units of any currency) \
            is declined.\n\n\
            Statuses: pending -> authorized | declined; authorized -> confirmed (captured); \
            confirmed -> refunded. Making a payment for an order that has one returns it (200) \
            when the amount matches and is refused (409 `payment_exists`) when it differs.\n\n\
            Who may call what: `http/access.rs`. Customers may only read their own; changes \
            need an admin (or, to charge and refund, the order service's token)."
    ),
    components(schemas(ErrorResponse, PaymentStatus))
)]
struct ApiDoc;

pub fn router(state: AppState) -> OpenApiRouter {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(charge))
        .routes(routes!(create_payment, list_payments))
        .routes(routes!(get_payment))
        .routes(routes!(payment_of_order))
        .routes(routes!(authorize))
        .routes(routes!(confirm))
        .routes(routes!(refund))
        .routes(routes!(seed004::authorize))
        .routes(routes!(seed002::create_payment))
        .routes(routes!(seed002::confirm_payment))
        .routes(routes!(seed002::refund_payment))
        .with_state(state)
}

/// Who calls a seed's route, for the payment service.
#[derive(Clone, Copy, Debug)]
pub enum SeedCaller<'a> {
    /// An administrator: acts on the orders' own payments, as on the canonical routes.
    Admin,
    /// Someone without an account, while the seeds' routes are open: makes and finds
    /// the seeds' own payments ([`Source::Seed`]), and reaches no other.
    WithoutAccount(&'a Caller),
}

impl<'a> SeedCaller<'a> {
    /// Where this caller makes payments and finds them by order id.
    pub fn source(self) -> Source {
        match self {
            SeedCaller::Admin => Source::Canonical,
            SeedCaller::WithoutAccount(_) => Source::Seed,
        }
    }

    /// Which payments this caller may act on by id.
    pub fn reach(self) -> Reach<'a> {
        match self {
            SeedCaller::Admin => Reach::All,
            SeedCaller::WithoutAccount(caller) => Reach::Seed(caller),
        }
    }
}

/// The caller of a seed's route that changes payments. A customer may only read
/// payments (the canonical routes; the order service pays their orders): 403.
pub fn seed_caller(caller: &Caller) -> Result<SeedCaller<'_>, PaymentError> {
    match caller.principal {
        Principal::Admin(_) => Ok(SeedCaller::Admin),
        // The access layer lets an anonymous caller in only while the seeds' routes
        // are open; checked again here so these rights never outlive that.
        Principal::Anonymous if caller.seed_compat => Ok(SeedCaller::WithoutAccount(caller)),
        _ => Err(PaymentError::Forbidden(
            "customers may only read payments: through the seeds' routes, only admins \
             and callers without an account (while those routes are open) change them",
        )),
    }
}

fn created_or_found(stored: Stored) -> (StatusCode, Json<Payment>) {
    let status = if stored.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(stored.payment))
}

/// Charge an order: authorize and capture in one step. The payment ends `confirmed`,
/// or `declined` (with `decline_reason`) when the authorizer declines. Charging the
/// same order again returns its payment (200), so callers may retry.
#[utoipa::path(post, path = "/api/v1/payments/charge", tag = "payments", request_body = ChargeOrder,
    responses((status = 201, description = "Charged: confirmed or declined", body = Payment),
               (status = 200, description = "The order's payment, made earlier", body = Payment),
               (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
               (status = 409, description = "The order has a payment for another amount", body = ErrorResponse)))]
async fn charge(
    State(state): State<AppState>,
    Json(body): Json<ChargeOrder>,
) -> Result<(StatusCode, Json<Payment>), PaymentError> {
    let stored = state
        .payments
        .charge(body.order_id, body.customer_id, body.amount)
        .await?;
    Ok(created_or_found(stored))
}

/// A payment to open for an order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePayment {
    #[schema(example = 1, minimum = 1)]
    pub order_id: i64,
    /// Integer minor units, at least 1: `{"amount": 20050, "currency": "USD"}` is 200.50 USD.
    #[schema(schema_with = sales_contracts::money::request_schemas::positive_money)]
    pub amount: Money,
}

/// Open a `pending` payment for an order. Opening one again for the same order returns
/// it (200) when the amount is the same.
#[utoipa::path(post, path = "/api/v1/payments", tag = "payments", request_body = CreatePayment,
    responses((status = 201, description = "Opened", body = Payment),
               (status = 200, description = "The order's payment, made earlier", body = Payment),
               (status = 400, body = ErrorResponse), (status = 403, body = ErrorResponse),
               (status = 409, description = "The order has a payment for another amount", body = ErrorResponse)))]
async fn create_payment(
    State(state): State<AppState>,
    Json(body): Json<CreatePayment>,
) -> Result<(StatusCode, Json<Payment>), PaymentError> {
    let stored = state
        .payments
        .open(body.order_id, body.amount, Source::Canonical)
        .await?;
    Ok(created_or_found(stored))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PaymentFilter {
    /// Only the payment of this order.
    #[serde(default, deserialize_with = "sales_platform::listing::whole_number")]
    order_id: Option<i64>,
}

/// List payments, oldest first; `?order_id=` finds an order's payment. A customer
/// sees only the payments of their own orders.
#[utoipa::path(get, path = "/api/v1/payments", tag = "payments", params(PaymentFilter, Page),
    responses((status = 200, body = [Payment]), (status = 400, body = ErrorResponse)))]
async fn list_payments(
    State(state): State<AppState>,
    caller: Caller,
    Query(filter): Query<PaymentFilter>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<Payment>>, ApiError> {
    let (limit, offset) = page.bounds()?;
    Ok(Json(
        state
            .payments
            .list(filter.order_id, &caller, limit, offset)
            .await?,
    ))
}

/// One payment. A customer sees only the payments of their own orders (another's is
/// a 404).
#[utoipa::path(get, path = "/api/v1/payments/{id}", tag = "payments",
    params(("id" = i64, Path, description = "The payment id")),
    responses((status = 200, body = Payment), (status = 400, body = ErrorResponse),
               (status = 404, body = ErrorResponse)))]
async fn get_payment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Payment>, PaymentError> {
    Ok(Json(state.payments.get(id, &caller).await?))
}

/// The order's own payment (not the seeds' payments under the same order id): what
/// the order service asks when it settles an order whose charge it never heard back
/// from. Admins and the order service only.
#[utoipa::path(get, path = "/api/v1/payments/orders/{order_id}", tag = "payments",
    params(("order_id" = i64, Path, minimum = 1, description = "The order id")),
    responses((status = 200, body = Payment), (status = 400, body = ErrorResponse),
               (status = 403, body = ErrorResponse),
               (status = 404, description = "The order has no payment", body = ErrorResponse)))]
async fn payment_of_order(
    State(state): State<AppState>,
    Path(order_id): Path<i64>,
) -> Result<Json<Payment>, ApiError> {
    if order_id < 1 {
        return Err(ApiError::validation(format!(
            "order_id must be a positive integer, got {order_id}"
        )));
    }
    match state.payments.of_order(order_id).await? {
        Some(payment) => Ok(Json(payment)),
        None => Err(ApiError::not_found(format!(
            "order {order_id} has no payment"
        ))),
    }
}

/// Authorize a pending payment: `authorized`, or `declined` (with `decline_reason`)
/// when the authorizer declines.
#[utoipa::path(post, path = "/api/v1/payments/{id}/authorize", tag = "payments",
    params(("id" = i64, Path, description = "The payment id")),
    responses((status = 200, description = "Authorized or declined", body = Payment),
               (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
               (status = 409, description = "Not pending", body = ErrorResponse)))]
async fn authorize(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Payment>, PaymentError> {
    Ok(Json(state.payments.authorize(id).await?))
}

/// Confirm (capture) an authorized payment. A pending payment is authorized first and
/// ends `declined` if the authorizer declines.
#[utoipa::path(post, path = "/api/v1/payments/{id}/confirm", tag = "payments",
    params(("id" = i64, Path, description = "The payment id")),
    responses((status = 200, description = "Confirmed, or declined by the authorizer", body = Payment),
               (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse),
               (status = 409, description = "Declined, confirmed or refunded already", body = ErrorResponse)))]
async fn confirm(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Payment>, PaymentError> {
    Ok(Json(state.payments.confirm(id, Reach::All, false).await?))
}

/// Refund a confirmed payment. Admins and the order service only.
#[utoipa::path(post, path = "/api/v1/payments/{id}/refund", tag = "payments",
    params(("id" = i64, Path, description = "The payment id")),
    responses((status = 200, description = "Refunded", body = Payment),
               (status = 403, description = "Customers may not refund", body = ErrorResponse),
               (status = 404, body = ErrorResponse),
               (status = 409, description = "Not confirmed", body = ErrorResponse)))]
async fn refund(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Payment>, PaymentError> {
    Ok(Json(state.payments.refund(id, Reach::All, false).await?))
}
