//! The order service's HTTP API: the canonical orders API under `/api/v1/orders`
//! and seed 000's `POST /orders/order` and `POST /orders/paid` ([`seed000`]).

pub mod seed000;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use sales_contracts::api::ErrorResponse;
use sales_platform::caller::Caller;
use sales_platform::listing::Page;
use sales_platform::{ApiError, Json, Path, Query};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::create_order::{PlaceOrder, Placed, RequestedItem, place_order};
use crate::error::OrderError;
use crate::order_status::OrderStatus;
use crate::orders::{self, Order, OrderFilter};
use crate::{OrderContext, cancel_order, pay_order};

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Order service",
        description = "Orders: place (idempotent), pay, cancel; unpaid orders time out.\n\n\
            Statuses: PENDING (placed, waiting for payment; seed 000's \"unpaid\"), CONFIRMED \
            (paid), FAILED (payment declined), CANCELLED, SHIPPED, DELIVERED."
    ),
    components(schemas(ErrorResponse))
)]
struct ApiDoc;

pub fn router(ctx: OrderContext) -> OpenApiRouter {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(create_order, list_orders))
        .routes(routes!(get_order))
        .routes(routes!(pay))
        .routes(routes!(cancel))
        .routes(routes!(seed000::create_order))
        .routes(routes!(seed000::pay_order))
        .with_state(ctx)
}

/// One product and how many of it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    #[schema(example = 1)]
    pub product_id: i64,
    #[schema(example = 2)]
    pub quantity: i32,
}

impl From<&ItemRequest> for RequestedItem {
    fn from(i: &ItemRequest) -> Self {
        RequestedItem {
            product_id: i.product_id,
            quantity: i.quantity,
        }
    }
}

/// An order to place.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    pub items: Vec<ItemRequest>,
    /// Same as the `Idempotency-Key` header: a retry with the same key returns the
    /// same order instead of placing another.
    pub idempotency_key: Option<String>,
}

/// The idempotency key from the header or the body (they must agree if both are given).
pub fn idempotency_key(
    headers: &HeaderMap,
    body_key: Option<String>,
) -> Result<Option<String>, ApiError> {
    let header = match headers.get(IDEMPOTENCY_KEY_HEADER) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::validation("Idempotency-Key must be visible ASCII"))?
                .to_owned(),
        ),
    };
    match (header, body_key) {
        (Some(h), Some(b)) if h != b => Err(ApiError::validation(
            "the Idempotency-Key header and idempotency_key in the body differ",
        )),
        (h, b) => Ok(h.or(b)),
    }
}

/// Place an order: its stock is reserved at once; it waits for payment as `PENDING`.
/// With an `Idempotency-Key`, a repeat returns the first order (200) instead of a new one.
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    request_body = CreateOrderRequest,
    responses((status = 201, description = "Placed", body = Order),
               (status = 200, description = "Placed earlier with the same key", body = Order),
               (status = 400, body = ErrorResponse),
               (status = 404, description = "Unknown product", body = ErrorResponse),
               (status = 409, description = "Product is not available: no order was made", body = ErrorResponse),
               (status = 422, description = "Key already used for another request", body = ErrorResponse),
               (status = 503, description = "Catalogue or inventory unavailable", body = ErrorResponse)))]
async fn create_order(
    State(ctx): State<OrderContext>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<CreateOrderRequest>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    let key = idempotency_key(&headers, body.idempotency_key)?;
    let placed = place_order(
        &ctx,
        PlaceOrder {
            customer_id: caller.customer_id,
            items: body.items.iter().map(RequestedItem::from).collect(),
            idempotency_key: key,
        },
    )
    .await?;
    Ok(match placed {
        Placed::New(order) => (StatusCode::CREATED, Json(order)),
        Placed::Replayed(order) => (StatusCode::OK, Json(order)),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    /// Only orders in this status (e.g. `PENDING`).
    status: Option<String>,
    /// Only orders containing this product.
    product_id: Option<i64>,
}

/// List orders, newest first. A customer sees only their own.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", params(OrderQuery, Page),
    responses((status = 200, body = [Order]), (status = 400, body = ErrorResponse)))]
async fn list_orders(
    State(ctx): State<OrderContext>,
    caller: Caller,
    Query(query): Query<OrderQuery>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<Order>>, ApiError> {
    let (limit, offset) = page.bounds()?;
    let status = query
        .status
        .as_deref()
        .map(|s| {
            OrderStatus::parse(s).ok_or_else(|| {
                ApiError::validation(format!(
                    "status must be one of PENDING, CONFIRMED, FAILED, CANCELLED, SHIPPED, DELIVERED; got {s:?}"
                ))
            })
        })
        .transpose()?;
    let filter = OrderFilter {
        customer_id: caller.listing_scope(),
        status,
        product_id: query.product_id,
    };
    let mut conn = ctx.pool.acquire().await?;
    Ok(Json(orders::list(&mut conn, &filter, limit, offset).await?))
}

/// One order. Another customer's order is a 404.
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders", params(("id" = i64, Path)),
    responses((status = 200, body = Order), (status = 404, body = ErrorResponse)))]
async fn get_order(
    State(ctx): State<OrderContext>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Order>, OrderError> {
    let mut conn = ctx.pool.acquire().await?;
    let order = orders::load(&mut conn, id).await?;
    if !caller.may_see(order.customer_id) {
        return Err(OrderError::NotFound(id));
    }
    Ok(Json(order))
}

/// Pay a `PENDING` order: it becomes `CONFIRMED` and its stock is sold.
#[utoipa::path(post, path = "/api/v1/orders/{id}/pay", tag = "orders", params(("id" = i64, Path)),
    responses((status = 200, body = Order), (status = 404, body = ErrorResponse),
               (status = 409, description = "Not PENDING", body = ErrorResponse)))]
async fn pay(
    State(ctx): State<OrderContext>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Order>, OrderError> {
    Ok(Json(pay_order::pay_order(&ctx, &caller, id).await?))
}

/// Cancel a `PENDING` order: its stock goes back.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "orders", params(("id" = i64, Path)),
    responses((status = 200, body = Order), (status = 404, body = ErrorResponse),
               (status = 409, description = "Not PENDING", body = ErrorResponse)))]
async fn cancel(
    State(ctx): State<OrderContext>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Order>, OrderError> {
    Ok(Json(cancel_order::cancel_order(&ctx, &caller, id).await?))
}
