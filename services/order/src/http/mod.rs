//! The order service's HTTP API: the canonical orders API under `/api/v1/orders`
//! (which is also seed 004's, with its trailing-slash paths and one-call form),
//! seed 000's `POST /orders/order` and `POST /orders/paid` ([`seed000`]), and seed
//! 002/003's `POST /orders` and `GET /orders/product/{id}` ([`seed003`]).

pub mod access;
pub mod seed000;
pub mod seed003;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use sales_contracts::api::ErrorResponse;
use sales_contracts::{Currency, DecimalAmount};
use sales_platform::identity::Caller;
use sales_platform::listing::Page;
use sales_platform::{ApiError, Json, Path, Query};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::create_order::{ItemRef, PlaceOrder, Placed, RequestedItem, place_order};
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
        .routes(routes!(create_order_seed004, list_orders_seed004))
        .routes(routes!(get_order))
        .routes(routes!(pay))
        .routes(routes!(cancel))
        .routes(routes!(seed000::create_order))
        .routes(routes!(seed000::pay_order))
        .routes(routes!(seed003::create_order))
        .routes(routes!(seed003::orders_of_product))
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
        RequestedItem::product(i.product_id, i.quantity)
    }
}

/// An order to place: `items` by catalogue product, or (seed 004) one `item_sku`
/// with its `quantity`. With `amount` and `currency` the order is paid at once
/// and answered `CONFIRMED` or `FAILED` (seed 004's one-call order).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    /// Items by catalogue product id.
    pub items: Option<Vec<ItemRequest>>,
    /// Seed 004: one item by SKU (with `quantity`).
    #[schema(example = "SKU-ABC")]
    pub item_sku: Option<String>,
    /// Seed 004: units of `item_sku`.
    pub quantity: Option<i32>,
    /// Pay this much now, in major units (`200.50`); with `currency`.
    pub amount: Option<DecimalAmount>,
    pub currency: Option<Currency>,
    /// Same as the `Idempotency-Key` header: a retry with the same key returns the
    /// same order instead of placing another.
    pub idempotency_key: Option<String>,
}

impl CreateOrderRequest {
    fn into_place_order(
        self,
        customer_id: Option<i64>,
        headers: &HeaderMap,
    ) -> Result<PlaceOrder, ApiError> {
        let items = match (self.items, self.item_sku, self.quantity) {
            (Some(items), None, None) => items.iter().map(RequestedItem::from).collect(),
            (None, Some(sku), Some(quantity)) => vec![RequestedItem {
                item: ItemRef::Sku(sku),
                quantity,
            }],
            (None, Some(_), None) => {
                return Err(ApiError::validation("item_sku needs a quantity"));
            }
            (Some(_), _, _) => {
                return Err(ApiError::validation(
                    "give either items or item_sku with quantity, not both",
                ));
            }
            (None, None, _) => {
                return Err(ApiError::validation(
                    "missing field `items` (or `item_sku` with `quantity`)",
                ));
            }
        };
        let payment = match (self.amount, self.currency) {
            (Some(amount), Some(currency)) => Some(
                amount
                    .to_minor(currency)
                    .map_err(|e| ApiError::validation(e.to_string()))?,
            ),
            (None, None) => None,
            (Some(_), None) => return Err(ApiError::validation("amount needs a currency")),
            (None, Some(_)) => return Err(ApiError::validation("currency needs an amount")),
        };
        Ok(PlaceOrder {
            customer_id,
            items,
            idempotency_key: idempotency_key(headers, self.idempotency_key)?,
            payment,
        })
    }
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

async fn place(
    ctx: &OrderContext,
    caller: &Caller,
    headers: &HeaderMap,
    body: CreateOrderRequest,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    let request = body.into_place_order(caller.customer_id(), headers)?;
    Ok(match place_order(ctx, request).await? {
        Placed::New(order) => (StatusCode::CREATED, Json(order)),
        Placed::Replayed(order) => (StatusCode::OK, Json(order)),
    })
}

/// Place an order: its stock is reserved at once; it waits for payment as `PENDING`
/// (or, with `amount` and `currency`, is paid at once: `CONFIRMED` or `FAILED`).
/// With an `Idempotency-Key`, a repeat returns the first order (200) instead of a new one.
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    request_body = CreateOrderRequest,
    responses((status = 201, description = "Placed", body = Order),
               (status = 200, description = "Placed earlier with the same key", body = Order),
               (status = 400, body = ErrorResponse),
               (status = 404, description = "Unknown product", body = ErrorResponse),
               (status = 409, description = "Product is not available (no order was made), or the amount does not match the total", body = ErrorResponse),
               (status = 422, description = "Key already used for another request", body = ErrorResponse),
               (status = 503, description = "Catalogue, inventory or payments unavailable", body = ErrorResponse)))]
async fn create_order(
    State(ctx): State<OrderContext>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<CreateOrderRequest>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    place(&ctx, &caller, &headers, body).await
}

/// Seed 004's path for placing an order (the same as `POST /api/v1/orders`).
#[utoipa::path(post, path = "/api/v1/orders/", tag = "seed 004",
    request_body = CreateOrderRequest,
    responses((status = 201, body = Order), (status = 200, body = Order),
               (status = 400, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
async fn create_order_seed004(
    State(ctx): State<OrderContext>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<CreateOrderRequest>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    place(&ctx, &caller, &headers, body).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    /// Only orders in this status (e.g. `PENDING`).
    status: Option<String>,
    /// Only orders containing this product.
    product_id: Option<i64>,
}

async fn list(
    ctx: &OrderContext,
    caller: &Caller,
    query: OrderQuery,
    page: Page,
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
        owner: caller.owner_scope(),
        status,
        product_id: query.product_id,
    };
    let mut conn = ctx.pool.acquire().await?;
    Ok(Json(orders::list(&mut conn, &filter, limit, offset).await?))
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
    list(&ctx, &caller, query, page).await
}

/// Seed 004's path for listing orders (the same as `GET /api/v1/orders`).
#[utoipa::path(get, path = "/api/v1/orders/", tag = "seed 004", params(OrderQuery, Page),
    responses((status = 200, body = [Order]), (status = 400, body = ErrorResponse)))]
async fn list_orders_seed004(
    State(ctx): State<OrderContext>,
    caller: Caller,
    Query(query): Query<OrderQuery>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<Order>>, ApiError> {
    list(&ctx, &caller, query, page).await
}

/// One order. Another customer's order is a 404 "Order not found".
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

/// Pay a `PENDING` order through the payment service: it becomes `CONFIRMED` and its
/// stock is sold, or — payment declined — `FAILED` (402) and its stock goes back.
#[utoipa::path(post, path = "/api/v1/orders/{id}/pay", tag = "orders", params(("id" = i64, Path)),
    responses((status = 200, body = Order), (status = 402, description = "Payment declined: the order failed", body = ErrorResponse),
               (status = 404, body = ErrorResponse),
               (status = 409, description = "Not PENDING", body = ErrorResponse),
               (status = 503, description = "Payments unavailable", body = ErrorResponse)))]
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
