//! A consumer told to stop finishes what it holds: SIGTERM a consumer process while
//! messages flow, and every message is still handled exactly once (by it before it
//! exits, or redelivered to the other consumer).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use sales_contracts::events::{CreateOrder, OrderLine};
use sales_contracts::{Currency, Envelope, Event, Money};
use sales_testkit::launch::{Process, Service};
use system_tests::{System, bin_dir, free_port};

const MESSAGES: i64 = 1500;

fn order(order_id: i64) -> Envelope {
    let now = chrono::Utc::now();
    Envelope::new(
        "test",
        CreateOrder {
            order_id,
            customer_id: None,
            status: "PENDING".into(),
            items: vec![OrderLine {
                product_id: 1,
                sku: "X".into(),
                quantity: 1,
                unit_price: Money::new(100, Currency::USD),
                line_total: Some(Money::new(100, Currency::USD)),
            }],
            total: Money::new(100, Currency::USD),
            created_at: now,
            pay_by: now,
        },
    )
    .into_json()
}

#[tokio::test]
async fn a_consumer_stopped_mid_stream_loses_and_repeats_nothing() {
    let mut sys = System::start().await;
    // A second notification process: two consumers on each queue.
    let mut wiring = sys.wiring.clone();
    wiring
        .ports
        .insert(Service::Notification, (free_port(), free_port()));
    let mut second = Process::spawn(
        Service::Notification,
        &bin_dir(),
        &wiring,
        Stdio::inherit(),
        Stdio::inherit(),
    )
    .unwrap();
    sales_testkit::wait_ready(
        &format!("{}/ready", wiring.base_url(Service::Notification)),
        Duration::from_secs(30),
    )
    .await
    .unwrap();

    let db = sqlx::PgPool::connect(&sys.wiring.database_urls[&Service::Notification])
        .await
        .unwrap();
    let handled = |db: &sqlx::PgPool| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "select count(*) from notifications where event = 'create-order'",
            )
            .fetch_one(&db)
            .await
            .unwrap()
        }
    };

    // Publish every message (confirmed), in a task, while we stop a consumer.
    let amqp = sales_testkit::amqp_url();
    let exchange =
        sales_contracts::topology::Topology::new(sys.wiring.amqp_prefix.clone()).exchange();
    let publisher = tokio::spawn(async move {
        let conn = lapin::Connection::connect(&amqp, Default::default())
            .await
            .unwrap();
        let channel = conn.create_channel().await.unwrap();
        channel.confirm_select(Default::default()).await.unwrap();
        for id in 1..=MESSAGES {
            let body = serde_json::to_vec(&order(id)).unwrap();
            channel
                .basic_publish(
                    exchange.as_str().into(),
                    CreateOrder::TYPE.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .unwrap()
                .await
                .unwrap();
        }
        let _ = conn.close(200, "done".into()).await;
    });

    // Once work is flowing, stop the first process: it must finish what it holds.
    sales_testkit::eventually("messages to flow", Duration::from_secs(30), || async {
        (handled(&db).await >= 100).then_some(())
    })
    .await;
    let first = sys.processes.get_mut(&Service::Notification).unwrap();
    let status = first
        .terminate(Duration::from_secs(25))
        .expect("the process exits");
    assert!(
        status.success(),
        "the stopped consumer exited with {status}"
    );
    let at_stop = handled(&db).await;
    assert!(
        at_stop < MESSAGES,
        "stopped too late to prove anything ({at_stop} handled)"
    );

    publisher.await.unwrap();
    sales_testkit::eventually("every message handled", Duration::from_secs(60), || async {
        (handled(&db).await == MESSAGES).then_some(())
    })
    .await;
    // Exactly once: one notification per message and per order, nothing parked.
    let distinct: i64 = sqlx::query_scalar(
        "select count(distinct order_id) from notifications where event = 'create-order'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(distinct, MESSAGES);
    let admin = wiring.admin_url(Service::Notification);
    let operator = sys.admin_token().await;
    let parked: serde_json::Value = reqwest::Client::new()
        .get(format!("{admin}/admin/dead-letters"))
        .bearer_auth(operator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        parked
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q["dead_letters"] == 0),
        "{parked}"
    );
    second.terminate(Duration::from_secs(25));
    sys.stop().await;
}
