//! Placing an order: where an order is created.
//!
//! 1. Check the request.
//! 2. Claim the order ([`crate::claims`]): a committed row with its order id, before
//!    any side effect. With an idempotency key already used by this caller, this
//!    returns that order instead (or waits for it); over the caller's bounds
//!    (unpaid orders, reserved units) the request is refused here.
//! 3. Price the lines: on the canonical routes every line at its catalogue price, and
//!    an item the catalogue does not list is refused (422). Seed 004's one-call order
//!    states its amount: it must match the catalogue wherever the item has a price;
//!    an item only the inventory stocks is sold for the stated amount, kept as the
//!    line's total (it need not split into equal unit prices).
//! 4. Write the lines down on the claim, then reserve the stock for the order id in
//!    the inventory: all items or none. Not enough stock: refuse with 409 "Product is
//!    not available", and no order exists.
//! 5. In one transaction, while the claim is still there: the order (`PENDING`), its
//!    lines (and, for a one-call order, its payment attempt written down), and the
//!    `create-order` and `update-stock` events in the outbox. If that fails, give the
//!    reservation back.
//! 6. Seed 004's one-call form is charged at once and answered `CONFIRMED` or
//!    `FAILED` ([`crate::pay_order`]); a retry with its key that finds it still
//!    `PENDING` (its charge lost to a crash or an outage) charges it.
//! 7. Finish the claim (the key now names the order; a charged one-call order's claim
//!    is finished by the statement that records the charge's outcome), or, if nothing
//!    was stored, give it up, with the stock the inventory may hold for it
//!    ([`claims::give_up`]).

use std::collections::{BTreeMap, HashMap};

use chrono::{SubsecRound as _, Utc};
use sales_contracts::Money;
use sales_contracts::api::catalogue::Product;
use sales_contracts::api::stock::ReservationLine;
use sales_contracts::events::{CreateOrder, StockLine, UpdateStock};
use sales_platform::outbox;

use crate::claims::{self, Claim, ClaimRequest, Claimed, Placer};
use crate::error::{OrderError, Result};
use crate::order_status::{OrderStatus, PaymentStatus};
use crate::orders::{self, NewOrderRow, Order, OrderLine, OrderParts};
use crate::pay_order::Attempt;
use crate::{OrderContext, SERVICE, inventory_client, pay_order, product_client};

/// Most lines one order may have, and most units of one line (lines of the same
/// item add up, to at most `MAX_LINES * MAX_QUANTITY` units).
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

/// Where the prices of an order come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pricing {
    /// The canonical rule: every line at its catalogue price; an item the catalogue
    /// does not list is refused.
    Catalogue,
    /// Seed 004's one-call order: the client states the amount (required) for one
    /// item. Where the catalogue has the item, the amount must be its price times the
    /// quantity; otherwise the item must be in stock, and the amount is the line's total.
    StatedAmount,
}

/// A request to place an order.
#[derive(Clone, Debug)]
pub struct PlaceOrder {
    /// Who places it: the owner, the namespace of its keys, whose bounds it counts against.
    pub placer: Placer,
    /// Seed 002's `customer_id`, as stated: a reference echoed back, never the owner.
    pub stated_customer_id: Option<i64>,
    pub items: Vec<RequestedItem>,
    pub idempotency_key: Option<String>,
    /// Pay this now (the one-call order): the order is charged at once. It must equal
    /// the order's total (see [`Pricing`]).
    pub payment: Option<Money>,
    pub pricing: Pricing,
}

impl PlaceOrder {
    /// An order at catalogue prices, to be paid later.
    pub fn new(placer: Placer, items: Vec<RequestedItem>) -> PlaceOrder {
        PlaceOrder {
            placer,
            stated_customer_id: None,
            items,
            idempotency_key: None,
            payment: None,
            pricing: Pricing::Catalogue,
        }
    }
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
        && (key.is_empty() || key.chars().count() > 255)
    {
        return Err(OrderError::Validation(
            "idempotency key must be 1 to 255 characters".into(),
        ));
    }
    if request.payment.is_some_and(|p| p.amount <= 0) {
        return Err(OrderError::Validation("amount must be positive".into()));
    }
    if request.stated_customer_id.is_some_and(|c| c < 1) {
        return Err(OrderError::Validation(
            "customer_id must be a positive integer".into(),
        ));
    }
    if request.pricing == Pricing::StatedAmount
        && (request.payment.is_none() || request.items.len() != 1)
    {
        return Err(OrderError::Validation(
            "a one-call order names one item and the amount paid for it".into(),
        ));
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
            ItemRef::Sku(sku) if sku.trim().is_empty() || sku.chars().count() > 64 => {
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
        if item.quantity > MAX_QUANTITY {
            return Err(OrderError::Validation(format!(
                "quantity of {name} must be at most {MAX_QUANTITY}, got {}",
                item.quantity
            )));
        }
        *merged.entry(item.item.clone()).or_default() += i64::from(item.quantity);
    }
    // Lines of one item add up (to at most MAX_LINES x MAX_QUANTITY units).
    merged
        .into_iter()
        .map(|(item, quantity)| {
            let quantity = i32::try_from(quantity).map_err(|_| {
                OrderError::Validation("an order holds too many units of one item".into())
            })?;
            Ok(RequestedItem { item, quantity })
        })
        .collect()
}

/// What the request asked for, to tell a retry from a different order under the same
/// key. (The format is the one orders were stored with before keys had owners, so
/// their retries still match.)
fn fingerprint(request: &PlaceOrder, items: &[RequestedItem]) -> String {
    let items: Vec<String> = items
        .iter()
        .map(|i| match &i.item {
            ItemRef::Product(id) => format!("{id}x{}", i.quantity),
            ItemRef::Sku(sku) => format!("{sku}x{}", i.quantity),
        })
        .collect();
    let mut text = format!(
        "customer={};items={};pay={}",
        request
            .placer
            .customer_id
            .map(|c| c.to_string())
            .unwrap_or_default(),
        items.join(","),
        request.payment.map(|m| m.to_string()).unwrap_or_default()
    );
    if let Some(stated) = request.stated_customer_id {
        text.push_str(&format!(";stated_customer={stated}"));
    }
    text
}

/// Why placing failed, and whether the order exists anyway (then the claim is done).
struct Failure {
    error: OrderError,
    stored: bool,
}

impl From<OrderError> for Failure {
    fn from(error: OrderError) -> Self {
        Failure {
            error,
            stored: false,
        }
    }
}

/// Place an order. See the module docs for the steps.
#[tracing::instrument(skip_all, fields(customer_id = request.placer.customer_id, order_id))]
pub async fn place_order(ctx: &OrderContext, request: PlaceOrder) -> Result<Placed> {
    let items = normalise(&request)?;
    let fingerprint = fingerprint(&request, &items);
    let units = items.iter().map(|i| i64::from(i.quantity)).sum();
    let claim = match claims::claim(
        ctx,
        &ClaimRequest {
            placer: &request.placer,
            key: request.idempotency_key.as_deref(),
            fingerprint: &fingerprint,
            units,
        },
    )
    .await?
    {
        // A one-call order stored but never charged (the charge lost to a crash or
        // an outage): its retry charges it; the payment service answers a charge
        // already made for the order with that one.
        Claimed::Replay(order)
            if request.payment.is_some() && order.status == OrderStatus::Pending =>
        {
            return Ok(Placed::Replayed(
                pay_order::charge_and_settle(ctx, *order, Attempt::NoteFirst).await?,
            ));
        }
        Claimed::Replay(order) => return Ok(Placed::Replayed(*order)),
        Claimed::Mine(claim) => claim,
    };
    tracing::Span::current().record("order_id", claim.order_id);
    match place_claimed(ctx, &request, &items, &fingerprint, &claim).await {
        Ok(placed) => {
            // A charged order's claim was finished with the charge's outcome.
            let charged = matches!(
                placed.order().status,
                OrderStatus::Confirmed | OrderStatus::Failed
            );
            if !(charged && matches!(placed, Placed::New(_))) {
                claims::finish(ctx, &claim).await;
            }
            Ok(placed)
        }
        Err(Failure {
            error,
            stored: true,
        }) => {
            claims::finish(ctx, &claim).await;
            Err(error)
        }
        Err(Failure {
            error,
            stored: false,
        }) => {
            // The inventory said no, or was never asked: it holds nothing for the order.
            let inventory_refused = matches!(
                error,
                OrderError::Unavailable(_) | OrderError::NotStocked(_) | OrderError::Validation(_)
            );
            claims::abandon(ctx, &claim, inventory_refused).await;
            Err(error)
        }
    }
}

/// Steps 3 to 6, for the order id this request has claimed.
async fn place_claimed(
    ctx: &OrderContext,
    request: &PlaceOrder,
    items: &[RequestedItem],
    fingerprint: &str,
    claim: &Claim,
) -> std::result::Result<Placed, Failure> {
    let order_id = claim.order_id;
    let (lines, total) = price_lines(ctx, items, request.payment, request.pricing)
        .await
        .inspect_err(|e| {
            if matches!(e, OrderError::UnknownItems { .. }) {
                ctx.metrics
                    .orders_refused
                    .with_label_values(&["unknown_items"])
                    .inc();
            }
        })?;

    // One clock: the order must be paid by `pay_by`, and its stock is held as long.
    // The database keeps microseconds: the answer shows the times as stored, as a
    // replay or a read will.
    let now = Utc::now().trunc_subsecs(6);
    let pay_by = now + chrono::Duration::from_std(ctx.unpaid_timeout).unwrap_or_default();
    claims::note_reserve(ctx, claim, &stock_lines(&lines)).await?;
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
        pay_by,
    )
    .await
    .inspect_err(|e| {
        if matches!(e, OrderError::Unavailable(_) | OrderError::NotStocked(_)) {
            ctx.metrics
                .orders_refused
                .with_label_values(&["unavailable"])
                .inc();
        }
    })?;

    let order = Order::new(OrderParts {
        order_id,
        status: OrderStatus::Pending,
        payment_status: PaymentStatus::Pending,
        customer_id: request.placer.customer_id,
        stated_customer_id: request.stated_customer_id,
        items: lines,
        total,
        reservation_id: Some(reservation.reservation_id),
        pay_by,
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
    let key = request.idempotency_key.as_deref();
    // If storing fails, the claim is given up with its stock ([`claims::give_up`]):
    // unless the commit went through after all, then the claim is `stored` and stays.
    // A one-call order is charged next: the attempt is written down with it.
    let charge_now = request.payment.is_some();
    let stored = store(
        ctx,
        &order,
        NewOrderRow {
            idempotency_key: key,
            fingerprint,
            limit_owner: request.placer.bound_owner(),
            charge_now,
        },
    )
    .await?;
    if !stored {
        // Another attempt on this claim (a takeover) stored the order first, or the
        // claim was given up and its stock given back.
        let mut conn = ctx.pool.acquire().await.map_err(OrderError::from)?;
        return match orders::load(&mut conn, order_id).await {
            Ok(stored) => Ok(Placed::Replayed(stored)),
            Err(OrderError::NotFound(_)) => Err(OrderError::ClaimExpired { order_id }.into()),
            Err(err) => Err(err.into()),
        };
    }
    ctx.metrics.status_entered(OrderStatus::Pending);
    ctx.invalidate_order_caches(&order).await;
    tracing::debug!(order_id, total = %order.total, "order placed");

    if charge_now {
        // The one-call form: pay now; the answer is CONFIRMED or FAILED.
        let order = pay_order::charge_and_settle(ctx, order, Attempt::Noted)
            .await
            .map_err(|error| Failure {
                error,
                stored: true,
            })?;
        return Ok(Placed::New(order));
    }
    Ok(Placed::New(order))
}

/// The order's lines and its total; see [`Pricing`].
async fn price_lines(
    ctx: &OrderContext,
    items: &[RequestedItem],
    payment: Option<Money>,
    pricing: Pricing,
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
    let mut unknown_ids = Vec::new();
    let mut unknown_skus = Vec::new();
    for item in items {
        let product = match &item.item {
            ItemRef::Product(id) => by_id.get(id),
            ItemRef::Sku(sku) => by_sku.get(sku),
        };
        match (product, &item.item) {
            (Some(p), _) => lines.push(OrderLine::at_unit_price(
                Some(p.id),
                p.sku.clone(),
                p.name.clone(),
                item.quantity,
                p.price,
            )?),
            (None, ItemRef::Sku(sku)) if pricing == Pricing::StatedAmount => {
                let Some(paid) = payment else {
                    return Err(OrderError::Validation(
                        "a one-call order needs the amount and currency".into(),
                    ));
                };
                // Only the inventory knows it: it must be in stock (the reservation
                // says), and sells for the amount stated, as the line's total.
                lines.push(OrderLine::with_total(
                    None,
                    sku.clone(),
                    sku.clone(),
                    item.quantity,
                    paid,
                ));
            }
            (None, ItemRef::Sku(sku)) => unknown_skus.push(sku.clone()),
            (None, ItemRef::Product(id)) => unknown_ids.push(*id),
        }
    }
    if !unknown_ids.is_empty() || !unknown_skus.is_empty() {
        return Err(OrderError::UnknownItems {
            product_ids: unknown_ids,
            skus: unknown_skus,
        });
    }

    let total = total_of(&lines)?;
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

/// The sum of the lines' totals: one currency, and a sum that fits.
fn total_of(lines: &[OrderLine]) -> Result<Money> {
    let mut total: Option<Money> = None;
    for line in lines {
        total = Some(match total {
            None => line.line_total,
            Some(t) => t.checked_add(line.line_total).map_err(|e| match e {
                sales_contracts::money::MoneyError::CurrencyMismatch(..) => {
                    OrderError::MixedCurrencies(e.to_string())
                }
                _ => OrderError::TotalTooLarge,
            })?,
        });
    }
    total.ok_or_else(|| OrderError::Validation("order has no items".into()))
}

/// The units of each line, as `update-stock` and a claim's note carry them.
fn stock_lines(lines: &[OrderLine]) -> Vec<StockLine> {
    lines
        .iter()
        .map(|l| StockLine {
            product_id: l.product_id.unwrap_or_default(),
            sku: l.sku.clone(),
            quantity: l.quantity,
        })
        .collect()
}

/// The order, its lines and its events, and its claim marked `stored`, in one
/// transaction. `false` (nothing stored) if the claim is no longer in progress.
async fn store(ctx: &OrderContext, order: &Order, row: NewOrderRow<'_>) -> Result<bool> {
    let mut tx = ctx.pool.begin().await?;
    if !claims::mark_stored(&mut tx, order.order_id).await? {
        return Ok(false);
    }
    orders::insert(&mut tx, order, &row).await?;
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
                    line_total: Some(l.line_total),
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
            items: stock_lines(&order.items),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(items: &[(i64, i32)]) -> PlaceOrder {
        PlaceOrder::new(
            Placer {
                customer_id: None,
                key_owner: "anonymous".into(),
                bound: None,
            },
            items
                .iter()
                .map(|&(product_id, quantity)| RequestedItem::product(product_id, quantity))
                .collect(),
        )
    }

    #[test]
    fn lines_for_one_item_are_merged() {
        assert_eq!(
            normalise(&req(&[(2, 1), (1, 3), (2, 4)])).unwrap(),
            vec![RequestedItem::product(1, 3), RequestedItem::product(2, 5)]
        );
    }

    #[test]
    fn each_line_is_bounded_and_lines_of_one_product_add_up_past_it() {
        // The document bounds a line (1 to MAX_QUANTITY units, at most MAX_LINES
        // lines); lines of one product merge into one of any size those allow.
        let lines = vec![(1, MAX_QUANTITY); MAX_LINES];
        assert_eq!(
            normalise(&req(&lines)).unwrap(),
            vec![RequestedItem::product(
                1,
                MAX_QUANTITY * i32::try_from(MAX_LINES).unwrap()
            )]
        );
        let err = normalise(&req(&[(1, MAX_QUANTITY + 1)])).unwrap_err();
        assert!(err.to_string().contains("at most 10000"), "{err}");
    }

    #[test]
    fn a_total_the_catalogue_makes_impossible_is_a_conflict_not_bad_input() {
        use sales_contracts::Currency;
        let line =
            |price: Money| OrderLine::at_unit_price(Some(1), "A".into(), "A".into(), 2, price);
        let err = line(Money::new(i64::MAX / 2 + 1, Currency::USD)).unwrap_err();
        let answer = sales_platform::ApiError::from(err);
        assert_eq!(
            (answer.status.as_u16(), &*answer.code),
            (409, "total_too_large")
        );
        let eur: Currency = "EUR".parse().unwrap();
        let lines = [
            line(Money::new(100, Currency::USD)).unwrap(),
            line(Money::new(100, eur)).unwrap(),
        ];
        let answer = sales_platform::ApiError::from(total_of(&lines).unwrap_err());
        assert_eq!(
            (answer.status.as_u16(), &*answer.code),
            (409, "mixed_currencies")
        );
        let big = line(Money::new(i64::MAX / 2, Currency::USD)).unwrap();
        let answer = sales_platform::ApiError::from(total_of(&[big.clone(), big]).unwrap_err());
        assert_eq!(answer.code, "total_too_large");
        assert_eq!(
            total_of(&lines[..1]).unwrap(),
            Money::new(200, Currency::USD)
        );
    }

    #[test]
    fn bad_requests_are_refused_with_reasons() {
        let msg = |r: PlaceOrder| normalise(&r).unwrap_err().to_string();
        assert!(msg(req(&[])).contains("at least one item"));
        assert!(msg(req(&[(1, 0)])).contains("at least 1"));
        assert!(msg(req(&[(1, -5)])).contains("at least 1"));
        assert!(msg(req(&[(0, 1)])).contains("positive integer"));
        assert!(msg(req(&[(1, MAX_QUANTITY + 1)])).contains("at most"));
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
