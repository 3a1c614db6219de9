//! Seed 002's and seed 003's order routes, with their shapes:
//!
//! - `POST /orders {product_id, quantity}` (seed 003; `product_id` may be a string
//!   such as `"1"`) or `{customer_id, product_id, quantity}` (seed 002) -> 201 with
//!   the order row in both seeds' field names: `{id, productId, product_id,
//!   customer_id, quantity, totalPrice (price x quantity), status: "pending",
//!   createdAt, created_at}`; 400 on validation.
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
use utoipa::ToSchema;

use super::idempotency_key;
use crate::OrderContext;
use crate::create_order::{PlaceOrder, Placed, RequestedItem, place_order};
use crate::error::OrderError;
use crate::orders::{self, Order, OrderFilter};

/// A product id as a number or as a string of digits (seed 003 sends `"1"`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ProductIdText {
    Number(i64),
    Text(String),
}

impl ProductIdText {
    fn id(&self) -> Result<i64, ApiError> {
        match self {
            ProductIdText::Number(n) => Ok(*n),
            ProductIdText::Text(t) => t.trim().parse().map_err(|_| {
                ApiError::validation(format!("product_id must be an integer, got {t:?}"))
            }),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LegacyCreateOrder {
    /// Seed 002's customer; the caller's own id (from the gateway) wins.
    customer_id: Option<i64>,
    product_id: ProductIdText,
    quantity: i32,
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
        customer_id: order.customer_id,
        quantity: line.map(|l| l.quantity).unwrap_or_default(),
        total_price: order.amount.clone(),
        currency: order.currency.to_string(),
        status: order.status.as_str().to_lowercase(),
        created_at_camel: order.created_at,
        created_at: order.created_at,
    }
}

/// Seeds 002 and 003: place an order for one product (an `Idempotency-Key` makes
/// retries safe here too).
#[utoipa::path(post, path = "/orders", tag = "seed 002/003", request_body = LegacyCreateOrder,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe")),
    responses((status = 201, body = LegacyOrderRow), (status = 400, body = ErrorResponse),
               (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn create_order(
    State(ctx): State<OrderContext>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<LegacyCreateOrder>,
) -> Result<(StatusCode, Json<LegacyOrderRow>), ApiError> {
    let product_id = body.product_id.id()?;
    let idempotency_key = idempotency_key(&headers, None)?;
    let placed = place_order(
        &ctx,
        PlaceOrder {
            // Only an admin places an order for another customer; a caller without
            // an account places one that belongs to no one.
            customer_id: if caller.is_admin() {
                body.customer_id.or(caller.customer_id())
            } else {
                caller.customer_id()
            },
            items: vec![RequestedItem::product(product_id, body.quantity)],
            idempotency_key,
            payment: None,
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
