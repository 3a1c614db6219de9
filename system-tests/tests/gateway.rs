//! The gateway in front of the real services: tokens, ownership, a service that is
//! down or stuck, and rate limits shared by two gateway processes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use sales_platform::identity::claims::TokenClaims;
use sales_platform::identity::keys::{SigningKeys, generate_pem};
use sales_testkit::launch::{Process, Service, Signal};
use serde_json::json;
use system_tests::{System, SystemOptions, bin_dir, free_port};

fn access_claims(sub: i64, admin: bool, expires_in: i64) -> TokenClaims {
    let mut claims = TokenClaims::customer_access(
        sub,
        admin,
        1,
        "x",
        "x@example.com",
        Duration::from_secs(600),
    );
    claims.exp = claims.iat + expires_in;
    if expires_in < 0 {
        claims.iat += expires_in - 60;
        claims.nbf = claims.iat;
    }
    claims
}

#[tokio::test]
async fn forged_and_expired_tokens_are_401_and_other_customers_orders_are_404() {
    let sys = System::start_with(SystemOptions {
        seed_compat_open: false,
        ..Default::default()
    })
    .await;
    let admin = sys.admin_token().await;
    let (status, _) = sys
        .call(
            Method::POST,
            "/api/v1/products",
            Some(json!({"sku": "G1", "name": "G1", "price": {"amount": 100, "currency": "USD"}, "initial_stock": 5})),
            Some(&admin),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, alice) = sys.register("alice@example.com", "Alice").await;
    let (_, bob) = sys.register("bob@example.com", "Bob").await;

    let stranger = SigningKeys::from_pem(&generate_pem().unwrap()).unwrap();
    let forged = stranger.sign(&access_claims(1, true, 600)).unwrap();
    let expired = sys.minter.sign_as_provider(&access_claims(1, false, -3600));
    for (what, bad) in [
        ("forged", forged.as_str()),
        ("expired", expired.as_str()),
        ("garbage", "abc.def.ghi"),
    ] {
        for path in ["/api/v1/orders", "/api/v1/products"] {
            let (status, body) = sys.call(Method::GET, path, None, Some(bad)).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{what} token on {path}: {body}"
            );
            assert_eq!(body["error"]["code"], "invalid_token");
        }
    }
    // No token at all: public routes are served, the rest are 401.
    assert_eq!(
        sys.call(Method::GET, "/api/v1/products", None, None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        sys.call(Method::GET, "/api/v1/orders", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    // The seeds' open routes are closed when the switch is off.
    assert_eq!(
        sys.call(Method::GET, "/api/v1/stock/", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    // A customer cannot write the catalogue.
    let (status, _) = sys
        .call(
            Method::POST,
            "/api/v1/products",
            Some(json!({"name": "x", "price": {"amount": 1, "currency": "USD"}})),
            Some(&alice),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (_, products) = sys.call(Method::GET, "/api/v1/products", None, None).await;
    let product = products[0]["id"].as_i64().unwrap();
    sales_testkit::eventually("stock", Duration::from_secs(15), || async {
        let (s, _) = sys
            .call(
                Method::POST,
                "/api/v1/orders",
                Some(json!({"items": [{"product_id": product, "quantity": 1}]})),
                Some(&alice),
            )
            .await;
        (s == StatusCode::CREATED).then_some(())
    })
    .await;
    let (_, mine) = sys
        .call(Method::GET, "/api/v1/orders", None, Some(&alice))
        .await;
    let id = mine[0]["order_id"].as_i64().unwrap();
    let (status, body) = sys
        .call(
            Method::GET,
            &format!("/api/v1/orders/{id}"),
            None,
            Some(&bob),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        sys.call(
            Method::POST,
            &format!("/api/v1/orders/{id}/pay"),
            None,
            Some(&bob)
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        sys.call(Method::GET, "/api/v1/orders", None, Some(&bob))
            .await
            .1,
        json!([])
    );
    // Pretending to be Alice with a header does not work: the gateway drops it.
    let (status, body) = sys
        .request(
            Method::GET,
            Service::Gateway,
            &format!("/api/v1/orders/{id}"),
            None,
            &[
                ("authorization", &format!("Bearer {bob}")),
                ("x-customer-id", "1"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    sys.stop().await;
}

#[tokio::test]
async fn a_down_or_stuck_service_gives_a_fast_503_or_504_not_a_hang() {
    let mut sys = System::start_with(SystemOptions {
        env: [(
            Service::Gateway,
            vec![
                ("UPSTREAM_TIMEOUT".to_owned(), "1s".to_owned()),
                ("BREAKER_MIN_REQUESTS".to_owned(), "4".to_owned()),
                ("BREAKER_OPEN_FOR".to_owned(), "30s".to_owned()),
            ],
        )]
        .into(),
        ..Default::default()
    })
    .await;
    // Registered at the customer service itself: hashing a password on a loaded
    // machine may take longer than this gateway's 1 s upstream timeout.
    let (status, body) = sys
        .post(
            Service::Customer,
            "/api/v1/customers/register",
            json!({"email": "carl@example.com", "password": "a-good-password", "name": "Carl"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, carl) = sys
        .post(
            Service::Customer,
            "/api/v1/customers/login",
            json!({"email": "carl@example.com", "password": "a-good-password"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{carl}");
    let token = carl["token"].as_str().unwrap().to_owned();

    // Stuck: the process is paused, so it accepts connections and never answers.
    let shipping = &sys.processes[&Service::Shipping];
    shipping.signal(Signal::SIGSTOP).unwrap();
    let started = Instant::now();
    let (status, body) = sys
        .call(Method::GET, "/api/v1/shipments", None, Some(&token))
        .await;
    let waited = started.elapsed();
    shipping.signal(Signal::SIGCONT).unwrap();
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert!(waited < Duration::from_secs(5), "answered after {waited:?}");

    // Down: refused connections are 503, and after a few the breaker opens.
    sys.processes
        .get_mut(&Service::Notification)
        .unwrap()
        .terminate(Duration::from_secs(10));
    let mut last = None;
    for _ in 0..6 {
        last = Some(
            sys.call(Method::GET, "/api/v1/notifications", None, Some(&token))
                .await,
        );
        assert_eq!(last.as_ref().unwrap().0, StatusCode::SERVICE_UNAVAILABLE);
    }
    let (_, body) = last.unwrap();
    assert_eq!(body["error"]["code"], "upstream_unavailable", "{body}");
    let metrics = sales_testkit::http_get(format!("{}/metrics", sys.admin_url(Service::Gateway)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let open = metrics.lines().any(|l| {
        l.starts_with("gateway_breaker_state")
            && l.contains("upstream=\"notification\"")
            && l.ends_with(" 2")
    });
    assert!(open, "the breaker should be open:\n{metrics}");
    let answer = sales_testkit::http_client()
        .get(format!("{}/api/v1/notifications", sys.gateway()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(answer.headers().get("retry-after").is_some());
    // The other services are unaffected.
    assert_eq!(
        sys.call(Method::GET, "/api/v1/products", None, None)
            .await
            .0,
        StatusCode::OK
    );
    sys.stop().await;
}

#[tokio::test]
async fn the_rate_limit_holds_across_two_gateway_processes() {
    let sys = System::start_with(SystemOptions {
        rate_limit: 6,
        ..Default::default()
    })
    .await;
    // A second gateway process on other ports, sharing Redis (and the key prefix).
    let mut wiring = sys.wiring.clone();
    wiring
        .ports
        .insert(Service::Gateway, (free_port(), free_port()));
    let mut second = Process::spawn(
        Service::Gateway,
        &bin_dir(),
        &wiring,
        Stdio::inherit(),
        Stdio::inherit(),
    )
    .unwrap();
    let second_url = wiring.base_url(Service::Gateway);
    sales_testkit::wait_ready(&format!("{second_url}/ready"), Duration::from_secs(30))
        .await
        .unwrap();

    let client = sales_testkit::http_client();
    let mut statuses = Vec::new();
    for i in 0..8 {
        let base = if i % 2 == 0 {
            sys.gateway()
        } else {
            second_url.clone()
        };
        let r = client
            .get(format!("{base}/api/v1/products"))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry_after: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry_after >= 1, "Retry-After {retry_after}");
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "rate_limited");
        }
    }
    assert_eq!(statuses, vec![200, 200, 200, 200, 200, 200, 429, 429]);
    second.terminate(Duration::from_secs(10));
    sys.stop().await;
}
