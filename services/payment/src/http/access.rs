//! Who may call each route of the payment service (see
//! `sales_platform::identity::access`). Customers read their own payments; only the
//! order service (scope `payments:charge`) and admins charge and refund; the seeds'
//! routes follow the seeds' rights while they are open.

use sales_platform::identity::access::{Access::*, RouteRule, rule};

pub const POLICY: &[RouteRule] = &[
    rule(
        "POST",
        "/api/v1/payments/charge",
        AdminOrService("payments:charge"),
    ),
    rule("POST", "/api/v1/payments", Admin),
    rule("GET", "/api/v1/payments", SignedIn),
    rule("GET", "/api/v1/payments/{id}", SignedIn),
    rule(
        "GET",
        "/api/v1/payments/orders/{order_id}",
        AdminOrService("payments:charge"),
    ),
    rule("POST", "/api/v1/payments/{id}/authorize", Admin),
    rule("POST", "/api/v1/payments/{id}/confirm", Admin),
    rule(
        "POST",
        "/api/v1/payments/{id}/refund",
        AdminOrService("payments:charge"),
    ),
    // Seed 004: authorize a payment (no account in seed 004).
    rule("POST", "/api/v1/payments/authorize", SeedWithoutAccount),
    // Seed 002: payments that stand alone.
    rule("POST", "/payments", SeedWithoutAccount),
    rule("PUT", "/payments/{id}/confirm", SeedWithoutAccount),
    rule("PUT", "/payments/{id}/refund", SeedWithoutAccount),
];
