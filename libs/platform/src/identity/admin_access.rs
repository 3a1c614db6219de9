//! The operations endpoints of the admin port (`/admin/...`: dead letters) are for
//! administrators. They are not behind the gateway (an operator reaches the admin
//! port with `kubectl port-forward`), so they take an administrator's own access
//! token, as `POST /api/v1/customers/login` gives it:
//!
//! 1. the token verifies as a customer access token of the identity provider
//!    (signature, audience [`API_AUDIENCE`], expiry);
//! 2. its role is `admin`;
//! 3. the identity provider says it is still active (introspection, RFC 7662): not
//!    revoked by a logout or a password change.
//!
//! Anything else is a 401 (no or bad token) or a 403 (not an admin). If the identity
//! provider cannot be asked, 503: not proven, not allowed.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::access::{bearer_token, unauthorized};
use super::claims::{ROLE_ADMIN, TokenKind};
use super::key_set::KeySet;
use super::service_credentials::ServiceTokens;
use super::verifier::TokenVerifier;
use super::{API_AUDIENCE, IDENTITY_ISSUER, JWKS_PATH};
use crate::error::ApiError;
use crate::metrics::Metrics;

/// What [`require_admin`] needs.
#[derive(Clone)]
pub struct AdminAccess {
    verifier: TokenVerifier,
    tokens: Arc<ServiceTokens>,
    metrics: Metrics,
}

impl AdminAccess {
    pub fn new(
        identity_url: &str,
        tokens: Arc<ServiceTokens>,
        metrics: Metrics,
    ) -> anyhow::Result<AdminAccess> {
        let keys = KeySet::remote(&format!(
            "{}{JWKS_PATH}",
            identity_url.trim_end_matches('/')
        ))?;
        Ok(AdminAccess {
            verifier: TokenVerifier::new(API_AUDIENCE, vec![(IDENTITY_ISSUER.to_owned(), keys)]),
            tokens,
            metrics,
        })
    }
}

/// The layer in front of the admin port's operations routes.
pub async fn require_admin(
    State(access): State<AdminAccess>,
    req: Request,
    next: Next,
) -> Response {
    let token = match bearer_token(req.headers()) {
        Ok(Some(token)) => token,
        Ok(None) => {
            access.metrics.auth_failure("missing_token");
            return unauthorized(
                "unauthenticated",
                "the operations endpoints need an administrator's token: \
                 `Authorization: Bearer <token from POST /api/v1/customers/login>`"
                    .into(),
                false,
            );
        }
        Err(err) => {
            access.metrics.auth_failure(err.reason());
            return unauthorized("invalid_token", err.to_string(), true);
        }
    };
    let claims = match access.verifier.verify(token).await {
        Ok(claims) if claims.kind() == Some(TokenKind::CustomerAccess) => claims,
        Ok(_) => {
            access.metrics.auth_failure("wrong_audience");
            return unauthorized(
                "invalid_token",
                "an administrator's access token is needed".into(),
                true,
            );
        }
        Err(err) => {
            access.metrics.auth_failure(err.reason());
            return unauthorized("invalid_token", err.to_string(), true);
        }
    };
    if claims.role != ROLE_ADMIN {
        access.metrics.auth_failure("forbidden");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the operations endpoints are for administrators",
        )
        .into_response();
    }
    match access.tokens.introspect(token).await {
        Ok(answer) if answer.active => {}
        Ok(_) => {
            access.metrics.auth_failure("revoked");
            return unauthorized(
                "invalid_token",
                "the token has been revoked (logged out or password changed)".into(),
                true,
            );
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot introspect an admin token; refusing");
            return ApiError::unavailable(
                "cannot check the token with the identity provider; try again shortly",
            )
            .into_response();
        }
    }
    tracing::info!(admin = %claims.sub, method = %req.method(), path = %req.uri().path(), "operations endpoint used");
    next.run(req).await
}
