//! The operator's own metrics and its admin HTTP endpoint: `/metrics` (Prometheus
//! text), `/health` (the process runs) and `/ready` (it reached the API server).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// `sales_operator_*` metric families.
pub struct Metrics {
    registry: Registry,
    /// `sales_operator_reconciles_total`: reconciles run.
    pub reconciles: IntCounter,
    /// `sales_operator_reconcile_errors_total{error}`: reconciles that failed, by cause.
    pub errors: IntCounterVec,
    /// `sales_operator_reconcile_duration_seconds`
    pub duration: Histogram,
    /// `sales_operator_leader`: 1 while this replica holds the lease.
    pub leader: IntGauge,
    /// `sales_operator_consumer_replicas{namespace,system,service}`: the replicas the
    /// scaler chose for an autoscaled consumer Deployment.
    pub consumer_replicas: IntGaugeVec,
    /// `sales_operator_consumer_desired_replicas{namespace,system,service}`: what the
    /// formula asks for now, before stabilization.
    pub consumer_desired_replicas: IntGaugeVec,
    /// `sales_operator_consumer_ready_replicas{namespace,system,service}`: ready pods of
    /// the consumer Deployment when the scaler last looked.
    pub consumer_ready_replicas: IntGaugeVec,
    /// `sales_operator_consumer_scalings_total{namespace,system,service,direction}`:
    /// replica changes the scaler made (`up`, `down`).
    pub consumer_scalings: IntCounterVec,
    /// `sales_operator_queue_depth{namespace,system,service,queue}`: ready plus
    /// unacknowledged messages, as last read.
    pub queue_depth: IntGaugeVec,
    /// `sales_operator_queue_publish_rate{namespace,system,service,queue}`: messages
    /// published per second.
    pub queue_publish_rate: GaugeVec,
    /// `sales_operator_queue_ack_rate{namespace,system,service,queue}`: messages
    /// acknowledged per second.
    pub queue_ack_rate: GaugeVec,
    /// `sales_operator_queue_read_errors_total{namespace,system,reason}`: reads of an
    /// autoscaled service's queues that failed (its replicas were kept).
    pub queue_read_errors: IntCounterVec,
    ready: AtomicBool,
}

/// Labels of a consumer's series.
pub const CONSUMER_LABELS: [&str; 3] = ["namespace", "system", "service"];
/// Labels of a queue's series.
pub const QUEUE_LABELS: [&str; 4] = ["namespace", "system", "service", "queue"];

#[allow(clippy::panic)]
fn unreachable_metric<T>(err: prometheus::Error) -> T {
    // Metric names and labels here are constants known to be valid.
    panic!("invalid metric definition: {err}")
}

fn int_gauges(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).unwrap_or_else(unreachable_metric)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let m = Metrics {
            reconciles: IntCounter::new("sales_operator_reconciles_total", "Reconciles run")
                .unwrap_or_else(unreachable_metric),
            errors: IntCounterVec::new(
                Opts::new(
                    "sales_operator_reconcile_errors_total",
                    "Reconciles that failed, by cause",
                ),
                &["error"],
            )
            .unwrap_or_else(unreachable_metric),
            duration: Histogram::with_opts(
                HistogramOpts::new(
                    "sales_operator_reconcile_duration_seconds",
                    "Time one reconcile took",
                )
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            )
            .unwrap_or_else(unreachable_metric),
            leader: IntGauge::new(
                "sales_operator_leader",
                "1 while this replica holds the leader lease",
            )
            .unwrap_or_else(unreachable_metric),
            consumer_replicas: int_gauges(
                "sales_operator_consumer_replicas",
                "Consumer replicas the operator chose (queue-depth autoscaling)",
                &CONSUMER_LABELS,
            ),
            consumer_desired_replicas: int_gauges(
                "sales_operator_consumer_desired_replicas",
                "Consumer replicas the formula asks for now, before stabilization",
                &CONSUMER_LABELS,
            ),
            consumer_ready_replicas: int_gauges(
                "sales_operator_consumer_ready_replicas",
                "Ready pods of the consumer Deployment",
                &CONSUMER_LABELS,
            ),
            consumer_scalings: IntCounterVec::new(
                Opts::new(
                    "sales_operator_consumer_scalings_total",
                    "Consumer replica changes made by the operator, by direction",
                ),
                &["namespace", "system", "service", "direction"],
            )
            .unwrap_or_else(unreachable_metric),
            queue_depth: int_gauges(
                "sales_operator_queue_depth",
                "Ready plus unacknowledged messages of a consumer queue, as last read",
                &QUEUE_LABELS,
            ),
            queue_publish_rate: GaugeVec::new(
                Opts::new(
                    "sales_operator_queue_publish_rate",
                    "Messages published to a consumer queue per second, as last read",
                ),
                &QUEUE_LABELS,
            )
            .unwrap_or_else(unreachable_metric),
            queue_ack_rate: GaugeVec::new(
                Opts::new(
                    "sales_operator_queue_ack_rate",
                    "Messages acknowledged on a consumer queue per second, as last read",
                ),
                &QUEUE_LABELS,
            )
            .unwrap_or_else(unreachable_metric),
            queue_read_errors: IntCounterVec::new(
                Opts::new(
                    "sales_operator_queue_read_errors_total",
                    "Reads of an autoscaled service's queues that failed, by reason",
                ),
                &["namespace", "system", "reason"],
            )
            .unwrap_or_else(unreachable_metric),
            registry,
            ready: AtomicBool::new(false),
        };
        for collector in [
            Box::new(m.reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.errors.clone()),
            Box::new(m.duration.clone()),
            Box::new(m.leader.clone()),
            Box::new(m.consumer_replicas.clone()),
            Box::new(m.consumer_desired_replicas.clone()),
            Box::new(m.consumer_ready_replicas.clone()),
            Box::new(m.consumer_scalings.clone()),
            Box::new(m.queue_depth.clone()),
            Box::new(m.queue_publish_rate.clone()),
            Box::new(m.queue_ack_rate.clone()),
            Box::new(m.queue_read_errors.clone()),
        ] {
            // Registering distinct names in a fresh registry cannot fail.
            let _ = m.registry.register(collector);
        }
        m
    }

    /// Counts a reconcile and times it until the returned guard drops.
    pub fn reconcile_started(&self) -> ReconcileTimer<'_> {
        self.reconciles.inc();
        ReconcileTimer {
            metrics: self,
            started: Instant::now(),
        }
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8_lossy(&buffer).into_owned()
    }
}

pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    started: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .duration
            .observe(self.started.elapsed().as_secs_f64());
    }
}

pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(m): State<Arc<Metrics>>| async move {
                (
                    [(axum::http::header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
                    m.render(),
                )
            }),
        )
        .route("/health", get(|| async { "ok" }))
        .route(
            "/ready",
            get(|State(m): State<Arc<Metrics>>| async move {
                if m.is_ready() {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            }),
        )
        .with_state(metrics)
}

/// Serve the admin endpoint on `addr` until `shutdown`. Returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let served = axum::serve(listener, router(metrics))
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(err) = served {
            tracing::error!(error = %err, "the metrics endpoint stopped");
        }
    });
    Ok(bound)
}
