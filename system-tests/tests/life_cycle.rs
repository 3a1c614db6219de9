//! The whole life of an order through the gateway, as a customer and an admin see
//! it: register, log in, order, pay, shipped, delivered, with a notification for
//! each step; and the paths that give stock back: a declined payment, a cancel,
//! a timeout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use system_tests::{System, SystemOptions};

async fn available(sys: &System, admin: &str, sku: &str) -> i64 {
    let (_, s) = sys
        .call(
            Method::GET,
            &format!("/api/v1/inventory/items/{sku}"),
            None,
            Some(admin),
        )
        .await;
    s["available"].as_i64().unwrap()
}

async fn order_status(sys: &System, token: &str, id: i64) -> Value {
    sys.call(
        Method::GET,
        &format!("/api/v1/orders/{id}"),
        None,
        Some(token),
    )
    .await
    .1["status"]
        .clone()
}

async fn wait_notifications(sys: &System, token: &str, order_id: i64, want: &[&str]) {
    sales_testkit::eventually(
        &format!("notifications {want:?} for order {order_id}"),
        Duration::from_secs(20),
        || async {
            let (_, list) = sys
                .call(
                    Method::GET,
                    &format!("/api/v1/notifications?order_id={order_id}"),
                    None,
                    Some(token),
                )
                .await;
            let mut got: Vec<String> = list
                .as_array()?
                .iter()
                .map(|n| n["order_status"].as_str().unwrap_or_default().to_owned())
                .collect();
            got.reverse();
            (got == want).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn an_order_from_registration_to_delivery() {
    let sys = System::start_with(SystemOptions {
        seed_compat_open: false,
        ..Default::default()
    })
    .await;
    let admin = sys.admin_token().await;
    let lamp = sys.add_product_as(&admin, "LAMP", 4500, 4).await;

    // Register and log in.
    let (customer_id, _) = sys.register("ana@example.com", "Ana").await;
    let (status, login) = sys
        .call(
            Method::POST,
            "/api/v1/customers/login",
            Some(json!({"email": "ana@example.com", "password": "a-good-password"})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let token = login["token"].as_str().unwrap().to_owned();
    let (_, me) = sys
        .call(Method::GET, "/api/v1/customers/me", None, Some(&token))
        .await;
    assert_eq!(me["customer_id"], customer_id);

    // Order and pay.
    let (status, order) = sys
        .call(
            Method::POST,
            "/api/v1/orders",
            Some(json!({"items": [{"product_id": lamp, "quantity": 2}]})),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["customer_id"], customer_id);
    let id = order["order_id"].as_i64().unwrap();
    assert_eq!(available(&sys, &admin, "LAMP").await, 2);
    let (status, paid) = sys
        .call(
            Method::POST,
            &format!("/api/v1/orders/{id}/pay"),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    assert_eq!(
        (paid["status"].clone(), paid["payment_status"].clone()),
        (json!("CONFIRMED"), json!("SUCCEEDED"))
    );
    let (_, payment) = sys
        .call(
            Method::GET,
            &format!("/api/v1/payments/{}", paid["payment_id"]),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(
        payment["amount"],
        json!({"amount": 9000, "currency": "USD"})
    );
    assert_eq!(payment["status"], "confirmed");
    // Another customer finds neither the order nor its payment.
    let (_, other) = sys.register("eve@example.com", "Eve").await;
    for path in [
        format!("/api/v1/orders/{id}"),
        format!("/api/v1/payments/{}", paid["payment_id"]),
    ] {
        let (status, body) = sys.call(Method::GET, &path, None, Some(&other)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let (_, payments) = sys
        .call(Method::GET, "/api/v1/payments", None, Some(&other))
        .await;
    assert_eq!(payments, json!([]));

    // Paying opened a shipment; the customer sees it, only the admin moves it.
    let shipment = sales_testkit::eventually("the shipment", Duration::from_secs(15), || async {
        let (_, list) = sys
            .call(
                Method::GET,
                &format!("/api/v1/shipments?order_id={id}"),
                None,
                Some(&token),
            )
            .await;
        list.as_array()?.first().cloned()
    })
    .await;
    assert_eq!(shipment["status"], "pending");
    let ship = format!("/api/v1/shipments/{}/ship", shipment["id"]);
    let (status, _) = sys.call(Method::POST, &ship, None, Some(&token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = sys
        .call(
            Method::POST,
            &ship,
            Some(json!({"carrier": "DHL", "tracking_number": "JD0001"})),
            Some(&admin),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    sales_testkit::eventually(
        "the order to be shipped",
        Duration::from_secs(15),
        || async { (order_status(&sys, &token, id).await == "SHIPPED").then_some(()) },
    )
    .await;
    let (status, _) = sys
        .call(
            Method::POST,
            &format!("/api/v1/shipments/{}/deliver", shipment["id"]),
            None,
            Some(&admin),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    sales_testkit::eventually(
        "the order to be delivered",
        Duration::from_secs(15),
        || async { (order_status(&sys, &token, id).await == "DELIVERED").then_some(()) },
    )
    .await;

    wait_notifications(
        &sys,
        &token,
        id,
        &["PENDING", "CONFIRMED", "SHIPPED", "DELIVERED"],
    )
    .await;
    // The stock left the warehouse for good.
    let (_, level) = sys
        .call(
            Method::GET,
            "/api/v1/inventory/items/LAMP",
            None,
            Some(&admin),
        )
        .await;
    assert_eq!(
        (level["on_hand"].clone(), level["reserved"].clone()),
        (json!(2), json!(0))
    );
    sys.stop().await;
}

#[tokio::test]
async fn a_declined_payment_a_cancel_and_a_timeout_all_give_the_stock_back() {
    let sys = System::start_with(SystemOptions {
        unpaid_order_timeout: "2s".into(),
        ..Default::default()
    })
    .await;
    let admin = sys.admin_token().await;
    let tv = sys.add_product_as(&admin, "TV", 60_000, 5).await;
    let (_, token) = sys.register("bo@example.com", "Bo").await;
    let place = |quantity: i32| {
        sys.call(
            Method::POST,
            "/api/v1/orders",
            Some(json!({"items": [{"product_id": tv, "quantity": quantity}]})),
            Some(&token),
        )
    };

    // Declined: 2 x 600.00 is at or above the 1000.00 limit.
    let (_, order) = place(2).await;
    let declined = order["order_id"].as_i64().unwrap();
    assert_eq!(available(&sys, &admin, "TV").await, 3);
    let (status, body) = sys
        .call(
            Method::POST,
            &format!("/api/v1/orders/{declined}/pay"),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
    assert_eq!(body["error"]["code"], "payment_declined");
    assert_eq!(order_status(&sys, &token, declined).await, "FAILED");
    assert_eq!(available(&sys, &admin, "TV").await, 5, "released at once");
    wait_notifications(&sys, &token, declined, &["PENDING", "FAILED"]).await;

    // Cancelled by the customer.
    let (_, order) = place(1).await;
    let cancelled = order["order_id"].as_i64().unwrap();
    assert_eq!(available(&sys, &admin, "TV").await, 4);
    let (status, _) = sys
        .call(
            Method::POST,
            &format!("/api/v1/orders/{cancelled}/cancel"),
            None,
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    sales_testkit::eventually(
        "stock back after the cancel",
        Duration::from_secs(15),
        || async { (available(&sys, &admin, "TV").await == 5).then_some(()) },
    )
    .await;
    wait_notifications(&sys, &token, cancelled, &["PENDING", "CANCELLED"]).await;

    // Not paid in time.
    let (_, order) = place(3).await;
    let timed_out = order["order_id"].as_i64().unwrap();
    assert_eq!(available(&sys, &admin, "TV").await, 2);
    sales_testkit::eventually("the timeout", Duration::from_secs(20), || async {
        (order_status(&sys, &token, timed_out).await == "CANCELLED").then_some(())
    })
    .await;
    sales_testkit::eventually(
        "stock back after the timeout",
        Duration::from_secs(15),
        || async { (available(&sys, &admin, "TV").await == 5).then_some(()) },
    )
    .await;
    wait_notifications(&sys, &token, timed_out, &["PENDING", "CANCELLED"]).await;
    sys.stop().await;
}
