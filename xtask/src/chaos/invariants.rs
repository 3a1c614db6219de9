//! What must hold after a chaos run, checked against the services' own databases,
//! the broker's dead-letter queues, and what the clients were told.
//!
//! [`read_world`] reads; [`check`] judges, and is a plain function of what was read,
//! so the tests below plant violations in scratch databases and see it report them.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use sqlx::{Connection as _, PgConnection};

use super::broker_api::DeadLetter;
use super::load::Told;

/// The invariants, in the report's column order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// Every order is final, or PENDING with its pay-by time ahead and unpaid.
    Settled,
    /// What a client was told (placed, paid, declined, cancelled) is what the order is.
    Acknowledged,
    /// Per SKU: on hand + sold = initial, reserved = what open reservations hold;
    /// each order's reservation in the state its order implies.
    Stock,
    /// Per order: captured - refunded = its total if paid, else 0; no payment without
    /// its order.
    Money,
    /// Exactly one shipment per paid order, none for another.
    Shipments,
    /// Each status change notified exactly once.
    Notifications,
    /// No idempotency key mapped to two orders.
    Idempotency,
    /// Every dead-letter queue empty.
    DeadLetters,
    /// No answer was a 500: an outage is a 502, 503 or 504 that says so; a 500 is a bug.
    Answers,
}

impl Invariant {
    pub const ALL: [Invariant; 9] = [
        Invariant::Settled,
        Invariant::Acknowledged,
        Invariant::Stock,
        Invariant::Money,
        Invariant::Shipments,
        Invariant::Notifications,
        Invariant::Idempotency,
        Invariant::DeadLetters,
        Invariant::Answers,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Invariant::Settled => "settled",
            Invariant::Acknowledged => "acknowledged kept",
            Invariant::Stock => "stock",
            Invariant::Money => "money",
            Invariant::Shipments => "shipments",
            Invariant::Notifications => "notifications",
            Invariant::Idempotency => "idempotency",
            Invariant::DeadLetters => "dead letters",
            Invariant::Answers => "no 500",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub invariant: Invariant,
    /// The order it concerns, when it concerns one.
    pub order_id: Option<i64>,
    pub detail: String,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct OrderRow {
    pub id: i64,
    pub status: String,
    pub total_amount: i64,
    pub customer_id: Option<i64>,
    pub idempotency_key: Option<String>,
    pub pay_by: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PaymentRow {
    pub id: i64,
    pub order_id: i64,
    pub source: String,
    pub amount_minor: i64,
    pub status: String,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ReservationLine {
    pub reservation_id: i64,
    pub order_id: Option<i64>,
    pub status: String,
    pub sku: String,
    pub quantity: i32,
}

/// What the services hold after the run.
#[derive(Clone, Debug, Default)]
pub struct World {
    pub orders: Vec<OrderRow>,
    pub payments: Vec<PaymentRow>,
    /// (sku, on hand, reserved)
    pub stock: Vec<(String, i32, i32)>,
    pub reservation_lines: Vec<ReservationLine>,
    /// The order of each shipment.
    pub shipments: Vec<i64>,
    /// (order, event) of each notification.
    pub notifications: Vec<(i64, String)>,
    pub dead_letters: Vec<DeadLetter>,
}

/// What the run started with and the clients were told.
#[derive(Clone, Debug, Default)]
pub struct Expected {
    pub initial_stock: BTreeMap<String, i64>,
    pub told: BTreeMap<i64, Told>,
    pub keys: BTreeMap<String, BTreeSet<i64>>,
    pub now: DateTime<Utc>,
}

/// The databases to read, by the service that owns each.
pub struct Databases {
    pub orders: String,
    pub payments: String,
    pub inventory: String,
    pub shipping: String,
    pub notifications: String,
}

async fn connect(url: &str) -> Result<PgConnection> {
    PgConnection::connect(url)
        .await
        .with_context(|| format!("connecting to {}", crate::infra::redact(url)))
}

/// Read every table the invariants speak of (dead letters come from the broker).
pub async fn read_world(dbs: &Databases, dead_letters: Vec<DeadLetter>) -> Result<World> {
    let orders = sqlx::query_as(
        "select id, status, total_amount, customer_id, idempotency_key, pay_by, created_at from orders",
    )
    .fetch_all(&mut connect(&dbs.orders).await?)
    .await?;
    let payments =
        sqlx::query_as("select id, order_id, source, amount_minor, status from payments")
            .fetch_all(&mut connect(&dbs.payments).await?)
            .await?;
    let mut inventory = connect(&dbs.inventory).await?;
    let stock = sqlx::query_as("select sku, on_hand, reserved from stock_items")
        .fetch_all(&mut inventory)
        .await?;
    let reservation_lines = sqlx::query_as(
        "select r.id as reservation_id, r.order_id, r.status, l.sku, l.quantity
         from reservations r join reservation_lines l on l.reservation_id = r.id",
    )
    .fetch_all(&mut inventory)
    .await?;
    let shipments = sqlx::query_scalar("select order_id from shipments")
        .fetch_all(&mut connect(&dbs.shipping).await?)
        .await?;
    let notifications = sqlx::query_as("select order_id, event from notifications")
        .fetch_all(&mut connect(&dbs.notifications).await?)
        .await?;
    Ok(World {
        orders,
        payments,
        stock,
        reservation_lines,
        shipments,
        notifications,
        dead_letters,
    })
}

/// How long after its pay-by time an unpaid order may still be PENDING: the order
/// service looks for such orders every 5 s (`UNPAID_ORDER_SWEEP_EVERY`); three sweeps.
const SWEEP_GRACE: chrono::Duration = chrono::Duration::seconds(15);

fn paid(status: &str) -> bool {
    matches!(status, "CONFIRMED" | "SHIPPED" | "DELIVERED")
}

/// Every violation of every invariant.
/// A violation for each kind of 500 answer the clients got (`errors`: failed attempts
/// by kind, as the load counts them: `place order: 500`, `pay order: 500 (final)`).
pub fn server_errors(errors: &BTreeMap<String, u64>) -> Vec<Violation> {
    errors
        .iter()
        .filter(|(kind, _)| {
            kind.rsplit(": ")
                .next()
                .is_some_and(|status| status.starts_with("500"))
        })
        .map(|(kind, n)| Violation {
            invariant: Invariant::Answers,
            order_id: None,
            detail: format!("{kind}: {n} answer(s); the services' logs name the cause"),
        })
        .collect()
}

pub fn check(world: &World, expected: &Expected) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut v = |invariant, order_id: Option<i64>, detail: String| {
        out.push(Violation {
            invariant,
            order_id,
            detail,
        });
    };
    let orders: BTreeMap<i64, &OrderRow> = world.orders.iter().map(|o| (o.id, o)).collect();
    // Net money captured per order (canonical payments: seed routes' stand apart).
    let mut captured: BTreeMap<i64, i64> = BTreeMap::new();
    for p in world.payments.iter().filter(|p| p.source == "canonical") {
        let net = if p.status == "confirmed" {
            p.amount_minor
        } else {
            0
        };
        *captured.entry(p.order_id).or_default() += net;
        if !orders.contains_key(&p.order_id) {
            v(
                Invariant::Money,
                Some(p.order_id),
                format!(
                    "payment {} ({}, {} cents) for order {} that does not exist",
                    p.id, p.status, p.amount_minor, p.order_id
                ),
            );
        }
    }

    for o in orders.values() {
        let (id, status) = (o.id, o.status.as_str());
        // Settled.
        if status == "PENDING" {
            if o.pay_by + SWEEP_GRACE <= expected.now {
                v(
                    Invariant::Settled,
                    Some(id),
                    format!(
                        "order {id} is still PENDING {} s after its pay-by time",
                        (expected.now - o.pay_by).num_seconds()
                    ),
                );
            } else if captured.get(&id).copied().unwrap_or(0) > 0 {
                v(
                    Invariant::Settled,
                    Some(id),
                    format!("order {id} is PENDING but its payment was captured"),
                );
            }
        }
        // Money.
        let net = captured.get(&id).copied().unwrap_or(0);
        let due = if paid(status) { o.total_amount } else { 0 };
        if net != due {
            v(
                Invariant::Money,
                Some(id),
                format!(
                    "order {id} is {status} with a total of {} cents: captured - refunded is {net} cents, expected {due}",
                    o.total_amount
                ),
            );
        }
    }

    // Acknowledged.
    for (id, told) in &expected.told {
        let Some(o) = orders.get(id) else {
            v(
                Invariant::Acknowledged,
                Some(*id),
                format!("order {id} was acknowledged to its client ({told:?}) but does not exist"),
            );
            continue;
        };
        let ok = match told {
            Told::Placed => true,
            Told::Paid => paid(&o.status),
            Told::Declined => o.status == "FAILED",
            Told::Cancelled => o.status == "CANCELLED",
            Told::PaidAndCancelled => false,
        };
        if !ok {
            v(
                Invariant::Acknowledged,
                Some(*id),
                format!(
                    "order {id}: its client was told {told:?}, the order is {}",
                    o.status
                ),
            );
        }
    }

    check_stock(world, expected, &orders, &mut v);

    // Shipments.
    let shipped: BTreeSet<i64> = world.shipments.iter().copied().collect();
    for o in orders
        .values()
        .filter(|o| paid(&o.status) && !shipped.contains(&o.id))
    {
        v(
            Invariant::Shipments,
            Some(o.id),
            format!("paid order {} ({}) has no shipment", o.id, o.status),
        );
    }
    for id in &shipped {
        match orders.get(id) {
            Some(o) if paid(&o.status) => {}
            Some(o) => v(
                Invariant::Shipments,
                Some(*id),
                format!("order {id} is {} but has a shipment", o.status),
            ),
            None => v(
                Invariant::Shipments,
                Some(*id),
                format!("a shipment for order {id} that does not exist"),
            ),
        }
    }

    // Notifications: each exactly once.
    let mut notified: BTreeMap<(i64, &str), usize> = BTreeMap::new();
    for (order_id, event) in &world.notifications {
        *notified.entry((*order_id, event.as_str())).or_default() += 1;
    }
    for ((order_id, event), n) in &notified {
        if *n > 1 {
            v(
                Invariant::Notifications,
                Some(*order_id),
                format!("order {order_id}: {event} notified {n} times"),
            );
        }
        if !orders.contains_key(order_id) {
            v(
                Invariant::Notifications,
                Some(*order_id),
                format!("{event} notified for order {order_id} that does not exist"),
            );
        }
    }
    for o in orders.values() {
        let mut due = vec!["create-order"];
        match o.status.as_str() {
            s if paid(s) => due.push("paid-order"),
            "FAILED" => due.push("order-failed"),
            "CANCELLED" => due.push("cancel-order"),
            _ => {}
        }
        for event in due
            .into_iter()
            .filter(|e| !notified.contains_key(&(o.id, *e)))
        {
            v(
                Invariant::Notifications,
                Some(o.id),
                format!("order {} ({}): {event} never notified", o.id, o.status),
            );
        }
    }

    // Idempotency.
    let mut by_key: BTreeMap<(Option<i64>, &str), Vec<i64>> = BTreeMap::new();
    for o in orders.values() {
        if let Some(key) = &o.idempotency_key {
            by_key
                .entry((o.customer_id, key.as_str()))
                .or_default()
                .push(o.id);
        }
    }
    for ((customer, key), ids) in by_key.iter().filter(|(_, ids)| ids.len() > 1) {
        v(
            Invariant::Idempotency,
            ids.first().copied(),
            format!("customer {customer:?}'s key {key} is on orders {ids:?}"),
        );
    }
    for (key, ids) in expected.keys.iter().filter(|(_, ids)| ids.len() > 1) {
        v(
            Invariant::Idempotency,
            ids.first().copied(),
            format!("key {key} was answered with orders {ids:?}"),
        );
    }

    for d in &world.dead_letters {
        v(
            Invariant::DeadLetters,
            d.order_id,
            format!(
                "{} in {} (order {:?}): {}",
                d.message_type,
                d.queue,
                d.order_id,
                d.reason.as_deref().unwrap_or("no reason given")
            ),
        );
    }
    out
}

/// The run's sums: money captured and owed, units stocked, on hand, sold, reserved.
pub fn totals(world: &World, expected: &Expected) -> String {
    let captured: i64 = world
        .payments
        .iter()
        .filter(|p| p.source == "canonical" && p.status == "confirmed")
        .map(|p| p.amount_minor)
        .sum();
    let refunded: i64 = world
        .payments
        .iter()
        .filter(|p| p.source == "canonical" && p.status == "refunded")
        .map(|p| p.amount_minor)
        .sum();
    let owed: i64 = world
        .orders
        .iter()
        .filter(|o| paid(&o.status))
        .map(|o| o.total_amount)
        .sum();
    let stocked: i64 = expected.initial_stock.values().sum();
    let on_hand: i64 = world.stock.iter().map(|s| i64::from(s.1)).sum();
    let reserved: i64 = world.stock.iter().map(|s| i64::from(s.2)).sum();
    let sold: i64 = world
        .reservation_lines
        .iter()
        .filter(|l| l.status == "committed")
        .map(|l| i64::from(l.quantity))
        .sum();
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for o in &world.orders {
        *by_status.entry(&o.status).or_default() += 1;
    }
    format!(
        "orders in the database by status: {by_status:?}; money: captured {:.2} (and {:.2} captured then refunded), paid orders' totals {:.2}; stock: {stocked} stocked, {on_hand} on hand, {sold} sold, {reserved} reserved",
        captured as f64 / 100.0,
        refunded as f64 / 100.0,
        owed as f64 / 100.0
    )
}

fn check_stock(
    world: &World,
    expected: &Expected,
    orders: &BTreeMap<i64, &OrderRow>,
    v: &mut impl FnMut(Invariant, Option<i64>, String),
) {
    let mut sold: BTreeMap<&str, i64> = BTreeMap::new();
    let mut held: BTreeMap<&str, i64> = BTreeMap::new();
    // Each reservation's state once, with its units.
    let mut reservations: BTreeMap<i64, (Option<i64>, &str, i64)> = BTreeMap::new();
    for l in &world.reservation_lines {
        match l.status.as_str() {
            "committed" => *sold.entry(&l.sku).or_default() += i64::from(l.quantity),
            "pending" | "held" => *held.entry(&l.sku).or_default() += i64::from(l.quantity),
            _ => {}
        }
        reservations
            .entry(l.reservation_id)
            .or_insert((l.order_id, &l.status, 0))
            .2 += i64::from(l.quantity);
    }
    for (sku, on_hand, reserved) in &world.stock {
        let Some(initial) = expected.initial_stock.get(sku) else {
            continue;
        };
        let sold = sold.get(sku.as_str()).copied().unwrap_or(0);
        let held = held.get(sku.as_str()).copied().unwrap_or(0);
        if i64::from(*on_hand) + sold != *initial {
            v(
                Invariant::Stock,
                None,
                format!(
                    "{sku}: on hand {on_hand} + sold {sold} = {}, but {initial} were stocked ({} units {})",
                    i64::from(*on_hand) + sold,
                    (i64::from(*on_hand) + sold - initial).abs(),
                    if i64::from(*on_hand) + sold < *initial {
                        "lost"
                    } else {
                        "made up"
                    }
                ),
            );
        }
        if i64::from(*reserved) != held {
            v(
                Invariant::Stock,
                None,
                format!("{sku}: {reserved} reserved, but open reservations hold {held}"),
            );
        }
    }
    for (rid, (order_id, status, units)) in &reservations {
        let Some(order_id) = order_id else { continue };
        let expected_state: &[&str] = match orders.get(order_id).map(|o| o.status.as_str()) {
            Some(s) if paid(s) => &["committed"],
            Some("PENDING") => &["pending", "held"],
            Some(_) => &["released"],
            // An order id taken, stock reserved, the order never stored: nothing may stay locked.
            None => &["released"],
        };
        if !expected_state.contains(status) {
            let what = orders
                .get(order_id)
                .map_or("does not exist", |o| o.status.as_str());
            v(
                Invariant::Stock,
                Some(*order_id),
                format!(
                    "order {order_id} {}{what}, but its reservation {rid} is {status} ({units} units)",
                    if orders.contains_key(order_id) {
                        "is "
                    } else {
                        ""
                    }
                ),
            );
        }
    }
    for o in orders.values().filter(|o| paid(&o.status)) {
        if !reservations.values().any(|(id, _, _)| *id == Some(o.id)) {
            v(
                Invariant::Stock,
                Some(o.id),
                format!(
                    "paid order {} has no reservation: its stock was never taken",
                    o.id
                ),
            );
        }
    }
}

#[cfg(test)]
#[path = "invariants_tests.rs"]
mod tests;
