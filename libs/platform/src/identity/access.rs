//! Who may call which route of a service: a table of [`RouteRule`]s, one per
//! operation (method and route template, as in the OpenAPI document), enforced by
//! [`enforce`] before any handler runs.
//!
//! - no `Authorization: Bearer` credential: 401 `unauthenticated`;
//! - a token that does not verify (forged, expired, for another service, an issuer
//!   we do not trust, `alg: none`...): 401 `invalid_token`;
//! - an anonymous caller on a route for signed-in customers: 401 `unauthenticated`;
//! - a verified caller without the right: 403 `forbidden`;
//! - a route with no rule: 403 `no_access_rule` for everyone, and an error in the log
//!   (fail closed; [`check_policy`] refuses to start a service whose table misses
//!   an operation of its OpenAPI document).
//!
//! Ownership (a customer's own order) is the handler's part, with
//! [`super::Caller::may_see`].

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::OpenApi;

use super::caller::{Caller, Principal};
use super::verifier::{TokenError, TokenVerifier};
use crate::error::ApiError;
use crate::metrics::Metrics;

/// What a route asks of the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Any verified caller: anonymous through the gateway, customers, admins, services.
    AnyCaller,
    /// A signed-in customer or an admin (the handler limits customers to their own).
    SignedIn,
    /// An administrator.
    Admin,
    /// An administrator, or a service whose token carries this scope.
    AdminOrService(&'static str),
    /// A seed's own unauthenticated route: signed-in customers and admins, and
    /// anonymous callers while the seeds' routes are open at the gateway. Acts with
    /// the caller's rights: an anonymous caller sees only what was made without an
    /// account, as in the seed.
    Seed,
    /// A seed's own route that only the seeds' openness allows (it writes the
    /// catalogue or stock, or answers as the seed did where that tells too much):
    /// administrators, and anyone while the seeds' routes are open (the seed let
    /// anyone).
    SeedWhileOpen,
    /// A seed's own route that changes what customers may only read (payments,
    /// shipments): administrators, and callers without an account while the seeds'
    /// routes are open; never customers or services.
    SeedWithoutAccount,
}

/// One line of a service's access table.
#[derive(Clone, Copy, Debug)]
pub struct RouteRule {
    /// `GET`, `POST`... (`HEAD` is checked as `GET`).
    pub method: &'static str,
    /// The route template, as the router and the OpenAPI document write it.
    pub path: &'static str,
    pub access: Access,
}

/// A rule, for writing tables compactly.
pub const fn rule(method: &'static str, path: &'static str, access: Access) -> RouteRule {
    RouteRule {
        method,
        path,
        access,
    }
}

/// What the table says about one caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// 401: an account is needed.
    SignInNeeded,
    /// 403: the caller is known but lacks the right.
    Forbidden,
}

/// The decision of `access` for `caller`.
pub fn decide(access: Access, caller: &Caller) -> Decision {
    use Decision::*;
    let anonymous = |open: bool| {
        if open { Allow } else { SignInNeeded }
    };
    match (&caller.principal, access) {
        (_, Access::AnyCaller) => Allow,
        (Principal::Admin(_), _) => Allow,
        (Principal::Customer(_), Access::SignedIn | Access::Seed) => Allow,
        (Principal::Customer(_), Access::SeedWhileOpen) if caller.seed_compat => Allow,
        (Principal::Customer(_), _) => Forbidden,
        (
            Principal::Anonymous,
            Access::Seed | Access::SeedWhileOpen | Access::SeedWithoutAccount,
        ) => anonymous(caller.seed_compat),
        (Principal::Anonymous, _) => SignInNeeded,
        (Principal::Service { .. }, Access::AdminOrService(scope)) if caller.has_scope(scope) => {
            Allow
        }
        (Principal::Service { .. }, _) => Forbidden,
    }
}

/// The rule for `method` on the route template `path`.
pub fn find_rule<'a>(
    policy: &'a [RouteRule],
    method: &Method,
    path: &str,
) -> Option<&'a RouteRule> {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    policy
        .iter()
        .find(|r| r.method.eq_ignore_ascii_case(method) && r.path == path)
}

/// Operations of `openapi` without a rule, and rules naming no operation: both must
/// be empty for the table to be complete. The probes and `open` paths (routes that
/// authenticate their callers themselves) need no rule.
pub fn check_policy(policy: &[RouteRule], openapi: &OpenApi, open: &[&str]) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut operations = Vec::new();
    for (path, item) in &openapi.paths.paths {
        for (method, op) in [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ] {
            if op.is_some() {
                operations.push((method, path.as_str()));
            }
        }
    }
    for (method, path) in &operations {
        let exempt = matches!(*path, "/health" | "/ready") || open.contains(path);
        if !exempt
            && !policy
                .iter()
                .any(|r| r.method == *method && r.path == *path)
        {
            problems.push(format!("{method} {path} has no access rule"));
        }
    }
    for rule in policy {
        if !operations.contains(&(rule.method, rule.path)) {
            problems.push(format!(
                "the access rule for {} {} names no operation of the OpenAPI document",
                rule.method, rule.path
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// What [`enforce`] needs.
#[derive(Clone)]
pub struct AccessState {
    pub policy: &'static [RouteRule],
    pub verifier: TokenVerifier,
    pub metrics: Metrics,
}

/// The `Authorization: Bearer` token of a request: `Ok(None)` without one.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, TokenError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(TokenError::Malformed);
    }
    let value = value.to_str().map_err(|_| TokenError::Malformed)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(TokenError::Malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(TokenError::Malformed);
    }
    Ok(Some(token))
}

/// The layer: see the module docs. Apply it with `Router::route_layer`.
pub async fn enforce(State(state): State<AccessState>, mut req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let Some(rule) = find_rule(state.policy, req.method(), &route).copied() else {
        tracing::error!(method = %req.method(), %route, "a route has no access rule; refused");
        state.metrics.auth_failure("no_access_rule");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "no_access_rule",
            format!("{} {route} is not open to anyone", req.method()),
        )
        .into_response();
    };
    let token = match bearer_token(req.headers()) {
        Ok(Some(token)) => token,
        Ok(None) => {
            state.metrics.auth_failure("missing_token");
            return unauthorized(
                "unauthenticated",
                "this service needs a credential: `Authorization: Bearer <token>` (clients go through the API gateway)".into(),
                false,
            );
        }
        Err(err) => {
            state.metrics.auth_failure(err.reason());
            return unauthorized("invalid_token", err.to_string(), true);
        }
    };
    let caller = match state
        .verifier
        .verify(token)
        .await
        .and_then(|claims| Caller::from_claims(&claims))
    {
        Ok(caller) => caller,
        Err(err) => {
            state.metrics.auth_failure(err.reason());
            tracing::info!(reason = err.reason(), "token refused");
            return unauthorized("invalid_token", err.to_string(), true);
        }
    };
    match decide(rule.access, &caller) {
        Decision::Allow => {}
        Decision::SignInNeeded => {
            state.metrics.auth_failure("sign_in_needed");
            return unauthorized(
                "unauthenticated",
                format!(
                    "{} {route} needs a signed-in customer: log in at POST /api/v1/customers/login",
                    req.method()
                ),
                false,
            );
        }
        Decision::Forbidden => {
            state.metrics.auth_failure("forbidden");
            tracing::info!(caller = caller.describe(), method = %req.method(), %route, "forbidden");
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "{} {route} is not allowed to {}",
                    req.method(),
                    caller.describe()
                ),
            )
            .into_response();
        }
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// A 401 with its `WWW-Authenticate` challenge (RFC 6750 §3).
pub fn unauthorized(code: &'static str, message: String, invalid_token: bool) -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(principal: Principal, seed_compat: bool) -> Caller {
        Caller {
            principal,
            seed_compat,
            client_ip: None,
        }
    }

    fn anonymous_when(open: bool) -> Decision {
        if open {
            Decision::Allow
        } else {
            Decision::SignInNeeded
        }
    }

    #[test]
    fn decisions() {
        use Decision::*;
        let order = Principal::Service {
            name: "order".into(),
            scopes: vec!["stock:reserve".into()],
        };
        for open in [false, true] {
            let customer = caller(Principal::Customer(1), open);
            let admin = caller(Principal::Admin(2), open);
            let anonymous = caller(Principal::Anonymous, open);
            let service = caller(order.clone(), open);
            for c in [&customer, &admin, &anonymous, &service] {
                assert_eq!(decide(Access::AnyCaller, c), Allow);
            }
            assert_eq!(decide(Access::SignedIn, &customer), Allow);
            assert_eq!(decide(Access::SignedIn, &anonymous), SignInNeeded);
            assert_eq!(decide(Access::SignedIn, &service), Forbidden);
            assert_eq!(decide(Access::Admin, &customer), Forbidden);
            assert_eq!(decide(Access::Admin, &admin), Allow);
            assert_eq!(decide(Access::Admin, &anonymous), SignInNeeded);
            assert_eq!(decide(Access::Admin, &service), Forbidden);
            let reserve = Access::AdminOrService("stock:reserve");
            assert_eq!(decide(reserve, &service), Allow);
            assert_eq!(
                decide(Access::AdminOrService("payments:charge"), &service),
                Forbidden
            );
            assert_eq!(decide(reserve, &customer), Forbidden);
            assert_eq!(decide(Access::Seed, &customer), Allow);
            assert_eq!(decide(Access::Seed, &service), Forbidden);
            assert_eq!(decide(Access::SeedWhileOpen, &admin), Allow);
            assert_eq!(decide(Access::SeedWhileOpen, &service), Forbidden);
            assert_eq!(decide(Access::SeedWithoutAccount, &admin), Allow);
            assert_eq!(decide(Access::SeedWithoutAccount, &customer), Forbidden);
            assert_eq!(decide(Access::SeedWithoutAccount, &service), Forbidden);
            assert_eq!(
                decide(Access::SeedWithoutAccount, &anonymous),
                anonymous_when(open)
            );
        }
        let closed = |p| caller(p, false);
        let open = |p| caller(p, true);
        assert_eq!(
            decide(Access::Seed, &closed(Principal::Anonymous)),
            SignInNeeded
        );
        assert_eq!(decide(Access::Seed, &open(Principal::Anonymous)), Allow);
        assert_eq!(
            decide(Access::SeedWhileOpen, &closed(Principal::Customer(1))),
            Forbidden
        );
        assert_eq!(
            decide(Access::SeedWhileOpen, &open(Principal::Customer(1))),
            Allow
        );
        assert_eq!(
            decide(Access::SeedWhileOpen, &open(Principal::Anonymous)),
            Allow
        );
    }

    #[test]
    fn bearer_tokens() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), Ok(None));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer_token(&h), Ok(Some("abc")));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YTpi"),
        );
        assert_eq!(bearer_token(&h), Err(TokenError::Malformed));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer_token(&h), Err(TokenError::Malformed));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        h.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        assert_eq!(bearer_token(&h), Err(TokenError::Malformed));
    }
}
