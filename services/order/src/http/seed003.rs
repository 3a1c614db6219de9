//! Seed 002's and seed 003's order routes, with their shapes:
//!
//! - `POST /orders {product_id, quantity}` (seed 003's early README; its code and
//!   later README say `productId`: both are accepted; either may be a string such as
//!   `"1"`) or `{customer_id, product_id, quantity}` (seed 002) -> 201 with the
//!   order row in both seeds' field names: `{id, productId, product_id,
//!   customer_id, quantity, totalPrice (price x quantity), status: "pending",
//!   createdAt, created_at}`; 400 on validation. Seed 002's `customer_id` is kept
//!   as stated and echoed, as the seed's own reference: the order belongs to the
//!   caller (nobody, without an account), never to the customer named.
//! - `GET /orders/product/{productId}`: the orders of a product, newest first, from
//!   the Redis cache when there (`orders:product:{id}`, seed 003), never stale after
//!   an order has changed.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use sales_contracts::DecimalAmount;
use sales_contracts::api::ErrorResponse;
use sales_platform::identity::{Caller, OwnerScope};
use sales_platform::listing::Page;
use sales_platform::{ApiError, Json, Path, Query};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{
    KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::{IdempotencyKeyHeader, ProductIdText, idempotency_key, schemas};
use crate::OrderContext;
use crate::claims::Placer;
use crate::create_order::{PlaceOrder, Placed, RequestedItem, place_order};
use crate::error::{HttpError, OrderError};
use crate::orders::{self, Order, OrderFilter};

/// Seed 002's or seed 003's order; its schema: [`legacy_create_order_schema`].
#[derive(Debug, Deserialize)]
pub struct LegacyCreateOrder {
    /// Seed 002's customer, as its client states it: kept and echoed as a reference.
    /// The order belongs to the caller (no one, without an account).
    customer_id: Option<i64>,
    /// Also accepted as `productId` (seed 003's code and later README).
    #[serde(alias = "productId")]
    product_id: ProductIdText,
    quantity: i32,
}

impl PartialSchema for LegacyCreateOrder {
    fn schema() -> RefOr<Schema> {
        legacy_create_order_schema()
    }
}

impl ToSchema for LegacyCreateOrder {}

/// `{customer_id?, product_id | productId, quantity}`: the product by either
/// spelling, not both (other members are ignored).
fn legacy_create_order_schema() -> RefOr<Schema> {
    let customer_id = ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(1))
        .description(Some(
            "Seed 002's customer, as its client states it: kept and echoed as a reference. \
             The order belongs to the caller (no one, without an account).",
        ))
        .build();
    let spelled = |name: &str| {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .title(Some(format!("With {name}")))
            .property("customer_id", customer_id.clone())
            .property("product_id", schemas::product_id_text())
            .property("productId", schemas::product_id_text())
            .property("quantity", schemas::quantity())
            .required(name)
            .required("quantity")
    };
    OneOfBuilder::new()
        .description(Some(
            "One product and how many of it, at its catalogue price: `product_id` (seed \
             002, seed 003's early README) or `productId` (seed 003's code and later \
             README), one of the two; either a number or a string of digits.",
        ))
        .item(spelled("product_id"))
        .item(spelled("productId"))
        .into()
}

/// An order as seed 002 and seed 003 showed it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LegacyOrderRow {
    id: i64,
    #[serde(rename = "productId")]
    product_id_camel: Option<i64>,
    product_id: Option<i64>,
    customer_id: Option<i64>,
    quantity: i32,
    /// Price x quantity, in major units.
    #[serde(rename = "totalPrice")]
    #[schema(value_type = f64)]
    total_price: DecimalAmount,
    currency: String,
    /// Lower case: `pending`, `confirmed`, ...
    status: String,
    #[serde(rename = "createdAt")]
    created_at_camel: DateTime<Utc>,
    created_at: DateTime<Utc>,
}

/// The row for `order`, showing the line of `product_id` (or its first line).
fn row(order: &Order, product_id: Option<i64>) -> LegacyOrderRow {
    let line = order
        .items
        .iter()
        .find(|l| product_id.is_some() && l.product_id == product_id)
        .or(order.items.first());
    LegacyOrderRow {
        id: order.order_id,
        product_id_camel: line.and_then(|l| l.product_id),
        product_id: line.and_then(|l| l.product_id),
        customer_id: order.stated_customer_id.or(order.customer_id),
        quantity: line.map(|l| l.quantity).unwrap_or_default(),
        total_price: order.amount.clone(),
        currency: order.currency.to_string(),
        status: order.status.as_str().to_lowercase(),
        created_at_camel: order.created_at,
        created_at: order.created_at,
    }
}

/// Seeds 002 and 003: place an order for one product, at its catalogue price (an
/// `Idempotency-Key` makes retries safe here too).
#[utoipa::path(post, path = "/orders", tag = "seed 002/003", request_body = LegacyCreateOrder,
    params(IdempotencyKeyHeader),
    responses((status = 201, body = LegacyOrderRow),
               (status = 200, description = "Placed earlier with the same key", body = LegacyOrderRow),
               (status = 400, body = ErrorResponse),
               (status = 409, description = "Not available, at catalogue prices the total is too large, too many unpaid orders or reserved units, or the key's first request is still in progress", body = ErrorResponse),
               (status = 422, description = "A product the catalogue does not list, or the key used for another request", body = ErrorResponse),
               (status = 503, body = ErrorResponse)))]
pub async fn create_order(
    State(ctx): State<OrderContext>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<LegacyCreateOrder>,
) -> Result<(StatusCode, Json<LegacyOrderRow>), HttpError> {
    let product_id = body.product_id.id()?;
    let idempotency_key = idempotency_key(&headers, None)?;
    let placed = place_order(
        &ctx,
        PlaceOrder {
            stated_customer_id: body.customer_id,
            idempotency_key,
            ..PlaceOrder::new(
                Placer::of(&caller),
                vec![RequestedItem::product(product_id, body.quantity)],
            )
        },
    )
    .await?;
    let (status, order) = match placed {
        Placed::New(o) => (StatusCode::CREATED, o),
        Placed::Replayed(o) => (StatusCode::OK, o),
    };
    Ok((status, Json(row(&order, Some(product_id)))))
}

/// Seed 003: the orders of a product, newest first (cached).
#[utoipa::path(get, path = "/orders/product/{product_id}", tag = "seed 002/003",
    params(("product_id" = i64, Path), Page),
    responses((status = 200, body = [LegacyOrderRow]), (status = 400, body = ErrorResponse)))]
pub async fn orders_of_product(
    State(ctx): State<OrderContext>,
    caller: Caller,
    Path(product_id): Path<i64>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<LegacyOrderRow>>, ApiError> {
    let (limit, offset) = page.bounds()?;
    let filter = OrderFilter {
        owner: caller.owner_scope(),
        status: None,
        product_id: Some(product_id),
    };
    let load = || async {
        let mut conn = ctx.pool.acquire().await?;
        let found = orders::list(&mut conn, &filter, limit, offset).await?;
        Ok::<_, OrderError>(found.iter().map(|o| row(o, Some(product_id))).collect())
    };
    // The first page of everyone's orders (what admins see) and of the orders placed
    // without an account (what seed 003's anonymous callers see) are shared through
    // the cache; a customer's own view and other pages go to the database.
    let key = match filter.owner {
        OwnerScope::All => Some(format!("orders:product:{product_id}")),
        OwnerScope::Owner(None) => Some(format!("orders:product:{product_id}:anonymous")),
        OwnerScope::Owner(Some(_)) => None,
    };
    let rows = match key {
        Some(key) if offset == 0 && limit == 100 => {
            ctx.cache
                .get_or_load("orders_by_product", &key, load)
                .await?
        }
        _ => load().await?,
    };
    Ok(Json(rows))
}
