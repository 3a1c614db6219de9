//! The gateway's own metrics, on the service's registry (next to the platform's
//! `http_requests_total` and friends).

use prometheus::{IntCounter, IntCounterVec, IntGaugeVec, Opts};
use sales_platform::metrics::Metrics;

use crate::breaker::State;
use crate::routes::Upstream;

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
    /// `gateway_breaker_state{upstream}`: 0 closed, 1 half-open, 2 open.
    pub breaker_state: IntGaugeVec,
    /// `gateway_rate_limited_total`: requests refused with 429.
    pub rate_limited: IntCounter,
    /// `gateway_rate_limit_unchecked_total`: requests served without a limit check
    /// because Redis did not answer in time (fail open).
    pub rate_limit_unchecked: IntCounter,
    /// `gateway_auth_failures_total{reason}`: expired, bad_signature, wrong_issuer,
    /// malformed (all 401 `invalid_token`), missing_token (401), forbidden (403).
    pub auth_failures: IntCounterVec,
}

impl GatewayMetrics {
    pub fn new(metrics: &Metrics) -> anyhow::Result<GatewayMetrics> {
        let upstream_requests = metrics.counter_vec(
            "gateway_upstream_requests_total",
            "Calls to upstream services (retries included), by outcome",
            &["upstream", "outcome"],
        );
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
        let rate_limit_unchecked = IntCounter::new(
            "gateway_rate_limit_unchecked_total",
            "Requests served without a rate-limit check because Redis did not answer (fail open)",
        )?;
        metrics.register(Box::new(rate_limit_unchecked.clone()));
        let auth_failures = metrics.counter_vec(
            "gateway_auth_failures_total",
            "Requests refused by authentication or the access policy, by reason",
            &["reason"],
        );
        let m = GatewayMetrics {
            upstream_requests,
            breaker_state,
            rate_limited,
            rate_limit_unchecked,
            auth_failures,
        };
        for upstream in Upstream::ALL {
            m.breaker(upstream, State::Closed);
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

    pub fn upstream(&self, upstream: Upstream, outcome: Outcome) {
        self.upstream_requests
            .with_label_values(&[upstream.name(), outcome.label()])
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
