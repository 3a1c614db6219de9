//! The outbox relay under broker faults (issue 12), against a real RabbitMQ and
//! PostgreSQL: an event the broker refuses again and again is parked and holds back
//! nothing; a broker that takes a publish but never confirms it cannot hold the relay.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use sales_contracts::events::{CancelOrder, CancelReason, MessageType, PaidOrder};
use sales_contracts::money::{Currency, Money};
use sales_contracts::topology::Subscription;
use sales_platform::config::BrokerArgs;
use sales_platform::outbox;
use sales_platform::service::{RunningService, ServiceBuilder};
use sales_testkit::fault_proxy::{Fault, FaultProxy};
use sales_testkit::identity::TestIdentity;
use sales_testkit::{TestBroker, TestDatabase, eventually};
use sqlx::PgPool;
use system_tests::effects::{Recorder, effects};

async fn start_service(
    db: &TestDatabase,
    broker: &BrokerArgs,
    identity: &TestIdentity,
) -> RunningService {
    let mut builder = ServiceBuilder::new("outbox-test", &sales_testkit::http_args());
    builder.identity(&identity.args(), &[]).unwrap();
    builder
        .database(&db.args(), sqlx::migrate!("tests/migrations"))
        .unwrap();
    builder.broker(broker).unwrap();
    builder.outbox_relay().unwrap();
    builder
        .consumer(
            Subscription {
                service: "notification",
                message_type: MessageType::CancelOrder,
            },
            Arc::new(Recorder),
        )
        .unwrap();
    builder
        .serve(Router::new(), utoipa::openapi::OpenApi::default())
        .await
        .unwrap()
}

async fn enqueue_cancel(pool: &PgPool, order_id: i64) {
    let mut tx = pool.begin().await.unwrap();
    outbox::enqueue(
        &mut tx,
        "test",
        CancelOrder {
            order_id,
            customer_id: None,
            reason: CancelReason::UnpaidTimeout,
            cancelled_at: chrono::Utc::now(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn metric(service: &RunningService, name: &str) -> Option<f64> {
    let text = sales_testkit::http_get(format!("{}/metrics", service.admin_url()))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn an_event_the_broker_keeps_refusing_is_parked_and_the_others_go_on() {
    sales_testkit::init_test_logging();
    let db = TestDatabase::create("outbox_park").await;
    let broker = TestBroker::new();
    let identity = TestIdentity::start().await;
    let service = start_service(&db, &broker.args(), &identity).await;
    sales_testkit::wait_ready(
        &format!("{}/ready", service.base_url()),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let pool = db.pool().await;

    // A full queue that refuses new messages, bound to `paid-order`: RabbitMQ answers
    // every paid-order publish with a negative confirm.
    let conn = broker.connect().await;
    let channel = conn.create_channel().await.unwrap();
    let refusing = format!("{}refuses-paid-order", broker.prefix);
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(0));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    channel
        .queue_declare(
            refusing.as_str().into(),
            QueueDeclareOptions::default(),
            args,
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            refusing.as_str().into(),
            broker.topology().exchange().as_str().into(),
            MessageType::PaidOrder.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    // The refused event first, then two that the broker takes.
    let mut tx = pool.begin().await.unwrap();
    outbox::enqueue(
        &mut tx,
        "test",
        PaidOrder {
            order_id: 5,
            customer_id: None,
            status: "paid".into(),
            total: Money::new(100, Currency::USD),
            paid_at: chrono::Utc::now(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    enqueue_cancel(&pool, 6).await;
    enqueue_cancel(&pool, 7).await;

    let (refusals, parked): (i32, bool) = eventually(
        "the refused event to be parked",
        Duration::from_secs(30),
        || async {
            let row: (i32, bool) = sqlx::query_as(
                "select refusals, parked_at is not null from outbox where message_type = 'paid-order'",
            )
            .fetch_one(&pool)
            .await
            .ok()?;
            row.1.then_some(row)
        },
    )
    .await;
    assert!(
        parked && refusals >= outbox::PARK_AFTER,
        "{refusals} refusals"
    );
    // The events behind it left the outbox and were handled, once each.
    eventually(
        "the events behind the refused one to leave the outbox",
        Duration::from_secs(15),
        || async {
            let left: i64 = sqlx::query_scalar("select count(*) from outbox")
                .fetch_one(&pool)
                .await
                .ok()?;
            (left == 1).then_some(())
        },
    )
    .await;
    assert_eq!(effects(&pool).await, 2);
    eventually(
        "the parked event to be counted",
        Duration::from_secs(10),
        || async { (metric(&service, "outbox_parked_messages").await == Some(1.0)).then_some(()) },
    )
    .await;
    // The relay sets its gauges right after the pass that deleted the events, a
    // moment after the outbox shows them gone: read the gauge once it has caught up
    // (it stays at 1 for good if a parked event counts as pending). Asserting at
    // once failed in one of three full runs with the previous pass's snapshot (2 pending).
    eventually(
        "a parked event not counted as pending",
        Duration::from_secs(10),
        || async { (metric(&service, "outbox_pending_messages").await == Some(0.0)).then_some(()) },
    )
    .await;

    let _ = conn.close(200, "done".into()).await;
    service.stop().await;
    pool.close().await;
    broker.delete().await;
    db.drop_database().await;
}

#[tokio::test]
async fn a_broker_that_never_confirms_cannot_hold_the_relay() {
    sales_testkit::init_test_logging();
    let db = TestDatabase::create("outbox_frozen").await;
    let broker = TestBroker::new();
    let identity = TestIdentity::start().await;
    let proxy = FaultProxy::for_url(&sales_testkit::amqp_url()).await;
    let mut args = broker.args();
    args.amqp_url = Some(secrecy::SecretString::from(
        proxy.url_through(&sales_testkit::amqp_url()),
    ));
    let service = start_service(&db, &args, &identity).await;
    sales_testkit::wait_ready(
        &format!("{}/ready", service.base_url()),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let pool = db.pool().await;
    enqueue_cancel(&pool, 1).await;
    eventually(
        "a first event to go through",
        Duration::from_secs(15),
        || async { (effects(&pool).await == 1).then_some(()) },
    )
    .await;

    // The broker hangs: the publish is written, its confirm never comes.
    proxy.set(Fault::Frozen);
    enqueue_cancel(&pool, 2).await;
    let error: String = eventually(
        "the relay to give up on the unconfirmed publish",
        outbox::PUBLISH_TIMEOUT + Duration::from_secs(15),
        || async {
            sqlx::query_scalar::<_, Option<String>>("select last_error from outbox")
                .fetch_optional(&pool)
                .await
                .ok()
                .flatten()
                .flatten()
        },
    )
    .await;
    assert!(error.contains("did not confirm"), "{error}");
    let parked: bool = sqlx::query_scalar("select parked_at is not null from outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!parked, "a hanging broker parks nothing");

    // The broker answers again: the event goes out.
    proxy.set(Fault::None);
    eventually(
        "the event to go out once the broker answers",
        Duration::from_secs(60),
        || async { (effects(&pool).await == 2).then_some(()) },
    )
    .await;
    service.stop().await;
    pool.close().await;
    broker.delete().await;
    db.drop_database().await;
}
