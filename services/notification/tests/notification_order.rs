//! An order's notifications read in the order its changes happened, whatever order
//! their messages arrive in: each kind of event has its own queue or topic, so a
//! payment's message can be handled before the order's own (seen on Kafka, where the
//! order's groups form one after the other).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{Duration, Utc};
use notification_service::notifications::{NotificationConsumer, list};
use sales_contracts::Envelope;
use sales_contracts::events::{CreateOrder, PaidOrder};
use sales_contracts::money::{Currency, Money};
use sales_platform::messaging::MessageHandler;
use sales_testkit::TestDatabase;

#[tokio::test]
async fn a_payment_heard_before_its_order_is_listed_after_it() {
    let db = TestDatabase::create("notification_order").await;
    let pool = db.pool().await;
    sqlx::migrate!("./migrations").run(&pool).await.unwrap();
    let placed_at = Utc::now() - Duration::seconds(2);
    let total = Money::new(1250, Currency::USD);
    let mut placed = Envelope::new(
        "order",
        CreateOrder {
            order_id: 7,
            customer_id: Some(3),
            status: "PENDING".into(),
            items: Vec::new(),
            total,
            created_at: placed_at,
            pay_by: placed_at + Duration::minutes(30),
        },
    )
    .into_json();
    placed.occurred_at = placed_at;
    let mut paid = Envelope::new(
        "payment",
        PaidOrder {
            order_id: 7,
            customer_id: Some(3),
            status: "CONFIRMED".into(),
            total,
            paid_at: placed_at + Duration::seconds(1),
        },
    )
    .into_json();
    paid.occurred_at = placed_at + Duration::seconds(1);

    // The payment's message first.
    for envelope in [&paid, &placed] {
        let mut tx = pool.begin().await.unwrap();
        NotificationConsumer
            .handle(&mut tx, envelope)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    let mut conn = pool.acquire().await.unwrap();
    let newest_first: Vec<String> = list(&mut conn, Some(7), None, 10, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.order_status)
        .collect();
    assert_eq!(newest_first, ["CONFIRMED", "PENDING"]);
    drop(conn);
    pool.close().await;
    db.drop_database().await;
}
