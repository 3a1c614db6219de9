//! The payment service attacked directly, as a pod in the namespace could: it trusts
//! no header and no network position, only a token it can verify, and then only for
//! what the caller may do (`src/http/access.rs`). And the seeds' open routes: a caller
//! without an account never reads, changes or blocks a registered customer's payment.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::WWW_AUTHENTICATE;
use sales_platform::identity::claims::{OnBehalfOf, TokenClaims};
use sales_platform::identity::{now_seconds, service_audience};
use serde_json::{Value, json};
use support::{ADMIN, As, ORDER_SCOPES, PaymentService, SEED, TestIdentity, Who};

/// `{"alg":"none","typ":"JWT"}`, base64url: an unsigned JWT's header.
const ALG_NONE_HEADER: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";

/// Every operation of the API, with a body it would accept, on the payment `id`.
fn api_routes(id: i64) -> Vec<(&'static str, String, Option<Value>)> {
    let money = json!({"amount": 100, "currency": "USD"});
    vec![
        (
            "POST",
            "/api/v1/payments/charge".into(),
            Some(json!({"order_id": 900, "amount": money, "customer_id": 7})),
        ),
        (
            "POST",
            "/api/v1/payments".into(),
            Some(json!({"order_id": 901, "amount": money})),
        ),
        ("GET", "/api/v1/payments".into(), None),
        ("GET", format!("/api/v1/payments/{id}"), None),
        ("POST", format!("/api/v1/payments/{id}/authorize"), None),
        ("POST", format!("/api/v1/payments/{id}/confirm"), None),
        ("POST", format!("/api/v1/payments/{id}/refund"), None),
        (
            "POST",
            "/api/v1/payments/authorize".into(),
            Some(json!({"order_id": 902, "amount": 1, "currency": "USD"})),
        ),
        (
            "POST",
            "/payments".into(),
            Some(json!({"order_id": 903, "amount": 1})),
        ),
        ("PUT", format!("/payments/{id}/confirm"), None),
        ("PUT", format!("/payments/{id}/refund"), None),
    ]
}

/// The seeds' routes among them.
fn is_seed_route(path: &str) -> bool {
    path == "/api/v1/payments/authorize" || path.starts_with("/payments")
}

fn id_of(payment: &Value) -> i64 {
    payment["payment_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no payment_id in {payment}"))
}

/// A pending payment an admin opened for `order_id`: its id.
async fn pending(svc: &PaymentService, order_id: i64) -> i64 {
    let (status, p) = svc
        .post_as(
            "/api/v1/payments",
            json!({"order_id": order_id, "amount": {"amount": 100, "currency": "USD"}}),
            ADMIN,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    id_of(&p)
}

/// The order service charges `order_id` for `cents` USD, for `customer_id`.
async fn charge_for(
    svc: &PaymentService,
    order_id: i64,
    cents: i64,
    customer_id: Option<i64>,
) -> (StatusCode, Value) {
    svc.post_as(
        "/api/v1/payments/charge",
        json!({
            "order_id": order_id,
            "amount": {"amount": cents, "currency": "USD"},
            "customer_id": customer_id,
        }),
        As::Order,
    )
    .await
}

/// Nothing changed: the admin sees exactly the payment `id`, still pending.
async fn only_the_pending_payment(svc: &PaymentService, id: i64) {
    let (status, list) = svc.get_as("/api/v1/payments", ADMIN).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let ids: Vec<i64> = list.as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(ids, [id], "a refused request made a payment: {list}");
    assert_eq!(list[0]["status"], "pending", "{list}");
}

/// Claims the gateway would sign for an admin's request to the payment service.
fn admin_claims() -> TokenClaims {
    TokenClaims::gateway(
        service_audience("payment"),
        OnBehalfOf::Admin(1),
        true,
        None,
        Duration::from_secs(600),
    )
}

/// The three parts of a JWT.
fn parts(token: &str) -> [&str; 3] {
    let p: Vec<&str> = token.split('.').collect();
    assert_eq!(p.len(), 3, "{token}");
    [p[0], p[1], p[2]]
}

#[tokio::test]
async fn without_a_credential_every_api_route_is_401() {
    let svc = PaymentService::start().await;
    let id = pending(&svc, 1).await;

    for (method, path, body) in api_routes(id) {
        let r = svc
            .send_with_token(method, &path, body.as_ref(), None)
            .await;
        let status = r.status();
        let challenge = r.headers().get(WWW_AUTHENTICATE).cloned();
        let answer: Value = r.json().await.unwrap();
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}: {answer}"
        );
        assert_eq!(
            answer["error"]["code"], "unauthenticated",
            "{method} {path}"
        );
        assert_eq!(
            challenge.as_ref().and_then(|v| v.to_str().ok()),
            Some("Bearer"),
            "{method} {path}"
        );

        // The headers the gateway used to set mean nothing any more.
        let (status, answer) = svc
            .send_with_headers(
                method,
                &path,
                &[("x-customer-id", "1"), ("x-customer-role", "admin")],
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}: {answer}"
        );
    }
    only_the_pending_payment(&svc, id).await;

    // The probes and the documentation stay open.
    for path in ["/health", "/ready", "/openapi.json", "/docs/"] {
        let r = svc.send_with_token("GET", path, None, None).await.status();
        assert_eq!(r, StatusCode::OK, "{path}");
    }
    let metrics = svc.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("http_auth_failures_total") && l.contains("missing_token")),
        "{metrics}"
    );
    svc.stop().await;
}

#[tokio::test]
async fn tokens_that_do_not_verify_are_401_on_every_api_route() {
    let svc = PaymentService::start().await;
    let id = pending(&svc, 1).await;
    let minter = svc.identity.minter();
    // Another pair of issuers, with keys the service has never seen.
    let stranger = TestIdentity::start().await;

    let admin = svc.token(ADMIN).unwrap();
    let [admin_header, admin_payload, _] = parts(&admin);
    let customer = svc.token(As::Customer(7)).unwrap();
    let [_, _, customer_signature] = parts(&customer);

    let mut expired = admin_claims();
    expired.iat = now_seconds() - 3600;
    expired.nbf = expired.iat;
    expired.exp = now_seconds() - 600;
    let mut early = admin_claims();
    early.nbf = now_seconds() + 600;
    early.exp = now_seconds() + 1200;
    let mut unknown_issuer = admin_claims();
    unknown_issuer.iss = "sales-system/somebody".into();
    let order_service = TokenClaims::service(
        "order",
        ORDER_SCOPES,
        vec![service_audience("payment")],
        Duration::from_secs(600),
    );

    let refused: Vec<(&str, String)> = vec![
        (
            "an admin's token for another service",
            svc.identity.token("order", Who::Admin(1)).unwrap(),
        ),
        (
            "the order service's token for another service",
            svc.identity
                .token("inventory", Who::Service("order", ORDER_SCOPES))
                .unwrap(),
        ),
        ("an expired token", minter.sign_as_gateway(&expired)),
        ("a token not valid yet", minter.sign_as_gateway(&early)),
        (
            "a token of an unknown issuer",
            minter.sign_as_gateway(&unknown_issuer),
        ),
        (
            "a gateway token signed by an unknown key",
            stranger.token("payment", Who::Admin(1)).unwrap(),
        ),
        (
            "a service token signed by an unknown key",
            stranger
                .token("payment", Who::Service("order", ORDER_SCOPES))
                .unwrap(),
        ),
        (
            "a service token signed with the gateway's key",
            minter.sign_as_gateway(&order_service),
        ),
        (
            "a gateway token signed with the identity provider's key",
            minter.sign_as_provider(&admin_claims()),
        ),
        ("alg: none", format!("{ALG_NONE_HEADER}.{admin_payload}.")),
        (
            "an admin's claims with a customer's signature",
            format!("{admin_header}.{admin_payload}.{customer_signature}"),
        ),
        (
            "an admin's own access token (for the gateway)",
            minter.access_token(1, true),
        ),
        (
            "a customer's access token (for the gateway)",
            minter.access_token(7, false),
        ),
        ("not a JWT", "not-a-token".into()),
    ];

    for (method, path, body) in api_routes(id) {
        for (what, token) in &refused {
            let r = svc
                .send_with_token(method, &path, body.as_ref(), Some(token))
                .await;
            let status = r.status();
            let challenge = r.headers().get(WWW_AUTHENTICATE).cloned();
            let answer: Value = r.json().await.unwrap();
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{what}, {method} {path}: {answer}"
            );
            assert_eq!(answer["error"]["code"], "invalid_token", "{what}");
            assert_eq!(
                challenge.as_ref().and_then(|v| v.to_str().ok()),
                Some(r#"Bearer error="invalid_token""#),
                "{what}"
            );
        }
    }
    only_the_pending_payment(&svc, id).await;

    // The same admin, properly signed, is let through: the refusals were the token's.
    let (status, _) = svc.get_as(&format!("/api/v1/payments/{id}"), ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = svc.metrics().await;
    for reason in [
        "wrong_audience",
        "expired",
        "not_yet_valid",
        "unknown_issuer",
        "unknown_key",
        "bad_signature",
        "malformed",
    ] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("http_auth_failures_total") && l.contains(reason)),
            "{reason}: {metrics}"
        );
    }
    svc.stop().await;
}

#[tokio::test]
async fn customers_may_only_read() {
    let svc = PaymentService::start().await;
    let id = pending(&svc, 1).await;
    // The customer's own payment: still not theirs to change.
    let (_, own) = charge_for(&svc, 2, 700, Some(7)).await;
    let own = id_of(&own);

    for (method, path, body) in api_routes(id)
        .into_iter()
        .chain(api_routes(own))
        .filter(|(method, _, _)| *method != "GET")
    {
        let token = svc.token(As::Customer(7));
        let r = svc
            .send_with_token(method, &path, body.as_ref(), token.as_deref())
            .await;
        let status = r.status();
        let answer: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["code"], "forbidden", "{method} {path}");
    }
    // Claiming to be an admin in the old headers changes nothing.
    let token = svc.token(As::Customer(7)).unwrap();
    let (status, _) = svc
        .send_with_headers(
            "POST",
            &format!("/api/v1/payments/{id}/confirm"),
            &[
                ("authorization", &format!("Bearer {token}")),
                ("x-customer-id", "1"),
                ("x-customer-role", "admin"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, p) = svc
        .get_as(&format!("/api/v1/payments/{own}"), As::Customer(7))
        .await;
    assert_eq!(
        (status, p["status"].as_str()),
        (StatusCode::OK, Some("confirmed"))
    );
    let (_, list) = svc.get_as("/api/v1/payments", ADMIN).await;
    let ids: Vec<i64> = list.as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(ids, [id, own], "a refused request made a payment: {list}");
    assert_eq!(list[0]["status"], "pending");
    svc.stop().await;
}

#[tokio::test]
async fn customers_see_only_their_own_payments() {
    let svc = PaymentService::start().await;
    let (_, a) = charge_for(&svc, 1, 700, Some(7)).await;
    let (_, b) = charge_for(&svc, 2, 800, Some(8)).await;
    let (a, b) = (id_of(&a), id_of(&b));
    let ownerless = id_of(&charge_for(&svc, 3, 900, None).await.1);

    // Customer B reading A's payment: not found, as if it did not exist.
    for other in [a, ownerless, 424_242] {
        let (status, body) = svc
            .get_as(&format!("/api/v1/payments/{other}"), As::Customer(8))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{other}: {body}");
        assert_eq!(
            body["error"]["message"],
            format!("payment {other} not found")
        );
    }
    for query in ["", "?order_id=1", "?order_id=3"] {
        let (status, list) = svc
            .get_as(&format!("/api/v1/payments{query}"), As::Customer(8))
            .await;
        assert_eq!(status, StatusCode::OK);
        let ids: Vec<i64> = list.as_array().unwrap().iter().map(id_of).collect();
        let expected = if query.is_empty() { vec![b] } else { vec![] };
        assert_eq!(ids, expected, "{query}");
    }
    let (status, _) = svc
        .get_as(&format!("/api/v1/payments/{b}"), As::Customer(8))
        .await;
    assert_eq!(status, StatusCode::OK);
    svc.stop().await;
}

#[tokio::test]
async fn the_order_service_may_only_charge_and_refund() {
    let svc = PaymentService::start().await;
    let id = pending(&svc, 1).await;
    let (status, charged) = charge_for(&svc, 2, 700, Some(7)).await;
    assert_eq!(status, StatusCode::CREATED, "{charged}");
    let charged = id_of(&charged);

    // Its scope covers nothing else: not opening, authorizing or confirming payments,
    // not reading them, not the seeds' routes.
    for (method, path, body) in api_routes(id) {
        let covered = path == "/api/v1/payments/charge"
            || (path.starts_with("/api/v1/payments/") && path.ends_with("/refund"));
        if covered {
            continue;
        }
        let token = svc.token(As::Order);
        let r = svc
            .send_with_token(method, &path, body.as_ref(), token.as_deref())
            .await;
        let status = r.status();
        let answer: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["code"], "forbidden", "{method} {path}");
    }

    // A service without the scope may not charge or refund.
    for who in [
        Who::Service("order", &["stock:reserve"]),
        Who::Service("shipping", &[]),
    ] {
        let token = svc.identity.token("payment", who);
        for (path, body) in [
            (
                "/api/v1/payments/charge".to_owned(),
                Some(json!({"order_id": 3, "amount": {"amount": 100, "currency": "USD"}})),
            ),
            (format!("/api/v1/payments/{charged}/refund"), None),
        ] {
            let r = svc
                .send_with_token("POST", &path, body.as_ref(), token.as_deref())
                .await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{who:?} {path}");
        }
    }

    // What it may do, it does.
    let (status, r) = svc
        .post_empty_as(&format!("/api/v1/payments/{charged}/refund"), As::Order)
        .await;
    assert_eq!(
        (status, r["status"].as_str()),
        (StatusCode::OK, Some("refunded"))
    );
    let (_, list) = svc.get_as("/api/v1/payments", ADMIN).await;
    let statuses: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["pending", "refunded"], "{list}");
    svc.stop().await;
}

#[tokio::test]
async fn anonymous_callers_reach_only_the_seed_routes_and_only_while_they_are_open() {
    let svc = PaymentService::start().await;
    let id = pending(&svc, 1).await;
    for (method, path, body) in api_routes(id) {
        let seed = is_seed_route(&path);
        for seed_compat in [false, true] {
            if seed && seed_compat {
                continue;
            }
            let token = svc.token(As::Anonymous { seed_compat });
            let r = svc
                .send_with_token(method, &path, body.as_ref(), token.as_deref())
                .await;
            let status = r.status();
            let answer: Value = r.json().await.unwrap();
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "seed_compat {seed_compat}, {method} {path}: {answer}"
            );
            assert_eq!(answer["error"]["code"], "unauthenticated");
        }
    }
    only_the_pending_payment(&svc, id).await;
    svc.stop().await;
}

#[tokio::test]
async fn anonymous_seed_callers_cannot_read_confirm_or_refund_a_customers_payment() {
    let svc = PaymentService::start().await;
    // The order service charged order 10 for customer 7.
    let (status, p) = charge_for(&svc, 10, 700, Some(7)).await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    let customers = id_of(&p);

    // Seed 002's PUTs: not found, as if it did not exist (not even "confirmed already").
    for action in ["confirm", "refund"] {
        let (status, body) = svc
            .put_empty_as(&format!("/payments/{customers}/{action}"), SEED)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{action}: {body}");
        assert_eq!(
            body["error"]["message"],
            format!("payment {customers} not found")
        );
    }
    // Opening a payment for the same order, for the same amount, makes the caller's
    // own: it does not answer with the customer's.
    let (status, row) = svc
        .post_as("/payments", json!({"order_id": 10, "amount": 7}), SEED)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{row}");
    assert_ne!(row["id"], customers, "{row}");
    assert_eq!(row["status"], "pending");
    let (status, body) = svc
        .post_as(
            "/api/v1/payments/authorize",
            json!({"order_id": 10, "amount": 7, "currency": "USD"}),
            SEED,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["payment_id"], row["id"], "the caller's own: {body}");

    // The customer's payment is as it was, and still theirs.
    let (status, p) = svc
        .get_as(&format!("/api/v1/payments/{customers}"), As::Customer(7))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (p["status"].as_str(), p["customer_id"].as_i64()),
        (Some("confirmed"), Some(7))
    );

    // Nor does an anonymous caller reach the payment of an order placed without an
    // account: that is the order service's to refund, with the order.
    let (_, ownerless) = charge_for(&svc, 11, 700, None).await;
    let ownerless = id_of(&ownerless);
    let (status, _) = svc
        .put_empty_as(&format!("/payments/{ownerless}/refund"), SEED)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, p) = svc
        .get_as(&format!("/api/v1/payments/{ownerless}"), ADMIN)
        .await;
    assert_eq!(p["status"], "confirmed");

    // An admin, on the seeds' routes too, acts on any payment.
    let (status, r) = svc
        .put_empty_as(&format!("/payments/{ownerless}/refund"), ADMIN)
        .await;
    assert_eq!(
        (status, r["status"].as_str()),
        (StatusCode::OK, Some("refunded"))
    );
    svc.stop().await;
}

#[tokio::test]
async fn a_seed_payment_never_blocks_or_takes_a_customers_charge() {
    let svc = PaymentService::start().await;
    let seed_authorize = |order_id: i64, amount: Value| {
        let svc = &svc;
        async move {
            let (status, body) = svc
                .post_as(
                    "/api/v1/payments/authorize",
                    json!({"order_id": order_id, "amount": amount, "currency": "USD"}),
                    SEED,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body
        }
    };
    let seed_open = |order_id: i64, amount: Value| {
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

    // Seed 004 authorized order 20 for another amount, and order 21 for the same one.
    let other_amount = seed_authorize(20, json!(12)).await;
    let same_amount = seed_authorize(21, json!(15)).await;
    // Seed 002 opened order 22 (and had it declined) and order 23 (left pending).
    let declined = seed_open(22, json!(5000)).await;
    svc.put_empty_as(&format!("/payments/{declined}/confirm"), SEED)
        .await;
    let left_pending = seed_open(23, json!(10)).await;

    // The customer's charges all go through, each with its own payment.
    let mut charged = Vec::new();
    for (order_id, cents, seed_payment) in [
        (20, 2000, other_amount["payment_id"].as_i64().unwrap()),
        (21, 1500, same_amount["payment_id"].as_i64().unwrap()),
        (22, 1000, declined),
        (23, 1000, left_pending),
    ] {
        let (status, p) = charge_for(&svc, order_id, cents, Some(7)).await;
        assert_eq!(status, StatusCode::CREATED, "order {order_id}: {p}");
        assert_eq!(p["status"], "confirmed", "order {order_id}: {p}");
        assert_eq!(p["customer_id"], 7, "order {order_id}: {p}");
        assert_ne!(id_of(&p), seed_payment, "order {order_id}");
        charged.push(id_of(&p));
    }
    let (_, list) = svc.get_as("/api/v1/payments", As::Customer(7)).await;
    let ids: Vec<i64> = list.as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(ids, charged, "{list}");

    // The seed payments are as they were, and the seed routes still find them.
    assert_eq!(seed_authorize(20, json!(12)).await, other_amount);
    assert_eq!(seed_authorize(21, json!("15.00")).await, same_amount);
    let (_, p) = svc
        .get_as(&format!("/api/v1/payments/{left_pending}"), ADMIN)
        .await;
    assert_eq!(
        (p["status"].as_str(), p["customer_id"].as_i64()),
        (Some("pending"), None)
    );

    // The other way round: once the customer's charge is made, a seed call for the
    // same order makes its own payment.
    let (_, p) = charge_for(&svc, 24, 1000, Some(7)).await;
    let body = seed_authorize(24, json!(10)).await;
    assert_eq!(body["authorized"], true);
    assert_ne!(body["payment_id"], p["payment_id"]);
    let row = seed_open(25, json!(10)).await;
    let (status, p) = charge_for(&svc, 25, 1000, Some(7)).await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    assert_ne!(id_of(&p), row);

    // The admin sees both payments of each order.
    let (_, list) = svc.get_as("/api/v1/payments?order_id=21", ADMIN).await;
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    svc.stop().await;
}
