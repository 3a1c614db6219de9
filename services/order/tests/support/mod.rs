//! A running order service on a fresh database and broker namespace, with a test
//! identity provider and gateway ([`TestIdentity`]) whose tokens it checks, and the
//! services it calls (catalogue, inventory, payments) played by [`Upstream`]: an
//! in-process stand-in that counts every side effect (a reservation made, a card
//! charged), so a test can prove that a request did not cause one.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use clap::Parser;
use order_service::{Config, SERVICE, build};
use reqwest::Method;
use sales_platform::identity::claims::{OnBehalfOf, TokenClaims};
use sales_platform::identity::service_audience;
use sales_platform::service::RunningService;
use sales_testkit::identity::TestIdentity;
pub use sales_testkit::identity::Who;
use sales_testkit::{TestBroker, TestDatabase};
use serde_json::{Value, json};

/// A client without an account, through the gateway, while the seeds' routes are open.
pub const SEED_CLIENT: Who = Who::Anonymous { seed_compat: true };
pub const ADMIN: Who = Who::Admin(1);

/// One product of the stand-in catalogue.
#[derive(Clone, Debug)]
pub struct Product {
    pub id: i64,
    pub sku: String,
    pub price_cents: i64,
}

/// A reservation in the stand-in inventory: `(reservation id, lines, released)`.
pub type HeldStock = (i64, Vec<(String, i64)>, bool);

#[derive(Default)]
pub struct UpstreamState {
    pub catalogue: Vec<Product>,
    /// Units that can still be reserved, by SKU; a SKU not here has no stock item.
    pub stock: BTreeMap<String, i64>,
    /// Reservations made, by order id: `(reservation id, lines, released)`.
    pub reservations: BTreeMap<i64, HeldStock>,
    /// Charges made, by order id: the amount in cents.
    pub charges: BTreeMap<i64, i64>,
    /// Every reservation request received (repeats included).
    pub reserve_calls: usize,
    pub charge_calls: usize,
    next_reservation: i64,
}

/// The catalogue, inventory and payment service as the order service sees them,
/// plus the identity provider's token endpoint for its service token.
#[derive(Clone)]
pub struct Upstream {
    pub state: Arc<Mutex<UpstreamState>>,
    /// How long a reservation takes: lets concurrent requests overlap.
    pub reserve_delay: Arc<Mutex<Duration>>,
    pub base_url: String,
}

impl Upstream {
    async fn start(identity: &TestIdentity) -> Upstream {
        let provider_jwks: Value =
            reqwest::get(format!("{}/.well-known/jwks.json", identity.base_url))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        let service_token = identity.minter().sign_as_provider(&TokenClaims::service(
            SERVICE,
            &["catalogue:read", "stock:reserve", "payments:charge"],
            vec![
                service_audience("product"),
                service_audience("inventory"),
                service_audience("payment"),
            ],
            Duration::from_secs(600),
        ));
        let upstream = Upstream {
            state: Arc::default(),
            reserve_delay: Arc::new(Mutex::new(Duration::ZERO)),
            base_url: String::new(),
        };
        let app = Router::new()
            .route(
                "/.well-known/jwks.json",
                get(move || {
                    let jwks = provider_jwks.clone();
                    async move { Json(jwks) }
                }),
            )
            .route(
                "/oauth/token",
                post(move || {
                    let token = service_token.clone();
                    async move {
                        Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": 600}))
                    }
                }),
            )
            .route("/api/v1/products", get(products))
            .route("/api/v1/inventory/reservations", post(reserve))
            .route(
                "/api/v1/inventory/reservations/{id}/release",
                post(release),
            )
            .route("/api/v1/payments/charge", post(charge))
            .with_state(upstream.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Upstream {
            base_url,
            ..upstream
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, UpstreamState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A product in the catalogue, with a stock item of `stock` units.
    pub fn add_product(&self, id: i64, sku: &str, price_cents: i64, stock: i64) {
        let mut s = self.lock();
        s.catalogue.push(Product {
            id,
            sku: sku.into(),
            price_cents,
        });
        s.stock.insert(sku.into(), stock);
    }

    /// A stock item the catalogue does not know (seed 004's `POST /api/v1/stock/items`).
    pub fn add_stock_item(&self, sku: &str, stock: i64) {
        self.lock().stock.insert(sku.into(), stock);
    }

    pub fn available(&self, sku: &str) -> Option<i64> {
        self.lock().stock.get(sku).copied()
    }

    /// Reservations made and not released.
    pub fn held_reservations(&self) -> usize {
        self.lock()
            .reservations
            .values()
            .filter(|(_, _, released)| !released)
            .count()
    }

    pub fn reservations_made(&self) -> usize {
        self.lock().reservations.len()
    }

    pub fn charges_made(&self) -> usize {
        self.lock().charges.len()
    }

    pub fn set_reserve_delay(&self, delay: Duration) {
        *self.reserve_delay.lock().unwrap_or_else(|e| e.into_inner()) = delay;
    }
}

fn product_json(p: &Product) -> Value {
    let at = Utc::now();
    json!({
        "id": p.id, "sku": p.sku, "name": format!("Product {}", p.sku), "description": "",
        "price": {"amount": p.price_cents, "currency": "USD"},
        "created_at": at, "updated_at": at
    })
}

async fn products(
    State(up): State<Upstream>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let s = up.lock();
    let ids: Vec<i64> = q
        .get("ids")
        .map(|l| l.split(',').filter_map(|i| i.parse().ok()).collect())
        .unwrap_or_default();
    let skus: Vec<String> = q
        .get("skus")
        .map(|l| l.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    Json(Value::Array(
        s.catalogue
            .iter()
            .filter(|p| ids.contains(&p.id) || skus.contains(&p.sku))
            .map(product_json)
            .collect(),
    ))
}

fn reservation_json(order_id: i64, id: i64, lines: &[(String, i64)], released: bool) -> Value {
    let at = Utc::now();
    json!({
        "reservation_id": id, "order_id": order_id,
        "status": if released { "released" } else { "pending" },
        "items": lines.iter().map(|(sku, q)| json!({"sku": sku, "quantity": q})).collect::<Vec<_>>(),
        "expires_at": null, "created_at": at, "updated_at": at
    })
}

fn error(status: StatusCode, code: &str, details: Value) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({"error": {"code": code, "message": code, "details": details}})),
    )
}

async fn reserve(State(up): State<Upstream>, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    let delay = *up.reserve_delay.lock().unwrap_or_else(|e| e.into_inner());
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut s = up.lock();
    s.reserve_calls += 1;
    let order_id = body["order_id"].as_i64().unwrap_or_default();
    if let Some((id, lines, released)) = s.reservations.get(&order_id) {
        return (
            StatusCode::CREATED,
            Json(reservation_json(order_id, *id, lines, *released)),
        );
    }
    let lines: Vec<(String, i64)> = body["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|l| {
            (
                l["sku"].as_str().unwrap_or_default().to_owned(),
                l["quantity"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    let unknown: Vec<&String> = lines
        .iter()
        .map(|(sku, _)| sku)
        .filter(|sku| !s.stock.contains_key(*sku))
        .collect();
    if !unknown.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            "unknown_item",
            json!({"unknown_skus": unknown}),
        );
    }
    let shortages: Vec<Value> = lines
        .iter()
        .filter(|(sku, q)| s.stock[sku] < *q)
        .map(|(sku, q)| json!({"sku": sku, "requested": q, "available": s.stock[sku]}))
        .collect();
    if !shortages.is_empty() {
        return error(
            StatusCode::CONFLICT,
            "insufficient_stock",
            json!({"shortages": shortages}),
        );
    }
    for (sku, q) in &lines {
        if let Some(level) = s.stock.get_mut(sku) {
            *level -= q;
        }
    }
    s.next_reservation += 1;
    let id = s.next_reservation;
    s.reservations.insert(order_id, (id, lines.clone(), false));
    (
        StatusCode::CREATED,
        Json(reservation_json(order_id, id, &lines, false)),
    )
}

async fn release(State(up): State<Upstream>, Path(id): Path<i64>) -> (StatusCode, Json<Value>) {
    let mut s = up.lock();
    let found = s
        .reservations
        .iter()
        .find(|(_, (rid, _, _))| *rid == id)
        .map(|(order_id, (_, lines, released))| (*order_id, lines.clone(), *released));
    let Some((order_id, lines, released)) = found else {
        return error(StatusCode::NOT_FOUND, "not_found", Value::Null);
    };
    if !released {
        for (sku, q) in &lines {
            if let Some(level) = s.stock.get_mut(sku) {
                *level += q;
            }
        }
        if let Some(r) = s.reservations.get_mut(&order_id) {
            r.2 = true;
        }
    }
    (
        StatusCode::OK,
        Json(reservation_json(order_id, id, &lines, true)),
    )
}

async fn charge(State(up): State<Upstream>, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    let mut s = up.lock();
    s.charge_calls += 1;
    let order_id = body["order_id"].as_i64().unwrap_or_default();
    let amount = body["amount"]["amount"].as_i64().unwrap_or_default();
    let amount = *s.charges.entry(order_id).or_insert(amount);
    // Seed 004's authorizer: below 1000.00 is accepted.
    let declined = amount >= 100_000;
    let at = Utc::now();
    (
        StatusCode::CREATED,
        Json(json!({
            "payment_id": order_id + 1000, "order_id": order_id, "customer_id": body["customer_id"],
            "amount": body["amount"], "status": if declined { "declined" } else { "confirmed" },
            "decline_reason": if declined { json!("amount over the limit") } else { Value::Null },
            "created_at": at, "updated_at": at
        })),
    )
}

/// What the service answered.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub retry_after: Option<String>,
}

pub struct Orders {
    pub service: Option<RunningService>,
    pub db: TestDatabase,
    pub broker: TestBroker,
    pub identity: TestIdentity,
    pub upstream: Upstream,
    pub base: String,
    client: reqwest::Client,
}

impl Orders {
    pub async fn start() -> Orders {
        Self::start_with(&[]).await
    }

    /// With more command-line settings (`--max-unpaid-orders-per-customer=2`...).
    pub async fn start_with(args: &[&str]) -> Orders {
        sales_testkit::init_test_logging();
        let db = TestDatabase::create("order").await;
        let broker = TestBroker::new();
        let identity = TestIdentity::start().await;
        let upstream = Upstream::start(&identity).await;
        let mut argv = vec![
            "order-service".to_owned(),
            "--http-addr=127.0.0.1:0".into(),
            "--admin-addr=127.0.0.1:0".into(),
            "--database-url=postgres://unused".into(),
            "--amqp-url=amqp://unused".into(),
            "--log-format=text".into(),
            "--identity-url=http://unused".into(),
            "--gateway-jwks-url=http://unused".into(),
            "--service-client-secret=unused".into(),
            format!("--product-url={}", upstream.base_url),
            format!("--inventory-url={}", upstream.base_url),
            format!("--payment-url={}", upstream.base_url),
        ];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        let mut config = Config::parse_from(argv);
        config.database = db.args();
        config.broker = broker.args();
        config.identity = identity.args();
        // The service token comes from the stand-in's token endpoint, which serves
        // the test provider's keys too.
        config.identity.identity_url = upstream.base_url.clone();
        let service = build(config).await.expect("order service starts");
        let base = service.base_url();
        sales_testkit::wait_ready(&format!("{base}/ready"), Duration::from_secs(30))
            .await
            .expect("order service ready");
        Orders {
            service: Some(service),
            db,
            broker,
            identity,
            upstream,
            base,
            client: reqwest::Client::new(),
        }
    }

    pub fn token(&self, who: Who) -> Option<String> {
        self.identity.token(SERVICE, who)
    }

    /// A token the gateway would send for a caller without an account at `ip`.
    pub fn anonymous_at(&self, ip: &str) -> String {
        let ip: IpAddr = ip.parse().unwrap();
        self.identity
            .minter()
            .sign_as_gateway(&TokenClaims::gateway(
                service_audience(SERVICE),
                OnBehalfOf::Anonymous,
                true,
                Some(ip),
                Duration::from_secs(600),
            ))
    }

    /// `method path` with `token` and more headers; `body` sent as JSON.
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Reply {
        let mut r = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            r = r.bearer_auth(token);
        }
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        if let Some(body) = body {
            r = r.json(body);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        let retry_after = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = r.text().await.unwrap_or_default();
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
            retry_after,
        }
    }

    pub async fn send(&self, method: Method, path: &str, who: Who, body: Option<&Value>) -> Reply {
        let token = self.token(who);
        self.send_with(method, path, token.as_deref(), &[], body)
            .await
    }

    pub async fn post(&self, path: &str, who: Who, body: Value) -> Reply {
        self.send(Method::POST, path, who, Some(&body)).await
    }

    pub async fn get(&self, path: &str, who: Who) -> Reply {
        self.send(Method::GET, path, who, None).await
    }

    /// POST `body` with an `Idempotency-Key`.
    pub async fn post_keyed(&self, path: &str, who: Who, key: &str, body: Value) -> Reply {
        let token = self.token(who);
        self.send_with(
            Method::POST,
            path,
            token.as_deref(),
            &[("idempotency-key", key)],
            Some(&body),
        )
        .await
    }

    /// POST `text` as is (a JSON content type).
    pub async fn post_raw(&self, path: &str, who: Who, text: &str) -> Reply {
        let mut r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(text.to_owned());
        if let Some(token) = self.token(who) {
            r = r.bearer_auth(token);
        }
        let r = r.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
            retry_after: None,
        }
    }

    pub async fn sql_count(&self, sql: &str) -> i64 {
        let pool = sqlx::PgPool::connect(&self.db.url).await.unwrap();
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
        pool.close().await;
        n
    }

    pub async fn stop(mut self) {
        if let Some(service) = self.service.take() {
            service.stop().await;
        }
        self.broker.delete().await;
        self.db.drop_database().await;
    }
}
