//! Seed 000's order routes, with its request and answer shapes:
//!
//! - `POST /orders/order {"items": [{"product_id", "quantity"}]}` ->
//!   `{"success": true, "data": {"order_id", "message"}, "error_message": null}`;
//!   when a product is not available: `{"success": false, "data": null,
//!   "error_message": "Product is not available: ..."}` (409) and no order.
//! - `POST /orders/paid {"order_id"}` -> `{"success": true, "data": {"order_id", "message"}}`;
//!   only the order's owner may pay.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sales_platform::identity::Caller;
use sales_platform::{ApiError, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ItemRequest, idempotency_key};
use crate::create_order::{PlaceOrder, Placed, RequestedItem, place_order};
use crate::{OrderContext, pay_order as pay};

/// Seed 000's answer envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct Seed000Answer {
    success: bool,
    data: Option<Seed000OrderData>,
    error_message: Option<String>,
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
        }),
    )
        .into_response()
}

/// Any error in seed 000's envelope, with the status the canonical API would use.
fn failed(err: impl Into<ApiError>) -> Response {
    let err = err.into();
    (
        err.status,
        axum::Json(Seed000Answer {
            success: false,
            data: None,
            error_message: Some(err.message),
        }),
    )
        .into_response()
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Seed000CreateOrder {
    items: Vec<ItemRequest>,
}

/// Seed 000: place an order. It waits for payment (unpaid) until paid or cancelled.
#[utoipa::path(post, path = "/orders/order", tag = "seed 000", request_body = Seed000CreateOrder,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = Seed000Answer),
               (status = 409, description = "Product is not available; no order", body = Seed000Answer),
               (status = 400, body = Seed000Answer), (status = 404, body = Seed000Answer)))]
pub async fn create_order(
    State(ctx): State<OrderContext>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<Seed000CreateOrder>, ApiError>,
) -> Response {
    let body = match body {
        Ok(Json(body)) => body,
        Err(e) => return failed(e),
    };
    let key = match idempotency_key(&headers, None) {
        Ok(k) => k,
        Err(e) => return failed(e),
    };
    let placed = place_order(
        &ctx,
        PlaceOrder {
            customer_id: caller.customer_id(),
            items: body.items.iter().map(RequestedItem::from).collect(),
            idempotency_key: key,
            payment: None,
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

/// Seed 000: mark an order paid.
#[utoipa::path(post, path = "/orders/paid", tag = "seed 000", request_body = Seed000PayOrder,
    responses((status = 200, body = Seed000Answer),
               (status = 404, body = Seed000Answer),
               (status = 409, description = "Not waiting for payment", body = Seed000Answer)))]
pub async fn pay_order(
    State(ctx): State<OrderContext>,
    caller: Caller,
    body: Result<Json<Seed000PayOrder>, ApiError>,
) -> Response {
    let body = match body {
        Ok(Json(body)) => body,
        Err(e) => return failed(e),
    };
    match pay::pay_order(&ctx, &caller, body.order_id).await {
        Ok(order) => ok(
            StatusCode::OK,
            order.order_id,
            format!("Order {} paid", order.order_id),
        ),
        Err(e) => failed(e),
    }
}
