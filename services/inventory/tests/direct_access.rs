//! Attacks on the inventory from inside the cluster: a pod in the namespace calls the
//! service directly, past the gateway. Without a valid token for the inventory
//! nothing happens (401); with one, only what its holder may do (403 otherwise).
//! After every attack the stock and the reservation are as they were.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use inventory_service::SERVICE;
use inventory_service::http::access::POLICY;
use reqwest::{Method, StatusCode};
use sales_platform::identity::TokenClaims;
use sales_platform::identity::claims::OnBehalfOf;
use sales_platform::identity::service_audience;
use sales_testkit::identity::TestIdentity;
use serde_json::{Value, json};
use support::{ADMIN, Inventory, ORDER_SERVICE, Reply, SEED_CLIENT, Who};

const SKU: &str = "TARGET";
const PRODUCT_ID: i64 = 1;

/// A header `{"alg":"none","typ":"JWT"}`, base64url.
const ALG_NONE_HEADER: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";

/// A service with one item (5 on hand) and one pending reservation of 1 unit for an
/// order; the reservation's id.
async fn target() -> (Inventory, i64) {
    let inv = Inventory::start().await;
    let (status, body) = inv
        .put(
            ADMIN,
            &format!("/api/v1/inventory/items/{SKU}"),
            json!({"on_hand": 5, "product_id": PRODUCT_ID}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let r = inv
        .reserve_for_order(Some(1), json!([{"sku": SKU, "quantity": 1}]))
        .await;
    (inv, r["reservation_id"].as_i64().unwrap())
}

/// The stock and the reservation are untouched, and nothing else was made.
async fn assert_untouched(inv: &Inventory, reservation: i64) {
    let level = inv.level(SKU).await;
    assert_eq!(
        (level["on_hand"].as_i64(), level["reserved"].as_i64()),
        (Some(5), Some(1)),
        "{level}"
    );
    let (_, r) = inv
        .get(
            ORDER_SERVICE,
            &format!("/api/v1/inventory/reservations/{reservation}"),
        )
        .await;
    assert_eq!(r["status"], "pending", "{r}");
    let (_, all) = inv.get(ADMIN, "/api/v1/inventory/items").await;
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
}

/// A request to every operation of the API, as its OpenAPI document lists them,
/// each with a body that would change something if it got through.
async fn every_operation(
    inv: &Inventory,
    reservation: i64,
) -> Vec<(Method, String, Option<Value>)> {
    let (status, doc) = inv.get(Who::Nobody, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let mut out = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        if matches!(template.as_str(), "/health" | "/ready") {
            continue;
        }
        let path = template
            .replace("{sku}", SKU)
            .replace("{id}", &reservation.to_string())
            .replace("{product_id}", &PRODUCT_ID.to_string());
        let methods = item.as_object().unwrap().keys();
        for method in
            methods.filter(|m| matches!(m.as_str(), "get" | "put" | "post" | "patch" | "delete"))
        {
            let method: Method = method.to_uppercase().parse().unwrap();
            let body = write_body(&method, template, reservation);
            out.push((method, path.clone(), body));
        }
    }
    assert_eq!(
        out.len(),
        POLICY.len(),
        "every rule of the access table is an operation: {out:?}"
    );
    out
}

fn write_body(method: &Method, template: &str, reservation: i64) -> Option<Value> {
    let body = match (method.as_str(), template) {
        ("GET", _) => return None,
        ("PUT", "/api/v1/inventory/items/{sku}") => json!({"on_hand": 0}),
        ("POST", "/api/v1/inventory/reservations") => {
            json!({"order_id": 2, "items": [{"sku": SKU, "quantity": 4}]})
        }
        ("POST", "/api/v1/stock/items") => json!({"item_sku": "NEW", "quantity": 9}),
        ("POST", "/api/v1/stock/reserve") => json!({"item_sku": SKU, "quantity": 4}),
        ("POST", "/api/v1/stock/release") => json!({"reservation_id": reservation}),
        ("PUT", "/inventory/stock") => json!({"product_id": PRODUCT_ID, "quantity": 4}),
        _ => json!({}),
    };
    Some(body)
}

fn assert_refused(r: &Reply, what: &str, code: &str, challenge: &str) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {r:?}");
    assert_eq!(r.body["error"]["code"], code, "{what}: {r:?}");
    assert_eq!(r.challenge.as_deref(), Some(challenge), "{what}: {r:?}");
}

#[tokio::test]
async fn every_api_route_needs_a_credential() {
    let (inv, reservation) = target().await;
    for (method, path, body) in every_operation(&inv, reservation).await {
        let what = format!("{method} {path}");
        let r = inv
            .send_token(method.clone(), &path, None, body.clone())
            .await;
        assert_refused(&r, &what, "unauthenticated", "Bearer");

        // The headers services used to trust are only headers.
        let mut request = inv
            .client()
            .request(method.clone(), format!("{}{path}", inv.base))
            .header("x-customer-id", "1")
            .header("x-customer-role", "admin");
        if let Some(body) = &body {
            request = request.json(body);
        }
        let status = request.send().await.unwrap().status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} with x-customer-*");

        // Another scheme, or a bearer with nothing in it.
        for header in ["Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer "] {
            let mut request = inv
                .client()
                .request(method.clone(), format!("{}{path}", inv.base))
                .header("authorization", header);
            if let Some(body) = &body {
                request = request.json(body);
            }
            let status = request.send().await.unwrap().status();
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} with {header:?}");
        }
    }
    assert_untouched(&inv, reservation).await;
    inv.stop().await;
}

/// Tokens that are not the inventory's to accept, each tried on every operation.
#[tokio::test]
async fn forged_borrowed_and_stale_tokens_are_refused() {
    let (inv, reservation) = target().await;
    let minter = inv.identity.minter();
    let ttl = Duration::from_secs(600);
    let admin_claims = || {
        TokenClaims::gateway(
            service_audience(SERVICE),
            OnBehalfOf::Admin(1),
            true,
            None,
            ttl,
        )
    };
    let mut expired = admin_claims();
    expired.iat -= 7200;
    expired.nbf -= 7200;
    expired.exp -= 3600;
    let mut not_yet = admin_claims();
    not_yet.nbf += 3600;
    not_yet.exp += 3600;
    let admin = inv.token(ADMIN).unwrap();
    let customer = inv.token(Who::Customer(7)).unwrap();
    let parts = |t: &str| -> Vec<String> { t.split('.').map(str::to_owned).collect() };
    let (admin_parts, customer_parts) = (parts(&admin), parts(&customer));
    let elsewhere = TestIdentity::start().await;

    let tokens: Vec<(&str, String)> = vec![
        (
            "an administrator's request to the order service",
            inv.identity.token("order", ADMIN).unwrap(),
        ),
        (
            "the order service's token for the payment service",
            inv.identity.token("payment", ORDER_SERVICE).unwrap(),
        ),
        ("expired", minter.sign_as_gateway(&expired)),
        ("not valid yet", minter.sign_as_gateway(&not_yet)),
        (
            "signed by another gateway (a key the inventory does not know)",
            elsewhere.token(SERVICE, ADMIN).unwrap(),
        ),
        (
            "a service token from another identity provider",
            elsewhere.token(SERVICE, ORDER_SERVICE).unwrap(),
        ),
        (
            "alg none, no signature",
            format!("{ALG_NONE_HEADER}.{}.", admin_parts[1]),
        ),
        (
            "alg none, the signature kept",
            format!("{ALG_NONE_HEADER}.{}.{}", admin_parts[1], admin_parts[2]),
        ),
        (
            "a customer's token with an administrator's claims",
            format!(
                "{}.{}.{}",
                customer_parts[0], admin_parts[1], customer_parts[2]
            ),
        ),
        (
            "a customer's access token (for the gateway)",
            minter.access_token(7, false),
        ),
        (
            "an administrator's access token (for the gateway)",
            minter.access_token(1, true),
        ),
        (
            "a service token signed with the gateway's key",
            minter.sign_as_gateway(&TokenClaims::service(
                "order",
                &["stock:reserve"],
                vec![service_audience(SERVICE)],
                ttl,
            )),
        ),
        (
            "gateway claims signed with the identity provider's key",
            minter.sign_as_provider(&admin_claims()),
        ),
        ("not a JWT", "not-a-token".to_owned()),
    ];
    let operations = every_operation(&inv, reservation).await;
    for (what, token) in &tokens {
        for (method, path, body) in &operations {
            let r = inv
                .send_token(method.clone(), path, Some(token), body.clone())
                .await;
            assert_refused(
                &r,
                &format!("{what}: {method} {path}"),
                "invalid_token",
                r#"Bearer error="invalid_token""#,
            );
        }
    }
    // The reasons are told apart: an audience, an expiry.
    let r = inv
        .send_token(
            Method::GET,
            "/api/v1/inventory/items",
            Some(&tokens[0].1),
            None,
        )
        .await;
    assert_eq!(
        r.body["error"]["message"], "the token is not meant for this service",
        "{r:?}"
    );
    let r = inv
        .send_token(
            Method::GET,
            "/api/v1/inventory/items",
            Some(&tokens[2].1),
            None,
        )
        .await;
    assert_eq!(r.body["error"]["message"], "the token has expired", "{r:?}");
    assert_untouched(&inv, reservation).await;
    inv.stop().await;
}

/// Verified callers, each refused what is not theirs to do.
#[tokio::test]
async fn callers_get_only_their_rights() {
    let (inv, reservation) = target().await;
    let item = format!("/api/v1/inventory/items/{SKU}");
    let reservations = "/api/v1/inventory/reservations";
    let one = format!("/api/v1/inventory/reservations/{reservation}");
    let release = format!("{one}/release");
    let commit = format!("{one}/commit");
    let set_stock = || Some(json!({"on_hand": 0}));
    let reserve = || Some(json!({"order_id": 2, "items": [{"sku": SKU, "quantity": 4}]}));
    let seed_item = || Some(json!({"item_sku": SKU, "quantity": 0}));
    let seed_reserve = || Some(json!({"item_sku": SKU, "quantity": 4}));
    let seed_release = || Some(json!({"reservation_id": reservation}));
    let take_out = || Some(json!({"product_id": PRODUCT_ID, "quantity": 4}));
    let seed_004_writes = [
        ("/api/v1/stock/items", seed_item()),
        ("/api/v1/stock/reserve", seed_reserve()),
        ("/api/v1/stock/release", seed_release()),
    ];

    let customer = Who::Customer(7);
    let product = Who::Service("product", &[]);
    let order_without_scope = Who::Service("order", &[]);
    let payment = Who::Service("payment", &["payments:charge"]);
    let closed = Who::Anonymous { seed_compat: false };
    type Case = (Who, Method, String, Option<Value>, StatusCode);
    let mut cases: Vec<Case> = Vec::new();
    let mut case = |who, method, path: &str, body, status| {
        cases.push((who, method, path.to_owned(), body, status));
    };
    use StatusCode as S;

    // Anyone the gateway lets through reads stock levels, services too.
    for who in [customer, product, closed, SEED_CLIENT, payment] {
        case(who, Method::GET, "/api/v1/inventory/items", None, S::OK);
        case(who, Method::GET, &item, None, S::OK);
    }
    // A customer neither counts stock nor reserves nor touches reservations.
    case(customer, Method::PUT, &item, set_stock(), S::FORBIDDEN);
    case(
        customer,
        Method::POST,
        reservations,
        reserve(),
        S::FORBIDDEN,
    );
    case(customer, Method::GET, &one, None, S::FORBIDDEN);
    case(customer, Method::POST, &release, None, S::FORBIDDEN);
    case(customer, Method::POST, &commit, None, S::FORBIDDEN);
    // The product service reads stock, and that is all; so does a service
    // without the `stock:reserve` scope.
    for who in [product, order_without_scope, payment] {
        case(who, Method::POST, reservations, reserve(), S::FORBIDDEN);
        case(who, Method::GET, &one, None, S::FORBIDDEN);
        case(who, Method::POST, &release, None, S::FORBIDDEN);
        case(who, Method::POST, &commit, None, S::FORBIDDEN);
        case(who, Method::PUT, &item, set_stock(), S::FORBIDDEN);
        for (path, body) in &seed_004_writes {
            case(who, Method::POST, path, body.clone(), S::FORBIDDEN);
        }
        case(
            who,
            Method::PUT,
            "/inventory/stock",
            take_out(),
            S::FORBIDDEN,
        );
        case(who, Method::GET, "/api/v1/stock/", None, S::FORBIDDEN);
    }
    // The order service reserves, but stock counts are not its business.
    case(ORDER_SERVICE, Method::PUT, &item, set_stock(), S::FORBIDDEN);
    // An anonymous client never reaches the canonical writes, seeds open or not.
    for who in [closed, SEED_CLIENT] {
        case(who, Method::PUT, &item, set_stock(), S::UNAUTHORIZED);
        case(who, Method::POST, reservations, reserve(), S::UNAUTHORIZED);
        case(who, Method::GET, &one, None, S::UNAUTHORIZED);
        case(who, Method::POST, &release, None, S::UNAUTHORIZED);
        case(who, Method::POST, &commit, None, S::UNAUTHORIZED);
    }
    // With the seeds' routes closed, an anonymous client gets none of them.
    for (path, body) in &seed_004_writes {
        case(closed, Method::POST, path, body.clone(), S::UNAUTHORIZED);
    }
    case(closed, Method::GET, "/api/v1/stock/", None, S::UNAUTHORIZED);
    case(
        closed,
        Method::GET,
        "/api/v1/stock/TARGET",
        None,
        S::UNAUTHORIZED,
    );
    case(
        closed,
        Method::PUT,
        "/inventory/stock",
        take_out(),
        S::UNAUTHORIZED,
    );
    case(
        closed,
        Method::GET,
        "/inventory/stock/1",
        None,
        S::UNAUTHORIZED,
    );
    // A customer reads the seeds' stock, but writes it only while the seeds are open.
    for (path, body) in &seed_004_writes {
        case(customer, Method::POST, path, body.clone(), S::FORBIDDEN);
    }
    case(
        customer,
        Method::PUT,
        "/inventory/stock",
        take_out(),
        S::FORBIDDEN,
    );
    case(customer, Method::GET, "/api/v1/stock/TARGET", None, S::OK);
    case(customer, Method::GET, "/inventory/stock/1", None, S::OK);

    for (who, method, path, body, want) in cases {
        let r = inv.send(method.clone(), who, &path, body).await;
        assert_eq!(r.status, want, "{who:?} {method} {path}: {r:?}");
        match want {
            S::FORBIDDEN => assert_eq!(r.body["error"]["code"], "forbidden", "{r:?}"),
            S::UNAUTHORIZED => {
                assert_eq!(r.body["error"]["code"], "unauthenticated", "{r:?}")
            }
            _ => {}
        }
    }
    assert_untouched(&inv, reservation).await;
    inv.stop().await;
}
