//! Seed 002's product routes, with its shapes: `POST /products {name, price,
//! description, stock}` -> 201 the row, `GET /products/{id}` -> the row or 404.
//! Seed 002's `price` is a plain decimal number in the default currency
//! (`DEFAULT_CURRENCY`, USD); it is read exactly and stored in minor units.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use sales_contracts::DecimalAmount;
use sales_contracts::api::ErrorResponse;
use sales_contracts::api::catalogue::Product;
use sales_platform::{ApiError, Json, Path};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AppState, cached_product};
use crate::catalogue::{self, NewProduct};
use crate::inventory_client::available_stock;

#[derive(Debug, Deserialize, ToSchema)]
pub struct Seed002NewProduct {
    /// 1 to 200 characters, not only spaces; surrounding spaces are dropped.
    #[schema(
        example = "Espresso beans 1 kg",
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
    )]
    name: String,
    /// In major units of the default currency, e.g. 19.99; cannot be negative.
    #[schema(schema_with = sales_contracts::money::request_schemas::non_negative_decimal_amount)]
    price: DecimalAmount,
    /// At most 5000 characters.
    #[serde(default)]
    #[schema(max_length = 5000)]
    description: String,
    /// Opening stock (seed 003's code and later README call it `qty`).
    #[serde(default, alias = "qty")]
    #[schema(minimum = 0)]
    stock: i32,
}

/// Seed 002's product row.
#[derive(Debug, Serialize, ToSchema)]
pub struct Seed002Product {
    id: i64,
    name: String,
    price: DecimalAmount,
    currency: String,
    description: String,
    stock: i32,
    sku: String,
    created_at: DateTime<Utc>,
}

fn row(p: Product, stock: i32) -> Seed002Product {
    Seed002Product {
        id: p.id,
        name: p.name,
        price: DecimalAmount::from_money(p.price),
        currency: p.price.currency.to_string(),
        description: p.description,
        stock,
        sku: p.sku,
        created_at: p.created_at,
    }
}

/// Seed 002: add a product with its opening stock.
#[utoipa::path(post, path = "/products", tag = "seed 002",
    operation_id = "seed002_create_product",
    request_body = Seed002NewProduct,
    responses((status = 201, body = Seed002Product), (status = 400, body = ErrorResponse)))]
pub async fn create_product(
    State(state): State<AppState>,
    Json(body): Json<Seed002NewProduct>,
) -> Result<(StatusCode, Json<Seed002Product>), ApiError> {
    let price = body
        .price
        .to_minor(state.default_currency)
        .map_err(|e| ApiError::validation(e.to_string()))?;
    let product = catalogue::create_product(
        &state.pool,
        NewProduct {
            sku: None,
            name: body.name,
            description: body.description,
            price,
            initial_stock: body.stock,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(row(product, body.stock))))
}

/// Seed 002: one product, with the stock that can still be ordered.
#[utoipa::path(get, path = "/products/{id}", tag = "seed 002",
    operation_id = "seed002_get_product",
    params(("id" = i64, Path)),
    responses((status = 200, body = Seed002Product), (status = 404, body = ErrorResponse),
               (status = 503, description = "The inventory did not answer", body = ErrorResponse)))]
pub async fn get_product(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Seed002Product>, ApiError> {
    let product = cached_product(&state, id).await?;
    let stock = available_stock(&state.inventory, &[id]).await?;
    Ok(Json(row(product, stock.get(&id).copied().unwrap_or(0))))
}
