//! Who may call what: the access policy, as a table.
//!
//! The first rule whose methods and path match decides; a request no rule matches
//! needs a valid token ([`Access::Authenticated`]). The token itself is checked
//! before the policy: a forged, expired or malformed token is refused on every
//! route, public ones included (see [`crate::auth`]). Each service checks again,
//! with its own table, the token the gateway gives the request: this table answers
//! early and plainly; the services' tables are the last word.

use axum::http::Method;

/// What a route asks of the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone; a valid token is optional (and passed on when given).
    Public,
    /// A valid token, any role.
    Authenticated,
    /// A valid token with the `admin` role.
    Admin,
    /// A seed's own route, unauthenticated in that seed: open to anyone while
    /// `SEED_COMPAT_OPEN=true` (the local run), otherwise it needs a token
    /// (an admin's when `admin_when_closed`: catalogue and stock writes).
    SeedCompat { admin_when_closed: bool },
}

/// How a rule matches a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathPattern {
    /// This path exactly (a trailing slash is significant).
    Exact(&'static str),
    /// This path and everything below it (`/a` covers `/a`, `/a/`, `/a/b`, not `/ab`).
    Prefix(&'static str),
    /// Segment by segment; `{…}` matches any one non-empty segment.
    Segments(&'static str),
}

impl PathPattern {
    pub fn matches(self, path: &str) -> bool {
        match self {
            PathPattern::Exact(p) => path == p,
            PathPattern::Prefix(p) => crate::routes::prefix_matches(p, path),
            PathPattern::Segments(p) => {
                let mut want = p.split('/');
                let mut have = path.split('/');
                loop {
                    match (want.next(), have.next()) {
                        (None, None) => return true,
                        (Some(w), Some(h)) => {
                            let any = w.starts_with('{') && w.ends_with('}');
                            if !((any && !h.is_empty()) || w == h) {
                                return false;
                            }
                        }
                        _ => return false,
                    }
                }
            }
        }
    }
}

/// One line of the policy. `methods` empty means every method.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub methods: &'static [&'static str],
    pub path: PathPattern,
    pub access: Access,
}

const ANY: &[&str] = &[];
const READ: &[&str] = &["GET", "HEAD"];
const WRITE: &[&str] = &["POST", "PUT", "PATCH", "DELETE"];
const POST: &[&str] = &["POST"];

const fn rule(methods: &'static [&'static str], path: PathPattern, access: Access) -> Rule {
    Rule {
        methods,
        path,
        access,
    }
}

const COMPAT: Access = Access::SeedCompat {
    admin_when_closed: false,
};
/// A seed route that writes the catalogue or stock: an admin's when the switch is off.
const COMPAT_ADMIN: Access = Access::SeedCompat {
    admin_when_closed: true,
};

use Access::{Admin, Public};
use PathPattern::{Exact, Prefix, Segments};

/// The policy, first match wins. Anything not listed needs a valid token.
pub const POLICY: &[Rule] = &[
    // Signing up and logging in (canonical and seed 000).
    rule(POST, Exact("/api/v1/customers/register"), Public),
    rule(POST, Exact("/api/v1/customers/login"), Public),
    // Seed 000's registration answers 409 for a taken email: open only with the seeds'.
    rule(POST, Exact("/users/user/register"), COMPAT_ADMIN),
    rule(POST, Exact("/users/user/login"), Public),
    // The gateway's own pages, and its public keys.
    rule(READ, Exact("/.well-known/jwks.json"), Public),
    rule(READ, Exact("/health"), Public),
    rule(READ, Exact("/ready"), Public),
    rule(READ, Prefix("/docs"), Public),
    rule(READ, Prefix("/openapi"), Public),
    rule(READ, Exact("/openapi.json"), Public),
    // Catalogue and stock: anyone reads the catalogue, admins write both.
    rule(WRITE, Prefix("/api/v1/products"), Admin),
    rule(WRITE, Prefix("/api/v1/inventory/items"), Admin),
    // Reservations name orders and what they hold: the order service's business
    // (it calls the inventory directly), and admins'; never another customer's.
    rule(ANY, Prefix("/api/v1/inventory/reservations"), Admin),
    rule(READ, Prefix("/api/v1/products"), Public),
    rule(READ, Prefix("/products"), Public),
    // The seeds' own unauthenticated routes (SEED_COMPAT_OPEN).
    // Seed 002.
    rule(POST, Exact("/products"), COMPAT_ADMIN),
    rule(POST, Exact("/orders"), COMPAT), // also seed 003
    rule(ANY, Prefix("/customers"), COMPAT),
    rule(ANY, Prefix("/payments"), COMPAT),
    rule(READ, Prefix("/inventory"), COMPAT),
    rule(ANY, Prefix("/inventory"), COMPAT_ADMIN),
    rule(ANY, Prefix("/shipping"), COMPAT),
    // Seed 003.
    rule(READ, Segments("/orders/product/{product_id}"), COMPAT),
    // Seed 004.
    rule(READ, Prefix("/api/v1/stock"), COMPAT),
    rule(ANY, Prefix("/api/v1/stock"), COMPAT_ADMIN),
    rule(POST, Exact("/api/v1/payments/authorize"), COMPAT),
    rule(&["GET", "HEAD", "POST"], Exact("/api/v1/orders/"), COMPAT),
    rule(READ, Segments("/api/v1/orders/{id}"), COMPAT),
];

/// What `method path` asks of the caller (`path` without the query string).
pub fn required_access(method: &Method, path: &str) -> Access {
    POLICY
        .iter()
        .find(|r| {
            (r.methods.is_empty() || r.methods.contains(&method.as_str())) && r.path.matches(path)
        })
        .map(|r| r.access)
        .unwrap_or(Access::Authenticated)
}

/// The outcome of the policy for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// 401: a token is needed.
    Unauthenticated,
    /// 403: the token's role is not enough.
    Forbidden,
}

/// Decide for a caller who is an admin or not (`None`: no token) under `access`.
pub fn decide(access: Access, admin: Option<bool>, seed_compat_open: bool) -> Decision {
    let needs = |admin_needed: bool| match (admin, admin_needed) {
        (None, _) => Decision::Unauthenticated,
        (Some(true), _) | (Some(false), false) => Decision::Allow,
        (Some(false), true) => Decision::Forbidden,
    };
    match access {
        Access::Public => Decision::Allow,
        Access::Authenticated => needs(false),
        Access::Admin => needs(true),
        Access::SeedCompat { .. } if seed_compat_open => Decision::Allow,
        Access::SeedCompat { admin_when_closed } => needs(admin_when_closed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(method: &str, path: &str) -> Access {
        required_access(&Method::from_bytes(method.as_bytes()).unwrap(), path)
    }

    const AUTH: Access = Access::Authenticated;

    #[test]
    fn the_policy_table() {
        let cases: &[(&str, &str, Access)] = &[
            // public
            ("POST", "/api/v1/customers/register", Public),
            ("POST", "/api/v1/customers/login", Public),
            ("POST", "/users/user/register", COMPAT_ADMIN),
            ("POST", "/users/user/login", Public),
            ("GET", "/.well-known/jwks.json", Public),
            ("GET", "/api/v1/products", Public),
            ("GET", "/api/v1/products/7", Public),
            ("HEAD", "/api/v1/products/7", Public),
            ("GET", "/products", Public),
            ("GET", "/products/7", Public),
            ("GET", "/health", Public),
            ("GET", "/ready", Public),
            ("GET", "/docs", Public),
            ("GET", "/docs/swagger-initializer.js", Public),
            ("GET", "/openapi/order.json", Public),
            ("GET", "/openapi.json", Public),
            // admin
            ("POST", "/api/v1/products", Admin),
            ("PUT", "/api/v1/products/7", Admin),
            ("PATCH", "/api/v1/products/7", Admin),
            ("DELETE", "/api/v1/products/7", Admin),
            ("PUT", "/api/v1/inventory/items/SKU-1", Admin),
            ("POST", "/api/v1/inventory/items", Admin),
            ("DELETE", "/api/v1/inventory/items/SKU-1", Admin),
            ("POST", "/api/v1/inventory/reservations", Admin),
            ("GET", "/api/v1/inventory/reservations/5", Admin),
            // seed compatibility
            ("POST", "/products", COMPAT_ADMIN),
            ("POST", "/orders", COMPAT),
            ("POST", "/customers", COMPAT),
            ("GET", "/customers/3", COMPAT),
            ("POST", "/payments", COMPAT),
            ("PUT", "/payments/3/confirm", COMPAT),
            ("GET", "/inventory/stock/3", COMPAT),
            ("PUT", "/inventory/stock", COMPAT_ADMIN),
            ("POST", "/shipping", COMPAT),
            ("PUT", "/shipping/4", COMPAT),
            ("GET", "/orders/product/3", COMPAT),
            ("GET", "/api/v1/stock/", COMPAT),
            ("GET", "/api/v1/stock/SKU-ABC", COMPAT),
            ("POST", "/api/v1/stock/items", COMPAT_ADMIN),
            ("POST", "/api/v1/stock/reserve", COMPAT_ADMIN),
            ("POST", "/api/v1/stock/release", COMPAT_ADMIN),
            ("POST", "/api/v1/payments/authorize", COMPAT),
            ("POST", "/api/v1/orders/", COMPAT),
            ("GET", "/api/v1/orders/", COMPAT),
            ("GET", "/api/v1/orders/1", COMPAT),
            // everything else: a token
            ("POST", "/orders/order", AUTH),
            ("POST", "/orders/paid", AUTH),
            ("GET", "/orders", AUTH),
            ("GET", "/orders/1", AUTH),
            ("POST", "/api/v1/orders", AUTH),
            ("GET", "/api/v1/orders", AUTH),
            ("POST", "/api/v1/orders/1/cancel", AUTH),
            ("DELETE", "/api/v1/orders/1", AUTH),
            ("PUT", "/api/v1/orders/", AUTH),
            ("GET", "/api/v1/orders/1/x", AUTH),
            ("GET", "/api/v1/customers/me", AUTH),
            ("GET", "/api/v1/customers/register", AUTH),
            ("POST", "/api/v1/customers/register/x", AUTH),
            ("GET", "/users/user/login", AUTH),
            ("GET", "/api/v1/inventory/items", AUTH),
            ("GET", "/api/v1/payments", AUTH),
            ("POST", "/api/v1/payments/authorize/x", AUTH),
            ("GET", "/api/v1/shipments", AUTH),
            ("GET", "/api/v1/notifications", AUTH),
            ("GET", "/orders/product/", AUTH),
            ("GET", "/orders/product/3/x", AUTH),
            ("POST", "/orders/product/3", AUTH),
            ("GET", "/productsx", AUTH),
            ("POST", "/docs", AUTH),
            ("GET", "/nowhere", AUTH),
        ];
        for (method, path, want) in cases {
            assert_eq!(access(method, path), *want, "{method} {path}");
        }
    }

    #[test]
    fn segment_patterns() {
        let p = Segments("/a/{id}");
        assert!(p.matches("/a/1"));
        assert!(!p.matches("/a/"));
        assert!(!p.matches("/a"));
        assert!(!p.matches("/a/1/"));
        assert!(!p.matches("/b/1"));
        assert!(Exact("/a/").matches("/a/") && !Exact("/a/").matches("/a"));
        assert!(Prefix("/a").matches("/a/b") && !Prefix("/a").matches("/ab"));
    }

    #[test]
    fn decisions() {
        use Decision::*;
        let customer = Some(false);
        let admin = Some(true);
        for open in [false, true] {
            assert_eq!(decide(Public, None, open), Allow);
            assert_eq!(decide(Public, customer, open), Allow);
            assert_eq!(decide(AUTH, None, open), Unauthenticated);
            assert_eq!(decide(AUTH, customer, open), Allow);
            assert_eq!(decide(Admin, None, open), Unauthenticated);
            assert_eq!(decide(Admin, customer, open), Forbidden);
            assert_eq!(decide(Admin, admin, open), Allow);
        }
        // The seed routes: open with the switch, otherwise like everything else.
        for compat in [COMPAT, COMPAT_ADMIN] {
            assert_eq!(decide(compat, None, true), Allow);
            assert_eq!(decide(compat, customer, true), Allow);
            assert_eq!(decide(compat, None, false), Unauthenticated);
            assert_eq!(decide(compat, admin, false), Allow);
        }
        assert_eq!(decide(COMPAT, customer, false), Allow);
        assert_eq!(decide(COMPAT_ADMIN, customer, false), Forbidden);
    }
}
