//! What only the Kafka transport has, against a real Kafka-protocol broker (tansu,
//! started by `cargo xtask test`): topics laid out as configured, one order's events in
//! one partition in order, and an event Kafka refuses blamed on itself alone.
//! The behaviour both transports share is tested in `messaging.rs`, on each.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use sales_contracts::Envelope;
use sales_contracts::events::{CancelOrder, CancelReason, MessageType};
use sales_contracts::topology::Subscription;
use sales_platform::config::KafkaArgs;
use sales_platform::outbox;
use sales_platform::service::{RunningService, ServiceBuilder};
use sales_testkit::identity::TestIdentity;
use sales_testkit::private_kafka::PrivateKafka;
use sales_testkit::{TestDatabase, TestKafka, eventually};
use sqlx::PgPool;
use system_tests::effects::{Recorder, consumed, effects};

struct Harness {
    kafka: TestKafka,
    db: TestDatabase,
    pool: PgPool,
    service: RunningService,
    _identity: TestIdentity,
}

impl Harness {
    async fn start(name: &str) -> Harness {
        Harness::start_on(name, TestKafka::new()).await
    }

    /// [`Harness::start`] on `kafka`.
    async fn start_on(name: &str, kafka: TestKafka) -> Harness {
        sales_testkit::init_test_logging();
        let db = TestDatabase::create(name).await;
        let identity = TestIdentity::start().await;
        let mut builder = ServiceBuilder::new("kafka-test", &sales_testkit::http_args());
        builder.identity(&identity.args(), &[]).unwrap();
        builder
            .database(&db.args(), sqlx::migrate!("tests/migrations"))
            .unwrap();
        builder.broker(&kafka.args()).unwrap();
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
        Harness {
            kafka,
            db,
            pool,
            service,
            _identity: identity,
        }
    }

    async fn stop(self) {
        self.service.stop().await;
        self.pool.close().await;
        self.kafka.delete().await;
        self.db.drop_database().await;
    }
}

fn cancel(order_id: i64) -> Envelope {
    Envelope::new(
        "test",
        CancelOrder {
            order_id,
            customer_id: None,
            reason: CancelReason::Customer,
            cancelled_at: chrono::Utc::now(),
        },
    )
    .into_json()
}

async fn enqueue(pool: &PgPool, envelopes: &[Envelope]) {
    let mut tx = pool.begin().await.unwrap();
    for envelope in envelopes {
        outbox::enqueue_envelope(&mut tx, envelope).await.unwrap();
    }
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn one_orders_events_share_a_partition_in_order_on_topics_as_configured() {
    let h = Harness::start("kafka_layout").await;
    let events: Vec<Envelope> = (0..6).map(|i| cancel(40 + i % 2)).collect();
    enqueue(&h.pool, &events).await;
    eventually(
        "the six events handled",
        Duration::from_secs(20),
        || async { (effects(&h.pool).await == 6).then_some(()) },
    )
    .await;

    let topic = h.kafka.topology().event_topic("cancel-order");
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &h.kafka.bootstrap)
        .set("group.id", format!("{}reader", h.kafka.prefix))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = reader
        .fetch_metadata(Some(&topic), Duration::from_secs(5))
        .unwrap();
    let partitions = metadata.topics()[0].partitions().len() as i32;
    assert_eq!(partitions, 3, "KAFKA_TOPIC_PARTITIONS of the test (3)");
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(&topic, p, Offset::Beginning)
            .unwrap();
    }
    reader.assign(&assignment).unwrap();
    let mut seen: Vec<(String, i32, String)> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while seen.len() < 6 && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = reader.poll(Duration::from_millis(200)) {
            let envelope: Envelope = serde_json::from_slice(m.payload().unwrap()).unwrap();
            let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
            seen.push((key, m.partition(), envelope.message_id.to_string()));
        }
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
    for order in ["40", "41"] {
        let of_order: Vec<&(String, i32, String)> =
            seen.iter().filter(|(k, _, _)| k == order).collect();
        assert_eq!(of_order.len(), 3, "keyed by the order id: {seen:?}");
        assert!(
            of_order.iter().all(|(_, p, _)| *p == of_order[0].1),
            "one order, one partition: {seen:?}"
        );
        let sent: Vec<String> = events
            .iter()
            .filter(|e| e.correlation_id == order)
            .map(|e| e.message_id.to_string())
            .collect();
        let read: Vec<String> = of_order.iter().map(|(_, _, id)| id.clone()).collect();
        assert_eq!(read, sent, "in the order they were committed");
    }
    // Close the reader before the topics it reads are deleted (`stop`): closing a
    // consumer whose topics are gone under it crashed the test process now and then
    // (SIGSEGV in about 1 run of 8).
    tokio::task::spawn_blocking(move || drop(reader))
        .await
        .unwrap();
    h.stop().await;
}

#[tokio::test]
async fn an_event_kafka_refuses_is_parked_alone_and_the_others_go_out() {
    let h = Harness::start("kafka_refused").await;
    // Larger than the producer's message.max.bytes (1 MB): refused before it is sent.
    let mut too_large = cancel(2);
    too_large.data["padding"] = serde_json::Value::String("x".repeat(1_100_000));
    let events = [cancel(1), too_large.clone(), cancel(3)];
    enqueue(&h.pool, &events).await;
    eventually(
        "the refused event parked and the others handled",
        Duration::from_secs(30),
        || async {
            let parked: Vec<uuid::Uuid> =
                sqlx::query_scalar("select message_id from outbox where parked_at is not null")
                    .fetch_all(&h.pool)
                    .await
                    .ok()?;
            (parked.len() == 1 && effects(&h.pool).await == 2).then_some(parked)
        },
    )
    .await;
    let left: Vec<(uuid::Uuid, Option<String>)> =
        sqlx::query_as("select message_id, last_error from outbox")
            .fetch_all(&h.pool)
            .await
            .unwrap();
    assert_eq!(
        left.len(),
        1,
        "only the refused event stays in the outbox: {left:?}"
    );
    assert_eq!(left[0].0, too_large.message_id, "{left:?}");
    let error = left[0].1.clone().unwrap_or_default();
    assert!(error.contains("refused"), "{error}");
    h.stop().await;
}

/// A service with no consumer on its own topics, its Kafka settings edited.
struct Bare {
    kafka: TestKafka,
    db: TestDatabase,
    service: RunningService,
    _identity: TestIdentity,
}

impl Bare {
    async fn start(name: &str, edit: impl FnOnce(&mut KafkaArgs)) -> Bare {
        sales_testkit::init_test_logging();
        let db = TestDatabase::create(name).await;
        let kafka = TestKafka::new();
        let identity = TestIdentity::start().await;
        let mut args = kafka.args();
        edit(&mut args.kafka);
        let mut builder = ServiceBuilder::new("kafka-test", &sales_testkit::http_args());
        builder.identity(&identity.args(), &[]).unwrap();
        builder
            .database(&db.args(), sqlx::migrate!("tests/migrations"))
            .unwrap();
        builder.broker(&args).unwrap();
        let service = builder
            .serve(Router::new(), utoipa::openapi::OpenApi::default())
            .await
            .unwrap();
        Bare {
            kafka,
            db,
            service,
            _identity: identity,
        }
    }

    /// What `/ready` lists as degraded (`null`: nothing).
    async fn degraded(&self) -> serde_json::Value {
        let ready = format!("{}/ready", self.service.base_url());
        let body: serde_json::Value = sales_testkit::http_get(&ready)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["degraded"].clone()
    }

    /// The cluster's topics of this service's prefix: name and partition count.
    fn topics(&self) -> Vec<(String, usize)> {
        let reader: BaseConsumer = self.kafka.client().create().unwrap();
        let metadata = reader.fetch_metadata(None, Duration::from_secs(5)).unwrap();
        metadata
            .topics()
            .iter()
            .filter(|t| t.name().starts_with(&self.kafka.prefix))
            .map(|t| (t.name().to_owned(), t.partitions().len()))
            .collect()
    }

    async fn stop(self) {
        self.service.stop().await;
        self.kafka.delete().await;
        self.db.drop_database().await;
    }
}

/// `KAFKA_CREATE_TOPICS=false` (Strimzi's Topic Operator owns the topics): the service
/// creates none, and counts as not connected to the broker (`/ready` lists it as
/// degraded, events wait in the outbox) until every topic exists; then it is.
#[tokio::test]
async fn a_service_that_does_not_create_topics_connects_once_they_exist() {
    let bare = Bare::start("kafka_no_create", |k| k.kafka_create_topics = false).await;
    // Several checks of the connection later: still not connected, and no topic made.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let degraded = bare.degraded().await;
    assert!(
        degraded.to_string().contains("broker: not connected"),
        "{degraded}"
    );
    assert!(bare.topics().is_empty(), "the service created topics");
    // The topics' owner creates them: the service connects.
    bare.kafka.create_topics(3).await;
    eventually(
        "connected once the topics exist",
        Duration::from_secs(30),
        || async { bare.degraded().await.is_null().then_some(()) },
    )
    .await;
    bare.stop().await;
}

/// `KAFKA_REPLICATION_FACTOR=-1` (what the operator gives when a SalesSystem on
/// external brokers sets none): the topics are created with the brokers' default.
#[tokio::test]
async fn topics_take_the_brokers_default_replication_when_asked() {
    let bare = Bare::start("kafka_default_replication", |k| {
        k.kafka_replication_factor = -1;
    })
    .await;
    eventually(
        "connected, topics made",
        Duration::from_secs(30),
        || async { bare.degraded().await.is_null().then_some(()) },
    )
    .await;
    // Connected means every topic is in the metadata: asked one by one (tansu's
    // list of all topics can miss some while other tests delete theirs). Right after
    // its creation a topic may still answer with an error (no leader yet, as Kafka
    // says too): asked again until it answers whole.
    let reader: BaseConsumer = bare.kafka.client().create().unwrap();
    for topic in bare.kafka.topology().kafka_topics() {
        let answer = || {
            let metadata = reader
                .fetch_metadata(Some(&topic), Duration::from_secs(5))
                .unwrap();
            metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .map(|t| (t.error(), t.partitions().len()))
        };
        let settled = eventually(
            &format!("{topic} in the metadata without error"),
            Duration::from_secs(10),
            || async { answer().filter(|(error, _)| error.is_none()) },
        )
        .await;
        assert_eq!(settled.1, 3, "{topic} not created with 3 partitions");
    }
    bare.stop().await;
}

/// The broker freezes (SIGSTOP: connections open, nothing answers) for longer than the
/// producer's delivery timeout while events are committed; when it runs again every
/// event reaches the consumer, each handled once, none parked, and the outbox empties.
#[tokio::test]
async fn a_frozen_broker_loses_nothing_and_parks_nothing() {
    let broker = Arc::new(PrivateKafka::start());
    let h = Harness::start_on("kafka_frozen", TestKafka::on(broker.clone())).await;
    let before: Vec<Envelope> = (0..5).map(|i| cancel(100 + i)).collect();
    enqueue(&h.pool, &before).await;
    eventually(
        "the first events handled",
        Duration::from_secs(30),
        || async { (effects(&h.pool).await == 5).then_some(()) },
    )
    .await;

    broker.freeze();
    let during: Vec<Envelope> = (0..20).map(|i| cancel(200 + i)).collect();
    enqueue(&h.pool, &during).await;
    // Past the producer's 10 s delivery timeout and several connection checks.
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert_eq!(
        effects(&h.pool).await,
        5,
        "nothing moves while the broker is frozen"
    );

    broker.thaw();
    eventually("every event handled", Duration::from_secs(90), || async {
        (effects(&h.pool).await == 25).then_some(())
    })
    .await;
    eventually("the outbox empty", Duration::from_secs(30), || async {
        let left: i64 = sqlx::query_scalar("select count(*) from outbox")
            .fetch_one(&h.pool)
            .await
            .ok()?;
        (left == 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(effects(&h.pool).await, 25, "each event once");
    assert_eq!(consumed(&h.service.admin_url(), "dead_lettered").await, 0.0);
    h.stop().await;
}
