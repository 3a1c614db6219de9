//! The tokens the customer service issues, as the system's identity provider
//! (issuer [`IDENTITY_ISSUER`]), signed with EdDSA by the first key of
//! `TOKEN_SIGNING_KEYS` (the others are published too, for rotation):
//!
//! - **customer access tokens**, at registration, login and password change: for the
//!   gateway (audience [`API_AUDIENCE`]), with the customer's id, role, name, email
//!   and token version (`ver`), valid for `TOKEN_TTL`;
//! - **service tokens**, for the client credentials grant ([`crate::oauth`]): for the
//!   services the client may call, with its scopes, valid for `SERVICE_TOKEN_TTL`.
//!
//! The public keys are served at `/.well-known/jwks.json`; the gateway and every
//! service verify with them (`sales_platform::identity`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sales_contracts::api::auth::Role;
use sales_platform::identity::claims::TokenClaims;
use sales_platform::identity::key_set::KeySet;
use sales_platform::identity::keys::{Jwks, SigningKeys};
use sales_platform::identity::{API_AUDIENCE, IDENTITY_ISSUER, TokenError, TokenVerifier};

use crate::service_clients::ClientRights;

#[derive(Debug, thiserror::Error)]
#[error("could not sign a token: {0}")]
pub struct SigningError(String);

/// Who an access token is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSubject {
    pub customer_id: i64,
    pub name: String,
    pub email: String,
    pub role: Role,
    /// The customer's token version now: older tokens are revoked.
    pub token_version: i64,
}

/// A signed token and when it stops being accepted.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// The signing keys and lifetimes.
pub struct Issuer {
    keys: SigningKeys,
    access_verifier: TokenVerifier,
    access_ttl: Duration,
    service_ttl: Duration,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    pub fn new(
        keys: SigningKeys,
        access_ttl: Duration,
        service_ttl: Duration,
    ) -> anyhow::Result<Issuer> {
        let access_verifier = TokenVerifier::new(
            API_AUDIENCE,
            vec![(IDENTITY_ISSUER.to_owned(), KeySet::fixed(&keys.jwks())?)],
        );
        Ok(Issuer {
            keys,
            access_verifier,
            access_ttl,
            service_ttl,
        })
    }

    /// The public keys, as `/.well-known/jwks.json` serves them.
    pub fn jwks(&self) -> Jwks {
        self.keys.jwks()
    }

    /// The identity provider's own key set (to check service tokens sent to it).
    pub fn key_set(&self) -> anyhow::Result<KeySet> {
        KeySet::fixed(&self.keys.jwks())
    }

    pub fn service_ttl(&self) -> Duration {
        self.service_ttl
    }

    /// A customer's access token, valid for `TOKEN_TTL` from now.
    pub fn access_token(&self, subject: &TokenSubject) -> Result<IssuedToken, SigningError> {
        let claims = TokenClaims::customer_access(
            subject.customer_id,
            subject.role == Role::Admin,
            subject.token_version,
            &subject.name,
            &subject.email,
            self.access_ttl,
        );
        self.sign(&claims)
    }

    /// A service token for `client`, valid for `SERVICE_TOKEN_TTL` from now.
    pub fn service_token(&self, client: &ClientRights) -> Result<IssuedToken, SigningError> {
        let claims = TokenClaims::service(
            client.id,
            client.scopes,
            client.audiences(),
            self.service_ttl,
        );
        self.sign(&claims)
    }

    /// The claims of a customer access token this issuer signed, if it verifies
    /// (signature, audience, expiry; not revocation, which needs the database).
    pub async fn verify_access(&self, token: &str) -> Result<TokenClaims, TokenError> {
        self.access_verifier.verify(token).await
    }

    fn sign(&self, claims: &TokenClaims) -> Result<IssuedToken, SigningError> {
        let token = self
            .keys
            .sign(claims)
            .map_err(|e| SigningError(e.to_string()))?;
        let expires_at = DateTime::from_timestamp(claims.exp, 0)
            .ok_or_else(|| SigningError(format!("expiry {} is out of range", claims.exp)))?;
        Ok(IssuedToken { token, expires_at })
    }
}

#[cfg(test)]
mod tests {
    use sales_platform::identity::keys::generate_pem;

    use super::*;

    fn issuer() -> Issuer {
        let keys = SigningKeys::from_pem(&generate_pem().unwrap()).unwrap();
        Issuer::new(keys, Duration::from_secs(3600), Duration::from_secs(600)).unwrap()
    }

    #[tokio::test]
    async fn access_tokens_carry_the_customer_and_the_version() {
        let issuer = issuer();
        let subject = TokenSubject {
            customer_id: 42,
            name: "Alice".into(),
            email: "alice@example.com".into(),
            role: Role::Customer,
            token_version: 3,
        };
        let issued = issuer.access_token(&subject).unwrap();
        let claims = issuer.verify_access(&issued.token).await.unwrap();
        assert_eq!(claims.sub, "42");
        assert_eq!(claims.role, "customer");
        assert_eq!(claims.ver, Some(3));
        assert_eq!(claims.email.as_deref(), Some("alice@example.com"));
        assert_eq!(claims.iss, IDENTITY_ISSUER);
        assert_eq!(claims.exp - claims.iat, 3600);
        assert_eq!(claims.exp, issued.expires_at.timestamp());
    }

    #[tokio::test]
    async fn service_tokens_are_not_access_tokens() {
        let issuer = issuer();
        let order = crate::service_clients::rights_of("order").unwrap();
        let token = issuer.service_token(order).unwrap();
        assert_eq!(
            issuer.verify_access(&token.token).await.unwrap_err(),
            TokenError::WrongAudience
        );
    }
}
