//! A running inventory service on a fresh database and broker namespace, with a test
//! identity provider and gateway ([`TestIdentity`]) whose tokens it checks.
//!
//! Every request says who makes it ([`Who`]): there is no "internal" call any more.
//! The usual callers are [`ORDER_SERVICE`] (reservations), [`ADMIN`] (stock counts)
//! and [`SEED_CLIENT`] (the seeds' routes, as the gateway forwards an anonymous
//! client's request while they are open).

#![allow(dead_code)]

use std::time::Duration;

use clap::Parser;
use inventory_service::{Config, SERVICE, build};
use reqwest::{Method, StatusCode};
use sales_platform::service::RunningService;
use sales_testkit::identity::TestIdentity;
pub use sales_testkit::identity::Who;
use sales_testkit::{TestBroker, TestDatabase};
use serde_json::Value;

/// The order service, which reserves stock for the orders it places.
pub const ORDER_SERVICE: Who = Who::Service("order", &["stock:reserve"]);
/// An administrator, through the gateway: stock counts.
pub const ADMIN: Who = Who::Admin(1);
/// A client without an account, through the gateway, while the seeds' routes are open.
pub const SEED_CLIENT: Who = Who::Anonymous { seed_compat: true };

/// What the service answered.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    /// The `WWW-Authenticate` challenge of a 401.
    pub challenge: Option<String>,
}

pub struct Inventory {
    pub service: Option<RunningService>,
    pub db: TestDatabase,
    pub broker: TestBroker,
    /// The issuers the service trusts; alive as long as the service.
    pub identity: TestIdentity,
    pub base: String,
    pub admin: String,
    client: reqwest::Client,
}

impl Inventory {
    pub async fn start() -> Inventory {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Inventory {
        sales_testkit::init_test_logging();
        let db = TestDatabase::create("inventory").await;
        let broker = TestBroker::new();
        let identity = TestIdentity::start().await;
        let mut config = Config::parse_from([
            "inventory-service",
            "--http-addr=127.0.0.1:0",
            "--admin-addr=127.0.0.1:0",
            "--database-url=postgres://unused",
            "--amqp-url=amqp://unused",
            "--log-format=text",
            "--identity-url=http://unused",
            "--gateway-jwks-url=http://unused",
            "--service-client-secret=unused",
        ]);
        config.database = db.args();
        config.broker = broker.args();
        config.identity = identity.args();
        adjust(&mut config);
        let service = build(config).await.expect("inventory starts");
        let base = service.base_url();
        let admin = service.admin_url();
        sales_testkit::wait_ready(&format!("{base}/ready"), Duration::from_secs(30))
            .await
            .expect("inventory ready");
        Inventory {
            service: Some(service),
            db,
            broker,
            identity,
            base,
            admin,
            client: sales_testkit::http_client(),
        }
    }

    /// A token for a request by `who` to the inventory (`None` for [`Who::Nobody`]).
    pub fn token(&self, who: Who) -> Option<String> {
        self.identity.token(SERVICE, who)
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Send `method url` with `token` as `Authorization: Bearer` (none: no header)
    /// and `body` as JSON.
    pub async fn send_raw(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut request = self.client.request(method, url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let r = request.send().await.unwrap();
        let status = r.status();
        let challenge = r
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Reply {
            status,
            body: r.json().await.unwrap_or(Value::Null),
            challenge,
        }
    }

    /// `method path` on the API port with `token`.
    pub async fn send_token(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.send_raw(
            method,
            &format!("{}{path}", self.base),
            token,
            body.as_ref(),
        )
        .await
    }

    /// `method path` on the API port, by `who`.
    pub async fn send(&self, method: Method, who: Who, path: &str, body: Option<Value>) -> Reply {
        let token = self.token(who);
        self.send_token(method, path, token.as_deref(), body).await
    }

    pub async fn get(&self, who: Who, path: &str) -> (StatusCode, Value) {
        let r = self.send(Method::GET, who, path, None).await;
        (r.status, r.body)
    }

    pub async fn post(&self, who: Who, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self.send(Method::POST, who, path, Some(body)).await;
        (r.status, r.body)
    }

    pub async fn put(&self, who: Who, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self.send(Method::PUT, who, path, Some(body)).await;
        (r.status, r.body)
    }

    /// `method path` on the admin port with `token` (an administrator's access token).
    pub async fn admin_call(&self, method: Method, path: &str, token: Option<&str>) -> Reply {
        self.send_raw(method, &format!("{}{path}", self.admin), token, None)
            .await
    }

    /// An administrator's own access token, as logging in gives it: what the admin
    /// port's operations endpoints take.
    pub fn admin_access_token(&self) -> String {
        self.identity.minter().access_token(1, true)
    }

    /// `GET path` on the admin port as an administrator.
    pub async fn get_admin(&self, path: &str) -> (StatusCode, Value) {
        let token = self.admin_access_token();
        let r = self.admin_call(Method::GET, path, Some(&token)).await;
        (r.status, r.body)
    }

    /// A stock count, by an administrator.
    pub async fn set_stock(&self, sku: &str, on_hand: i32) {
        let (status, body) = self
            .put(
                ADMIN,
                &format!("/api/v1/inventory/items/{sku}"),
                serde_json::json!({"on_hand": on_hand}),
            )
            .await;
        assert!(status.is_success(), "set stock of {sku}: {status} {body}");
    }

    /// The stock level of `sku`, as an administrator sees it.
    pub async fn level(&self, sku: &str) -> Value {
        let (status, body) = self
            .get(ADMIN, &format!("/api/v1/inventory/items/{sku}"))
            .await;
        assert_eq!(status, StatusCode::OK, "stock level of {sku}: {body}");
        body
    }

    /// Reserve `items` for `order_id`, as the order service does; the reservation.
    pub async fn reserve_for_order(&self, order_id: Option<i64>, items: Value) -> Value {
        let (status, body) = self
            .post(
                ORDER_SERVICE,
                "/api/v1/inventory/reservations",
                serde_json::json!({"order_id": order_id, "items": items}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "reserve {items}: {body}");
        body
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.service.take() {
            s.stop().await;
        }
        self.broker.delete().await;
        self.db.drop_database().await;
    }
}
