//! Who is calling, proven: signed tokens, their keys, and the access rules every
//! service enforces. `docs/security.md` tells the whole story; in short:
//!
//! - **Two issuers, asymmetric keys (EdDSA, Ed25519).** The customer service
//!   ([`IDENTITY_ISSUER`]) signs customers' access tokens (audience [`API_AUDIENCE`],
//!   checked by the gateway) and service tokens (client credentials, audience the
//!   services the client may call). The gateway ([`GATEWAY_ISSUER`]) signs a
//!   short-lived token per forwarded request, for the one service it goes to,
//!   saying who the gateway let through. Each issuer publishes its public keys as a
//!   JWKS document; every token names its key (`kid`).
//! - **Every service verifies for itself** ([`verifier`]) and answers 401 without a
//!   valid credential. Nothing counts as "internal" for lacking a header.
//! - **Access is a table per service** ([`access`]): each route names what it asks
//!   of the caller; a route without a rule is refused.
//!
//! Modules: [`claims`] (what a token says), [`keys`] (signing keys and JWKS),
//! [`key_set`] (trusted public keys, fetched and cached), [`verifier`], [`caller`]
//! (the verified caller handlers see), [`access`] (the rules and the layer that
//! enforces them), [`service_credentials`] (a service's own token, and
//! introspection of customers' tokens).

pub mod access;
pub mod admin_access;
pub mod caller;
pub mod claims;
pub mod key_set;
pub mod keys;
pub mod service_credentials;
pub mod token_versions;
pub mod verifier;

pub use access::{Access, RouteRule};
pub use caller::{Caller, OwnerScope};
pub use claims::TokenClaims;
pub use verifier::{TokenError, TokenVerifier};

/// The issuer of customers' access tokens and of service tokens: the customer service.
pub const IDENTITY_ISSUER: &str = "sales-system/customer";
/// The issuer of the per-request tokens the gateway gives the services.
pub const GATEWAY_ISSUER: &str = "sales-system/gateway";
/// The audience of customers' access tokens: the public API, behind the gateway.
pub const API_AUDIENCE: &str = "sales-system/api";
/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECONDS: u64 = 30;
/// Path of an issuer's public keys (RFC 8414's well-known location).
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// The customer service's OAuth 2.0 token endpoint (client credentials, RFC 6749 §4.4).
pub const TOKEN_PATH: &str = "/oauth/token";
/// The customer service's token introspection endpoint (RFC 7662).
pub const INTROSPECTION_PATH: &str = "/oauth/introspect";

/// The audience naming `service` (`sales-system/order`): tokens for it say so.
pub fn service_audience(service: &str) -> String {
    format!("sales-system/{service}")
}

/// What a service behind the gateway needs to check callers and to call others.
#[derive(Clone, Debug)]
pub struct ServiceIdentity {
    /// Checks the tokens of requests: the gateway's (for this service) and service
    /// tokens of the identity provider (naming this service).
    pub verifier: TokenVerifier,
    /// This service's own token, for calls to other services.
    pub tokens: std::sync::Arc<service_credentials::ServiceTokens>,
}

impl ServiceIdentity {
    pub fn new(service: &str, args: &crate::config::IdentityArgs) -> anyhow::Result<Self> {
        let identity_url = args.identity_url.trim_end_matches('/');
        let verifier = TokenVerifier::new(
            service_audience(service),
            vec![
                (
                    GATEWAY_ISSUER.to_owned(),
                    key_set::KeySet::remote(&args.gateway_jwks_url)?,
                ),
                (
                    IDENTITY_ISSUER.to_owned(),
                    key_set::KeySet::remote(&format!("{identity_url}{JWKS_PATH}"))?,
                ),
            ],
        );
        let tokens = std::sync::Arc::new(service_credentials::ServiceTokens::new(
            service,
            args.service_client_secret.clone(),
            identity_url,
        )?);
        Ok(ServiceIdentity { verifier, tokens })
    }
}

/// Seconds since the Unix epoch.
pub fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// The HTTP client for talking to an issuer (keys, tokens, introspection): short
/// timeouts, no redirects, no proxy from the environment.
fn http_client() -> reqwest::Result<reqwest::Client> {
    crate::tls::http_client_builder()
        .timeout(std::time::Duration::from_secs(3))
        .connect_timeout(std::time::Duration::from_secs(2))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
}
