//! Seed 000's product list, as its clients expect it:
//! `GET /products` -> `{"success": true, "data": [{"product_id", "stocks", "name", "price"}]}`.
//! `price` is in minor units (cents for USD); `stocks` is what can still be ordered.

use std::collections::HashMap;

use axum::extract::State;
use sales_contracts::api::stock::StockLevel;
use sales_platform::listing::Page;
use sales_platform::{ApiError, Json, Query};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::catalogue;
use crate::error::CatalogueError;

/// Seed 000's answer envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct Seed000Products {
    success: bool,
    data: Vec<Seed000Product>,
    error_message: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Seed000Product {
    product_id: i64,
    /// Units available to order.
    stocks: i32,
    name: String,
    /// Price in minor units of `currency`.
    price: i64,
    currency: String,
}

/// Seed 000: every product with its available stock.
#[utoipa::path(get, path = "/products", tag = "seed 000", params(Page),
    responses((status = 200, body = Seed000Products),
               (status = 503, description = "The inventory did not answer", body = sales_contracts::api::ErrorResponse)))]
pub async fn list_products_with_stock(
    State(state): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<Seed000Products>, ApiError> {
    let (limit, offset) = page.bounds()?;
    let mut conn = state.pool.acquire().await?;
    let products = catalogue::list_products(&mut conn, None, limit, offset).await?;
    drop(conn);
    let ids: Vec<String> = products.iter().map(|p| p.id.to_string()).collect();
    let stock: Vec<StockLevel> = if ids.is_empty() {
        Vec::new()
    } else {
        state
            .inventory
            .get(&format!(
                "/api/v1/inventory/items?limit=500&product_ids={}",
                ids.join(",")
            ))
            .await
            .map_err(CatalogueError::StockUnavailable)?
    };
    let available: HashMap<i64, i32> = stock
        .into_iter()
        .filter_map(|s| Some((s.product_id?, s.available)))
        .collect();
    Ok(Json(Seed000Products {
        success: true,
        data: products
            .into_iter()
            .map(|p| Seed000Product {
                product_id: p.id,
                stocks: available.get(&p.id).copied().unwrap_or(0),
                name: p.name,
                price: p.price.amount,
                currency: p.price.currency.to_string(),
            })
            .collect(),
        error_message: None,
    }))
}
