//! The platform's messaging against a real broker and PostgreSQL, the same tests on
//! RabbitMQ and on Kafka (module `rabbitmq`, module `kafka`): a redelivered message
//! has one effect, a malformed one is parked without stopping the consumer, a failing
//! one is retried, outbox events wait for the broker; on RabbitMQ also: connections
//! come back after the broker drops them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use sales_contracts::events::{CancelOrder, CancelReason, MessageType};
use sales_contracts::topology::Subscription;
use sales_contracts::{Envelope, Event};
use sales_platform::config::BrokerArgs;
use sales_platform::messaging::{HandlerError, MessageHandler};
use sales_platform::outbox;
use sales_platform::service::{RunningService, ServiceBuilder};
use sales_testkit::identity::TestIdentity;
use sales_testkit::{TestDatabase, TestTransport, eventually};
use sqlx::{PgPool, Postgres, Transaction};

const SUBSCRIPTION: Subscription = Subscription {
    service: "notification",
    message_type: MessageType::CancelOrder,
};

/// Order 13 fails once (transiently); order 66 is rejected until `accept_66` is set.
#[derive(Default)]
struct RecordingHandler {
    failures: AtomicUsize,
    accept_66: AtomicBool,
}

impl MessageHandler for RecordingHandler {
    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        envelope: &Envelope,
    ) -> Result<(), HandlerError> {
        let event: CancelOrder = envelope.decode()?;
        if event.order_id == 66 && !self.accept_66.load(Ordering::SeqCst) {
            return Err(HandlerError::Rejected("order 66 is never handled".into()));
        }
        if event.order_id == 13 && self.failures.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(HandlerError::Transient(anyhow::anyhow!("first try fails")));
        }
        sqlx::query("insert into effects (message_id, order_id) values ($1, $2)")
            .bind(envelope.message_id)
            .bind(event.order_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

struct Harness {
    handler: Arc<RecordingHandler>,
    identity: TestIdentity,
    service: Option<RunningService>,
    db: TestDatabase,
    transport: TestTransport,
    pool: PgPool,
}

async fn start_service(
    db: &TestDatabase,
    broker_args: &BrokerArgs,
    handler: Option<Arc<RecordingHandler>>,
    identity: &TestIdentity,
) -> RunningService {
    let mut builder = ServiceBuilder::new("messaging-test", &sales_testkit::http_args());
    builder.identity(&identity.args(), &[]).unwrap();
    builder
        .database(&db.args(), sqlx::migrate!("tests/migrations"))
        .unwrap();
    builder.broker(broker_args).unwrap();
    builder.outbox_relay().unwrap();
    if let Some(handler) = handler {
        builder.consumer(SUBSCRIPTION, handler).unwrap();
    }
    builder
        .serve(Router::new(), utoipa::openapi::OpenApi::default())
        .await
        .unwrap()
}

impl Harness {
    async fn start(transport: TestTransport) -> Harness {
        sales_testkit::init_test_logging();
        let db = TestDatabase::create("messaging").await;
        let handler = Arc::new(RecordingHandler::default());
        let identity = TestIdentity::start().await;
        let service = start_service(&db, &transport.args(), Some(handler.clone()), &identity).await;
        sales_testkit::wait_ready(
            &format!("{}/ready", service.base_url()),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
        let pool = db.pool().await;
        Harness {
            handler,
            identity,
            service: Some(service),
            db,
            transport,
            pool,
        }
    }

    fn envelope(order_id: i64) -> Envelope {
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

    /// Publish `body` as is. Every message of these tests has the same key, so on
    /// Kafka too they stay in the order they were sent.
    async fn publish_raw(&self, body: &[u8]) {
        self.transport
            .publish_raw(CancelOrder::TYPE.as_str(), "messaging-test", body)
            .await;
    }

    async fn publish(&self, envelope: &Envelope) {
        self.publish_raw(&serde_json::to_vec(envelope).unwrap())
            .await;
    }

    async fn effects(&self, order_id: i64) -> i64 {
        sqlx::query_scalar("select count(*) from effects where order_id = $1")
            .bind(order_id)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// The value of the series `name` that has all of `labels`.
    async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let admin = self.service.as_ref()?.admin_url();
        let text = sales_testkit::http_get(format!("{admin}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .find(|l| {
                labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    async fn consumed(&self, outcome: &str) -> f64 {
        self.metric(
            "messages_consumed_total",
            &[("queue", "notification.cancel-order"), ("outcome", outcome)],
        )
        .await
        .unwrap_or(0.0)
    }

    /// Messages parked for the subscription, and the first one's reason: asked of
    /// the admin port's count and peek, which each transport answers its own way.
    async fn dead_letters(&self) -> (u64, Option<String>) {
        let admin = self.service.as_ref().unwrap().admin_url();
        let operator = self.identity.minter().access_token(1, true);
        let http = sales_testkit::http_client();
        let summary: serde_json::Value = http
            .get(format!("{admin}/admin/dead-letters"))
            .bearer_auth(&operator)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let count = summary[0]["dead_letters"].as_u64().unwrap();
        let parked: serde_json::Value = http
            .get(format!(
                "{admin}/admin/dead-letters/notification.cancel-order?limit=1"
            ))
            .bearer_auth(&operator)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let reason = parked[0]["reason"].as_str().map(str::to_owned);
        (count, reason)
    }

    async fn stop(mut self) {
        if let Some(s) = self.service.take() {
            s.stop().await;
        }
        self.pool.close().await;
        self.transport.delete().await;
        self.db.drop_database().await;
    }
}

async fn a_message_delivered_twice_has_one_effect(transport: TestTransport) {
    let h = Harness::start(transport).await;
    let message = Harness::envelope(1);
    h.publish(&message).await;
    h.publish(&message).await;
    eventually(
        "the redelivery to be recognised",
        Duration::from_secs(10),
        || async { (h.consumed("duplicate").await == 1.0).then_some(()) },
    )
    .await;
    assert_eq!(h.consumed("processed").await, 1.0);
    assert_eq!(h.effects(1).await, 1);
    h.stop().await;
}

async fn a_malformed_message_is_parked_and_the_consumer_keeps_going(transport: TestTransport) {
    let h = Harness::start(transport).await;
    h.publish_raw(b"this is not an envelope").await;
    let mut wrong_payload = serde_json::to_value(Harness::envelope(2)).unwrap();
    wrong_payload["data"] = serde_json::json!({"order_id": "two"});
    h.publish_raw(&serde_json::to_vec(&wrong_payload).unwrap())
        .await;
    h.publish(&Harness::envelope(66)).await;
    h.publish(&Harness::envelope(3)).await;

    eventually(
        "the good message after the bad ones",
        Duration::from_secs(10),
        || async { (h.effects(3).await == 1).then_some(()) },
    )
    .await;
    eventually("three dead letters", Duration::from_secs(10), || async {
        (h.consumed("dead_lettered").await == 3.0).then_some(())
    })
    .await;
    let (count, reason) = h.dead_letters().await;
    assert_eq!(count, 3);
    let reason = reason.unwrap();
    assert!(reason.contains("not a JSON envelope"), "{reason}");
    assert_eq!(h.effects(2).await + h.effects(66).await, 0);

    // The admin port lists them, shows them, and replays them once the cause is fixed,
    // for an administrator (and no one else).
    let admin = h.service.as_ref().unwrap().admin_url();
    let operator = h.identity.minter().access_token(1, true);
    let http = sales_testkit::http_client();
    let get = |path: String| http.get(path).bearer_auth(&operator).send();
    for (token, status) in [
        (None, 401),
        (Some(h.identity.minter().access_token(2, false)), 403),
        (
            h.identity
                .token("messaging-test", sales_testkit::identity::Who::Admin(1)),
            401,
        ),
    ] {
        let mut r = http.get(format!("{admin}/admin/dead-letters"));
        if let Some(token) = token {
            r = r.bearer_auth(token);
        }
        assert_eq!(r.send().await.unwrap().status().as_u16(), status);
    }
    let summary: serde_json::Value = get(format!("{admin}/admin/dead-letters"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        summary,
        serde_json::json!([{"queue": "notification.cancel-order", "dead_letters": 3}])
    );
    let parked: serde_json::Value = get(format!(
        "{admin}/admin/dead-letters/notification.cancel-order"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let parked = parked.as_array().unwrap();
    assert_eq!(parked.len(), 3);
    assert_eq!(parked[0]["body"], "this is not an envelope");
    assert!(
        parked[2]["reason"]
            .as_str()
            .unwrap()
            .contains("order 66 is never handled")
    );
    assert_eq!(h.dead_letters().await.0, 3, "peeking leaves them parked");

    h.handler.accept_66.store(true, Ordering::SeqCst);
    let revoked_operator = h.identity.minter().access_token(3, true);
    h.identity.revoke(&revoked_operator);
    let refused = http
        .post(format!(
            "{admin}/admin/dead-letters/notification.cancel-order/replay"
        ))
        .bearer_auth(&revoked_operator)
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        reqwest::StatusCode::UNAUTHORIZED,
        "a revoked admin token"
    );
    let replayed: serde_json::Value = http
        .post(format!(
            "{admin}/admin/dead-letters/notification.cancel-order/replay"
        ))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(replayed["replayed"], 3);
    eventually(
        "order 66 to be handled after the replay",
        Duration::from_secs(10),
        || async { (h.effects(66).await == 1).then_some(()) },
    )
    .await;
    eventually(
        "the two malformed ones to be parked again",
        Duration::from_secs(10),
        || async { (h.consumed("dead_lettered").await == 5.0).then_some(()) },
    )
    .await;
    assert_eq!(h.dead_letters().await.0, 2);
    let missing = get(format!("{admin}/admin/dead-letters/inventory.update-stock"))
        .await
        .unwrap();
    assert_eq!(missing.status(), reqwest::StatusCode::NOT_FOUND);
    h.stop().await;
}

async fn a_failing_message_is_retried_then_handled_once(transport: TestTransport) {
    let h = Harness::start(transport).await;
    h.publish(&Harness::envelope(13)).await;
    eventually("the retry to succeed", Duration::from_secs(15), || async {
        (h.effects(13).await == 1).then_some(())
    })
    .await;
    assert_eq!(h.consumed("retried").await, 1.0);
    assert_eq!(h.consumed("processed").await, 1.0);
    assert_eq!(h.dead_letters().await.0, 0);
    h.stop().await;
}

async fn outbox_events_wait_for_the_broker_and_are_not_lost(transport: TestTransport) {
    sales_testkit::init_test_logging();
    let db = TestDatabase::create("outbox").await;
    // First the service runs with a broker that is not there.
    let mut unreachable = transport.args();
    unreachable.amqp_url = Some(secrecy::SecretString::from(
        "amqp://guest:guest@127.0.0.1:1/%2f".to_owned(),
    ));
    unreachable.kafka.kafka_bootstrap_servers = Some("127.0.0.1:1".to_owned());
    let identity = TestIdentity::start().await;
    let service = start_service(&db, &unreachable, None, &identity).await;
    let base = service.base_url();
    let pool = db.pool().await;
    // Issue 12: the API stays up without the broker (the outbox absorbs the events):
    // ready, and the answer says what is degraded.
    eventually("migrations", Duration::from_secs(10), || async {
        let r = sales_testkit::http_get(format!("{base}/ready"))
            .await
            .ok()?;
        let ready = r.status() == reqwest::StatusCode::OK;
        let body: serde_json::Value = r.json().await.ok()?;
        let degraded = body["degraded"].to_string();
        (ready && degraded.contains("broker")).then_some(())
    })
    .await;

    let mut tx = pool.begin().await.unwrap();
    outbox::enqueue(
        &mut tx,
        "test",
        CancelOrder {
            order_id: 77,
            customer_id: None,
            reason: CancelReason::UnpaidTimeout,
            cancelled_at: chrono::Utc::now(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let waiting: i64 = sqlx::query_scalar("select count(*) from outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        waiting, 1,
        "the event stays in the outbox while the broker is away"
    );
    service.stop().await;

    // The service comes back with the broker: the event goes out and is consumed.
    let identity = TestIdentity::start().await;
    let service = start_service(&db, &transport.args(), Some(Arc::default()), &identity).await;
    eventually(
        "the event to be published and handled",
        Duration::from_secs(15),
        || async {
            let n: i64 = sqlx::query_scalar("select count(*) from effects where order_id = 77")
                .fetch_one(&pool)
                .await
                .ok()?;
            (n == 1).then_some(())
        },
    )
    .await;
    let left: i64 = sqlx::query_scalar("select count(*) from outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    service.stop().await;
    pool.close().await;
    transport.delete().await;
    db.drop_database().await;
}

/// Each test above, once per transport: RabbitMQ with classic and with quorum
/// queues, and Kafka.
macro_rules! on_every_transport {
    ($($test:ident),* $(,)?) => {
        mod rabbitmq {
            $(#[tokio::test]
            async fn $test() {
                super::$test(sales_testkit::TestTransport::rabbitmq()).await
            })*
        }
        mod rabbitmq_quorum {
            $(#[tokio::test]
            async fn $test() {
                super::$test(sales_testkit::TestTransport::rabbitmq_quorum()).await
            })*
        }
        mod kafka {
            $(#[tokio::test]
            async fn $test() {
                super::$test(sales_testkit::TestTransport::kafka()).await
            })*
        }
    };
}

on_every_transport!(
    a_message_delivered_twice_has_one_effect,
    a_malformed_message_is_parked_and_the_consumer_keeps_going,
    a_failing_message_is_retried_then_handled_once,
    outbox_events_wait_for_the_broker_and_are_not_lost,
);

#[tokio::test]
async fn consumers_and_the_relay_come_back_after_the_broker_drops_the_connection() {
    let management = std::env::var("SALES_RABBITMQ_MANAGEMENT_URL").expect(
        "this test closes connections through RabbitMQ's management API: run it with \
         `cargo xtask test`, or set SALES_RABBITMQ_MANAGEMENT_URL",
    );
    let h = Harness::start(TestTransport::rabbitmq()).await;
    let TestTransport::RabbitMq(broker) = &h.transport else {
        unreachable!("started on RabbitMQ")
    };
    h.publish(&Harness::envelope(100)).await;
    eventually("the first message", Duration::from_secs(10), || async {
        (h.effects(100).await == 1).then_some(())
    })
    .await;

    // Close every connection of this test's namespace from the broker's side.
    let (base, user, password) = split_credentials(&management);
    let client = sales_testkit::http_client();
    let namespace = broker.prefix.trim_end_matches('.').to_owned();
    let closed = eventually(
        "the service's connection to show up",
        Duration::from_secs(15),
        || async {
            let connections: Vec<serde_json::Value> = client
                .get(format!("{base}/api/connections"))
                .basic_auth(&user, Some(&password))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let ours: Vec<String> = connections
                .iter()
                .filter(|c| {
                    c["client_properties"]["connection_name"]
                        .as_str()
                        .is_some_and(|n| n.ends_with(&namespace))
                })
                .filter_map(|c| c["name"].as_str().map(str::to_owned))
                .collect();
            (!ours.is_empty()).then_some(ours)
        },
    )
    .await;
    for name in &closed {
        let encoded: String = name
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let r = client
            .delete(format!("{base}/api/connections/{encoded}"))
            .basic_auth(&user, Some(&password))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "closing {name}: {}", r.status());
    }
    eventually("a reconnect", Duration::from_secs(15), || async {
        let n = h.metric("broker_connections_total", &[]).await?;
        (n >= 2.0).then_some(())
    })
    .await;

    // The consumer consumes again, and the relay publishes again.
    h.publish(&Harness::envelope(101)).await;
    let mut tx = h.pool.begin().await.unwrap();
    outbox::enqueue(
        &mut tx,
        "test",
        CancelOrder {
            order_id: 102,
            customer_id: None,
            reason: CancelReason::Customer,
            cancelled_at: chrono::Utc::now(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    eventually(
        "messages after the reconnect",
        Duration::from_secs(20),
        || async { (h.effects(101).await == 1 && h.effects(102).await == 1).then_some(()) },
    )
    .await;
    h.stop().await;
}

/// `http://user:pass@host:port` -> (`http://host:port`, user, pass).
fn split_credentials(url: &str) -> (String, String, String) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    match rest.split_once('@') {
        Some((creds, host)) => {
            let (user, pass) = creds.split_once(':').unwrap_or((creds, ""));
            (
                format!("{scheme}://{}", host.trim_end_matches('/')),
                user.into(),
                pass.into(),
            )
        }
        None => (
            url.trim_end_matches('/').into(),
            "guest".into(),
            "guest".into(),
        ),
    }
}

/// The topology goes out without waiting for each answer; a declaration the broker
/// refuses (here a retry queue that exists with another delay) must still fail the
/// whole, with the broker's reason, and not pass for declared.
#[tokio::test]
async fn a_topology_the_broker_refuses_is_reported_not_taken_for_declared() {
    let broker = sales_testkit::TestBroker::new();
    let topology = broker.topology();
    let conn = broker.connect().await;
    sales_platform::messaging::rabbitmq::declare_topology(&conn, &topology)
        .await
        .expect("a fresh namespace is declared");
    sales_platform::messaging::rabbitmq::declare_topology(&conn, &topology)
        .await
        .expect("declaring it again changes nothing");

    let other = sales_testkit::TestBroker::new();
    let clash = other.topology().retry_queue(SUBSCRIPTION, 2);
    let channel = conn.create_channel().await.unwrap();
    let mut args = lapin::types::FieldTable::default();
    args.insert(
        "x-message-ttl".into(),
        lapin::types::AMQPValue::LongLongInt(5),
    );
    channel
        .queue_declare(
            clash.as_str().into(),
            lapin::options::QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .unwrap();
    let refused = sales_platform::messaging::rabbitmq::declare_topology(&conn, &other.topology())
        .await
        .expect_err("a queue that exists with other arguments is refused");
    assert!(
        refused.to_string().contains("PRECONDITION_FAILED")
            || format!("{refused:?}").contains("PRECONDITION_FAILED"),
        "{refused:?}"
    );
    let _ = conn.close(200, "done".into()).await;
    broker.delete().await;
    other.delete().await;
}

/// `AMQP_QUEUE_TYPE=quorum`: every queue, retry and dead-letter queue is a quorum
/// queue, declared to dead-letter at least once (a subscription's queue into its
/// dead-letter queue, a retry queue back into its queue).
#[tokio::test]
async fn quorum_queues_are_declared_as_quorum_queues() {
    let broker = sales_testkit::TestBroker::quorum();
    let topology = broker.topology();
    let conn = broker.connect().await;
    sales_platform::messaging::rabbitmq::declare_topology(&conn, &topology)
        .await
        .expect("a fresh namespace of quorum queues is declared");
    sales_platform::messaging::rabbitmq::declare_topology(&conn, &topology)
        .await
        .expect("declaring it again changes nothing");
    // Each queue is exactly a quorum queue with these arguments: declared again with
    // them it is taken, and with `x-queue-type: classic` instead it is refused for
    // that argument alone. (The management API would say so too, but only once it
    // has collected the queue's statistics, which lags under load.)
    let queue = topology.queue(SUBSCRIPTION);
    let dead = topology.dead_letter_queue(SUBSCRIPTION);
    let dead_lettered_to = |target: &str| {
        vec![
            ("x-dead-letter-exchange", String::new()),
            ("x-dead-letter-routing-key", target.to_owned()),
            ("x-dead-letter-strategy", "at-least-once".to_owned()),
            ("x-overflow", "reject-publish".to_owned()),
        ]
    };
    let expected = [
        (queue.clone(), dead_lettered_to(&dead), None),
        (
            topology.retry_queue(SUBSCRIPTION, 0),
            dead_lettered_to(&queue),
            Some(1000),
        ),
        (dead.clone(), vec![], None),
    ];
    for (name, args, ttl) in expected {
        for (queue_type, taken) in [("quorum", true), ("classic", false)] {
            let mut table = lapin::types::FieldTable::default();
            table.insert(
                "x-queue-type".into(),
                lapin::types::AMQPValue::LongString(queue_type.into()),
            );
            for (key, value) in &args {
                table.insert(
                    (*key).into(),
                    lapin::types::AMQPValue::LongString(value.as_str().into()),
                );
            }
            if let Some(ttl) = ttl {
                table.insert(
                    "x-message-ttl".into(),
                    lapin::types::AMQPValue::LongLongInt(ttl),
                );
            }
            let channel = conn.create_channel().await.unwrap();
            let declared = channel
                .queue_declare(
                    name.as_str().into(),
                    lapin::options::QueueDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    table,
                )
                .await;
            match (taken, declared) {
                (true, Ok(_)) => {}
                (false, Err(refused)) => assert!(
                    format!("{refused:?}").contains("x-queue-type"),
                    "{name}: {refused:?}"
                ),
                (taken, other) => {
                    panic!("{name} as {queue_type}: expected taken={taken}, got {other:?}")
                }
            }
        }
    }

    let _ = conn.close(200, "done".into()).await;
    broker.delete().await;
}
