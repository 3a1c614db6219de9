//! Who may call each route of the customer service (see
//! `sales_platform::identity::access`). Signing up and logging in are open to any
//! caller the gateway lets through; profiles are for their owner and admins; the
//! seeds' routes follow the seeds' rights while they are open.

use sales_platform::identity::access::{Access::*, RouteRule, rule};

pub const POLICY: &[RouteRule] = &[
    rule("POST", "/api/v1/customers/register", AnyCaller),
    rule("POST", "/api/v1/customers/login", AnyCaller),
    rule("POST", "/api/v1/customers/logout", SignedIn),
    rule("PUT", "/api/v1/customers/me/password", SignedIn),
    rule("GET", "/api/v1/customers/me", SignedIn),
    rule("GET", "/api/v1/customers", Admin),
    rule("GET", "/api/v1/customers/{id}", SignedIn),
    rule("PUT", "/api/v1/customers/{id}", SignedIn),
    // Seed 000: its registration answers 409 for a taken email (telling which
    // emails have accounts), so it is open only while the seeds' routes are.
    rule("POST", "/users/user/register", SeedWhileOpen),
    rule("POST", "/users/user/login", AnyCaller),
    // Seed 002: profiles without accounts.
    rule("POST", "/customers", Seed),
    rule("GET", "/customers/{id}", Seed),
];
