//! Seed 002's inventory routes, with its shapes and its answer when stock is short:
//!
//! - `PUT /inventory/stock {product_id, quantity}`: takes units out only if that many
//!   are available, else 404 "Product not found or insufficient stock";
//! - `GET /inventory/stock/{product_id}`: the product's stock.

use axum::extract::State;
use axum::http::StatusCode;
use sales_contracts::api::ErrorResponse;
use sales_platform::{ApiError, Json, Path};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use crate::stock;

#[derive(Debug, Deserialize, ToSchema)]
pub struct TakeOut {
    product_id: i64,
    #[schema(minimum = 1)]
    quantity: i32,
}

/// Seed 002's stock row: `stock` is what can still be ordered.
#[derive(Debug, Serialize, ToSchema)]
pub struct Seed002Stock {
    product_id: i64,
    sku: String,
    stock: i32,
}

const SHORT: &str = "Product not found or insufficient stock";

/// Seed 002: take units of a product out of stock.
#[utoipa::path(put, path = "/inventory/stock", tag = "seed 002", request_body = TakeOut,
    responses((status = 200, body = Seed002Stock),
               (status = 404, description = "Product not found or insufficient stock", body = ErrorResponse),
               (status = 400, body = ErrorResponse)))]
pub async fn take_out(
    State(state): State<AppState>,
    Json(body): Json<TakeOut>,
) -> Result<Json<Seed002Stock>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let level = stock::take_out(&mut conn, body.product_id, body.quantity)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", SHORT))?;
    Ok(Json(Seed002Stock {
        product_id: body.product_id,
        sku: level.sku,
        stock: level.available,
    }))
}

/// Seed 002: a product's stock.
#[utoipa::path(get, path = "/inventory/stock/{product_id}", tag = "seed 002",
    params(("product_id" = i64, Path)),
    responses((status = 200, body = Seed002Stock), (status = 404, body = ErrorResponse)))]
pub async fn get_stock(
    State(state): State<AppState>,
    Path(product_id): Path<i64>,
) -> Result<Json<Seed002Stock>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let level = stock::get_stock_of_product(&mut conn, product_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("product {product_id} has no stock item")))?;
    Ok(Json(Seed002Stock {
        product_id,
        sku: level.sku,
        stock: level.available,
    }))
}
