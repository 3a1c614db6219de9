//! A running payment service on a fresh database, with a test identity provider and
//! test gateway (`sales_testkit::identity`): every request carries the token its
//! caller would really have, and the service checks it as in production.

#![allow(dead_code)]

use std::time::Duration;

use clap::Parser;
use payment_service::provider::PaymentProvider;
use payment_service::{Config, build, build_with_provider};

/// Makes the provider from the service's database pool.
pub type ProviderFactory = Box<dyn FnOnce(sqlx::PgPool) -> std::sync::Arc<dyn PaymentProvider>>;
use reqwest::StatusCode;
use sales_platform::service::RunningService;
use sales_testkit::TestDatabase;
pub use sales_testkit::identity::{TestIdentity, Who};
use serde_json::Value;

pub struct PaymentService {
    pub service: Option<RunningService>,
    pub db: TestDatabase,
    /// Signs the callers' tokens and serves the keys the service checks them with;
    /// it lives as long as the service.
    pub identity: TestIdentity,
    pub base: String,
    pub admin: String,
    client: reqwest::Client,
}

/// Who calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum As {
    /// No credential at all (a pod in the namespace, say).
    Nobody,
    /// Someone without an account, through the gateway; `seed_compat`: the seeds'
    /// routes are open (`SEED_COMPAT_OPEN`).
    Anonymous { seed_compat: bool },
    /// A signed-in customer, through the gateway.
    Customer(i64),
    /// A signed-in administrator, through the gateway.
    Admin(i64),
    /// The order service, with its service token (scope `payments:charge`): it charges
    /// and refunds orders.
    Order,
}

/// How the gateway sends a seed route's caller without an account, seeds open.
pub const SEED: As = As::Anonymous { seed_compat: true };
/// The first account, an administrator.
pub const ADMIN: As = As::Admin(1);

/// The order service's rights at the payment service.
pub const ORDER_SCOPES: &[&str] = &["payments:charge"];

impl As {
    pub fn who(self) -> Who {
        match self {
            As::Nobody => Who::Nobody,
            As::Anonymous { seed_compat } => Who::Anonymous { seed_compat },
            As::Customer(id) => Who::Customer(id),
            As::Admin(id) => Who::Admin(id),
            As::Order => Who::Service("order", ORDER_SCOPES),
        }
    }
}

impl PaymentService {
    pub async fn start() -> PaymentService {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> PaymentService {
        Self::start_with_provider(adjust, None).await
    }

    /// Started with the provider `provider` makes from the service's pool (`None`:
    /// the simulated provider, as in production).
    pub async fn start_with_provider(
        adjust: impl FnOnce(&mut Config),
        provider: Option<ProviderFactory>,
    ) -> PaymentService {
        sales_testkit::init_test_logging();
        let identity = TestIdentity::start().await;
        let db = TestDatabase::create("payment").await;
        let mut config = Config::parse_from([
            "payment-service",
            "--http-addr=127.0.0.1:0",
            "--admin-addr=127.0.0.1:0",
            "--database-url=postgres://unused",
            "--log-format=text",
            "--identity-url=http://unused",
            "--gateway-jwks-url=http://unused",
            "--service-client-secret=unused",
        ]);
        config.database = db.args();
        config.identity = identity.args();
        adjust(&mut config);
        let service = match provider {
            Some(make) => build_with_provider(config, make).await,
            None => build(config).await,
        }
        .expect("payment service starts");
        let base = service.base_url();
        let admin = service.admin_url();
        sales_testkit::wait_ready(&format!("{base}/ready"), Duration::from_secs(30))
            .await
            .expect("payment service ready");
        PaymentService {
            service: Some(service),
            db,
            identity,
            base,
            admin,
            client: sales_testkit::http_client(),
        }
    }

    /// A token of this test's issuers for `who` calling the payment service.
    pub fn token(&self, who: As) -> Option<String> {
        self.identity.token(payment_service::SERVICE, who.who())
    }

    /// `method path` with `token` as the bearer credential, if any.
    pub fn request_with(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let r = self.client.request(method, format!("{}{path}", self.base));
        match token {
            Some(token) => r.bearer_auth(token),
            None => r,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str, who: As) -> reqwest::RequestBuilder {
        self.request_with(method, path, self.token(who).as_deref())
    }

    pub async fn answer(r: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let r = r.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_as(&self, path: &str, who: As) -> (StatusCode, Value) {
        Self::answer(self.request(reqwest::Method::GET, path, who)).await
    }

    pub async fn post_as(&self, path: &str, body: Value, who: As) -> (StatusCode, Value) {
        Self::answer(self.request(reqwest::Method::POST, path, who).json(&body)).await
    }

    /// A POST without a body (the action routes).
    pub async fn post_empty_as(&self, path: &str, who: As) -> (StatusCode, Value) {
        Self::answer(self.request(reqwest::Method::POST, path, who)).await
    }

    pub async fn put_empty_as(&self, path: &str, who: As) -> (StatusCode, Value) {
        Self::answer(self.request(reqwest::Method::PUT, path, who)).await
    }

    /// `method path` by `who`, with `body` sent as JSON text exactly as given.
    pub async fn send_raw_as(
        &self,
        method: &str,
        path: &str,
        body: &str,
        who: As,
    ) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        Self::answer(
            self.request(method, path, who)
                .header("content-type", "application/json")
                .body(body.to_owned()),
        )
        .await
    }

    /// A POST by `who` with `body` as `text/plain`.
    pub async fn send_raw_plain_as(&self, path: &str, body: &str, who: As) -> (StatusCode, Value) {
        Self::answer(
            self.request(reqwest::Method::POST, path, who)
                .header("content-type", "text/plain")
                .body(body.to_owned()),
        )
        .await
    }

    /// `method path` with the given headers (and no others: no credential unless
    /// one of them is), and no body.
    pub async fn send_with_headers(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self.request_with(method, path, None);
        for (name, value) in headers {
            r = r.header(*name, *value);
        }
        Self::answer(r).await
    }

    /// `method path` with `token` as the bearer credential, if any, and `body` as
    /// JSON, if any: the whole response, headers included.
    pub async fn send_with_token(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> reqwest::Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = self.request_with(method, path, token);
        let r = match body {
            Some(body) => r.json(body),
            None => r,
        };
        r.send().await.unwrap()
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.service.take() {
            s.stop().await;
        }
        self.db.drop_database().await;
    }
}
