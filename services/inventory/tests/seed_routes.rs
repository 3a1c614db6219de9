//! Seed 004's stock API and seed 002's stock routes, with their shapes, on a real
//! PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::Inventory;

#[tokio::test]
async fn seed_004_stock_api_as_documented() {
    let inv = Inventory::start().await;
    let (status, item) = inv
        .post(
            "/api/v1/stock/items",
            json!({"item_sku": "SKU-ABC", "quantity": 10}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(item, json!({"item_sku": "SKU-ABC", "quantity": 10}));
    inv.post(
        "/api/v1/stock/items",
        json!({"item_sku": "SKU-XYZ", "quantity": 5}),
    )
    .await;

    let (_, all) = inv.get("/api/v1/stock/").await;
    assert_eq!(
        all,
        json!([{"item_sku": "SKU-ABC", "quantity": 10}, {"item_sku": "SKU-XYZ", "quantity": 5}])
    );
    let (_, one) = inv.get("/api/v1/stock/SKU-ABC").await;
    assert_eq!(one, json!({"item_sku": "SKU-ABC", "quantity": 10}));

    let (status, r) = inv
        .post(
            "/api/v1/stock/reserve",
            json!({"item_sku": "SKU-ABC", "quantity": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let id = r["reservation_id"].as_i64().unwrap();
    assert_eq!(
        r,
        json!({"reservation_id": id, "item_sku": "SKU-ABC", "quantity": 2, "remaining_quantity": 8})
    );

    // "Add or update" sets what can be reserved; what is reserved stays reserved.
    let (_, updated) = inv
        .post(
            "/api/v1/stock/items",
            json!({"item_sku": "SKU-ABC", "quantity": 20}),
        )
        .await;
    assert_eq!(updated["quantity"], 20);
    let (_, level) = inv.get("/api/v1/inventory/items/SKU-ABC").await;
    assert_eq!(
        (level["on_hand"].as_i64(), level["reserved"].as_i64()),
        (Some(22), Some(2))
    );

    let (status, released) = inv
        .post("/api/v1/stock/release", json!({"reservation_id": id}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        released,
        json!({"released": true, "reservation_id": id, "item_sku": "SKU-ABC"})
    );
    let (_, one) = inv.get("/api/v1/stock/SKU-ABC").await;
    assert_eq!(one["quantity"], 22);

    // Seed 004's errors: 400 when short or already released, 404 when unknown.
    let (status, body) = inv
        .post(
            "/api/v1/stock/reserve",
            json!({"item_sku": "SKU-XYZ", "quantity": 6}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not enough stock")
    );
    let (status, _) = inv
        .post(
            "/api/v1/stock/reserve",
            json!({"item_sku": "NOPE", "quantity": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = inv
        .post("/api/v1/stock/release", json!({"reservation_id": id}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "already_released");
    let (status, _) = inv
        .post("/api/v1/stock/release", json!({"reservation_id": 999_999}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = inv.get("/api/v1/stock/NOPE").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = inv
        .post(
            "/api/v1/stock/items",
            json!({"item_sku": "SKU-ABC", "quantity": -1}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = inv
        .post("/api/v1/stock/reserve", json!({"item_sku": "SKU-ABC"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    inv.stop().await;
}

#[tokio::test]
async fn seed_002_stock_routes_take_out_only_what_is_available() {
    let inv = Inventory::start().await;
    let (status, _) = inv
        .put(
            "/api/v1/inventory/items/P-7",
            json!({"on_hand": 5, "product_id": 7}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    inv.post(
        "/api/v1/inventory/reservations",
        json!({"items": [{"sku": "P-7", "quantity": 2}]}),
    )
    .await;

    let (_, stock) = inv.get("/inventory/stock/7").await;
    assert_eq!(stock, json!({"product_id": 7, "sku": "P-7", "stock": 3}));
    let (status, taken) = inv
        .put("/inventory/stock", json!({"product_id": 7, "quantity": 3}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(taken["stock"], 0);
    let (status, body) = inv
        .put("/inventory/stock", json!({"product_id": 7, "quantity": 1}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body["error"]["message"],
        "Product not found or insufficient stock"
    );
    let (status, _) = inv
        .put("/inventory/stock", json!({"product_id": 8, "quantity": 1}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = inv
        .put("/inventory/stock", json!({"product_id": 7, "quantity": 0}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, level) = inv.get("/api/v1/inventory/items/P-7").await;
    assert_eq!(
        (level["on_hand"].as_i64(), level["reserved"].as_i64()),
        (Some(2), Some(2))
    );
    let (status, _) = inv.get("/inventory/stock/x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    inv.stop().await;
}
