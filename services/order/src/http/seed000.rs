//! Seed 000's order routes, with its request and answer shapes. Seed 000's code
//! serves `/orders/orderkafka` and `/orders/paidkafka` beside the documented routes
//! (seed 001's Kafka variants); they behave the same. Like seed 000's, they need a
//! signed-in customer.
//!
//! - `POST /orders/order {"items": [{"product_id", "quantity"}]}` ->
//!   `{"success": true, "data": {"order_id", "message"}, "error_message": null}`;
//!   when a product is not available: `{"success": false, "data": null,
//!   "error_message": "Product is not available: ..."}` (409) and no order.
//!   `product_id` may be a string of digits (`"48"`): seed 000's OpenAPI document
//!   types it as a string.
//! - `POST /orders/paid {"order_id"}` -> `{"success": true, "data": {"order_id", "message"}}`;
//!   only the order's owner may pay.
//!
//! Every failure keeps the envelope, with the status the canonical API would use and
//! the canonical error (`{"code", "message", "details"?}`) beside it as `error`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sales_contracts::api::ErrorBody;
use sales_platform::identity::Caller;
use sales_platform::{ApiError, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{IdempotencyKeyHeader, ProductIdText, idempotency_key};
use crate::claims::Placer;
use crate::create_order::{PlaceOrder, Placed, RequestedItem, place_order};
use crate::error::retry_after;
use crate::{OrderContext, pay_order as pay};

/// Seed 000's answer envelope. A failure carries the canonical API's error beside
/// seed 000's `error_message` (as `GET /api/v1/orders/{id}` carries seed 004's
/// `detail` beside it): its `code` tells a refusal of the request (`validation_failed`)
/// from the shop's (`unknown_items`, `product_unavailable`, `idempotency_key_reused`...).
#[derive(Debug, Serialize, ToSchema)]
pub struct Seed000Answer {
    success: bool,
    data: Option<Seed000OrderData>,
    error_message: Option<String>,
    /// On a failure: the canonical error (`code`, `message`, `details`).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Seed000OrderData {
    order_id: i64,
    message: String,
}

fn ok(status: StatusCode, order_id: i64, message: String) -> Response {
    (
        status,
        axum::Json(Seed000Answer {
            success: true,
            data: Some(Seed000OrderData { order_id, message }),
            error_message: None,
            error: None,
        }),
    )
        .into_response()
}

/// Any error in seed 000's envelope, with the status the canonical API would use.
fn failed(err: impl Into<ApiError>) -> Response {
    let err = err.into();
    let wait = retry_after(&err.code);
    let mut response = (
        err.status,
        axum::Json(Seed000Answer {
            success: false,
            data: None,
            error: Some(err.body().error),
            error_message: Some(err.message),
        }),
    )
        .into_response();
    if let Some(wait) = wait {
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static(wait),
        );
    }
    response
}

/// One product and how many of it; `product_id` a number or a string of digits.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Seed000Item {
    product_id: ProductIdText,
    /// Units: 1 to 10000.
    #[schema(example = 2, minimum = 1, maximum = 10000)]
    quantity: i32,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Seed000CreateOrder {
    /// 1 to 100 lines; lines of the same product are added up.
    #[schema(min_items = 1, max_items = 100)]
    items: Vec<Seed000Item>,
}

/// Seed 000: place an order. It waits for payment (unpaid) until paid or cancelled.
#[utoipa::path(post, path = "/orders/order", tag = "seed 000", request_body = Seed000CreateOrder,
    params(IdempotencyKeyHeader),
    responses((status = 201, body = Seed000Answer),
               (status = 200, description = "Placed earlier with the same key", body = Seed000Answer),
               (status = 409, description = "Product is not available (no order), at catalogue prices the total is too large or in more than one currency, too many unpaid orders or reserved units, or the key's first request is still in progress", body = Seed000Answer),
               (status = 400, body = Seed000Answer),
               (status = 422, description = "A product the catalogue does not list, or the key used for another request", body = Seed000Answer),
               (status = 503, body = Seed000Answer)))]
pub async fn create_order(
    State(ctx): State<OrderContext>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<Seed000CreateOrder>, ApiError>,
) -> Response {
    place(&ctx, &caller, &headers, body).await
}

/// Seed 000's code: `POST /orders/order`, by the name of its Kafka variant (seed 001).
#[utoipa::path(post, path = "/orders/orderkafka", tag = "seed 000", request_body = Seed000CreateOrder,
    params(IdempotencyKeyHeader),
    responses((status = 201, body = Seed000Answer),
               (status = 200, description = "Placed earlier with the same key", body = Seed000Answer),
               (status = 409, description = "Product is not available (no order), at catalogue prices the total is too large or in more than one currency, too many unpaid orders or reserved units, or the key's first request is still in progress", body = Seed000Answer),
               (status = 400, body = Seed000Answer),
               (status = 422, description = "A product the catalogue does not list, or the key used for another request", body = Seed000Answer),
               (status = 503, body = Seed000Answer)))]
pub async fn create_order_kafka(
    State(ctx): State<OrderContext>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<Seed000CreateOrder>, ApiError>,
) -> Response {
    place(&ctx, &caller, &headers, body).await
}

async fn place(
    ctx: &OrderContext,
    caller: &Caller,
    headers: &HeaderMap,
    body: Result<Json<Seed000CreateOrder>, ApiError>,
) -> Response {
    let body = match body {
        Ok(Json(body)) => body,
        Err(e) => return failed(e),
    };
    let key = match idempotency_key(headers, None) {
        Ok(k) => k,
        Err(e) => return failed(e),
    };
    let mut items = Vec::with_capacity(body.items.len());
    for item in &body.items {
        match item.product_id.id() {
            Ok(id) => items.push(RequestedItem::product(id, item.quantity)),
            Err(e) => return failed(e),
        }
    }
    let placed = place_order(
        ctx,
        PlaceOrder {
            idempotency_key: key,
            ..PlaceOrder::new(Placer::of(caller), items)
        },
    )
    .await;
    match placed {
        Ok(Placed::New(order)) => ok(
            StatusCode::CREATED,
            order.order_id,
            format!("Order {} created; waiting for payment", order.order_id),
        ),
        Ok(Placed::Replayed(order)) => ok(
            StatusCode::OK,
            order.order_id,
            format!("Order {} was already created", order.order_id),
        ),
        Err(e) => failed(e),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Seed000PayOrder {
    order_id: i64,
}

/// Seed 000: mark an order paid (only its owner may).
#[utoipa::path(post, path = "/orders/paid", tag = "seed 000", request_body = Seed000PayOrder,
    responses((status = 200, body = Seed000Answer),
               (status = 400, body = Seed000Answer),
               (status = 402, description = "Payment declined: the order failed", body = Seed000Answer),
               (status = 404, body = Seed000Answer),
               (status = 409, description = "Not waiting for payment", body = Seed000Answer),
               (status = 503, body = Seed000Answer)))]
pub async fn pay_order(
    State(ctx): State<OrderContext>,
    caller: Caller,
    body: Result<Json<Seed000PayOrder>, ApiError>,
) -> Response {
    pay_now(&ctx, &caller, body).await
}

/// Seed 000's code: `POST /orders/paid`, by the name of its Kafka variant (seed 001).
#[utoipa::path(post, path = "/orders/paidkafka", tag = "seed 000", request_body = Seed000PayOrder,
    responses((status = 200, body = Seed000Answer),
               (status = 400, body = Seed000Answer),
               (status = 402, description = "Payment declined: the order failed", body = Seed000Answer),
               (status = 404, body = Seed000Answer),
               (status = 409, description = "Not waiting for payment", body = Seed000Answer),
               (status = 503, body = Seed000Answer)))]
pub async fn pay_order_kafka(
    State(ctx): State<OrderContext>,
    caller: Caller,
    body: Result<Json<Seed000PayOrder>, ApiError>,
) -> Response {
    pay_now(&ctx, &caller, body).await
}

async fn pay_now(
    ctx: &OrderContext,
    caller: &Caller,
    body: Result<Json<Seed000PayOrder>, ApiError>,
) -> Response {
    let body = match body {
        Ok(Json(body)) => body,
        Err(e) => return failed(e),
    };
    match pay::pay_order(ctx, caller, body.order_id).await {
        Ok(order) => ok(
            StatusCode::OK,
            order.order_id,
            format!("Order {} paid", order.order_id),
        ),
        Err(e) => failed(e),
    }
}
