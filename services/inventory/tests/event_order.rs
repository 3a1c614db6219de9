//! The inventory's messages about one order (`update-stock`, `paid-order`,
//! `restore-canceled-item`) give the same stock and the same reservation whatever
//! order they arrive in, delivered twice or replayed from the dead-letter queue later
//! (issue 12). Each message is handed to the consumer's handler directly, in its own
//! transaction, as the consumer does, on a real database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::Utc;
use inventory_service::consumers::InventoryConsumer;
use inventory_service::reservations::{self, Origin};
use sales_contracts::api::stock::ReservationLine;
use sales_contracts::events::{
    CanceledItem, PaidOrder, RestoreCanceledItem, StockLine, UpdateStock,
};
use sales_contracts::{Currency, Envelope, Money};
use sales_platform::messaging::{HandlerError, MessageHandler};
use sales_testkit::TestDatabase;
use sqlx::PgPool;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    Hold,
    Commit,
    Restore,
}

const INITIAL: i32 = 10;
const QUANTITY: i32 = 2;

fn envelope(event: Event, order_id: i64, sku: &str) -> Envelope {
    match event {
        Event::Hold => Envelope::new(
            "order",
            UpdateStock {
                order_id,
                user_id: None,
                items: vec![StockLine {
                    product_id: 1,
                    sku: sku.into(),
                    quantity: QUANTITY,
                }],
            },
        )
        .into_json(),
        Event::Commit => Envelope::new(
            "order",
            PaidOrder {
                order_id,
                customer_id: None,
                status: "CONFIRMED".into(),
                total: Money::new(100, Currency::USD),
                paid_at: Utc::now(),
            },
        )
        .into_json(),
        Event::Restore => Envelope::new(
            "order",
            RestoreCanceledItem {
                items: vec![CanceledItem {
                    order_id,
                    product_id: 1,
                    sku: sku.into(),
                    quantity: QUANTITY,
                }],
            },
        )
        .into_json(),
    }
}

async fn deliver(pool: &PgPool, message: &Envelope) -> Result<(), HandlerError> {
    let mut tx = pool.begin().await.unwrap();
    let outcome = InventoryConsumer.handle(&mut tx, message).await;
    if outcome.is_ok() {
        tx.commit().await.unwrap();
    }
    outcome
}

/// (reservation status, on hand, reserved) of `order_id` and its SKU.
async fn state(pool: &PgPool, order_id: i64, sku: &str) -> (Option<String>, i32, i32) {
    let status: Option<String> =
        sqlx::query_scalar("select status from reservations where order_id = $1")
            .bind(order_id)
            .fetch_optional(pool)
            .await
            .unwrap();
    let (on_hand, reserved): (i32, i32) =
        sqlx::query_as("select on_hand, reserved from stock_items where sku = $1")
            .bind(sku)
            .fetch_one(pool)
            .await
            .unwrap();
    (status, on_hand, reserved)
}

fn permutations(events: &[Event]) -> Vec<Vec<Event>> {
    if events.len() <= 1 {
        return vec![events.to_vec()];
    }
    let mut all = Vec::new();
    for i in 0..events.len() {
        let mut rest = events.to_vec();
        let first = rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, first);
            all.push(tail);
        }
    }
    all
}

struct Scenario {
    pool: PgPool,
    next_order: i64,
}

impl Scenario {
    async fn new(db: &TestDatabase) -> Scenario {
        let pool = db.pool().await;
        sqlx::migrate!().run(&pool).await.unwrap();
        Scenario {
            pool,
            next_order: 1,
        }
    }

    /// A fresh SKU with [`INITIAL`] units and an order id; the order reserved its
    /// units first (as the order service does) when `reserved_first`.
    async fn order(&mut self, reserved_first: bool) -> (i64, String) {
        let order_id = self.next_order;
        self.next_order += 1;
        let sku = format!("SKU-{order_id}");
        sqlx::query("insert into stock_items (sku, on_hand) values ($1, $2)")
            .bind(&sku)
            .bind(INITIAL)
            .execute(&self.pool)
            .await
            .unwrap();
        if reserved_first {
            reservations::reserve_stock(
                &self.pool,
                Origin::Canonical,
                Some(order_id),
                &[ReservationLine {
                    sku: sku.clone(),
                    quantity: QUANTITY,
                }],
                Duration::from_secs(600),
            )
            .await
            .unwrap();
        }
        (order_id, sku)
    }

    /// Deliver `sequence`, then each message once more (a redelivery under another
    /// message id, or a replay from the dead-letter queue): every delivery is
    /// accepted, and the end is `expected`.
    async fn check(
        &mut self,
        reserved_first: bool,
        sequence: &[Event],
        expected: (&str, i32, i32),
    ) {
        let (order_id, sku) = self.order(reserved_first).await;
        let messages: Vec<Envelope> = sequence
            .iter()
            .map(|e| envelope(*e, order_id, &sku))
            .collect();
        for (event, message) in sequence.iter().zip(&messages) {
            let outcome = deliver(&self.pool, message).await;
            assert!(
                outcome.is_ok(),
                "{sequence:?} (reserved first: {reserved_first}): {event:?} refused: {outcome:?}"
            );
        }
        for (event, message) in sequence.iter().zip(&messages) {
            let again = envelope(*event, order_id, &sku);
            for replay in [message, &again] {
                let outcome = deliver(&self.pool, replay).await;
                assert!(
                    outcome.is_ok(),
                    "{sequence:?} (reserved first: {reserved_first}): {event:?} again refused: {outcome:?}"
                );
            }
        }
        let (status, on_hand, reserved) = state(&self.pool, order_id, &sku).await;
        assert_eq!(
            (status.as_deref(), on_hand, reserved),
            (Some(expected.0), expected.1, expected.2),
            "{sequence:?} (reserved first: {reserved_first})"
        );
    }
}

#[tokio::test]
async fn a_cancelled_order_gives_its_stock_back_whatever_the_order_of_its_messages() {
    let db = TestDatabase::create("inventory_event_order").await;
    let mut s = Scenario::new(&db).await;
    for sequence in permutations(&[Event::Hold, Event::Commit, Event::Restore]) {
        s.check(true, &sequence, ("released", INITIAL, 0)).await;
    }
    for sequence in permutations(&[Event::Hold, Event::Restore]) {
        s.check(true, &sequence, ("released", INITIAL, 0)).await;
        // A producer that only sends update-stock (seed 000): a restore that comes
        // first leaves a mark, and the late update-stock takes nothing.
        s.check(false, &sequence, ("released", INITIAL, 0)).await;
    }
    s.pool.close().await;
    db.drop_database().await;
}

#[tokio::test]
async fn a_paid_order_sells_its_stock_once_whatever_the_order_of_its_messages() {
    let db = TestDatabase::create("inventory_event_order").await;
    let mut s = Scenario::new(&db).await;
    for sequence in permutations(&[Event::Hold, Event::Commit]) {
        s.check(true, &sequence, ("committed", INITIAL - QUANTITY, 0))
            .await;
    }
    s.check(
        false,
        &[Event::Hold, Event::Commit],
        ("committed", INITIAL - QUANTITY, 0),
    )
    .await;
    s.pool.close().await;
    db.drop_database().await;
}

#[tokio::test]
async fn a_payment_for_stock_never_reserved_waits_in_the_dead_letter_queue_and_a_replay_sells_it() {
    let db = TestDatabase::create("inventory_event_order").await;
    let mut s = Scenario::new(&db).await;
    let (order_id, sku) = s.order(false).await;
    let paid = envelope(Event::Commit, order_id, &sku);
    match deliver(&s.pool, &paid).await {
        Err(HandlerError::Rejected(reason)) => assert!(
            reason.contains(&format!("order {order_id}")),
            "the reason names the order: {reason}"
        ),
        other => panic!("a paid-order before any stock was reserved is refused: {other:?}"),
    }
    deliver(&s.pool, &envelope(Event::Hold, order_id, &sku))
        .await
        .unwrap();
    deliver(&s.pool, &paid).await.unwrap();
    assert_eq!(
        state(&s.pool, order_id, &sku).await,
        (Some("committed".into()), INITIAL - QUANTITY, 0)
    );
    s.pool.close().await;
    db.drop_database().await;
}

#[tokio::test]
async fn a_reservation_that_expired_before_its_paid_order_came_is_sold_again_from_free_stock() {
    let db = TestDatabase::create("inventory_event_order").await;
    let mut s = Scenario::new(&db).await;
    let (order_id, sku) = s.order(true).await;
    sqlx::query(
        "update reservations set expires_at = now() - interval '1 second' where order_id = $1",
    )
    .bind(order_id)
    .execute(&s.pool)
    .await
    .unwrap();
    assert_eq!(reservations::expire_pending(&s.pool).await.unwrap(), 1);
    assert_eq!(
        state(&s.pool, order_id, &sku).await,
        (Some("released".into()), INITIAL, 0)
    );
    // The order was paid at its last moment; its paid-order comes after the expiry.
    deliver(&s.pool, &envelope(Event::Commit, order_id, &sku))
        .await
        .unwrap();
    deliver(&s.pool, &envelope(Event::Hold, order_id, &sku))
        .await
        .unwrap();
    assert_eq!(
        state(&s.pool, order_id, &sku).await,
        (Some("committed".into()), INITIAL - QUANTITY, 0),
        "a paid order never finds its stock gone while there is stock"
    );
    s.pool.close().await;
    db.drop_database().await;
}
