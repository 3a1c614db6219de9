//! Looking products up in the catalogue (product service) when an order is placed.

use std::collections::HashMap;

use sales_contracts::api::catalogue::Product;
use sales_platform::client::ServiceClient;

use crate::error::{OrderError, Result};

/// The catalogue's products with these ids, by id (unknown ones are left out).
pub async fn fetch_products(client: &ServiceClient, ids: &[i64]) -> Result<HashMap<i64, Product>> {
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let products: Vec<Product> = client
        .get(&format!("/api/v1/products?limit=500&ids={list}"))
        .await
        .map_err(OrderError::Upstream)?;
    Ok(products.into_iter().map(|p| (p.id, p)).collect())
}

/// The catalogue's products with these SKUs, by SKU (unknown ones are left out).
pub async fn fetch_by_skus(
    client: &ServiceClient,
    skus: &[String],
) -> Result<HashMap<String, Product>> {
    let list: Vec<String> = skus
        .iter()
        .map(|s| {
            s.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect()
        })
        .collect();
    let products: Vec<Product> = client
        .get(&format!(
            "/api/v1/products?limit=500&skus={}",
            list.join(",")
        ))
        .await
        .map_err(OrderError::Upstream)?;
    Ok(products.into_iter().map(|p| (p.sku.clone(), p)).collect())
}
