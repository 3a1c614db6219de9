//! Seed 004's stock API and seed 002's stock routes, with their shapes, on a real
//! PostgreSQL, called as the gateway forwards a client without an account while the
//! seeds' routes are open; and no more than the seeds let such a client do.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use inventory_service::SERVICE;
use reqwest::{Method, StatusCode};
use sales_platform::identity::TokenClaims;
use sales_platform::identity::claims::OnBehalfOf;
use sales_platform::identity::service_audience;
use serde_json::json;
use support::{ADMIN, Inventory, ORDER_SERVICE, SEED_CLIENT};

#[tokio::test]
async fn seed_004_stock_api_as_documented() {
    let inv = Inventory::start().await;
    let (status, item) = inv
        .post(
            SEED_CLIENT,
            "/api/v1/stock/items",
            json!({"item_sku": "SKU-ABC", "quantity": 10}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(item, json!({"item_sku": "SKU-ABC", "quantity": 10}));
    inv.post(
        SEED_CLIENT,
        "/api/v1/stock/items",
        json!({"item_sku": "SKU-XYZ", "quantity": 5}),
    )
    .await;

    let (_, all) = inv.get(SEED_CLIENT, "/api/v1/stock/").await;
    assert_eq!(
        all,
        json!([{"item_sku": "SKU-ABC", "quantity": 10}, {"item_sku": "SKU-XYZ", "quantity": 5}])
    );
    let (_, one) = inv.get(SEED_CLIENT, "/api/v1/stock/SKU-ABC").await;
    assert_eq!(one, json!({"item_sku": "SKU-ABC", "quantity": 10}));

    let (status, r) = inv
        .post(
            SEED_CLIENT,
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
            SEED_CLIENT,
            "/api/v1/stock/items",
            json!({"item_sku": "SKU-ABC", "quantity": 20}),
        )
        .await;
    assert_eq!(updated["quantity"], 20);
    let (_, level) = inv.get(ADMIN, "/api/v1/inventory/items/SKU-ABC").await;
    assert_eq!(
        (level["on_hand"].as_i64(), level["reserved"].as_i64()),
        (Some(22), Some(2))
    );

    let (status, released) = inv
        .post(
            SEED_CLIENT,
            "/api/v1/stock/release",
            json!({"reservation_id": id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        released,
        json!({"released": true, "reservation_id": id, "item_sku": "SKU-ABC"})
    );
    let (_, one) = inv.get(SEED_CLIENT, "/api/v1/stock/SKU-ABC").await;
    assert_eq!(one["quantity"], 22);

    // Seed 004's errors: 400 when short or already released, 404 when unknown.
    let (status, body) = inv
        .post(
            SEED_CLIENT,
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
            SEED_CLIENT,
            "/api/v1/stock/reserve",
            json!({"item_sku": "NOPE", "quantity": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = inv
        .post(
            SEED_CLIENT,
            "/api/v1/stock/release",
            json!({"reservation_id": id}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "already_released");
    let (status, _) = inv
        .post(
            SEED_CLIENT,
            "/api/v1/stock/release",
            json!({"reservation_id": 999_999}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = inv.get(SEED_CLIENT, "/api/v1/stock/NOPE").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = inv
        .post(
            SEED_CLIENT,
            "/api/v1/stock/items",
            json!({"item_sku": "SKU-ABC", "quantity": -1}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = inv
        .post(
            SEED_CLIENT,
            "/api/v1/stock/reserve",
            json!({"item_sku": "SKU-ABC"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    inv.stop().await;
}

#[tokio::test]
async fn seed_002_stock_routes_take_out_only_what_is_available() {
    let inv = Inventory::start().await;
    let (status, _) = inv
        .put(
            ADMIN,
            "/api/v1/inventory/items/P-7",
            json!({"on_hand": 5, "product_id": 7}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    inv.reserve_for_order(Some(1), json!([{"sku": "P-7", "quantity": 2}]))
        .await;

    let (_, stock) = inv.get(SEED_CLIENT, "/inventory/stock/7").await;
    assert_eq!(stock, json!({"product_id": 7, "sku": "P-7", "stock": 3}));
    let (status, taken) = inv
        .put(
            SEED_CLIENT,
            "/inventory/stock",
            json!({"product_id": 7, "quantity": 3}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(taken["stock"], 0);
    let (status, body) = inv
        .put(
            SEED_CLIENT,
            "/inventory/stock",
            json!({"product_id": 7, "quantity": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body["error"]["message"],
        "Product not found or insufficient stock"
    );
    let (status, _) = inv
        .put(
            SEED_CLIENT,
            "/inventory/stock",
            json!({"product_id": 8, "quantity": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = inv
        .put(
            SEED_CLIENT,
            "/inventory/stock",
            json!({"product_id": 7, "quantity": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, level) = inv.get(ADMIN, "/api/v1/inventory/items/P-7").await;
    assert_eq!(
        (level["on_hand"].as_i64(), level["reserved"].as_i64()),
        (Some(2), Some(2))
    );
    let (status, _) = inv.get(SEED_CLIENT, "/inventory/stock/x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    inv.stop().await;
}

/// Issue 11, found by fuzzing: seed 004's "add or update" on an item with units
/// reserved answered 500 when reserved + quantity went past the largest count (an
/// integer overflow in the database). Every quantity that cannot be stored is a 400
/// that says why, on every stock-changing seed route; nothing changes.
#[tokio::test]
async fn seed_quantities_past_the_largest_count_get_a_clear_400() {
    let inv = Inventory::start().await;
    inv.post(
        SEED_CLIENT,
        "/api/v1/stock/items",
        json!({"item_sku": "SKU-ABC", "quantity": 10}),
    )
    .await;
    let (status, _) = inv
        .post(
            SEED_CLIENT,
            "/api/v1/stock/reserve",
            json!({"item_sku": "SKU-ABC", "quantity": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = inv
        .post(
            SEED_CLIENT,
            "/api/v1/stock/items",
            json!({"item_sku": "SKU-ABC", "quantity": 2_147_483_646}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    for part in ["SKU-ABC", "2147483646", "2 units reserved", "2147483647"] {
        assert!(
            message.contains(part),
            "{message:?} should mention {part:?}"
        );
    }
    let (_, level) = inv.get(ADMIN, "/api/v1/inventory/items/SKU-ABC").await;
    assert_eq!(
        (level["on_hand"].as_i64(), level["reserved"].as_i64()),
        (Some(10), Some(2))
    );

    // The largest quantity that fits is taken.
    let (status, item) = inv
        .post(
            SEED_CLIENT,
            "/api/v1/stock/items",
            json!({"item_sku": "SKU-ABC", "quantity": 2_147_483_645}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    assert_eq!(item["quantity"], 2_147_483_645);
    let (_, level) = inv.get(ADMIN, "/api/v1/inventory/items/SKU-ABC").await;
    assert_eq!(
        (level["on_hand"].as_i64(), level["reserved"].as_i64()),
        (Some(i64::from(i32::MAX)), Some(2))
    );
    let (status, item) = inv
        .post(
            SEED_CLIENT,
            "/api/v1/stock/items",
            json!({"item_sku": "SKU-NEW", "quantity": i32::MAX}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");

    // A quantity that does not fit in the request, or that no count can have.
    // (SKU-NEW first loses a unit, so that the largest request is one too many.)
    let (status, _) = inv
        .post(
            SEED_CLIENT,
            "/api/v1/stock/reserve",
            json!({"item_sku": "SKU-NEW", "quantity": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let cases = [
        (
            "/api/v1/stock/items",
            json!({"item_sku": "SKU-ABC", "quantity": 2_147_483_648_i64}),
            "invalid value: integer `2147483648`",
        ),
        (
            "/api/v1/stock/reserve",
            json!({"item_sku": "SKU-ABC", "quantity": 2_147_483_648_i64}),
            "invalid value: integer `2147483648`",
        ),
        (
            "/api/v1/stock/reserve",
            json!({"item_sku": "SKU-NEW", "quantity": i32::MAX}),
            "not enough stock for SKU-NEW (requested 2147483647, available 2147483646)",
        ),
        (
            "/api/v1/stock/reserve",
            json!({"item_sku": "SKU-ABC", "quantity": i32::MIN}),
            "must be at least 1",
        ),
    ];
    for (path, request, text) in cases {
        let (status, body) = inv.post(SEED_CLIENT, path, request.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {request}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(text),
            "{path} {request}: {message:?} should mention {text:?}"
        );
    }

    // Seed 002's take-out: past what a count can hold, or more than there is.
    let (status, _) = inv
        .put(
            ADMIN,
            "/api/v1/inventory/items/P-9",
            json!({"on_hand": i32::MAX, "product_id": 9}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = inv
        .put(
            SEED_CLIENT,
            "/inventory/stock",
            json!({"product_id": 9, "quantity": 2_147_483_648_i64}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = inv
        .put(
            SEED_CLIENT,
            "/inventory/stock",
            json!({"product_id": 9, "quantity": i32::MIN}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    inv.reserve_for_order(Some(5), json!([{"sku": "P-9", "quantity": 1}]))
        .await;
    let (status, body) = inv
        .put(
            SEED_CLIENT,
            "/inventory/stock",
            json!({"product_id": 9, "quantity": i32::MAX}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        body["error"]["message"],
        "Product not found or insufficient stock"
    );
    let (status, taken) = inv
        .put(
            SEED_CLIENT,
            "/inventory/stock",
            json!({"product_id": 9, "quantity": i32::MAX - 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{taken}");
    assert_eq!(taken["stock"], 0);
    let (_, level) = inv.get(ADMIN, "/api/v1/inventory/items/P-9").await;
    assert_eq!(
        (level["on_hand"].as_i64(), level["reserved"].as_i64()),
        (Some(1), Some(1))
    );
    inv.stop().await;
}

/// Seed 004 let anyone release the reservations its own `reserve` made, which
/// belong to no order. Through its route an anonymous client (or a customer, while
/// the seeds' routes are open) must not release anything else: not the reservation
/// of a customer's order, not one an administrator or the order service made through
/// the canonical API. Those answer as if they did not exist.
#[tokio::test]
async fn seed_004_release_touches_only_seed_004_reservations() {
    let inv = Inventory::start().await;
    inv.set_stock("SKU-O", 10).await;
    let for_order = inv
        .reserve_for_order(Some(42), json!([{"sku": "SKU-O", "quantity": 3}]))
        .await["reservation_id"]
        .as_i64()
        .unwrap();
    let (status, no_order) = inv
        .post(
            ADMIN,
            "/api/v1/inventory/reservations",
            json!({"items": [{"sku": "SKU-O", "quantity": 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{no_order}");
    let no_order = no_order["reservation_id"].as_i64().unwrap();
    let (status, seed) = inv
        .post(
            SEED_CLIENT,
            "/api/v1/stock/reserve",
            json!({"item_sku": "SKU-O", "quantity": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{seed}");
    let seed = seed["reservation_id"].as_i64().unwrap();

    let unknown = 999_999;
    let (status, missing) = inv
        .post(
            SEED_CLIENT,
            "/api/v1/stock/release",
            json!({"reservation_id": unknown}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let customer_while_open = inv.identity.minter().sign_as_gateway(&TokenClaims::gateway(
        service_audience(SERVICE),
        OnBehalfOf::Customer(7),
        true,
        None,
        Duration::from_secs(600),
    ));
    let callers = [
        ("an anonymous client", inv.token(SEED_CLIENT).unwrap()),
        ("a customer while the seeds are open", customer_while_open),
    ];
    for (who, token) in &callers {
        for id in [for_order, no_order] {
            let r = inv
                .send_token(
                    Method::POST,
                    "/api/v1/stock/release",
                    Some(token),
                    Some(json!({"reservation_id": id})),
                )
                .await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{who}, {id}: {r:?}");
            // Exactly what a reservation that does not exist gets.
            let as_missing = missing
                .to_string()
                .replace(&unknown.to_string(), &id.to_string());
            assert_eq!(r.body.to_string(), as_missing, "{who}, {id}");
        }
    }
    for id in [for_order, no_order] {
        let (_, r) = inv
            .get(
                ORDER_SERVICE,
                &format!("/api/v1/inventory/reservations/{id}"),
            )
            .await;
        assert_eq!(r["status"], "pending", "{r}");
    }
    let level = inv.level("SKU-O").await;
    assert_eq!(
        (level["on_hand"].as_i64(), level["reserved"].as_i64()),
        (Some(10), Some(6))
    );

    // The other seed routes cannot take an order's units either: "add or update"
    // sets what is free, seed 004's reserve and seed 002's take-out take only that.
    let (status, _) = inv
        .post(
            SEED_CLIENT,
            "/api/v1/stock/items",
            json!({"item_sku": "SKU-O", "quantity": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = inv
        .post(
            SEED_CLIENT,
            "/api/v1/stock/reserve",
            json!({"item_sku": "SKU-O", "quantity": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = inv
        .put(
            ADMIN,
            "/api/v1/inventory/items/SKU-O",
            json!({"on_hand": 6, "product_id": 3}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = inv
        .put(
            SEED_CLIENT,
            "/inventory/stock",
            json!({"product_id": 3, "quantity": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let level = inv.level("SKU-O").await;
    assert_eq!(
        (level["on_hand"].as_i64(), level["reserved"].as_i64()),
        (Some(6), Some(6))
    );

    // The seed's own reservation is released through its route, as in the seed.
    let (status, released) = inv
        .post(
            SEED_CLIENT,
            "/api/v1/stock/release",
            json!({"reservation_id": seed}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{released}");
    // An administrator acts with an administrator's rights, on any route.
    let (status, released) = inv
        .post(
            ADMIN,
            "/api/v1/stock/release",
            json!({"reservation_id": no_order}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{released}");
    // The order's reservation is whole: the order service commits it.
    let (status, committed) = inv
        .post(
            ORDER_SERVICE,
            &format!("/api/v1/inventory/reservations/{for_order}/commit"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{committed}");
    let level = inv.level("SKU-O").await;
    assert_eq!(
        (level["on_hand"].as_i64(), level["reserved"].as_i64()),
        (Some(3), Some(0))
    );
    inv.stop().await;
}

/// Found attacking issue 11: with the seeds' routes open, a caller without an account
/// emptied and rewrote the catalogue's stock through seed 004's stock API (which knows
/// nothing of a catalogue). Seed 004's unauthenticated rights cover seed 004's own
/// items; a catalogue product's item is an administrator's to count, and it is refused
/// with a 403 that says so. Administrators keep every right.
#[tokio::test]
async fn seed_004_callers_cannot_touch_a_catalogue_products_stock() {
    let inv = Inventory::start().await;
    let created = sales_contracts::Envelope::new(
        "test",
        sales_contracts::events::ProductCreated {
            product_id: 12,
            sku: "ESPRESSO".into(),
            name: "Espresso".into(),
            price: sales_contracts::Money::new(2490, sales_contracts::Currency::USD),
            initial_stock: 50,
        },
    )
    .into_json();
    inv.broker
        .publish_raw(
            created.message_type.as_str(),
            &serde_json::to_vec(&created).unwrap(),
        )
        .await;
    sales_testkit::eventually(
        "the catalogue item to open",
        Duration::from_secs(15),
        || async {
            let (status, level) = inv.get(ADMIN, "/api/v1/inventory/items/ESPRESSO").await;
            (status == StatusCode::OK && level["on_hand"] == 50).then_some(())
        },
    )
    .await;

    for (path, body) in [
        (
            "/api/v1/stock/reserve",
            json!({"item_sku": "ESPRESSO", "quantity": 50}),
        ),
        (
            "/api/v1/stock/items",
            json!({"item_sku": "ESPRESSO", "quantity": 1}),
        ),
    ] {
        let (status, body) = inv.post(SEED_CLIENT, path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert_eq!(body["error"]["code"], "catalogue_item", "{path}: {body}");
    }
    let level = inv.level("ESPRESSO").await;
    assert_eq!(
        (level["on_hand"].as_i64(), level["reserved"].as_i64()),
        (Some(50), Some(0)),
        "untouched: {level}"
    );

    // Seed 004's own items are seed 004's callers' to stock and reserve.
    let (status, _) = inv
        .post(
            SEED_CLIENT,
            "/api/v1/stock/items",
            json!({"item_sku": "SKU-S4", "quantity": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = inv
        .post(
            SEED_CLIENT,
            "/api/v1/stock/reserve",
            json!({"item_sku": "SKU-S4", "quantity": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // An administrator may do both on the catalogue item.
    let (status, body) = inv
        .post(
            ADMIN,
            "/api/v1/stock/items",
            json!({"item_sku": "ESPRESSO", "quantity": 40}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    inv.stop().await;
}
