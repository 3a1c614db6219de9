//! A running shipping service on a fresh database and broker namespace, trusting a
//! test gateway and identity provider ([`TestIdentity`]), with helpers to call it as
//! anyone ([`Who`]), publish `paid-order` events to it and read what it publishes.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use clap::Parser;
use futures::StreamExt;
use lapin::ExchangeKind;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use reqwest::{Method, StatusCode};
use sales_contracts::events::PaidOrder;
use sales_contracts::{Currency, Envelope, Event, MessageType, Money};
use sales_platform::service::RunningService;
pub use sales_testkit::identity::{TestIdentity, Who};
use sales_testkit::{TestBroker, TestDatabase};
use serde_json::Value;
use shipping_service::{Config, SERVICE, build};

pub struct Shipping {
    pub service: Option<RunningService>,
    /// The test gateway and identity provider the service trusts; alive as long as
    /// the service.
    pub identity: TestIdentity,
    pub db: TestDatabase,
    pub broker: TestBroker,
    pub base: String,
    pub admin: String,
    client: reqwest::Client,
}

/// An administrator through the gateway: who opens and moves shipments by hand
/// on the canonical routes, and reads everyone's.
pub const ADMIN: Who = Who::Admin(1);

/// A caller without an account through the gateway while the seeds' routes are
/// open: how seed 002's clients reach `/shipping`.
pub const GUEST: Who = Who::Anonymous { seed_compat: true };

/// A request body.
#[derive(Clone, Debug)]
pub enum Body {
    None,
    Json(Value),
    /// Sent as is, with `Content-Type: application/json`.
    Raw(Vec<u8>),
    /// Sent as is, without a content type.
    Untyped(Vec<u8>),
}

impl Shipping {
    pub async fn start() -> Shipping {
        sales_testkit::init_test_logging();
        let db = TestDatabase::create("shipping").await;
        let broker = TestBroker::new();
        let mut config = Config::parse_from([
            "shipping-service",
            "--http-addr=127.0.0.1:0",
            "--admin-addr=127.0.0.1:0",
            "--database-url=postgres://unused",
            "--amqp-url=amqp://unused",
            "--identity-url=http://unused",
            "--gateway-jwks-url=http://unused",
            "--service-client-secret=unused",
            "--log-format=text",
        ]);
        config.database = db.args();
        config.broker = broker.args();
        let identity = TestIdentity::start().await;
        config.identity = identity.args();
        let service = build(config).await.expect("shipping starts");
        let base = service.base_url();
        let admin = service.admin_url();
        sales_testkit::wait_ready(&format!("{base}/ready"), Duration::from_secs(30))
            .await
            .expect("shipping ready");
        Shipping {
            service: Some(service),
            identity,
            db,
            broker,
            base,
            admin,
            client: sales_testkit::http_client(),
        }
    }

    /// A token for a request by `who` to this service (`None` for [`Who::Nobody`]).
    pub fn token(&self, who: Who) -> Option<String> {
        self.identity.token(SERVICE, who)
    }

    /// `method path` by `who`, with the gateway's token for `who`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        who: Who,
        body: Body,
    ) -> (StatusCode, Value) {
        self.call_with(method, path, self.token(who).as_deref(), body)
            .await
    }

    /// `method path` with `bearer` (any string, or none) as the credential.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Body,
    ) -> (StatusCode, Value) {
        let (status, _, answer) = self.attempt(method, path, bearer, body).await;
        (status, answer)
    }

    /// Like [`Shipping::call_with`], with the answer's `WWW-Authenticate` challenge.
    pub async fn attempt(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Body,
    ) -> (StatusCode, Option<String>, Value) {
        let mut request = self.request(method, path);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request = match body {
            Body::None => request,
            Body::Json(v) => request.json(&v),
            Body::Raw(bytes) => request
                .header("content-type", "application/json")
                .body(bytes),
            Body::Untyped(bytes) => request.body(bytes),
        };
        let r = request.send().await.unwrap();
        let status = r.status();
        let challenge = r
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, challenge, r.json().await.unwrap_or(Value::Null))
    }

    /// A request to the public port, without any credential yet.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// `GET path` as an administrator.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.get_as(path, ADMIN).await
    }

    pub async fn get_as(&self, path: &str, who: Who) -> (StatusCode, Value) {
        self.call(Method::GET, path, who, Body::None).await
    }

    /// `POST path` as an administrator.
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.post_as(path, ADMIN, Body::Json(body)).await
    }

    pub async fn post_as(&self, path: &str, who: Who, body: Body) -> (StatusCode, Value) {
        self.call(Method::POST, path, who, body).await
    }

    /// `GET path` as seed 002's clients send it: anonymous, seeds' routes open.
    pub async fn seed_get(&self, path: &str) -> (StatusCode, Value) {
        self.get_as(path, GUEST).await
    }

    /// `POST path` as seed 002's clients send it: anonymous, seeds' routes open.
    pub async fn seed_post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.post_as(path, GUEST, Body::Json(body)).await
    }

    /// `PUT path` as seed 002's clients send it: anonymous, seeds' routes open.
    pub async fn seed_put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, GUEST, Body::Json(body)).await
    }

    /// `method path` on the admin port (dead letters) with `bearer` as the credential.
    pub async fn call_admin_port(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.admin));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let r = request.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Open a shipment through the canonical API, as an admin, for an order whose
    /// `paid-order` then comes (without a customer); returns its id once it may ship.
    pub async fn open(&self, order_id: i64) -> i64 {
        let (status, body) = self
            .post(
                "/api/v1/shipments",
                serde_json::json!({"order_id": order_id}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        self.mark_paid(order_id).await;
        body["id"].as_i64().unwrap()
    }

    /// Publish the `paid-order` (no customer) of an order whose shipment is open, and
    /// wait until the shipment knows it is paid.
    pub async fn mark_paid(&self, order_id: i64) {
        self.publish(&Self::paid_order(order_id, None)).await;
        sales_testkit::eventually(
            &format!("order {order_id}'s shipment to be paid"),
            Duration::from_secs(15),
            || async {
                let (_, list) = self
                    .get(&format!("/api/v1/shipments?order_id={order_id}"))
                    .await;
                let shipment = list.as_array()?.first()?.clone();
                (!shipment["paid_at"].is_null()).then_some(())
            },
        )
        .await;
    }

    /// A `paid-order` envelope, as the order service would publish it.
    pub fn paid_order(order_id: i64, customer_id: Option<i64>) -> Envelope {
        Envelope::new(
            "test",
            PaidOrder {
                order_id,
                customer_id,
                status: "CONFIRMED".into(),
                total: Money::new(1999, Currency::USD),
                paid_at: chrono::Utc::now(),
            },
        )
        .into_json()
    }

    /// Publish `envelope` to this namespace's exchange with its type as routing key.
    pub async fn publish(&self, envelope: &Envelope) {
        self.broker
            .publish_raw(
                envelope.message_type.as_str(),
                &serde_json::to_vec(envelope).unwrap(),
            )
            .await;
    }

    /// Publish a `paid-order` and wait until the order's shipment is there.
    pub async fn pay(&self, order_id: i64, customer_id: Option<i64>) -> Value {
        self.publish(&Self::paid_order(order_id, customer_id)).await;
        self.wait_for_shipment_of(order_id).await
    }

    pub async fn wait_for_shipment_of(&self, order_id: i64) -> Value {
        sales_testkit::eventually(
            &format!("the shipment of order {order_id}"),
            Duration::from_secs(15),
            || async {
                let (_, list) = self
                    .get(&format!("/api/v1/shipments?order_id={order_id}"))
                    .await;
                list.as_array().and_then(|l| l.first().cloned())
            },
        )
        .await
    }

    /// The value of the series `name` that has all of `labels`.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let text = sales_testkit::http_get(format!("{}/metrics", self.admin))
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

    /// `paid-order` messages consumed with `outcome` (`processed`, `duplicate`...).
    pub async fn consumed(&self, outcome: &str) -> f64 {
        self.metric(
            "messages_consumed_total",
            &[("queue", "shipping.paid-order"), ("outcome", outcome)],
        )
        .await
        .unwrap_or(0.0)
    }

    /// A private queue bound to this namespace's exchange for `types`.
    pub async fn listen(&self, types: &[MessageType]) -> Listener {
        let conn = self.broker.connect().await;
        let channel = conn.create_channel().await.unwrap();
        let exchange = self.broker.topology().exchange();
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        for t in types {
            channel
                .queue_bind(
                    queue.name().as_str().into(),
                    exchange.as_str().into(),
                    t.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
        }
        let consumer = channel
            .basic_consume(
                queue.name().as_str().into(),
                "shipping-test".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        Listener {
            _conn: conn,
            consumer,
        }
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.service.take() {
            s.stop().await;
        }
        self.broker.delete().await;
        self.db.drop_database().await;
    }
}

/// Unpadded base64url (RFC 4648 §5), as JWTs encode their parts.
pub fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// Messages arriving on a private queue (deleted when the connection closes).
pub struct Listener {
    _conn: lapin::Connection,
    consumer: lapin::Consumer,
}

impl Listener {
    /// The next message's envelope, or a panic after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Envelope {
        let delivery = tokio::time::timeout(timeout, self.consumer.next())
            .await
            .expect("a message within the timeout")
            .expect("the consumer is open")
            .expect("a delivery");
        delivery.ack(BasicAckOptions::default()).await.unwrap();
        Envelope::from_slice(&delivery.data).unwrap()
    }

    /// Decode the next message as `E`.
    pub async fn next_event<E: Event>(&mut self, timeout: Duration) -> (Envelope, E) {
        let envelope = self.next(timeout).await;
        let event = envelope.decode::<E>().unwrap();
        (envelope, event)
    }

    /// Nothing more arrives within `wait`.
    pub async fn assert_quiet(&mut self, wait: Duration) {
        if let Ok(Some(Ok(delivery))) = tokio::time::timeout(wait, self.consumer.next()).await {
            panic!(
                "unexpected message: {}",
                String::from_utf8_lossy(&delivery.data)
            );
        }
    }
}
