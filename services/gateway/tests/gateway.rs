//! The gateway in front of echo servers standing in for the services, with real Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use gateway_service::routes::{ROUTES, Upstream};
use reqwest::StatusCode;
use sales_testkit::fault_proxy::{Fault, FaultProxy};
use serde_json::{Value, json};
use support::*;

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn routes_every_prefix_with_path_and_query_unchanged() {
    let backends = Backends::start().await;
    let gw = Gateway::start(config(&backends)).await;
    let token = admin(1);
    for (prefix, upstream) in ROUTES {
        for path in [
            prefix.to_string(),
            format!("{prefix}/"),
            format!("{prefix}/7/x"),
        ] {
            let (status, _, body) = gw
                .call("GET", &format!("{path}?a=1&b=x%20y&a=2"), Some(&token))
                .await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            assert_eq!(body["service"], upstream.name(), "{path}");
            assert_eq!(body["path"], path.as_str());
            assert_eq!(body["query"], "a=1&b=x%20y&a=2");
        }
    }
    // Seed 004's trailing slash, for POST too.
    let (status, _, body) = gw.call("POST", "/api/v1/orders/", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["path"], "/api/v1/orders/");
    assert_eq!(body["method"], "POST");
    assert_eq!(body["body_len"], 7);

    // Unknown paths: 404 JSON, token or not (a bad token is still a 401).
    for path in [
        "/nowhere",
        "/api/v1/reservations",
        "/productsx",
        "/api/v2/orders",
    ] {
        for token in [Some(token.as_str()), None] {
            let (status, _, body) = gw.call("GET", path, token).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(code(&body), "not_found");
        }
        let (status, _, body) = gw.call("GET", path, Some(&forged())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(code(&body), "invalid_token");
    }
    // Dot segments never reach a service (clients like reqwest remove them; raw HTTP
    // can send them): the path is made canonical first, and that is what is routed.
    let answer = raw_http(
        &gw.base,
        &format!("GET /api/v1/products/../orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"),
        b"",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""path":"/api/v1/orders""#), "{answer}");
    assert!(answer.contains(r#""service":"order""#), "{answer}");

    // The request metrics name the prefix that routed each request.
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"route="/api/v1/orders…""#)
            && metrics.contains(r#"route="unrouted""#)
            && !metrics.contains(r#"route="/{*path}""#),
        "{metrics}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn upstream_answers_pass_through_unchanged() {
    let backends = Backends::start().await;
    let gw = Gateway::start(config(&backends)).await;
    let response = gw
        .request("GET", "/api/v1/orders/teapot")
        .bearer_auth(customer(5))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
    assert_eq!(response.headers()["x-custom"], "short-and-stout");
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert_eq!(response.text().await.unwrap(), "I'm a teapot");
    gw.stop().await;
}

#[tokio::test]
async fn tokens_on_every_kind_of_route() {
    let backends = Backends::start().await;
    let gw = Gateway::start(config(&backends)).await;
    // (method, path) of a public, an authenticated, an admin and a seed route.
    let routes = [
        ("GET", "/api/v1/products/1"),
        ("GET", "/api/v1/orders"),
        ("POST", "/api/v1/products"),
        ("POST", "/orders"),
        ("GET", "/nowhere"),
    ];
    for (method, path) in routes {
        for (what, bad) in [
            ("forged", forged()),
            ("bad signature", bad_signature()),
            ("expired", expired()),
            ("wrong issuer", wrong_issuer()),
            ("wrong audience", wrong_audience()),
            ("malformed", "not-a-jwt".to_owned()),
        ] {
            let (status, headers, body) = gw.call(method, path, Some(&bad)).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{what} on {method} {path}"
            );
            assert_eq!(code(&body), "invalid_token", "{what} on {method} {path}");
            assert!(
                headers["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer"),
                "{what}"
            );
        }
        let (status, _, _) = gw
            .send(
                gw.request(method, path)
                    .header("authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l"),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "Basic on {method} {path}");
    }
    let customer = customer(7);
    let admin = admin(8);
    let expect = |method: &str, path: &str| -> [StatusCode; 3] {
        // without a token, with a customer's, with an admin's
        match (method, path) {
            ("GET", "/api/v1/products/1") => [StatusCode::OK; 3],
            ("GET", "/api/v1/orders") => [StatusCode::UNAUTHORIZED, StatusCode::OK, StatusCode::OK],
            ("POST", "/api/v1/products") => [
                StatusCode::UNAUTHORIZED,
                StatusCode::FORBIDDEN,
                StatusCode::OK,
            ],
            ("POST", "/orders") => [StatusCode::UNAUTHORIZED, StatusCode::OK, StatusCode::OK],
            _ => [StatusCode::NOT_FOUND; 3],
        }
    };
    for (method, path) in routes {
        let want = expect(method, path);
        let got = [
            gw.call(method, path, None).await.0,
            gw.call(method, path, Some(&customer)).await.0,
            gw.call(method, path, Some(&admin)).await.0,
        ];
        assert_eq!(got, want, "{method} {path}");
    }
    let (_, headers, body) = gw.call("GET", "/api/v1/orders", None).await;
    assert_eq!(code(&body), "unauthenticated");
    assert_eq!(headers["www-authenticate"], "Bearer");
    let (_, _, body) = gw
        .call("DELETE", "/api/v1/products/3", Some(&customer))
        .await;
    assert_eq!(code(&body), "forbidden");

    for reason in [
        "expired",
        "bad_signature",
        "unknown_key",
        "unknown_issuer",
        "wrong_audience",
        "malformed",
        "missing_token",
        "forbidden",
    ] {
        let n = gw
            .metric("gateway_auth_failures_total", &[("reason", reason)])
            .await;
        assert!(n.unwrap_or(0.0) >= 1.0, "{reason}: {n:?}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn the_gateway_alone_says_who_is_calling() {
    let backends = Backends::start().await;
    let gw = Gateway::start(config(&backends)).await;
    // No token: the client's own identity headers are dropped; the upstream gets the
    // gateway's token for an anonymous caller.
    let (status, _, body) = gw
        .send(
            gw.request("GET", "/api/v1/products")
                .header("x-customer-id", "1")
                .header("x-customer-role", "admin"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["headers"]["x-customer-id"].is_null(), "{body}");
    assert!(body["headers"]["x-customer-role"].is_null(), "{body}");
    let claims = forwarded_claims(&gw, &body).await;
    assert_eq!(
        (claims.sub.as_str(), claims.role.as_str()),
        ("anonymous", "anonymous")
    );
    assert_eq!(claims.seed_compat, Some(false));
    // With a token: the token's customer, never the header's; the customer's own
    // token does not travel on.
    let (status, _, body) = gw
        .send(
            gw.request("GET", "/api/v1/orders/3")
                .bearer_auth(customer(42))
                .header("x-customer-id", "1")
                .header("X-Customer-Role", "admin"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let claims = forwarded_claims(&gw, &body).await;
    assert_eq!(
        (claims.sub.as_str(), claims.role.as_str()),
        ("42", "customer")
    );
    assert_eq!(
        claims.exp - claims.iat,
        60,
        "a short-lived token per request"
    );
    assert_ne!(
        body["headers"]["authorization"].as_str().unwrap(),
        format!("Bearer {}", customer(42))
    );
    let (_, _, body) = gw.call("POST", "/api/v1/products", Some(&admin(9))).await;
    let claims = forwarded_claims(&gw, &body).await;
    assert_eq!((claims.sub.as_str(), claims.role.as_str()), ("9", "admin"));
    // A spoofed header does not make a customer an admin.
    let (status, _, _) = gw
        .send(
            gw.request("POST", "/api/v1/products")
                .bearer_auth(customer(42))
                .header("x-customer-role", "admin")
                .json(&json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    gw.stop().await;
}

#[tokio::test]
async fn the_connection_header_cannot_remove_what_the_gateway_sets() {
    let backends = Backends::start().await;
    let gw = Gateway::start(config(&backends)).await;
    // Customer B names the identity headers (and every header the gateway sets) as
    // hop-by-hop: the upstream still gets the gateway's token for B, and nothing else
    // says who is calling.
    let (status, _, body) = gw
        .send(
            gw.request("GET", "/api/v1/orders/3")
                .bearer_auth(customer(42))
                .header(
                    "connection",
                    "x-customer-id, x-customer-role, x-request-id, x-forwarded-for, traceparent",
                ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = forwarded_claims(&gw, &body).await;
    assert_eq!(
        (claims.sub.as_str(), claims.role.as_str()),
        ("42", "customer")
    );
    assert!(body["headers"]["x-request-id"].is_string(), "{body}");
    // Naming `authorization` drops the client's own token (it is hop-by-hop now), so
    // the caller is anonymous; the gateway's token is still there.
    let (status, _, body) = gw
        .send(
            gw.request("GET", "/api/v1/products")
                .bearer_auth(admin(9))
                .header("connection", "authorization"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let claims = forwarded_claims(&gw, &body).await;
    assert_eq!(claims.role, "anonymous");
    let (status, _, _) = gw
        .send(
            gw.request("GET", "/api/v1/orders/3")
                .bearer_auth(customer(42))
                .header("connection", "authorization"),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    gw.stop().await;
}

#[tokio::test]
async fn path_tricks_are_made_canonical_or_refused() {
    let backends = Backends::start().await;
    let gw = Gateway::start(config(&backends)).await;
    let raw = |method: &str, path: &str, token: &str| {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
        )
    };
    let status_of = |answer: &str| answer.get(9..12).unwrap_or("").to_owned();
    // The issue's attack: a customer's write to the catalogue through a seed prefix.
    for path in [
        "/products/%2e%2e/api/v1/products/1",
        "/products/%2E%2E/api/v1/products/1",
        "/products/../api/v1/products/1",
        "/products/./../api/v1/products/1",
        "/api/v1/orders/%2e%2e/products/1",
    ] {
        let answer = raw_http(&gw.base, &raw("PUT", path, &customer(7)), b"{}").await;
        assert_eq!(status_of(&answer), "403", "{path}: {answer}");
    }
    // Ambiguous forms: 400, and nothing reaches a service.
    for path in [
        "/products%2f..%2fapi/v1/products/1",
        "/products%2F..%2Fapi/v1/products/1",
        "/products/..;/api/v1/products/1",
        "/api/v1/products;x=1/1",
        "/api/v1//products/1",
        "//api/v1/products/1",
        "/api/v1/products/%c0%ae%c0%ae/x",
        "/api/v1/products/%00",
        "/api/v1/products/%252e%252e/x",
        "/products\\..\\api/v1/products/1",
    ] {
        let answer = raw_http(&gw.base, &raw("PUT", path, &customer(7)), b"{}").await;
        assert_eq!(status_of(&answer), "400", "{path}: {answer}");
        assert!(answer.contains("invalid_path"), "{path}: {answer}");
    }
    // Upper case is another path, and no service has it.
    let answer = raw_http(
        &gw.base,
        &raw("PUT", "/API/V1/PRODUCTS/1", &customer(7)),
        b"{}",
    )
    .await;
    assert_eq!(status_of(&answer), "404", "{answer}");
    assert_eq!(backends.seen.count("PUT", "/api/v1/products/1"), 0);
    // An admin's tricky path reaches the service as the canonical one.
    let answer = raw_http(
        &gw.base,
        &raw("PUT", "/products/%2e%2e/api/v1/products/1", &admin(1)),
        b"{}",
    )
    .await;
    assert_eq!(status_of(&answer), "200", "{answer}");
    assert_eq!(backends.seen.count("PUT", "/api/v1/products/1"), 1);
    gw.stop().await;
}

#[tokio::test]
async fn revoked_tokens_are_refused_at_once() {
    let backends = Backends::start().await;
    let c = config(&backends);
    let prefix = c.auth.revocation_prefix.clone();
    let gw = Gateway::start(c).await;
    let redis = redis::Client::open(sales_testkit::redis_url()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();

    // No version published: the identity provider is asked (and says active).
    let token = customer(70);
    assert_eq!(
        gw.call("GET", "/api/v1/orders", Some(&token)).await.0,
        StatusCode::OK
    );
    // The provider says revoked: refused.
    REVOKED.lock().unwrap().insert(token.clone());
    let (status, _, body) = gw.call("GET", "/api/v1/orders", Some(&token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&body), "invalid_token");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
    // A published version decides without asking: the same version passes, a later
    // one (the customer logged out) refuses, even where no token is needed.
    let token = customer(71);
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}71"))
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        gw.call("GET", "/api/v1/orders", Some(&token)).await.0,
        StatusCode::OK
    );
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}71"))
        .arg(2)
        .query_async(&mut conn)
        .await
        .unwrap();
    for (method, path) in [("GET", "/api/v1/orders"), ("GET", "/api/v1/products")] {
        let (status, _, body) = gw.call(method, path, Some(&token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(code(&body), "invalid_token");
    }
    assert!(
        gw.metric("gateway_auth_failures_total", &[("reason", "revoked")])
            .await
            >= Some(3.0)
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_token_that_cannot_be_checked_is_not_accepted() {
    let backends = Backends::start().await;
    let mut c = config(&backends);
    c.rate_limit.redis_url =
        format!("redis://{}", dead_url().await.trim_start_matches("http://")).into();
    let gw = Gateway::start(c).await;
    // Redis away, the identity provider there: introspection decides.
    assert_eq!(
        gw.call("GET", "/api/v1/orders", Some(&customer(5))).await.0,
        StatusCode::OK
    );
    // Both away: revocation cannot be checked, so the token is not accepted (503,
    // try again), wherever it is sent.
    backends
        .seen
        .introspection_down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    for path in ["/api/v1/orders", "/api/v1/products"] {
        let (status, headers, body) = gw.call("GET", path, Some(&customer(5))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {body}");
        assert_eq!(headers["retry-after"], "1");
    }
    // Callers without a token are not held up.
    assert_eq!(
        gw.call("GET", "/api/v1/products", None).await.0,
        StatusCode::OK
    );
    // A service that never answers with keys: nothing verifies.
    let dead = Backends::start_with_dead(&[Upstream::Customer]).await;
    let gw2 = Gateway::start(config(&dead)).await;
    let (status, _, body) = gw2.call("GET", "/api/v1/orders", Some(&customer(5))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "invalid_token");
    gw.stop().await;
    gw2.stop().await;
}

#[tokio::test]
async fn admin_routes() {
    let backends = Backends::start().await;
    let gw = Gateway::start(config(&backends)).await;
    for (method, path) in [
        ("POST", "/api/v1/products"),
        ("PUT", "/api/v1/products/1"),
        ("PATCH", "/api/v1/products/1"),
        ("DELETE", "/api/v1/products/1"),
        ("PUT", "/api/v1/inventory/items/SKU-1"),
        ("POST", "/api/v1/inventory/items"),
        ("DELETE", "/api/v1/inventory/items/SKU-1"),
    ] {
        assert_eq!(
            gw.call(method, path, None).await.0,
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
        let (status, _, body) = gw.call(method, path, Some(&customer(3))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(code(&body), "forbidden");
        assert_eq!(
            gw.call(method, path, Some(&admin(4))).await.0,
            StatusCode::OK,
            "{method} {path}"
        );
    }
    // Reading stock needs a token, not an admin.
    assert_eq!(
        gw.call("GET", "/api/v1/inventory/items/SKU-1", Some(&customer(3)))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        backends.seen.count("POST", "/api/v1/products"),
        1,
        "only the admin's got through"
    );
    gw.stop().await;
}

/// The seeds' unauthenticated routes.
const COMPAT_ROUTES: &[(&str, &str)] = &[
    ("POST", "/products"),
    ("POST", "/orders"),
    ("POST", "/customers"),
    ("PUT", "/payments/1/confirm"),
    ("GET", "/inventory/stock/1"),
    ("PUT", "/inventory/stock"),
    ("POST", "/shipping"),
    ("GET", "/orders/product/1"),
    ("GET", "/api/v1/stock/"),
    ("POST", "/api/v1/stock/reserve"),
    ("POST", "/api/v1/payments/authorize"),
    ("GET", "/api/v1/orders/"),
    ("POST", "/api/v1/orders/"),
    ("GET", "/api/v1/orders/1"),
];

#[tokio::test]
async fn seed_routes_are_open_only_with_the_switch() {
    let backends = Backends::start().await;
    let closed = Gateway::start(config(&backends)).await;
    let mut open_config = config(&backends);
    open_config.auth.seed_compat_open = true;
    let open = Gateway::start(open_config).await;

    for (method, path) in COMPAT_ROUTES {
        let (status, _, body) = closed.call(method, path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "closed: {method} {path}");
        assert_eq!(code(&body), "unauthenticated");
        assert_eq!(
            closed.call(method, path, Some(&admin(2))).await.0,
            StatusCode::OK,
            "closed, admin: {method} {path}"
        );

        let (status, _, body) = open.call(method, path, None).await;
        assert_eq!(status, StatusCode::OK, "open: {method} {path}");
        let claims = forwarded_claims(&open, &body).await;
        assert_eq!(claims.role, "anonymous");
        assert_eq!(claims.seed_compat, Some(true));
        let (status, _, body) = open.call(method, path, Some(&customer(11))).await;
        assert_eq!(status, StatusCode::OK, "open, customer: {method} {path}");
        assert_eq!(
            forwarded_claims(&open, &body).await.sub,
            "11",
            "served as that customer"
        );
        // A bad token is refused even where no token is needed.
        assert_eq!(
            open.call(method, path, Some(&expired())).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    // With the switch off, the seeds' catalogue and stock writes are an admin's.
    for (method, path) in [
        ("POST", "/products"),
        ("PUT", "/inventory/stock"),
        ("POST", "/api/v1/stock/items"),
    ] {
        assert_eq!(
            closed.call(method, path, Some(&customer(3))).await.0,
            StatusCode::FORBIDDEN,
            "{method} {path}"
        );
    }
    assert_eq!(
        closed.call("POST", "/orders", Some(&customer(3))).await.0,
        StatusCode::OK
    );
    // Seed 000's routes used tokens: never open.
    for path in ["/orders/order", "/orders/paid"] {
        assert_eq!(
            open.call("POST", path, None).await.0,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
        let (status, _, body) = open.call("POST", path, Some(&customer(5))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(forwarded_claims(&open, &body).await.sub, "5");
    }
    // Other routes stay closed with the switch on.
    assert_eq!(
        open.call("GET", "/api/v1/orders", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        open.call("POST", "/api/v1/products", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    closed.stop().await;
    open.stop().await;
}

#[tokio::test]
async fn rate_limit_holds_across_two_gateways() {
    let backends = Backends::start().await;
    let mut c = config(&backends);
    c.rate_limit.rate_limit_requests = 3;
    c.rate_limit.rate_limit_window = Duration::from_secs(60);
    let one = Gateway::start(c.clone()).await;
    let two = Gateway::start(c).await;
    let alice = customer(100);

    let mut remaining = Vec::new();
    for gw in [&one, &two, &one] {
        let (status, headers, _) = gw.call("GET", "/api/v1/orders", Some(&alice)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-ratelimit-limit"], "3");
        remaining.push(
            headers["x-ratelimit-remaining"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let (status, headers, body) = two.call("GET", "/api/v1/orders", Some(&alice)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(code(&body), "rate_limited");
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    assert_eq!(headers["x-ratelimit-limit"], "3");
    assert_eq!(
        one.call("GET", "/api/v1/products", Some(&alice)).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        backends.seen.count("GET", "/api/v1/orders"),
        3,
        "refused requests never reach a service"
    );
    // Another customer has a counter of their own.
    assert_eq!(
        two.call("GET", "/api/v1/orders", Some(&customer(101)))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        two.metric("gateway_rate_limited_total", &[]).await,
        Some(1.0)
    );
    one.stop().await;
    two.stop().await;
}

/// `RATE_LIMIT_REQUESTS=0` (what `cargo xtask up --rate-limit 0` sets for load
/// tests): nothing is counted or refused, and no limit headers are sent.
#[tokio::test]
async fn a_limit_of_zero_turns_rate_limiting_off() {
    let backends = Backends::start().await;
    let mut c = config(&backends);
    c.rate_limit.rate_limit_requests = 0;
    c.rate_limit.rate_limit_window = Duration::from_secs(60);
    let gateway = Gateway::start(c).await;
    let alice = customer(102);
    for _ in 0..30 {
        let (status, headers, _) = gateway.call("GET", "/api/v1/orders", Some(&alice)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!headers.contains_key("x-ratelimit-limit"), "{headers:?}");
    }
    for _ in 0..30 {
        assert_eq!(
            gateway.call("GET", "/api/v1/products", None).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(backends.seen.count("GET", "/api/v1/orders"), 30);
    let limited = gateway.metric("gateway_rate_limited_total", &[]).await;
    assert!(matches!(limited, None | Some(0.0)), "{limited:?}");
    gateway.stop().await;
}

#[tokio::test]
async fn anonymous_clients_are_counted_by_address() {
    let backends = Backends::start().await;
    let mut c = config(&backends);
    c.rate_limit.rate_limit_requests = 2;
    c.rate_limit.rate_limit_window = Duration::from_secs(60);
    c.rate_limit.trusted_proxies = "127.0.0.1".into();
    let trusting = Gateway::start(c.clone()).await;
    let from = |gw: &Gateway, ip: &'static str| {
        gw.request("GET", "/api/v1/products")
            .header("x-forwarded-for", ip)
    };
    for _ in 0..2 {
        assert_eq!(
            trusting.send(from(&trusting, "203.0.113.1")).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(
        trusting.send(from(&trusting, "203.0.113.1")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The last entry is the one our proxy added; what the client put before it is ignored.
    assert_eq!(
        trusting
            .send(from(&trusting, "203.0.113.1, 203.0.113.2"))
            .await
            .0,
        StatusCode::OK
    );
    let (_, _, body) = trusting.send(from(&trusting, "203.0.113.3")).await;
    assert_eq!(body["headers"]["x-forwarded-for"], "203.0.113.3");
    let claims = forwarded_claims(&trusting, &body).await;
    assert_eq!(claims.client_ip.as_deref(), Some("203.0.113.3"));

    // Not trusting the header: changing it does not escape the limit.
    c.rate_limit.trusted_proxies = "10.0.0.0/8".into();
    c.rate_limit.rate_limit_prefix = unique_prefix();
    let strict = Gateway::start(c).await;
    for ip in ["198.51.100.1", "198.51.100.2"] {
        assert_eq!(strict.send(from(&strict, ip)).await.0, StatusCode::OK);
    }
    assert_eq!(
        strict.send(from(&strict, "198.51.100.3")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    trusting.stop().await;
    strict.stop().await;
}

#[tokio::test]
async fn without_redis_each_replica_still_limits() {
    let backends = Backends::start().await;
    let mut c = config(&backends);
    c.rate_limit.redis_url =
        format!("redis://{}", dead_url().await.trim_start_matches("http://")).into();
    c.rate_limit.rate_limit_requests = 2;
    let gw = Gateway::start(c).await;
    let started = Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (status, headers, _) = gw.call("GET", "/api/v1/orders", Some(&customer(1))).await;
        assert_eq!(headers["x-ratelimit-limit"], "2");
        statuses.push(status);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "never unlimited"
    );
    // Another client has its own count.
    assert_eq!(
        gw.call("GET", "/api/v1/products", None).await.0,
        StatusCode::OK
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        gw.metric("gateway_rate_limit_local_total", &[]).await,
        Some(6.0)
    );
    gw.stop().await;
}

#[tokio::test]
async fn rate_limits_come_back_with_redis() {
    let backends = Backends::start().await;
    let relay = FaultProxy::for_url(&sales_testkit::redis_url()).await;
    let mut c = config(&backends);
    c.rate_limit.redis_url = relay.url_through(&sales_testkit::redis_url()).into();
    let gw = Gateway::start(c).await;
    let alice = customer(1);
    let (_, headers, _) = gw.call("GET", "/api/v1/orders", Some(&alice)).await;
    assert_eq!(headers["x-ratelimit-remaining"], "999");

    relay.set(Fault::Down);
    for _ in 0..3 {
        let (status, headers, _) = gw.call("GET", "/api/v1/orders", Some(&alice)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-ratelimit-limit"], "1000", "counted locally");
    }
    assert!(gw.metric("gateway_rate_limit_local_total", &[]).await >= Some(3.0));
    relay.set(Fault::None);
    // Back to the shared counters: a request no longer counted locally.
    sales_testkit::eventually(
        "rate limits shared again",
        Duration::from_secs(20),
        || async {
            let before = gw.metric("gateway_rate_limit_local_total", &[]).await;
            let (_, headers, _) = gw.call("GET", "/api/v1/orders", Some(&alice)).await;
            let after = gw.metric("gateway_rate_limit_local_total", &[]).await;
            (before == after).then(|| {
                headers["x-ratelimit-remaining"]
                    .to_str()
                    .unwrap()
                    .to_owned()
            })
        },
    )
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn a_slow_upstream_is_a_504_after_the_timeout() {
    let backends = Backends::start().await;
    let mut c = config(&backends);
    c.fault_tolerance.upstream_timeout = Duration::from_millis(500);
    let gw = Gateway::start(c).await;
    let started = Instant::now();
    let (status, _, body) = gw
        .call("GET", "/api/v1/orders/slow", Some(&customer(1)))
        .await;
    let elapsed = started.elapsed();
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(code(&body), "upstream_timeout");
    assert!(
        elapsed >= Duration::from_millis(500) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert_eq!(
        backends.seen.count("GET", "/api/v1/orders/slow"),
        1,
        "a timeout is not retried"
    );
    assert_eq!(
        gw.metric(
            "gateway_upstream_requests_total",
            &[("upstream", "order"), ("outcome", "timeout")]
        )
        .await,
        Some(1.0)
    );
    // The attempt's time is in the upstream latency histogram: the whole timeout.
    let order = [("upstream", "order")];
    assert_eq!(
        gw.metric("gateway_upstream_request_duration_seconds_count", &order)
            .await,
        Some(1.0)
    );
    let took = gw
        .metric("gateway_upstream_request_duration_seconds_sum", &order)
        .await
        .unwrap();
    assert!((0.5..3.0).contains(&took), "{took}");
    gw.stop().await;
}

#[tokio::test]
async fn a_down_upstream_is_a_503_then_the_breaker_opens() {
    let backends = Backends::start_with_dead(&[Upstream::Payment]).await;
    let mut c = config(&backends);
    c.fault_tolerance.upstream_retries = 0;
    c.fault_tolerance.breaker_min_requests = 3;
    c.fault_tolerance.breaker_open_for = Duration::from_secs(60);
    let gw = Gateway::start(c).await;
    let token = customer(1);
    for _ in 0..3 {
        let (status, _, body) = gw.call("GET", "/api/v1/payments/1", Some(&token)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(code(&body), "upstream_unavailable");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("payment")
        );
    }
    assert_eq!(
        gw.metric("gateway_breaker_state", &[("upstream", "payment")])
            .await,
        Some(2.0)
    );
    let (status, headers, body) = gw.call("GET", "/api/v1/payments/1", Some(&token)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("circuit breaker"),
        "{body}"
    );
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((50..=60).contains(&retry_after), "{retry_after}");
    for (outcome, n) in [("error", 3.0), ("rejected_by_breaker", 1.0)] {
        let labels = [("upstream", "payment"), ("outcome", outcome)];
        assert_eq!(
            gw.metric("gateway_upstream_requests_total", &labels).await,
            Some(n),
            "{outcome}"
        );
    }
    // Attempts are timed; the request the breaker refused was never sent.
    assert_eq!(
        gw.metric(
            "gateway_upstream_request_duration_seconds_count",
            &[("upstream", "payment")]
        )
        .await,
        Some(3.0)
    );
    // Other upstreams are not affected.
    assert_eq!(
        gw.metric("gateway_breaker_state", &[("upstream", "order")])
            .await,
        Some(0.0)
    );
    assert_eq!(
        gw.call("GET", "/api/v1/orders/1", Some(&token)).await.0,
        StatusCode::OK
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_open_breaker_answers_well_before_the_timeout() {
    let backends = Backends::start().await;
    let timeout = Duration::from_secs(1);
    let mut c = config(&backends);
    c.fault_tolerance.upstream_timeout = timeout;
    c.fault_tolerance.breaker_min_requests = 2;
    c.fault_tolerance.breaker_open_for = Duration::from_secs(60);
    let gw = Gateway::start(c).await;
    let token = customer(1);
    for _ in 0..2 {
        assert_eq!(
            gw.call("GET", "/api/v1/shipments/slow", Some(&token))
                .await
                .0,
            StatusCode::GATEWAY_TIMEOUT
        );
    }
    assert_eq!(
        gw.metric("gateway_breaker_state", &[("upstream", "shipping")])
            .await,
        Some(2.0)
    );
    let started = Instant::now();
    let (status, headers, _) = gw.call("GET", "/api/v1/shipments/slow", Some(&token)).await;
    let elapsed = started.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key("retry-after"));
    assert!(
        elapsed < timeout / 2,
        "answered in {elapsed:?}, the timeout is {timeout:?}"
    );
    assert_eq!(backends.seen.count("GET", "/api/v1/shipments/slow"), 2);
    gw.stop().await;
}

#[tokio::test]
async fn idempotent_requests_are_retried_and_others_are_not() {
    let backends = Backends::start().await;
    let mut c = config(&backends);
    c.fault_tolerance.upstream_retries = 2;
    let gw = Gateway::start(c).await;
    let token = customer(1);
    let path = "/api/v1/orders/unavailable";

    let (status, headers, body) = gw.call("GET", path, Some(&token)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        headers["x-upstream"], "order",
        "the upstream's own answer, passed through"
    );
    assert_eq!(body["error"]["message"], "order");
    assert_eq!(backends.seen.count("GET", path), 3, "GET: 1 + 2 retries");

    assert_eq!(
        gw.call("POST", path, Some(&token)).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        backends.seen.count("POST", path),
        1,
        "POST without Idempotency-Key: no retry"
    );

    let (status, _, _) = gw
        .send(
            gw.request("POST", path)
                .bearer_auth(&token)
                .header("idempotency-key", "k-1")
                .json(&json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        backends.seen.count("POST", path),
        4,
        "POST with Idempotency-Key: 1 + 2 retries"
    );

    assert_eq!(
        gw.call("PUT", path, Some(&token)).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(backends.seen.count("PUT", path), 3);
    assert_eq!(
        gw.metric(
            "gateway_upstream_requests_total",
            &[("upstream", "order"), ("outcome", "error")]
        )
        .await,
        Some(10.0)
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_retry_succeeds_when_the_upstream_comes_back() {
    let backends = Backends::start().await;
    let mut c = config(&backends);
    c.fault_tolerance.upstream_retries = 3;
    c.fault_tolerance.retry_backoff = Duration::from_millis(200);
    let gw = Gateway::start(c).await;
    let seen = backends.seen.clone();
    let healer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen.healthy
            .store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let (status, _, body) = gw
        .call("GET", "/api/v1/orders/flaky", Some(&customer(1)))
        .await;
    healer.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(backends.seen.count("GET", "/api/v1/orders/flaky"), 2);
    gw.stop().await;
}

/// Found attacking issue 11: the customer service answers a login flood with 503
/// `busy` and `Retry-After` (bounded password hashing); the breaker took those for a
/// failing service and refused every customer route to everyone for 10 s. An upstream
/// that sheds load on purpose is alive: its 503 with `Retry-After` is passed on and
/// does not count against it.
#[tokio::test]
async fn a_503_with_retry_after_is_load_shedding_and_does_not_open_the_breaker() {
    let backends = Backends::start().await;
    let mut c = config(&backends);
    c.fault_tolerance.upstream_retries = 0;
    c.fault_tolerance.breaker_min_requests = 2;
    let gw = Gateway::start(c).await;
    let token = customer(1);
    let busy = "/api/v1/notifications/busy";
    for _ in 0..10 {
        let (status, headers, body) = gw.send(gw.request("GET", busy).bearer_auth(&token)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(code(&body), "busy", "the upstream's own answer: {body}");
        assert!(headers.contains_key("retry-after"));
    }
    assert_eq!(backends.seen.count("GET", busy), 10, "every one reached it");
    assert_eq!(
        gw.metric("gateway_breaker_state", &[("upstream", "notification")])
            .await,
        Some(0.0),
        "closed"
    );
    assert_eq!(
        gw.call("GET", "/api/v1/notifications/ok", Some(&token))
            .await
            .0,
        StatusCode::OK
    );
    gw.stop().await;
}

#[tokio::test]
async fn half_open_breaker_recovers() {
    let backends = Backends::start().await;
    let mut c = config(&backends);
    c.fault_tolerance.upstream_retries = 0;
    c.fault_tolerance.breaker_min_requests = 2;
    c.fault_tolerance.breaker_open_for = Duration::from_millis(300);
    let gw = Gateway::start(c).await;
    let token = customer(1);
    let path = "/api/v1/notifications/flaky";
    let state = || gw.metric("gateway_breaker_state", &[("upstream", "notification")]);

    for _ in 0..2 {
        assert_eq!(
            gw.call("GET", path, Some(&token)).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    assert_eq!(state().await, Some(2.0));
    assert_eq!(
        gw.call("GET", path, Some(&token)).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(backends.seen.count("GET", path), 2, "open: nothing sent");

    // Half-open, the trial fails: open again. The gauge turns half-open by itself.
    sales_testkit::eventually(
        "the breaker reads half-open",
        Duration::from_secs(5),
        || async { (state().await == Some(1.0)).then_some(()) },
    )
    .await;
    assert_eq!(
        gw.call("GET", path, Some(&token)).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(backends.seen.count("GET", path), 3, "one trial");
    assert_eq!(state().await, Some(2.0));

    // Half-open, the trial succeeds: closed.
    backends
        .seen
        .healthy
        .store(true, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(gw.call("GET", path, Some(&token)).await.0, StatusCode::OK);
    assert_eq!(state().await, Some(0.0));
    for _ in 0..3 {
        assert_eq!(gw.call("GET", path, Some(&token)).await.0, StatusCode::OK);
    }
    assert_eq!(backends.seen.count("GET", path), 7);
    gw.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let backends = Backends::start().await;
    let gw = Gateway::start(config(&backends)).await;
    let token = customer(1);
    let big = vec![b'x'; 64 * 1024 + 1];
    let (status, _, body) = gw
        .send(
            gw.request("POST", "/api/v1/orders")
                .bearer_auth(&token)
                .body(big),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(code(&body), "payload_too_large");
    let just_right = vec![b'x'; 64 * 1024];
    let (status, _, body) = gw
        .send(
            gw.request("POST", "/api/v1/orders")
                .bearer_auth(&token)
                .body(just_right),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["body_len"], 64 * 1024);

    // A chunked body, no Content-Length: refused once it grows past the limit.
    let head = format!(
        "POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let chunk = vec![b'y'; 16 * 1024];
    let mut chunked = Vec::new();
    for _ in 0..5 {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(&chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let answer = raw_http(&gw.base, &head, &chunked).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"));
    assert_eq!(
        backends.seen.count("POST", "/api/v1/orders"),
        1,
        "only the small one got through"
    );
    gw.stop().await;
}

#[tokio::test]
async fn request_ids_travel_both_ways() {
    let backends = Backends::start().await;
    let gw = Gateway::start(config(&backends)).await;
    let (_, headers, body) = gw
        .send(
            gw.request("GET", "/api/v1/products")
                .header("x-request-id", "req-123"),
        )
        .await;
    assert_eq!(body["headers"]["x-request-id"], "req-123");
    assert_eq!(headers["x-request-id"], "req-123");
    let (_, headers, body) = gw.call("GET", "/api/v1/products", None).await;
    let generated = headers["x-request-id"].to_str().unwrap();
    assert!(!generated.is_empty());
    assert_eq!(body["headers"]["x-request-id"], generated);
    // Errors of the gateway itself carry it too.
    let (_, headers, _) = gw
        .send(
            gw.request("GET", "/api/v1/orders")
                .header("x-request-id", "req-401"),
        )
        .await;
    assert_eq!(headers["x-request-id"], "req-401");
    gw.stop().await;
}

#[tokio::test]
async fn the_trace_continues_upstream() {
    // A tracer, as `main` installs one (each test runs in its own process under nextest).
    let telemetry = sales_platform::config::TelemetryArgs {
        otlp_traces_endpoint: None,
        otlp_endpoint: None,
        traces_exporter: None,
        service_name: None,
        resource_attributes: None,
        traces_sampler: None,
        traces_sampler_arg: None,
        log_format: sales_platform::config::LogFormat::Text,
        log_filter: "info".into(),
        trace_filter: "info".into(),
    };
    let _guard = sales_platform::telemetry::init("gateway-test", &telemetry).ok();
    let backends = Backends::start().await;
    let gw = Gateway::start(config(&backends)).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let incoming = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let (_, _, body) = gw
        .send(
            gw.request("GET", "/api/v1/products")
                .header("traceparent", &incoming),
        )
        .await;
    let forwarded = body["headers"]["traceparent"].as_str().unwrap();
    let parts: Vec<&str> = forwarded.split('-').collect();
    assert_eq!(parts.len(), 4, "{forwarded}");
    assert_eq!(parts[1], trace_id, "same trace");
    assert_ne!(
        parts[2], "00f067aa0ba902b7",
        "the gateway's span is the parent"
    );
    gw.stop().await;
}

#[tokio::test]
async fn swagger_ui_over_every_service() {
    let backends = Backends::start_with_dead(&[Upstream::Shipping]).await;
    let gw = Gateway::start(config(&backends)).await;
    let get = |path: &str| gw.client.get(format!("{}{path}", gw.base)).send();

    let page = get("/docs/").await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("swagger"));
    let init = get("/docs/swagger-initializer.js").await.unwrap();
    assert_eq!(init.status(), StatusCode::OK);
    let js = init.text().await.unwrap();
    for upstream in Upstream::ALL {
        assert!(
            js.contains(&format!("/openapi/{}.json", upstream.name())),
            "{upstream}"
        );
    }
    assert!(js.contains("\"/openapi.json\""));

    let (status, _, doc) = gw.call("GET", "/openapi/order.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["info"]["title"], "order service");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer_token"]["scheme"],
        "bearer"
    );

    let (status, _, body) = gw.call("GET", "/openapi/shipping.json", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(code(&body), "upstream_unavailable");
    let (status, _, body) = gw.call("GET", "/openapi/nothing.json", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "not_found");

    let (status, _, own) = gw.call("GET", "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(own["paths"]["/openapi/{service}.json"].is_object(), "{own}");
    let (status, _, health) = gw.call("GET", "/health", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "ok");
    gw.stop().await;
}

#[tokio::test]
async fn admin_role_comes_from_the_token_only() {
    // Role claims other than customer/admin are not tokens of this system.
    let backends = Backends::start().await;
    let gw = Gateway::start(config(&backends)).await;
    let mut c = claims(1, false);
    c.sub = "not-a-number".into();
    let (status, _, body) = gw
        .call("GET", "/api/v1/orders", Some(&PROVIDER.sign(&c).unwrap()))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&body), "invalid_token");
    let mut c = claims(1, false);
    c.role = "root".into();
    let (status, _, body) = gw
        .call("GET", "/api/v1/orders", Some(&PROVIDER.sign(&c).unwrap()))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&body), "invalid_token");
    gw.stop().await;
}
