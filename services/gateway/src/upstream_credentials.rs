//! The credential every forwarded request carries: a token the gateway signs for the
//! one service the request goes to (audience `sales-system/<service>`), valid for
//! `GATEWAY_TOKEN_TTL` (60 s), saying who the gateway let through: a customer, an
//! admin, or someone without an account; whether the seeds' routes are open; and the
//! client's address. The customer's own token never leaves the gateway.
//!
//! The public keys are at the gateway's `/.well-known/jwks.json`; every service
//! fetches them from there (`GATEWAY_JWKS_URL`) and checks each request's token
//! itself.

use std::net::IpAddr;
use std::time::Duration;

use sales_platform::identity::claims::{OnBehalfOf, TokenClaims};
use sales_platform::identity::keys::{Jwks, SigningKeys};
use sales_platform::identity::service_audience;

use crate::auth::Identity;
use crate::routes::Upstream;

pub struct UpstreamCredentials {
    keys: SigningKeys,
    ttl: Duration,
    seed_compat_open: bool,
}

impl std::fmt::Debug for UpstreamCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamCredentials")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl UpstreamCredentials {
    pub fn new(keys: SigningKeys, ttl: Duration, seed_compat_open: bool) -> UpstreamCredentials {
        UpstreamCredentials {
            keys,
            ttl,
            seed_compat_open,
        }
    }

    /// The public keys, served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> Jwks {
        self.keys.jwks()
    }

    /// A token for one request of `caller` (`None`: no account) to `upstream`.
    pub fn token_for(
        &self,
        upstream: Upstream,
        caller: Option<&Identity>,
        client_ip: Option<IpAddr>,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let on_behalf_of = match caller {
            Some(Identity {
                customer_id,
                admin: true,
            }) => OnBehalfOf::Admin(*customer_id),
            Some(Identity { customer_id, .. }) => OnBehalfOf::Customer(*customer_id),
            None => OnBehalfOf::Anonymous,
        };
        let claims = TokenClaims::gateway(
            service_audience(upstream.name()),
            on_behalf_of,
            self.seed_compat_open,
            client_ip,
            self.ttl,
        );
        self.keys.sign(&claims)
    }
}
