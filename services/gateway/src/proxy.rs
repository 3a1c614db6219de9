//! Forwarding a request to its upstream, with seed 002's fault tolerance:
//!
//! - a time limit on every attempt (`UPSTREAM_TIMEOUT`): 504 `upstream_timeout`;
//! - retries of idempotent requests only (GET, HEAD, PUT, DELETE, OPTIONS, and POST
//!   or PATCH with an `Idempotency-Key`), on connection failures and 502/503/504,
//!   `UPSTREAM_RETRIES` times, waiting `n × RETRY_BACKOFF` before the n-th;
//! - a circuit breaker per upstream ([`crate::breaker`]): while open, an immediate
//!   503 `upstream_unavailable` with `Retry-After`.
//!
//! The upstream's own answer (status, headers but hop-by-hop ones, body) is passed
//! back unchanged. A timeout is not retried: the request may have taken effect, and
//! retrying would multiply the wait.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_http::HeaderInjector;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_semantic_conventions::attribute::{
    HTTP_REQUEST_METHOD, HTTP_RESPONSE_STATUS_CODE, SERVER_ADDRESS, SERVER_PORT, SERVICE_PEER_NAME,
    URL_FULL,
};
use sales_platform::ApiError;
use sales_platform::error::error_chain;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::breaker::{Breaker, BreakerConfig, Permit};
use crate::metrics::{GatewayMetrics, Outcome};
use crate::routes::Upstream;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

#[derive(Clone, Debug)]
pub struct ProxyConfig {
    pub timeout: Duration,
    pub retries: u32,
    pub backoff: Duration,
    pub breaker: BreakerConfig,
}

/// A request on its way to an upstream.
#[derive(Debug)]
pub struct Outgoing {
    pub method: Method,
    /// Path (canonical) and query.
    pub path_and_query: String,
    pub headers: HeaderMap,
    /// The gateway's token for this upstream: the request's `Authorization`.
    pub credential: String,
    pub body: Bytes,
}

/// Headers that describe one connection, not the message: never forwarded
/// (RFC 9110 §7.6.1), in either direction.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Remove hop-by-hop headers, including those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// May this request be sent twice without harm?
pub fn is_idempotent(method: &Method, headers: &HeaderMap) -> bool {
    match *method {
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS => true,
        Method::POST | Method::PATCH => headers
            .get(IDEMPOTENCY_KEY)
            .is_some_and(|v| !v.as_bytes().is_empty()),
        _ => false,
    }
}

struct Target {
    base_url: String,
    breaker: Mutex<Breaker>,
}

/// Every upstream, with its breaker.
pub struct Upstreams {
    http: reqwest::Client,
    targets: HashMap<Upstream, Target>,
    config: ProxyConfig,
    metrics: GatewayMetrics,
}

/// What one attempt came to.
enum Attempt {
    Answer {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    ConnectFailed(String),
    Broken(String),
    TimedOut,
}

impl Upstreams {
    pub fn new(
        base_urls: HashMap<Upstream, String>,
        config: ProxyConfig,
        metrics: GatewayMetrics,
    ) -> anyhow::Result<Upstreams> {
        let http = sales_platform::tls::http_client_builder()
            .connect_timeout(config.timeout.min(Duration::from_secs(2)))
            .pool_idle_timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()?;
        let now = Instant::now();
        let mut targets = HashMap::new();
        for upstream in Upstream::ALL {
            let base = base_urls
                .get(&upstream)
                .ok_or_else(|| anyhow::anyhow!("no URL for the {upstream} service"))?;
            let parsed = reqwest::Url::parse(base)
                .map_err(|e| anyhow::anyhow!("the {upstream} service URL {base:?}: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                anyhow::bail!("the {upstream} service URL {base:?} is not http(s)");
            }
            targets.insert(
                upstream,
                Target {
                    base_url: base.trim_end_matches('/').to_owned(),
                    breaker: Mutex::new(Breaker::new(config.breaker, now)),
                },
            );
        }
        Ok(Upstreams {
            http,
            targets,
            config,
            metrics,
        })
    }

    pub fn base_url(&self, upstream: Upstream) -> Option<&str> {
        self.targets.get(&upstream).map(|t| t.base_url.as_str())
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Send `request` to `upstream` and turn what happens into the client's answer.
    pub async fn forward(&self, upstream: Upstream, mut request: Outgoing) -> Response {
        let Some(target) = self.targets.get(&upstream) else {
            return ApiError::not_found(format!("no {upstream} service configured"))
                .into_response();
        };
        strip_hop_by_hop(&mut request.headers);
        // Set last: nothing the client sent can take its place or remove it.
        match HeaderValue::from_str(&format!("Bearer {}", request.credential)) {
            Ok(value) => {
                request.headers.insert(header::AUTHORIZATION, value);
            }
            Err(_) => {
                return ApiError::internal(anyhow::anyhow!("a signed token is not a header value"))
                    .into_response();
            }
        }
        request.headers.remove(header::HOST);
        request.headers.remove(header::CONTENT_LENGTH);
        // The body is read already; the upstream must not be asked to wait for it.
        request.headers.remove(header::EXPECT);
        let retry = is_idempotent(&request.method, &request.headers);
        let url = format!("{}{}", target.base_url, request.path_and_query);

        let mut retries_done = 0;
        loop {
            let permit = match self.acquire(upstream, target) {
                Ok(permit) => permit,
                Err(wait) => return breaker_open(upstream, wait),
            };
            let guard = PermitGuard {
                target,
                permit: Some(permit),
            };
            let sent = Instant::now();
            let attempt = self.attempt(upstream, &url, &request).await;
            let took = sent.elapsed();
            let (outcome, retryable) = match &attempt {
                Attempt::Answer { status, .. } => (
                    if status.is_server_error() {
                        Outcome::Error
                    } else {
                        Outcome::Ok
                    },
                    matches!(
                        *status,
                        StatusCode::BAD_GATEWAY
                            | StatusCode::SERVICE_UNAVAILABLE
                            | StatusCode::GATEWAY_TIMEOUT
                    ),
                ),
                Attempt::ConnectFailed(_) => (Outcome::Error, true),
                Attempt::Broken(_) => (Outcome::Error, false),
                Attempt::TimedOut => (Outcome::Timeout, false),
            };
            self.metrics.upstream(upstream, outcome, took);
            // A 503 with `Retry-After` is an upstream shedding load on purpose (the
            // customer service's bounded password hashing): it is alive, and its
            // answer must not open the breaker for everyone else.
            let alive = outcome == Outcome::Ok
                || matches!(&attempt, Attempt::Answer { status, headers, .. } if sheds_load(*status, headers));
            self.record(upstream, guard, alive);

            if retryable && retry && retries_done < self.config.retries {
                retries_done += 1;
                tracing::info!(
                    upstream = upstream.name(),
                    retry = retries_done,
                    "retrying an idempotent request"
                );
                tokio::time::sleep(self.config.backoff * retries_done).await;
                continue;
            }
            return match attempt {
                Attempt::Answer {
                    status,
                    mut headers,
                    body,
                } => {
                    strip_hop_by_hop(&mut headers);
                    let mut response = Response::new(Body::from(body));
                    *response.status_mut() = status;
                    *response.headers_mut() = headers;
                    response
                }
                Attempt::ConnectFailed(reason) => {
                    tracing::warn!(upstream = upstream.name(), %reason, "upstream unreachable");
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "upstream_unavailable",
                        format!("the {upstream} service is unavailable; try again shortly"),
                    )
                    .into_response()
                }
                Attempt::Broken(reason) => {
                    tracing::warn!(upstream = upstream.name(), %reason, "upstream answer broken");
                    ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        "bad_gateway",
                        format!("the {upstream} service sent no complete answer"),
                    )
                    .into_response()
                }
                Attempt::TimedOut => {
                    tracing::warn!(upstream = upstream.name(), timeout = ?self.config.timeout, "upstream timed out");
                    ApiError::new(
                        StatusCode::GATEWAY_TIMEOUT,
                        "upstream_timeout",
                        format!(
                            "the {upstream} service did not answer within {}",
                            humantime::format_duration(self.config.timeout)
                        ),
                    )
                    .into_response()
                }
            };
        }
    }

    async fn attempt(&self, upstream: Upstream, url: &str, request: &Outgoing) -> Attempt {
        // OpenTelemetry's HTTP client span: named by the method alone.
        let (host, port) = sales_platform::client::host_and_port(url);
        let span = tracing::info_span!(
            "http.client",
            otel.kind = "client",
            otel.name = request.method.as_str(),
            otel.status_code = tracing::field::Empty,
            { SERVICE_PEER_NAME } = upstream.name(),
            { HTTP_REQUEST_METHOD } = %request.method,
            { URL_FULL } = url,
            { SERVER_ADDRESS } = host.as_deref(),
            { SERVER_PORT } = port,
            { HTTP_RESPONSE_STATUS_CODE } = tracing::field::Empty,
        );
        let mut headers = request.headers.clone();
        // Continue the trace from this span; without a tracer (no telemetry set
        // up) there is no span context, and the client's own headers go on as sent.
        let mut injected = HeaderMap::new();
        TraceContextPropagator::new()
            .inject_context(&span.context(), &mut HeaderInjector(&mut injected));
        if injected.contains_key(TRACEPARENT) {
            headers.remove(TRACEPARENT);
            headers.remove(TRACESTATE);
            headers.extend(injected);
        }
        let mut builder = self
            .http
            .request(request.method.clone(), url)
            .headers(headers);
        if !request.body.is_empty()
            || matches!(request.method, Method::POST | Method::PUT | Method::PATCH)
        {
            builder = builder.body(request.body.clone());
        }
        let exchange = async {
            let response = builder.send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        };
        let result = tokio::time::timeout(self.config.timeout, exchange)
            .instrument(span.clone())
            .await;
        match result {
            Err(_) => Attempt::TimedOut,
            Ok(Ok((status, headers, body))) => {
                span.record(HTTP_RESPONSE_STATUS_CODE, status.as_u16());
                if status.is_client_error() || status.is_server_error() {
                    span.record("otel.status_code", "ERROR");
                }
                Attempt::Answer {
                    status,
                    headers,
                    body,
                }
            }
            // A connection that cannot be made (refused, or not within the connect
            // timeout) means the upstream is unreachable: 503, and safe to retry.
            Ok(Err(e)) if e.is_connect() => Attempt::ConnectFailed(error_chain(&e)),
            Ok(Err(e)) if e.is_timeout() => Attempt::TimedOut,
            Ok(Err(e)) => Attempt::Broken(error_chain(&e)),
        }
    }

    fn acquire(&self, upstream: Upstream, target: &Target) -> Result<Permit, Duration> {
        let now = Instant::now();
        let mut breaker = target.breaker.lock().unwrap_or_else(|e| e.into_inner());
        let result = breaker.try_acquire(now);
        self.metrics.breaker(upstream, breaker.state(now));
        if result.is_err() {
            self.metrics.rejected_by_breaker(upstream);
        }
        result
    }

    fn record(&self, upstream: Upstream, mut guard: PermitGuard<'_>, success: bool) {
        let Some(permit) = guard.permit.take() else {
            return;
        };
        let now = Instant::now();
        let mut breaker = guard
            .target
            .breaker
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let before = breaker.state(now);
        breaker.record(permit, success, now);
        let after = breaker.state(now);
        self.metrics.breaker(upstream, after);
        if before != after {
            tracing::warn!(upstream = upstream.name(), from = ?before, to = ?after, "circuit breaker changed state");
        }
    }

    /// Bring `gateway_breaker_state` up to date (an open breaker turns half-open by
    /// itself when its time is up, between requests).
    pub fn refresh_breaker_gauges(&self) {
        let now = Instant::now();
        for (upstream, target) in &self.targets {
            let state = target
                .breaker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .state(now);
            self.metrics.breaker(*upstream, state);
        }
    }

    /// The breaker state of `upstream` now (for tests and diagnostics).
    pub fn breaker_state(&self, upstream: Upstream) -> Option<crate::breaker::State> {
        self.targets.get(&upstream).map(|t| {
            t.breaker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .state(Instant::now())
        })
    }
}

/// Hands a permit back unused when the request is dropped mid-way (the client went
/// away), so a half-open breaker is not left waiting for a trial that never ends.
struct PermitGuard<'a> {
    target: &'a Target,
    permit: Option<Permit>,
}

impl Drop for PermitGuard<'_> {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.target
                .breaker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .abandon(permit);
        }
    }
}

fn breaker_open(upstream: Upstream, wait: Duration) -> Response {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "upstream_unavailable",
        format!(
            "the {upstream} service is unavailable (its circuit breaker is open); try again in {secs} s"
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

/// An upstream's deliberate 503: it answers, with `Retry-After`, that it is busy.
fn sheds_load(status: StatusCode, headers: &axum::http::HeaderMap) -> bool {
    status == StatusCode::SERVICE_UNAVAILABLE && headers.contains_key(header::RETRY_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotent_methods() {
        let none = HeaderMap::new();
        let mut keyed = HeaderMap::new();
        keyed.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("k1"));
        for m in [
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ] {
            assert!(is_idempotent(&m, &none), "{m}");
        }
        assert!(!is_idempotent(&Method::POST, &none));
        assert!(!is_idempotent(&Method::PATCH, &none));
        assert!(is_idempotent(&Method::POST, &keyed));
        assert!(is_idempotent(&Method::PATCH, &keyed));
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::CONTENT_TYPE));
    }
}
