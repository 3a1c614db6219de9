//! The gateway's routes and the gate every request of them passes.
//!
//! For each request, in this order:
//! 1. `x-customer-id` / `x-customer-role` sent by the client are removed: only the
//!    gateway says who is calling;
//! 2. the token, if any, is verified (a bad one is remembered, not yet refused);
//! 3. the rate limit is counted, per customer when the token is valid, else per
//!    client address: over it, 429 `rate_limited`;
//! 4. a bad token is refused: 401 `invalid_token`, whatever the route;
//! 5. a path no service has is a 404 `not_found`, token or not;
//! 6. the access policy ([`crate::access`]) decides: 401 `unauthenticated` or
//!    403 `forbidden`; a valid token's customer goes on in `x-customer-*`;
//! 7. the route ([`crate::routes`]) picks the upstream, the body is read up to
//!    `MAX_BODY_BYTES` (413 beyond), and [`crate::proxy`] forwards it.
//!
//! Every answer of these routes carries `X-RateLimit-Limit` and (when Redis
//! answered) `X-RateLimit-Remaining` and `X-RateLimit-Reset`.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use sales_platform::ApiError;
use sales_platform::caller::{CUSTOMER_ID_HEADER, CUSTOMER_ROLE_HEADER};
use sales_platform::http::{REQUEST_ID, RequestId, RouteLabel};

use crate::AppState;
use crate::access::{Access, Decision, decide, required_access};
use crate::auth::{Identity, TokenError};
use crate::proxy::Outgoing;
use crate::rate_limit::Verdict;
use crate::routes::{matched_prefix, route};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const RATE_LIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const RATE_LIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const RATE_LIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// The gateway's own routes: the proxy for everything, the service documents and
/// Swagger UI's configuration.
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
        .with_state(state)
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
    /// The client: the peer, or with `TRUST_FORWARDED_FOR` the last address in
    /// `X-Forwarded-For` (the one the proxy in front of us added).
    pub client: Option<IpAddr>,
    /// The other end of the connection, when the server reports it.
    pub peer: Option<IpAddr>,
}

/// Steps 1 to 6 of the module docs.
async fn gate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let headers = req.headers_mut();
    headers.remove(CUSTOMER_ID_HEADER);
    headers.remove(CUSTOMER_ROLE_HEADER);
    let token = state.verifier.identify(req.headers());
    let client = client_addr(&state, &req);
    req.extensions_mut().insert(client);

    let key = match &token {
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
        _ => admit(&state, req, token, next).await,
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
        Verdict::Unchecked { limit } if limit > 0 => {
            headers.insert(RATE_LIMIT_LIMIT, HeaderValue::from(limit));
        }
        Verdict::Unchecked { .. } => {}
    }
    response
}

/// Steps 4 to 6: the token, the path, the access policy.
async fn admit(
    state: &AppState,
    mut req: Request,
    token: Result<Option<Identity>, TokenError>,
    next: Next,
) -> Response {
    let identity = match token {
        Ok(identity) => identity,
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
        identity.as_ref().map(|i| i.role),
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
        let headers = req.headers_mut();
        headers.insert(CUSTOMER_ID_HEADER, HeaderValue::from(identity.customer_id));
        headers.insert(
            CUSTOMER_ROLE_HEADER,
            HeaderValue::from_static(identity.role.as_str()),
        );
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
    let challenge = if invalid_token {
        HeaderValue::from_static(r#"Bearer error="invalid_token""#)
    } else {
        HeaderValue::from_static("Bearer")
    };
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, code, message).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, challenge);
    response
}

fn client_addr(state: &AppState, req: &Request) -> ClientAddr {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let forwarded = if state.trust_forwarded_for {
        last_forwarded_for(req.headers())
    } else {
        None
    };
    if forwarded.is_none() && peer.is_none() && !state.warned_no_peer.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(
            "the server does not report peer addresses; anonymous clients share one rate limit \
             (set TRUST_FORWARDED_FOR=true behind a proxy that sets X-Forwarded-For)"
        );
    }
    ClientAddr {
        client: forwarded.or(peer),
        peer,
    }
}

/// The last valid address of all `X-Forwarded-For` headers.
pub fn last_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .next_back()
}

/// Step 7: route, read the body, forward.
async fn proxy(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    if path.split('/').any(|s| s == "." || s == "..") {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            "the path must not contain `.` or `..` segments",
        )
        .into_response();
    }
    let Some(upstream) = route(path) else {
        return ApiError::not_found(format!("no route for {} {path}", parts.method))
            .into_response();
    };
    let body = match read_body(&parts.headers, body, state.max_body_bytes).await {
        Ok(body) => body,
        Err(err) => return err.into_response(),
    };

    let mut headers = parts.headers;
    if let Some(RequestId(id)) = parts.extensions.get::<RequestId>()
        && let Ok(value) = HeaderValue::from_str(id)
    {
        headers.insert(REQUEST_ID, value);
    }
    // X-Forwarded-For for the service: what the trusted proxy sent plus our peer,
    // or just our peer when the header is not trusted.
    let peer = parts.extensions.get::<ClientAddr>().and_then(|c| c.peer);
    let mut chain: Vec<String> = Vec::new();
    if state.trust_forwarded_for {
        chain.extend(
            headers
                .get_all(&X_FORWARDED_FOR)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty()),
        );
    }
    chain.extend(peer.map(|ip| ip.to_string()));
    headers.remove(&X_FORWARDED_FOR);
    if let Ok(value) = HeaderValue::from_str(&chain.join(", "))
        && !chain.is_empty()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_takes_the_last_address() {
        let mut h = HeaderMap::new();
        assert_eq!(last_forwarded_for(&h), None);
        h.append(
            X_FORWARDED_FOR,
            HeaderValue::from_static("203.0.113.9, 10.0.0.1"),
        );
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.2, junk"));
        assert_eq!(last_forwarded_for(&h), "10.0.0.2".parse().ok());
    }
}
