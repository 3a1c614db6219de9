//! The shipping service against a real PostgreSQL and RabbitMQ: `paid-order` opens
//! exactly one shipment, moves follow the state machine and are announced in order,
//! customers see only their own and cannot move anything, seed 002's shapes hold,
//! and bad input gets a clear 4xx.
//!
//! Every call carries a token signed by a test gateway or identity provider
//! ([`support::Who`]): an admin opens and moves shipments on the canonical routes,
//! seed 002's clients reach `/shipping` as anonymous callers while the seeds' routes
//! are open. The last tests attack the service directly, as a pod in the namespace
//! could: no credential, tokens that must not verify, callers without the right.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use sales_contracts::MessageType;
use sales_contracts::events::{ShipmentDelivered, ShipmentShipped};
use serde_json::{Value, json};
use support::{ADMIN, Body, GUEST, Shipping, TestIdentity, Who};

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
    let (status, by_hand) = s.seed_post("/shipping", json!({"order_id": 42})).await;
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

    // An operator sees them on the admin port, with an administrator's access token.
    let token = s.identity.minter().access_token(1, true);
    let queue = "/admin/dead-letters/shipping.paid-order";
    let parked = sales_testkit::eventually("both bad messages in the queue", WAIT, || async {
        let (status, parked) = s.call_admin_port(Method::GET, queue, Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{parked}");
        (parked.as_array().unwrap().len() == 2).then_some(parked)
    })
    .await;
    let order_ids: Vec<&Value> = parked
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["body"]["data"]["order_id"])
        .collect();
    assert_eq!(order_ids, [&json!(0), &json!("forty-four")], "{parked}");
    let (status, summary) = s
        .call_admin_port(Method::GET, "/admin/dead-letters", Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        summary,
        json!([{"queue": "shipping.paid-order", "dead_letters": 2}])
    );
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
            ADMIN,
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
    let (status, _) = s.seed_put(&seed, json!({"status": "delivered"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Repeating the current status.
    let (status, body) = s.seed_put(&seed, json!({"status": "pending"})).await;
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
    let (status, body) = s.seed_put(&seed, json!({"status": "pending"})).await;
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
        let (status, answer) = s.seed_put(&seed, json!({"status": target})).await;
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
        s.seed_put("/shipping/999999", json!({"status": "shipped"}))
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
    s.mark_paid(300).await;

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
    let alice = Who::Customer(7);
    let bob = Who::Customer(8);

    let ids = |list: &Value| -> Vec<i64> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_i64().unwrap())
            .collect()
    };
    let (status, list) = s.get_as("/api/v1/shipments", alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&list), vec![mine]);
    let (_, list) = s.get_as("/api/v1/shipments", bob).await;
    assert_eq!(ids(&list), vec![theirs]);
    // Filtering for someone else's order finds nothing.
    let (_, list) = s.get_as("/api/v1/shipments?order_id=2", alice).await;
    assert_eq!(list, json!([]));
    let (_, list) = s.get_as("/api/v1/shipments?order_id=1", bob).await;
    assert_eq!(list, json!([]));

    for path in [
        format!("/api/v1/shipments/{mine}"),
        format!("/shipping/{mine}"),
    ] {
        assert_eq!(s.get_as(&path, alice).await.0, StatusCode::OK, "{path}");
    }
    // Another customer's shipment, and one placed without an account, do not exist
    // for a customer: the same 404 as an unknown id.
    for (who, id) in [
        (alice, theirs),
        (alice, nobodys),
        (bob, mine),
        (bob, nobodys),
    ] {
        for path in [format!("/api/v1/shipments/{id}"), format!("/shipping/{id}")] {
            let (status, body) = s.get_as(&path, who).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{who:?} {path}");
            assert_eq!(body["error"]["message"], format!("shipment {id} not found"));
        }
    }

    // Admins see everything.
    let (_, all) = s.get_as("/api/v1/shipments", ADMIN).await;
    assert_eq!(all.as_array().unwrap().len(), 3);
    assert_eq!(
        s.get_as(&format!("/api/v1/shipments/{theirs}"), ADMIN)
            .await
            .0,
        StatusCode::OK
    );

    // A customer may neither open nor move, not even their own: the canonical
    // routes are for admins (the access table refuses), and so are opening and
    // moving on seed 002's routes (the handler refuses).
    let forbidden = [
        (
            Method::POST,
            "/api/v1/shipments".to_owned(),
            json!({"order_id": 9}),
            "POST /api/v1/shipments is not allowed to customer 7",
        ),
        (
            Method::POST,
            format!("/api/v1/shipments/{mine}/ship"),
            json!({}),
            "POST /api/v1/shipments/{id}/ship is not allowed to customer 7",
        ),
        (
            Method::POST,
            format!("/api/v1/shipments/{mine}/deliver"),
            json!({}),
            "POST /api/v1/shipments/{id}/deliver is not allowed to customer 7",
        ),
        (
            Method::POST,
            "/shipping".to_owned(),
            json!({"order_id": 9}),
            "POST /shipping is not allowed to customer 7",
        ),
        (
            Method::POST,
            "/shipping".to_owned(),
            json!({"order_id": 1}),
            "POST /shipping is not allowed to customer 7",
        ),
        (
            Method::PUT,
            format!("/shipping/{mine}"),
            json!({"status": "shipped"}),
            "PUT /shipping/{id} is not allowed to customer 7",
        ),
        (
            Method::PUT,
            format!("/shipping/{nobodys}"),
            json!({"status": "shipped"}),
            "PUT /shipping/{id} is not allowed to customer 7",
        ),
    ];
    for (method, path, body, message) in forbidden {
        let (status, answer) = s.call(method.clone(), &path, alice, Body::Json(body)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["code"], "forbidden");
        assert_eq!(answer["error"]["message"], message, "{method} {path}");
    }

    // Nothing was opened or moved.
    let (_, all) = s.get("/api/v1/shipments").await;
    assert_eq!(all.as_array().unwrap().len(), 3, "{all}");
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .all(|x| x["status"] == "pending"),
        "{all}"
    );
    // An admin may move it, on either route.
    let (status, shipped) = s
        .post_as(
            &format!("/api/v1/shipments/{mine}/ship"),
            ADMIN,
            Body::Json(json!({"carrier": "UPS"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{shipped}");
    let (status, delivered) = s
        .call(
            Method::PUT,
            &format!("/shipping/{mine}"),
            ADMIN,
            Body::Json(json!({"status": "delivered"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{delivered}");
    assert_eq!(delivered["status"], "delivered");
    // And open one for a customer's order on seed 002's route: the order's shipment.
    let (status, existing) = s
        .post_as("/shipping", ADMIN, Body::Json(json!({"order_id": 2})))
        .await;
    assert_eq!(status, StatusCode::OK, "{existing}");
    assert_eq!(existing["id"], theirs);
    s.stop().await;
}

#[tokio::test]
async fn seed_002_shapes() {
    let s = Shipping::start().await;
    let row_keys: BTreeSet<String> = ["id", "order_id", "status", "created_at", "updated_at"]
        .into_iter()
        .map(str::to_owned)
        .collect();

    let (status, created) = s.seed_post("/shipping", json!({"order_id": 123})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(keys(&created), row_keys, "{created}");
    assert_eq!(created["order_id"], 123);
    assert_eq!(created["status"], "pending");
    assert!(created["id"].is_i64());
    assert!(created["created_at"].is_string() && created["updated_at"].is_string());
    let id = created["id"].as_i64().unwrap();

    // The same order again: the same row, 200.
    let (status, again) = s.seed_post("/shipping", json!({"order_id": 123})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, created);

    let (status, got) = s.seed_get(&format!("/shipping/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, created);

    // Issue 12: only a paid order ships. Until its paid-order comes, shipping is a
    // 409 that says why (it used to ship, and the order service refused the event).
    let (status, unpaid) = s
        .seed_put(&format!("/shipping/{id}"), json!({"status": "shipped"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{unpaid}");
    assert_eq!(unpaid["error"]["code"], "order_not_paid", "{unpaid}");
    assert_eq!(
        s.seed_get(&format!("/shipping/{id}")).await.1["status"],
        "pending"
    );
    s.mark_paid(123).await;

    let (status, shipped) = s
        .seed_put(&format!("/shipping/{id}"), json!({"status": "shipped"}))
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
        .seed_put(&format!("/shipping/{id}"), json!({"status": "delivered"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys(&delivered), row_keys);
    assert_eq!(delivered["status"], "delivered");

    // The canonical API (an admin) sees the same shipment with its timestamps.
    let (_, full) = s.get(&format!("/api/v1/shipments/{id}")).await;
    assert_eq!(full["status"], "delivered");
    assert!(full["shipped_at"].is_string() && full["delivered_at"].is_string());

    // A missing shipment.
    let (status, body) = s.seed_get("/shipping/424242").await;
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
            "paid_at",
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
        // A wrong method.
        (
            Method::DELETE,
            seed.clone(),
            Body::None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "does not accept DELETE",
        ),
    ];
    // Every case as an admin, and seed 002's as its anonymous clients too: the
    // shipment is one placed without an account, which they may move.
    for (method, path, body, expected, code, message) in cases {
        let callers: &[Who] = if path.starts_with("/shipping") {
            &[ADMIN, GUEST]
        } else {
            &[ADMIN]
        };
        for who in callers {
            let what = format!("{who:?} {method} {path}");
            let (status, answer) = s.call(method.clone(), &path, *who, body.clone()).await;
            assert_eq!(status, expected, "{what}: {answer}");
            assert_eq!(answer["error"]["code"], code, "{what}: {answer}");
            let text = answer["error"]["message"].as_str().unwrap_or_default();
            assert!(
                text.contains(message),
                "{what}: {text:?} should say {message:?}"
            );
        }
    }

    // The unknown status lists the allowed ones in the details too.
    let (_, answer) = s.seed_put(&seed, json!({"status": "LOST"})).await;
    assert_eq!(
        answer["error"]["details"]["allowed"],
        json!(["shipped", "delivered"])
    );
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
    // Open to anyone: no credential needed.
    let (status, doc) = s.get_as("/openapi.json", Who::Nobody).await;
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
    for path in ["/health", "/ready"] {
        assert_eq!(
            s.get_as(path, Who::Nobody).await.0,
            StatusCode::OK,
            "{path}"
        );
    }
    let docs = sales_testkit::http_get(format!("{}/docs/", s.base))
        .await
        .unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    s.stop().await;
}

/// Every operation of the API, on shipment `id`, with a body it would accept.
fn api_routes(id: i64) -> Vec<(Method, String, Body)> {
    vec![
        (
            Method::POST,
            "/api/v1/shipments".into(),
            Body::Json(json!({"order_id": 900})),
        ),
        (Method::GET, "/api/v1/shipments".into(), Body::None),
        (Method::GET, format!("/api/v1/shipments/{id}"), Body::None),
        (
            Method::POST,
            format!("/api/v1/shipments/{id}/ship"),
            Body::Json(json!({})),
        ),
        (
            Method::POST,
            format!("/api/v1/shipments/{id}/deliver"),
            Body::Json(json!({})),
        ),
        (
            Method::POST,
            "/shipping".into(),
            Body::Json(json!({"order_id": 901})),
        ),
        (Method::GET, format!("/shipping/{id}"), Body::None),
        (
            Method::PUT,
            format!("/shipping/{id}"),
            Body::Json(json!({"status": "shipped"})),
        ),
    ]
}

/// Only the shipment `id` is there, still pending: nothing was opened or moved.
async fn assert_untouched(s: &Shipping, id: i64) {
    let (_, all) = s.get("/api/v1/shipments").await;
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["id"], id);
    assert_eq!(all[0]["status"], "pending");
}

#[tokio::test]
async fn every_api_route_needs_a_credential() {
    let s = Shipping::start().await;
    let id = s.open(1).await;

    for (method, path, body) in api_routes(id) {
        let what = format!("{method} {path}");
        let (status, challenge, answer) =
            s.attempt(method.clone(), &path, None, body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {answer}");
        assert_eq!(answer["error"]["code"], "unauthenticated", "{what}");
        assert_eq!(challenge.as_deref(), Some("Bearer"), "{what}");

        // The headers the gateway used to set are not a credential.
        let mut request = s
            .request(method.clone(), &path)
            .header("x-customer-id", "1")
            .header("x-customer-role", "admin");
        if let Body::Json(v) = &body {
            request = request.json(v);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what} with headers");
    }
    assert_eq!(
        s.metric("http_auth_failures_total", &[("reason", "missing_token")])
            .await,
        Some(16.0)
    );

    // Nor do they add to a token's rights, or get in its way.
    let r = s
        .request(Method::POST, &format!("/api/v1/shipments/{id}/ship"))
        .bearer_auth(s.token(Who::Customer(7)).unwrap())
        .header("x-customer-role", "admin")
        .header("x-customer-id", "1")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = s
        .request(Method::GET, "/api/v1/shipments")
        .bearer_auth(s.token(ADMIN).unwrap())
        .header("x-customer-id", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // A credential that is not a bearer token, or two of them.
    for (name, value) in [
        ("basic", "Basic YWRtaW46YWRtaW4=".to_owned()),
        ("empty bearer", "Bearer ".to_owned()),
    ] {
        let r = s
            .request(Method::GET, "/api/v1/shipments")
            .header("authorization", value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{name}");
    }
    let r = s
        .request(Method::GET, "/api/v1/shipments")
        .bearer_auth(s.token(ADMIN).unwrap())
        .header("authorization", "Bearer junk")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "two credentials");

    // The probes and the documentation stay open.
    for path in ["/health", "/ready", "/openapi.json", "/docs/"] {
        let r = s.request(Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    assert_untouched(&s, id).await;
    s.stop().await;
}

#[tokio::test]
async fn tokens_that_do_not_verify_are_401() {
    use sales_platform::identity::claims::{OnBehalfOf, TokenClaims};
    use sales_platform::identity::service_audience;

    let s = Shipping::start().await;
    let id = s.open(1).await;
    let minter = s.identity.minter();
    let admin_claims = || {
        TokenClaims::gateway(
            service_audience("shipping"),
            OnBehalfOf::Admin(1),
            true,
            None,
            Duration::from_secs(600),
        )
    };
    // The claims themselves are good: signed as the gateway, they pass.
    let good = minter.sign_as_gateway(&admin_claims());
    assert_eq!(
        s.call_with(Method::GET, "/api/v1/shipments", Some(&good), Body::None)
            .await
            .0,
        StatusCode::OK
    );

    let mut expired = admin_claims();
    expired.iat -= 3600;
    expired.nbf -= 3600;
    expired.exp -= 3600;
    let mut early = admin_claims();
    early.nbf += 3600;
    let mut foreign_issuer = admin_claims();
    foreign_issuer.iss = "someone-else".into();
    let mut customer_without_id = admin_claims();
    customer_without_id.role = "customer".into();
    customer_without_id.sub = "anonymous".into();
    let mut unknown_role = admin_claims();
    unknown_role.role = "root".into();

    let other = TestIdentity::start().await;
    let gateway_kid = sales_testkit::http_get(s.identity.gateway_jwks_url())
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["keys"][0]["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let payload = support::base64url(&serde_json::to_vec(&admin_claims()).unwrap());
    let unsigned = format!(
        "{}.{payload}.",
        support::base64url(
            json!({"alg": "none", "typ": "JWT", "kid": gateway_kid})
                .to_string()
                .as_bytes()
        )
    );
    // A customer's token, its payload swapped for an admin's, its signature kept.
    let customer = s.token(Who::Customer(7)).unwrap();
    let parts: Vec<&str> = customer.split('.').collect();
    let promoted = format!("{}.{payload}.{}", parts[0], parts[2]);

    let refused: Vec<(&str, String)> = vec![
        (
            "a token for another service",
            s.identity.token("order", Who::Admin(1)).unwrap(),
        ),
        ("expired", minter.sign_as_gateway(&expired)),
        ("not valid yet", minter.sign_as_gateway(&early)),
        (
            "signed with a key nobody trusts",
            other.token("shipping", Who::Admin(1)).unwrap(),
        ),
        ("alg: none", unsigned),
        ("promoted, signature kept", promoted),
        (
            "a gateway token signed by the identity provider",
            minter.sign_as_provider(&admin_claims()),
        ),
        (
            "an issuer nobody trusts",
            minter.sign_as_gateway(&foreign_issuer),
        ),
        (
            "a customer without an id",
            minter.sign_as_gateway(&customer_without_id),
        ),
        ("an unknown role", minter.sign_as_gateway(&unknown_role)),
        (
            "an administrator's own access token",
            minter.access_token(1, true),
        ),
        (
            "a customer's own access token",
            minter.access_token(7, false),
        ),
        ("not a JWT", "not-a-token".into()),
    ];
    for (name, token) in &refused {
        for (method, path, body) in api_routes(id) {
            let what = format!("{name}: {method} {path}");
            let (status, challenge, answer) = s.attempt(method, &path, Some(token), body).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {answer}");
            assert_eq!(answer["error"]["code"], "invalid_token", "{what}");
            assert_eq!(
                challenge.as_deref(),
                Some(r#"Bearer error="invalid_token""#),
                "{what}"
            );
        }
    }

    // A valid service token: no service has any business with shipments here.
    let service = Who::Service("order", &["stock:reserve", "payments:charge"]);
    for (method, path, body) in api_routes(id) {
        let (status, answer) = s.call(method.clone(), &path, service, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["code"], "forbidden");
    }
    assert_untouched(&s, id).await;
    s.stop().await;
}

#[tokio::test]
async fn anonymous_callers_get_seed_002s_rights_and_no_more() {
    let s = Shipping::start().await;
    let mut events = s
        .listen(&[MessageType::ShipmentShipped, MessageType::ShipmentDelivered])
        .await;
    let alices = s.pay(1, Some(7)).await;
    let alices_id = alices["id"].as_i64().unwrap();
    let no_account = s.pay(2, None).await["id"].as_i64().unwrap();

    // Opening, reading and moving a shipment of an order placed without an account,
    // as seed 002's clients do.
    let (status, opened) = s.seed_post("/shipping", json!({"order_id": 3})).await;
    assert_eq!(status, StatusCode::CREATED, "{opened}");
    let mine = opened["id"].as_i64().unwrap();
    let (status, again) = s.seed_post("/shipping", json!({"order_id": 3})).await;
    assert_eq!((status, &again), (StatusCode::OK, &opened));
    let (status, paid) = s.seed_post("/shipping", json!({"order_id": 2})).await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    assert_eq!(paid["id"], no_account);
    for id in [mine, no_account] {
        assert_eq!(
            s.seed_get(&format!("/shipping/{id}")).await.0,
            StatusCode::OK
        );
    }

    // A registered customer's shipment does not exist for them: reading and every
    // move are the 404 of an unknown id (not the 409 that would tell its status).
    let path = format!("/shipping/{alices_id}");
    let not_found = json!(format!("shipment {alices_id} not found"));
    let (status, body) = s.seed_get(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["message"], not_found);
    for target in ["shipped", "delivered", "pending"] {
        let (status, body) = s.seed_put(&path, json!({"status": target})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{target}: {body}");
        assert_eq!(body["error"]["message"], not_found);
    }
    let (status, body) = s
        .seed_put(&path, json!({"status": "shipped", "carrier": "DHL"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // Nor may they open (and so read) the shipment of a customer's order.
    let (status, body) = s.seed_post("/shipping", json!({"order_id": 1})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(body["error"]["details"], Value::Null, "{body}");
    assert!(body.get("id").is_none(), "{body}");
    let (_, after) = s.get(&format!("/api/v1/shipments/{alices_id}")).await;
    assert_eq!(after, alices, "a customer's shipment changed");
    events.assert_quiet(Duration::from_millis(300)).await;

    // Their own moves go through once the order is paid, and are announced.
    s.mark_paid(3).await;
    let (status, shipped) = s
        .seed_put(&format!("/shipping/{mine}"), json!({"status": "shipped"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{shipped}");
    let (_, event) = events.next_event::<ShipmentShipped>(WAIT).await;
    assert_eq!((event.shipment_id, event.customer_id), (mine, None));
    let (status, _) = s
        .seed_put(
            &format!("/shipping/{no_account}"),
            json!({"status": "shipped"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, event) = events.next_event::<ShipmentShipped>(WAIT).await;
    assert_eq!(event.shipment_id, no_account);

    // A shipment they opened becomes the customer's when the order's paid-order says
    // whose it is; from then on it is out of their reach.
    let (status, early) = s.seed_post("/shipping", json!({"order_id": 4})).await;
    assert_eq!(status, StatusCode::CREATED);
    let early = early["id"].as_i64().unwrap();
    s.publish(&Shipping::paid_order(4, Some(9))).await;
    sales_testkit::eventually("order 4's customer recorded", WAIT, || async {
        let (_, got) = s.get(&format!("/api/v1/shipments/{early}")).await;
        (got["customer_id"] == 9).then_some(())
    })
    .await;
    assert_eq!(
        s.seed_get(&format!("/shipping/{early}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.seed_put(&format!("/shipping/{early}"), json!({"status": "shipped"}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.seed_post("/shipping", json!({"order_id": 4})).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.get_as(&format!("/shipping/{early}"), Who::Customer(9))
            .await
            .0,
        StatusCode::OK
    );

    // The canonical routes are for customers and admins: an anonymous caller must
    // sign in, seeds open or not.
    for (method, path, body) in api_routes(mine) {
        let canonical = path.starts_with("/api/");
        for seed_compat in [true, false] {
            if !canonical && seed_compat {
                continue;
            }
            let who = Who::Anonymous { seed_compat };
            let (status, answer) = s.call(method.clone(), &path, who, body.clone()).await;
            let what = format!("{who:?} {method} {path}: {answer}");
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
            assert_eq!(answer["error"]["code"], "unauthenticated", "{what}");
        }
    }
    let (_, still) = s.get(&format!("/api/v1/shipments/{mine}")).await;
    assert_eq!(still["status"], "shipped");
    events.assert_quiet(Duration::from_millis(300)).await;
    s.stop().await;
}

#[tokio::test]
async fn dead_letter_endpoints_need_an_administrators_access_token() {
    let s = Shipping::start().await;
    let minter = s.identity.minter();
    let admin = minter.access_token(1, true);
    let other = TestIdentity::start().await;
    let routes = [
        (Method::GET, "/admin/dead-letters"),
        (Method::GET, "/admin/dead-letters/shipping.paid-order"),
        (
            Method::POST,
            "/admin/dead-letters/shipping.paid-order/replay",
        ),
    ];
    let cases: Vec<(&str, Option<String>, StatusCode)> = vec![
        (
            "an administrator's access token",
            Some(admin),
            StatusCode::OK,
        ),
        ("no token", None, StatusCode::UNAUTHORIZED),
        (
            "a customer's access token",
            Some(minter.access_token(7, false)),
            StatusCode::FORBIDDEN,
        ),
        (
            "the gateway's token for an admin",
            s.token(ADMIN),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "another provider's administrator",
            Some(other.minter().access_token(1, true)),
            StatusCode::UNAUTHORIZED,
        ),
        ("not a JWT", Some("junk".into()), StatusCode::UNAUTHORIZED),
    ];
    for (name, token, expected) in &cases {
        for (method, path) in &routes {
            let (status, answer) = s
                .call_admin_port(method.clone(), path, token.as_deref())
                .await;
            assert_eq!(status, *expected, "{name}: {method} {path}: {answer}");
        }
    }

    // Logged out (revoked): refused from then on.
    let revoked = minter.access_token(2, true);
    let (status, _) = s
        .call_admin_port(Method::GET, "/admin/dead-letters", Some(&revoked))
        .await;
    assert_eq!(status, StatusCode::OK);
    s.identity.revoke(&revoked);
    for (method, path) in &routes {
        let (status, answer) = s
            .call_admin_port(method.clone(), path, Some(&revoked))
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}: {answer}"
        );
        assert_eq!(answer["error"]["code"], "invalid_token");
    }
    s.stop().await;
}
