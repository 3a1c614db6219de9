//! Who is calling: the customer's access token, checked here at the edge.
//!
//! 1. The token verifies as the identity provider's (the customer service's public
//!    keys, fetched from its JWKS and cached): EdDSA signature, `iss`, audience
//!    `sales-system/api`, `exp`/`nbf` with 30 s of leeway (`sales_platform::identity`).
//! 2. It is not revoked: its token version (`ver`) is the customer's current one.
//!    The current versions are in Redis, published by the customer service; when
//!    Redis has no answer (no key, or Redis away) the customer service is asked
//!    (introspection), and when it cannot answer either the request is refused with
//!    503: a token that cannot be proven valid is not accepted.

use std::sync::Arc;

use axum::http::HeaderMap;
use sales_platform::identity::access::bearer_token;
use sales_platform::identity::claims::{ROLE_ADMIN, ROLE_CUSTOMER, TokenClaims, TokenKind};
use sales_platform::identity::key_set::KeySet;
use sales_platform::identity::service_credentials::ServiceTokens;
use sales_platform::identity::token_versions::TokenVersions;
use sales_platform::identity::{
    API_AUDIENCE, IDENTITY_ISSUER, JWKS_PATH, TokenError, TokenVerifier,
};

/// Who a verified token says is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub customer_id: i64,
    pub admin: bool,
}

/// Why a request's credential was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// 401 `invalid_token`.
    #[error(transparent)]
    Invalid(#[from] TokenError),
    /// 503: revocation could not be checked.
    #[error("cannot check the token right now; try again shortly")]
    Unavailable,
}

impl AuthError {
    /// The `reason` label of `gateway_auth_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Invalid(e) => e.reason(),
            AuthError::Unavailable => "identity_unavailable",
        }
    }
}

/// Checks customers' access tokens.
pub struct Authenticator {
    verifier: TokenVerifier,
    versions: Arc<TokenVersions>,
    introspection: Arc<ServiceTokens>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Tokens of the identity provider at `identity_url` (the customer service).
    pub fn new(
        identity_url: &str,
        versions: Arc<TokenVersions>,
        introspection: Arc<ServiceTokens>,
    ) -> anyhow::Result<Authenticator> {
        let keys = KeySet::remote(&format!(
            "{}{JWKS_PATH}",
            identity_url.trim_end_matches('/')
        ))?;
        Ok(Authenticator {
            verifier: TokenVerifier::new(API_AUDIENCE, vec![(IDENTITY_ISSUER.to_owned(), keys)]),
            versions,
            introspection,
        })
    }

    /// The caller of a request: `Ok(None)` without an `Authorization` header.
    pub async fn identify(&self, headers: &HeaderMap) -> Result<Option<Identity>, AuthError> {
        let Some(token) = bearer_token(headers)? else {
            return Ok(None);
        };
        let claims = self.verifier.verify(token).await?;
        let identity = identity_of(&claims)?;
        let ver = claims.ver.ok_or(TokenError::Malformed)?;
        match self.versions.get(identity.customer_id).await {
            Ok(Some(current)) if current == ver => Ok(Some(identity)),
            Ok(Some(_)) => Err(TokenError::Revoked.into()),
            Ok(None) | Err(_) => match self.introspection.introspect(token).await {
                Ok(answer) if answer.active => Ok(Some(identity)),
                Ok(_) => Err(TokenError::Revoked.into()),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot check a token's revocation");
                    Err(AuthError::Unavailable)
                }
            },
        }
    }
}

/// The customer an access token names.
fn identity_of(claims: &TokenClaims) -> Result<Identity, TokenError> {
    if claims.kind() != Some(TokenKind::CustomerAccess) {
        return Err(TokenError::WrongAudience);
    }
    let customer_id = claims
        .sub
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(TokenError::Malformed)?;
    let admin = match claims.role.as_str() {
        ROLE_ADMIN => true,
        ROLE_CUSTOMER => false,
        _ => return Err(TokenError::Malformed),
    };
    Ok(Identity { customer_id, admin })
}
