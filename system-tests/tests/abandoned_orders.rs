//! Stock reserved for an order that was never stored (issue 12). Placing an order
//! reserves its stock under the order's id before the order is written; when the
//! request gives up after that (the inventory's answer lost, the order service
//! killed, the request outliving its claim), no order exists to cancel, and the
//! units must still come back, not sit reserved for an order nobody can see.
//!
//! The inventory (and, in one test, the payment service) is reached through a relay
//! the test controls: it passes every call on, and for one route (reservations,
//! charges) it can lose the answer, hold it, or hold it for good.

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

/// What the relay does with a call to its route, after the service has answered.
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
    /// The `POST` route whose answers the relay plays with.
    route: &'static str,
    upstream: Arc<Mutex<String>>,
    answer: Arc<Mutex<Answer>>,
    /// Told each time the service has answered a call to the route.
    reserved: Arc<Notify>,
    client: reqwest::Client,
}

impl Relay {
    /// Listen on a free port; calls go to the upstream set with [`Relay::to`].
    async fn start(route: &'static str) -> (Relay, String) {
        let relay = Relay {
            route,
            upstream: Arc::new(Mutex::new(String::new())),
            answer: Arc::new(Mutex::new(Answer::Pass)),
            reserved: Arc::new(Notify::new()),
            client: sales_testkit::http_client(),
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
        let played = method == Method::POST && uri.path() == self.route;
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
        if played {
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
const RESERVATIONS: &str = "/api/v1/inventory/reservations";

async fn start(order_env: &[(&str, &str)]) -> (System, Relay) {
    let (relay, url) = Relay::start(RESERVATIONS).await;
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

/// Seed 004's one-call order (`body`), placed by `customer` straight at the order
/// service (no gateway timeout in the way).
async fn place_one_call(sys: &System, customer: i64, body: &Value) -> (StatusCode, Value) {
    sys.post_as(
        Service::Order,
        "/api/v1/orders/",
        body.clone(),
        system_tests::Who::Customer(customer),
    )
    .await
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
        sales_testkit::http_client()
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

#[tokio::test]
async fn a_stale_attempt_giving_up_does_not_take_the_stock_of_the_order_its_retry_stored() {
    // A (key K) reserves; the answer never comes. Its claim expires (2 s) and B, the
    // client's retry with K, takes it over, is answered A's reservation, stores the
    // order and charges it, slowly (8 s). Meanwhile A's call to the inventory times
    // out (4 s) and A gives up: it must leave B's claim and stock alone.
    let (payments, payment_url) = Relay::start("/api/v1/payments/charge").await;
    let (sys, inventory) = start(&[
        ("IDEMPOTENCY_CLAIM_TTL", "2s"),
        ("UPSTREAM_TIMEOUT", "4s"),
        ("PAYMENT_TIMEOUT", "30s"),
        ("PAYMENT_SERVICE_URL", payment_url.as_str()),
    ])
    .await;
    payments.to(sys.url(Service::Payment));
    let (customer, _, _) = shop(&sys, "RETRIED", 5).await;
    let body = json!({"item_sku": "RETRIED", "quantity": 2, "amount": "25.00",
                      "currency": "USD", "idempotency_key": "retried-1"});
    let place = || place_one_call(&sys, customer, &body);
    inventory.answer(Answer::Withhold);
    let first = tokio::spawn({
        let url = format!("{}/api/v1/orders/", sys.url(Service::Order));
        let token = sys.token_for(Service::Order, system_tests::Who::Customer(customer));
        let body = body.clone();
        async move {
            let r = sales_testkit::http_client()
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            r.status()
        }
    });
    tokio::time::timeout(Duration::from_secs(15), inventory.reserved.notified())
        .await
        .expect("the order service never reserved the stock");
    inventory.answer(Answer::Pass);
    payments.answer(Answer::Delay(Duration::from_secs(8)));
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    let (status, second) = place().await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["status"], "CONFIRMED", "{second}");
    assert_eq!(
        first.await.unwrap(),
        StatusCode::SERVICE_UNAVAILABLE,
        "the first attempt timed out"
    );

    // The order was paid: its two units are sold, none given back.
    let sold = sales_testkit::eventually("the units sold", Duration::from_secs(15), || async {
        let stock = sys.stock("RETRIED").await;
        (stock.1 == 0).then_some(stock)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!((sold, sys.stock("RETRIED").await), ((3, 0, 3), (3, 0, 3)));
    // K still names that order: a third request replays it.
    payments.answer(Answer::Pass);
    let (status, third) = place().await;
    assert_eq!(status, StatusCode::OK, "{third}");
    assert_eq!(third["order_id"], second["order_id"]);
    assert_eq!(stored_orders(&sys).await, 1);
    sys.stop().await;
}

#[tokio::test]
async fn a_one_call_order_stored_but_never_charged_is_charged_by_the_retry_with_its_key() {
    // Seed 004's one-call order answers CONFIRMED or FAILED. Here the order is stored
    // (with its payment attempt written down) and then the payment service cannot
    // charge it: its PostgreSQL refuses the payment as a server shutting down would
    // (a trigger), so the client is told 503. Its retry with the same key must charge
    // the order, not replay it PENDING for good.
    let (sys, _) = start(&[]).await;
    let (customer, _, _) = shop(&sys, "UNCHARGED", 5).await;
    let orders = sqlx::PgPool::connect(&sys.wiring.database_urls[&Service::Order])
        .await
        .unwrap();
    let payments = sqlx::PgPool::connect(&sys.wiring.database_urls[&Service::Payment])
        .await
        .unwrap();
    sqlx::raw_sql(
        "create function refuse_charge() returns trigger language plpgsql as $$
         begin raise exception 'the database system is shutting down' using errcode = '57P01'; end $$;
         create trigger refuse_charge before insert on payments
         for each row execute function refuse_charge();",
    )
    .execute(&payments)
    .await
    .unwrap();
    let body = json!({"item_sku": "UNCHARGED", "quantity": 1, "amount": "12.50",
                      "currency": "USD", "idempotency_key": "uncharged-1"});
    let place = || place_one_call(&sys, customer, &body);
    let (status, first) = place().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{first}");
    assert_eq!(stored_orders(&sys).await, 1);

    let (charged, attempted): (bool, bool) = sqlx::query_as(
        "select payment_settled_at is not null, payment_attempted_at is not null from orders",
    )
    .fetch_one(&orders)
    .await
    .unwrap();
    assert_eq!(
        (charged, attempted),
        (false, true),
        "stored PENDING, its attempt written down, not settled"
    );

    sqlx::raw_sql("drop trigger refuse_charge on payments")
        .execute(&payments)
        .await
        .unwrap();
    let (status, second) = place().await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["status"], "CONFIRMED", "{second}");
    let (status, payment) = sys
        .get(
            Service::Payment,
            &format!("/api/v1/payments/orders/{}", second["order_id"]),
        )
        .await;
    assert_eq!(
        (status, &payment["status"]),
        (StatusCode::OK, &json!("confirmed")),
        "{payment}"
    );
    let (_, third) = place().await;
    assert_eq!(
        (&third["order_id"], &third["status"]),
        (&second["order_id"], &json!("CONFIRMED"))
    );
    orders.close().await;
    payments.close().await;
    sys.stop().await;
}

#[tokio::test]
async fn stock_held_by_a_crashed_claim_counts_against_the_customers_bound_until_it_is_given_back() {
    // The state a crash leaves: a claim past its expiry, whose stock the inventory
    // still holds, not yet given up (that happens a claim's lifetime after expiry).
    let (sys, _) = start(&[("MAX_RESERVED_UNITS_PER_CUSTOMER", "5")]).await;
    let (customer, token, product) = shop(&sys, "BOUNDED", 10).await;
    let orders = sqlx::PgPool::connect(&sys.wiring.database_urls[&Service::Order])
        .await
        .unwrap();
    let owner = format!("customer:{customer}");
    let claimed: i64 = sqlx::query_scalar(
        "insert into order_claims (order_id, key_owner, idempotency_key, fingerprint,
             limit_owner, units, state, expires_at, reserve_lines)
         values (nextval(pg_get_serial_sequence('orders', 'id')), $1, 'crashed', 'f', $1, 5,
             'in_progress', now() - interval '1 second',
             '[{\"product_id\": 1, \"sku\": \"BOUNDED\", \"quantity\": 5}]')
         returning order_id",
    )
    .bind(&owner)
    .fetch_one(&orders)
    .await
    .unwrap();
    let (status, reservation) = sys
        .post(
            Service::Inventory,
            "/api/v1/inventory/reservations",
            json!({"order_id": claimed, "items": [{"sku": "BOUNDED", "quantity": 5}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reservation}");

    let (status, refused) = sys
        .call(
            Method::POST,
            "/api/v1/orders",
            Some(order_of(product, 1)),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(
        refused["error"]["code"], "too_many_reserved_units",
        "{refused}"
    );
    orders.close().await;
    sys.stop().await;
}
