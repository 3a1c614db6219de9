//! Prometheus metrics every service exports, on one registry per service instance
//! (so tests can run several services in one process). Services register their
//! business counters on [`Metrics::registry`]. Every series carries a `service` label.
//!
//! The names here are the ones the Grafana dashboards and alert rules use; renaming
//! one is a breaking change for them.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use sqlx::PgPool;

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const LAG_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `http_requests_total{method, route, status}`
    pub http_requests: IntCounterVec,
    /// `http_request_duration_seconds{method, route}`
    pub http_duration: HistogramVec,
    /// `http_requests_in_flight`
    pub http_in_flight: IntGauge,
    /// `http_auth_failures_total{reason}`: requests refused before their handler ran
    /// (missing_token, expired, bad_signature, wrong_audience, forbidden...).
    pub http_auth_failures: IntCounterVec,
    /// `messages_consumed_total{queue, outcome}`; outcome: processed, duplicate,
    /// retried, dead_lettered.
    pub messages_consumed: IntCounterVec,
    /// `message_processing_duration_seconds{queue}`
    pub message_duration: HistogramVec,
    /// `message_lag_seconds{queue}`: from when the event happened to when it was handled.
    pub message_lag: HistogramVec,
    /// `messages_published_total{message_type}`: confirmed by the broker.
    pub messages_published: IntCounterVec,
    /// `outbox_pending_messages`: events committed but not yet confirmed by the broker.
    pub outbox_pending: IntGauge,
    /// `outbox_oldest_pending_seconds`: age of the oldest of them.
    pub outbox_oldest_pending_seconds: prometheus::Gauge,
    /// `outbox_publish_failures_total`
    pub outbox_publish_failures: IntCounter,
    /// `outbox_parked_messages`: events the broker refused again and again, set aside
    /// so they hold back nothing (retried every few minutes).
    pub outbox_parked: IntGauge,
    /// `broker_connected`: 1 while connected to the broker.
    pub broker_connected: IntGauge,
    /// `broker_connections_total`: successful connects; more than one means reconnects.
    pub broker_connections: IntCounter,
    /// `consumers_active{queue}`: 1 while a consumer is attached to the queue.
    pub consumers_active: IntGaugeVec,
    /// `kafka_consumer_lag_messages{group, topic}`: messages of the topic not yet read
    /// by this member of the group (librdkafka's statistics, every 5 s).
    pub kafka_consumer_lag: IntGaugeVec,
    /// `kafka_rebalances_total{group, kind}`: partitions assigned to or revoked from
    /// this member.
    pub kafka_rebalances: IntCounterVec,
}

impl Metrics {
    pub fn new(service: &str) -> Self {
        let labels = std::collections::HashMap::from([("service".to_owned(), service.to_owned())]);
        // Only fails on an invalid label name, which "service" is not.
        let registry = Registry::new_custom(None, Some(labels)).unwrap_or_default();
        let m = Metrics {
            http_requests: IntCounterVec::new(
                Opts::new("http_requests_total", "HTTP requests answered"),
                &["method", "route", "status"],
            )
            .unwrap_or_else(unreachable_metric),
            http_duration: HistogramVec::new(
                HistogramOpts::new("http_request_duration_seconds", "HTTP request latency")
                    .buckets(LATENCY_BUCKETS.to_vec()),
                &["method", "route"],
            )
            .unwrap_or_else(unreachable_metric),
            http_in_flight: IntGauge::new("http_requests_in_flight", "HTTP requests being served")
                .unwrap_or_else(unreachable_metric),
            http_auth_failures: IntCounterVec::new(
                Opts::new(
                    "http_auth_failures_total",
                    "Requests refused for their credential or rights, by reason",
                ),
                &["reason"],
            )
            .unwrap_or_else(unreachable_metric),
            messages_consumed: IntCounterVec::new(
                Opts::new(
                    "messages_consumed_total",
                    "Messages taken from a queue, by outcome",
                ),
                &["queue", "outcome"],
            )
            .unwrap_or_else(unreachable_metric),
            message_duration: HistogramVec::new(
                HistogramOpts::new(
                    "message_processing_duration_seconds",
                    "Time to handle one message",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["queue"],
            )
            .unwrap_or_else(unreachable_metric),
            message_lag: HistogramVec::new(
                HistogramOpts::new(
                    "message_lag_seconds",
                    "Time from an event happening to its handling",
                )
                .buckets(LAG_BUCKETS.to_vec()),
                &["queue"],
            )
            .unwrap_or_else(unreachable_metric),
            messages_published: IntCounterVec::new(
                Opts::new(
                    "messages_published_total",
                    "Messages published and confirmed by the broker",
                ),
                &["message_type"],
            )
            .unwrap_or_else(unreachable_metric),
            outbox_pending: IntGauge::new(
                "outbox_pending_messages",
                "Events committed to the outbox and not yet confirmed by the broker",
            )
            .unwrap_or_else(unreachable_metric),
            outbox_oldest_pending_seconds: prometheus::Gauge::new(
                "outbox_oldest_pending_seconds",
                "Age of the oldest event waiting in the outbox",
            )
            .unwrap_or_else(unreachable_metric),
            outbox_publish_failures: IntCounter::new(
                "outbox_publish_failures_total",
                "Attempts to relay outbox events that failed",
            )
            .unwrap_or_else(unreachable_metric),
            outbox_parked: IntGauge::new(
                "outbox_parked_messages",
                "Outbox events the broker refused again and again, set aside so they hold back nothing",
            )
            .unwrap_or_else(unreachable_metric),
            broker_connected: IntGauge::new(
                "broker_connected",
                "1 while connected to the message broker (RabbitMQ or Kafka)",
            )
            .unwrap_or_else(unreachable_metric),
            broker_connections: IntCounter::new(
                "broker_connections_total",
                "Connections made to the message broker (more than one means reconnects)",
            )
            .unwrap_or_else(unreachable_metric),
            consumers_active: IntGaugeVec::new(
                Opts::new(
                    "consumers_active",
                    "1 while a consumer is attached to the queue",
                ),
                &["queue"],
            )
            .unwrap_or_else(unreachable_metric),
            kafka_consumer_lag: IntGaugeVec::new(
                Opts::new(
                    "kafka_consumer_lag_messages",
                    "Messages of the topic not yet read by this member of the consumer group",
                ),
                &["group", "topic"],
            )
            .unwrap_or_else(unreachable_metric),
            kafka_rebalances: IntCounterVec::new(
                Opts::new(
                    "kafka_rebalances_total",
                    "Partitions assigned to (assign) or revoked from (revoke) this member of the consumer group",
                ),
                &["group", "kind"],
            )
            .unwrap_or_else(unreachable_metric),
            registry,
        };
        m.register(Box::new(m.http_requests.clone()));
        m.register(Box::new(m.http_duration.clone()));
        m.register(Box::new(m.http_in_flight.clone()));
        m.register(Box::new(m.http_auth_failures.clone()));
        m
    }

    /// Count a request refused for its credential or rights.
    pub fn auth_failure(&self, reason: &str) {
        self.http_auth_failures.with_label_values(&[reason]).inc();
    }

    /// Export the broker, outbox and consumer families: only services that use
    /// a broker do (a service without a broker would otherwise report
    /// `broker_connected 0` forever).
    pub fn register_messaging(&self) {
        let m = self;
        m.register(Box::new(m.messages_consumed.clone()));
        m.register(Box::new(m.message_duration.clone()));
        m.register(Box::new(m.message_lag.clone()));
        m.register(Box::new(m.messages_published.clone()));
        m.register(Box::new(m.outbox_pending.clone()));
        m.register(Box::new(m.outbox_oldest_pending_seconds.clone()));
        m.register(Box::new(m.outbox_publish_failures.clone()));
        m.register(Box::new(m.outbox_parked.clone()));
        m.register(Box::new(m.broker_connected.clone()));
        m.register(Box::new(m.broker_connections.clone()));
        m.register(Box::new(m.consumers_active.clone()));
        m.register(Box::new(m.kafka_consumer_lag.clone()));
        m.register(Box::new(m.kafka_rebalances.clone()));
    }

    /// Export `db_pool_connections{state}` (`idle`, `in_use`) and
    /// `db_pool_max_connections` for the service's PostgreSQL pool, read at each scrape.
    pub fn register_database_pool(&self, pool: PgPool) {
        self.register(Box::new(DatabasePoolCollector::new(pool)));
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Register a service's own collector (business counters).
    pub fn register(&self, collector: Box<dyn prometheus::core::Collector>) {
        if let Err(err) = self.registry.register(collector) {
            tracing::error!(error = %err, "metric registered twice; it is exported once");
        }
    }

    /// A counter vector registered on this service's registry.
    pub fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        let c =
            IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(unreachable_metric);
        self.register(Box::new(c.clone()));
        c
    }

    /// A gauge registered on this service's registry.
    pub fn gauge(&self, name: &str, help: &str) -> IntGauge {
        let g = IntGauge::with_opts(Opts::new(name, help)).unwrap_or_else(unreachable_metric);
        self.register(Box::new(g.clone()));
        g
    }

    /// A histogram registered on this service's registry.
    pub fn histogram(&self, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
        let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
            .unwrap_or_else(unreachable_metric);
        self.register(Box::new(h.clone()));
        h
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %err, "could not encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The connection pool's state, read from sqlx when Prometheus scrapes: a pool that
/// stays at its maximum with no idle connection makes requests wait for a
/// connection (and time out with 503 after `DATABASE_ACQUIRE_TIMEOUT`).
struct DatabasePoolCollector {
    pool: PgPool,
    /// `db_pool_connections{state}`: open connections, `idle` or `in_use`.
    connections: IntGaugeVec,
    /// `db_pool_max_connections`: the most the pool opens (`DATABASE_MAX_CONNECTIONS`).
    max_connections: IntGauge,
}

impl DatabasePoolCollector {
    fn new(pool: PgPool) -> Self {
        DatabasePoolCollector {
            pool,
            connections: IntGaugeVec::new(
                Opts::new(
                    "db_pool_connections",
                    "Open PostgreSQL connections of the pool, idle or in use",
                ),
                &["state"],
            )
            .unwrap_or_else(unreachable_metric),
            max_connections: IntGauge::new(
                "db_pool_max_connections",
                "The most PostgreSQL connections the pool opens",
            )
            .unwrap_or_else(unreachable_metric),
        }
    }
}

impl Collector for DatabasePoolCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs = self.connections.desc();
        descs.extend(self.max_connections.desc());
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let open = i64::from(self.pool.size());
        let idle = i64::try_from(self.pool.num_idle()).unwrap_or(i64::MAX);
        self.connections.with_label_values(&["idle"]).set(idle);
        self.connections
            .with_label_values(&["in_use"])
            .set(open.saturating_sub(idle).max(0));
        self.max_connections
            .set(i64::from(self.pool.options().get_max_connections()));
        let mut families = self.connections.collect();
        families.extend(self.max_connections.collect());
        families
    }
}

/// Metric definitions are constants; an invalid one is a programming error caught by
/// the tests that render every metric, so failing loudly at start-up is right.
#[allow(clippy::panic)]
fn unreachable_metric<T>(err: prometheus::Error) -> T {
    panic!("invalid metric definition: {err}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_with_service_label() {
        let m = Metrics::new("order");
        m.http_requests
            .with_label_values(&["GET", "/orders", "200"])
            .inc();
        m.counter_vec("orders_total", "orders", &["status"])
            .with_label_values(&["unpaid"])
            .inc();
        let text = m.render();
        assert!(text.contains(
            r#"http_requests_total{method="GET",route="/orders",status="200",service="order"} 1"#
        ));
        assert!(text.contains(r#"orders_total{status="unpaid",service="order"} 1"#));
    }

    #[tokio::test]
    async fn database_pool_is_read_at_each_scrape() -> anyhow::Result<()> {
        // Reads the pool only; it changes nothing in the server's database.
        let url = std::env::var("SALES_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let db = sqlx::postgres::PgPoolOptions::new()
            .max_connections(3)
            .connect_lazy(&url)?;
        let m = Metrics::new("product");
        m.register_database_pool(db.clone());
        let before = m.render();
        assert!(
            before.contains(r#"db_pool_max_connections{service="product"} 3"#),
            "{before}"
        );
        assert!(
            before.contains(r#"db_pool_connections{state="in_use",service="product"} 0"#),
            "{before}"
        );
        let held = db.acquire().await?;
        let during = m.render();
        assert!(
            during.contains(r#"db_pool_connections{state="in_use",service="product"} 1"#),
            "{during}"
        );
        drop(held);
        Ok(())
    }
}
