//! A consumer told to stop finishes what it holds: SIGTERM a consumer process while
//! messages flow, and every message is still handled exactly once (by it before it
//! exits, or redelivered to the other consumer). On RabbitMQ and on Kafka; on Kafka
//! also SIGKILL: the group gives the dead member's partitions to the other, from the
//! last offsets committed, and the inbox drops what it had handled past them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use sales_contracts::events::{CreateOrder, OrderLine};
use sales_contracts::{Currency, Envelope, Event, Money};
use sales_testkit::launch::{Process, Service};
use system_tests::{System, SystemOptions, bin_dir, free_port};

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
    stopped_mid_stream(false, Stop::Term).await;
}

#[tokio::test]
async fn on_kafka_a_consumer_stopped_mid_stream_loses_and_repeats_nothing() {
    stopped_mid_stream(true, Stop::Term).await;
}

/// Ignored against the local broker: tansu 0.6.0 does not always recover a consumer
/// group from a SIGKILLed member. Seen here: the survivor's partitions are revoked once
/// the dead member's session expires, and its rejoin is never answered with an
/// assignment (docs/messaging.md). Run it against a real Kafka:
/// `SALES_KAFKA_BOOTSTRAP=host:9092 cargo nextest run --run-ignored only -E 'test(killed_mid_stream)'`.
#[tokio::test]
#[ignore = "tansu 0.6.0 leaves a group without assignment after a member is killed; run against real Kafka"]
async fn on_kafka_a_consumer_killed_mid_stream_loses_and_repeats_nothing() {
    stopped_mid_stream(true, Stop::Kill).await;
}

#[derive(PartialEq)]
enum Stop {
    /// SIGTERM: it finishes what it holds and leaves.
    Term,
    /// SIGKILL: it just dies.
    Kill,
}

async fn stopped_mid_stream(kafka: bool, stop: Stop) {
    let mut sys = System::start_with(SystemOptions {
        kafka,
        ..SystemOptions::default()
    })
    .await;
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

    // Publish every message (acknowledged), while we stop a consumer. Keyed by order,
    // so on Kafka they spread over every partition.
    let messages: Vec<(String, Vec<u8>)> = (1..=MESSAGES)
        .map(|id| (id.to_string(), serde_json::to_vec(&order(id)).unwrap()))
        .collect();
    let publisher = sys.publisher();
    let mut publishing = tokio::spawn(async move {
        publisher
            .publish_many(CreateOrder::TYPE.as_str(), &messages)
            .await
    });
    let mut published = false;

    // Once work is flowing, stop the first process: it must finish what it holds.
    let flowing =
        sales_testkit::eventually("messages to flow", Duration::from_secs(30), || async {
            (handled(&db).await >= 100).then_some(())
        });
    tokio::select! {
        _ = flowing => {}
        done = &mut publishing => {
            done.unwrap();
            published = true;
            sales_testkit::eventually("messages to flow", Duration::from_secs(30), || async {
                (handled(&db).await >= 100).then_some(())
            })
            .await;
        }
    }
    let first = sys.processes.get_mut(&Service::Notification).unwrap();
    if stop == Stop::Kill {
        let _ = first.child.kill();
        let _ = first.child.wait();
    } else {
        let status = first
            .terminate(Duration::from_secs(25))
            .expect("the process exits");
        assert!(
            status.success(),
            "the stopped consumer exited with {status}"
        );
    }
    let at_stop = handled(&db).await;
    assert!(
        at_stop < MESSAGES,
        "stopped too late to prove anything ({at_stop} handled)"
    );

    if !published {
        publishing.await.unwrap();
    }
    sales_testkit::eventually("every message handled", Duration::from_secs(90), || async {
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
