//! Failures by cause (issue 12): a consumer whose database is away holds its message
//! and tries again until the database answers; the outage does not use up the
//! message's retries, so a long one no longer sends healthy messages to the
//! dead-letter queue (or topic). The database is taken away through a relay (the
//! server itself keeps serving the other tests). On both transports.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use sales_contracts::Envelope;
use sales_contracts::events::{CancelOrder, CancelReason, MessageType};
use sales_contracts::topology::Subscription;
use sales_platform::service::ServiceBuilder;
use sales_testkit::fault_proxy::{Fault, FaultProxy};
use sales_testkit::identity::TestIdentity;
use sales_testkit::{TestDatabase, TestTransport, eventually};
use system_tests::effects::{Recorder, consumed, effects};

const SUBSCRIPTION: Subscription = Subscription {
    service: "notification",
    message_type: MessageType::CancelOrder,
};

#[tokio::test]
async fn on_rabbitmq_a_message_waits_out_a_database_outage_without_using_up_its_retries() {
    waits_out_a_database_outage(TestTransport::rabbitmq()).await;
}

#[tokio::test]
async fn on_kafka_a_message_waits_out_a_database_outage_without_using_up_its_retries() {
    waits_out_a_database_outage(TestTransport::kafka()).await;
}

async fn waits_out_a_database_outage(broker: TestTransport) {
    sales_testkit::init_test_logging();
    let db = TestDatabase::create("consumer_outage").await;
    let identity = TestIdentity::start().await;
    let proxy = FaultProxy::for_url(&db.url).await;
    let mut database = db.args();
    database.database_url = secrecy::SecretString::from(proxy.url_through(&db.url));
    database.database_acquire_timeout = Duration::from_secs(1);

    let mut builder = ServiceBuilder::new("outage-test", &sales_testkit::http_args());
    builder.identity(&identity.args(), &[]).unwrap();
    builder
        .database(&database, sqlx::migrate!("tests/migrations"))
        .unwrap();
    builder.broker(&broker.args()).unwrap();
    builder.consumer(SUBSCRIPTION, Arc::new(Recorder)).unwrap();
    let service = builder
        .serve(Router::new(), utoipa::openapi::OpenApi::default())
        .await
        .unwrap();
    sales_testkit::wait_ready(
        &format!("{}/ready", service.base_url()),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let pool = db.pool().await;

    // The database goes away, then a message comes.
    proxy.set(Fault::Down);
    let envelope = Envelope::new(
        "test",
        CancelOrder {
            order_id: 41,
            customer_id: None,
            reason: CancelReason::UnpaidTimeout,
            cancelled_at: chrono::Utc::now(),
        },
    )
    .into_json();
    broker
        .publish_raw(
            envelope.message_type.as_str(),
            "41",
            &serde_json::to_vec(&envelope).unwrap(),
        )
        .await;
    // Longer than the first retry delay (1 s) several times over.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(effects(&pool).await, 0);
    assert_eq!(
        (
            consumed(&service.admin_url(), "retried").await,
            consumed(&service.admin_url(), "dead_lettered").await
        ),
        (0.0, 0.0),
        "an outage is not the message's failure"
    );

    // The database is back: the message is handled, once, without a retry.
    proxy.set(Fault::None);
    eventually(
        "the held message to be handled",
        Duration::from_secs(45),
        || async { (effects(&pool).await == 1).then_some(()) },
    )
    .await;
    assert_eq!(consumed(&service.admin_url(), "retried").await, 0.0);
    assert_eq!(consumed(&service.admin_url(), "processed").await, 1.0);

    service.stop().await;
    pool.close().await;
    broker.delete().await;
    db.drop_database().await;
}
