//! Stock reserved for an order that was never stored (issue 12). Placing an order
//! reserves its stock under the order's id before the order is written; when the
//! request gives up after that (the inventory's answer lost, the order service
//! killed, the request outliving its claim), no order exists to cancel, and the
//! units must still come back, not sit reserved for an order nobody can see.
//!
//! The inventory is reached through a relay the test controls: it passes every call
//! on, and for reservations it can lose the answer, hold it, or hold it for good.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use system_tests::{Service, System, SystemOptions};
use tokio::sync::Notify;

/// What the relay does with a reservation, after the inventory has made it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Answer {
    /// Pass the inventory's answer on.
    Pass,
    /// Answer 502, as a proxy whose upstream connection dropped does.
    Lose,
    /// Pass it on this much later.
    Delay(Duration),
    /// Never answer.
    Withhold,
}

#[derive(Clone)]
struct Relay {
    upstream: Arc<Mutex<String>>,
    answer: Arc<Mutex<Answer>>,
    /// Told each time the inventory has answered a reservation.
    reserved: Arc<Notify>,
    client: reqwest::Client,
}

impl Relay {
    /// Listen on a free port; calls go to the upstream set with [`Relay::to`].
    async fn start() -> (Relay, String) {
        let relay = Relay {
            upstream: Arc::new(Mutex::new(String::new())),
            answer: Arc::new(Mutex::new(Answer::Pass)),
            reserved: Arc::new(Notify::new()),
            client: reqwest::Client::new(),
        };
        let state = relay.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let relay = state.clone();
                async move { relay.forward(method, uri, headers, body).await }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (relay, url)
    }

    fn to(&self, upstream: String) {
        *self.upstream.lock().unwrap() = upstream;
    }

    fn answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    async fn forward(&self, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
        let reservation = method == Method::POST && uri.path() == "/api/v1/inventory/reservations";
        let upstream = self.upstream.lock().unwrap().clone();
        let mut request = self
            .client
            .request(method, format!("{upstream}{uri}"))
            .body(body);
        for name in ["authorization", "content-type", "traceparent"] {
            if let Some(value) = headers.get(name) {
                request = request.header(name, value);
            }
        }
        let Ok(response) = request.send().await else {
            return StatusCode::BAD_GATEWAY.into_response();
        };
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        if reservation {
            self.reserved.notify_one();
            let answer = *self.answer.lock().unwrap();
            match answer {
                Answer::Pass => {}
                Answer::Lose => return StatusCode::BAD_GATEWAY.into_response(),
                Answer::Delay(by) => tokio::time::sleep(by).await,
                Answer::Withhold => std::future::pending::<()>().await,
            }
        }
        (status, [("content-type", "application/json")], body).into_response()
    }
}

/// The system, its order service reaching the inventory through a relay.
async fn start(order_env: &[(&str, &str)]) -> (System, Relay) {
    let (relay, url) = Relay::start().await;
    let mut env: Vec<(String, String)> = vec![("INVENTORY_SERVICE_URL".into(), url)];
    env.extend(
        order_env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let sys = System::start_with(SystemOptions {
        env: HashMap::from([(Service::Order, env)]),
        ..Default::default()
    })
    .await;
    relay.to(sys.url(Service::Inventory));
    (sys, relay)
}

/// A customer and a product of `stock` units: (customer id, token, product id).
async fn shop(sys: &System, sku: &str, stock: i32) -> (i64, String, i64) {
    let admin = sys.admin_token().await;
    let product = sys.add_product_as(&admin, sku, 1250, stock).await;
    let (customer, token) = sys
        .register(&format!("{}@example.com", sku.to_lowercase()), "Sam")
        .await;
    (customer, token, product)
}

fn order_of(product: i64, quantity: i32) -> Value {
    json!({"items": [{"product_id": product, "quantity": quantity}]})
}

/// Wait until nothing of `sku` is reserved; the reserved count if it never is.
async fn until_nothing_reserved(sys: &System, sku: &str, within: Duration) -> Result<(), i64> {
    let deadline = Instant::now() + within;
    loop {
        let (_, reserved, _) = sys.stock(sku).await;
        if reserved == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(reserved);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many orders the order service stored.
async fn stored_orders(sys: &System) -> i64 {
    let pool = sqlx::PgPool::connect(&sys.wiring.database_urls[&Service::Order])
        .await
        .unwrap();
    let n = sqlx::query_scalar("select count(*) from orders")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

#[tokio::test]
async fn stock_reserved_for_an_order_refused_afterwards_comes_back() {
    let (sys, relay) = start(&[]).await;
    let (_, token, product) = shop(&sys, "LOST-ANSWER", 5).await;
    relay.answer(Answer::Lose);
    let body = order_of(product, 2);
    let headers = [
        ("authorization", format!("Bearer {token}")),
        ("idempotency-key", "lost-answer-1".to_owned()),
    ];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, answer) = sys
        .request(
            Method::POST,
            Service::Gateway,
            "/api/v1/orders",
            Some(body.clone()),
            &headers,
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(stored_orders(&sys).await, 0);
    until_nothing_reserved(&sys, "LOST-ANSWER", Duration::from_secs(15))
        .await
        .unwrap_or_else(|reserved| {
            panic!("{reserved} units stay reserved for an order that does not exist")
        });

    // The client's retry with the same key places the order once.
    relay.answer(Answer::Pass);
    let (status, order) = sys
        .request(
            Method::POST,
            Service::Gateway,
            "/api/v1/orders",
            Some(body),
            &headers,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(sys.stock("LOST-ANSWER").await, (5, 2, 3));
    sys.stop().await;
}

#[tokio::test]
async fn stock_reserved_by_an_order_service_killed_before_it_stored_the_order_comes_back() {
    let (mut sys, relay) =
        start(&[("IDEMPOTENCY_CLAIM_TTL", "2s"), ("UPSTREAM_TIMEOUT", "60s")]).await;
    let (customer, _, product) = shop(&sys, "KILLED", 5).await;
    relay.answer(Answer::Withhold);
    let url = format!("{}/api/v1/orders", sys.url(Service::Order));
    let token = sys.token_for(Service::Order, system_tests::Who::Customer(customer));
    let placing = tokio::spawn(
        reqwest::Client::new()
            .post(url)
            .bearer_auth(token)
            .json(&order_of(product, 3))
            .send(),
    );
    tokio::time::timeout(Duration::from_secs(15), relay.reserved.notified())
        .await
        .expect("the order service never reserved the stock");
    assert_eq!(sys.stock("KILLED").await, (5, 3, 2));

    relay.answer(Answer::Pass);
    sys.kill_and_restart(Service::Order).await;
    assert!(placing.await.unwrap().is_err(), "a killed service answered");
    until_nothing_reserved(&sys, "KILLED", Duration::from_secs(20))
        .await
        .unwrap_or_else(|reserved| {
            panic!("{reserved} units stay reserved for an order that was never stored")
        });
    assert_eq!(stored_orders(&sys).await, 0);
    sys.stop().await;
}

#[tokio::test]
async fn a_request_that_outlived_its_claim_does_not_store_an_order_without_stock() {
    let (sys, relay) = start(&[("IDEMPOTENCY_CLAIM_TTL", "1s"), ("UPSTREAM_TIMEOUT", "30s")]).await;
    let (customer, _, product) = shop(&sys, "SLOW", 5).await;
    // The answer comes long after the claim expired and was given up for lost.
    relay.answer(Answer::Delay(Duration::from_secs(5)));
    let (status, answer) = sys
        .post_as(
            Service::Order,
            "/api/v1/orders",
            order_of(product, 1),
            system_tests::Who::Customer(customer),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(stored_orders(&sys).await, 0);
    until_nothing_reserved(&sys, "SLOW", Duration::from_secs(15))
        .await
        .unwrap_or_else(|reserved| panic!("{reserved} units stay reserved"));
    sys.stop().await;
}
