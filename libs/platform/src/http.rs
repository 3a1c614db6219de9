//! HTTP serving: the layers every service's router gets (request ids, a span per
//! request continuing the caller's trace, RED metrics by route, body-size limit,
//! JSON errors for unknown routes, wrong methods and panics), `/health`, `/ready`,
//! Swagger UI at `/docs`, and the admin router with `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use sqlx::PgPool;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;
use utoipa::openapi::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::broker::Broker;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::telemetry::{self, HeaderExtractor};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Set on a response (as an extension) to label its metrics with another route than
/// the matched one: the gateway's catch-all route says which prefix it forwarded.
#[derive(Clone, Debug)]
pub struct RouteLabel(pub String);

/// The request id of the request being served, for handlers and outgoing calls.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// What `/ready` checks.
#[derive(Clone)]
pub struct Readiness {
    /// Migrations and start-up steps are done.
    started: Arc<AtomicBool>,
    pool: Option<PgPool>,
    broker: Option<Broker>,
}

impl Readiness {
    pub fn new(pool: Option<PgPool>, broker: Option<Broker>) -> Self {
        Readiness {
            started: Arc::new(AtomicBool::new(false)),
            pool,
            broker,
        }
    }

    pub fn set_started(&self) {
        self.started.store(true, Ordering::Release);
    }

    /// `Ok` when every dependency answers; otherwise what is missing.
    pub async fn check(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if let Some(pool) = &self.pool
            && let Err(e) = crate::db::ping(pool).await
        {
            problems.push(e);
        }
        if !self.started.load(Ordering::Acquire) {
            problems.push("starting: migrations or start-up steps not done yet".into());
        }
        if let Some(broker) = &self.broker
            && !broker.is_connected()
        {
            problems.push("broker: not connected to RabbitMQ".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// The probes, as they appear in every service's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(health, ready))]
struct ProbeDoc;

/// Alive: the process answers (seed 004's `{"status": "ok"}`).
#[utoipa::path(get, path = "/health", tag = "probes",
    responses((status = 200, description = "The process is alive", body = serde_json::Value,
               example = json!({"status": "ok"}))))]
async fn health() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// Ready: the database and the broker answer, migrations and start-up steps are done.
#[utoipa::path(get, path = "/ready", tag = "probes",
    responses((status = 200, description = "Ready to serve", body = serde_json::Value,
               example = json!({"status": "ready"})),
              (status = 503, description = "Not ready; `problems` says why", body = serde_json::Value,
               example = json!({"status": "not_ready", "problems": ["broker: not connected to RabbitMQ"]}))))]
async fn ready(State(readiness): State<Readiness>) -> Response {
    match readiness.check().await {
        Ok(()) => axum::Json(json!({ "status": "ready" })).into_response(),
        Err(problems) => {
            tracing::warn!(?problems, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({ "status": "not_ready", "problems": problems })),
            )
                .into_response()
        }
    }
}

/// `/health` and `/ready`, for both the public and the admin port.
pub fn probe_routes(readiness: Readiness) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(readiness)
}

/// The admin router: probes, `/metrics`, and `extra` (the dead-letter routes).
pub fn admin_router(metrics: Metrics, readiness: Readiness, extra: Router) -> Router {
    extra
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        metrics.render(),
                    )
                }
            }),
        )
        .merge(probe_routes(readiness))
        .fallback(unknown_route)
}

/// Wrap a service's API router with the probes, Swagger UI and the common layers.
pub fn public_router(
    api: Router,
    mut openapi: OpenApi,
    readiness: Readiness,
    metrics: Metrics,
    max_body_bytes: usize,
) -> Router {
    openapi.merge(<ProbeDoc as utoipa::OpenApi>::openapi());
    api.merge(probe_routes(readiness))
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(metrics, observe))
        .layer(CatchPanicLayer::custom(panic_response))
}

async fn unknown_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept {method}", uri.path()),
    )
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "the server failed to handle the request; quote the x-request-id header when reporting it",
    )
    .into_response()
}

/// Request id, span, metrics and one log line per request.
async fn observe(State(metrics): State<Metrics>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span = tracing::info_span!(
        "http",
        otel.kind = "server",
        otel.name = format!("{method} {route}"),
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
        request_id = %request_id,
        trace_id = tracing::field::Empty,
    );
    telemetry::continue_trace(&span, &HeaderExtractor(req.headers()));
    req.extensions_mut().insert(RequestId(request_id.clone()));

    metrics.http_in_flight.inc();
    let mut response = next.run(req).instrument(span.clone()).await;
    metrics.http_in_flight.dec();

    let status = response.status();
    let elapsed = started.elapsed();
    let route = response
        .extensions()
        .get::<RouteLabel>()
        .map(|l| l.0.clone())
        .unwrap_or(route);
    span.record("http.response.status_code", status.as_u16());
    metrics
        .http_requests
        .with_label_values(&[method.as_str(), route.as_str(), status.as_str()])
        .inc();
    metrics
        .http_duration
        .with_label_values(&[method.as_str(), route.as_str()])
        .observe(elapsed.as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    span.in_scope(|| {
        let ms = elapsed.as_secs_f64() * 1000.0;
        let probe = route == "/health" || route == "/ready";
        if status.is_server_error() && probe {
            // Not ready yet (migrating) or a dependency away: the readiness check has
            // logged why, and the orchestrator asks again.
            tracing::debug!(status = status.as_u16(), elapsed_ms = ms, "probe answered");
        } else if status.is_server_error() {
            tracing::error!(status = status.as_u16(), elapsed_ms = ms, "request failed");
        } else if !probe {
            tracing::info!(status = status.as_u16(), elapsed_ms = ms, "request served");
        }
    });
    response
}
