//! What a token says. One claims type serves the three kinds of token in the system;
//! [`TokenKind`] tells them apart from `iss`, `aud` and `role`.
//!
//! | kind | iss | sub | aud | role | also |
//! |---|---|---|---|---|---|
//! | customer access token | identity | customer id | [`API_AUDIENCE`] | `customer`/`admin` | `ver`, `name`, `email` |
//! | service token | identity | `service:<name>` | the services it may call | `service` | `scope` |
//! | gateway token | gateway | customer id or `anonymous` | one service | `customer`/`admin`/`anonymous` | `seed_compat`, `client_ip` |

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{API_AUDIENCE, GATEWAY_ISSUER, IDENTITY_ISSUER, now_seconds};

/// `sub` of a gateway token for a caller without an account.
pub const ANONYMOUS_SUBJECT: &str = "anonymous";
/// `sub` prefix of a service token: `service:order`.
pub const SERVICE_SUBJECT_PREFIX: &str = "service:";

/// Roles as tokens spell them.
pub const ROLE_CUSTOMER: &str = "customer";
pub const ROLE_ADMIN: &str = "admin";
pub const ROLE_ANONYMOUS: &str = "anonymous";
pub const ROLE_SERVICE: &str = "service";

/// `aud`: one audience or several (RFC 7519 §4.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(a) => a == audience,
            Audience::Many(all) => all.iter().any(|a| a == audience),
        }
    }
}

/// The claims of every token. Registered claims first (RFC 7519), then ours.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    /// Issued at, not before, expires: seconds since the epoch.
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// A unique id per token.
    pub jti: String,
    /// `customer`, `admin`, `anonymous` or `service`.
    pub role: String,
    /// Customer access tokens: the customer's token version when it was issued. Logging
    /// out or changing the password raises the version; older tokens stop working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ver: Option<i64>,
    /// Customer access tokens (seed 000's JWT carries them too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Service tokens: the rights, space-separated (RFC 8693 §4.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Gateway tokens: whether the seeds' unauthenticated routes are open
    /// (`SEED_COMPAT_OPEN` at the gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_compat: Option<bool>,
    /// Gateway tokens: the client's address as the gateway determined it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
}

/// Which of the three kinds a (verified) token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    CustomerAccess,
    Service,
    Gateway,
}

/// Who a gateway token speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnBehalfOf {
    Customer(i64),
    Admin(i64),
    Anonymous,
}

impl TokenClaims {
    fn new(iss: &str, sub: String, aud: Audience, role: &str, ttl: Duration) -> TokenClaims {
        let now = now_seconds();
        TokenClaims {
            iss: iss.to_owned(),
            sub,
            aud,
            iat: now,
            nbf: now,
            exp: now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
            jti: uuid::Uuid::new_v4().to_string(),
            role: role.to_owned(),
            ver: None,
            name: None,
            email: None,
            scope: None,
            seed_compat: None,
            client_ip: None,
        }
    }

    /// A customer's (or an administrator's) access token, for the gateway.
    pub fn customer_access(
        customer_id: i64,
        admin: bool,
        token_version: i64,
        name: &str,
        email: &str,
        ttl: Duration,
    ) -> TokenClaims {
        let role = if admin { ROLE_ADMIN } else { ROLE_CUSTOMER };
        let mut claims = TokenClaims::new(
            IDENTITY_ISSUER,
            customer_id.to_string(),
            Audience::One(API_AUDIENCE.to_owned()),
            role,
            ttl,
        );
        claims.ver = Some(token_version);
        claims.name = Some(name.to_owned());
        claims.email = Some(email.to_owned());
        claims
    }

    /// A service token for `service`, valid at `audiences` with `scopes`.
    pub fn service(
        service: &str,
        scopes: &[&str],
        audiences: Vec<String>,
        ttl: Duration,
    ) -> TokenClaims {
        let mut claims = TokenClaims::new(
            IDENTITY_ISSUER,
            format!("{SERVICE_SUBJECT_PREFIX}{service}"),
            Audience::Many(audiences),
            ROLE_SERVICE,
            ttl,
        );
        claims.scope = Some(scopes.join(" "));
        claims
    }

    /// The gateway's token for one request to the service `audience`.
    pub fn gateway(
        audience: String,
        on_behalf_of: OnBehalfOf,
        seed_compat: bool,
        client_ip: Option<std::net::IpAddr>,
        ttl: Duration,
    ) -> TokenClaims {
        let (sub, role) = match on_behalf_of {
            OnBehalfOf::Customer(id) => (id.to_string(), ROLE_CUSTOMER),
            OnBehalfOf::Admin(id) => (id.to_string(), ROLE_ADMIN),
            OnBehalfOf::Anonymous => (ANONYMOUS_SUBJECT.to_owned(), ROLE_ANONYMOUS),
        };
        let mut claims = TokenClaims::new(GATEWAY_ISSUER, sub, Audience::One(audience), role, ttl);
        claims.seed_compat = Some(seed_compat);
        claims.client_ip = client_ip.map(|ip| ip.to_string());
        claims
    }

    pub fn kind(&self) -> Option<TokenKind> {
        match self.iss.as_str() {
            GATEWAY_ISSUER => Some(TokenKind::Gateway),
            IDENTITY_ISSUER if self.role == ROLE_SERVICE => Some(TokenKind::Service),
            IDENTITY_ISSUER if self.aud.contains(API_AUDIENCE) => Some(TokenKind::CustomerAccess),
            _ => None,
        }
    }

    /// The scopes of a service token.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.as_deref().unwrap_or("").split_ascii_whitespace()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_are_one_or_many() {
        let one: Audience = serde_json::from_str(r#""sales-system/order""#).unwrap();
        assert!(one.contains("sales-system/order") && !one.contains("sales-system/x"));
        let many: Audience = serde_json::from_str(r#"["a", "b"]"#).unwrap();
        assert!(many.contains("b") && !many.contains("c"));
    }
}
