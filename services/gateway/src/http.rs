//! The gateway's routes and the gate every request of them passes.
//!
//! For each request, in this order:
//! 1. the path is made canonical ([`crate::canonical_path`]): ambiguous forms are a
//!    400 `invalid_path`; policy, routing and the upstream all see the result;
//! 2. hop-by-hop headers the client sent are removed, with every header its
//!    `Connection` names, and so are identity headers no client may set: nothing the
//!    client sends can remove or replace what the gateway sets later;
//! 3. the token, if any, is checked ([`crate::auth`]: signature, expiry, audience,
//!    revocation); the outcome is remembered, not yet acted on;
//! 4. the rate limit is counted, per customer when the token is valid, else per
//!    client address ([`crate::client_address`]): over it, 429 `rate_limited`;
//! 5. a bad token is refused: 401 `invalid_token`, whatever the route (503 when its
//!    revocation cannot be checked);
//! 6. a path no service has is a 404 `not_found`, token or not;
//! 7. the access policy ([`crate::access`]) decides: 401 `unauthenticated` or
//!    403 `forbidden`;
//! 8. the route ([`crate::routes`]) picks the upstream, the body is read up to
//!    `MAX_BODY_BYTES` (413 beyond), the request gets the gateway's token for that
//!    upstream ([`crate::upstream_credentials`]) in place of the client's, and
//!    [`crate::proxy`] forwards it.
//!
//! Every answer of these routes carries `X-RateLimit-Limit` and (when counted)
//! `X-RateLimit-Remaining` and `X-RateLimit-Reset`.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use sales_platform::ApiError;
use sales_platform::http::{REQUEST_ID, RequestId, RouteLabel};
use sales_platform::identity::JWKS_PATH;

use crate::AppState;
use crate::access::{Access, Decision, decide, required_access};
use crate::auth::{AuthError, Identity};
use crate::canonical_path::{PathError, canonicalize};
use crate::client_address::X_FORWARDED_FOR;
use crate::proxy::{Outgoing, strip_hop_by_hop};
use crate::rate_limit::Verdict;
use crate::routes::{matched_prefix, route};

const RATE_LIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const RATE_LIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const RATE_LIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// Headers no client may send on: who is calling is the gateway's to say, in the
/// token it signs (the first two are what services once trusted).
const IDENTITY_HEADERS: &[&str] = &["x-customer-id", "x-customer-role", "x-forwarded-for"];

/// The gateway's own routes: the proxy for everything, its public keys, the service
/// documents and Swagger UI's configuration.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/{*path}", any(proxy))
        .route("/openapi/{file}", get(crate::docs::service_document))
        .route(
            "/docs/swagger-initializer.js",
            get(crate::docs::swagger_initializer),
        )
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .layer(middleware::from_fn(label_route))
        // Outside the gate: every service fetches these keys, and a static document
        // needs no token and counts against no client's rate limit.
        .route(JWKS_PATH, get(jwks))
        .with_state(state)
}

/// The gateway's public keys (a JWKS document): every service checks the token of each
/// request the gateway forwards with them.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "gateway",
    responses((status = 200, description = "A JWKS document (RFC 7517): Ed25519 keys", body = Object)))]
pub async fn jwks(State(state): State<AppState>) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        axum::Json(state.credentials.jwks()),
    )
        .into_response()
}

/// Label the request's metrics with the prefix that routes it (`/api/v1/orders…`), or
/// `unrouted`, instead of the catch-all `/{*path}`.
async fn label_route(req: Request, next: Next) -> Response {
    let own = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .is_some_and(|p| p.as_str() != "/{*path}");
    let label = if own {
        None
    } else {
        Some(RouteLabel(
            matched_prefix(req.uri().path())
                .map(|p| format!("{p}…"))
                .unwrap_or_else(|| "unrouted".to_owned()),
        ))
    };
    let mut response = next.run(req).await;
    if let Some(label) = label {
        response.extensions_mut().insert(label);
    }
    response
}

/// Where the request comes from.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr {
    /// The client: the peer, or behind trusted proxies the first address in
    /// `X-Forwarded-For` that is not one of them.
    pub client: Option<IpAddr>,
    /// The other end of the connection, when the server reports it.
    pub peer: Option<IpAddr>,
}

/// Steps 1 to 7 of the module docs.
async fn gate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if let Err(response) = make_path_canonical(&mut req) {
        return response;
    }
    let client = client_addr(&state, &req);
    req.extensions_mut().insert(client);
    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    for name in IDENTITY_HEADERS {
        headers.remove(*name);
    }
    let identity = state.authenticator.identify(req.headers()).await;

    let key = match &identity {
        Ok(Some(identity)) => format!("customer:{}", identity.customer_id),
        _ => match client.client {
            Some(ip) => format!("ip:{ip}"),
            None => "ip:unknown".to_owned(),
        },
    };
    let verdict = state.limiter.check(&key).await;
    let mut response = match verdict {
        Verdict::Limited { retry_after, .. } => {
            state.metrics.rate_limited.inc();
            tracing::info!(client = %key, "rate limited");
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests; try again in {retry_after} s"),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            response
        }
        _ => admit(&state, req, identity, next).await,
    };
    let headers = response.headers_mut();
    match verdict {
        Verdict::Allowed {
            limit,
            remaining,
            reset_after,
        } => {
            headers.insert(RATE_LIMIT_LIMIT, HeaderValue::from(limit));
            headers.insert(RATE_LIMIT_REMAINING, HeaderValue::from(remaining));
            headers.insert(RATE_LIMIT_RESET, HeaderValue::from(reset_after));
        }
        Verdict::Limited { limit, retry_after } => {
            headers.insert(RATE_LIMIT_LIMIT, HeaderValue::from(limit));
            headers.insert(RATE_LIMIT_REMAINING, HeaderValue::from(0));
            headers.insert(RATE_LIMIT_RESET, HeaderValue::from(retry_after));
        }
        Verdict::Unchecked { .. } => {}
    }
    response
}

/// Step 1: replace the request's path by its canonical form.
#[allow(clippy::result_large_err)]
fn make_path_canonical(req: &mut Request) -> Result<(), Response> {
    let canonical = canonicalize(req.uri().path()).map_err(|err| {
        let status = if err == PathError::TooLong {
            StatusCode::URI_TOO_LONG
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(status, "invalid_path", err.to_string()).into_response()
    })?;
    if canonical == req.uri().path() {
        return Ok(());
    }
    let path_and_query = match req.uri().query() {
        Some(query) => format!("{canonical}?{query}"),
        None => canonical,
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            "the path is not valid",
        )
        .into_response()
    })?);
    *req.uri_mut() = Uri::from_parts(parts).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            "the path is not valid",
        )
        .into_response()
    })?;
    Ok(())
}

/// Steps 5 to 7: the token, the path, the access policy.
async fn admit(
    state: &AppState,
    mut req: Request,
    identity: Result<Option<Identity>, AuthError>,
    next: Next,
) -> Response {
    let identity = match identity {
        Ok(identity) => identity,
        Err(AuthError::Unavailable) => {
            state.metrics.auth_failure(AuthError::Unavailable.reason());
            let mut response =
                ApiError::unavailable(AuthError::Unavailable.to_string()).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(1));
            return response;
        }
        Err(err) => {
            state.metrics.auth_failure(err.reason());
            return unauthorized("invalid_token", err.to_string(), true);
        }
    };
    let access = required_access(req.method(), req.uri().path());
    if access != Access::Public && route(req.uri().path()).is_none() {
        // No service has this path: say so, token or not (the table is no secret).
        return not_found(&req);
    }
    match decide(
        access,
        identity.as_ref().map(|i| i.admin),
        state.seed_compat_open,
    ) {
        Decision::Allow => {}
        Decision::Unauthenticated => {
            state.metrics.auth_failure("missing_token");
            return unauthorized(
                "unauthenticated",
                format!(
                    "{} {} needs a token: send Authorization: Bearer <token> (log in at POST /api/v1/customers/login)",
                    req.method(),
                    req.uri().path()
                ),
                false,
            );
        }
        Decision::Forbidden => {
            state.metrics.auth_failure("forbidden");
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "{} {} is for administrators",
                    req.method(),
                    req.uri().path()
                ),
            )
            .into_response();
        }
    }
    if let Some(identity) = identity {
        req.extensions_mut().insert(identity);
    }
    next.run(req).await
}

fn not_found(req: &Request) -> Response {
    ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.uri().path()
    ))
    .into_response()
}

fn unauthorized(code: &'static str, message: String, invalid_token: bool) -> Response {
    sales_platform::identity::access::unauthorized(code, message, invalid_token)
}

fn client_addr(state: &AppState, req: &Request) -> ClientAddr {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if peer.is_none() && !state.warned_no_peer.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "the server does not report peer addresses; anonymous clients share one rate limit"
        );
    }
    ClientAddr {
        client: state.trusted_proxies.client(peer, req.headers()),
        peer,
    }
}

/// Step 8: route, read the body, put the gateway's token on, forward.
async fn proxy(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let Some(upstream) = route(path) else {
        return ApiError::not_found(format!("no route for {} {path}", parts.method))
            .into_response();
    };
    let body = match read_body(&parts.headers, body, state.max_body_bytes).await {
        Ok(body) => body,
        Err(err) => return err.into_response(),
    };
    let client = parts.extensions.get::<ClientAddr>().copied();
    let credential = match state.credentials.token_for(
        upstream,
        parts.extensions.get::<Identity>(),
        client.and_then(|c| c.client),
    ) {
        Ok(token) => token,
        Err(err) => {
            return ApiError::internal(anyhow::anyhow!("cannot sign a token: {err}"))
                .into_response();
        }
    };

    let mut headers = parts.headers;
    if let Some(RequestId(id)) = parts.extensions.get::<RequestId>()
        && let Ok(value) = HeaderValue::from_str(id)
    {
        headers.insert(REQUEST_ID, value);
    }
    // X-Forwarded-For for the service's logs: the client as the gateway sees it.
    if let Some(ip) = client.and_then(|c| c.client)
        && let Ok(value) = HeaderValue::from_str(&ip.to_string())
    {
        headers.insert(X_FORWARDED_FOR, value);
    }
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    state
        .upstreams
        .forward(
            upstream,
            Outgoing {
                method: parts.method,
                path_and_query,
                headers,
                credential,
                body,
            },
        )
        .await
}

async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|err| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(e) = source {
            if e.is::<http_body_util::LengthLimitError>() {
                return too_large();
            }
            source = e.source();
        }
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("the request body could not be read: {err}"),
        )
    })
}
