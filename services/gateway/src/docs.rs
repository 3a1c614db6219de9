//! Swagger UI over every service: `/openapi/{service}.json` is the service's own
//! document, fetched from its `/openapi.json` when asked for (with a bearer-token
//! security scheme added, so "Authorize" in Swagger UI works through the gateway),
//! and `/docs` lists them all next to the gateway's own `/openapi.json`.
//!
//! The platform serves Swagger UI's files at `/docs` for the gateway's own document;
//! the gateway answers `/docs/swagger-initializer.js` itself, with a configuration
//! whose drop-down lists every service.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sales_contracts::api::ErrorResponse;
use sales_platform::ApiError;
use serde_json::{Value, json};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::{Config, Url};

use crate::AppState;
use crate::routes::Upstream;

/// The name of the security scheme in every document served.
pub const BEARER: &str = "bearer_token";

/// The documents in Swagger UI's drop-down: the gateway's first, then every service.
pub const DOCUMENTS: [(&str, &str); 8] = [
    ("gateway", "/openapi.json"),
    ("product", "/openapi/product.json"),
    ("order", "/openapi/order.json"),
    ("customer", "/openapi/customer.json"),
    ("payment", "/openapi/payment.json"),
    ("inventory", "/openapi/inventory.json"),
    ("shipping", "/openapi/shipping.json"),
    ("notification", "/openapi/notification.json"),
];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "API gateway",
        description = "The one public entry of the sales system. Paths are forwarded unchanged \
to the service that owns them (`/api/v1/products`, `/products` -> product; `/api/v1/orders`, \
`/orders` -> order; `/api/v1/customers`, `/customers`, `/users` -> customer; `/api/v1/payments`, \
`/payments` -> payment; `/api/v1/inventory`, `/api/v1/stock`, `/inventory` -> inventory; \
`/api/v1/shipments`, `/shipping` -> shipping; `/api/v1/notifications` -> notification): pick a \
service in the drop-down above for its API. Send `Authorization: Bearer <token>` (from \
`POST /api/v1/customers/login`); registering, logging in and reading the catalogue need no token. \
Errors of the gateway itself: 401 `unauthenticated` / `invalid_token`, 403 `forbidden`, \
404 `not_found`, 413 `payload_too_large`, 429 `rate_limited` (with `Retry-After`), \
503 `upstream_unavailable`, 504 `upstream_timeout`."
    ),
    paths(service_document, crate::http::jwks),
    components(schemas(ErrorResponse)),
    modifiers(&BearerScheme)
)]
pub struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document of one service, as that service publishes it.
#[utoipa::path(
    get,
    path = "/openapi/{service}.json",
    tag = "docs",
    params(("service" = String, Path, description = "product, order, customer, payment, inventory, shipping or notification",
        pattern = "^(product|order|customer|payment|inventory|shipping|notification)$")),
    responses(
        (status = 200, description = "The service's OpenAPI document", content_type = "application/json"),
        (status = 404, body = ErrorResponse, description = "No such service"),
        (status = 503, body = ErrorResponse, description = "The service did not answer")
    )
)]
pub async fn service_document(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let upstream = file
        .strip_suffix(".json")
        .and_then(Upstream::from_name)
        .ok_or_else(|| ApiError::not_found(format!("no service document /openapi/{file}")))?;
    let base = state
        .upstreams
        .base_url(upstream)
        .ok_or_else(|| ApiError::not_found(format!("no {upstream} service configured")))?;
    let unavailable = |why: String| {
        tracing::warn!(upstream = upstream.name(), reason = %why, "cannot fetch the OpenAPI document");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_unavailable",
            format!("the {upstream} service did not send its API document; try again shortly"),
        )
    };
    let fetched = async {
        let response = state
            .upstreams
            .http()
            .get(format!("{base}/openapi.json"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        response.json::<Value>().await.map_err(|e| e.to_string())
    };
    let mut document = tokio::time::timeout(state.docs_timeout, fetched)
        .await
        .map_err(|_| unavailable("no answer in time".into()))?
        .map_err(unavailable)?;
    keep_forwarded_paths(&mut document, upstream);
    add_bearer_scheme(&mut document);
    add_gateway_answers(&mut document);
    let mut response = axum::Json(document).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Declare the bearer token in a service's document (unless it already has security
/// of its own), so Swagger UI offers "Authorize" and sends the token.
pub fn add_bearer_scheme(document: &mut Value) {
    let Some(doc) = document.as_object_mut() else {
        return;
    };
    let components = doc
        .entry("components")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    if let Some(components) = components {
        let schemes = components
            .entry("securitySchemes")
            .or_insert_with(|| json!({}));
        if let Some(schemes) = schemes.as_object_mut() {
            schemes.entry(BEARER).or_insert_with(
                || json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}),
            );
        }
    }
    doc.entry("security")
        .or_insert_with(|| json!([{ BEARER: [] }, {}]));
}

/// Keep only the paths the gateway forwards to `upstream`: a service's probes and
/// its identity provider's own endpoints (`/oauth/token`...) are not reachable
/// through the gateway (its `/health` and `/.well-known/jwks.json` are the
/// gateway's own, in its document).
pub fn keep_forwarded_paths(document: &mut Value, upstream: Upstream) {
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        paths.retain(|path, _| crate::routes::route(path) == Some(upstream));
    }
}

/// The answers the gateway itself may give on any route it forwards, added to each
/// operation of a service's document that does not list them: 413 (its own body
/// limit), 429 (the client's rate limit, with `Retry-After`), 502, 503 and 504 (the
/// service is down, its circuit open, or slow). A path the gateway refuses as
/// ambiguous is a 400, which every operation with a path parameter lists already.
pub fn add_gateway_answers(document: &mut Value) {
    let answer = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
        })
    };
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        if matches!(path.as_str(), "/health" | "/ready") {
            continue;
        }
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            if !matches!(method.as_str(), "get" | "post" | "put" | "patch" | "delete") {
                continue;
            }
            let has_body = op.get("requestBody").is_some();
            let Some(responses) = op
                .as_object_mut()
                .map(|o| o.entry("responses").or_insert_with(|| json!({})))
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            let mut add = |status: &str, description: &str| {
                let documented = responses
                    .entry(status)
                    .or_insert_with(|| answer(description));
                also_gateway_error(documented);
            };
            // The gateway refuses a path it cannot route unambiguously on any route.
            add("400", "`invalid_path`: the path is ambiguous or malformed");
            if has_body {
                add(
                    "413",
                    "`payload_too_large`: the body is larger than the gateway accepts",
                );
            }
            add(
                "429",
                "`rate_limited`: too many requests from this client; see `Retry-After`",
            );
            add("502", "`bad_gateway`: the service sent no complete answer");
            add(
                "503",
                "`upstream_unavailable`: the service is down or its circuit is open; try again",
            );
            add(
                "504",
                "`upstream_timeout`: the service did not answer in time",
            );
        }
    }
}

/// A status the service documents with a body of its own (a seed's error shape) can
/// also come from the gateway, with the gateway's `ErrorResponse`: either is valid.
fn also_gateway_error(response: &mut Value) {
    let gateway = json!({"$ref": "#/components/schemas/ErrorResponse"});
    let Some(schema) = response.pointer_mut("/content/application~1json/schema") else {
        return;
    };
    let already = *schema == gateway
        || schema
            .get("anyOf")
            .and_then(Value::as_array)
            .is_some_and(|a| a.contains(&gateway));
    if !already {
        *schema = json!({"anyOf": [schema.take(), gateway]});
    }
}

/// Swagger UI's configuration: every document in the drop-down.
pub fn swagger_config() -> Arc<Config<'static>> {
    let urls = DOCUMENTS
        .iter()
        .enumerate()
        .map(|(i, (name, url))| Url::with_primary(name, url, i == 0));
    Arc::new(Config::new(urls).persist_authorization(true))
}

/// `/docs/swagger-initializer.js`, configured with every document.
pub async fn swagger_initializer(State(state): State<AppState>) -> Response {
    match utoipa_swagger_ui::serve("swagger-initializer.js", state.swagger.clone()) {
        Ok(Some(file)) => (
            [(header::CONTENT_TYPE, file.content_type)],
            file.bytes.into_owned(),
        )
            .into_response(),
        Ok(None) => ApiError::not_found("Swagger UI is not built in").into_response(),
        Err(err) => {
            ApiError::internal(anyhow::anyhow!("Swagger UI configuration: {err}")).into_response()
        }
    }
}

/// How long fetching a service's document may take.
pub const DEFAULT_DOCS_TIMEOUT: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_is_in_the_drop_down() {
        for upstream in Upstream::ALL {
            let url = format!("/openapi/{}.json", upstream.name());
            assert!(
                DOCUMENTS
                    .iter()
                    .any(|(n, u)| *n == upstream.name() && *u == url),
                "{upstream}"
            );
        }
    }

    #[test]
    fn bearer_scheme_is_added_once() {
        let mut doc = json!({"openapi": "3.1.0", "paths": {}});
        add_bearer_scheme(&mut doc);
        add_bearer_scheme(&mut doc);
        assert_eq!(
            doc["components"]["securitySchemes"][BEARER]["scheme"],
            "bearer"
        );
        assert_eq!(doc["security"][0][BEARER], json!([]));
        let mut own = json!({"security": [{"other": []}]});
        add_bearer_scheme(&mut own);
        assert_eq!(own["security"], json!([{"other": []}]));
    }

    #[test]
    fn only_forwarded_paths_stay_in_a_service_document() {
        let mut doc = json!({"paths": {
            "/api/v1/customers/{id}": {}, "/users/user/login": {}, "/health": {},
            "/oauth/token": {}, "/.well-known/jwks.json": {}, "/api/v1/products": {}
        }});
        keep_forwarded_paths(&mut doc, Upstream::Customer);
        let kept: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
        assert_eq!(kept, ["/api/v1/customers/{id}", "/users/user/login"]);
    }

    #[test]
    fn gateway_answers_are_added_to_forwarded_operations() {
        let mut doc = json!({"paths": {
            "/api/v1/things": {"post": {"requestBody": {}, "responses": {"201": {}}},
                               "get": {"responses": {"429": {"description": "its own"}}}},
            "/health": {"get": {"responses": {"200": {}}}}
        }});
        add_gateway_answers(&mut doc);
        let post = &doc["paths"]["/api/v1/things"]["post"]["responses"];
        for status in ["413", "429", "502", "503", "504"] {
            assert!(post[status].is_object(), "{status}");
        }
        let get = &doc["paths"]["/api/v1/things"]["get"]["responses"];
        assert_eq!(get["429"]["description"], "its own");
        assert!(get["413"].is_null());
        assert!(doc["paths"]["/health"]["get"]["responses"]["429"].is_null());
    }

    #[test]
    fn a_seed_error_shape_also_admits_the_gateways_own_answer() {
        let seed = json!({"$ref": "#/components/schemas/Seed004Error"});
        let gateway = json!({"$ref": "#/components/schemas/ErrorResponse"});
        let with = |schema: &Value| json!({"description": "x", "content": {"application/json": {"schema": schema}}});
        let mut doc = json!({"paths": {"/api/v1/orders/": {"post": {
            "requestBody": {},
            "responses": {"400": with(&seed), "503": with(&seed), "429": with(&gateway)}
        }}}});
        add_gateway_answers(&mut doc);
        add_gateway_answers(&mut doc);
        let responses = &doc["paths"]["/api/v1/orders/"]["post"]["responses"];
        let schema =
            |status: &str| responses[status]["content"]["application/json"]["schema"].clone();
        for status in ["400", "503"] {
            assert_eq!(
                schema(status),
                json!({"anyOf": [seed, gateway]}),
                "{status}"
            );
        }
        assert_eq!(schema("429"), gateway);
        assert_eq!(schema("413"), gateway);
    }

    #[test]
    fn the_gateway_document_lists_its_routes() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert!(doc["paths"]["/openapi/{service}.json"]["get"].is_object());
        assert!(doc["paths"]["/.well-known/jwks.json"]["get"].is_object());
        assert!(doc["components"]["securitySchemes"][BEARER].is_object());
    }

    #[test]
    fn the_initializer_names_every_document() {
        let file = utoipa_swagger_ui::serve("swagger-initializer.js", swagger_config())
            .unwrap()
            .unwrap();
        let js = String::from_utf8(file.bytes.into_owned()).unwrap();
        for (name, url) in DOCUMENTS {
            assert!(js.contains(name) && js.contains(url), "{name} {url}");
        }
    }
}
