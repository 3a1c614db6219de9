//! The gateway's own metrics, on the service's registry (next to the platform's
//! `http_requests_total` and friends).

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts};
use sales_platform::metrics::Metrics;

use crate::breaker::State;
use crate::routes::Upstream;

/// Upstream latency buckets: the default `UPSTREAM_TIMEOUT` is 5 s.
const UPSTREAM_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0,
];

/// `outcome` of one call to an upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered (any status below 500).
    Ok,
    /// Connection failed or the upstream answered 5xx.
    Error,
    /// No complete answer within `UPSTREAM_TIMEOUT`.
    Timeout,
    /// Not sent: the upstream's circuit breaker is open.
    RejectedByBreaker,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::RejectedByBreaker => "rejected_by_breaker",
        }
    }
}

#[derive(Clone)]
pub struct GatewayMetrics {
    /// `gateway_upstream_requests_total{upstream, outcome}`: every attempt, retries included.
    pub upstream_requests: IntCounterVec,
    /// `gateway_upstream_request_duration_seconds{upstream}`: time of each attempt, from
    /// sending to the whole answer read; errors and timeouts included, requests the
    /// breaker refused not.
    pub upstream_duration: HistogramVec,
    /// `gateway_breaker_state{upstream}`: 0 closed, 1 half-open, 2 open.
    pub breaker_state: IntGaugeVec,
    /// `gateway_rate_limited_total`: requests refused with 429.
    pub rate_limited: IntCounter,
    /// `gateway_rate_limit_local_total`: requests this replica counted alone
    /// because Redis did not answer in time (the limit still holds, per replica).
    pub rate_limit_local: IntCounter,
    /// `gateway_auth_failures_total{reason}`: expired, bad_signature, unknown_key,
    /// wrong_audience, revoked, malformed... (all 401 `invalid_token`), missing_token
    /// (401), forbidden (403), identity_unavailable (503).
    pub auth_failures: IntCounterVec,
}

impl GatewayMetrics {
    pub fn new(metrics: &Metrics) -> anyhow::Result<GatewayMetrics> {
        let upstream_requests = metrics.counter_vec(
            "gateway_upstream_requests_total",
            "Calls to upstream services (retries included), by outcome",
            &["upstream", "outcome"],
        );
        let upstream_duration = HistogramVec::new(
            HistogramOpts::new(
                "gateway_upstream_request_duration_seconds",
                "Time of one call to an upstream service (each attempt), by upstream",
            )
            .buckets(UPSTREAM_BUCKETS.to_vec()),
            &["upstream"],
        )?;
        metrics.register(Box::new(upstream_duration.clone()));
        let breaker_state = IntGaugeVec::new(
            Opts::new(
                "gateway_breaker_state",
                "Circuit breaker per upstream: 0 closed, 1 half-open, 2 open",
            ),
            &["upstream"],
        )?;
        metrics.register(Box::new(breaker_state.clone()));
        let rate_limited = IntCounter::new(
            "gateway_rate_limited_total",
            "Requests refused with 429 by the rate limit",
        )?;
        metrics.register(Box::new(rate_limited.clone()));
        let rate_limit_local = IntCounter::new(
            "gateway_rate_limit_local_total",
            "Requests whose rate limit this replica counted alone because Redis did not answer",
        )?;
        metrics.register(Box::new(rate_limit_local.clone()));
        let auth_failures = metrics.counter_vec(
            "gateway_auth_failures_total",
            "Requests refused by authentication or the access policy, by reason",
            &["reason"],
        );
        let m = GatewayMetrics {
            upstream_requests,
            upstream_duration,
            breaker_state,
            rate_limited,
            rate_limit_local,
            auth_failures,
        };
        for upstream in Upstream::ALL {
            m.breaker(upstream, State::Closed);
            m.upstream_duration.with_label_values(&[upstream.name()]);
            // Every outcome exists from the start, at 0, so rates see the first one.
            for outcome in [
                Outcome::Ok,
                Outcome::Error,
                Outcome::Timeout,
                Outcome::RejectedByBreaker,
            ] {
                m.upstream_requests
                    .with_label_values(&[upstream.name(), outcome.label()]);
            }
        }
        Ok(m)
    }

    /// One attempt sent to `upstream`, how it ended and how long it took.
    pub fn upstream(&self, upstream: Upstream, outcome: Outcome, took: Duration) {
        self.upstream_requests
            .with_label_values(&[upstream.name(), outcome.label()])
            .inc();
        self.upstream_duration
            .with_label_values(&[upstream.name()])
            .observe(took.as_secs_f64());
    }

    /// A request not sent because `upstream`'s breaker is open.
    pub fn rejected_by_breaker(&self, upstream: Upstream) {
        self.upstream_requests
            .with_label_values(&[upstream.name(), Outcome::RejectedByBreaker.label()])
            .inc();
    }

    pub fn breaker(&self, upstream: Upstream, state: State) {
        self.breaker_state
            .with_label_values(&[upstream.name()])
            .set(state.gauge());
    }

    pub fn auth_failure(&self, reason: &str) {
        self.auth_failures.with_label_values(&[reason]).inc();
    }
}
