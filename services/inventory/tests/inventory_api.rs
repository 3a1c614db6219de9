//! The inventory against a real PostgreSQL and RabbitMQ: reservations never
//! oversell, are all-or-nothing, expire, and bad input gets a clear 4xx.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::Inventory;

#[tokio::test]
async fn fifty_concurrent_orders_for_the_last_ten_units_reserve_exactly_ten() {
    let inv = Inventory::start().await;
    inv.set_stock("LAST-TEN", 10).await;

    let attempts = (1..=50).map(|order_id| {
        let inv = &inv;
        async move {
            inv.post(
                "/api/v1/inventory/reservations",
                json!({"order_id": order_id, "items": [{"sku": "LAST-TEN", "quantity": 1}]}),
            )
            .await
            .0
        }
    });
    let statuses = futures::future::join_all(attempts).await;
    let reserved = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((reserved, refused), (10, 40), "statuses: {statuses:?}");

    let (_, level) = inv.get("/api/v1/inventory/items/LAST-TEN").await;
    assert_eq!(level["on_hand"], 10);
    assert_eq!(level["reserved"], 10);
    assert_eq!(level["available"], 0);
    inv.stop().await;
}

#[tokio::test]
async fn reservation_is_all_or_nothing_and_says_what_is_short() {
    let inv = Inventory::start().await;
    inv.set_stock("A", 5).await;
    inv.set_stock("B", 1).await;

    let (status, body) = inv
        .post(
            "/api/v1/inventory/reservations",
            json!({"order_id": 1, "items": [{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 3}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "insufficient_stock");
    assert_eq!(
        body["error"]["details"]["shortages"],
        json!([{"sku": "B", "requested": 3, "available": 1}])
    );
    assert_eq!(inv.get("/api/v1/inventory/items/A").await.1["reserved"], 0);

    let (status, body) = inv
        .post(
            "/api/v1/inventory/reservations",
            json!({"order_id": 1, "items": [{"sku": "A", "quantity": 1}, {"sku": "NOPE", "quantity": 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["details"]["unknown_skus"], json!(["NOPE"]));
    assert_eq!(inv.get("/api/v1/inventory/items/A").await.1["reserved"], 0);
    inv.stop().await;
}

#[tokio::test]
async fn reservation_life_cycle_and_illegal_moves() {
    let inv = Inventory::start().await;
    inv.set_stock("SKU-1", 8).await;

    // Duplicate SKUs in one request are merged.
    let (status, r) = inv
        .post(
            "/api/v1/inventory/reservations",
            json!({"order_id": 7, "items": [{"sku": "SKU-1", "quantity": 2}, {"sku": "SKU-1", "quantity": 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(r["status"], "pending");
    assert_eq!(r["items"], json!([{"sku": "SKU-1", "quantity": 3}]));
    let id = r["reservation_id"].as_i64().unwrap();

    // Same order again: the same reservation, nothing more reserved.
    let (status, again) = inv
        .post(
            "/api/v1/inventory/reservations",
            json!({"order_id": 7, "items": [{"sku": "SKU-1", "quantity": 3}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["reservation_id"], id);
    assert_eq!(
        inv.get("/api/v1/inventory/items/SKU-1").await.1["reserved"],
        3
    );

    let (status, committed) = inv
        .post(
            &format!("/api/v1/inventory/reservations/{id}/commit"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(committed["status"], "committed");
    let level = inv.get("/api/v1/inventory/items/SKU-1").await.1;
    assert_eq!(
        (level["on_hand"].as_i64(), level["reserved"].as_i64()),
        (Some(5), Some(0))
    );

    let (status, body) = inv
        .post(
            &format!("/api/v1/inventory/reservations/{id}/release"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "invalid_transition");

    // A second reservation, released: the units come back; releasing twice is a 409.
    let (_, r2) = inv
        .post(
            "/api/v1/inventory/reservations",
            json!({"items": [{"sku": "SKU-1", "quantity": 5}]}),
        )
        .await;
    let id2 = r2["reservation_id"].as_i64().unwrap();
    assert_eq!(
        inv.get("/api/v1/inventory/items/SKU-1").await.1["available"],
        0
    );
    let (status, released) = inv
        .post(
            &format!("/api/v1/inventory/reservations/{id2}/release"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(released["status"], "released");
    assert_eq!(
        inv.get("/api/v1/inventory/items/SKU-1").await.1["available"],
        5
    );
    let (status, _) = inv
        .post(
            &format!("/api/v1/inventory/reservations/{id2}/release"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // On hand cannot be set below what is reserved.
    inv.post(
        "/api/v1/inventory/reservations",
        json!({"items": [{"sku": "SKU-1", "quantity": 4}]}),
    )
    .await;
    let (status, body) = inv
        .put("/api/v1/inventory/items/SKU-1", json!({"on_hand": 3}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    inv.stop().await;
}

#[tokio::test]
async fn unclaimed_reservations_expire_and_give_stock_back() {
    let inv = Inventory::start_with(|c| {
        c.reservation_hold = Duration::from_millis(300);
        c.reservation_sweep_every = Duration::from_millis(100);
    })
    .await;
    inv.set_stock("EXP", 4).await;
    let (_, r) = inv
        .post(
            "/api/v1/inventory/reservations",
            json!({"items": [{"sku": "EXP", "quantity": 4}]}),
        )
        .await;
    assert_eq!(
        inv.get("/api/v1/inventory/items/EXP").await.1["available"],
        0
    );
    let id = r["reservation_id"].as_i64().unwrap();
    sales_testkit::eventually(
        "the reservation to expire",
        Duration::from_secs(10),
        || async {
            let (_, r) = inv
                .get(&format!("/api/v1/inventory/reservations/{id}"))
                .await;
            (r["status"] == "released").then_some(())
        },
    )
    .await;
    assert_eq!(
        inv.get("/api/v1/inventory/items/EXP").await.1["available"],
        4
    );
    inv.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx() {
    let inv = Inventory::start().await;
    inv.set_stock("OK", 1).await;
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "missing items",
            json!({"order_id": 1}),
            StatusCode::BAD_REQUEST,
            "missing field `items`",
        ),
        (
            "empty items",
            json!({"items": []}),
            StatusCode::BAD_REQUEST,
            "at least one item",
        ),
        (
            "zero quantity",
            json!({"items": [{"sku": "OK", "quantity": 0}]}),
            StatusCode::BAD_REQUEST,
            "at least 1",
        ),
        (
            "negative quantity",
            json!({"items": [{"sku": "OK", "quantity": -2}]}),
            StatusCode::BAD_REQUEST,
            "at least 1",
        ),
        (
            "quantity not a number",
            json!({"items": [{"sku": "OK", "quantity": "two"}]}),
            StatusCode::BAD_REQUEST,
            "invalid type",
        ),
        (
            "empty sku",
            json!({"items": [{"sku": " ", "quantity": 1}]}),
            StatusCode::BAD_REQUEST,
            "sku must not be empty",
        ),
        (
            "unknown sku",
            json!({"items": [{"sku": "ZZZ", "quantity": 1}]}),
            StatusCode::NOT_FOUND,
            "unknown item",
        ),
    ];
    for (name, body, want, text) in cases {
        let (status, answer) = inv.post("/api/v1/inventory/reservations", body).await;
        assert_eq!(status, want, "{name}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(text),
            "{name}: {message:?} should mention {text:?}"
        );
    }

    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/inventory/reservations", inv.base);
    let r = client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"items\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "malformed_json"
    );

    let r = client.post(&url).body("{}").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let huge = format!(
        "{{\"items\": [{}]}}",
        vec!["{\"sku\":\"OK\",\"quantity\":1}"; 5000].join(",")
    );
    let r = client
        .post(&url)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "payload_too_large"
    );

    let (status, body) = inv.get("/api/v1/inventory/reservations/abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = inv.get("/api/v1/inventory/reservations/999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = inv.get("/api/v1/inventory/items?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = inv.get("/api/v1/inventory/items?product_ids=1,x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = inv.get("/no/such/route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body) = inv
        .put("/api/v1/inventory/items/OK", json!({"on_hand": -1}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = inv
        .put("/api/v1/inventory/items/OK", json!({"onhand": 1}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    inv.stop().await;
}

#[tokio::test]
async fn probes_docs_and_metrics_are_served() {
    let inv = Inventory::start().await;
    let (status, body) = inv.get("/health").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, _) = inv.get("/ready").await;
    assert_eq!(status, StatusCode::OK);
    let (status, doc) = inv.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/api/v1/inventory/items",
        "/api/v1/inventory/items/{sku}",
        "/api/v1/inventory/reservations",
        "/api/v1/inventory/reservations/{id}/release",
        "/health",
        "/ready",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    let docs = reqwest::get(format!("{}/docs/", inv.base)).await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger"));
    let metrics = reqwest::get(format!("{}/metrics", inv.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains(r#"http_requests_total{method="GET",route="/openapi.json",status="200",service="inventory"} 1"#), "{metrics}");
    inv.stop().await;
}

#[tokio::test]
async fn the_api_role_serves_http_and_consumes_nothing() {
    let inv =
        Inventory::start_with(|c| c.http.role = sales_platform::config::ServiceRole::Api).await;
    inv.set_stock("ROLE", 1).await;
    let metrics = reqwest::get(format!("{}/metrics", inv.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.lines().any(|l| l.starts_with("consumers_active{")),
        "an api pod must not consume:\n{metrics}"
    );
    let (status, queues) = inv.get_admin("/admin/dead-letters").await;
    assert_eq!((status, queues), (StatusCode::OK, json!([])));
    inv.stop().await;
}
