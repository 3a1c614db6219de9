//! The rules money depends on (issue 11, point 4): catalogue prices on the canonical
//! routes, seed 004's stated amounts kept as line totals, idempotency keys that
//! belong to their sender and are claimed before any side effect, and bounded unpaid
//! orders per customer (or per client address without an account). The services the
//! order service calls are stand-ins that count every reservation and charge.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{ADMIN, Orders, Reply, SEED_CLIENT, Who};

fn message(reply: &Reply) -> String {
    reply.body["error"]["message"]
        .as_str()
        .or(reply.body["error_message"].as_str())
        .or(reply.body["detail"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn an_item_the_catalogue_does_not_know_is_refused_with_422_on_every_canonical_route() {
    let orders = Orders::start().await;
    orders.upstream.add_product(1, "KNOWN", 500, 10);
    // In stock, but not in the catalogue: only seed 004's one-call order may sell it.
    orders.upstream.add_stock_item("STOCK-ONLY", 10);
    let alice = Who::Customer(7);

    let unknown_id =
        json!({"items": [{"product_id": 1, "quantity": 1}, {"product_id": 424242, "quantity": 1}]});
    let r = orders
        .post("/api/v1/orders", alice, unknown_id.clone())
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "unknown_items");
    assert!(message(&r).contains("424242"), "{}", message(&r));
    assert_eq!(
        r.body["error"]["details"]["unknown_product_ids"],
        json!([424242])
    );

    // Today's hole: an unknown SKU was priced from the client's own amount.
    let r = orders
        .post(
            "/api/v1/orders",
            alice,
            json!({"item_sku": "STOCK-ONLY", "quantity": 2, "amount": 0.02, "currency": "USD"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert!(message(&r).contains("STOCK-ONLY"), "{}", message(&r));
    let r = orders
        .post(
            "/api/v1/orders",
            alice,
            json!({"item_sku": "STOCK-ONLY", "quantity": 2}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);

    // Seed 000's route, in its envelope.
    let r = orders.post("/orders/order", alice, unknown_id).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.body["success"], false);
    assert!(message(&r).contains("424242"), "{}", message(&r));

    // Seeds 002/003.
    let r = orders
        .post(
            "/orders",
            SEED_CLIENT,
            json!({"product_id": 424242, "quantity": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert!(message(&r).contains("424242"));

    assert_eq!(orders.upstream.reservations_made(), 0, "nothing reserved");
    assert_eq!(orders.sql_count("select count(*) from orders").await, 0);
    orders.stop().await;
}

#[tokio::test]
async fn seed_004_keeps_an_amount_that_does_not_split_evenly_as_a_line_total() {
    let orders = Orders::start().await;
    orders.upstream.add_stock_item("SKU-IDEMP", 10);
    let body = json!({"item_sku": "SKU-IDEMP", "quantity": 3, "amount": 200, "currency": "USD",
                      "idempotency_key": "same-key-1"});
    let first = orders
        .post("/api/v1/orders/", SEED_CLIENT, body.clone())
        .await;
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
    assert_eq!(order["item_sku"], "SKU-IDEMP");
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
    assert_eq!(orders.upstream.available("SKU-IDEMP"), Some(7));

    let again = orders.post("/api/v1/orders/", SEED_CLIENT, body).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["order_id"], order["order_id"]);
    assert_eq!(
        orders.upstream.available("SKU-IDEMP"),
        Some(7),
        "reserved once"
    );
    assert_eq!(orders.upstream.charges_made(), 1, "charged once");

    // The line total is read back as stored.
    let id = order["order_id"].as_i64().unwrap();
    let read = orders
        .get(&format!("/api/v1/orders/{id}"), SEED_CLIENT)
        .await;
    assert_eq!(read.body["items"][0]["line_total"]["amount"], 20000);
    orders.stop().await;
}

#[tokio::test]
async fn seed_004s_amount_must_match_the_catalogue_wherever_the_item_has_a_price() {
    let orders = Orders::start().await;
    orders.upstream.add_product(3, "CAT-1", 1250, 10);
    let order = |amount: f64| {
        json!({"item_sku": "CAT-1", "quantity": 2, "amount": amount, "currency": "USD",
               "idempotency_key": format!("k-{amount}")})
    };
    let r = orders
        .post("/api/v1/orders/", SEED_CLIENT, order(0.02))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert!(
        r.body["detail"].as_str().unwrap().contains("25.00 USD"),
        "{:?}",
        r.body
    );
    assert_eq!(orders.upstream.reservations_made(), 0);
    let r = orders
        .post("/api/v1/orders/", SEED_CLIENT, order(25.0))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["items"][0]["product_id"], 3);
    assert_eq!(r.body["items"][0]["unit_price"]["amount"], 1250);
    orders.stop().await;
}

#[tokio::test]
async fn seed_004s_routes_answer_with_its_statuses_and_fastapi_errors() {
    let orders = Orders::start().await;
    orders.upstream.add_stock_item("LOW", 1);
    let order = |sku: &str, quantity: i32, key: &str| json!({"item_sku": sku, "quantity": quantity, "amount": 50, "currency": "USD", "idempotency_key": key});
    let r = orders
        .post("/api/v1/orders/", SEED_CLIENT, order("LOW", 5, "a"))
        .await;
    assert_eq!(
        (r.status, r.body.clone()),
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "insufficient stock"})
        )
    );
    let r = orders
        .post("/api/v1/orders/", SEED_CLIENT, order("NOWHERE", 1, "b"))
        .await;
    assert_eq!(
        (r.status, r.body.clone()),
        (StatusCode::NOT_FOUND, json!({"detail": "item not found"}))
    );
    // The key of a refused order is free again (seed 004 stored nothing).
    orders.upstream.add_stock_item("NOWHERE", 3);
    let r = orders
        .post("/api/v1/orders/", SEED_CLIENT, order("NOWHERE", 1, "b"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    // Validation: FastAPI's 422 with a list of problems.
    let r = orders
        .post(
            "/api/v1/orders/",
            SEED_CLIENT,
            json!({"item_sku": "LOW", "quantity": 1, "amount": 5, "currency": "USD"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.body["detail"][0]["type"], "missing");
    assert_eq!(
        r.body["detail"][0]["loc"],
        json!(["body", "idempotency_key"])
    );
    assert_eq!(r.body["detail"][0]["msg"], "Field required");
    let r = orders
        .post_raw(
            "/api/v1/orders/",
            SEED_CLIENT,
            r#"{"item_sku": "LOW", "quantity": "#,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.body["detail"][0]["type"], "json_invalid");
    let r = orders
        .post(
            "/api/v1/orders/",
            SEED_CLIENT,
            json!({"item_sku": "LOW", "quantity": "many", "amount": 5, "currency": "USD", "idempotency_key": "c"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "quantity"]));
    let r = orders
        .post(
            "/api/v1/orders/",
            SEED_CLIENT,
            json!({"item_sku": "LOW", "quantity": 0, "amount": 5, "currency": "USD", "idempotency_key": "d"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert!(r.body["detail"].is_array(), "{:?}", r.body);
    // The same key for a different request.
    let r = orders
        .post("/api/v1/orders/", SEED_CLIENT, order("NOWHERE", 2, "b"))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("idempotency key")
    );

    // Reading: seed 004's "Order not found" (the canonical error as well).
    let r = orders.get("/api/v1/orders/999", SEED_CLIENT).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["detail"], "Order not found");
    assert_eq!(r.body["error"]["code"], "not_found");
    orders.stop().await;
}

#[tokio::test]
async fn the_same_key_from_two_customers_makes_two_orders() {
    let orders = Orders::start().await;
    orders.upstream.add_product(1, "CUP", 300, 100);
    let body = json!({"items": [{"product_id": 1, "quantity": 2}]});
    let a = orders
        .post_keyed("/api/v1/orders", Who::Customer(7), "k-1", body.clone())
        .await;
    let b = orders
        .post_keyed("/api/v1/orders", Who::Customer(8), "k-1", body.clone())
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
        (json!(7), json!(8))
    );

    // Each replays their own.
    let a2 = orders
        .post_keyed("/api/v1/orders", Who::Customer(7), "k-1", body.clone())
        .await;
    assert_eq!(
        (a2.status, a2.body["order_id"].clone()),
        (StatusCode::OK, a.body["order_id"].clone())
    );
    // A different body under the key is refused, for that customer only.
    let other = json!({"items": [{"product_id": 1, "quantity": 3}]});
    let b2 = orders
        .post_keyed("/api/v1/orders", Who::Customer(8), "k-1", other.clone())
        .await;
    assert_eq!(b2.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", b2.body);
    assert_eq!(b2.body["error"]["code"], "idempotency_key_reused");
    let c = orders
        .post_keyed("/api/v1/orders", Who::Customer(9), "k-1", other)
        .await;
    assert_eq!(c.status, StatusCode::CREATED);
    // Callers without an account share one namespace, as in seed 004.
    let anon = json!({"product_id": 1, "quantity": 1});
    let n1 = orders
        .post_keyed("/orders", SEED_CLIENT, "k-1", anon.clone())
        .await;
    let n2 = orders.post_keyed("/orders", SEED_CLIENT, "k-1", anon).await;
    assert_eq!(
        (n1.status, n2.status),
        (StatusCode::CREATED, StatusCode::OK)
    );
    assert_eq!(n1.body["id"], n2.body["id"]);
    assert_eq!(orders.upstream.reservations_made(), 4);
    orders.stop().await;
}

#[tokio::test]
async fn many_simultaneous_requests_with_one_key_reserve_once_and_charge_once() {
    let orders = Orders::start().await;
    orders.upstream.add_product(1, "MUG", 800, 100);
    orders.upstream.add_stock_item("LOOSE", 100);
    // Slow reservations: every request arrives while the first is in progress.
    orders
        .upstream
        .set_reserve_delay(Duration::from_millis(400));
    let body = json!({"items": [{"product_id": 1, "quantity": 1}], "amount": 8, "currency": "USD"});
    let burst = (0..16)
        .map(|_| orders.post_keyed("/api/v1/orders", Who::Customer(5), "burst", body.clone()));
    let answers = futures::future::join_all(burst).await;
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
    let s = orders.upstream.state.lock().unwrap().reserve_calls;
    assert_eq!(s, 1, "only the winner reserved");
    assert_eq!(orders.upstream.charges_made(), 1);
    assert_eq!(
        orders.upstream.state.lock().unwrap().charge_calls,
        1,
        "only the winner charged"
    );
    assert_eq!(orders.upstream.available("MUG"), Some(99));

    // Seed 004's one-call order, the same key from everyone without an account.
    let body = json!({"item_sku": "LOOSE", "quantity": 2, "amount": 10, "currency": "USD", "idempotency_key": "seed-burst"});
    let burst = (0..16).map(|_| orders.post("/api/v1/orders/", SEED_CLIENT, body.clone()));
    let answers = futures::future::join_all(burst).await;
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
    assert_eq!(orders.upstream.available("LOOSE"), Some(98));
    assert_eq!(orders.upstream.state.lock().unwrap().reserve_calls, 2);
    assert_eq!(orders.upstream.charges_made(), 2);
    orders.stop().await;
}

#[tokio::test]
async fn one_key_from_two_customers_at_once_makes_exactly_two_orders() {
    let orders = Orders::start().await;
    orders.upstream.add_product(1, "PEN", 150, 100);
    orders
        .upstream
        .set_reserve_delay(Duration::from_millis(200));
    let body = json!({"items": [{"product_id": 1, "quantity": 1}]});
    let burst = (0..20).map(|i| {
        let who = if i % 2 == 0 {
            Who::Customer(21)
        } else {
            Who::Customer(22)
        };
        orders.post_keyed("/api/v1/orders", who, "shared-key", body.clone())
    });
    let answers = futures::future::join_all(burst).await;
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
    assert_ne!(by_customer[0].1, by_customer[1].1);
    assert_eq!(orders.upstream.state.lock().unwrap().reserve_calls, 2);
    assert_eq!(orders.upstream.available("PEN"), Some(98));
    orders.stop().await;
}

#[tokio::test]
async fn a_duplicate_that_waits_too_long_gets_a_clear_409_and_a_crashed_claim_expires() {
    let orders =
        Orders::start_with(&["--idempotency-wait=300ms", "--idempotency-claim-ttl=2s"]).await;
    orders.upstream.add_product(1, "SLOW", 100, 10);
    orders
        .upstream
        .set_reserve_delay(Duration::from_millis(1500));
    let body = json!({"items": [{"product_id": 1, "quantity": 1}]});
    let first = orders.post_keyed("/api/v1/orders", Who::Customer(3), "slow", body.clone());
    let second = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        orders
            .post_keyed("/api/v1/orders", Who::Customer(3), "slow", body.clone())
            .await
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    assert_eq!(second.status, StatusCode::CONFLICT, "{:?}", second.body);
    assert_eq!(second.body["error"]["code"], "idempotency_key_in_use");
    assert!(message(&second).contains("retry"), "{}", message(&second));
    assert!(second.retry_after.is_some());
    let third = orders
        .post_keyed("/api/v1/orders", Who::Customer(3), "slow", body.clone())
        .await;
    assert_eq!(
        (third.status, third.body["order_id"].clone()),
        (StatusCode::OK, first.body["order_id"].clone())
    );
    orders.upstream.set_reserve_delay(Duration::ZERO);

    // A crash left a claim in progress (same request, key "crashed"): it blocks the
    // key until it expires, then a retry takes it over with the claimed order id.
    let pool = sqlx::PgPool::connect(&orders.db.url).await.unwrap();
    let fingerprint: String =
        sqlx::query_scalar("select fingerprint from order_claims where idempotency_key = 'slow'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let claimed: i64 = sqlx::query_scalar(
        "insert into order_claims (order_id, key_owner, idempotency_key, fingerprint, limit_owner,
             units, state, expires_at)
         values (nextval(pg_get_serial_sequence('orders', 'id')), 'customer:3', 'crashed', $1,
             'customer:3', 1, 'in_progress', now() + interval '1 second')
         returning order_id",
    )
    .bind(&fingerprint)
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    let blocked = orders
        .post_keyed("/api/v1/orders", Who::Customer(3), "crashed", body.clone())
        .await;
    assert_eq!(blocked.status, StatusCode::CONFLICT, "{:?}", blocked.body);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let taken_over = orders
        .post_keyed("/api/v1/orders", Who::Customer(3), "crashed", body)
        .await;
    assert_eq!(
        taken_over.status,
        StatusCode::CREATED,
        "{:?}",
        taken_over.body
    );
    assert_eq!(taken_over.body["order_id"], claimed);
    orders.stop().await;
}

#[tokio::test]
async fn a_customer_has_a_bounded_number_of_unpaid_orders_and_reserved_units() {
    let orders = Orders::start_with(&[
        "--max-unpaid-orders-per-customer=2",
        "--max-reserved-units-per-customer=5",
    ])
    .await;
    orders.upstream.add_product(1, "TEA", 100, 1000);
    let one = |q: i32| json!({"items": [{"product_id": 1, "quantity": q}]});
    let alice = Who::Customer(7);
    let first = orders
        .post_keyed("/api/v1/orders", alice, "lim-1", one(1))
        .await;
    let second = orders.post("/api/v1/orders", alice, one(1)).await;
    assert_eq!(
        (first.status, second.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    let third = orders.post("/api/v1/orders", alice, one(1)).await;
    assert_eq!(third.status, StatusCode::CONFLICT, "{:?}", third.body);
    assert_eq!(third.body["error"]["code"], "too_many_unpaid_orders");
    let text = message(&third);
    assert!(text.contains("pay or cancel"), "{text}");
    // Seed 000's route counts the same orders.
    let r = orders.post("/orders/order", alice, one(1)).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.body["success"], false);
    // A replay is no new order: it is answered, not refused.
    let replay = orders
        .post_keyed("/api/v1/orders", alice, "lim-1", one(1))
        .await;
    assert_eq!(
        (replay.status, replay.body["order_id"].clone()),
        (StatusCode::OK, first.body["order_id"].clone())
    );
    // Another customer is not affected; an admin is not bounded.
    assert_eq!(
        orders
            .post("/api/v1/orders", Who::Customer(8), one(1))
            .await
            .status,
        StatusCode::CREATED
    );
    for _ in 0..3 {
        assert_eq!(
            orders.post("/api/v1/orders", ADMIN, one(1)).await.status,
            StatusCode::CREATED
        );
    }
    // Cancelling (or paying) one makes room.
    let id = first.body["order_id"].as_i64().unwrap();
    let r = orders
        .send(
            Method::POST,
            &format!("/api/v1/orders/{id}/cancel"),
            alice,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let id = second.body["order_id"].as_i64().unwrap();
    let r = orders
        .send(
            Method::POST,
            &format!("/api/v1/orders/{id}/pay"),
            alice,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    // Units: 4 held, 2 more would be 6 > 5.
    let r = orders.post("/api/v1/orders", alice, one(4)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = orders.post("/api/v1/orders", alice, one(2)).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], "too_many_reserved_units");
    assert!(message(&r).contains("pay or cancel"), "{}", message(&r));
    let r = orders.post("/api/v1/orders", alice, one(1)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    // One order larger than the bound is refused outright.
    let r = orders
        .post("/api/v1/orders", Who::Customer(9), one(6))
        .await;
    assert_eq!(r.body["error"]["code"], "too_many_reserved_units");
    orders.stop().await;
}

#[tokio::test]
async fn callers_without_an_account_are_bounded_per_client_address() {
    let orders = Orders::start_with(&["--max-unpaid-orders-per-customer=2"]).await;
    orders.upstream.add_product(1, "TEA", 100, 1000);
    let here = orders.anonymous_at("203.0.113.7");
    let there = orders.anonymous_at("203.0.113.8");
    let body = json!({"product_id": 1, "quantity": 1});
    let post = |token: &str| {
        let token = token.to_owned();
        let body = body.clone();
        let orders = &orders;
        async move {
            orders
                .send_with(Method::POST, "/orders", Some(&token), &[], Some(&body))
                .await
        }
    };
    assert_eq!(post(&here).await.status, StatusCode::CREATED);
    assert_eq!(post(&here).await.status, StatusCode::CREATED);
    let r = post(&here).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert!(message(&r).contains("address"), "{}", message(&r));
    assert_eq!(post(&there).await.status, StatusCode::CREATED);
    // IPv6: one bound per /64.
    let v6a = orders.anonymous_at("2001:db8:1:2::1");
    let v6b = orders.anonymous_at("2001:db8:1:2::ffff");
    assert_eq!(post(&v6a).await.status, StatusCode::CREATED);
    assert_eq!(post(&v6b).await.status, StatusCode::CREATED);
    assert_eq!(post(&v6a).await.status, StatusCode::CONFLICT);
    orders.stop().await;
}

#[tokio::test]
async fn concurrent_orders_cannot_exceed_the_bound() {
    let orders = Orders::start_with(&["--max-unpaid-orders-per-customer=3"]).await;
    orders.upstream.add_product(1, "RUSH", 100, 1000);
    orders
        .upstream
        .set_reserve_delay(Duration::from_millis(150));
    let body = json!({"items": [{"product_id": 1, "quantity": 1}]});
    let burst = (0..20).map(|_| orders.post("/api/v1/orders", Who::Customer(4), body.clone()));
    let answers = futures::future::join_all(burst).await;
    let placed = answers
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let refused = answers
        .iter()
        .filter(|r| r.body["error"]["code"] == "too_many_unpaid_orders")
        .count();
    assert_eq!((placed, refused), (3, 17), "{answers:?}");
    assert_eq!(
        orders.upstream.reservations_made(),
        3,
        "the refused reserved nothing"
    );
    orders.stop().await;
}

#[tokio::test]
async fn seed_000s_kafka_routes_and_string_product_ids() {
    let orders = Orders::start().await;
    orders.upstream.add_product(48, "BOOK", 1500, 10);
    let alice = Who::Customer(7);
    let r = orders
        .post(
            "/orders/orderkafka",
            alice,
            json!({"items": [{"product_id": "48", "quantity": 2}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["success"], true);
    let order_id = r.body["data"]["order_id"].as_i64().unwrap();
    let r = orders
        .post(
            "/orders/order",
            alice,
            json!({"items": [{"product_id": "48", "quantity": 1}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = orders
        .post(
            "/orders/order",
            alice,
            json!({"items": [{"product_id": "abc", "quantity": 1}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert_eq!(r.body["success"], false);
    assert!(message(&r).contains("product_id"), "{}", message(&r));

    // Only the owner pays, on either route; a caller without an account is refused.
    let r = orders
        .post(
            "/orders/paidkafka",
            Who::Customer(8),
            json!({"order_id": order_id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = orders
        .post(
            "/orders/orderkafka",
            SEED_CLIENT,
            json!({"items": [{"product_id": 48, "quantity": 1}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = orders
        .post("/orders/paidkafka", alice, json!({"order_id": order_id}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["data"]["order_id"], order_id);
    orders.stop().await;
}

#[tokio::test]
async fn seed_002s_customer_id_is_a_reference_never_the_owner_and_seed_003s_product_id_spellings() {
    let orders = Orders::start().await;
    orders.upstream.add_product(1, "LAPTOP", 99999, 10);
    // Seed 002, without an account, naming registered customer 7.
    let r = orders
        .post(
            "/orders",
            SEED_CLIENT,
            json!({"customer_id": 7, "product_id": 1, "quantity": 2}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["customer_id"], 7, "echoed as seed 002 does");
    assert_eq!(r.body["product_id"], 1);
    let id = r.body["id"].as_i64().unwrap();
    // Customer 7 does not own it (nor sees it); it belongs to no account.
    let r7 = orders
        .get(&format!("/api/v1/orders/{id}"), Who::Customer(7))
        .await;
    assert_eq!(r7.status, StatusCode::NOT_FOUND);
    let theirs = orders.get("/api/v1/orders", Who::Customer(7)).await;
    assert_eq!(theirs.body, json!([]));
    let seen = orders
        .get(&format!("/api/v1/orders/{id}"), SEED_CLIENT)
        .await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.body["customer_id"], Value::Null);
    assert_eq!(seen.body["stated_customer_id"], 7);
    let listed = orders.get("/orders/product/1", SEED_CLIENT).await;
    assert_eq!(listed.body[0]["customer_id"], 7);
    // A signed-in customer naming another: still theirs.
    let r = orders
        .post(
            "/orders",
            Who::Customer(8),
            json!({"customer_id": 7, "product_id": 1, "quantity": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.body["id"].as_i64().unwrap();
    let mine = orders
        .get(&format!("/api/v1/orders/{id}"), Who::Customer(8))
        .await;
    assert_eq!(mine.body["customer_id"], 8);

    // Seed 003: productId (its code, later README) and product_id (early README).
    for body in [
        json!({"productId": 1, "quantity": 1}),
        json!({"productId": "1", "quantity": 1}),
        json!({"product_id": "1", "quantity": 1}),
    ] {
        let r = orders.post("/orders", SEED_CLIENT, body.clone()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{body}: {:?}", r.body);
        assert_eq!(r.body["productId"], 1);
    }
    let r = orders
        .post("/orders", SEED_CLIENT, json!({"quantity": 1}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert!(message(&r).contains("product_id"), "{}", message(&r));
    orders.stop().await;
}

#[tokio::test]
async fn a_caller_without_an_account_sees_only_orders_placed_without_one() {
    let orders = Orders::start().await;
    orders.upstream.add_product(1, "WIDGET", 250, 100);
    orders.upstream.add_stock_item("LOOSE", 10);
    let customer = orders
        .post(
            "/orders",
            Who::Customer(5),
            json!({"product_id": 1, "quantity": 1}),
        )
        .await;
    let anonymous = orders
        .post(
            "/orders",
            SEED_CLIENT,
            json!({"product_id": 1, "quantity": 2}),
        )
        .await;
    let customers_004 = orders
        .post(
            "/api/v1/orders/",
            Who::Customer(5),
            json!({"item_sku": "LOOSE", "quantity": 1, "amount": 1, "currency": "USD", "idempotency_key": "x"}),
        )
        .await;
    assert_eq!(
        customers_004.status,
        StatusCode::OK,
        "{:?}",
        customers_004.body
    );
    let (cid, aid) = (
        customer.body["id"].as_i64().unwrap(),
        anonymous.body["id"].as_i64().unwrap(),
    );

    // Seed 003's orders of a product (twice: the cached answer too).
    for _ in 0..2 {
        let r = orders.get("/orders/product/1", SEED_CLIENT).await;
        let ids: Vec<i64> = r
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, vec![aid]);
        let r = orders.get("/orders/product/1", Who::Customer(5)).await;
        let ids: Vec<i64> = r
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, vec![cid]);
    }
    // Seed 004's list and get.
    let r = orders.get("/api/v1/orders/", SEED_CLIENT).await;
    let ids: Vec<i64> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![aid]);
    for id in [cid, customers_004.body["order_id"].as_i64().unwrap()] {
        let r = orders
            .get(&format!("/api/v1/orders/{id}"), SEED_CLIENT)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.body["detail"], "Order not found");
    }
    let r = orders.get("/api/v1/orders/", Who::Customer(5)).await;
    assert_eq!(r.body.as_array().unwrap().len(), 2);
    // With the seeds' routes closed, a caller without an account is turned away.
    let closed = Who::Anonymous { seed_compat: false };
    assert_eq!(
        orders.get("/api/v1/orders/", closed).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        orders.get("/orders/product/1", closed).await.status,
        StatusCode::UNAUTHORIZED
    );
    orders.stop().await;
}
