//! Placing an order: where an order is created.
//!
//! 1. Check the request; with an idempotency key already used, return that order.
//! 2. Look the products up in the catalogue for their SKUs and current prices.
//! 3. Take an order id and reserve the stock for it in the inventory: all items or
//!    none. Not enough stock: refuse with 409 "Product is not available", and no
//!    order exists.
//! 4. In one transaction: the order (`PENDING`), its lines, and the `create-order`
//!    and `update-stock` events in the outbox.
//! 5. If that transaction fails, give the reservation back.

use std::collections::BTreeMap;

use chrono::Utc;
use sales_contracts::Money;
use sales_contracts::api::stock::ReservationLine;
use sales_contracts::events::{CreateOrder, StockLine, UpdateStock};
use sales_platform::outbox;

use crate::error::{OrderError, Result};
use crate::order_status::{OrderStatus, PaymentStatus};
use crate::orders::{self, Order, OrderLine};
use crate::{OrderContext, SERVICE, inventory_client, product_client};

/// Most lines one order may have, and most units of one product.
pub const MAX_LINES: usize = 100;
pub const MAX_QUANTITY: i32 = 10_000;

/// A product and how many of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestedItem {
    pub product_id: i64,
    pub quantity: i32,
}

/// A request to place an order.
#[derive(Clone, Debug)]
pub struct PlaceOrder {
    pub customer_id: Option<i64>,
    pub items: Vec<RequestedItem>,
    pub idempotency_key: Option<String>,
}

/// The order, and whether this request made it or an earlier one with the same key.
#[derive(Debug)]
pub enum Placed {
    New(Order),
    Replayed(Order),
}

impl Placed {
    pub fn order(&self) -> &Order {
        match self {
            Placed::New(o) | Placed::Replayed(o) => o,
        }
    }
}

/// Check the request; merge lines for the same product.
fn normalise(request: &PlaceOrder) -> Result<Vec<RequestedItem>> {
    if request.items.is_empty() {
        return Err(OrderError::Validation(
            "items must contain at least one item".into(),
        ));
    }
    if request.items.len() > MAX_LINES {
        return Err(OrderError::Validation(format!(
            "an order may have at most {MAX_LINES} items"
        )));
    }
    if let Some(key) = &request.idempotency_key
        && (key.is_empty() || key.len() > 255)
    {
        return Err(OrderError::Validation(
            "idempotency key must be 1 to 255 characters".into(),
        ));
    }
    let mut merged: BTreeMap<i64, i64> = BTreeMap::new();
    for item in &request.items {
        if item.product_id < 1 {
            return Err(OrderError::Validation(format!(
                "product_id must be a positive integer, got {}",
                item.product_id
            )));
        }
        if item.quantity < 1 {
            return Err(OrderError::Validation(format!(
                "quantity of product {} must be at least 1, got {}",
                item.product_id, item.quantity
            )));
        }
        *merged.entry(item.product_id).or_default() += i64::from(item.quantity);
    }
    merged
        .into_iter()
        .map(|(product_id, quantity)| {
            if quantity > i64::from(MAX_QUANTITY) {
                return Err(OrderError::Validation(format!(
                    "quantity of product {product_id} must be at most {MAX_QUANTITY}"
                )));
            }
            Ok(RequestedItem {
                product_id,
                quantity: quantity as i32,
            })
        })
        .collect()
}

/// What the request asked for, to tell a retry from a different order under the same key.
fn fingerprint(customer_id: Option<i64>, items: &[RequestedItem]) -> String {
    let items: Vec<String> = items
        .iter()
        .map(|i| format!("{}x{}", i.product_id, i.quantity))
        .collect();
    format!(
        "customer={};items={}",
        customer_id.map(|c| c.to_string()).unwrap_or_default(),
        items.join(",")
    )
}

/// Place an order. See the module docs for the steps.
#[tracing::instrument(skip_all, fields(customer_id = request.customer_id, order_id))]
pub async fn place_order(ctx: &OrderContext, request: PlaceOrder) -> Result<Placed> {
    let items = normalise(&request)?;
    let fingerprint = fingerprint(request.customer_id, &items);
    let key = request.idempotency_key.as_deref();
    if let Some(key) = key
        && let Some(existing) = replay(ctx, key, &fingerprint).await?
    {
        return Ok(existing);
    }

    let ids: Vec<i64> = items.iter().map(|i| i.product_id).collect();
    let products = product_client::fetch_products(&ctx.products, &ids).await?;

    let mut lines = Vec::with_capacity(items.len());
    let mut total: Option<Money> = None;
    for item in &items {
        let product = &products[&item.product_id];
        let line_total = product
            .price
            .checked_mul(i64::from(item.quantity))
            .map_err(|_| OrderError::Validation("order total is too large".into()))?;
        total = Some(match total {
            None => line_total,
            Some(t) => t.checked_add(line_total).map_err(|e| {
                OrderError::Validation(format!(
                    "all products of one order must share a currency: {e}"
                ))
            })?,
        });
        lines.push(OrderLine {
            product_id: product.id,
            sku: product.sku.clone(),
            name: product.name.clone(),
            quantity: item.quantity,
            unit_price: product.price,
        });
    }
    let total = total.ok_or_else(|| OrderError::Validation("order has no items".into()))?;

    let order_id = orders::next_id(&mut *ctx.pool.acquire().await?).await?;
    tracing::Span::current().record("order_id", order_id);
    let reservation = inventory_client::reserve_for_order(
        &ctx.inventory,
        order_id,
        lines
            .iter()
            .map(|l| ReservationLine {
                sku: l.sku.clone(),
                quantity: l.quantity,
            })
            .collect(),
    )
    .await
    .inspect_err(|e| {
        if matches!(e, OrderError::Unavailable(_)) {
            ctx.metrics
                .orders_refused
                .with_label_values(&["unavailable"])
                .inc();
        }
    })?;

    let now = Utc::now();
    let order = Order {
        order_id,
        status: OrderStatus::Pending,
        payment_status: PaymentStatus::Pending,
        customer_id: request.customer_id,
        items: lines,
        total,
        reservation_id: Some(reservation.reservation_id),
        pay_by: now + chrono::Duration::from_std(ctx.unpaid_timeout).unwrap_or_default(),
        cancel_reason: None,
        paid_at: None,
        cancelled_at: None,
        created_at: now,
        updated_at: now,
    };
    match store(ctx, &order, key, &fingerprint).await {
        Ok(()) => {
            ctx.metrics.status_entered(OrderStatus::Pending);
            tracing::info!(order_id, total = %order.total, "order placed");
            Ok(Placed::New(order))
        }
        Err(err) => {
            inventory_client::release(&ctx.inventory, reservation.reservation_id).await;
            // Two requests with one key at the same moment: the other one won.
            if let (Some(key), OrderError::Database(sqlx::Error::Database(db))) = (key, &err)
                && db.is_unique_violation()
                && let Some(existing) = replay(ctx, key, &fingerprint).await?
            {
                return Ok(existing);
            }
            Err(err)
        }
    }
}

async fn replay(ctx: &OrderContext, key: &str, fingerprint: &str) -> Result<Option<Placed>> {
    let mut conn = ctx.pool.acquire().await?;
    match orders::find_by_idempotency_key(&mut conn, key).await? {
        Some((order, Some(first))) if first != fingerprint => {
            let _ = order;
            Err(OrderError::IdempotencyKeyReused)
        }
        Some((order, _)) => Ok(Some(Placed::Replayed(order))),
        None => Ok(None),
    }
}

/// The order, its lines and its events, in one transaction.
async fn store(
    ctx: &OrderContext,
    order: &Order,
    key: Option<&str>,
    fingerprint: &str,
) -> Result<()> {
    let mut tx = ctx.pool.begin().await?;
    orders::insert(&mut tx, order, key, fingerprint).await?;
    outbox::enqueue(
        &mut tx,
        SERVICE,
        CreateOrder {
            order_id: order.order_id,
            customer_id: order.customer_id,
            status: order.status.as_str().to_owned(),
            items: order
                .items
                .iter()
                .map(|l| sales_contracts::events::OrderLine {
                    product_id: l.product_id,
                    sku: l.sku.clone(),
                    quantity: l.quantity,
                    unit_price: l.unit_price,
                })
                .collect(),
            total: order.total,
            created_at: order.created_at,
            pay_by: order.pay_by,
        },
    )
    .await?;
    outbox::enqueue(
        &mut tx,
        SERVICE,
        UpdateStock {
            order_id: order.order_id,
            user_id: order.customer_id,
            items: order
                .items
                .iter()
                .map(|l| StockLine {
                    product_id: l.product_id,
                    sku: l.sku.clone(),
                    quantity: l.quantity,
                })
                .collect(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(items: &[(i64, i32)]) -> PlaceOrder {
        PlaceOrder {
            customer_id: None,
            items: items
                .iter()
                .map(|&(product_id, quantity)| RequestedItem {
                    product_id,
                    quantity,
                })
                .collect(),
            idempotency_key: None,
        }
    }

    #[test]
    fn lines_for_one_product_are_merged() {
        assert_eq!(
            normalise(&req(&[(2, 1), (1, 3), (2, 4)])).unwrap(),
            vec![
                RequestedItem {
                    product_id: 1,
                    quantity: 3
                },
                RequestedItem {
                    product_id: 2,
                    quantity: 5
                }
            ]
        );
    }

    #[test]
    fn bad_requests_are_refused_with_reasons() {
        let msg = |r: PlaceOrder| normalise(&r).unwrap_err().to_string();
        assert!(msg(req(&[])).contains("at least one item"));
        assert!(msg(req(&[(1, 0)])).contains("at least 1"));
        assert!(msg(req(&[(1, -5)])).contains("at least 1"));
        assert!(msg(req(&[(0, 1)])).contains("positive integer"));
        assert!(msg(req(&[(1, MAX_QUANTITY), (1, 1)])).contains("at most"));
        let mut keyed = req(&[(1, 1)]);
        keyed.idempotency_key = Some(String::new());
        assert!(msg(keyed).contains("idempotency key"));
    }

    #[test]
    fn fingerprint_ignores_line_order_after_merging() {
        let a = normalise(&req(&[(1, 1), (2, 2)])).unwrap();
        let b = normalise(&req(&[(2, 2), (1, 1)])).unwrap();
        assert_eq!(fingerprint(None, &a), fingerprint(None, &b));
        assert_ne!(fingerprint(Some(1), &a), fingerprint(None, &a));
    }
}
