//! What the load of `cargo xtask bench` and `cargo xtask chaos` does as a shop's
//! owner and customers: stock the catalogue, register and log customers in through
//! the gateway; and the latency arithmetic both report.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use sales_testkit::identity::{Minter, Who};
use sales_testkit::launch::{Service, Wiring};
use serde_json::{Value, json};

/// A product to put in the catalogue.
#[derive(Clone, Debug)]
pub struct ProductSpec {
    pub sku: String,
    pub name: String,
    pub price_cents: i64,
    pub stock: i64,
}

/// The products, created in the product service (as an admin, with a token signed by
/// the system's own gateway key); waits until the inventory has opened their stock
/// items (from `product-created`). Their ids, in the order given.
pub async fn make_catalogue(
    http: &reqwest::Client,
    wiring: &Wiring,
    products: &[ProductSpec],
) -> Result<Vec<i64>> {
    let minter = Minter::new(
        &wiring.identity.gateway_signing_keys,
        &wiring.identity.customer_signing_keys,
    );
    let admin = |service: Service| {
        minter
            .token(service.name(), Who::Admin(1))
            .unwrap_or_default()
    };
    let product_service = wiring.base_url(Service::Product);
    let mut ids = Vec::with_capacity(products.len());
    for p in products {
        let r = http
            .post(format!("{product_service}/api/v1/products"))
            .bearer_auth(admin(Service::Product))
            .json(&json!({
                "sku": p.sku, "name": p.name,
                "price": {"amount": p.price_cents, "currency": "USD"},
                "initial_stock": p.stock
            }))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("creating product {} failed: {}", p.sku, r.text().await?);
        }
        let body: Value = r.json().await?;
        ids.push(body["id"].as_i64().context("a product without an id")?);
    }
    let inventory = wiring.base_url(Service::Inventory);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http
            .get(format!("{inventory}/api/v1/inventory/items"))
            .bearer_auth(admin(Service::Inventory))
            .send()
            .await?;
        // A service still starting answers 503 with an error body: not yet.
        let last = if r.status().is_success() {
            let items: Vec<Value> = r.json().await?;
            if items.len() >= products.len() {
                return Ok(ids);
            }
            format!("{} of {} items open", items.len(), products.len())
        } else {
            format!("{}: {}", r.status(), r.text().await?)
        };
        if Instant::now() > deadline {
            bail!("the inventory did not open the products' stock in 30 s (last: {last})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A new customer `email`, registered and logged in through the gateway; their token.
pub async fn register(http: &reqwest::Client, gateway: &str, email: &str) -> Result<String> {
    let r = http
        .post(format!("{gateway}/api/v1/customers/register"))
        .json(&json!({
            "email": email,
            "password": "load-password",
            "name": format!("Load client {email}")
        }))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!(
            "registering a customer failed ({}): {}",
            r.status(),
            r.text().await?
        );
    }
    let r = http
        .post(format!("{gateway}/api/v1/customers/login"))
        .json(&json!({"email": email, "password": "load-password"}))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!(
            "logging a customer in failed ({}): {}",
            r.status(),
            r.text().await?
        );
    }
    let body: Value = r.json().await?;
    find_token(&body).context("the login answer has no token")
}

fn find_token(value: &Value) -> Option<String> {
    match value {
        Value::Object(map) => map
            .get("token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| map.values().find_map(find_token)),
        _ => None,
    }
}

/// The value at quantile `q` of sorted microseconds, in milliseconds.
pub fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_sorted_microseconds() {
        let sorted: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile(&sorted, 0.5), 51.0);
        assert_eq!(percentile(&sorted, 0.99), 99.0);
        assert_eq!(percentile(&sorted, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn the_token_is_found_wherever_the_login_answer_puts_it() {
        assert_eq!(
            find_token(&json!({"data": {"token": "t"}})),
            Some("t".into())
        );
        assert_eq!(find_token(&json!({"nothing": 1})), None);
    }
}
