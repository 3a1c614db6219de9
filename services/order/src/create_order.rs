//! Placing an order: where an order is created.
//!
//! 1. Check the request; with an idempotency key already used, return that order.
//! 2. Look the items up in the catalogue for their SKUs and current prices.
//! 3. Take an order id and reserve the stock for it in the inventory: all items or
//!    none. Not enough stock: refuse with 409 "Product is not available", and no
//!    order exists.
//! 4. In one transaction: the order (`PENDING`), its lines, and the `create-order`
//!    and `update-stock` events in the outbox.
//! 5. If that transaction fails, give the reservation back.
//! 6. Seed 004's one-call form carries the amount the client pays: the order is
//!    charged at once and answered `CONFIRMED` or `FAILED` ([`crate::pay_order`]).

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use sales_contracts::Money;
use sales_contracts::api::catalogue::Product;
use sales_contracts::api::stock::ReservationLine;
use sales_contracts::events::{CreateOrder, StockLine, UpdateStock};
use sales_platform::outbox;

use crate::error::{OrderError, Result};
use crate::order_status::{OrderStatus, PaymentStatus};
use crate::orders::{self, Order, OrderLine, OrderParts};
use crate::{OrderContext, SERVICE, inventory_client, pay_order, product_client};

/// Most lines one order may have, and most units of one item.
pub const MAX_LINES: usize = 100;
pub const MAX_QUANTITY: i32 = 10_000;

/// How an item is named: by catalogue product id, or by SKU (seed 004).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ItemRef {
    Product(i64),
    Sku(String),
}

/// An item and how many of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestedItem {
    pub item: ItemRef,
    pub quantity: i32,
}

impl RequestedItem {
    pub fn product(product_id: i64, quantity: i32) -> Self {
        RequestedItem {
            item: ItemRef::Product(product_id),
            quantity,
        }
    }
}

/// A request to place an order.
#[derive(Clone, Debug)]
pub struct PlaceOrder {
    pub customer_id: Option<i64>,
    pub items: Vec<RequestedItem>,
    pub idempotency_key: Option<String>,
    /// Seed 004's one-call order: the amount the client pays; the order is charged
    /// at once. For items in the catalogue it must equal the total at its prices.
    pub payment: Option<Money>,
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

/// Check the request; merge lines for the same item.
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
    if request.payment.is_some_and(|p| p.amount <= 0) {
        return Err(OrderError::Validation("amount must be positive".into()));
    }
    let mut merged: BTreeMap<ItemRef, i64> = BTreeMap::new();
    for item in &request.items {
        let name = match &item.item {
            ItemRef::Product(id) if *id < 1 => {
                return Err(OrderError::Validation(format!(
                    "product_id must be a positive integer, got {id}"
                )));
            }
            ItemRef::Product(id) => format!("product {id}"),
            ItemRef::Sku(sku) if sku.trim().is_empty() || sku.len() > 64 => {
                return Err(OrderError::Validation(
                    "item_sku must be 1 to 64 characters".into(),
                ));
            }
            ItemRef::Sku(sku) => sku.clone(),
        };
        if item.quantity < 1 {
            return Err(OrderError::Validation(format!(
                "quantity of {name} must be at least 1, got {}",
                item.quantity
            )));
        }
        *merged.entry(item.item.clone()).or_default() += i64::from(item.quantity);
    }
    merged
        .into_iter()
        .map(|(item, quantity)| {
            if quantity > i64::from(MAX_QUANTITY) {
                return Err(OrderError::Validation(format!(
                    "quantity of one item must be at most {MAX_QUANTITY}"
                )));
            }
            Ok(RequestedItem {
                item,
                quantity: quantity as i32,
            })
        })
        .collect()
}

/// What the request asked for, to tell a retry from a different order under the same key.
fn fingerprint(request: &PlaceOrder, items: &[RequestedItem]) -> String {
    let items: Vec<String> = items
        .iter()
        .map(|i| match &i.item {
            ItemRef::Product(id) => format!("{id}x{}", i.quantity),
            ItemRef::Sku(sku) => format!("{sku}x{}", i.quantity),
        })
        .collect();
    format!(
        "customer={};items={};pay={}",
        request
            .customer_id
            .map(|c| c.to_string())
            .unwrap_or_default(),
        items.join(","),
        request.payment.map(|m| m.to_string()).unwrap_or_default()
    )
}

/// Place an order. See the module docs for the steps.
#[tracing::instrument(skip_all, fields(customer_id = request.customer_id, order_id))]
pub async fn place_order(ctx: &OrderContext, request: PlaceOrder) -> Result<Placed> {
    let items = normalise(&request)?;
    let fingerprint = fingerprint(&request, &items);
    let key = request.idempotency_key.as_deref();
    if let Some(key) = key
        && let Some(existing) = replay(ctx, key, &fingerprint).await?
    {
        return Ok(existing);
    }

    let (lines, total) = price_lines(ctx, &items, request.payment).await?;

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
    let order = Order::new(OrderParts {
        order_id,
        status: OrderStatus::Pending,
        payment_status: PaymentStatus::Pending,
        customer_id: request.customer_id,
        items: lines,
        total,
        reservation_id: Some(reservation.reservation_id),
        pay_by: now + chrono::Duration::from_std(ctx.unpaid_timeout).unwrap_or_default(),
        cancel_reason: None,
        payment_id: None,
        failure_reason: None,
        paid_at: None,
        cancelled_at: None,
        shipped_at: None,
        delivered_at: None,
        created_at: now,
        updated_at: now,
    });
    if let Err(err) = store(ctx, &order, key, &fingerprint).await {
        inventory_client::release(&ctx.inventory, reservation.reservation_id).await;
        // Two requests with one key at the same moment: the other one won.
        if let (Some(key), OrderError::Database(sqlx::Error::Database(db))) = (key, &err)
            && db.is_unique_violation()
            && let Some(existing) = replay(ctx, key, &fingerprint).await?
        {
            return Ok(existing);
        }
        return Err(err);
    }
    ctx.metrics.status_entered(OrderStatus::Pending);
    ctx.invalidate_order_caches(&order).await;
    tracing::info!(order_id, total = %order.total, "order placed");

    if request.payment.is_some() {
        // Seed 004's one-call form: pay now; the answer is CONFIRMED or FAILED.
        let order = pay_order::charge_and_settle(ctx, order).await?;
        return Ok(Placed::New(order));
    }
    Ok(Placed::New(order))
}

/// The order's lines at catalogue prices, and its total. An SKU the catalogue does
/// not know is priced from the amount the client pays (seed 004), which then must
/// be given and split evenly over the units.
async fn price_lines(
    ctx: &OrderContext,
    items: &[RequestedItem],
    payment: Option<Money>,
) -> Result<(Vec<OrderLine>, Money)> {
    let ids: Vec<i64> = items
        .iter()
        .filter_map(|i| match i.item {
            ItemRef::Product(id) => Some(id),
            ItemRef::Sku(_) => None,
        })
        .collect();
    let skus: Vec<String> = items
        .iter()
        .filter_map(|i| match &i.item {
            ItemRef::Sku(s) => Some(s.clone()),
            ItemRef::Product(_) => None,
        })
        .collect();
    let by_id = if ids.is_empty() {
        HashMap::new()
    } else {
        product_client::fetch_products(&ctx.products, &ids).await?
    };
    let by_sku: HashMap<String, Product> = if skus.is_empty() {
        HashMap::new()
    } else {
        product_client::fetch_by_skus(&ctx.products, &skus).await?
    };

    let mut lines = Vec::with_capacity(items.len());
    for item in items {
        let product = match &item.item {
            ItemRef::Product(id) => by_id.get(id),
            ItemRef::Sku(sku) => by_sku.get(sku),
        };
        let line = match (product, &item.item) {
            (Some(p), _) => OrderLine {
                product_id: Some(p.id),
                sku: p.sku.clone(),
                name: p.name.clone(),
                quantity: item.quantity,
                unit_price: p.price,
            },
            (None, ItemRef::Sku(sku)) => {
                let Some(paid) = payment else {
                    return Err(OrderError::Validation(format!(
                        "{sku} is not in the catalogue: give the amount and currency you pay for it"
                    )));
                };
                if items.len() > 1 {
                    return Err(OrderError::Validation(format!(
                        "{sku} is not in the catalogue: an order with it may have no other items"
                    )));
                }
                if paid.amount % i64::from(item.quantity) != 0 {
                    return Err(OrderError::Validation(format!(
                        "{sku} is not in the catalogue, so its unit price is the amount divided by the quantity; {paid} does not divide into {} equal units",
                        item.quantity
                    )));
                }
                OrderLine {
                    product_id: None,
                    sku: sku.clone(),
                    name: sku.clone(),
                    quantity: item.quantity,
                    unit_price: Money::new(paid.amount / i64::from(item.quantity), paid.currency),
                }
            }
            (None, ItemRef::Product(id)) => return Err(OrderError::UnknownProducts(vec![*id])),
        };
        lines.push(line);
    }

    let mut total: Option<Money> = None;
    for line in &lines {
        let line_total = line
            .unit_price
            .checked_mul(i64::from(line.quantity))
            .map_err(|_| OrderError::Validation("order total is too large".into()))?;
        total = Some(match total {
            None => line_total,
            Some(t) => t.checked_add(line_total).map_err(|e| {
                OrderError::Validation(format!(
                    "all products of one order must share a currency: {e}"
                ))
            })?,
        });
    }
    let total = total.ok_or_else(|| OrderError::Validation("order has no items".into()))?;
    if let Some(paid) = payment
        && paid != total
    {
        return Err(OrderError::AmountMismatch {
            given: paid.to_string(),
            total: total.to_string(),
        });
    }
    Ok((lines, total))
}

async fn replay(ctx: &OrderContext, key: &str, fingerprint: &str) -> Result<Option<Placed>> {
    let mut conn = ctx.pool.acquire().await?;
    match orders::find_by_idempotency_key(&mut conn, key).await? {
        Some((_, Some(first))) if first != fingerprint => Err(OrderError::IdempotencyKeyReused),
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
                    product_id: l.product_id.unwrap_or_default(),
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
                    product_id: l.product_id.unwrap_or_default(),
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
                .map(|&(product_id, quantity)| RequestedItem::product(product_id, quantity))
                .collect(),
            idempotency_key: None,
            payment: None,
        }
    }

    #[test]
    fn lines_for_one_item_are_merged() {
        assert_eq!(
            normalise(&req(&[(2, 1), (1, 3), (2, 4)])).unwrap(),
            vec![RequestedItem::product(1, 3), RequestedItem::product(2, 5)]
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
        let mut sku = req(&[]);
        sku.items = vec![RequestedItem {
            item: ItemRef::Sku(" ".into()),
            quantity: 1,
        }];
        assert!(msg(sku).contains("item_sku"));
    }

    #[test]
    fn fingerprint_ignores_line_order_after_merging() {
        let a = req(&[(1, 1), (2, 2)]);
        let b = req(&[(2, 2), (1, 1)]);
        assert_eq!(
            fingerprint(&a, &normalise(&a).unwrap()),
            fingerprint(&b, &normalise(&b).unwrap())
        );
        let mut paid = a.clone();
        paid.payment = Some(Money::new(5, sales_contracts::Currency::USD));
        assert_ne!(
            fingerprint(&a, &normalise(&a).unwrap()),
            fingerprint(&paid, &normalise(&paid).unwrap())
        );
    }
}
