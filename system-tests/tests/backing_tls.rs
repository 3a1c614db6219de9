//! TLS from the services to PostgreSQL, RabbitMQ, Redis and Kafka (issue 15), through the
//! platform's own connection code, against servers of each test's own whose
//! certificates a throwaway CA signed (the shared infrastructure stays plaintext and
//! untouched). Each test shows the connection works with the CA the settings name,
//! and is refused with another CA, with no CA (the system's roots), and for a name
//! the certificate does not carry or a server without TLS where that applies. And a
//! service binary given contradictory TLS settings exits at start, naming the setting.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lapin::ConnectionProperties;
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use sales_contracts::topology::Topology;
use sales_platform::cache::redis_client;
use sales_platform::config::KafkaArgs;
use sales_platform::config::{CacheArgs, DatabaseArgs};
use sales_platform::db;
use sales_platform::messaging::kafka::KafkaBus;
use sales_platform::messaging::rabbitmq::{AmqpEndpoint, Broker, OutgoingMessage};
use sales_platform::messaging::{Messaging, OutgoingEvent};
use sales_platform::metrics::Metrics;
use sales_testkit::private_kafka::PrivateKafka;
use sales_testkit::private_servers::{PrivatePostgres, PrivateRabbitMq, PrivateRedis};
use sales_testkit::test_ca::TestCa;
use sales_testkit::tls_front::TlsFront;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

fn database(url: String) -> DatabaseArgs {
    DatabaseArgs {
        database_url: SecretString::from(url),
        database_max_connections: 2,
        database_acquire_timeout: Duration::from_secs(5),
    }
}

/// `sales_platform::db::ping` through a pool on `url`.
async fn ping(url: String) -> Result<(), String> {
    let pool = db::pool(&database(url), "tls-test").map_err(|e| e.to_string())?;
    let answer = db::ping(&pool).await;
    pool.close().await;
    answer
}

fn verify_full(ca: &Path) -> String {
    format!("?sslmode=verify-full&sslrootcert={}", ca.display())
}

#[tokio::test]
async fn postgres_is_reached_over_verified_tls_only() {
    let ca = TestCa::new("sales test CA");
    let server = PrivatePostgres::start(Some(&ca));
    let trusted = server.ca_file.clone().unwrap();

    let pool = db::pool(
        &database(server.url("localhost", &verify_full(&trusted))),
        "tls-test",
    )
    .unwrap();
    db::ping(&pool).await.unwrap();
    let (ssl, version): (bool, String) =
        sqlx::query_as("select ssl, version from pg_stat_ssl where pid = pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(ssl, "the pool's connection is not TLS");
    assert!(version.starts_with("TLSv1."), "{version}");
    pool.close().await;
    // The certificate names 127.0.0.1 too.
    ping(server.url("127.0.0.1", &verify_full(&trusted)))
        .await
        .unwrap();

    let other = TestCa::new("another CA").trust_file();
    let refused = ping(server.url("localhost", &verify_full(&other.path)))
        .await
        .unwrap_err();
    assert!(refused.contains("UnknownIssuer"), "{refused}");
    // Without sslrootcert, verify-full trusts the public (webpki) roots only.
    let refused = ping(server.url("localhost", "?sslmode=verify-full"))
        .await
        .unwrap_err();
    assert!(refused.contains("UnknownIssuer"), "{refused}");
    // 127.0.0.2 reaches the same server, but its certificate does not name it.
    let refused = ping(server.url("127.0.0.2", &verify_full(&trusted)))
        .await
        .unwrap_err();
    assert!(
        refused.contains("certificate not valid for name \"127.0.0.2\""),
        "{refused}"
    );

    // A server without TLS: verify-full refuses it rather than going on in plaintext.
    let plain = PrivatePostgres::start(None);
    ping(plain.url("localhost", "?sslmode=disable"))
        .await
        .unwrap();
    let refused = ping(plain.url("localhost", &verify_full(&trusted)))
        .await
        .unwrap_err();
    assert!(refused.contains("TLS"), "{refused}");
}

#[tokio::test]
async fn rabbitmq_is_reached_over_amqps_with_the_ca_file_only() {
    let ca = TestCa::new("sales test CA");
    let node = PrivateRabbitMq::start(Some(&ca));
    let url = || SecretString::from(node.url("localhost"));
    let endpoint = AmqpEndpoint::new(url(), node.ca_file.clone()).unwrap();
    assert!(endpoint.is_tls());

    // One message published through the platform's transport (with the broker's
    // confirm) and read back, over the TLS connection its supervisor opened.
    let shutdown = CancellationToken::new();
    let topology = Topology::new("tls.".to_owned());
    let broker = Broker::start(
        "tls-test",
        endpoint,
        topology,
        Metrics::new("tls-test"),
        shutdown.clone(),
    );
    let connection = broker
        .wait_connected(Duration::from_secs(60))
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let queue = channel
        .queue_declare(
            "tls-check".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let body = br#"{"over":"amqps"}"#;
    broker
        .publish(OutgoingMessage {
            exchange: "",
            routing_key: queue.name().as_str(),
            body,
            message_id: Some("tls-1".into()),
            message_type: None,
            headers: Default::default(),
        })
        .await
        .unwrap();
    let got = channel
        .basic_get("tls-check".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the published message is in the queue");
    assert_eq!(got.delivery.data, body);
    shutdown.cancel();

    // Another CA, or none (the system's roots): the handshake fails.
    let other = TestCa::new("another CA").trust_file();
    for ca_file in [Some(other.path.clone()), None] {
        let refused = AmqpEndpoint::new(url(), ca_file)
            .unwrap()
            .connect(ConnectionProperties::default())
            .await
            .unwrap_err();
        let refused = format!("{refused:#}");
        assert!(refused.contains("UnknownIssuer"), "{refused}");
    }
    // The supervisor keeps trying and never connects, rather than falling back.
    let shutdown = CancellationToken::new();
    let endpoint = AmqpEndpoint::new(url(), Some(other.path.clone())).unwrap();
    let broker = Broker::start(
        "tls-test",
        endpoint,
        Topology::new("tls2.".to_owned()),
        Metrics::new("tls-test"),
        shutdown.clone(),
    );
    assert!(broker.wait_connected(Duration::from_secs(3)).await.is_err());
    shutdown.cancel();
}

/// Kafka over TLS: the broker (tansu) behind a TLS front of the test's own, which it
/// advertises (see `sales_testkit::tls_front`). The platform's producer publishes
/// one event with `KAFKA_SECURITY_PROTOCOL=ssl` and `KAFKA_SSL_CA_LOCATION`, and a
/// consumer with the same settings reads it back; another CA, no CA (the system's
/// roots) and plaintext against the TLS port never connect.
#[tokio::test(flavor = "multi_thread")]
async fn kafka_is_reached_over_tls_with_the_ca_file_only() {
    let ca = TestCa::new("sales test CA");
    let front = TlsFront::bind(&ca).await;
    let advertised = format!("localhost:{}", front.port);
    let kafka = PrivateKafka::start_advertising(&advertised);
    let upstream: u16 = kafka.bootstrap.rsplit(':').next().unwrap().parse().unwrap();
    let _front = front.forward_to(upstream);
    let trusted = ca.trust_file();
    let args = |protocol: &str, ca_file: Option<PathBuf>| KafkaArgs {
        kafka_bootstrap_servers: Some(advertised.clone()),
        kafka_topic_prefix: "tls.".into(),
        kafka_topic_partitions: 1,
        kafka_replication_factor: 1,
        kafka_batch_messages: Some(1),
        kafka_security_protocol: protocol.into(),
        kafka_ssl_ca_location: ca_file,
        ..KafkaArgs::default()
    };

    let shutdown = CancellationToken::new();
    let settings = args("ssl", Some(trusted.path.clone()));
    let bus = KafkaBus::start(
        "tls-test",
        &settings,
        Metrics::new("tls-test"),
        shutdown.clone(),
    )
    .unwrap();
    assert!(
        bus.wait_connected(Duration::from_secs(60)).await,
        "connected over TLS and made the topics"
    );
    let messaging = Messaging::Kafka(bus);
    let body = br#"{"over":"kafka+tls"}"#;
    let (sent, failed) = messaging
        .publish_events(&[OutgoingEvent {
            message_type: "create-order",
            key: "order-1",
            body,
            message_id: "tls-1".into(),
            headers: Default::default(),
        }])
        .await;
    assert_eq!((sent, failed.map(|e| e.to_string())), (1, None));

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &advertised)
        .set("security.protocol", "ssl")
        .set("ssl.ca.location", trusted.path.to_string_lossy())
        .set("group.id", "tls-check")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let topic = messaging.topology().event_topic("create-order");
    consumer.subscribe(&[topic.as_str()]).unwrap();
    let read = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(500)) {
                return message.payload().map(<[u8]>::to_vec);
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(read.as_deref(), Some(&body[..]));
    shutdown.cancel();

    // Another CA, no CA (the system's roots), plaintext to the TLS port: never
    // connected, never falling back.
    let other = TestCa::new("another CA").trust_file();
    for (protocol, ca_file) in [
        ("ssl", Some(other.path.clone())),
        ("ssl", None),
        ("plaintext", None),
    ] {
        let shutdown = CancellationToken::new();
        let bus = KafkaBus::start(
            "tls-test",
            &args(protocol, ca_file.clone()),
            Metrics::new("tls-test"),
            shutdown.clone(),
        )
        .unwrap();
        assert!(
            !bus.wait_connected(Duration::from_secs(8)).await,
            "{protocol} with {ca_file:?} connected"
        );
        shutdown.cancel();
    }
}

#[tokio::test]
async fn the_cache_reads_and_writes_redis_over_verified_tls_only() {
    let ca = TestCa::new("sales test CA");
    let server = PrivateRedis::start(Some(&ca));
    let args = |ca_file: Option<PathBuf>| CacheArgs {
        redis_url: Some(SecretString::from(server.url("localhost"))),
        redis_tls_ca_file: ca_file,
        cache_ttl: Duration::from_secs(60),
        cache_prefix: "tls:".into(),
    };
    let loads = AtomicUsize::new(0);
    let load = || async {
        loads.fetch_add(1, Ordering::SeqCst);
        Ok::<_, Infallible>("widget".to_owned())
    };

    let cache = args(server.ca_file.clone())
        .cache(&Metrics::new("tls-test"))
        .unwrap();
    assert_eq!(
        cache.get_or_load("product", "7", load).await.unwrap(),
        "widget"
    );
    assert_eq!(
        cache.get_or_load("product", "7", load).await.unwrap(),
        "widget"
    );
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "the second read was not a cache hit"
    );
    // The entry is in this Redis, read back over TLS by the platform's client.
    let client = redis_client(&server.url("localhost"), server.ca_file.as_deref()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("tls:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys, ["tls:7@0"], "the entry under key 7, version 0");

    // Another CA, or none (the system's roots): refused.
    let other = TestCa::new("another CA").trust_file();
    for ca_file in [Some(other.path.as_path()), None] {
        let client = redis_client(&server.url("localhost"), ca_file).unwrap();
        let Err(refused) = client.get_multiplexed_async_connection().await else {
            panic!("connected to Redis with an untrusted certificate");
        };
        let refused = refused.to_string();
        assert!(refused.contains("UnknownIssuer"), "{refused}");
    }
    // The cache on another CA steps aside: every read goes to the loader.
    loads.store(0, Ordering::SeqCst);
    let cache = args(Some(other.path.clone()))
        .cache(&Metrics::new("tls-test"))
        .unwrap();
    cache.get_or_load("product", "7", load).await.unwrap();
    cache.get_or_load("product", "7", load).await.unwrap();
    assert_eq!(loads.load(Ordering::SeqCst), 2);
}

/// The product service's binary with `tls_env` on top of settings that would
/// otherwise start it (nothing it needs answers: it starts and waits).
fn product_service_with(tls_env: &[(&str, String)]) -> std::process::Command {
    if std::env::var_os("SALES_BINARIES_BUILT").is_none() {
        let built = sales_testkit::cargo_command()
            .args(["build", "--quiet", "--package", "product-service"])
            .args(["--bin", "product-service"])
            .status()
            .unwrap();
        assert!(built.success(), "building product-service failed");
    }
    let nowhere = "http://127.0.0.1:1";
    let mut command = std::process::Command::new(system_tests::bin_dir().join("product-service"));
    command
        .env_clear()
        .env("HTTP_ADDR", "127.0.0.1:0")
        .env("ADMIN_ADDR", "127.0.0.1:0")
        .env("DATABASE_URL", "postgres://u@127.0.0.1:1/x")
        .env("AMQP_URL", "amqps://u:p@127.0.0.1:1/%2f")
        .env("IDENTITY_URL", nowhere)
        .env("GATEWAY_JWKS_URL", format!("{nowhere}/jwks"))
        .env("SERVICE_CLIENT_SECRET", "0123456789abcdef0123")
        .env("INVENTORY_SERVICE_URL", nowhere)
        .env("LOG_FORMAT", "text")
        .envs(tls_env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null());
    command
}

#[tokio::test]
async fn a_service_with_contradictory_tls_settings_does_not_start() {
    let ca = TestCa::new("sales test CA").trust_file();
    let ca_path = ca.path.display().to_string();
    let not_pem = ca.path.with_file_name("not-pem.crt");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let cases = [
        (
            vec![
                ("AMQP_URL", "amqp://u:p@127.0.0.1:1/%2f".to_owned()),
                ("AMQP_TLS_CA_FILE", ca_path.clone()),
            ],
            "AMQP_TLS_CA_FILE is set but AMQP_URL is amqp:// (plaintext)",
        ),
        (
            vec![("AMQP_TLS_CA_FILE", not_pem.display().to_string())],
            "holds no PEM certificate",
        ),
        (
            vec![(
                "DATABASE_URL",
                format!("postgres://u@127.0.0.1:1/x?sslmode=require&sslrootcert={ca_path}"),
            )],
            "DATABASE_URL: sslrootcert is set but sslmode=require",
        ),
        (
            vec![
                ("REDIS_URL", "rediss://127.0.0.1:1".to_owned()),
                ("REDIS_TLS_CA_FILE", "/nonexistent/ca.crt".to_owned()),
            ],
            "REDIS_TLS_CA_FILE: cannot read /nonexistent/ca.crt",
        ),
    ];
    for (env, expected) in cases {
        let out = product_service_with(&env).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{env:?}: {stderr}");
        assert!(stderr.contains(expected), "{env:?}: {stderr}");
    }

    // Consistent settings pass the same checks: the service is still up after 2 s.
    let consistent = [
        ("AMQP_TLS_CA_FILE", ca_path.clone()),
        (
            "DATABASE_URL",
            format!("postgres://u@127.0.0.1:1/x?sslmode=verify-full&sslrootcert={ca_path}"),
        ),
        ("REDIS_URL", "rediss://127.0.0.1:1".to_owned()),
        ("REDIS_TLS_CA_FILE", ca_path),
    ];
    let mut running = product_service_with(&consistent)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let exited = running.try_wait().unwrap();
    let _ = running.kill();
    let _ = running.wait();
    assert_eq!(
        exited, None,
        "the service stopped with consistent TLS settings"
    );
}
