//! The RabbitMQ user the topology operator's `User` and `Permission` declare for a
//! system on a `RabbitmqCluster` (`rabbitmq.cluster`), against the real RabbitMQ of
//! `cargo xtask test` (`SALES_AMQP_URL`, `SALES_RABBITMQ_MANAGEMENT_URL`): with the
//! tag the operator gives it (`management`, with a service autoscaled) and the
//! permissions narrowed to the system's prefix on a vhost of its own, it declares the
//! services' topology (quorum queues that dead-letter through the default exchange)
//! and publishes; the scaler's reader, with the same URL, sees its queues' counts and
//! the work its own channels hold, and nothing of another vhost; without the tag the
//! management API refuses it. (RabbitMQ's documented `management` tag: the queues of
//! the vhosts the user has permissions on, its own channels and connections.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, BasicQosOptions};
use lapin::types::FieldTable;
use sales_contracts::topology::{QueueType, Topology, subscriptions_of};
use sales_operator::autoscaling::broker::Management;
use sales_operator::children::rabbitmq_topology;
use serde_json::{Value, json};

/// The management API of the tests' broker, as an administrator (the xtask's URL).
fn admin_management() -> reqwest::Url {
    reqwest::Url::parse(
        &std::env::var("SALES_RABBITMQ_MANAGEMENT_URL")
            .unwrap_or_else(|_| "http://guest:guest@127.0.0.1:15672".into()),
    )
    .unwrap()
}

/// `base` without its credentials, as the scaler is given it.
fn without_credentials(base: &reqwest::Url) -> String {
    let mut url = base.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.as_str().trim_end_matches('/').to_owned()
}

/// PUT (or DELETE) `segments` of the management API as its administrator.
async fn admin(http: &reqwest::Client, method: reqwest::Method, segments: &[&str], body: Value) {
    let base = admin_management();
    let mut url = base.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.path_segments_mut()
        .unwrap()
        .pop_if_empty()
        .push("api")
        .extend(segments);
    let response = http
        .request(method.clone(), url.clone())
        .basic_auth(base.username(), base.password())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{method} {url}: {}",
        response.status()
    );
}

/// The tests' AMQP URL as `user` on `vhost` (both percent-encoded).
fn amqp_url_as(user: &str, password: &str, vhost: &str) -> String {
    let base = reqwest::Url::parse(&sales_testkit::amqp_url()).unwrap();
    let encode = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    format!(
        "amqp://{}:{}@{}:{}/{}",
        encode(user),
        encode(password),
        base.host_str().unwrap(),
        base.port().unwrap_or(5672),
        encode(vhost)
    )
}

#[tokio::test]
async fn the_users_tag_and_permissions_are_enough_for_the_services_and_the_scaler() {
    let http = sales_testkit::http_client();
    delete_leftovers(&http).await;
    let id = run_id();
    // As the User and Permission declare it, for a system with a prefix and an
    // autoscaled service.
    let spec = sales_operator::render::parse(
        &json!({
            "apiVersion": "sales-system.io/v1alpha1", "kind": "SalesSystem",
            "metadata": {"name": "shop", "namespace": "sales"},
            "spec": {
                "rabbitmq": {"cluster": {"create": {}}, "prefix": format!("t{id}.")},
                "autoscaling": {"inventory": {"enabled": true}},
            },
        })
        .to_string(),
    )
    .unwrap()
    .spec;
    let tags = rabbitmq_topology::tags(&spec);
    assert_eq!(tags, ["management"]);
    let (configure, write, read) = rabbitmq_topology::permissions(&spec.rabbitmq.prefix);
    let (vhost, user, password) = (
        format!("sales-topology-{id}"),
        format!("sales-topology-{id}-services"),
        "p@ss/w:rd 1".to_owned(),
    );
    let bare = format!("{user}-bare");
    use reqwest::Method;
    admin(&http, Method::PUT, &["vhosts", &vhost], json!({})).await;
    for (name, tags) in [(&user, tags.join(",")), (&bare, String::new())] {
        admin(
            &http,
            Method::PUT,
            &["users", name],
            json!({"password": password, "tags": tags}),
        )
        .await;
        admin(
            &http,
            Method::PUT,
            &["permissions", &vhost, name],
            json!({"configure": configure, "write": write, "read": read}),
        )
        .await;
    }

    // The services' part: declare the topology (quorum queues dead-lettering through
    // the default exchange), publish through the exchange and the default exchange.
    let url = amqp_url_as(&user, &password, &vhost);
    let conn = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
        .await
        .expect("the user signs in to its vhost");
    let topology = Topology::new(spec.rabbitmq.prefix.clone()).with_queue_type(QueueType::Quorum);
    sales_platform::messaging::rabbitmq::declare_topology(&conn, &topology)
        .await
        .expect("the narrowed permissions let the services declare their topology");
    let queues: Vec<String> = subscriptions_of("inventory")
        .map(|s| topology.queue(s))
        .collect();
    let channel = conn.create_channel().await.unwrap();
    channel.confirm_select(Default::default()).await.unwrap();
    for (exchange, routing_key) in [
        (topology.exchange(), "update-stock".to_owned()),
        (String::new(), queues[1].clone()),
        (String::new(), queues[1].clone()),
    ] {
        channel
            .basic_publish(
                exchange.as_str().into(),
                routing_key.as_str().into(),
                BasicPublishOptions::default(),
                b"{}",
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // A consumer holds one message unacknowledged (its channel is the user's own).
    let holder = conn.create_channel().await.unwrap();
    holder
        .basic_qos(1, BasicQosOptions::default())
        .await
        .unwrap();
    let _consumer = holder
        .basic_consume(
            queues[1].as_str().into(),
            "holder".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    // The scaler's part, with the same URL: the counts, and the work in hand.
    let management = without_credentials(&admin_management());
    let reader = Management::new(&url, Some(&management)).unwrap();
    assert_eq!(reader.vhost(), vhost);
    sales_testkit::eventually_seen(
        "the management API shows the three messages, one unacknowledged",
        Duration::from_secs(30),
        || async {
            let read = reader
                .queues(&http, &queues)
                .await
                .map_err(|e| format!("{e:?}"))?;
            let stock = read
                .iter()
                .find(|q| q.name == queues[1])
                .ok_or_else(|| "no queue".to_owned())?;
            let counts = (stock.ready, stock.unacknowledged);
            (counts == (2, 1))
                .then_some(())
                .ok_or(format!("{counts:?}"))
        },
    )
    .await;
    sales_testkit::eventually_seen(
        "the user's own channel shows the message it holds",
        Duration::from_secs(30),
        || async {
            let work = reader
                .work_by_peer(&http)
                .await
                .map_err(|e| format!("{e:?}"))?;
            let held: u64 = work.0.values().flatten().sum();
            (held == 1).then_some(()).ok_or(format!("{work:?}"))
        },
    )
    .await;
    // Another vhost is not the user's to read.
    let elsewhere =
        Management::new(&amqp_url_as(&user, &password, "/"), Some(&management)).unwrap();
    assert!(elsewhere.queues(&http, &queues).await.is_err());
    // Without the tag, the management API refuses the user altogether.
    let untagged =
        Management::new(&amqp_url_as(&bare, &password, &vhost), Some(&management)).unwrap();
    let refused = untagged.queues(&http, &queues).await.unwrap_err();
    assert!(
        format!("{refused:?}").contains("refused user"),
        "{refused:?}"
    );

    let _ = conn.close(200, "done".into()).await;
    admin(&http, Method::DELETE, &["vhosts", &vhost], json!({})).await;
    for name in [&user, &bare] {
        admin(&http, Method::DELETE, &["users", name], json!({})).await;
    }
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `<unix seconds>-<pid>`: unique on a shared broker, and dated for the cleanup.
fn run_id() -> String {
    format!("{}-{}", unix_seconds(), std::process::id())
}

/// Vhosts and users this test left on the broker when it failed, an hour or more ago
/// (a run going on now keeps its own).
async fn delete_leftovers(http: &reqwest::Client) {
    let base = admin_management();
    for kind in ["vhosts", "users"] {
        let mut url = reqwest::Url::parse(&without_credentials(&base)).unwrap();
        url.path_segments_mut().unwrap().extend(["api", kind]);
        let listed: Vec<Value> = http
            .get(url)
            .basic_auth(base.username(), base.password())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for name in listed.iter().filter_map(|o| o["name"].as_str()) {
            let made = name
                .strip_prefix("sales-topology-")
                .and_then(|rest| rest.split('-').next())
                .and_then(|seconds| seconds.parse::<u64>().ok());
            if made.is_some_and(|made| made + 3600 < unix_seconds()) {
                admin(http, reqwest::Method::DELETE, &[kind, name], json!({})).await;
            }
        }
    }
}
