//! The shipping service against a real PostgreSQL and RabbitMQ: `paid-order` opens
//! exactly one shipment, moves follow the state machine and are announced in order,
//! customers see only their own and cannot move anything, seed 002's shapes hold,
//! and bad input gets a clear 4xx.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use sales_contracts::MessageType;
use sales_contracts::events::{ShipmentDelivered, ShipmentShipped};
use serde_json::{Value, json};
use support::{As, Body, Shipping};

const WAIT: Duration = Duration::from_secs(15);

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_paid_order_opens_exactly_one_shipment_even_when_delivered_twice() {
    let s = Shipping::start().await;
    let paid = Shipping::paid_order(41, Some(7));
    s.publish(&paid).await;
    // The same message again (a redelivery), and another paid-order for the same order.
    s.publish(&paid).await;
    s.publish(&Shipping::paid_order(41, Some(7))).await;

    let shipment = s.wait_for_shipment_of(41).await;
    assert_eq!(shipment["status"], "pending");
    assert_eq!(shipment["customer_id"], 7);
    assert_eq!(shipment["shipped_at"], Value::Null);
    sales_testkit::eventually("all three messages consumed", WAIT, || async {
        (s.consumed("processed").await == 2.0 && s.consumed("duplicate").await == 1.0).then_some(())
    })
    .await;
    let (_, list) = s.get("/api/v1/shipments?order_id=41").await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], shipment["id"]);
    assert_eq!(
        s.metric("shipments_total", &[("status", "pending")]).await,
        Some(1.0)
    );

    // A shipment opened by hand first is not duplicated by the paid-order either,
    // and learns its customer from it.
    let (status, by_hand) = s.post("/shipping", json!({"order_id": 42})).await;
    assert_eq!(status, StatusCode::CREATED);
    s.publish(&Shipping::paid_order(42, Some(8))).await;
    sales_testkit::eventually("the second order's paid-order consumed", WAIT, || async {
        (s.consumed("processed").await == 3.0).then_some(())
    })
    .await;
    let (_, list) = s.get("/api/v1/shipments?order_id=42").await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], by_hand["id"]);
    assert_eq!(list[0]["customer_id"], 8);
    assert_eq!(list[0]["status"], "pending");
    s.stop().await;
}

#[tokio::test]
async fn a_paid_order_that_can_never_apply_is_parked_and_the_consumer_goes_on() {
    let s = Shipping::start().await;
    s.publish(&Shipping::paid_order(0, None)).await;
    let mut wrong_payload = serde_json::to_value(Shipping::paid_order(44, None)).unwrap();
    wrong_payload["data"] = json!({"order_id": "forty-four"});
    s.publish(&serde_json::from_value(wrong_payload).unwrap())
        .await;
    let shipment = s.pay(43, None).await;
    assert_eq!(shipment["customer_id"], Value::Null);
    sales_testkit::eventually("both bad messages parked", WAIT, || async {
        (s.consumed("dead_lettered").await == 2.0).then_some(())
    })
    .await;
    let (_, all) = s.get("/api/v1/shipments").await;
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    s.stop().await;
}

#[tokio::test]
async fn ship_then_deliver_publishes_shipped_then_delivered() {
    let s = Shipping::start().await;
    let mut events = s
        .listen(&[MessageType::ShipmentShipped, MessageType::ShipmentDelivered])
        .await;
    let shipment = s.pay(77, Some(5)).await;
    let id = shipment["id"].as_i64().unwrap();

    let (status, shipped) = s
        .post(
            &format!("/api/v1/shipments/{id}/ship"),
            json!({"carrier": "  DHL ", "tracking_number": "JD014600003SE"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{shipped}");
    assert_eq!(shipped["status"], "shipped");
    assert_eq!(shipped["carrier"], "DHL");
    assert_eq!(shipped["tracking_number"], "JD014600003SE");
    assert!(shipped["shipped_at"].is_string());
    assert_eq!(shipped["delivered_at"], Value::Null);

    // Delivering with no body at all is fine.
    let (status, delivered) = s
        .post_as(
            &format!("/api/v1/shipments/{id}/deliver"),
            As::Admin,
            Body::None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{delivered}");
    assert_eq!(delivered["status"], "delivered");
    assert_eq!(delivered["shipped_at"], shipped["shipped_at"]);
    assert_eq!(delivered["carrier"], "DHL");
    assert!(delivered["delivered_at"].is_string());

    let (envelope, event) = events.next_event::<ShipmentShipped>(WAIT).await;
    assert_eq!(envelope.producer, "shipping");
    assert_eq!(envelope.correlation_id, "77");
    assert_eq!(
        (event.shipment_id, event.order_id, event.customer_id),
        (id, 77, Some(5))
    );
    assert_eq!(
        serde_json::to_value(event.shipped_at).unwrap(),
        shipped["shipped_at"]
    );
    let (_, event) = events.next_event::<ShipmentDelivered>(WAIT).await;
    assert_eq!(
        (event.shipment_id, event.order_id, event.customer_id),
        (id, 77, Some(5))
    );
    assert_eq!(
        serde_json::to_value(event.delivered_at).unwrap(),
        delivered["delivered_at"]
    );
    events.assert_quiet(Duration::from_millis(500)).await;

    for (status, count) in [("pending", 1.0), ("shipped", 1.0), ("delivered", 1.0)] {
        assert_eq!(
            s.metric("shipments_total", &[("status", status)]).await,
            Some(count),
            "shipments_total{{status={status}}}"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn illegal_moves_are_409_and_name_the_current_status() {
    let s = Shipping::start().await;
    let mut events = s
        .listen(&[MessageType::ShipmentShipped, MessageType::ShipmentDelivered])
        .await;
    let id = s.open(5).await;
    let deliver = format!("/api/v1/shipments/{id}/deliver");
    let ship = format!("/api/v1/shipments/{id}/ship");
    let seed = format!("/shipping/{id}");

    // Skipping a step.
    let (status, body) = s.post(&deliver, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "invalid_transition");
    assert_eq!(
        body["error"]["message"],
        format!(
            "shipment {id} is pending and cannot move to delivered; the only move from pending is to shipped"
        )
    );
    assert_eq!(body["error"]["details"]["status"], "pending");
    assert_eq!(body["error"]["details"]["allowed"], json!(["shipped"]));
    let (status, _) = s.put(&seed, json!({"status": "delivered"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Repeating the current status.
    let (status, body) = s.put(&seed, json!({"status": "pending"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is pending")
    );

    assert_eq!(s.post(&ship, json!({})).await.0, StatusCode::OK);
    // Repeating, and going backwards.
    let (status, body) = s.post(&ship, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is shipped and cannot move to shipped")
    );
    let (status, body) = s.put(&seed, json!({"status": "pending"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["details"]["status"], "shipped");

    assert_eq!(s.post(&deliver, json!({})).await.0, StatusCode::OK);
    // Nothing moves a delivered shipment.
    for (path, body) in [(&ship, json!({})), (&deliver, json!({}))] {
        let (status, answer) = s.post(path, body).await;
        assert_eq!(status, StatusCode::CONFLICT, "{path}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("delivered is final"),
            "{answer}"
        );
    }
    for target in ["pending", "shipped", "delivered"] {
        let (status, answer) = s.put(&seed, json!({"status": target})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{target}: {answer}");
        assert_eq!(answer["error"]["details"]["status"], "delivered");
    }
    let (_, after) = s.get(&format!("/api/v1/shipments/{id}")).await;
    assert_eq!(after["status"], "delivered");

    // Only the two legal moves were announced.
    events.next_event::<ShipmentShipped>(WAIT).await;
    events.next_event::<ShipmentDelivered>(WAIT).await;
    events.assert_quiet(Duration::from_millis(500)).await;

    // Unknown shipments are 404 for every move.
    assert_eq!(
        s.post("/api/v1/shipments/999999/ship", json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.put("/shipping/999999", json!({"status": "shipped"}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    s.stop().await;
}

#[tokio::test]
async fn concurrent_moves_and_opens_each_succeed_once() {
    let s = Shipping::start().await;
    let opens = (0..10).map(|_| s.post("/api/v1/shipments", json!({"order_id": 300})));
    let results = futures::future::join_all(opens).await;
    let created = results
        .iter()
        .filter(|(st, _)| *st == StatusCode::CREATED)
        .count();
    let existing = results
        .iter()
        .filter(|(st, _)| *st == StatusCode::OK)
        .count();
    assert_eq!((created, existing), (1, 9), "{results:?}");
    let ids: BTreeSet<i64> = results
        .iter()
        .map(|(_, b)| b["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 1);
    let id = *ids.first().unwrap();

    let path = format!("/api/v1/shipments/{id}/ship");
    let ships = (0..10).map(|_| s.post(&path, json!({})));
    let statuses: Vec<StatusCode> = futures::future::join_all(ships)
        .await
        .into_iter()
        .map(|(st, _)| st)
        .collect();
    let ok = statuses.iter().filter(|st| **st == StatusCode::OK).count();
    let conflict = statuses
        .iter()
        .filter(|st| **st == StatusCode::CONFLICT)
        .count();
    assert_eq!((ok, conflict), (1, 9), "{statuses:?}");
    assert_eq!(
        s.metric("shipments_total", &[("status", "shipped")]).await,
        Some(1.0)
    );
    s.stop().await;
}

#[tokio::test]
async fn customers_see_only_their_own_and_may_not_open_or_move() {
    let s = Shipping::start().await;
    let mine = s.pay(1, Some(7)).await["id"].as_i64().unwrap();
    let theirs = s.pay(2, Some(8)).await["id"].as_i64().unwrap();
    let nobodys = s.open(3).await;
    let alice = As::Customer(7);

    let (status, list) = s.get_as("/api/v1/shipments", alice).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![mine]);
    // Filtering for someone else's order finds nothing.
    let (_, list) = s.get_as("/api/v1/shipments?order_id=2", alice).await;
    assert_eq!(list, json!([]));

    assert_eq!(
        s.get_as(&format!("/api/v1/shipments/{mine}"), alice)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        s.get_as(&format!("/shipping/{mine}"), alice).await.0,
        StatusCode::OK
    );
    for id in [theirs, nobodys] {
        for path in [format!("/api/v1/shipments/{id}"), format!("/shipping/{id}")] {
            let (status, body) = s.get_as(&path, alice).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(body["error"]["message"], format!("shipment {id} not found"));
        }
    }

    // Admins and internal callers see everything.
    let (_, all) = s.get_as("/api/v1/shipments", As::Admin).await;
    assert_eq!(all.as_array().unwrap().len(), 3);
    let (_, all) = s.get("/api/v1/shipments").await;
    assert_eq!(all.as_array().unwrap().len(), 3);
    assert_eq!(
        s.get_as(&format!("/api/v1/shipments/{theirs}"), As::Admin)
            .await
            .0,
        StatusCode::OK
    );

    // A customer may neither open nor move, not even their own.
    let forbidden = [
        (
            Method::POST,
            "/api/v1/shipments".to_owned(),
            json!({"order_id": 9}),
        ),
        (Method::POST, "/shipping".to_owned(), json!({"order_id": 9})),
        (
            Method::POST,
            format!("/api/v1/shipments/{mine}/ship"),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/v1/shipments/{mine}/deliver"),
            json!({}),
        ),
        (
            Method::PUT,
            format!("/shipping/{mine}"),
            json!({"status": "shipped"}),
        ),
    ];
    for (method, path, body) in forbidden {
        let (status, answer) = s.call(method.clone(), &path, alice, Body::Json(body)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["code"], "forbidden");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("only an admin or an internal service may"),
            "{answer}"
        );
    }
    // A customer role without an id is still a customer.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/shipments/{mine}/ship", s.base))
        .header("x-customer-role", "customer")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let (_, after) = s.get(&format!("/api/v1/shipments/{mine}")).await;
    assert_eq!(after["status"], "pending");
    // An admin may move it.
    let (status, shipped) = s
        .post_as(
            &format!("/api/v1/shipments/{mine}/ship"),
            As::Admin,
            Body::Json(json!({"carrier": "UPS"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{shipped}");
    s.stop().await;
}

#[tokio::test]
async fn seed_002_shapes() {
    let s = Shipping::start().await;
    let row_keys: BTreeSet<String> = ["id", "order_id", "status", "created_at", "updated_at"]
        .into_iter()
        .map(str::to_owned)
        .collect();

    let (status, created) = s.post("/shipping", json!({"order_id": 123})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(keys(&created), row_keys, "{created}");
    assert_eq!(created["order_id"], 123);
    assert_eq!(created["status"], "pending");
    assert!(created["id"].is_i64());
    assert!(created["created_at"].is_string() && created["updated_at"].is_string());
    let id = created["id"].as_i64().unwrap();

    // The same order again: the same row, 200.
    let (status, again) = s.post("/shipping", json!({"order_id": 123})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, created);

    let (status, got) = s.get(&format!("/shipping/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, created);

    let (status, shipped) = s
        .put(&format!("/shipping/{id}"), json!({"status": "shipped"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{shipped}");
    assert_eq!(keys(&shipped), row_keys, "{shipped}");
    assert_eq!(shipped["status"], "shipped");
    assert_eq!(
        (&shipped["id"], &shipped["order_id"]),
        (&created["id"], &created["order_id"])
    );
    assert_eq!(shipped["created_at"], created["created_at"]);
    assert_ne!(shipped["updated_at"], created["updated_at"]);

    let (status, delivered) = s
        .put(&format!("/shipping/{id}"), json!({"status": "delivered"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys(&delivered), row_keys);
    assert_eq!(delivered["status"], "delivered");

    // The canonical API sees the same shipment with its timestamps.
    let (_, full) = s.get(&format!("/api/v1/shipments/{id}")).await;
    assert_eq!(full["status"], "delivered");
    assert!(full["shipped_at"].is_string() && full["delivered_at"].is_string());

    // A missing shipment.
    let (status, body) = s.get("/shipping/424242").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["message"], "shipment 424242 not found");

    // Canonical POST is idempotent the same way, and returns the full shipment.
    let (status, canonical) = s.post("/api/v1/shipments", json!({"order_id": 123})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(canonical["id"], id);
    assert_eq!(
        keys(&canonical),
        [
            "id",
            "order_id",
            "customer_id",
            "status",
            "carrier",
            "tracking_number",
            "shipped_at",
            "delivered_at",
            "created_at",
            "updated_at"
        ]
        .into_iter()
        .map(str::to_owned)
        .collect()
    );
    s.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_on_every_endpoint() {
    let s = Shipping::start().await;
    let id = s.open(1).await;
    let big = {
        let mut v = b"{\"order_id\": 1, \"pad\": \"".to_vec();
        v.extend(std::iter::repeat_n(b'x', 70 * 1024));
        v.extend(b"\"}");
        v
    };
    let ship = format!("/api/v1/shipments/{id}/ship");
    let deliver = format!("/api/v1/shipments/{id}/deliver");
    let seed = format!("/shipping/{id}");

    type Case<'a> = (Method, String, Body, StatusCode, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        // POST /api/v1/shipments
        (
            Method::POST,
            "/api/v1/shipments".into(),
            Body::Json(json!({})),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "missing field `order_id`",
        ),
        (
            Method::POST,
            "/api/v1/shipments".into(),
            Body::Raw(b"{\"order_id\": ".to_vec()),
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "not valid JSON",
        ),
        (
            Method::POST,
            "/api/v1/shipments".into(),
            Body::Json(json!({"order_id": "seven"})),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "invalid type",
        ),
        (
            Method::POST,
            "/api/v1/shipments".into(),
            Body::Json(json!({"order_id": 0})),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "order_id must be a positive integer",
        ),
        (
            Method::POST,
            "/api/v1/shipments".into(),
            Body::Json(json!({"order_id": 1, "colour": "red"})),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "unknown field `colour`",
        ),
        (
            Method::POST,
            "/api/v1/shipments".into(),
            Body::Raw(big.clone()),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "larger than",
        ),
        (
            Method::POST,
            "/api/v1/shipments".into(),
            Body::Untyped(b"{\"order_id\": 1}".to_vec()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type: application/json",
        ),
        // GET /api/v1/shipments
        (
            Method::GET,
            "/api/v1/shipments?status=lost".into(),
            Body::None,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "status must be one of pending, shipped, delivered; got \"lost\"",
        ),
        (
            Method::GET,
            "/api/v1/shipments?order_id=abc".into(),
            Body::None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "invalid digit",
        ),
        (
            Method::GET,
            "/api/v1/shipments?limit=0".into(),
            Body::None,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "limit must be between 1 and 500",
        ),
        (
            Method::GET,
            "/api/v1/shipments?offset=-1".into(),
            Body::None,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "offset cannot be negative",
        ),
        // GET /api/v1/shipments/{id}
        (
            Method::GET,
            "/api/v1/shipments/abc".into(),
            Body::None,
            StatusCode::BAD_REQUEST,
            "invalid_path",
            "invalid path parameter",
        ),
        (
            Method::GET,
            "/api/v1/shipments/999999".into(),
            Body::None,
            StatusCode::NOT_FOUND,
            "not_found",
            "shipment 999999 not found",
        ),
        // POST /api/v1/shipments/{id}/ship
        (
            Method::POST,
            "/api/v1/shipments/abc/ship".into(),
            Body::None,
            StatusCode::BAD_REQUEST,
            "invalid_path",
            "invalid path parameter",
        ),
        (
            Method::POST,
            ship.clone(),
            Body::Raw(b"{carrier".to_vec()),
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "not valid JSON",
        ),
        (
            Method::POST,
            ship.clone(),
            Body::Json(json!({"carrier": 5})),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "invalid type",
        ),
        (
            Method::POST,
            ship.clone(),
            Body::Json(json!({"carrier": "   "})),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "carrier cannot be blank",
        ),
        (
            Method::POST,
            ship.clone(),
            Body::Json(json!({"tracking_number": "x".repeat(101)})),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "tracking_number is longer than 100 characters",
        ),
        (
            Method::POST,
            ship.clone(),
            Body::Json(json!({"courier": "DHL"})),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "unknown field `courier`",
        ),
        (
            Method::POST,
            ship.clone(),
            Body::Raw(big.clone()),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "larger than",
        ),
        (
            Method::POST,
            ship.clone(),
            Body::Untyped(b"{}".to_vec()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type: application/json",
        ),
        // POST /api/v1/shipments/{id}/deliver
        (
            Method::POST,
            "/api/v1/shipments/1.5/deliver".into(),
            Body::None,
            StatusCode::BAD_REQUEST,
            "invalid_path",
            "invalid path parameter",
        ),
        (
            Method::POST,
            deliver.clone(),
            Body::Raw(b"[".to_vec()),
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "not valid JSON",
        ),
        (
            Method::POST,
            deliver.clone(),
            Body::Json(json!({"carrier": "DHL"})),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "unknown field `carrier`",
        ),
        (
            Method::POST,
            deliver.clone(),
            Body::Raw(big.clone()),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "larger than",
        ),
        // POST /shipping
        (
            Method::POST,
            "/shipping".into(),
            Body::Json(json!({})),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "missing field `order_id`",
        ),
        (
            Method::POST,
            "/shipping".into(),
            Body::Raw(b"order_id=1".to_vec()),
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "not valid JSON",
        ),
        (
            Method::POST,
            "/shipping".into(),
            Body::Json(json!({"order_id": -3})),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "order_id must be a positive integer",
        ),
        (
            Method::POST,
            "/shipping".into(),
            Body::Raw(big.clone()),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "larger than",
        ),
        // GET /shipping/{id}
        (
            Method::GET,
            "/shipping/abc".into(),
            Body::None,
            StatusCode::BAD_REQUEST,
            "invalid_path",
            "invalid path parameter",
        ),
        // PUT /shipping/{id}
        (
            Method::PUT,
            "/shipping/abc".into(),
            Body::Json(json!({"status": "shipped"})),
            StatusCode::BAD_REQUEST,
            "invalid_path",
            "invalid path parameter",
        ),
        (
            Method::PUT,
            seed.clone(),
            Body::Json(json!({})),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "missing field `status`",
        ),
        (
            Method::PUT,
            seed.clone(),
            Body::Raw(b"{\"status\": shipped}".to_vec()),
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "not valid JSON",
        ),
        (
            Method::PUT,
            seed.clone(),
            Body::Json(json!({"status": "lost"})),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "status must be one of shipped, delivered; got \"lost\"",
        ),
        (
            Method::PUT,
            seed.clone(),
            Body::Json(json!({"status": 2})),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "invalid type",
        ),
        (
            Method::PUT,
            seed.clone(),
            Body::Json(json!({"status": "delivered", "carrier": "DHL"})),
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "only be given when shipping",
        ),
        (
            Method::PUT,
            seed.clone(),
            Body::Raw(big.clone()),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "larger than",
        ),
        (
            Method::PUT,
            seed.clone(),
            Body::None,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type: application/json",
        ),
        // Bad caller headers, and a wrong method.
        (
            Method::DELETE,
            seed.clone(),
            Body::None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "does not accept DELETE",
        ),
    ];
    for (method, path, body, expected, code, message) in cases {
        let what = format!("{method} {path}");
        let (status, answer) = s.call(method, &path, As::Internal, body).await;
        assert_eq!(status, expected, "{what}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{what}: {answer}");
        let text = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            text.contains(message),
            "{what}: {text:?} should say {message:?}"
        );
    }

    // The unknown status lists the allowed ones in the details too.
    let (_, answer) = s.put(&seed, json!({"status": "LOST"})).await;
    assert_eq!(
        answer["error"]["details"]["allowed"],
        json!(["shipped", "delivered"])
    );
    // A malformed x-customer-id is a 400.
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/shipments", s.base))
        .header("x-customer-id", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // None of it changed the shipment.
    let (_, after) = s.get(&format!("/api/v1/shipments/{id}")).await;
    assert_eq!(after["status"], "pending");
    assert_eq!(after["carrier"], Value::Null);
    s.stop().await;
}

#[tokio::test]
async fn listing_filters_by_order_and_status() {
    let s = Shipping::start().await;
    let a = s.open(10).await;
    let b = s.open(11).await;
    let c = s.open(12).await;
    s.post(&format!("/api/v1/shipments/{b}/ship"), json!({}))
        .await;

    let ids = |v: Value| -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids(s.get("/api/v1/shipments").await.1), vec![c, b, a]);
    assert_eq!(
        ids(s.get("/api/v1/shipments?status=pending").await.1),
        vec![c, a]
    );
    assert_eq!(
        ids(s.get("/api/v1/shipments?status=SHIPPED").await.1),
        vec![b]
    );
    assert_eq!(ids(s.get("/api/v1/shipments?order_id=12").await.1), vec![c]);
    assert_eq!(
        ids(s
            .get("/api/v1/shipments?order_id=11&status=pending")
            .await
            .1),
        Vec::<i64>::new()
    );
    assert_eq!(
        ids(s.get("/api/v1/shipments?limit=1&offset=1").await.1),
        vec![b]
    );
    s.stop().await;
}

#[tokio::test]
async fn openapi_lists_every_route() {
    let s = Shipping::start().await;
    let (status, doc) = s.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    let expected: BTreeSet<String> = [
        "GET /api/v1/shipments",
        "POST /api/v1/shipments",
        "GET /api/v1/shipments/{id}",
        "POST /api/v1/shipments/{id}/ship",
        "POST /api/v1/shipments/{id}/deliver",
        "POST /shipping",
        "GET /shipping/{id}",
        "PUT /shipping/{id}",
        "GET /health",
        "GET /ready",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(routes, expected);
    assert_eq!(doc["info"]["title"], "Shipping service");
    for schema in [
        "Shipment",
        "Seed002Shipping",
        "ShipmentStatus",
        "ErrorResponse",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "schema {schema} missing"
        );
    }
    // The platform's own pages are there too.
    assert_eq!(s.get("/health").await.0, StatusCode::OK);
    let docs = reqwest::get(format!("{}/docs/", s.base)).await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    s.stop().await;
}
