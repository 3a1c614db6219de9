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

use crate::error::ApiError;
use crate::identity::access::{Access, RouteRule};
use crate::messaging::Messaging;
use crate::metrics::Metrics;
use crate::telemetry;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_http::HeaderExtractor;
use opentelemetry_semantic_conventions::attribute::{
    HTTP_REQUEST_METHOD, HTTP_RESPONSE_STATUS_CODE, HTTP_ROUTE, SERVER_ADDRESS, SERVER_PORT,
    URL_PATH, URL_SCHEME,
};
use tracing_opentelemetry::OpenTelemetrySpanExt;

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
    /// Asked to stop: not ready any more, whatever else answers.
    draining: Arc<AtomicBool>,
    pool: Option<PgPool>,
    broker: Option<Messaging>,
}

impl Readiness {
    pub fn new(pool: Option<PgPool>, broker: Option<Messaging>) -> Self {
        Readiness {
            started: Arc::new(AtomicBool::new(false)),
            draining: Arc::new(AtomicBool::new(false)),
            pool,
            broker,
        }
    }

    pub fn set_started(&self) {
        self.started.store(true, Ordering::Release);
    }

    /// From now on `/ready` answers 503 (the service is shutting down).
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// `Ok` when what the API needs answers (the database, start-up done), with what
    /// is degraded but not needed to serve: without the broker, changes still commit
    /// and their events wait in the outbox; consumers wait for it on their own.
    /// Otherwise what is missing.
    pub async fn check(&self) -> Result<Vec<String>, Vec<String>> {
        let mut problems = Vec::new();
        if self.draining.load(Ordering::Acquire) {
            problems.push("shutting down: draining before stopping".to_owned());
        }
        if let Some(pool) = &self.pool
            && let Err(e) = crate::db::ping(pool).await
        {
            problems.push(e);
        }
        if !self.started.load(Ordering::Acquire) {
            problems.push("starting: migrations or start-up steps not done yet".into());
        }
        let mut degraded = Vec::new();
        if let Some(broker) = &self.broker
            && !broker.is_connected()
        {
            degraded.push(format!(
                "broker: not connected to {}; events wait in the outbox",
                broker.name()
            ));
        }
        if problems.is_empty() {
            Ok(degraded)
        } else {
            problems.extend(degraded);
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
    responses((status = 200, description = "Ready to serve; `degraded` lists what is away but not needed to serve (the broker: events wait in the outbox)", body = serde_json::Value,
               example = json!({"status": "ready"})),
              (status = 503, description = "Not ready (the database is away, start-up is not done, or the service is shutting down); `problems` says why", body = serde_json::Value,
               example = json!({"status": "not_ready", "problems": ["database: connection refused"]}))))]
async fn ready(State(readiness): State<Readiness>) -> Response {
    match readiness.check().await {
        Ok(degraded) if degraded.is_empty() => {
            axum::Json(json!({ "status": "ready" })).into_response()
        }
        Ok(degraded) => {
            axum::Json(json!({ "status": "ready", "degraded": degraded })).into_response()
        }
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
                        [(axum::http::header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
                        metrics.render(),
                    )
                }
            }),
        )
        .merge(probe_routes(readiness))
        .fallback(unknown_route)
}

/// Wrap a service's API router with the probes, Swagger UI and the common layers.
/// The document served gets the answers every route shares ([`document_common_answers`]).
pub fn public_router(
    api: Router,
    mut openapi: OpenApi,
    readiness: Readiness,
    metrics: Metrics,
    max_body_bytes: usize,
) -> Router {
    openapi.merge(<ProbeDoc as utoipa::OpenApi>::openapi());
    let document = document_common_answers(&openapi);
    api.merge(probe_routes(readiness))
        .merge(SwaggerUi::new("/docs").external_url_unchecked("/openapi.json", document))
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

/// The `Host` header's host and port (`server.address`, `server.port`).
fn host_of(req: &Request) -> (Option<String>, Option<u16>) {
    let authority = req
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<axum::http::uri::Authority>().ok());
    match authority {
        Some(a) => (Some(a.host().to_owned()), a.port_u16()),
        None => (None, None),
    }
}

/// Request id, a server span (OpenTelemetry's HTTP conventions: `{method} {route}`),
/// metrics and one log line per request.
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
    let (host, port) = host_of(&req);
    let span = tracing::info_span!(
        "http",
        otel.kind = "server",
        otel.name = format!("{method} {route}"),
        otel.status_code = tracing::field::Empty,
        { HTTP_REQUEST_METHOD } = %method,
        { HTTP_ROUTE } = %route,
        { URL_PATH } = req.uri().path(),
        { URL_SCHEME } = "http",
        { SERVER_ADDRESS } = host,
        { SERVER_PORT } = port,
        { HTTP_RESPONSE_STATUS_CODE } = tracing::field::Empty,
        request_id = %request_id,
    );
    telemetry::continue_trace(&span, &HeaderExtractor(req.headers()));
    req.extensions_mut().insert(RequestId(request_id.clone()));

    metrics.http_in_flight.inc();
    let mut response = next.run(req).instrument(span.clone()).await;
    metrics.http_in_flight.dec();

    let status = response.status();
    let elapsed = started.elapsed();
    let route = match response.extensions().get::<RouteLabel>() {
        Some(label) => {
            // The gateway's catch-all: named by the prefix it forwarded.
            span.record(HTTP_ROUTE, label.0.as_str());
            // (`otel.name` is read once, at the span's start.)
            span.context()
                .span()
                .update_name(format!("{method} {}", label.0));
            label.0.clone()
        }
        None => route,
    };
    span.record(HTTP_RESPONSE_STATUS_CODE, status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
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
        let status = status.as_u16();
        let (method, route) = (method.as_str(), route.as_str());
        if status >= 500 && probe {
            // Not ready yet (migrating) or a dependency away: the readiness check has
            // logged why, and the orchestrator asks again.
            tracing::debug!(method, route, status, elapsed_ms = ms, "probe answered");
        } else if status >= 500 {
            tracing::error!(method, route, status, elapsed_ms = ms, %request_id, "request failed");
        } else if !probe {
            // The one INFO line of a request; its steps log at DEBUG.
            tracing::info!(method, route, status, elapsed_ms = ms, %request_id, "request served");
        }
    });
    response
}

/// The security scheme every document names for `Authorization: Bearer <token>`.
pub const BEARER_SCHEME: &str = "bearer_token";

/// The pattern of text without NUL, which no API accepts (see [`crate::error`]).
pub const NO_NUL_PATTERN: &str = r"^[^\u0000]*$";

const HTTP_METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Every operation of a document (as JSON) but the probes.
fn operations_mut(
    doc: &mut serde_json::Value,
) -> impl Iterator<Item = &mut serde_json::Map<String, serde_json::Value>> {
    doc.get_mut("paths")
        .and_then(|p| p.as_object_mut())
        .into_iter()
        .flat_map(|paths| paths.iter_mut())
        .filter(|(path, _)| !matches!(path.as_str(), "/health" | "/ready"))
        .filter_map(|(_, item)| item.as_object_mut())
        .flat_map(|item| item.iter_mut())
        .filter(|(method, _)| HTTP_METHODS.contains(&method.as_str()))
        .filter_map(|(_, op)| op.as_object_mut())
}

fn error_answer(description: &str) -> serde_json::Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    })
}

/// The document a service serves at `/openapi.json`: `openapi` with the answers
/// every route of every service may give, added where an operation does not
/// document them itself, and what all of them accept:
///
/// - 400 where there is a parameter or a body to get wrong (`invalid_path`,
///   `invalid_query`, `validation_failed`, `malformed_json`);
/// - 413 and 415 where there is a body (too large; not `application/json`);
/// - every answer has a `description`, empty if the route gave none (3.1 requires it);
/// - every string without a pattern, enumeration or format of its own gets
///   [`NO_NUL_PATTERN`], and every object's member names and unknown members hold no
///   NUL either: no text does ([`crate::error::Json`]).
pub fn document_common_answers(openapi: &OpenApi) -> serde_json::Value {
    let Ok(mut doc) = serde_json::to_value(openapi) else {
        return json!({});
    };
    for op in operations_mut(&mut doc) {
        let has_parameters = op
            .get("parameters")
            .and_then(|p| p.as_array())
            .is_some_and(|p| !p.is_empty());
        let has_body = op.contains_key("requestBody");
        // A form body (OAuth's) is read by its own handler, which answers 400 for
        // anything it cannot read.
        let has_json_body = op
            .get("requestBody")
            .and_then(|b| b.get("content"))
            .and_then(|c| c.as_object())
            .is_some_and(|c| c.keys().any(|t| t.contains("json")));
        let Some(responses) = op
            .entry("responses")
            .or_insert_with(|| json!({}))
            .as_object_mut()
        else {
            continue;
        };
        // OpenAPI 3.1 requires every answer's `description`; utoipa 6 leaves an empty
        // one out (5 wrote `""`), which would make the document invalid.
        for answer in responses.values_mut().filter_map(|a| a.as_object_mut()) {
            if !answer.contains_key("$ref") {
                answer.entry("description").or_insert_with(|| json!(""));
            }
        }
        if has_parameters || has_body {
            responses.entry("400").or_insert_with(|| {
                error_answer(
                    "Invalid input: `invalid_path`, `invalid_query`, `validation_failed` or \
                     `malformed_json`, with a message that says what is wrong",
                )
            });
        }
        if has_json_body {
            // The body extractor that answers 400 answers these too: a route that
            // wraps its 400s in an envelope of its own (a seed's) wraps them alike.
            let shaped_like_400 = |description: &str| {
                let mut answer = error_answer(description);
                if let Some(content) = responses.get("400").and_then(|r| r.get("content")) {
                    answer["content"] = content.clone();
                }
                answer
            };
            let too_large =
                shaped_like_400("`payload_too_large`: the body is larger than the service accepts");
            let not_json = shaped_like_400(
                "`unsupported_media_type`: the body is not sent as `application/json`",
            );
            responses.entry("413").or_insert(too_large);
            responses.entry("415").or_insert(not_json);
        }
    }
    forbid_nul_in_text(&mut doc);
    if let Some(schemas) = doc
        .as_object_mut()
        .map(|d| d.entry("components").or_insert_with(|| json!({})))
        .and_then(|c| c.as_object_mut())
        .map(|c| c.entry("schemas").or_insert_with(|| json!({})))
        .and_then(|s| s.as_object_mut())
    {
        schemas.insert(JSON_WITHOUT_NUL.into(), json_without_nul());
    }
    if let Some(schemas) = doc
        .get_mut("components")
        .and_then(|c| c.get_mut("schemas"))
        .and_then(|s| s.as_object_mut())
        && !schemas.contains_key("ErrorResponse")
    {
        let mut add = |name: &str, schema| {
            if let Ok(mut value) = serde_json::to_value(schema) {
                forbid_nul_in_text(&mut value);
                schemas.insert(name.into(), value);
            }
        };
        add(
            "ErrorResponse",
            <sales_contracts::api::ErrorResponse as utoipa::PartialSchema>::schema(),
        );
        add(
            "ErrorBody",
            <sales_contracts::api::ErrorBody as utoipa::PartialSchema>::schema(),
        );
    }
    doc
}

/// The component every object's unknown members follow: any JSON without NUL.
const JSON_WITHOUT_NUL: &str = "JsonWithoutNul";

fn json_without_nul() -> serde_json::Value {
    let this = json!({ "$ref": format!("#/components/schemas/{JSON_WITHOUT_NUL}") });
    json!({
        "description": "Any JSON value whose text (strings and member names) holds no NUL character.",
        "anyOf": [
            {"type": ["null", "boolean", "number"]},
            {"type": "string", "pattern": NO_NUL_PATTERN},
            {"type": "array", "items": this},
            {"type": "object", "propertyNames": {"pattern": NO_NUL_PATTERN}, "additionalProperties": this}
        ]
    })
}

/// Formats whose values never hold NUL.
const FORMATS_WITHOUT_NUL: [&str; 10] = [
    "date-time",
    "date",
    "time",
    "duration",
    "uuid",
    "email",
    "uri",
    "hostname",
    "ipv4",
    "ipv6",
];

/// Give every string schema in `value` (at any depth) that has no pattern, `enum`,
/// `const` or format of the kind that excludes NUL the pattern [`NO_NUL_PATTERN`].
fn forbid_nul_in_text(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            let is_string = match map.get("type") {
                Some(serde_json::Value::String(t)) => t == "string",
                Some(serde_json::Value::Array(types)) => types.iter().any(|t| t == "string"),
                _ => false,
            };
            let constrained = ["pattern", "enum", "const"]
                .iter()
                .any(|k| map.contains_key(*k))
                || map
                    .get("format")
                    .and_then(|f| f.as_str())
                    .is_some_and(|f| FORMATS_WITHOUT_NUL.contains(&f));
            if is_string && !constrained {
                map.insert("pattern".into(), json!(NO_NUL_PATTERN));
            }
            let is_object = match map.get("type") {
                Some(serde_json::Value::String(t)) => t == "object",
                Some(serde_json::Value::Array(types)) => types.iter().any(|t| t == "object"),
                _ => false,
            };
            if is_object {
                // Members the service does not know are ignored, but read: their names
                // and text hold no NUL either.
                map.entry("propertyNames")
                    .or_insert_with(|| json!({ "pattern": NO_NUL_PATTERN }));
                match map.get("additionalProperties") {
                    None | Some(serde_json::Value::Bool(true)) => {
                        map.insert(
                            "additionalProperties".into(),
                            json!({ "$ref": format!("#/components/schemas/{JSON_WITHOUT_NUL}") }),
                        );
                    }
                    _ => {}
                }
            }
            for (key, child) in map.iter_mut() {
                // Examples and defaults are values, not schemas.
                if !matches!(
                    key.as_str(),
                    "example" | "examples" | "default" | "enum" | "const"
                ) {
                    forbid_nul_in_text(child);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(forbid_nul_in_text),
        _ => {}
    }
}

/// Say in the document what the access table enforces (call it with the table the
/// service is protected by): every operation with a rule needs the bearer token the
/// gateway (or the identity provider) signs, and answers 401 without a valid one;
/// 403 where the rule does not admit every verified caller.
pub fn document_access(openapi: &mut OpenApi, policy: &[RouteRule]) {
    use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

    let answer = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorResponse")))
                        .build(),
                )
                .build(),
        )
    };
    let mut secured = false;
    for (path, item) in openapi.paths.paths.iter_mut() {
        for (method, op) in [
            ("GET", &mut item.get),
            ("POST", &mut item.post),
            ("PUT", &mut item.put),
            ("PATCH", &mut item.patch),
            ("DELETE", &mut item.delete),
        ] {
            let (Some(op), Some(rule)) = (
                op.as_mut(),
                policy.iter().find(|r| r.path == path && r.method == method),
            ) else {
                continue;
            };
            secured = true;
            op.security = Some(vec![SecurityRequirement::new(
                BEARER_SCHEME,
                Vec::<String>::new(),
            )]);
            op.responses
                .responses
                .entry("401".into())
                .or_insert_with(|| {
                    answer(
                        "`unauthenticated` or `invalid_token`: no valid bearer token (or an \
                         anonymous caller on a route for signed-in customers)",
                    )
                });
            if rule.access != Access::AnyCaller {
                op.responses
                    .responses
                    .entry("403".into())
                    .or_insert_with(|| answer("`forbidden`: the caller may not do this"));
            }
        }
    }
    if secured {
        let components = openapi.components.get_or_insert_with(Default::default);
        if !components.security_schemes.contains_key(BEARER_SCHEME) {
            let mut http = Http::new(HttpAuthScheme::Bearer);
            http.bearer_format = Some("JWT".into());
            components.add_security_scheme(BEARER_SCHEME, SecurityScheme::Http(http));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::access::rule;

    fn doc() -> OpenApi {
        serde_json::from_value(json!({
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1"},
            "paths": {
                "/things/{id}": {
                    "get": {"parameters": [{"name": "id", "in": "path", "required": true,
                              "schema": {"type": "integer"}}],
                            "responses": {"200": {"description": "ok"}}},
                    "put": {"requestBody": {"content": {"application/json": {"schema":
                                {"$ref": "#/components/schemas/Thing"}}}},
                            "responses": {"200": {"description": "ok"},
                                          "400": {"description": "its own", "content":
                                              {"application/json": {"schema": {"type": "object"}}}}}}
                },
                "/open": {"get": {"responses": {"200": {"description": "ok"}}}},
                "/health": {"get": {"responses": {"200": {"description": "ok"}}}}
            },
            "components": {"schemas": {"Thing": {"type": "object", "properties": {
                "name": {"type": "string", "example": "a"},
                "note": {"type": ["string", "null"]},
                "sku": {"type": "string", "pattern": "^[A-Z]+$"},
                "at": {"type": "string", "format": "date-time"},
                "secret": {"type": "string", "format": "password"},
                "tags": {"type": "array", "items": {"type": "string"}}
            }}}}
        }))
        .unwrap()
    }

    #[test]
    fn common_answers_are_added_where_they_can_happen() {
        let doc = document_common_answers(&doc());
        let get = &doc["paths"]["/things/{id}"]["get"]["responses"];
        assert!(get["400"].is_object() && get["413"].is_null(), "{get}");
        let put = &doc["paths"]["/things/{id}"]["put"]["responses"];
        assert_eq!(put["400"]["description"], "its own");
        assert!(put["413"].is_object() && put["415"].is_object(), "{put}");
        // Shaped like the route's own 400.
        assert_eq!(put["415"]["content"], put["400"]["content"]);
        assert!(doc["paths"]["/open"]["get"]["responses"]["400"].is_null());
        assert!(doc["paths"]["/health"]["get"]["responses"]["400"].is_null());
        let thing = &doc["components"]["schemas"]["Thing"]["properties"];
        assert_eq!(thing["name"]["pattern"], NO_NUL_PATTERN);
        assert_eq!(thing["note"]["pattern"], NO_NUL_PATTERN);
        assert_eq!(thing["tags"]["items"]["pattern"], NO_NUL_PATTERN);
        assert_eq!(thing["sku"]["pattern"], "^[A-Z]+$");
        assert!(thing["at"]["pattern"].is_null());
        assert_eq!(thing["secret"]["pattern"], NO_NUL_PATTERN);
        let error = &doc["components"]["schemas"]["ErrorBody"]["properties"];
        assert_eq!(error["code"]["pattern"], NO_NUL_PATTERN, "{doc}");
        let thing = &doc["components"]["schemas"]["Thing"];
        assert_eq!(thing["propertyNames"]["pattern"], NO_NUL_PATTERN);
        assert_eq!(
            thing["additionalProperties"]["$ref"],
            "#/components/schemas/JsonWithoutNul"
        );
        assert!(doc["components"]["schemas"]["JsonWithoutNul"]["anyOf"].is_array());
    }

    #[test]
    fn every_answer_has_a_description_as_openapi_3_1_requires() {
        let openapi: OpenApi = serde_json::from_value(json!({
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1"},
            "paths": {"/things": {"get": {"responses": {
                "200": {"content": {"application/json": {"schema": {"type": "object"}}}},
                "404": {"description": "no such thing"}
            }}}}
        }))
        .unwrap();
        let doc = document_common_answers(&openapi);
        let answers = &doc["paths"]["/things"]["get"]["responses"];
        assert_eq!(answers["200"]["description"], "", "{answers}");
        assert_eq!(answers["404"]["description"], "no such thing");
    }

    #[test]
    fn access_rules_become_security_and_answers() {
        let policy = [
            rule("GET", "/things/{id}", Access::AnyCaller),
            rule("PUT", "/things/{id}", Access::Admin),
        ];
        let mut openapi = doc();
        document_access(&mut openapi, &policy);
        let doc = serde_json::to_value(openapi).unwrap();
        let get = &doc["paths"]["/things/{id}"]["get"];
        assert_eq!(get["security"], json!([{ BEARER_SCHEME: [] }]));
        assert!(get["responses"]["401"].is_object() && get["responses"]["403"].is_null());
        let put = &doc["paths"]["/things/{id}"]["put"];
        assert!(put["responses"]["401"].is_object() && put["responses"]["403"].is_object());
        assert!(doc["paths"]["/open"]["get"]["security"].is_null());
        assert_eq!(
            doc["components"]["securitySchemes"][BEARER_SCHEME]["scheme"],
            "bearer"
        );
    }
}
