//! The order service's HTTP API: the canonical orders API under `/api/v1/orders`;
//! seed 004's trailing-slash routes with its one-call order and FastAPI's answers
//! ([`seed004`]; `GET /api/v1/orders/{id}` is both APIs'); seed 000's
//! `POST /orders/order` and `POST /orders/paid`, and its code's `/orders/orderkafka`
//! and `/orders/paidkafka` ([`seed000`]); seed 002/003's `POST /orders` and
//! `GET /orders/product/{id}` ([`seed003`]).

pub mod access;
pub mod schemas;
pub mod seed000;
pub mod seed003;
pub mod seed004;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sales_contracts::api::ErrorResponse;
use sales_contracts::{Currency, DecimalAmount};
use sales_platform::identity::Caller;
use sales_platform::listing::Page;
use sales_platform::{ApiError, Json, Path, Query};
use serde::Deserialize;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Required, Schema};
use utoipa::{IntoParams, OpenApi, PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::claims::Placer;
use crate::create_order::{ItemRef, PlaceOrder, Placed, Pricing, RequestedItem, place_order};
use crate::error::{HttpError, OrderError};
use crate::order_status::OrderStatus;
use crate::orders::{self, Order, OrderFilter};
use crate::{OrderContext, cancel_order, pay_order};

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// The header's name as the document spells it.
const IDEMPOTENCY_KEY_HEADER_NAME: &str = "Idempotency-Key";

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
    routes().with_state(ctx)
}

/// The routes and their document, before the state is given.
fn routes() -> OpenApiRouter<OrderContext> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(create_order, list_orders))
        .routes(routes!(seed004::create_order, seed004::list_orders))
        .routes(routes!(get_order))
        .routes(routes!(pay))
        .routes(routes!(cancel))
        .routes(routes!(seed000::create_order))
        .routes(routes!(seed000::create_order_kafka))
        .routes(routes!(seed000::pay_order))
        .routes(routes!(seed000::pay_order_kafka))
        .routes(routes!(seed003::create_order))
        .routes(routes!(seed003::orders_of_product))
}

/// One product and how many of it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    /// A catalogue product id.
    #[schema(example = 1, minimum = 1)]
    pub product_id: i64,
    /// Units: 1 to 10000.
    #[schema(example = 2, minimum = 1, maximum = 10000)]
    pub quantity: i32,
}

impl From<&ItemRequest> for RequestedItem {
    fn from(i: &ItemRequest) -> Self {
        RequestedItem::product(i.product_id, i.quantity)
    }
}

/// A product id as a number or as a string of digits (seed 000's OpenAPI document
/// types it as a string, seed 003 sends `"1"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ProductIdText {
    Number(i64),
    Text(String),
}

impl PartialSchema for ProductIdText {
    fn schema() -> RefOr<Schema> {
        schemas::product_id_text()
    }
}

impl ToSchema for ProductIdText {}

/// The `Idempotency-Key` header of the routes that place orders.
pub struct IdempotencyKeyHeader;

impl IntoParams for IdempotencyKeyHeader {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(schemas::MAX_KEY_CHARS))
            .pattern(Some(schemas::KEY_HEADER_PATTERN));
        vec![
            ParameterBuilder::new()
                .name(IDEMPOTENCY_KEY_HEADER_NAME)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Makes retries safe: a repeat with the same key (yours: another \
                     customer's same key is another order) returns the first order instead \
                     of placing another. 1 to 255 visible ASCII characters.",
                ))
                .schema(Some(schema))
                .build(),
        ]
    }
}

impl ProductIdText {
    pub fn id(&self) -> Result<i64, ApiError> {
        match self {
            ProductIdText::Number(n) => Ok(*n),
            ProductIdText::Text(t) => t.trim().parse().map_err(|_| {
                ApiError::validation(format!("product_id must be an integer, got {t:?}"))
            }),
        }
    }
}

/// An order to place: `items` by catalogue product, or one `item_sku` with its
/// `quantity`; every line at its catalogue price. With `amount` and `currency` the
/// order is paid at once and answered `CONFIRMED` or `FAILED`; the amount must be
/// the total at catalogue prices. Its schema: [`schemas::create_order_request`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    /// Items by catalogue product id.
    pub items: Option<Vec<ItemRequest>>,
    /// Seed 004: one item by SKU (with `quantity`).
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

impl PartialSchema for CreateOrderRequest {
    fn schema() -> RefOr<Schema> {
        schemas::create_order_request()
    }
}

impl ToSchema for CreateOrderRequest {}

impl CreateOrderRequest {
    fn into_place_order(
        self,
        caller: &Caller,
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
            idempotency_key: idempotency_key(headers, self.idempotency_key)?,
            payment,
            pricing: Pricing::Catalogue,
            ..PlaceOrder::new(Placer::of(caller), items)
        })
    }
}

/// The idempotency key: the `Idempotency-Key` header's, or else the body's (seed
/// 004's `idempotency_key`, for clients that cannot set a header). With both, the
/// header's is the key, as the header is the standard place for it.
pub fn idempotency_key(
    headers: &HeaderMap,
    body_key: Option<String>,
) -> Result<Option<String>, ApiError> {
    match headers.get(IDEMPOTENCY_KEY_HEADER) {
        None => Ok(body_key),
        Some(v) => Ok(Some(
            v.to_str()
                .map_err(|_| ApiError::validation("Idempotency-Key must be visible ASCII"))?
                .to_owned(),
        )),
    }
}

/// Place an order: every line at its catalogue price (an item the catalogue does not
/// list is refused, 422); its stock is reserved at once; it waits for payment as
/// `PENDING` (or, with `amount` and `currency`, is paid at once: `CONFIRMED` or
/// `FAILED`). With an `Idempotency-Key` (yours: another customer's same key is
/// another order), a repeat returns the first order (200) instead of a new one; a
/// repeat while the first is still being placed waits for it briefly. A customer
/// has at most `MAX_UNPAID_ORDERS_PER_CUSTOMER` unpaid orders holding at most
/// `MAX_RESERVED_UNITS_PER_CUSTOMER` units at once (409: pay or cancel one).
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders",
    params(IdempotencyKeyHeader),
    request_body = CreateOrderRequest,
    responses((status = 201, description = "Placed", body = Order),
               (status = 200, description = "Placed earlier with the same key", body = Order),
               (status = 400, description = "Not a valid order (`validation_failed`, `malformed_json`)", body = ErrorResponse),
               (status = 409, description = "Product is not available (no order was made), the amount does not match the total, at catalogue prices the total is too large or in more than one currency, too many unpaid orders or reserved units, or the key's first request is still in progress (`Retry-After`)", body = ErrorResponse),
               (status = 422, description = "An item the catalogue does not list, or the key already used for another request", body = ErrorResponse),
               (status = 503, description = "Catalogue, inventory or payments unavailable", body = ErrorResponse)))]
async fn create_order(
    State(ctx): State<OrderContext>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<CreateOrderRequest>,
) -> Result<(StatusCode, Json<Order>), HttpError> {
    let request = body.into_place_order(&caller, &headers)?;
    Ok(match place_order(&ctx, request).await? {
        Placed::New(order) => (StatusCode::CREATED, Json(order)),
        Placed::Replayed(order) => (StatusCode::OK, Json(order)),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    /// Only orders in this status (e.g. `PENDING`; read without regard to case).
    #[param(value_type = Option<OrderStatus>)]
    pub status: Option<String>,
    /// Only orders containing this product.
    #[serde(default, deserialize_with = "sales_platform::listing::whole_number")]
    pub product_id: Option<i64>,
}

pub(crate) async fn list(
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

/// The canonical error body with seed 004's `detail` beside it: for a route both
/// APIs share (`GET /api/v1/orders/{id}`), so a client of either reads its own.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct SharedErrorResponse {
    pub error: sales_contracts::api::ErrorBody,
    /// Seed 004's (FastAPI's) message, e.g. `Order not found`.
    pub detail: String,
}

struct SharedError(ApiError);

impl IntoResponse for SharedError {
    fn into_response(self) -> Response {
        let err = self.0;
        let detail = if err.status == StatusCode::NOT_FOUND {
            "Order not found".to_owned()
        } else {
            err.message.clone()
        };
        let body = SharedErrorResponse {
            error: err.body().error,
            detail,
        };
        (err.status, axum::Json(body)).into_response()
    }
}

/// One order. Another customer's order is a 404 "Order not found" (as is, for a
/// caller without an account, any order placed with one). Errors carry seed 004's
/// `detail` beside the canonical `error`; a 400 is documented as the canonical error
/// only, as the gateway answers a path it refuses (`invalid_path`) without `detail`.
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders", params(("id" = i64, Path)),
    responses((status = 200, body = Order),
               (status = 400, description = "Not an order id (`invalid_path`); the service's answer carries `detail` too", body = ErrorResponse),
               (status = 404, body = SharedErrorResponse)))]
async fn get_order(
    State(ctx): State<OrderContext>,
    caller: Caller,
    id: Result<Path<i64>, ApiError>,
) -> Result<Json<Order>, SharedError> {
    let Path(id) = id.map_err(SharedError)?;
    let found = async {
        let mut conn = ctx.pool.acquire().await?;
        let order = orders::load(&mut conn, id).await?;
        if !caller.may_see(order.customer_id) {
            return Err(OrderError::NotFound(id));
        }
        Ok(order)
    };
    found
        .await
        .map(Json)
        .map_err(|e: OrderError| SharedError(e.into()))
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

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn the_header_is_the_key_and_the_body_stands_in_for_it() {
        let mut headers = HeaderMap::new();
        assert_eq!(idempotency_key(&headers, None).unwrap(), None);
        assert_eq!(
            idempotency_key(&headers, Some("body".into())).unwrap(),
            Some("body".into())
        );
        headers.insert(IDEMPOTENCY_KEY_HEADER, HeaderValue::from_static("header"));
        assert_eq!(
            idempotency_key(&headers, Some("body".into())).unwrap(),
            Some("header".into())
        );
        headers.insert(
            IDEMPOTENCY_KEY_HEADER,
            HeaderValue::from_bytes("caf\u{e9}".as_bytes()).unwrap(),
        );
        assert!(idempotency_key(&headers, None).is_err());
    }

    #[test]
    fn a_product_id_in_digits_is_read_as_the_document_spells_it() {
        // `schemas::PRODUCT_ID_TEXT_PATTERN`: optional leading zeros, then 1 to 18
        // significant digits, the first not 0.
        for (text, id) in [
            ("1", 1),
            ("0048", 48),
            ("999999999999999999", 999_999_999_999_999_999),
        ] {
            assert_eq!(ProductIdText::Text(text.into()).id().unwrap(), id);
        }
    }
}
