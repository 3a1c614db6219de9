//! The gateway in front of echo servers standing in for the services, with real Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use gateway_service::routes::{ROUTES, Upstream};
use reqwest::StatusCode;
use sales_contracts::api::auth::Role;
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
    // Dot segments never reach a service (clients like reqwest remove them; raw HTTP can send them).
    let answer = raw_http(
        &gw.base,
        &format!("GET /api/v1/products/../orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"),
        b"",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("invalid_path"));

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
            ("expired", expired()),
            ("wrong issuer", wrong_issuer()),
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
        "wrong_issuer",
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
    // No token: the client's own identity headers are dropped.
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
    // With a token: the token's customer, never the header's.
    let (status, _, body) = gw
        .send(
            gw.request("GET", "/api/v1/orders/3")
                .bearer_auth(customer(42))
                .header("x-customer-id", "1")
                .header("X-Customer-Role", "admin"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["headers"]["x-customer-id"], "42");
    assert_eq!(body["headers"]["x-customer-role"], "customer");
    let (_, _, body) = gw.call("POST", "/api/v1/products", Some(&admin(9))).await;
    assert_eq!(body["headers"]["x-customer-id"], "9");
    assert_eq!(body["headers"]["x-customer-role"], "admin");
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
        assert!(body["headers"]["x-customer-id"].is_null());
        let (status, _, body) = open.call(method, path, Some(&customer(11))).await;
        assert_eq!(status, StatusCode::OK, "open, customer: {method} {path}");
        assert_eq!(
            body["headers"]["x-customer-id"], "11",
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
        assert_eq!(body["headers"]["x-customer-id"], "5");
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

#[tokio::test]
async fn anonymous_clients_are_counted_by_address() {
    let backends = Backends::start().await;
    let mut c = config(&backends);
    c.rate_limit.rate_limit_requests = 2;
    c.rate_limit.rate_limit_window = Duration::from_secs(60);
    c.rate_limit.trust_forwarded_for = true;
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
    let forwarded = body["headers"]["x-forwarded-for"].as_str().unwrap();
    assert!(forwarded.starts_with("203.0.113.3"), "{forwarded}");

    // Not trusting the header: changing it does not escape the limit.
    c.rate_limit.trust_forwarded_for = false;
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
async fn requests_are_served_without_redis() {
    let backends = Backends::start().await;
    let mut c = config(&backends);
    c.rate_limit.redis_url =
        format!("redis://{}", dead_url().await.trim_start_matches("http://")).into();
    c.rate_limit.rate_limit_requests = 1;
    let gw = Gateway::start(c).await;
    let started = Instant::now();
    for _ in 0..5 {
        let (status, headers, _) = gw.call("GET", "/api/v1/orders", Some(&customer(1))).await;
        assert_eq!(status, StatusCode::OK, "fail open");
        assert_eq!(headers["x-ratelimit-limit"], "1");
        assert!(headers.get("x-ratelimit-remaining").is_none());
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        gw.metric("gateway_rate_limit_unchecked_total", &[]).await,
        Some(5.0)
    );
    gw.stop().await;
}

#[tokio::test]
async fn rate_limits_come_back_with_redis() {
    let backends = Backends::start().await;
    let mut relay = TcpRelay::start(redis_addr().await).await;
    let mut c = config(&backends);
    c.rate_limit.redis_url = format!("redis://{}", relay.addr).into();
    let gw = Gateway::start(c).await;
    let alice = customer(1);
    let (_, headers, _) = gw.call("GET", "/api/v1/orders", Some(&alice)).await;
    assert_eq!(headers["x-ratelimit-remaining"], "999");

    relay.cut().await;
    for _ in 0..3 {
        let (status, headers, _) = gw.call("GET", "/api/v1/orders", Some(&alice)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers.get("x-ratelimit-remaining").is_none());
    }
    relay.restore().await;
    let remaining = sales_testkit::eventually(
        "rate limits enforced again",
        Duration::from_secs(20),
        || async {
            let (_, headers, _) = gw.call("GET", "/api/v1/orders", Some(&alice)).await;
            headers
                .get("x-ratelimit-remaining")
                .map(|v| v.to_str().unwrap().to_owned())
        },
    )
    .await;
    assert!(remaining.parse::<u32>().unwrap() < 999);
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
        otlp_endpoint: None,
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
    let mut c = claims(1, Role::Customer);
    c.sub = "not-a-number".into();
    let (status, _, body) = gw
        .call("GET", "/api/v1/orders", Some(&sign(&c, SECRET)))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&body), "invalid_token");
    gw.stop().await;
}
