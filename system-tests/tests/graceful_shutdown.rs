//! Stopping without losing work. HTTP: a process told to stop fails `/ready`, serves
//! through its drain window, answers what is in flight and publishes what that
//! committed before it exits (the last two tests). Messages: a consumer told to stop finishes what it holds: SIGTERM a consumer process while
//! messages flow, and every message is still handled exactly once (by it before it
//! exits, or redelivered to the other consumer). On RabbitMQ and on Kafka; on Kafka
//! also SIGKILL: the group gives the dead member's partitions to the other, from the
//! last offsets committed, and the inbox drops what it had handled past them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use sales_contracts::events::{CreateOrder, OrderLine};
use sales_contracts::{Currency, Envelope, Event, Money};
use sales_testkit::fault_proxy::{Fault, FaultProxy};
use sales_testkit::launch::{Process, Service, Signal};
use serde_json::{Value, json};
use system_tests::{System, SystemOptions, Who, bin_dir, free_port};

const MESSAGES: i64 = 1500;

fn order(order_id: i64) -> Envelope {
    let now = chrono::Utc::now();
    Envelope::new(
        "test",
        CreateOrder {
            order_id,
            customer_id: None,
            status: "PENDING".into(),
            items: vec![OrderLine {
                product_id: 1,
                sku: "X".into(),
                quantity: 1,
                unit_price: Money::new(100, Currency::USD),
                line_total: Some(Money::new(100, Currency::USD)),
            }],
            total: Money::new(100, Currency::USD),
            created_at: now,
            pay_by: now,
        },
    )
    .into_json()
}

#[tokio::test]
async fn a_consumer_stopped_mid_stream_loses_and_repeats_nothing() {
    stopped_mid_stream(false, Stop::Term).await;
}

#[tokio::test]
async fn on_kafka_a_consumer_stopped_mid_stream_loses_and_repeats_nothing() {
    stopped_mid_stream(true, Stop::Term).await;
}

/// Ignored against the local broker: tansu 0.6.0 does not always recover a consumer
/// group from a SIGKILLed member. Seen here: the survivor's partitions are revoked once
/// the dead member's session expires, and its rejoin is never answered with an
/// assignment (docs/messaging.md). Run it against a real Kafka:
/// `SALES_KAFKA_BOOTSTRAP=host:9092 cargo nextest run --run-ignored only -E 'test(killed_mid_stream)'`.
#[tokio::test]
#[ignore = "tansu 0.6.0 leaves a group without assignment after a member is killed; run against real Kafka"]
async fn on_kafka_a_consumer_killed_mid_stream_loses_and_repeats_nothing() {
    stopped_mid_stream(true, Stop::Kill).await;
}

#[derive(PartialEq)]
enum Stop {
    /// SIGTERM: it finishes what it holds and leaves.
    Term,
    /// SIGKILL: it just dies.
    Kill,
}

async fn stopped_mid_stream(kafka: bool, stop: Stop) {
    let mut sys = System::start_with(SystemOptions {
        kafka,
        ..SystemOptions::default()
    })
    .await;
    // A second notification process: two consumers on each queue.
    let mut wiring = sys.wiring.clone();
    wiring
        .ports
        .insert(Service::Notification, (free_port(), free_port()));
    let mut second = Process::spawn(
        Service::Notification,
        &bin_dir(),
        &wiring,
        Stdio::inherit(),
        Stdio::inherit(),
    )
    .unwrap();
    sales_testkit::wait_ready(
        &format!("{}/ready", wiring.base_url(Service::Notification)),
        Duration::from_secs(30),
    )
    .await
    .unwrap();

    let db = sqlx::PgPool::connect(&sys.wiring.database_urls[&Service::Notification])
        .await
        .unwrap();
    let handled = |db: &sqlx::PgPool| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "select count(*) from notifications where event = 'create-order'",
            )
            .fetch_one(&db)
            .await
            .unwrap()
        }
    };

    // Publish every message (acknowledged), while we stop a consumer. Keyed by order,
    // so on Kafka they spread over every partition.
    let messages: Vec<(String, Vec<u8>)> = (1..=MESSAGES)
        .map(|id| (id.to_string(), serde_json::to_vec(&order(id)).unwrap()))
        .collect();
    let publisher = sys.publisher();
    let mut publishing = tokio::spawn(async move {
        publisher
            .publish_many(CreateOrder::TYPE.as_str(), &messages)
            .await
    });
    let mut published = false;

    // Once work is flowing, stop the first process: it must finish what it holds.
    let flowing =
        sales_testkit::eventually("messages to flow", Duration::from_secs(30), || async {
            (handled(&db).await >= 100).then_some(())
        });
    tokio::select! {
        _ = flowing => {}
        done = &mut publishing => {
            done.unwrap();
            published = true;
            sales_testkit::eventually("messages to flow", Duration::from_secs(30), || async {
                (handled(&db).await >= 100).then_some(())
            })
            .await;
        }
    }
    let first = sys.processes.get_mut(&Service::Notification).unwrap();
    if stop == Stop::Kill {
        let _ = first.child.kill();
        let _ = first.child.wait();
    } else {
        let status = first
            .terminate(Duration::from_secs(25))
            .expect("the process exits");
        assert!(
            status.success(),
            "the stopped consumer exited with {status}"
        );
    }
    let at_stop = handled(&db).await;
    assert!(
        at_stop < MESSAGES,
        "stopped too late to prove anything ({at_stop} handled)"
    );

    if !published {
        publishing.await.unwrap();
    }
    sales_testkit::eventually("every message handled", Duration::from_secs(90), || async {
        (handled(&db).await == MESSAGES).then_some(())
    })
    .await;
    // Exactly once: one notification per message and per order, nothing parked.
    let distinct: i64 = sqlx::query_scalar(
        "select count(distinct order_id) from notifications where event = 'create-order'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(distinct, MESSAGES);
    let admin = wiring.admin_url(Service::Notification);
    let operator = sys.admin_token().await;
    let parked: serde_json::Value = sales_testkit::http_client()
        .get(format!("{admin}/admin/dead-letters"))
        .bearer_auth(operator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        parked
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q["dead_letters"] == 0),
        "{parked}"
    );
    second.terminate(Duration::from_secs(25));
    sys.stop().await;
}

/// Seed 004's one-call order of one unit of `sku` (1.00 USD) with a fresh key.
async fn place(client: &reqwest::Client, url: &str, token: &str, sku: &str) -> (u16, Value) {
    let body = json!({"item_sku": sku, "quantity": 1, "amount": "1.00", "currency": "USD",
                      "idempotency_key": uuid::Uuid::new_v4().to_string()});
    match client
        .post(format!("{url}/api/v1/orders/"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
    {
        Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or(Value::Null)),
        Err(e) => (0, json!({ "error": e.to_string() })),
    }
}

async fn count(url: &str, sql: &'static str) -> i64 {
    let db = sqlx::PgPool::connect(url).await.unwrap();
    let n = sqlx::query_scalar(sql).fetch_one(&db).await.unwrap();
    db.close().await;
    n
}

/// SIGTERM while an order is in flight (its charge held up past the drain window):
/// the process fails `/ready` but keeps serving for its drain window, then closes its
/// listener, answers the order, publishes the events that order committed after the
/// stop (the shipment opens although no order process runs any more) and exits
/// cleanly.
#[tokio::test]
async fn an_order_in_flight_at_sigterm_is_answered_and_its_events_published() {
    let mut sys = System::start().await;
    let first = sys.processes.get_mut(&Service::Order).unwrap();
    assert!(first.terminate(Duration::from_secs(25)).unwrap().success());
    let payments = FaultProxy::for_url(&sys.url(Service::Payment)).await;
    let (mut order, url) = sys
        .another_process(
            Service::Order,
            &[
                (
                    "PAYMENT_SERVICE_URL",
                    payments.url_through(&sys.url(Service::Payment)).as_str(),
                ),
                ("SHUTDOWN_DRAIN_DELAY", "2s"),
            ],
        )
        .await;
    sys.add_product("DRAINED", 100, 10).await;
    let (customer, _) = sys.register("drained@example.com", "Dee").await;
    let token = sys.token_for(Service::Order, Who::Customer(customer));

    payments.set(Fault::Frozen);
    let in_flight = tokio::spawn({
        let (url, token) = (url.clone(), token.clone());
        async move { place(&sales_testkit::http_client(), &url, &token, "DRAINED").await }
    });
    let orders_db = sys.wiring.database_urls[&Service::Order].clone();
    sales_testkit::eventually("the order stored", Duration::from_secs(15), || async {
        (count(&orders_db, "select count(*) from orders").await == 1).then_some(())
    })
    .await;
    order.signal(Signal::SIGTERM).unwrap();
    let client = sales_testkit::http_client();
    let ready = sales_testkit::eventually("/ready to fail", Duration::from_secs(2), || async {
        let r = client.get(format!("{url}/ready")).send().await.ok()?;
        (r.status() == 503).then(|| r.status())
    })
    .await;
    assert_eq!(ready, 503);
    let health = client.get(format!("{url}/health")).send().await;
    assert!(
        health.as_ref().is_ok_and(|r| r.status() == 200),
        "still serving in the drain window: {health:?}"
    );
    // After the window the listener closes; the order in hand keeps the process up,
    // and the charge is let through only now, so its events commit after the stop.
    sales_testkit::eventually("the listener to close", Duration::from_secs(10), || async {
        let fresh = sales_testkit::http_client();
        fresh
            .get(format!("{url}/health"))
            .send()
            .await
            .is_err()
            .then_some(())
    })
    .await;
    assert!(order.child.try_wait().unwrap().is_none());
    payments.set(Fault::None);

    let (status, answer) = in_flight.await.unwrap();
    assert!(matches!(status, 200 | 201), "{status} {answer}");
    assert_eq!(answer["status"], "CONFIRMED", "{answer}");
    let exited = tokio::task::spawn_blocking(move || {
        let status = order.terminate(Duration::from_secs(25));
        (status, order)
    })
    .await
    .unwrap();
    assert!(exited.0.unwrap().success(), "exited with {:?}", exited.0);
    let shipping_db = sys.wiring.database_urls[&Service::Shipping].clone();
    sales_testkit::eventually("the shipment opened", Duration::from_secs(15), || async {
        (count(&shipping_db, "select count(*) from shipments").await == 1).then_some(())
    })
    .await;
    sys.stop().await;
}

/// Load on two order processes behind a balancer that sends only to ready ones (as a
/// Service's endpoints do), one of them told to stop mid-run: no request fails, and
/// every confirmed order's shipment opens (no event lost).
#[tokio::test]
async fn an_order_service_stopped_under_load_fails_no_request_and_loses_no_event() {
    // The order processes drain for 3 s; the balancer looks every 500 ms (as
    // endpoints lag behind a pod that stops being ready).
    let mut sys = System::start_with(SystemOptions {
        env: HashMap::from([(
            Service::Order,
            vec![("SHUTDOWN_DRAIN_DELAY".to_owned(), "3s".to_owned())],
        )]),
        ..SystemOptions::default()
    })
    .await;
    let (mut second, second_url) = sys.another_process(Service::Order, &[]).await;
    sys.add_product("BALANCED", 100, 100_000).await;
    let (customer, _) = sys.register("balanced@example.com", "Bo").await;
    let token = sys.token_for(Service::Order, Who::Customer(customer));
    let first_url = sys.url(Service::Order);
    let first = sys.processes.remove(&Service::Order).unwrap();
    let backends = Arc::new([first_url, second_url].map(|u| (u, AtomicBool::new(true))));
    let stop = tokio_util::sync::CancellationToken::new();
    let watcher = tokio::spawn({
        let (backends, stop) = (backends.clone(), stop.clone());
        async move {
            let client = sales_testkit::http_client();
            while !stop.is_cancelled() {
                for (url, ready) in backends.iter() {
                    let ok = client
                        .get(format!("{url}/ready"))
                        .timeout(Duration::from_millis(500))
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == 200);
                    ready.store(ok, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    let placed = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..8)
        .map(|n| {
            let (backends, stop, token, placed) = (
                backends.clone(),
                stop.clone(),
                token.clone(),
                placed.clone(),
            );
            tokio::spawn(async move {
                // A connection per request, as a client behind a Service meets a new
                // endpoint: a closed listener is a failed request, not a retried one.
                let client = sales_testkit::http_client_builder()
                    .pool_max_idle_per_host(0)
                    .build()
                    .unwrap();
                let mut failures = Vec::new();
                let mut turn = n;
                while !stop.is_cancelled() {
                    turn += 1;
                    let Some((url, _)) = (0..2)
                        .map(|i| &backends[(turn + i) % 2])
                        .find(|(_, ready)| ready.load(Ordering::SeqCst))
                    else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    let (status, answer) = place(&client, url, &token, "BALANCED").await;
                    if matches!(status, 200 | 201) && answer["status"] == "CONFIRMED" {
                        placed.fetch_add(1, Ordering::SeqCst);
                    } else {
                        failures.push(format!("{url}: {status} {answer}"));
                    }
                }
                failures
            })
        })
        .collect();
    sales_testkit::eventually("orders to flow", Duration::from_secs(30), || async {
        (placed.load(Ordering::SeqCst) >= 40).then_some(())
    })
    .await;
    let mut first = first;
    let exited = tokio::task::spawn_blocking(move || {
        first.signal(Signal::SIGTERM).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = first.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    })
    .await
    .unwrap();
    let at_exit = placed.load(Ordering::SeqCst);
    sales_testkit::eventually("orders to flow on", Duration::from_secs(30), || async {
        (placed.load(Ordering::SeqCst) >= at_exit + 40).then_some(())
    })
    .await;
    stop.cancel();
    let mut failures = Vec::new();
    for c in clients {
        failures.extend(c.await.unwrap());
    }
    watcher.await.unwrap();
    assert!(
        exited.is_some_and(|s| s.success()),
        "the stopped process exited with {exited:?}"
    );
    assert!(failures.is_empty(), "failed requests: {failures:#?}");
    let confirmed = count(
        &sys.wiring.database_urls[&Service::Order],
        "select count(*) from orders where status = 'CONFIRMED'",
    )
    .await;
    assert_eq!(confirmed, placed.load(Ordering::SeqCst) as i64);
    let shipping_db = sys.wiring.database_urls[&Service::Shipping].clone();
    sales_testkit::eventually("every shipment opened", Duration::from_secs(30), || async {
        (count(&shipping_db, "select count(*) from shipments").await == confirmed).then_some(())
    })
    .await;
    second.terminate(Duration::from_secs(25));
    sys.stop().await;
}
