//! A running payment service on a fresh database.

#![allow(dead_code)]

use std::time::Duration;

use clap::Parser;
use payment_service::{Config, build};
use reqwest::StatusCode;
use sales_platform::service::RunningService;
use sales_testkit::TestDatabase;
use serde_json::Value;

pub struct PaymentService {
    pub service: Option<RunningService>,
    pub db: TestDatabase,
    pub base: String,
    pub admin: String,
    client: reqwest::Client,
}

/// Who calls: nobody in particular (internal), a customer, or an admin.
#[derive(Clone, Copy, Debug)]
pub enum As {
    Internal,
    Customer(i64),
    Admin(i64),
}

impl PaymentService {
    pub async fn start() -> PaymentService {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> PaymentService {
        sales_testkit::init_test_logging();
        let db = TestDatabase::create("payment").await;
        let mut config = Config::parse_from([
            "payment-service",
            "--http-addr=127.0.0.1:0",
            "--admin-addr=127.0.0.1:0",
            "--database-url=postgres://unused",
            "--log-format=text",
        ]);
        config.database = db.args();
        adjust(&mut config);
        let service = build(config).await.expect("payment service starts");
        let base = service.base_url();
        let admin = service.admin_url();
        sales_testkit::wait_ready(&format!("{base}/ready"), Duration::from_secs(30))
            .await
            .expect("payment service ready");
        PaymentService {
            service: Some(service),
            db,
            base,
            admin,
            client: reqwest::Client::new(),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str, who: As) -> reqwest::RequestBuilder {
        let r = self.client.request(method, format!("{}{path}", self.base));
        match who {
            As::Internal => r,
            As::Customer(id) => r
                .header("x-customer-id", id.to_string())
                .header("x-customer-role", "customer"),
            As::Admin(id) => r
                .header("x-customer-id", id.to_string())
                .header("x-customer-role", "admin"),
        }
    }

    async fn answer(r: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let r = r.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.get_as(path, As::Internal).await
    }

    pub async fn get_as(&self, path: &str, who: As) -> (StatusCode, Value) {
        Self::answer(self.request(reqwest::Method::GET, path, who)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.post_as(path, body, As::Internal).await
    }

    pub async fn post_as(&self, path: &str, body: Value, who: As) -> (StatusCode, Value) {
        Self::answer(self.request(reqwest::Method::POST, path, who).json(&body)).await
    }

    /// A POST without a body (the action routes).
    pub async fn post_empty(&self, path: &str) -> (StatusCode, Value) {
        self.post_empty_as(path, As::Internal).await
    }

    pub async fn post_empty_as(&self, path: &str, who: As) -> (StatusCode, Value) {
        Self::answer(self.request(reqwest::Method::POST, path, who)).await
    }

    pub async fn put_empty(&self, path: &str) -> (StatusCode, Value) {
        self.put_empty_as(path, As::Internal).await
    }

    pub async fn put_empty_as(&self, path: &str, who: As) -> (StatusCode, Value) {
        Self::answer(self.request(reqwest::Method::PUT, path, who)).await
    }

    /// `method path` with `body` sent as JSON text exactly as given.
    pub async fn send_raw(&self, method: &str, path: &str, body: &str) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        Self::answer(
            self.request(method, path, As::Internal)
                .header("content-type", "application/json")
                .body(body.to_owned()),
        )
        .await
    }

    /// A POST with `body` as `text/plain`.
    pub async fn send_raw_plain(&self, path: &str, body: &str) -> (StatusCode, Value) {
        Self::answer(
            self.request(reqwest::Method::POST, path, As::Internal)
                .header("content-type", "text/plain")
                .body(body.to_owned()),
        )
        .await
    }

    /// `method path` with one extra header and no body.
    pub async fn send_raw_with_header(
        &self,
        method: &str,
        path: &str,
        name: &str,
        value: &str,
    ) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        Self::answer(self.request(method, path, As::Internal).header(name, value)).await
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
