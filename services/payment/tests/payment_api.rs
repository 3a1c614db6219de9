//! The payment service against a real PostgreSQL: seed 004's authorize and seed 002's
//! routes as written, one payment per order even under concurrency, every illegal move
//! a 409, exact decimal amounts, and a clear 4xx for bad input on every endpoint.
//!
//! Every request is made by whoever really makes it, with that caller's token: the
//! order service charges and refunds orders ([`As::Order`]), an admin works the other
//! canonical routes ([`ADMIN`]), and the seeds' routes are called through the gateway
//! by someone without an account while they are open ([`SEED`]). Who may not do what
//! is `access.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{ADMIN, As, PaymentService, SEED};

/// Who really calls `method path`: the order service charges (and refunds, though an
/// admin may too), the seeds' routes are called through the gateway by someone
/// without an account, and the other canonical routes are an admin's.
fn caller_of(method: &str, path: &str) -> As {
    let path = path.split('?').next().unwrap_or_default();
    let seed = path == "/api/v1/payments/authorize" || path.starts_with("/payments");
    if seed {
        SEED
    } else if path == "/api/v1/payments/charge" || (method == "POST" && path.ends_with("/refund")) {
        As::Order
    } else {
        ADMIN
    }
}

fn id_of(payment: &Value) -> i64 {
    payment["payment_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no payment_id in {payment}"))
}

/// Charge `order_id` for `cents` USD through the canonical route, as the order
/// service does.
async fn charge(svc: &PaymentService, order_id: i64, cents: i64) -> (StatusCode, Value) {
    svc.post_as(
        "/api/v1/payments/charge",
        json!({"order_id": order_id, "amount": {"amount": cents, "currency": "USD"}}),
        As::Order,
    )
    .await
}

/// Open a pending payment through the canonical route, as an admin.
async fn open(svc: &PaymentService, order_id: i64, cents: i64) -> Value {
    let (status, p) = svc
        .post_as(
            "/api/v1/payments",
            json!({"order_id": order_id, "amount": {"amount": cents, "currency": "USD"}}),
            ADMIN,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    assert_eq!(p["status"], "pending");
    p
}

#[tokio::test]
async fn seed_004_authorize_as_written() {
    let svc = PaymentService::start().await;

    let (status, body) = svc
        .post_as(
            "/api/v1/payments/authorize",
            json!({"order_id": 1, "amount": 200.50, "currency": "USD"}),
            SEED,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["authorized"], true);
    let first = body["payment_id"].as_i64().unwrap();
    let (_, p) = svc
        .get_as(&format!("/api/v1/payments/{first}"), ADMIN)
        .await;
    assert_eq!(p["status"], "authorized");
    assert_eq!(p["amount"], json!({"amount": 20050, "currency": "USD"}));
    assert_eq!(p["order_id"], 1);
    assert_eq!(p["decline_reason"], Value::Null);

    let (status, body) = svc
        .post_as(
            "/api/v1/payments/authorize",
            json!({"order_id": 2, "amount": 1000, "currency": "USD"}),
            SEED,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["authorized"], false);
    let declined = body["payment_id"].as_i64().unwrap();
    let (_, p) = svc
        .get_as(&format!("/api/v1/payments/{declined}"), ADMIN)
        .await;
    assert_eq!(p["status"], "declined");
    assert_eq!(p["decline_reason"], "amount at or above the 1000.00 limit");

    let (status, body) = svc
        .post_as(
            "/api/v1/payments/authorize",
            json!({"order_id": 3, "amount": 999.99, "currency": "USD"}),
            SEED,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["authorized"], true);
    assert_ne!(body["payment_id"], first);

    // The limit is in major units of any currency, compared in its minor units.
    for (order_id, amount, currency, authorized) in [
        (4, json!(999), "JPY", true),
        (5, json!(1000), "JPY", false),
        (6, json!(999.999), "KWD", true),
        (7, json!("1000.000"), "KWD", false),
        (8, json!(1000.01), "EUR", false),
    ] {
        let (status, body) = svc
            .post_as(
                "/api/v1/payments/authorize",
                json!({"order_id": order_id, "amount": amount, "currency": currency}),
                SEED,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{amount} {currency}: {body}");
        assert_eq!(body["authorized"], authorized, "{amount} {currency}");
    }
    svc.stop().await;
}

#[tokio::test]
async fn seed_004_authorize_is_idempotent_per_order() {
    let svc = PaymentService::start().await;
    let request = json!({"order_id": 10, "amount": 200.50, "currency": "USD"});
    let (_, first) = svc
        .post_as("/api/v1/payments/authorize", request.clone(), SEED)
        .await;
    let (status, again) = svc
        .post_as("/api/v1/payments/authorize", request, SEED)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, first);
    // The same amount written differently is the same amount.
    let (status, again) = svc
        .post_as(
            "/api/v1/payments/authorize",
            json!({"order_id": 10, "amount": "200.500", "currency": "usd"}),
            SEED,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, first);

    for (amount, currency) in [(json!(300), "USD"), (json!(200.50), "EUR")] {
        let (status, body) = svc
            .post_as(
                "/api/v1/payments/authorize",
                json!({"order_id": 10, "amount": amount, "currency": currency}),
                SEED,
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"]["code"], "payment_exists");
        assert_eq!(body["error"]["details"]["payment_id"], first["payment_id"]);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("order 10 already has payment"),
            "{body}"
        );
    }
    let (_, list) = svc.get_as("/api/v1/payments?order_id=10", ADMIN).await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    // A declined order stays declined: asking again returns the same answer.
    let decline = json!({"order_id": 11, "amount": 5000, "currency": "USD"});
    let (_, d1) = svc
        .post_as("/api/v1/payments/authorize", decline.clone(), SEED)
        .await;
    let (_, d2) = svc
        .post_as("/api/v1/payments/authorize", decline, SEED)
        .await;
    assert_eq!((d1["authorized"].clone(), d1.clone()), (json!(false), d2));
    svc.stop().await;
}

#[tokio::test]
async fn charge_confirms_below_the_limit_and_declines_at_it() {
    let svc = PaymentService::start().await;

    let (status, p) = charge(&svc, 20, 20050).await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    assert_eq!(p["status"], "confirmed");
    assert_eq!(p["amount"], json!({"amount": 20050, "currency": "USD"}));
    assert_eq!(p["order_id"], 20);
    assert_eq!(p["decline_reason"], Value::Null);
    assert!(p["created_at"].is_string() && p["updated_at"].is_string());

    let (status, again) = charge(&svc, 20, 20050).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, p);

    let (status, body) = charge(&svc, 20, 20051).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "payment_exists");

    let (status, d) = charge(&svc, 21, 100_000).await;
    assert_eq!(status, StatusCode::CREATED, "{d}");
    assert_eq!(d["status"], "declined");
    assert_eq!(d["decline_reason"], "amount at or above the 1000.00 limit");
    let (status, again) = charge(&svc, 21, 100_000).await;
    assert_eq!((status, again), (StatusCode::OK, d));

    // Charging an order whose payment was opened earlier takes that payment through.
    let pending = open(&svc, 22, 999).await;
    let (status, charged) = charge(&svc, 22, 999).await;
    assert_eq!(status, StatusCode::OK, "{charged}");
    assert_eq!(charged["payment_id"], pending["payment_id"]);
    assert_eq!(charged["status"], "confirmed");

    // ...and one an admin authorized through seed 004 is captured. (A payment opened
    // through a seed route by someone without an account is no order's: `access.rs`.)
    let (_, a) = svc
        .post_as(
            "/api/v1/payments/authorize",
            json!({"order_id": 23, "amount": 12, "currency": "USD"}),
            ADMIN,
        )
        .await;
    let (status, charged) = charge(&svc, 23, 1200).await;
    assert_eq!(status, StatusCode::OK, "{charged}");
    assert_eq!(charged["payment_id"], a["payment_id"]);
    assert_eq!(charged["status"], "confirmed");
    svc.stop().await;
}

#[tokio::test]
async fn canonical_life_cycle_pending_authorized_confirmed_refunded() {
    let svc = PaymentService::start().await;
    let p = open(&svc, 30, 5000).await;
    let id = id_of(&p);

    let (status, again) = svc
        .post_as(
            "/api/v1/payments",
            json!({"order_id": 30, "amount": {"amount": 5000, "currency": "USD"}}),
            ADMIN,
        )
        .await;
    assert_eq!(
        (status, again["payment_id"].as_i64()),
        (StatusCode::OK, Some(id))
    );

    let (status, a) = svc
        .post_empty_as(&format!("/api/v1/payments/{id}/authorize"), ADMIN)
        .await;
    assert_eq!(
        (status, a["status"].as_str()),
        (StatusCode::OK, Some("authorized"))
    );
    let (status, c) = svc
        .post_empty_as(&format!("/api/v1/payments/{id}/confirm"), ADMIN)
        .await;
    assert_eq!(
        (status, c["status"].as_str()),
        (StatusCode::OK, Some("confirmed"))
    );
    let (status, r) = svc
        .post_empty_as(&format!("/api/v1/payments/{id}/refund"), ADMIN)
        .await;
    assert_eq!(
        (status, r["status"].as_str()),
        (StatusCode::OK, Some("refunded"))
    );
    assert_eq!(
        svc.get_as(&format!("/api/v1/payments/{id}"), ADMIN).await.1,
        r
    );

    // Confirming a pending payment authorizes it first...
    let p = open(&svc, 31, 99_999).await;
    let (status, c) = svc
        .post_empty_as(&format!("/api/v1/payments/{}/confirm", id_of(&p)), ADMIN)
        .await;
    assert_eq!(
        (status, c["status"].as_str()),
        (StatusCode::OK, Some("confirmed"))
    );
    // ...and it ends declined when the authorizer declines.
    let p = open(&svc, 32, 100_000).await;
    let (status, d) = svc
        .post_empty_as(&format!("/api/v1/payments/{}/confirm", id_of(&p)), ADMIN)
        .await;
    assert_eq!(
        (status, d["status"].as_str()),
        (StatusCode::OK, Some("declined"))
    );
    assert_eq!(d["decline_reason"], "amount at or above the 1000.00 limit");
    // Authorizing one directly can decline it too.
    let p = open(&svc, 33, 250_000).await;
    let (status, d) = svc
        .post_empty_as(&format!("/api/v1/payments/{}/authorize", id_of(&p)), ADMIN)
        .await;
    assert_eq!(
        (status, d["status"].as_str()),
        (StatusCode::OK, Some("declined"))
    );

    // Listing: by order, and paged.
    let (status, list) = svc.get_as("/api/v1/payments?order_id=31", ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["order_id"], 31);
    let (_, all) = svc.get_as("/api/v1/payments", ADMIN).await;
    assert_eq!(all.as_array().unwrap().len(), 4);
    let (_, page) = svc.get_as("/api/v1/payments?limit=2&offset=1", ADMIN).await;
    let ids: Vec<i64> = page.as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(ids, vec![id_of(&all[1]), id_of(&all[2])]);
    let (_, none) = svc.get_as("/api/v1/payments?order_id=999", ADMIN).await;
    assert_eq!(none, json!([]));
    svc.stop().await;
}

#[tokio::test]
async fn every_illegal_move_is_a_409_naming_the_status() {
    let svc = PaymentService::start().await;
    // One payment in each status.
    let pending = id_of(&open(&svc, 40, 100).await);
    let authorized = id_of(&open(&svc, 41, 100).await);
    svc.post_empty_as(&format!("/api/v1/payments/{authorized}/authorize"), ADMIN)
        .await;
    let declined = id_of(&charge(&svc, 42, 100_000).await.1);
    let confirmed = id_of(&charge(&svc, 43, 100).await.1);
    let refunded = id_of(&charge(&svc, 44, 100).await.1);
    svc.post_empty_as(&format!("/api/v1/payments/{refunded}/refund"), As::Order)
        .await;

    let illegal = [
        (pending, "pending", "refund", "refunded"),
        (authorized, "authorized", "authorize", "authorized"),
        (authorized, "authorized", "refund", "refunded"),
        (declined, "declined", "authorize", "authorized"),
        (declined, "declined", "confirm", "confirmed"),
        (declined, "declined", "refund", "refunded"),
        (confirmed, "confirmed", "authorize", "authorized"),
        (confirmed, "confirmed", "confirm", "confirmed"),
        (refunded, "refunded", "authorize", "authorized"),
        (refunded, "refunded", "confirm", "confirmed"),
        (refunded, "refunded", "refund", "refunded"),
    ];
    for (id, status_name, action, verb) in illegal {
        let (status, body) = svc
            .post_empty_as(&format!("/api/v1/payments/{id}/{action}"), ADMIN)
            .await;
        assert_eq!(
            status,
            StatusCode::CONFLICT,
            "{action} on {status_name}: {body}"
        );
        assert_eq!(body["error"]["code"], "invalid_transition");
        assert_eq!(
            body["error"]["message"],
            format!("payment {id} is {status_name} and cannot be {verb}")
        );
        assert_eq!(body["error"]["details"]["status"], status_name);
        // Nothing changed.
        let (_, p) = svc.get_as(&format!("/api/v1/payments/{id}"), ADMIN).await;
        assert_eq!(p["status"], status_name);
    }

    // Seed 002's PUTs refuse the same moves (declined cannot be confirmed, pending
    // cannot be refunded, refunded cannot be confirmed): on payments made through
    // seed 002 by someone without an account, and on the canonical ones for an admin.
    let seed_payment = |order_id: i64, amount: f64| {
        let svc = &svc;
        async move {
            let (status, row) = svc
                .post_as(
                    "/payments",
                    json!({"order_id": order_id, "amount": amount}),
                    SEED,
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{row}");
            row["id"].as_i64().unwrap()
        }
    };
    let seed_pending = seed_payment(45, 1.0).await;
    let seed_declined = seed_payment(46, 1500.0).await;
    svc.put_empty_as(&format!("/payments/{seed_declined}/confirm"), SEED)
        .await;
    let seed_refunded = seed_payment(47, 1.0).await;
    svc.put_empty_as(&format!("/payments/{seed_refunded}/confirm"), SEED)
        .await;
    svc.put_empty_as(&format!("/payments/{seed_refunded}/refund"), SEED)
        .await;
    for (who, pending, declined, refunded) in [
        (SEED, seed_pending, seed_declined, seed_refunded),
        (ADMIN, pending, declined, refunded),
    ] {
        for (id, status_name, action) in [
            (declined, "declined", "confirm"),
            (pending, "pending", "refund"),
            (refunded, "refunded", "confirm"),
        ] {
            let (status, body) = svc
                .put_empty_as(&format!("/payments/{id}/{action}"), who)
                .await;
            assert_eq!(
                status,
                StatusCode::CONFLICT,
                "{who:?} {action} {id}: {body}"
            );
            assert_eq!(body["error"]["code"], "invalid_transition");
            assert_eq!(body["error"]["details"]["status"], status_name);
            let (_, p) = svc.get_as(&format!("/api/v1/payments/{id}"), ADMIN).await;
            assert_eq!(p["status"], status_name);
        }
    }
    svc.stop().await;
}

#[tokio::test]
async fn refunds_only_after_confirm_and_only_by_admins_or_the_order_service() {
    let svc = PaymentService::start().await;
    let authorized = id_of(&open(&svc, 50, 700).await);
    svc.post_empty_as(&format!("/api/v1/payments/{authorized}/authorize"), ADMIN)
        .await;
    let (status, _) = svc
        .post_empty_as(&format!("/api/v1/payments/{authorized}/refund"), As::Order)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // The order service charges on behalf of the order's customer.
    let (status, p) = svc
        .post_as(
            "/api/v1/payments/charge",
            json!({"order_id": 51, "amount": {"amount": 700, "currency": "USD"}, "customer_id": 7}),
            As::Order,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    assert_eq!(p["customer_id"], 7);
    let confirmed = id_of(&p);
    // Customers may read their own payments...
    let (status, p) = svc
        .get_as(&format!("/api/v1/payments/{confirmed}"), As::Customer(7))
        .await;
    assert_eq!(
        (status, p["status"].as_str()),
        (StatusCode::OK, Some("confirmed"))
    );
    let (status, list) = svc
        .get_as("/api/v1/payments?order_id=51", As::Customer(7))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    // ...and no one else's: another customer's payment, and one made without a
    // customer, are not found, and listings leave them out.
    let (status, body) = svc
        .get_as(&format!("/api/v1/payments/{confirmed}"), As::Customer(8))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = svc
        .get_as(&format!("/api/v1/payments/{authorized}"), As::Customer(7))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, list) = svc.get_as("/api/v1/payments", As::Customer(8)).await;
    assert_eq!(list, json!([]));
    let (_, list) = svc.get_as("/api/v1/payments", As::Customer(7)).await;
    let ids: Vec<i64> = list.as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(ids, [confirmed]);
    // Admins see every payment.
    let (_, list) = svc.get_as("/api/v1/payments", As::Admin(1)).await;
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    // Customers may not refund, nor change anything else, through any route (the
    // seeds' routes included: a customer acts there with a customer's rights).
    let (status, body) = svc
        .post_empty_as(
            &format!("/api/v1/payments/{confirmed}/refund"),
            As::Customer(7),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    for action in ["refund", "confirm"] {
        let (status, body) = svc
            .put_empty_as(&format!("/payments/{confirmed}/{action}"), As::Customer(7))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{action}: {body}");
        assert_eq!(body["error"]["code"], "forbidden");
    }
    let body = json!({"order_id": 52, "amount": {"amount": 5, "currency": "USD"}});
    for path in ["/api/v1/payments", "/api/v1/payments/charge"] {
        let (status, _) = svc.post_as(path, body.clone(), As::Customer(7)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    let (status, _) = svc
        .post_as(
            "/api/v1/payments/authorize",
            json!({"order_id": 52, "amount": 5, "currency": "USD"}),
            As::Customer(7),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = svc
        .post_as(
            "/payments",
            json!({"order_id": 52, "amount": 5}),
            As::Customer(7),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for action in ["authorize", "confirm"] {
        let (status, _) = svc
            .post_empty_as(
                &format!("/api/v1/payments/{authorized}/{action}"),
                As::Customer(7),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{action}");
    }
    let (_, list) = svc.get_as("/api/v1/payments?order_id=52", ADMIN).await;
    assert_eq!(list, json!([]), "a refused request made nothing");
    assert_eq!(
        svc.get_as(&format!("/api/v1/payments/{confirmed}"), ADMIN)
            .await
            .1["status"],
        "confirmed"
    );

    // An admin may refund; so may the order service (when an order is cancelled).
    let (status, r) = svc
        .post_empty_as(
            &format!("/api/v1/payments/{confirmed}/refund"),
            As::Admin(1),
        )
        .await;
    assert_eq!(
        (status, r["status"].as_str()),
        (StatusCode::OK, Some("refunded"))
    );
    let other = id_of(&charge(&svc, 53, 700).await.1);
    let (status, r) = svc
        .post_empty_as(&format!("/api/v1/payments/{other}/refund"), As::Order)
        .await;
    assert_eq!(
        (status, r["status"].as_str()),
        (StatusCode::OK, Some("refunded"))
    );
    svc.stop().await;
}

#[tokio::test]
async fn ten_concurrent_charges_for_one_order_make_exactly_one_payment() {
    let svc = PaymentService::start().await;
    let attempts = (0..10).map(|_| charge(&svc, 60, 4200));
    let answers = futures::future::join_all(attempts).await;
    let created = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let found = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!((created, found), (1, 9), "{answers:?}");
    let id = id_of(&answers[0].1);
    assert!(
        answers
            .iter()
            .all(|(_, p)| id_of(p) == id && p["status"] == "confirmed")
    );
    let (_, list) = svc.get_as("/api/v1/payments?order_id=60", ADMIN).await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    // Concurrent seed 004 authorizations and seed 002 creations for one order too.
    let auths = (0..10).map(|_| {
        svc.post_as(
            "/api/v1/payments/authorize",
            json!({"order_id": 61, "amount": 10, "currency": "USD"}),
            SEED,
        )
    });
    let answers = futures::future::join_all(auths).await;
    assert!(answers.iter().all(|(s, _)| *s == StatusCode::OK));
    let first = &answers[0].1["payment_id"];
    assert!(answers.iter().all(|(_, b)| &b["payment_id"] == first));
    let creations =
        (0..10).map(|_| svc.post_as("/payments", json!({"order_id": 63, "amount": 10}), SEED));
    let answers = futures::future::join_all(creations).await;
    let created = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let found = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!((created, found), (1, 9), "{answers:?}");
    let first = &answers[0].1["id"];
    assert!(answers.iter().all(|(_, b)| &b["id"] == first));

    // Concurrent confirms of one pending payment: one captures it, the rest are told
    // it is confirmed already.
    let p = id_of(&open(&svc, 62, 300).await);
    let path = format!("/api/v1/payments/{p}/confirm");
    let confirms = (0..10).map(|_| svc.post_empty_as(&path, ADMIN));
    let statuses: Vec<StatusCode> = futures::future::join_all(confirms)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let conflict = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((ok, conflict), (1, 9), "{statuses:?}");

    let metrics = svc.metrics().await;
    assert!(
        metrics.contains(r#"payments_total{status="confirmed",service="payment"} 2"#),
        "{metrics}"
    );
    svc.stop().await;
}

#[tokio::test]
async fn seed_002_create_confirm_refund_shapes() {
    let svc = PaymentService::start().await;
    let (status, row) = svc
        .post_as("/payments", json!({"order_id": 70, "amount": 200.5}), SEED)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{row}");
    let id = row["id"].as_i64().unwrap();
    assert_eq!(row["order_id"], 70);
    assert_eq!(row["amount"], json!(200.5));
    assert_eq!(row["currency"], "USD");
    assert_eq!(row["status"], "pending");
    assert!(row["created_at"].is_string());
    let keys: Vec<&str> = row
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 6, "{keys:?}");

    let (status, again) = svc
        .post_as("/payments", json!({"order_id": 70, "amount": 200.50}), SEED)
        .await;
    assert_eq!((status, &again), (StatusCode::OK, &row));
    let (status, body) = svc
        .post_as("/payments", json!({"order_id": 70, "amount": 201}), SEED)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "payment_exists");

    // The canonical API sees the same payment, in minor units.
    let (_, p) = svc.get_as(&format!("/api/v1/payments/{id}"), ADMIN).await;
    assert_eq!(p["amount"], json!({"amount": 20050, "currency": "USD"}));

    let (status, confirmed) = svc
        .put_empty_as(&format!("/payments/{id}/confirm"), SEED)
        .await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    assert_eq!(confirmed["status"], "confirmed");
    assert_eq!(confirmed["id"], id);
    assert_eq!(confirmed["amount"], json!(200.5));
    // PUT is idempotent: confirming a confirmed payment returns it.
    let (status, again) = svc
        .put_empty_as(&format!("/payments/{id}/confirm"), SEED)
        .await;
    assert_eq!((status, again), (StatusCode::OK, confirmed));

    let (status, refunded) = svc
        .put_empty_as(&format!("/payments/{id}/refund"), SEED)
        .await;
    assert_eq!(status, StatusCode::OK, "{refunded}");
    assert_eq!(refunded["status"], "refunded");
    let (status, again) = svc
        .put_empty_as(&format!("/payments/{id}/refund"), SEED)
        .await;
    assert_eq!((status, again), (StatusCode::OK, refunded));

    // At or above the limit, confirming declines.
    let (_, big) = svc
        .post_as("/payments", json!({"order_id": 71, "amount": 1500}), SEED)
        .await;
    assert_eq!(big["amount"], json!(1500));
    let (status, declined) = svc
        .put_empty_as(&format!("/payments/{}/confirm", big["id"]), SEED)
        .await;
    assert_eq!(
        (status, declined["status"].as_str()),
        (StatusCode::OK, Some("declined"))
    );

    // An explicit currency is allowed; amounts keep that currency's places.
    let (status, jpy) = svc
        .post_as(
            "/payments",
            json!({"order_id": 72, "amount": 500, "currency": "JPY"}),
            SEED,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{jpy}");
    assert_eq!(
        (jpy["amount"].clone(), jpy["currency"].clone()),
        (json!(500), json!("JPY"))
    );

    let (status, body) = svc.put_empty_as("/payments/999999/confirm", SEED).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["message"], "payment 999999 not found");
    let (status, _) = svc.put_empty_as("/payments/999999/refund", SEED).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    svc.stop().await;
}

#[tokio::test]
async fn seed_002_default_currency_is_configurable() {
    let svc = PaymentService::start_with(|c| c.default_currency = "EUR".parse().unwrap()).await;
    let (status, row) = svc
        .post_as("/payments", json!({"order_id": 1, "amount": 12.34}), SEED)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{row}");
    assert_eq!(row["currency"], "EUR");
    let (_, p) = svc
        .get_as(&format!("/api/v1/payments/{}", row["id"]), ADMIN)
        .await;
    assert_eq!(p["amount"], json!({"amount": 1234, "currency": "EUR"}));
    svc.stop().await;
}

#[tokio::test]
async fn decline_limit_is_configurable() {
    let svc = PaymentService::start_with(|c| c.decline_at = "50".parse().unwrap()).await;
    let (_, below) = svc
        .post_as(
            "/api/v1/payments/authorize",
            json!({"order_id": 1, "amount": 49.99, "currency": "USD"}),
            SEED,
        )
        .await;
    assert_eq!(below["authorized"], true);
    let (_, at) = charge(&svc, 2, 5000).await;
    assert_eq!(at["status"], "declined");
    assert_eq!(at["decline_reason"], "amount at or above the 50.00 limit");
    svc.stop().await;
}

#[tokio::test]
async fn amounts_are_exact_decimals_never_floats() {
    let svc = PaymentService::start().await;
    let too_precise = [
        (
            "/api/v1/payments/authorize",
            json!({"order_id": 1, "amount": 1.234, "currency": "USD"}),
        ),
        (
            "/api/v1/payments/authorize",
            json!({"order_id": 1, "amount": 1.5, "currency": "JPY"}),
        ),
        ("/payments", json!({"order_id": 1, "amount": 1.234})),
    ];
    for (path, body) in too_precise {
        let (status, answer) = svc
            .post_as(path, body.clone(), caller_of("POST", path))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {answer}");
        assert_eq!(answer["error"]["code"], "validation_failed");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("more decimal places than"),
            "{answer}"
        );
    }

    let not_numbers = [
        (
            "/api/v1/payments/authorize",
            json!({"order_id": 1, "amount": "abc", "currency": "USD"}),
        ),
        ("/payments", json!({"order_id": 1, "amount": "abc"})),
        ("/payments", json!({"order_id": 1, "amount": true})),
        ("/payments", json!({"order_id": 1, "amount": null})),
        ("/payments", json!({"order_id": 1, "amount": [1]})),
        ("/payments", json!({"order_id": 1, "amount": "1e3"})),
    ];
    for (path, body) in not_numbers {
        let (status, answer) = svc
            .post_as(path, body.clone(), caller_of("POST", path))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("amount must be a decimal number"),
            "{answer}"
        );
    }
    let (status, answer) = svc
        .send_raw_as(
            "POST",
            "/payments",
            r#"{"order_id": 1, "amount": 1e3}"#,
            SEED,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");

    // The canonical Money is integer minor units: a fraction is refused. (A whole
    // number written with a zero fraction, `1000.0`, is the integer 1000, as JSON
    // Schema's `integer` reads it: sales_platform::error::normalise_json.)
    for path in ["/api/v1/payments/charge", "/api/v1/payments"] {
        for amount in [json!(1.5), json!("150"), json!(0.001)] {
            let (status, answer) = svc
                .post_as(
                    path,
                    json!({"order_id": 1, "amount": {"amount": amount, "currency": "USD"}}),
                    caller_of("POST", path),
                )
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {amount}: {answer}");
            assert_eq!(answer["error"]["code"], "validation_failed");
        }
    }

    // Zero and negative amounts are not payments.
    for (path, body) in [
        (
            "/api/v1/payments/charge",
            json!({"order_id": 1, "amount": {"amount": 0, "currency": "USD"}}),
        ),
        (
            "/api/v1/payments",
            json!({"order_id": 1, "amount": {"amount": -5, "currency": "USD"}}),
        ),
        (
            "/api/v1/payments/authorize",
            json!({"order_id": 1, "amount": -200.5, "currency": "USD"}),
        ),
        ("/payments", json!({"order_id": 1, "amount": 0})),
    ] {
        let (status, answer) = svc
            .post_as(path, body.clone(), caller_of("POST", path))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("amount must be greater than zero"),
            "{answer}"
        );
    }
    let (_, list) = svc.get_as("/api/v1/payments", ADMIN).await;
    assert_eq!(list, json!([]), "no refused request made a payment");
    svc.stop().await;
}

#[tokio::test]
async fn bad_input_on_every_endpoint_gets_a_clear_4xx() {
    let svc = PaymentService::start().await;
    let id = id_of(&open(&svc, 1, 100).await);
    let money = json!({"amount": 100, "currency": "USD"});

    // Missing fields, on every endpoint with a body.
    let missing = [
        (
            "/api/v1/payments/charge",
            json!({"amount": money}),
            "order_id",
        ),
        ("/api/v1/payments/charge", json!({"order_id": 2}), "amount"),
        ("/api/v1/payments", json!({"amount": money}), "order_id"),
        ("/api/v1/payments", json!({"order_id": 2}), "amount"),
        (
            "/api/v1/payments",
            json!({"order_id": 2, "amount": {"amount": 100}}),
            "currency",
        ),
        (
            "/api/v1/payments/authorize",
            json!({"amount": 1, "currency": "USD"}),
            "order_id",
        ),
        (
            "/api/v1/payments/authorize",
            json!({"order_id": 2, "currency": "USD"}),
            "amount",
        ),
        (
            "/api/v1/payments/authorize",
            json!({"order_id": 2, "amount": 1}),
            "currency",
        ),
        ("/payments", json!({"amount": 1}), "order_id"),
        ("/payments", json!({"order_id": 2}), "amount"),
    ];
    for (path, body, field) in missing {
        let (status, answer) = svc
            .post_as(path, body.clone(), caller_of("POST", path))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {answer}");
        assert_eq!(answer["error"]["code"], "validation_failed");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("missing field `{field}`")),
            "{path}: {message}"
        );
    }

    // Wrong types, unknown fields, bad currencies, bad order ids.
    let wrong = [
        (
            "/api/v1/payments/charge",
            json!({"order_id": "x", "amount": money}),
            "order_id",
        ),
        (
            "/api/v1/payments",
            json!({"order_id": 2, "amount": money, "extra": 1}),
            "unknown field `extra`",
        ),
        (
            "/payments",
            json!({"order_id": 2, "amount": 1, "note": "x"}),
            "unknown field `note`",
        ),
        (
            "/api/v1/payments/authorize",
            json!({"order_id": 2, "amount": 1, "currency": "US"}),
            "ISO 4217",
        ),
        (
            "/api/v1/payments/charge",
            json!({"order_id": 2, "amount": {"amount": 1, "currency": "U$D"}}),
            "ISO 4217",
        ),
        (
            "/api/v1/payments/charge",
            json!({"order_id": 0, "amount": money}),
            "order_id must be a positive integer",
        ),
        (
            "/api/v1/payments/authorize",
            json!({"order_id": -1, "amount": 1, "currency": "USD"}),
            "order_id must be a positive integer",
        ),
        (
            "/payments",
            json!({"order_id": 0, "amount": 1}),
            "order_id must be a positive integer",
        ),
    ];
    for (path, body, says) in wrong {
        let (status, answer) = svc
            .post_as(path, body.clone(), caller_of("POST", path))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{path}: {message}");
    }

    // Malformed JSON, on every endpoint with a body.
    for (method, path) in [
        ("POST", "/api/v1/payments/charge"),
        ("POST", "/api/v1/payments"),
        ("POST", "/api/v1/payments/authorize"),
        ("POST", "/payments"),
    ] {
        let (status, answer) = svc
            .send_raw_as(method, path, r#"{"order_id": 1,"#, caller_of(method, path))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "malformed_json", "{path}");
        // Oversized bodies are refused before they are read.
        let huge = format!(r#"{{"order_id": 1, "pad": "{}"}}"#, "x".repeat(70 * 1024));
        let (status, answer) = svc
            .send_raw_as(method, path, &huge, caller_of(method, path))
            .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "payload_too_large");
        // Without a JSON content type.
        let (status, answer) = svc
            .send_raw_plain_as(path, r#"{"order_id": 1}"#, caller_of("POST", path))
            .await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{path}: {answer}"
        );
    }

    // Non-numeric and unknown path ids, on every endpoint with one.
    let with_ids = [
        ("GET", "/api/v1/payments/{}"),
        ("POST", "/api/v1/payments/{}/authorize"),
        ("POST", "/api/v1/payments/{}/confirm"),
        ("POST", "/api/v1/payments/{}/refund"),
        ("PUT", "/payments/{}/confirm"),
        ("PUT", "/payments/{}/refund"),
    ];
    for (method, template) in with_ids {
        let path = template.replace("{}", "abc");
        let (status, answer) = svc
            .send_raw_as(method, &path, "", caller_of(method, &path))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_path");
        let path = template.replace("{}", "424242");
        let (status, answer) = svc
            .send_raw_as(method, &path, "", caller_of(method, &path))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["message"], "payment 424242 not found");
    }
    let (status, answer) = svc
        .get_as("/api/v1/payments/99999999999999999999", ADMIN)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");

    // Bad query strings.
    for query in [
        "order_id=abc",
        "limit=0",
        "limit=501",
        "offset=-1",
        "limit=x",
    ] {
        let (status, answer) = svc
            .get_as(&format!("/api/v1/payments?{query}"), ADMIN)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {answer}");
        assert!(answer["error"]["message"].is_string());
    }

    // A credential that is not a bearer token, or an empty one.
    for authorization in ["Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer  ", "admin"] {
        let (status, answer) = svc
            .send_with_headers(
                "GET",
                &format!("/api/v1/payments/{id}"),
                &[("authorization", authorization)],
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{authorization}: {answer}"
        );
        assert_eq!(answer["error"]["code"], "invalid_token", "{authorization}");
    }

    // Wrong method and unknown route: JSON errors too.
    let (status, answer) = svc
        .send_raw_as("DELETE", &format!("/api/v1/payments/{id}"), "", ADMIN)
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{answer}");
    let (status, answer) = svc.get_as("/api/v1/payment", ADMIN).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(answer["error"]["code"], "not_found");

    // None of it changed the payment.
    assert_eq!(
        svc.get_as(&format!("/api/v1/payments/{id}"), ADMIN).await.1["status"],
        "pending"
    );
    svc.stop().await;
}

#[tokio::test]
async fn openapi_lists_every_route_and_health_answers() {
    let svc = PaymentService::start().await;
    let (status, doc) = svc.get_as("/openapi.json", As::Nobody).await;
    assert_eq!(status, StatusCode::OK);
    let expected = [
        ("/api/v1/payments/charge", "post"),
        ("/api/v1/payments", "post"),
        ("/api/v1/payments", "get"),
        ("/api/v1/payments/{id}", "get"),
        ("/api/v1/payments/orders/{order_id}", "get"),
        ("/api/v1/payments/{id}/authorize", "post"),
        ("/api/v1/payments/{id}/confirm", "post"),
        ("/api/v1/payments/{id}/refund", "post"),
        ("/api/v1/payments/authorize", "post"),
        ("/payments", "post"),
        ("/payments/{id}/confirm", "put"),
        ("/payments/{id}/refund", "put"),
        ("/health", "get"),
        ("/ready", "get"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in expected {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing from /openapi.json"
        );
    }
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        documented,
        expected.len(),
        "{:?}",
        paths.keys().collect::<Vec<_>>()
    );
    for schema in [
        "Payment",
        "ChargeOrder",
        "Money",
        "ErrorResponse",
        "Seed004Authorize",
        "Seed002Payment",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "{schema}"
        );
    }

    let (status, health) = svc.get_as("/health", As::Nobody).await;
    assert_eq!((status, health), (StatusCode::OK, json!({"status": "ok"})));
    let (status, _) = svc.get_as("/docs/", As::Nobody).await;
    assert_eq!(status, StatusCode::OK);
    svc.stop().await;
}

#[tokio::test]
async fn metrics_count_statuses_and_amounts() {
    let svc = PaymentService::start().await;
    let confirmed = id_of(&charge(&svc, 1, 20050).await.1);
    charge(&svc, 2, 1000).await;
    charge(&svc, 3, 100_000).await;
    svc.post_empty_as(&format!("/api/v1/payments/{confirmed}/refund"), As::Order)
        .await;
    open(&svc, 4, 10).await;
    // A repeat enters no status.
    charge(&svc, 2, 1000).await;

    let m = svc.metrics().await;
    for line in [
        r#"payments_total{status="pending",service="payment"} 4"#,
        r#"payments_total{status="authorized",service="payment"} 2"#,
        r#"payments_total{status="declined",service="payment"} 1"#,
        r#"payments_total{status="confirmed",service="payment"} 2"#,
        r#"payments_total{status="refunded",service="payment"} 1"#,
        r#"payment_amount_minor_units_total{currency="USD",status="confirmed",service="payment"} 21050"#,
        r#"payment_amount_minor_units_total{currency="USD",status="refunded",service="payment"} 20050"#,
    ] {
        assert!(m.contains(line), "missing {line} in\n{m}");
    }
    svc.stop().await;
}
