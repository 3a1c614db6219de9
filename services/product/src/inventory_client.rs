//! Stock levels from the inventory, for the seed routes that show a product's stock.

use std::collections::HashMap;

use sales_contracts::api::stock::StockLevel;
use sales_platform::client::ServiceClient;

use crate::error::{CatalogueError, Result};

/// Units available to order, per product id (a product without a stock item has 0).
pub async fn available_stock(
    client: &ServiceClient,
    product_ids: &[i64],
) -> Result<HashMap<i64, i32>> {
    if product_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<String> = product_ids.iter().map(i64::to_string).collect();
    let levels: Vec<StockLevel> = client
        .get(&format!(
            "/api/v1/inventory/items?limit=500&product_ids={}",
            ids.join(",")
        ))
        .await
        .map_err(CatalogueError::StockUnavailable)?;
    Ok(levels
        .into_iter()
        .filter_map(|s| Some((s.product_id?, s.available)))
        .collect())
}
