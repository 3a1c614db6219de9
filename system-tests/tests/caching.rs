//! Seed 003's Redis cache: a read served from the cache does not touch the
//! database; a read after an acknowledged write is never stale; and with Redis
//! away the system keeps working, uncached.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Connection;
use system_tests::{Service, System, SystemOptions};

async fn cache_count(sys: &System, service: Service, cache: &str, outcome: &str) -> u64 {
    let text = sales_testkit::http_get(format!("{}/metrics", sys.admin_url(service)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| {
            l.starts_with("cache_requests_total")
                && l.contains(&format!("cache=\"{cache}\""))
                && l.contains(&format!("outcome=\"{outcome}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn db(sys: &System, service: Service) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(&sys.wiring.database_urls[&service])
        .await
        .unwrap()
}

#[tokio::test]
async fn product_reads_come_from_the_cache_and_are_never_stale() {
    let sys = System::start().await;
    let admin = sys.admin_token().await;
    let id = sys.add_product("CACHED", 1000, 1).await;
    let path = format!("/api/v1/products/{id}");

    let (_, first) = sys.call(Method::GET, &path, None, None).await;
    assert_eq!(first["price"]["amount"], 1000);
    assert_eq!(
        cache_count(&sys, Service::Product, "product", "miss").await,
        1
    );

    // With the table gone, only the cache can answer.
    let mut conn = db(&sys, Service::Product).await;
    sqlx::query("alter table products rename to products_away")
        .execute(&mut conn)
        .await
        .unwrap();
    let (status, cached) = sys.call(Method::GET, &path, None, None).await;
    sqlx::query("alter table products_away rename to products")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{cached}");
    assert_eq!(cached, first);
    assert_eq!(
        cache_count(&sys, Service::Product, "product", "hit").await,
        1
    );

    // A change is visible as soon as it is acknowledged, every time.
    for price in [1100, 1200, 1300] {
        let (status, _) = sys
            .call(
                Method::PUT,
                &path,
                Some(json!({"price": {"amount": price, "currency": "USD"}})),
                Some(&admin),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (_, after) = sys.call(Method::GET, &path, None, None).await;
        assert_eq!(after["price"]["amount"], price);
        let (_, again) = sys.call(Method::GET, &path, None, None).await;
        assert_eq!(again["price"]["amount"], price);
    }
    sys.stop().await;
}

#[tokio::test]
async fn orders_of_a_product_are_cached_and_never_stale() {
    let sys = System::start().await;
    let admin = sys.admin_token().await;
    let id = sys.add_product("POPULAR", 300, 50).await;
    let list = format!("/orders/product/{id}");
    let ids = |v: serde_json::Value| -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(
        ids(sys.call(Method::GET, &list, None, None).await.1),
        Vec::<i64>::new()
    );

    let mut placed = Vec::new();
    for _ in 0..3 {
        let (status, o) = sys
            .call(
                Method::POST,
                "/orders",
                Some(json!({"product_id": id, "quantity": 1})),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        placed.insert(0, o["id"].as_i64().unwrap());
        // Read right after the write: the new order is there.
        assert_eq!(
            ids(sys.call(Method::GET, &list, None, None).await.1),
            placed
        );
    }
    // And reads in between are served from the cache without the database.
    let (_, warm) = sys.call(Method::GET, &list, None, None).await;
    let mut conn = db(&sys, Service::Order).await;
    sqlx::query("alter table orders rename to orders_away")
        .execute(&mut conn)
        .await
        .unwrap();
    let (status, cached) = sys.call(Method::GET, &list, None, None).await;
    sqlx::query("alter table orders_away rename to orders")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cached, warm);
    assert!(cache_count(&sys, Service::Order, "orders_by_product", "hit").await >= 1);

    // Paying changes the status shown: the cached list follows at once.
    let (_, paid) = sys
        .call(
            Method::POST,
            &format!("/api/v1/orders/{}/pay", placed[0]),
            None,
            Some(&admin),
        )
        .await;
    assert_eq!(paid["status"], "CONFIRMED", "{paid}");
    let (_, after) = sys.call(Method::GET, &list, None, None).await;
    assert_eq!(after[0]["status"], "confirmed");
    sys.stop().await;
}

#[tokio::test]
async fn without_redis_everything_still_works_uncached() {
    let dead = vec![("REDIS_URL".to_owned(), "redis://127.0.0.1:1".to_owned())];
    let sys = System::start_with(SystemOptions {
        env: [(Service::Product, dead.clone()), (Service::Order, dead)].into(),
        ..Default::default()
    })
    .await;
    let id = sys.add_product("NOREDIS", 500, 5).await;
    for _ in 0..3 {
        let (status, p) = sys
            .call(Method::GET, &format!("/api/v1/products/{id}"), None, None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(p["sku"], "NOREDIS");
    }
    let (status, _) = sys
        .call(
            Method::POST,
            "/orders",
            Some(json!({"product_id": id, "quantity": 2})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, list) = sys
        .call(Method::GET, &format!("/orders/product/{id}"), None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(
        cache_count(&sys, Service::Product, "product", "hit").await,
        0
    );
    assert!(cache_count(&sys, Service::Product, "product", "skipped").await >= 3);
    sys.stop().await;
}
