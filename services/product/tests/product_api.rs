//! The product service's answers to input its OpenAPI document allows and to input
//! it does not (issue 11's fuzzing): what the document allows is taken, anything
//! else is a clear 400, never a 500.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use clap::Parser;
use product_service::{Config, SERVICE, build};
use reqwest::{Method, StatusCode};
use sales_platform::service::RunningService;
use sales_testkit::identity::{TestIdentity, Who};
use sales_testkit::{TestBroker, TestDatabase};
use serde_json::{Value, json};

struct Product {
    service: Option<RunningService>,
    identity: TestIdentity,
    db: TestDatabase,
    broker: TestBroker,
    base: String,
    client: reqwest::Client,
}

impl Product {
    async fn start() -> Product {
        sales_testkit::init_test_logging();
        let db = TestDatabase::create("product").await;
        let broker = TestBroker::new();
        let mut config = Config::parse_from([
            "product-service",
            "--http-addr=127.0.0.1:0",
            "--admin-addr=127.0.0.1:0",
            "--database-url=postgres://unused",
            "--amqp-url=amqp://unused",
            "--identity-url=http://unused",
            "--gateway-jwks-url=http://unused",
            "--service-client-secret=unused",
            "--inventory-url=http://127.0.0.1:9",
            "--log-format=text",
        ]);
        config.database = db.args();
        config.broker = broker.args();
        config.cache.redis_url = None;
        let identity = TestIdentity::start().await;
        config.identity = identity.args();
        let service = build(config).await.expect("product starts");
        let base = service.base_url();
        sales_testkit::wait_ready(&format!("{base}/ready"), Duration::from_secs(30))
            .await
            .expect("product ready");
        Product {
            service: Some(service),
            identity,
            db,
            broker,
            base,
            client: sales_testkit::http_client(),
        }
    }

    /// `method path` as an admin, with `body` sent as it is (JSON).
    async fn send(&self, method: Method, path: &str, body: Option<&str>) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.identity.token(SERVICE, Who::Admin(1)).unwrap());
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let r = request.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn create(&self, body: Value) -> (StatusCode, Value) {
        self.send(Method::POST, "/api/v1/products", Some(&body.to_string()))
            .await
    }

    async fn stop(mut self) {
        if let Some(s) = self.service.take() {
            s.stop().await;
        }
        self.broker.delete().await;
        self.db.drop_database().await;
    }
}

fn product(sku: &str, name: &str) -> Value {
    json!({"sku": sku, "name": name, "price": {"amount": 100, "currency": "USD"}})
}

/// PostgreSQL cannot store NUL: a name, description, SKU or filter with one made the
/// database fail and the service answer 500. Every one is a 400 now.
#[tokio::test]
async fn nul_in_any_text_is_a_clear_400() {
    let p = Product::start().await;
    let (status, created) = p.create(product("OK", "fine")).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_i64().unwrap();
    let nul = "\u{0}";
    let cases = [
        (
            Method::POST,
            "/api/v1/products".to_owned(),
            product("A", &format!("a{nul}b")),
        ),
        (
            Method::POST,
            "/api/v1/products".to_owned(),
            product(&format!("A{nul}B"), "a"),
        ),
        (
            Method::POST,
            "/api/v1/products".to_owned(),
            json!({"name": "a", "description": nul, "price": {"amount": 1, "currency": "USD"}}),
        ),
        (
            Method::PUT,
            format!("/api/v1/products/{id}"),
            json!({"name": format!("x{nul}")}),
        ),
        (
            Method::POST,
            "/products".to_owned(),
            json!({"name": nul, "price": 1.5}),
        ),
        // Even where the service ignores the member.
        (
            Method::POST,
            "/api/v1/products".to_owned(),
            json!({"name": "a", "price": {"amount": 1, "currency": "USD", "note": nul}}),
        ),
    ];
    for (method, path, body) in cases {
        let (status, answer) = p.send(method.clone(), &path, Some(&body.to_string())).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{method} {path} {body}: {answer}"
        );
        assert_eq!(answer["error"]["code"], "validation_failed");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains("NUL"),
            "{answer}"
        );
    }
    let (status, answer) = p
        .send(Method::GET, "/api/v1/products?skus=A%00B", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_query");
    let (status, answer) = p.send(Method::GET, "/api/v1/products/1%00", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (_, all) = p.send(Method::GET, "/api/v1/products", None).await;
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    p.stop().await;
}

/// What the document allows is taken: lengths are characters (as JSON Schema counts
/// them), not bytes; an integer may be written `10.0`; a SKU is anything that fits in
/// a path.
#[tokio::test]
async fn what_the_document_allows_is_taken() {
    let p = Product::start().await;
    // 200 characters of two bytes each: the document's maxLength, not 400 bytes.
    let (status, answer) = p.create(product("LONG", &"é".repeat(200))).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, answer) = p.create(product("LONGER", &"é".repeat(201))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, answer) = p.create(product(&"ß".repeat(64), "sku of 64")).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");

    let (status, answer) = p
        .send(
            Method::POST,
            "/api/v1/products",
            Some(
                r#"{"sku": "WHOLE", "name": "n", "initial_stock": 10.0,
                    "price": {"amount": 250.0, "currency": "usd"}}"#,
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["price"], json!({"amount": 250, "currency": "USD"}));
    let (status, answer) = p
        .send(
            Method::GET,
            "/api/v1/products?ids=1,2&limit=10.0&offset=0.0",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    for sku in ["a/b", "a\\b", "a;b", "100%", "..", " . ", "tab\there"] {
        let (status, answer) = p.create(product(sku, "path")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{sku:?}: {answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains("sku"),
            "{answer}"
        );
    }
    p.stop().await;
}

/// The document says what the service checks: the bounds of every field, the
/// tokens every route needs, and the answers it gives.
#[tokio::test]
async fn the_document_states_the_rules() {
    let p = Product::start().await;
    let (status, doc) = p.send(Method::GET, "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let create = &doc["components"]["schemas"]["CreateProduct"]["properties"];
    assert_eq!(create["name"]["maxLength"], 200);
    assert_eq!(create["description"]["maxLength"], 5000);
    assert_eq!(create["sku"]["maxLength"], 64);
    assert_eq!(create["initial_stock"]["minimum"], 0);
    assert_eq!(create["price"]["properties"]["amount"]["minimum"], 0);
    let op = &doc["paths"]["/api/v1/products"]["post"];
    assert_eq!(op["security"], json!([{"bearer_token": []}]));
    for status in ["201", "400", "401", "403", "409", "413", "415"] {
        assert!(op["responses"][status].is_object(), "{status}: {op}");
    }
    let limit = doc["paths"]["/api/v1/products"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .cloned()
        .unwrap();
    assert_eq!(
        (&limit["schema"]["minimum"], &limit["schema"]["maximum"]),
        (&json!(1), &json!(500))
    );
    p.stop().await;
}
