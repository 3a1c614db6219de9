//! A running inventory service on a fresh database and broker namespace.

#![allow(dead_code)]

use std::time::Duration;

use clap::Parser;
use inventory_service::{Config, build};
use reqwest::StatusCode;
use sales_platform::service::RunningService;
use sales_testkit::{TestBroker, TestDatabase};
use serde_json::Value;

pub struct Inventory {
    pub service: Option<RunningService>,
    pub db: TestDatabase,
    pub broker: TestBroker,
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
        let mut config = Config::parse_from([
            "inventory-service",
            "--http-addr=127.0.0.1:0",
            "--admin-addr=127.0.0.1:0",
            "--database-url=postgres://unused",
            "--amqp-url=amqp://unused",
            "--log-format=text",
        ]);
        config.database = db.args();
        config.broker = broker.args();
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
            base,
            admin,
            client: reqwest::Client::new(),
        }
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_admin(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.admin))
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .client
            .put(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn set_stock(&self, sku: &str, on_hand: i32) {
        let (status, body) = self
            .put(
                &format!("/api/v1/inventory/items/{sku}"),
                serde_json::json!({"on_hand": on_hand}),
            )
            .await;
        assert!(status.is_success(), "set stock of {sku}: {status} {body}");
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.service.take() {
            s.stop().await;
        }
        self.broker.delete().await;
        self.db.drop_database().await;
    }
}
