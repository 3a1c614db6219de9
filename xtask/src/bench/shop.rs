//! The shop the scenarios need: the saga's catalogue and customers, the one-call
//! SKUs and the hot one in stock, and how the order service takes a one-call order
//! sent straight to it.

use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use futures::{StreamExt as _, TryStreamExt as _};
use sales_testkit::identity::{Minter, Who};
use sales_testkit::launch::{Service, Wiring};
use serde_json::json;

use super::scenarios::{AnonymousToken, HOT_SKU, sku};
use crate::storefront::{self, ProductSpec};

/// Stock of each one-call SKU, and of the hot one: more than any run sells.
const SKU_STOCK: i32 = 1_000_000;
const HOT_STOCK: i32 = 1_000_000_000;
/// The saga's catalogue: products each customer picks from.
const PRODUCTS: usize = 20;
const PRICE_CENTS: i64 = 1500;

/// The saga's catalogue (created first: the inventory opens its stock from the
/// product events, and [`storefront::make_catalogue`] waits for that); its ids.
pub async fn open_catalogue(http: &reqwest::Client, wiring: &Wiring) -> Result<Vec<i64>> {
    let catalogue: Vec<ProductSpec> = (0..PRODUCTS)
        .map(|n| ProductSpec {
            sku: format!("BENCH-{n:03}"),
            name: format!("Bench product {n}"),
            price_cents: PRICE_CENTS,
            stock: i64::from(SKU_STOCK),
        })
        .collect();
    storefront::make_catalogue(http, wiring, &catalogue).await
}

/// Stock for the one-call SKUs and the hot one, in the inventory (seed 004's
/// `POST /api/v1/stock/items`, as an administrator): SKUs the catalogue does not
/// price, so the one-call order sells them at the stated amount.
pub async fn stock_skus(http: &reqwest::Client, wiring: &Wiring, skus: usize) -> Result<()> {
    let minter = Minter::new(
        &wiring.identity.gateway_signing_keys,
        &wiring.identity.customer_signing_keys,
    );
    let admin = minter
        .token(Service::Inventory.name(), Who::Admin(1))
        .context("no admin token")?;
    let url = format!("{}/api/v1/stock/items", wiring.base_url(Service::Inventory));
    let items = (0..skus)
        .map(|n| (sku(n), SKU_STOCK))
        .chain([(HOT_SKU.to_owned(), HOT_STOCK)]);
    futures::stream::iter(items.map(|(sku, quantity)| {
        let request = http
            .post(&url)
            .bearer_auth(&admin)
            .json(&json!({"item_sku": sku, "quantity": quantity}));
        async move {
            let r = request.send().await?;
            if !r.status().is_success() {
                bail!(
                    "stocking {sku} failed ({}): {}",
                    r.status(),
                    r.text().await?
                );
            }
            Ok(())
        }
    }))
    .buffer_unordered(8)
    .try_collect::<()>()
    .await
}

/// `n` customers registered and logged in through the gateway: their `Authorization`
/// headers.
pub async fn register_customers(
    http: &reqwest::Client,
    gateway: &str,
    n: usize,
) -> Result<Vec<String>> {
    futures::stream::iter((0..n).map(|i| async move {
        let email = format!("bench-{i}@example.com");
        let token = storefront::register(http, gateway, &email).await?;
        Ok::<_, anyhow::Error>(format!("Bearer {token}"))
    }))
    .buffered(4)
    .try_collect()
    .await
}

/// How the order service takes a one-call order without a token: `None` if it does
/// (no header, as seed 004's clients send), else a minted anonymous gateway token.
/// The probe is a real order (a warm-up).
pub async fn direct_auth(
    http: &reqwest::Client,
    wiring: &Wiring,
) -> Result<Option<Arc<AnonymousToken>>> {
    let url = format!("{}/api/v1/orders/", wiring.base_url(Service::Order));
    let body = |key: &str| {
        json!({"item_sku": sku(0), "quantity": 1, "amount": "1.00", "currency": "USD",
               "idempotency_key": key})
    };
    let r = http.post(&url).json(&body("warm-up-0")).send().await?;
    if r.status().is_success() {
        return Ok(None);
    }
    if r.status() != reqwest::StatusCode::UNAUTHORIZED {
        bail!(
            "a one-call order failed ({}): {}",
            r.status(),
            r.text().await?
        );
    }
    let token = AnonymousToken::new(wiring);
    let r = http
        .post(&url)
        .header("authorization", token.header())
        .json(&body("warm-up-1"))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!(
            "a one-call order with an anonymous token failed ({}): {}",
            r.status(),
            r.text().await?
        );
    }
    Ok(Some(token))
}
