//! A running customer service on a fresh database.

#![allow(dead_code)]

use std::time::Duration;

use clap::Parser;
use customer_service::tokens::TokenKeys;
use customer_service::{Config, build};
use reqwest::{Method, StatusCode};
use sales_contracts::api::auth::Claims;
use sales_platform::service::RunningService;
use sales_testkit::TestDatabase;
use secrecy::SecretString;
use serde_json::{Value, json};

/// The `JWT_SECRET` every test service signs with.
pub const SECRET: &str = "customer-service-test-secret-0123456789abcdef";

pub struct Customers {
    pub service: Option<RunningService>,
    pub db: Option<TestDatabase>,
    pub base: String,
    pub admin: String,
    client: reqwest::Client,
}

/// The configuration of a test service (ports chosen by the system).
pub fn config() -> Config {
    Config::parse_from([
        "customer-service",
        "--http-addr=127.0.0.1:0",
        "--admin-addr=127.0.0.1:0",
        "--database-url=postgres://unused",
        "--log-format=text",
        &format!("--jwt-secret={SECRET}"),
    ])
}

/// Verifies tokens as the gateway will.
pub fn keys() -> TokenKeys {
    TokenKeys::from_secret(&SecretString::from(SECRET)).unwrap()
}

pub fn verify(token: &str) -> Claims {
    keys()
        .verify(token)
        .unwrap_or_else(|e| panic!("token does not verify: {e}"))
}

/// Headers the gateway sets for a signed-in customer.
pub fn as_customer(id: i64) -> Vec<(&'static str, String)> {
    vec![
        ("x-customer-id", id.to_string()),
        ("x-customer-role", "customer".to_owned()),
    ]
}

pub fn as_admin(id: i64) -> Vec<(&'static str, String)> {
    vec![
        ("x-customer-id", id.to_string()),
        ("x-customer-role", "admin".to_owned()),
    ]
}

impl Customers {
    pub async fn start() -> Customers {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Customers {
        sales_testkit::init_test_logging();
        let db = TestDatabase::create("customer").await;
        Self::start_on(db, adjust).await
    }

    /// Start on an existing database (a restart).
    pub async fn start_on(db: TestDatabase, adjust: impl FnOnce(&mut Config)) -> Customers {
        let mut config = config();
        config.database = db.args();
        adjust(&mut config);
        let service = build(config).await.expect("customer service starts");
        let base = service.base_url();
        let admin = service.admin_url();
        sales_testkit::wait_ready(&format!("{base}/ready"), Duration::from_secs(30))
            .await
            .expect("customer service ready");
        Customers {
            service: Some(service),
            db: Some(db),
            base,
            admin,
            client: reqwest::Client::new(),
        }
    }

    /// Stop, then start again on the same database with another configuration.
    pub async fn restart(mut self, adjust: impl FnOnce(&mut Config)) -> Customers {
        if let Some(s) = self.service.take() {
            s.stop().await;
        }
        let db = self.db.take().expect("database");
        Self::start_on(db, adjust).await
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self.client.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            r = r.header(*name, value);
        }
        if let Some(body) = body {
            r = r.json(&body);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request(Method::GET, path, &[], None).await
    }

    pub async fn get_as(&self, path: &str, headers: &[(&str, String)]) -> (StatusCode, Value) {
        self.request(Method::GET, path, headers, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, &[], Some(body)).await
    }

    pub async fn put_as(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: Value,
    ) -> (StatusCode, Value) {
        self.request(Method::PUT, path, headers, Some(body)).await
    }

    /// Send `body` as is, with this content type (or none).
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let mut r = self
            .client
            .request(method, format!("{}{path}", self.base))
            .body(body);
        if let Some(ct) = content_type {
            r = r.header("content-type", ct);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The raw text of a response, to look for things that must not be there.
    pub async fn text(&self, method: Method, path: &str, body: Option<Value>) -> String {
        let mut r = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            r = r.json(&body);
        }
        r.send().await.unwrap().text().await.unwrap()
    }

    /// Register through the canonical API; the new customer's id and token.
    pub async fn register(&self, email: &str, password: &str, name: &str) -> (i64, String) {
        let (status, body) = self
            .post(
                "/api/v1/customers/register",
                json!({"email": email, "password": password, "name": name}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "register {email}: {body}");
        (
            body["customer_id"].as_i64().unwrap(),
            body["token"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn login(&self, email: &str, password: &str) -> (StatusCode, Value) {
        self.post(
            "/api/v1/customers/login",
            json!({"email": email, "password": password}),
        )
        .await
    }

    /// Log in, retrying for a while: the admin account is set up just after the
    /// service becomes ready. The claims once `accept` likes them.
    pub async fn wait_for_login(
        &self,
        email: &str,
        password: &str,
        accept: impl Fn(&Claims) -> bool,
    ) -> Claims {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let (status, body) = self.login(email, password).await;
            if status == StatusCode::OK {
                let claims = verify(body["token"].as_str().unwrap());
                if accept(&claims) {
                    return claims;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "login of {email} never gave the expected token: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The Prometheus text of the admin port.
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

    pub async fn pool(&self) -> sqlx::PgPool {
        self.db.as_ref().expect("database").pool().await
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.service.take() {
            s.stop().await;
        }
        if let Some(db) = self.db.take() {
            db.drop_database().await;
        }
    }
}
