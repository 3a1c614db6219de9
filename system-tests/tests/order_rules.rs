//! The rules money depends on (issue 11, point 4), on the real system: catalogue
//! prices on the canonical routes, seed 004's stated amounts kept as line totals,
//! idempotency keys that belong to their sender and are claimed before any side
//! effect, and bounded unpaid orders per customer (or per client address without an
//! account).
//!
//! Every side effect is counted where it happens: reserved units and reservations in
//! the inventory (its API and its database), reservation and charge requests by the
//! inventory's and the payment service's own `http_requests_total`, payments as the
//! payment service lists them, orders as the order service lists them. A slow first
//! request is a reservation waiting on a row the test holds locked in the inventory's
//! database; a crashed one is a claim row written into the order service's database.
//!
//! The scenarios of one system run one after another (the request counts are the
//! system's), each with its own products, customers, client addresses and keys.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use sales_platform::identity::claims::{OnBehalfOf, TokenClaims};
use sales_platform::identity::service_audience;
use serde_json::{Value, json};
use sqlx::Connection;
use system_tests::{Service, System, SystemOptions, Who};
use tokio::sync::oneshot;

// ------------------------------------------------------------------ the order service

/// What the order service answered.
#[derive(Debug, Clone)]
struct Reply {
    status: StatusCode,
    body: Value,
    retry_after: Option<String>,
}

fn message(reply: &Reply) -> String {
    reply.body["error"]["message"]
        .as_str()
        .or(reply.body["error_message"].as_str())
        .or(reply.body["detail"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// The order service of `sys`, called straight with tokens signed as the gateway
/// signs them.
struct Orders<'a> {
    sys: &'a System,
    client: reqwest::Client,
}

impl<'a> Orders<'a> {
    fn new(sys: &'a System) -> Self {
        Orders {
            sys,
            client: sales_testkit::http_client(),
        }
    }

    fn token(&self, who: Who) -> String {
        self.sys.token_for(Service::Order, who)
    }

    /// What the gateway sends for a client without an account at `ip`, while the
    /// seeds' routes are open.
    fn anonymous_at(&self, ip: &str) -> String {
        let ip: IpAddr = ip.parse().unwrap();
        self.sys.minter.sign_as_gateway(&TokenClaims::gateway(
            service_audience(Service::Order.name()),
            OnBehalfOf::Anonymous,
            true,
            Some(ip),
            Duration::from_secs(600),
        ))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
        raw: Option<&str>,
    ) -> Reply {
        let mut r = self
            .client
            .request(method, format!("{}{path}", self.sys.url(Service::Order)))
            .bearer_auth(token);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        if let Some(body) = body {
            r = r.json(body);
        }
        if let Some(text) = raw {
            r = r
                .header("content-type", "application/json")
                .body(text.to_owned());
        }
        let r = r.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
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

    async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.send(Method::POST, path, token, &[], Some(&body), None)
            .await
    }

    async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(Method::GET, path, token, &[], None, None).await
    }

    /// POST `body` with an `Idempotency-Key`.
    async fn post_keyed(&self, path: &str, token: &str, key: &str, body: Value) -> Reply {
        self.send(
            Method::POST,
            path,
            token,
            &[("idempotency-key", key)],
            Some(&body),
            None,
        )
        .await
    }

    /// POST `text` as is (a JSON content type).
    async fn post_raw(&self, path: &str, token: &str, text: &str) -> Reply {
        self.send(Method::POST, path, token, &[], None, Some(text))
            .await
    }

    /// A stock item the catalogue does not know (seed 004's `POST /api/v1/stock/items`).
    async fn add_stock_item(&self, sku: &str, quantity: i64) {
        let (status, body) = self
            .sys
            .post(
                Service::Inventory,
                "/api/v1/stock/items",
                json!({"item_sku": sku, "quantity": quantity}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "stock item {sku}: {body}");
    }
}

fn ids_of(list: &Value, field: &str) -> Vec<i64> {
    list.as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .map(|o| o[field].as_i64().unwrap())
        .collect()
}

// ------------------------------------------------------------------ side effects

/// Requests `service` answered on `method route`, whatever their status, by its own
/// `http_requests_total`.
async fn requests_answered(sys: &System, service: Service, method: &str, route: &str) -> u64 {
    let text = sales_testkit::http_get(format!("{}/metrics", sys.admin_url(service)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (method, route) = (format!("method=\"{method}\""), format!("route=\"{route}\""));
    text.lines()
        .filter(|l| l.starts_with("http_requests_total{") && l.contains(&method))
        .filter(|l| l.contains(&route))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// What the system has done so far, as the services that did it count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tally {
    /// Reservation requests the inventory answered (repeats included).
    reserve_requests: u64,
    /// Charge requests the payment service answered (repeats included).
    charge_requests: u64,
    /// Orders the order service lists (to the admin).
    orders: usize,
}

async fn tally(sys: &System) -> Tally {
    Tally {
        reserve_requests: requests_answered(
            sys,
            Service::Inventory,
            "POST",
            "/api/v1/inventory/reservations",
        )
        .await,
        charge_requests: requests_answered(
            sys,
            Service::Payment,
            "POST",
            "/api/v1/payments/charge",
        )
        .await,
        orders: all_orders(sys).await.len(),
    }
}

impl Tally {
    /// `(reservation requests, charge requests, orders)` made since `before`.
    fn since(self, before: Tally) -> (u64, u64, usize) {
        (
            self.reserve_requests - before.reserve_requests,
            self.charge_requests - before.charge_requests,
            self.orders - before.orders,
        )
    }
}

/// Every order, as the order service lists them to the admin.
async fn all_orders(sys: &System) -> Vec<Value> {
    let (status, list) = sys.get(Service::Order, "/api/v1/orders?limit=500").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let list = list.as_array().cloned().unwrap();
    assert!(list.len() < 500, "more orders than one page");
    list
}

/// The payments the payment service lists for an order (to the admin).
async fn payments_of(sys: &System, order_id: i64) -> Vec<Value> {
    let (status, list) = sys
        .get(
            Service::Payment,
            &format!("/api/v1/payments?order_id={order_id}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array().cloned().unwrap()
}

async fn db(sys: &System, service: Service) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(&sys.wiring.database_urls[&service])
        .await
        .unwrap()
}

/// The inventory's reservations holding (or having held) `sku`.
async fn reservations_of(sys: &System, sku: &str) -> i64 {
    let mut conn = db(sys, Service::Inventory).await;
    sqlx::query_scalar(
        "select count(distinct reservation_id) from reservation_lines where sku = $1",
    )
    .bind(sku)
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

/// The inventory's reservations for an order.
async fn reservations_for_order(sys: &System, order_id: i64) -> Vec<i64> {
    let mut conn = db(sys, Service::Inventory).await;
    sqlx::query_scalar("select id from reservations where order_id = $1 order by id")
        .bind(order_id)
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

/// A transaction in the inventory's database holding the row of a SKU locked: a
/// reservation of that SKU waits until [`StockLock::release`] (or, at the latest,
/// 2.5 s, below the order service's 3 s timeout for its calls).
struct StockLock {
    release: oneshot::Sender<()>,
    holder: tokio::task::JoinHandle<()>,
}

async fn lock_stock(sys: &System, sku: &str) -> StockLock {
    let mut conn = db(sys, Service::Inventory).await;
    let sku = sku.to_owned();
    let (taken, is_taken) = oneshot::channel();
    let (release, released) = oneshot::channel::<()>();
    let holder = tokio::spawn(async move {
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("select 1 from stock_items where sku = $1 for update")
            .bind(&sku)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        let _ = taken.send(());
        let _ = tokio::time::timeout(Duration::from_millis(2500), released).await;
        tx.rollback().await.unwrap();
    });
    is_taken.await.unwrap();
    StockLock { release, holder }
}

impl StockLock {
    async fn release(self) {
        let _ = self.release.send(());
        self.holder.await.unwrap();
    }
}

/// Wait until the order service is serving at least `n` requests at once.
async fn wait_in_flight(sys: &System, n: i64) {
    sales_testkit::eventually(
        &format!("{n} requests in flight at the order service"),
        Duration::from_secs(10),
        || async {
            let text =
                sales_testkit::http_get(format!("{}/metrics", sys.admin_url(Service::Order)))
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()?;
            let serving: i64 = text
                .lines()
                .find(|l| l.starts_with("http_requests_in_flight"))?
                .rsplit(' ')
                .next()?
                .parse()
                .ok()?;
            (serving >= n).then_some(())
        },
    )
    .await;
}

// ------------------------------------------------------------------ the systems

#[tokio::test]
async fn catalogue_prices_seed_routes_and_who_sees_what() {
    let sys = System::start().await;
    let o = Orders::new(&sys);
    an_item_the_catalogue_does_not_know_is_refused_with_422_on_every_canonical_route(&o).await;
    seed_004_keeps_an_amount_that_does_not_split_evenly_as_a_line_total(&o).await;
    seed_004s_amount_must_match_the_catalogue_wherever_the_item_has_a_price(&o).await;
    seed_004s_routes_answer_with_its_statuses_and_fastapi_errors(&o).await;
    seed_000s_kafka_routes_and_string_product_ids(&o).await;
    seed_002s_customer_id_is_a_reference_never_the_owner_and_seed_003s_product_id_spellings(&o)
        .await;
    a_caller_without_an_account_sees_only_orders_placed_without_one(&o).await;
    a_one_call_orders_claim_ends_with_the_outcome_of_its_charge(&o).await;
    sys.stop().await;
}

#[tokio::test]
async fn idempotency_keys_belong_to_their_sender_and_are_claimed_first() {
    let sys = System::start().await;
    let o = Orders::new(&sys);
    the_same_key_from_two_customers_makes_two_orders(&o).await;
    many_simultaneous_requests_with_one_key_reserve_once_and_charge_once(&o).await;
    one_key_from_two_customers_at_once_makes_exactly_two_orders(&o).await;
    sys.stop().await;
}

#[tokio::test]
async fn bounded_unpaid_orders_and_slow_or_crashed_claims() {
    let env = [
        ("MAX_UNPAID_ORDERS_PER_CUSTOMER", "2"),
        ("MAX_RESERVED_UNITS_PER_CUSTOMER", "5"),
        ("IDEMPOTENCY_WAIT", "300ms"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec();
    let sys = System::start_with(SystemOptions {
        env: [(Service::Order, env)].into(),
        ..SystemOptions::default()
    })
    .await;
    let o = Orders::new(&sys);
    a_duplicate_that_waits_too_long_gets_a_clear_409_and_a_crashed_claim_expires(&o).await;
    a_customer_has_a_bounded_number_of_unpaid_orders_and_reserved_units(&o).await;
    callers_without_an_account_are_bounded_per_client_address(&o).await;
    concurrent_orders_cannot_exceed_the_bound(&o).await;
    a_duplicate_sent_at_once_is_never_refused_by_the_bound(&o).await;
    sys.stop().await;
}

// ------------------------------------------------------------------ catalogue prices

async fn an_item_the_catalogue_does_not_know_is_refused_with_422_on_every_canonical_route(
    o: &Orders<'_>,
) {
    let sys = o.sys;
    let known = sys.add_product("S1-KNOWN", 500, 10).await;
    // In stock, but not in the catalogue: only seed 004's one-call order may sell it.
    o.add_stock_item("S1-STOCK-ONLY", 10).await;
    let alice = o.token(Who::Customer(107));
    let seed_client = o.anonymous_at("198.51.100.1");
    let before = tally(sys).await;

    let unknown_id = json!({"items": [{"product_id": known, "quantity": 1},
                                      {"product_id": 424242, "quantity": 1}]});
    let r = o.post("/api/v1/orders", &alice, unknown_id.clone()).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "unknown_items");
    assert!(message(&r).contains("424242"), "{}", message(&r));
    assert_eq!(
        r.body["error"]["details"]["unknown_product_ids"],
        json!([424242])
    );

    // The old hole: an unknown SKU was priced from the client's own amount.
    let r = o
        .post(
            "/api/v1/orders",
            &alice,
            json!({"item_sku": "S1-STOCK-ONLY", "quantity": 2, "amount": 0.02, "currency": "USD"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert!(message(&r).contains("S1-STOCK-ONLY"), "{}", message(&r));
    let r = o
        .post(
            "/api/v1/orders",
            &alice,
            json!({"item_sku": "S1-STOCK-ONLY", "quantity": 2}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);

    // Seed 000's route, in its envelope.
    let r = o.post("/orders/order", &alice, unknown_id).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.body["success"], false);
    assert!(message(&r).contains("424242"), "{}", message(&r));

    // Seeds 002/003.
    let r = o
        .post(
            "/orders",
            &seed_client,
            json!({"product_id": 424242, "quantity": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert!(message(&r).contains("424242"));

    // Nothing reserved (not even asked for), charged or stored.
    assert_eq!(tally(sys).await.since(before), (0, 0, 0));
    assert_eq!(reservations_of(sys, "S1-KNOWN").await, 0);
    assert_eq!(reservations_of(sys, "S1-STOCK-ONLY").await, 0);
    assert_eq!(sys.stock("S1-KNOWN").await, (10, 0, 10));
    assert_eq!(sys.stock("S1-STOCK-ONLY").await, (10, 0, 10));
    let alices = o.get("/api/v1/orders", &alice).await;
    assert_eq!(alices.body, json!([]));
}

async fn seed_004_keeps_an_amount_that_does_not_split_evenly_as_a_line_total(o: &Orders<'_>) {
    let sys = o.sys;
    o.add_stock_item("S2-IDEMP", 10).await;
    let seed_client = o.anonymous_at("198.51.100.2");
    let body = json!({"item_sku": "S2-IDEMP", "quantity": 3, "amount": 200, "currency": "USD",
                      "idempotency_key": "s2-same-key"});
    let first = o.post("/api/v1/orders/", &seed_client, body.clone()).await;
    assert_eq!(
        first.status,
        StatusCode::OK,
        "seed 004 answers 200: {:?}",
        first.body
    );
    let order = &first.body;
    assert_eq!(
        (order["status"].clone(), order["payment_status"].clone()),
        (json!("CONFIRMED"), json!("SUCCEEDED"))
    );
    assert_eq!(order["amount"], json!(200));
    assert_eq!(order["quantity"], 3);
    assert_eq!(order["item_sku"], "S2-IDEMP");
    assert_eq!(order["total"], json!({"amount": 20000, "currency": "USD"}));
    let line = &order["items"][0];
    assert_eq!(
        line["line_total"],
        json!({"amount": 20000, "currency": "USD"})
    );
    assert_eq!(
        line["unit_price"],
        json!({"amount": 6667, "currency": "USD"}),
        "rounded"
    );
    assert_eq!(line["product_id"], Value::Null);
    let id = order["order_id"].as_i64().unwrap();
    assert_eq!(sys.stock("S2-IDEMP").await.2, 7);
    // Charged the line total, once.
    let payments = payments_of(sys, id).await;
    assert_eq!(payments.len(), 1, "{payments:?}");
    assert_eq!(payments[0]["amount"]["amount"], 20000);

    let before = tally(sys).await;
    let again = o.post("/api/v1/orders/", &seed_client, body).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["order_id"], order["order_id"]);
    assert_eq!(
        tally(sys).await.since(before),
        (0, 0, 0),
        "a replay reserves, charges and stores nothing"
    );
    assert_eq!(sys.stock("S2-IDEMP").await.2, 7, "reserved once");
    assert_eq!(reservations_for_order(sys, id).await.len(), 1);
    assert_eq!(payments_of(sys, id).await.len(), 1, "charged once");

    // The line total is read back as stored.
    let read = o.get(&format!("/api/v1/orders/{id}"), &seed_client).await;
    assert_eq!(read.body["items"][0]["line_total"]["amount"], 20000);
}

/// A one-call order (seed 004's, always keyed) is stored with its payment attempt
/// written down, and its claim is finished by the statement that records the
/// charge's outcome: confirmed or declined, its key names the order at once and its
/// charge is settled.
async fn a_one_call_orders_claim_ends_with_the_outcome_of_its_charge(o: &Orders<'_>) {
    let sys = o.sys;
    o.add_stock_item("S2-CLAIM", 10).await;
    let seed_client = o.anonymous_at("198.51.100.7");
    let mut orders_db = db(sys, Service::Order).await;
    for (key, amount, status) in [
        ("s2-claim-paid", 20, "CONFIRMED"),
        ("s2-claim-declined", 1500, "FAILED"),
    ] {
        let body = json!({"item_sku": "S2-CLAIM", "quantity": 1, "amount": amount,
                          "currency": "USD", "idempotency_key": key});
        let placed = o.post("/api/v1/orders/", &seed_client, body).await;
        // Seed 004 answers 200, declined or not.
        assert_eq!(placed.status, StatusCode::OK, "{key:?}: {:?}", placed.body);
        assert_eq!(placed.body["status"], status, "{key:?}");
        let order_id = placed.body["order_id"].as_i64().unwrap();
        // The answer shows the order as stored (the database keeps microseconds):
        // what a replay or a read returns.
        let read = o
            .get(&format!("/api/v1/orders/{order_id}"), &seed_client)
            .await;
        for field in ["created_at", "updated_at", "pay_by", "paid_at"] {
            assert_eq!(placed.body[field], read.body[field], "{key:?}: {field}");
        }
        let (stored_status, attempted, settled): (String, bool, bool) = sqlx::query_as(
            "select status, payment_attempted_at is not null, payment_settled_at is not null
             from orders where id = $1",
        )
        .bind(order_id)
        .fetch_one(&mut orders_db)
        .await
        .unwrap();
        assert_eq!(stored_status, status, "{key:?}");
        assert!(
            attempted && settled,
            "{key:?}: the charge is written down and settled"
        );
        let claim: Option<String> =
            sqlx::query_scalar("select state from order_claims where order_id = $1")
                .bind(order_id)
                .fetch_optional(&mut orders_db)
                .await
                .unwrap();
        assert_eq!(
            claim.as_deref(),
            Some("done"),
            "{key:?}: the claim keeps its key, done"
        );
    }
}

async fn seed_004s_amount_must_match_the_catalogue_wherever_the_item_has_a_price(o: &Orders<'_>) {
    let sys = o.sys;
    let product = sys.add_product("S3-CAT", 1250, 10).await;
    let seed_client = o.anonymous_at("198.51.100.3");
    let order = |amount: f64| {
        json!({"item_sku": "S3-CAT", "quantity": 2, "amount": amount, "currency": "USD",
               "idempotency_key": format!("s3-{amount}")})
    };
    let before = tally(sys).await;
    let r = o.post("/api/v1/orders/", &seed_client, order(0.02)).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert!(
        r.body["detail"].as_str().unwrap().contains("25.00 USD"),
        "{:?}",
        r.body
    );
    assert_eq!(tally(sys).await.since(before), (0, 0, 0));
    assert_eq!(reservations_of(sys, "S3-CAT").await, 0);
    let r = o.post("/api/v1/orders/", &seed_client, order(25.0)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["items"][0]["product_id"], product);
    assert_eq!(r.body["items"][0]["unit_price"]["amount"], 1250);
    let payments = payments_of(sys, r.body["order_id"].as_i64().unwrap()).await;
    assert_eq!(payments.len(), 1, "{payments:?}");
    assert_eq!(payments[0]["amount"]["amount"], 2500);
}

async fn seed_004s_routes_answer_with_its_statuses_and_fastapi_errors(o: &Orders<'_>) {
    let sys = o.sys;
    o.add_stock_item("S4-LOW", 1).await;
    let seed_client = o.anonymous_at("198.51.100.4");
    let order = |sku: &str, quantity: i32, key: &str| {
        json!({"item_sku": sku, "quantity": quantity, "amount": 50, "currency": "USD",
               "idempotency_key": key})
    };
    let r = o
        .post("/api/v1/orders/", &seed_client, order("S4-LOW", 5, "s4-a"))
        .await;
    assert_eq!(
        (r.status, r.body.clone()),
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "insufficient stock"})
        )
    );
    let r = o
        .post(
            "/api/v1/orders/",
            &seed_client,
            order("S4-NOWHERE", 1, "s4-b"),
        )
        .await;
    assert_eq!(
        (r.status, r.body.clone()),
        (StatusCode::NOT_FOUND, json!({"detail": "item not found"}))
    );
    assert_eq!(sys.stock("S4-LOW").await, (1, 0, 1), "nothing held");
    // The key of a refused order is free again (seed 004 stored nothing).
    o.add_stock_item("S4-NOWHERE", 3).await;
    let r = o
        .post(
            "/api/v1/orders/",
            &seed_client,
            order("S4-NOWHERE", 1, "s4-b"),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(sys.stock("S4-NOWHERE").await.2, 2);

    // Validation: FastAPI's 422 with a list of problems.
    let r = o
        .post(
            "/api/v1/orders/",
            &seed_client,
            json!({"item_sku": "S4-LOW", "quantity": 1, "amount": 5, "currency": "USD"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.body["detail"][0]["type"], "missing");
    assert_eq!(
        r.body["detail"][0]["loc"],
        json!(["body", "idempotency_key"])
    );
    assert_eq!(r.body["detail"][0]["msg"], "Field required");
    let r = o
        .post_raw(
            "/api/v1/orders/",
            &seed_client,
            r#"{"item_sku": "S4-LOW", "quantity": "#,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.body["detail"][0]["type"], "json_invalid");
    let r = o
        .post(
            "/api/v1/orders/",
            &seed_client,
            json!({"item_sku": "S4-LOW", "quantity": "many", "amount": 5, "currency": "USD",
                   "idempotency_key": "s4-c"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "quantity"]));
    let r = o
        .post(
            "/api/v1/orders/",
            &seed_client,
            json!({"item_sku": "S4-LOW", "quantity": 0, "amount": 5, "currency": "USD",
                   "idempotency_key": "s4-d"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert!(r.body["detail"].is_array(), "{:?}", r.body);
    // The same key for a different request.
    let r = o
        .post(
            "/api/v1/orders/",
            &seed_client,
            order("S4-NOWHERE", 2, "s4-b"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("idempotency key")
    );
    assert_eq!(sys.stock("S4-NOWHERE").await.2, 2, "nothing more held");

    // Reading: seed 004's "Order not found" (the canonical error as well).
    let r = o.get("/api/v1/orders/999999999", &seed_client).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["detail"], "Order not found");
    assert_eq!(r.body["error"]["code"], "not_found");
}

async fn seed_000s_kafka_routes_and_string_product_ids(o: &Orders<'_>) {
    let sys = o.sys;
    let book = sys.add_product("S5-BOOK", 1500, 10).await;
    let alice = o.token(Who::Customer(507));
    let r = o
        .post(
            "/orders/orderkafka",
            &alice,
            json!({"items": [{"product_id": book.to_string(), "quantity": 2}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["success"], true);
    let order_id = r.body["data"]["order_id"].as_i64().unwrap();
    let r = o
        .post(
            "/orders/order",
            &alice,
            json!({"items": [{"product_id": book.to_string(), "quantity": 1}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(sys.stock("S5-BOOK").await, (10, 3, 7));
    let r = o
        .post(
            "/orders/order",
            &alice,
            json!({"items": [{"product_id": "abc", "quantity": 1}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert_eq!(r.body["success"], false);
    assert!(message(&r).contains("product_id"), "{}", message(&r));

    // Only the owner pays, on either route; a caller without an account is refused.
    let r = o
        .post(
            "/orders/paidkafka",
            &o.token(Who::Customer(508)),
            json!({"order_id": order_id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(payments_of(sys, order_id).await, Vec::<Value>::new());
    let r = o
        .post(
            "/orders/orderkafka",
            &o.anonymous_at("198.51.100.5"),
            json!({"items": [{"product_id": book, "quantity": 1}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = o
        .post("/orders/paidkafka", &alice, json!({"order_id": order_id}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["data"]["order_id"], order_id);
    let payments = payments_of(sys, order_id).await;
    assert_eq!(payments.len(), 1, "{payments:?}");
    assert_eq!(payments[0]["amount"]["amount"], 3000);
}

async fn seed_002s_customer_id_is_a_reference_never_the_owner_and_seed_003s_product_id_spellings(
    o: &Orders<'_>,
) {
    let sys = o.sys;
    let laptop = sys.add_product("S6-LAPTOP", 99999, 10).await;
    let seed_client = o.anonymous_at("198.51.100.6");
    // Seed 002, without an account, naming customer 607.
    let r = o
        .post(
            "/orders",
            &seed_client,
            json!({"customer_id": 607, "product_id": laptop, "quantity": 2}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["customer_id"], 607, "echoed as seed 002 does");
    assert_eq!(r.body["product_id"], laptop);
    let id = r.body["id"].as_i64().unwrap();
    // Customer 607 does not own it (nor sees it); it belongs to no account.
    let c607 = o.token(Who::Customer(607));
    let r = o.get(&format!("/api/v1/orders/{id}"), &c607).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let theirs = o.get("/api/v1/orders", &c607).await;
    assert_eq!(theirs.body, json!([]));
    let seen = o.get(&format!("/api/v1/orders/{id}"), &seed_client).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.body["customer_id"], Value::Null);
    assert_eq!(seen.body["stated_customer_id"], 607);
    let listed = o
        .get(&format!("/orders/product/{laptop}"), &seed_client)
        .await;
    assert_eq!(ids_of(&listed.body, "id"), vec![id]);
    assert_eq!(listed.body[0]["customer_id"], 607);
    // A signed-in customer naming another: still theirs.
    let c608 = o.token(Who::Customer(608));
    let r = o
        .post(
            "/orders",
            &c608,
            json!({"customer_id": 607, "product_id": laptop, "quantity": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.body["id"].as_i64().unwrap();
    let mine = o.get(&format!("/api/v1/orders/{id}"), &c608).await;
    assert_eq!(mine.body["customer_id"], 608);

    // Seed 003: productId (its code, later README) and product_id (early README).
    for body in [
        json!({"productId": laptop, "quantity": 1}),
        json!({"productId": laptop.to_string(), "quantity": 1}),
        json!({"product_id": laptop.to_string(), "quantity": 1}),
    ] {
        let r = o.post("/orders", &seed_client, body.clone()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{body}: {:?}", r.body);
        assert_eq!(r.body["productId"], laptop);
    }
    let r = o
        .post("/orders", &seed_client, json!({"quantity": 1}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert!(message(&r).contains("product_id"), "{}", message(&r));
    assert_eq!(sys.stock("S6-LAPTOP").await, (10, 6, 4));
}

async fn a_caller_without_an_account_sees_only_orders_placed_without_one(o: &Orders<'_>) {
    let sys = o.sys;
    let widget = sys.add_product("S7-WIDGET", 250, 100).await;
    o.add_stock_item("S7-LOOSE", 10).await;
    let seed_client = o.anonymous_at("198.51.100.7");
    let customer_token = o.token(Who::Customer(705));
    let customer = o
        .post(
            "/orders",
            &customer_token,
            json!({"product_id": widget, "quantity": 1}),
        )
        .await;
    let anonymous = o
        .post(
            "/orders",
            &seed_client,
            json!({"product_id": widget, "quantity": 2}),
        )
        .await;
    let customers_004 = o
        .post(
            "/api/v1/orders/",
            &customer_token,
            json!({"item_sku": "S7-LOOSE", "quantity": 1, "amount": 1, "currency": "USD",
                   "idempotency_key": "s7-x"}),
        )
        .await;
    assert_eq!(
        customers_004.status,
        StatusCode::OK,
        "{:?}",
        customers_004.body
    );
    let (cid, aid, c004) = (
        customer.body["id"].as_i64().unwrap(),
        anonymous.body["id"].as_i64().unwrap(),
        customers_004.body["order_id"].as_i64().unwrap(),
    );

    // Seed 003's orders of a product (twice: the cached answer too).
    for _ in 0..2 {
        let r = o
            .get(&format!("/orders/product/{widget}"), &seed_client)
            .await;
        assert_eq!(ids_of(&r.body, "id"), vec![aid]);
        let r = o
            .get(&format!("/orders/product/{widget}"), &customer_token)
            .await;
        assert_eq!(ids_of(&r.body, "id"), vec![cid]);
    }
    // Seed 004's list and get.
    let r = o
        .get(
            &format!("/api/v1/orders/?product_id={widget}"),
            &seed_client,
        )
        .await;
    assert_eq!(ids_of(&r.body, "order_id"), vec![aid]);
    // Unfiltered: exactly the orders of the whole system that have no owner.
    let r = o.get("/api/v1/orders/?limit=500", &seed_client).await;
    let seen: BTreeSet<i64> = ids_of(&r.body, "order_id").into_iter().collect();
    let ownerless: BTreeSet<i64> = all_orders(sys)
        .await
        .iter()
        .filter(|o| o["customer_id"].is_null())
        .map(|o| o["order_id"].as_i64().unwrap())
        .collect();
    assert_eq!(seen, ownerless);
    assert!(seen.contains(&aid) && !seen.contains(&cid) && !seen.contains(&c004));
    for id in [cid, c004] {
        let r = o.get(&format!("/api/v1/orders/{id}"), &seed_client).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.body["detail"], "Order not found");
    }
    let r = o.get("/api/v1/orders/", &customer_token).await;
    let mut theirs = ids_of(&r.body, "order_id");
    theirs.sort_unstable();
    assert_eq!(theirs, vec![cid, c004]);
    // With the seeds' routes closed, a caller without an account is turned away.
    let closed = o.token(Who::Anonymous { seed_compat: false });
    assert_eq!(
        o.get("/api/v1/orders/", &closed).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        o.get(&format!("/orders/product/{widget}"), &closed)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

// ------------------------------------------------------------------ idempotency keys

async fn the_same_key_from_two_customers_makes_two_orders(o: &Orders<'_>) {
    let sys = o.sys;
    let cup = sys.add_product("S8-CUP", 300, 100).await;
    let (c807, c808, c809) = (
        o.token(Who::Customer(807)),
        o.token(Who::Customer(808)),
        o.token(Who::Customer(809)),
    );
    let key = "s8-k-1";
    let body = json!({"items": [{"product_id": cup, "quantity": 2}]});
    let a = o
        .post_keyed("/api/v1/orders", &c807, key, body.clone())
        .await;
    let b = o
        .post_keyed("/api/v1/orders", &c808, key, body.clone())
        .await;
    assert_eq!(
        (a.status, b.status),
        (StatusCode::CREATED, StatusCode::CREATED),
        "{:?} {:?}",
        a.body,
        b.body
    );
    assert_ne!(a.body["order_id"], b.body["order_id"]);
    assert_eq!(
        (a.body["customer_id"].clone(), b.body["customer_id"].clone()),
        (json!(807), json!(808))
    );

    // Each replays their own.
    let before = tally(sys).await;
    let a2 = o
        .post_keyed("/api/v1/orders", &c807, key, body.clone())
        .await;
    assert_eq!(
        (a2.status, a2.body["order_id"].clone()),
        (StatusCode::OK, a.body["order_id"].clone())
    );
    // A different body under the key is refused, for that customer only.
    let other = json!({"items": [{"product_id": cup, "quantity": 3}]});
    let b2 = o
        .post_keyed("/api/v1/orders", &c808, key, other.clone())
        .await;
    assert_eq!(b2.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", b2.body);
    assert_eq!(b2.body["error"]["code"], "idempotency_key_reused");
    assert_eq!(tally(sys).await.since(before), (0, 0, 0));
    let c = o.post_keyed("/api/v1/orders", &c809, key, other).await;
    assert_eq!(c.status, StatusCode::CREATED);
    // Callers without an account share one namespace, as in seed 004 (even from two
    // addresses).
    let anon = json!({"product_id": cup, "quantity": 1});
    let n1 = o
        .post_keyed(
            "/orders",
            &o.anonymous_at("198.51.100.8"),
            key,
            anon.clone(),
        )
        .await;
    let n2 = o
        .post_keyed("/orders", &o.anonymous_at("198.51.100.9"), key, anon)
        .await;
    assert_eq!(
        (n1.status, n2.status),
        (StatusCode::CREATED, StatusCode::OK)
    );
    assert_eq!(n1.body["id"], n2.body["id"]);
    // Four orders, four reservations: 2 + 2 + 3 + 1 units.
    assert_eq!(reservations_of(sys, "S8-CUP").await, 4);
    assert_eq!(sys.stock("S8-CUP").await, (100, 8, 92));
    let (_, listed) = sys
        .get(Service::Order, &format!("/api/v1/orders?product_id={cup}"))
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 4, "{listed}");
}

async fn many_simultaneous_requests_with_one_key_reserve_once_and_charge_once(o: &Orders<'_>) {
    let sys = o.sys;
    let mug = sys.add_product("S9-MUG", 800, 100).await;
    o.add_stock_item("S9-LOOSE", 100).await;
    let customer = o.token(Who::Customer(905));
    let body =
        json!({"items": [{"product_id": mug, "quantity": 1}], "amount": 8, "currency": "USD"});
    let before = tally(sys).await;
    // A slow reservation: every request arrives while the first is in progress.
    let lock = lock_stock(sys, "S9-MUG").await;
    let burst =
        (0..16).map(|_| o.post_keyed("/api/v1/orders", &customer, "s9-burst", body.clone()));
    let release = async {
        wait_in_flight(sys, 16).await;
        lock.release().await;
    };
    let (answers, ()) = tokio::join!(futures::future::join_all(burst), release);
    let ids: HashSet<i64> = answers
        .iter()
        .filter_map(|r| r.body["order_id"].as_i64())
        .collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    let statuses: Vec<StatusCode> = answers.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::OK),
        "the duplicates waited for the first: {statuses:?}"
    );
    assert_eq!(
        tally(sys).await.since(before),
        (1, 1, 1),
        "only the winner reserved and charged"
    );
    let id = *ids.iter().next().unwrap();
    assert_eq!(payments_of(sys, id).await.len(), 1);
    assert_eq!(reservations_for_order(sys, id).await.len(), 1);
    assert_eq!(sys.stock("S9-MUG").await.2, 99);

    // Seed 004's one-call order, the same key from everyone without an account.
    let seed_client = o.anonymous_at("198.51.100.10");
    let body = json!({"item_sku": "S9-LOOSE", "quantity": 2, "amount": 10, "currency": "USD",
                      "idempotency_key": "s9-seed-burst"});
    let before = tally(sys).await;
    let lock = lock_stock(sys, "S9-LOOSE").await;
    let burst = (0..16).map(|_| o.post("/api/v1/orders/", &seed_client, body.clone()));
    let release = async {
        wait_in_flight(sys, 16).await;
        lock.release().await;
    };
    let (answers, ()) = tokio::join!(futures::future::join_all(burst), release);
    let ids: HashSet<i64> = answers
        .iter()
        .filter_map(|r| r.body["order_id"].as_i64())
        .collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    assert!(
        answers.iter().all(|r| r.status == StatusCode::OK),
        "{answers:?}"
    );
    assert!(
        answers.iter().all(|r| r.body["status"] == "CONFIRMED"),
        "{answers:?}"
    );
    assert_eq!(tally(sys).await.since(before), (1, 1, 1));
    let id = *ids.iter().next().unwrap();
    assert_eq!(payments_of(sys, id).await.len(), 1);
    assert_eq!(sys.stock("S9-LOOSE").await.2, 98);
}

async fn one_key_from_two_customers_at_once_makes_exactly_two_orders(o: &Orders<'_>) {
    let sys = o.sys;
    let pen = sys.add_product("S10-PEN", 150, 100).await;
    let (c1021, c1022) = (o.token(Who::Customer(1021)), o.token(Who::Customer(1022)));
    let body = json!({"items": [{"product_id": pen, "quantity": 1}]});
    let before = tally(sys).await;
    let lock = lock_stock(sys, "S10-PEN").await;
    let burst = (0..20).map(|i| {
        let token = if i % 2 == 0 { &c1021 } else { &c1022 };
        o.post_keyed("/api/v1/orders", token, "s10-shared-key", body.clone())
    });
    let release = async {
        wait_in_flight(sys, 20).await;
        lock.release().await;
    };
    let (answers, ()) = tokio::join!(futures::future::join_all(burst), release);
    let mut by_customer: Vec<(i64, i64)> = answers
        .iter()
        .map(|r| {
            (
                r.body["customer_id"].as_i64().unwrap_or_default(),
                r.body["order_id"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    by_customer.sort_unstable();
    by_customer.dedup();
    assert_eq!(by_customer.len(), 2, "{answers:?}");
    assert_eq!((by_customer[0].0, by_customer[1].0), (1021, 1022));
    assert_ne!(by_customer[0].1, by_customer[1].1);
    assert_eq!(tally(sys).await.since(before), (2, 0, 2));
    assert_eq!(reservations_of(sys, "S10-PEN").await, 2);
    assert_eq!(sys.stock("S10-PEN").await.2, 98);
}

// ------------------------------------------------------------------ slow and crashed claims

async fn a_duplicate_that_waits_too_long_gets_a_clear_409_and_a_crashed_claim_expires(
    o: &Orders<'_>,
) {
    let sys = o.sys;
    let slow = sys.add_product("S11-SLOW", 100, 10).await;
    let customer = o.token(Who::Customer(1103));
    let body = json!({"items": [{"product_id": slow, "quantity": 1}]});
    let mut orders_db = db(sys, Service::Order).await;
    let before = tally(sys).await;

    // The first request waits for its reservation (the stock row is locked); the
    // second, with the key, waits IDEMPOTENCY_WAIT (300 ms) for it, then gives up.
    let lock = lock_stock(sys, "S11-SLOW").await;
    let first = o.post_keyed("/api/v1/orders", &customer, "s11-slow", body.clone());
    let second = async {
        sales_testkit::eventually(
            "the first request's claim",
            Duration::from_secs(10),
            || async {
                let mut conn = db(sys, Service::Order).await;
                let claimed: Option<String> = sqlx::query_scalar(
                    "select state from order_claims
                     where key_owner = 'customer:1103' and idempotency_key = 's11-slow'",
                )
                .fetch_optional(&mut conn)
                .await
                .unwrap();
                (claimed.as_deref() == Some("in_progress")).then_some(())
            },
        )
        .await;
        let second = o
            .post_keyed("/api/v1/orders", &customer, "s11-slow", body.clone())
            .await;
        lock.release().await;
        second
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    assert_eq!(second.status, StatusCode::CONFLICT, "{:?}", second.body);
    assert_eq!(second.body["error"]["code"], "idempotency_key_in_use");
    assert!(message(&second).contains("retry"), "{}", message(&second));
    assert!(second.retry_after.is_some());
    let third = o
        .post_keyed("/api/v1/orders", &customer, "s11-slow", body.clone())
        .await;
    assert_eq!(
        (third.status, third.body["order_id"].clone()),
        (StatusCode::OK, first.body["order_id"].clone())
    );
    assert_eq!(
        tally(sys).await.since(before),
        (1, 0, 1),
        "the waiting duplicate reserved nothing"
    );
    assert_eq!(sys.stock("S11-SLOW").await, (10, 1, 9));

    // A crash left a claim in progress (same request, key "s11-crashed") after its
    // reservation was made: it blocks the key until it expires, then a retry takes it
    // over with the claimed order id, and the inventory answers with that reservation.
    let fingerprint: String = sqlx::query_scalar(
        "select fingerprint from order_claims
         where key_owner = 'customer:1103' and idempotency_key = 's11-slow'",
    )
    .fetch_one(&mut orders_db)
    .await
    .unwrap();
    let claimed: i64 = sqlx::query_scalar(
        "insert into order_claims (order_id, key_owner, idempotency_key, fingerprint, limit_owner,
             units, state, expires_at)
         values (nextval(pg_get_serial_sequence('orders', 'id')), 'customer:1103', 's11-crashed',
             $1, 'customer:1103', 1, 'in_progress', now() + interval '1 hour')
         returning order_id",
    )
    .bind(&fingerprint)
    .fetch_one(&mut orders_db)
    .await
    .unwrap();
    let (status, reservation) = sys
        .post(
            Service::Inventory,
            "/api/v1/inventory/reservations",
            json!({"order_id": claimed, "items": [{"sku": "S11-SLOW", "quantity": 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reservation}");
    let reservation_id = reservation["reservation_id"].as_i64().unwrap();
    assert_eq!(sys.stock("S11-SLOW").await, (10, 2, 8));

    let blocked = o
        .post_keyed("/api/v1/orders", &customer, "s11-crashed", body.clone())
        .await;
    assert_eq!(blocked.status, StatusCode::CONFLICT, "{:?}", blocked.body);
    assert_eq!(blocked.body["error"]["code"], "idempotency_key_in_use");
    // Time passes: the claim expires.
    sqlx::query(
        "update order_claims set expires_at = now() - interval '1 second'
         where order_id = $1",
    )
    .bind(claimed)
    .execute(&mut orders_db)
    .await
    .unwrap();
    let taken_over = o
        .post_keyed("/api/v1/orders", &customer, "s11-crashed", body)
        .await;
    assert_eq!(
        taken_over.status,
        StatusCode::CREATED,
        "{:?}",
        taken_over.body
    );
    assert_eq!(taken_over.body["order_id"], claimed);
    assert_eq!(taken_over.body["reservation_id"], reservation_id);
    assert_eq!(
        reservations_for_order(sys, claimed).await,
        vec![reservation_id]
    );
    assert_eq!(
        sys.stock("S11-SLOW").await,
        (10, 2, 8),
        "the takeover reserved nothing more"
    );
    let attempts: i32 = sqlx::query_scalar("select attempts from order_claims where order_id = $1")
        .bind(claimed)
        .fetch_one(&mut orders_db)
        .await
        .unwrap();
    assert_eq!(attempts, 2);
}

// ------------------------------------------------------------------ bounds

async fn a_customer_has_a_bounded_number_of_unpaid_orders_and_reserved_units(o: &Orders<'_>) {
    let sys = o.sys;
    let tea = sys.add_product("S12-TEA", 100, 1000).await;
    let one = |q: i32| json!({"items": [{"product_id": tea, "quantity": q}]});
    let alice = o.token(Who::Customer(1207));
    let first = o
        .post_keyed("/api/v1/orders", &alice, "s12-lim-1", one(1))
        .await;
    let second = o.post("/api/v1/orders", &alice, one(1)).await;
    assert_eq!(
        (first.status, second.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    let before = tally(sys).await;
    let third = o.post("/api/v1/orders", &alice, one(1)).await;
    assert_eq!(third.status, StatusCode::CONFLICT, "{:?}", third.body);
    assert_eq!(third.body["error"]["code"], "too_many_unpaid_orders");
    let text = message(&third);
    assert!(text.contains("pay or cancel"), "{text}");
    // Seed 000's route counts the same orders.
    let r = o.post("/orders/order", &alice, one(1)).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["success"], false);
    // A replay is no new order: it is answered, not refused.
    let replay = o
        .post_keyed("/api/v1/orders", &alice, "s12-lim-1", one(1))
        .await;
    assert_eq!(
        (replay.status, replay.body["order_id"].clone()),
        (StatusCode::OK, first.body["order_id"].clone())
    );
    assert_eq!(
        tally(sys).await.since(before),
        (0, 0, 0),
        "the refused reserved nothing"
    );
    assert_eq!(sys.stock("S12-TEA").await, (1000, 2, 998));
    // Another customer is not affected; an admin is not bounded.
    assert_eq!(
        o.post("/api/v1/orders", &o.token(Who::Customer(1208)), one(1))
            .await
            .status,
        StatusCode::CREATED
    );
    let admin = o.token(Who::Admin(system_tests::ADMIN_ID));
    for _ in 0..3 {
        assert_eq!(
            o.post("/api/v1/orders", &admin, one(1)).await.status,
            StatusCode::CREATED
        );
    }
    // Cancelling (or paying) one makes room.
    let id = first.body["order_id"].as_i64().unwrap();
    let r = o
        .send(
            Method::POST,
            &format!("/api/v1/orders/{id}/cancel"),
            &alice,
            &[],
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let id = second.body["order_id"].as_i64().unwrap();
    let r = o
        .send(
            Method::POST,
            &format!("/api/v1/orders/{id}/pay"),
            &alice,
            &[],
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(payments_of(sys, id).await.len(), 1);

    // Units: 4 held, 2 more would be 6 > 5.
    let r = o.post("/api/v1/orders", &alice, one(4)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let before = tally(sys).await;
    let r = o.post("/api/v1/orders", &alice, one(2)).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "too_many_reserved_units");
    assert!(message(&r).contains("pay or cancel"), "{}", message(&r));
    assert_eq!(tally(sys).await.since(before), (0, 0, 0));
    let r = o.post("/api/v1/orders", &alice, one(1)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    // One order larger than the bound is refused outright.
    let r = o
        .post("/api/v1/orders", &o.token(Who::Customer(1209)), one(6))
        .await;
    assert_eq!(r.body["error"]["code"], "too_many_reserved_units");
    // Alice holds 4 + 1 unpaid units, customer 1208 one, the admin three.
    let (_, held) = sys
        .get(
            Service::Order,
            &format!("/api/v1/orders?product_id={tea}&status=PENDING"),
        )
        .await;
    let units: i64 = held
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["items"][0]["quantity"].as_i64().unwrap())
        .sum();
    assert_eq!(units, 9, "{held}");
    // The inventory holds exactly those: the cancelled order's unit is back, the paid
    // one's is sold.
    sales_testkit::eventually(
        "the inventory to settle the paid and the cancelled order",
        Duration::from_secs(15),
        || async { (sys.stock("S12-TEA").await == (999, 9, 990)).then_some(()) },
    )
    .await;
}

async fn callers_without_an_account_are_bounded_per_client_address(o: &Orders<'_>) {
    let sys = o.sys;
    let tea = sys.add_product("S13-TEA", 100, 1000).await;
    let here = o.anonymous_at("203.0.113.7");
    let there = o.anonymous_at("203.0.113.8");
    let body = json!({"product_id": tea, "quantity": 1});
    let post = |token: &str| {
        let token = token.to_owned();
        let body = body.clone();
        async move { o.post("/orders", &token, body).await }
    };
    assert_eq!(post(&here).await.status, StatusCode::CREATED);
    assert_eq!(post(&here).await.status, StatusCode::CREATED);
    let before = tally(sys).await;
    let r = post(&here).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert!(message(&r).contains("address"), "{}", message(&r));
    assert_eq!(tally(sys).await.since(before), (0, 0, 0));
    assert_eq!(post(&there).await.status, StatusCode::CREATED);
    // IPv6: one bound per /64.
    let v6a = o.anonymous_at("2001:db8:1:2::1");
    let v6b = o.anonymous_at("2001:db8:1:2::ffff");
    assert_eq!(post(&v6a).await.status, StatusCode::CREATED);
    assert_eq!(post(&v6b).await.status, StatusCode::CREATED);
    assert_eq!(post(&v6a).await.status, StatusCode::CONFLICT);
    assert_eq!(reservations_of(sys, "S13-TEA").await, 5);
}

async fn concurrent_orders_cannot_exceed_the_bound(o: &Orders<'_>) {
    let sys = o.sys;
    let rush = sys.add_product("S14-RUSH", 100, 1000).await;
    let customer = o.token(Who::Customer(1404));
    let body = json!({"items": [{"product_id": rush, "quantity": 1}]});
    let before = tally(sys).await;
    // Slow reservations: the claims in progress must count.
    let lock = lock_stock(sys, "S14-RUSH").await;
    let burst = (0..20).map(|_| o.post("/api/v1/orders", &customer, body.clone()));
    let release = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        lock.release().await;
    };
    let (answers, ()) = tokio::join!(futures::future::join_all(burst), release);
    let placed = answers
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let refused = answers
        .iter()
        .filter(|r| r.body["error"]["code"] == "too_many_unpaid_orders")
        .count();
    assert_eq!((placed, refused), (2, 18), "{answers:?}");
    assert_eq!(
        tally(sys).await.since(before),
        (2, 0, 2),
        "the refused reserved nothing"
    );
    assert_eq!(reservations_of(sys, "S14-RUSH").await, 2);
    assert_eq!(sys.stock("S14-RUSH").await, (1000, 2, 998));
}

/// The same order sent twice at once with one key (a client's retry): the second is
/// the first order again (or, if that is not finished within `IDEMPOTENCY_WAIT`, a
/// 409 saying the key is in use), never refused as if it were one order more.
/// Both requests are held at the customer's bound lock until both are in flight,
/// so each looks its key up before the other's claim is committed.
async fn a_duplicate_sent_at_once_is_never_refused_by_the_bound(o: &Orders<'_>) {
    let sys = o.sys;
    let twin = sys.add_product("S15-TWIN", 100, 1000).await;
    let customer = o.token(Who::Customer(1405));
    // 3 units, twice, would pass the bound of 5 reserved units.
    let body = json!({"items": [{"product_id": twin, "quantity": 3}]});
    let mut holder = db(sys, Service::Order).await;
    // The order service's lock class for bounds ("ORD1") and the customer's owner.
    sqlx::query("select pg_advisory_lock(1330791473, hashtext('customer:1405'))")
        .execute(&mut holder)
        .await
        .unwrap();
    let both = futures::future::join(
        o.post_keyed("/api/v1/orders", &customer, "s15-twin", body.clone()),
        o.post_keyed("/api/v1/orders", &customer, "s15-twin", body.clone()),
    );
    let release = async {
        wait_in_flight(sys, 2).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        sqlx::query("select pg_advisory_unlock_all()")
            .execute(&mut holder)
            .await
            .unwrap();
    };
    let ((a, b), ()) = tokio::join!(both, release);
    for r in [&a, &b] {
        let code = r.body["error"]["code"].as_str().unwrap_or_default();
        assert!(
            r.status.is_success() || code == "idempotency_key_in_use",
            "a duplicate was refused: {r:?} (the other: {:?})",
            if std::ptr::eq(r, &a) { &b } else { &a }
        );
    }
    let ids: BTreeSet<i64> = [&a, &b]
        .iter()
        .filter(|r| r.status.is_success())
        .filter_map(|r| r.body["order_id"].as_i64())
        .collect();
    assert_eq!(ids.len(), 1, "one order for one key: {a:?} {b:?}");
    assert_eq!(reservations_of(sys, "S15-TWIN").await, 1);
}
