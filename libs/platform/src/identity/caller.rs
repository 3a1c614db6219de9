//! The verified caller of a request, as handlers see it. The access layer
//! ([`super::access`]) makes it from the request's token and puts it in the
//! request's extensions; a handler takes it as an extractor. A request that reached
//! a handler without one is refused (401): there is no caller by default.

use std::net::IpAddr;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;

use super::claims::{
    ANONYMOUS_SUBJECT, ROLE_ADMIN, ROLE_ANONYMOUS, ROLE_CUSTOMER, SERVICE_SUBJECT_PREFIX,
    TokenClaims, TokenKind,
};
use super::verifier::TokenError;
use crate::error::ApiError;

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A signed-in customer, through the gateway.
    Customer(i64),
    /// A signed-in administrator, through the gateway.
    Admin(i64),
    /// Someone without an account, through the gateway (public routes, and the seeds'
    /// routes while they are open).
    Anonymous,
    /// Another service of the system, with the rights its token lists.
    Service { name: String, scopes: Vec<String> },
}

/// A verified caller and what the gateway said about the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
    /// The seeds' unauthenticated routes are open (`SEED_COMPAT_OPEN` at the gateway).
    pub seed_compat: bool,
    /// The client's address, as the gateway determined it.
    pub client_ip: Option<IpAddr>,
}

/// Whose things a listing may show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerScope {
    /// Everyone's (admins, services).
    All,
    /// Only those of this owner: a customer's, or (`None`) those placed without an
    /// account (what an anonymous caller of a seed route sees, as in the seed).
    Owner(Option<i64>),
}

impl OwnerScope {
    /// `(all, owner)` for SQL of the form
    /// `where ($1 or customer_id is not distinct from $2)`.
    pub fn sql_binds(self) -> (bool, Option<i64>) {
        match self {
            OwnerScope::All => (true, None),
            OwnerScope::Owner(owner) => (false, owner),
        }
    }
}

impl Caller {
    /// A caller from verified claims (gateway or service tokens; a customer's own
    /// access token never reaches a service's handlers).
    pub fn from_claims(claims: &TokenClaims) -> Result<Caller, TokenError> {
        match claims.kind() {
            Some(TokenKind::Gateway) => {
                let principal = match claims.role.as_str() {
                    ROLE_ANONYMOUS if claims.sub == ANONYMOUS_SUBJECT => Principal::Anonymous,
                    ROLE_CUSTOMER => Principal::Customer(customer_id(claims)?),
                    ROLE_ADMIN => Principal::Admin(customer_id(claims)?),
                    _ => return Err(TokenError::Malformed),
                };
                Ok(Caller {
                    principal,
                    seed_compat: claims.seed_compat.unwrap_or(false),
                    client_ip: claims.client_ip.as_deref().and_then(|ip| ip.parse().ok()),
                })
            }
            Some(TokenKind::Service) => {
                let name = claims
                    .sub
                    .strip_prefix(SERVICE_SUBJECT_PREFIX)
                    .filter(|n| !n.is_empty())
                    .ok_or(TokenError::Malformed)?;
                Ok(Caller {
                    principal: Principal::Service {
                        name: name.to_owned(),
                        scopes: claims.scopes().map(str::to_owned).collect(),
                    },
                    seed_compat: false,
                    client_ip: None,
                })
            }
            // A customer's access token is for the gateway, not for a service.
            Some(TokenKind::CustomerAccess) => Err(TokenError::WrongAudience),
            None => Err(TokenError::Malformed),
        }
    }

    /// The signed-in customer (or admin) this request is for.
    pub fn customer_id(&self) -> Option<i64> {
        match self.principal {
            Principal::Customer(id) | Principal::Admin(id) => Some(id),
            _ => None,
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self.principal, Principal::Admin(_))
    }

    pub fn is_anonymous(&self) -> bool {
        matches!(self.principal, Principal::Anonymous)
    }

    /// Does this service token carry `scope`?
    pub fn has_scope(&self, scope: &str) -> bool {
        match &self.principal {
            Principal::Service { scopes, .. } => scopes.iter().any(|s| s == scope),
            _ => false,
        }
    }

    /// May this caller see (or act on) something owned by `owner` (`None`: placed
    /// without an account)? Admins and services: everything; a customer: their own;
    /// an anonymous caller: only what was placed without an account.
    pub fn may_see(&self, owner: Option<i64>) -> bool {
        match self.principal {
            Principal::Admin(_) | Principal::Service { .. } => true,
            Principal::Customer(me) => owner == Some(me),
            Principal::Anonymous => owner.is_none(),
        }
    }

    /// Whose things a listing shows this caller.
    pub fn owner_scope(&self) -> OwnerScope {
        match self.principal {
            Principal::Admin(_) | Principal::Service { .. } => OwnerScope::All,
            Principal::Customer(me) => OwnerScope::Owner(Some(me)),
            Principal::Anonymous => OwnerScope::Owner(None),
        }
    }

    /// A short description for logs: `customer 7`, `admin 1`, `anonymous`, `service order`.
    pub fn describe(&self) -> String {
        match &self.principal {
            Principal::Customer(id) => format!("customer {id}"),
            Principal::Admin(id) => format!("admin {id}"),
            Principal::Anonymous => "anonymous".to_owned(),
            Principal::Service { name, .. } => format!("service {name}"),
        }
    }
}

fn customer_id(claims: &TokenClaims) -> Result<i64, TokenError> {
    claims
        .sub
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(TokenError::Malformed)
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "this route needs a verified credential",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(principal: Principal) -> Caller {
        Caller {
            principal,
            seed_compat: false,
            client_ip: None,
        }
    }

    #[test]
    fn who_sees_what() {
        let alice = caller(Principal::Customer(1));
        let admin = caller(Principal::Admin(9));
        let anonymous = caller(Principal::Anonymous);
        let order = caller(Principal::Service {
            name: "order".into(),
            scopes: vec!["stock:reserve".into()],
        });
        assert!(alice.may_see(Some(1)) && !alice.may_see(Some(2)) && !alice.may_see(None));
        assert!(admin.may_see(Some(1)) && admin.may_see(None));
        assert!(anonymous.may_see(None) && !anonymous.may_see(Some(1)));
        assert!(order.may_see(Some(1)));
        assert_eq!(alice.owner_scope(), OwnerScope::Owner(Some(1)));
        assert_eq!(anonymous.owner_scope(), OwnerScope::Owner(None));
        assert_eq!(admin.owner_scope(), OwnerScope::All);
        assert!(order.has_scope("stock:reserve") && !order.has_scope("payments:charge"));
        assert!(!admin.has_scope("stock:reserve"));
        assert_eq!(alice.customer_id(), Some(1));
        assert_eq!(order.customer_id(), None);
    }
}
