//! Seed 000's product list, as its clients expect it:
//! `GET /products` -> `{"success": true, "data": [{"product_id", "stocks", "name", "price"}]}`.
//! `price` is in minor units (cents for USD); `stocks` is what can still be ordered.

use axum::extract::State;
use sales_platform::listing::Page;
use sales_platform::{ApiError, Json, Query};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::catalogue::{self, ProductFilter};
use crate::inventory_client::available_stock;

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
    let products =
        catalogue::list_products(&mut conn, &ProductFilter::default(), limit, offset).await?;
    drop(conn);
    let ids: Vec<i64> = products.iter().map(|p| p.id).collect();
    let available = available_stock(&state.inventory, &ids).await?;
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
