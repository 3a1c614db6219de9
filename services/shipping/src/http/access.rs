//! Who may call each route of the shipping service (see
//! `sales_platform::identity::access`). Customers read their own shipments; admins
//! open and move them; the seeds' routes follow the seeds' rights while they are open.

use sales_platform::identity::access::{Access::*, RouteRule, rule};

pub const POLICY: &[RouteRule] = &[
    rule("POST", "/api/v1/shipments", Admin),
    rule("GET", "/api/v1/shipments", SignedIn),
    rule("GET", "/api/v1/shipments/{id}", SignedIn),
    rule("POST", "/api/v1/shipments/{id}/ship", Admin),
    rule("POST", "/api/v1/shipments/{id}/deliver", Admin),
    // Seed 002.
    rule("POST", "/shipping", SeedWithoutAccount),
    rule("GET", "/shipping/{id}", Seed),
    rule("PUT", "/shipping/{id}", SeedWithoutAccount),
];
