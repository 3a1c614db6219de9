//! Who may call each route of the product service (see
//! `sales_platform::identity::access`). Anyone the gateway lets through reads the
//! catalogue; admins write it; the seeds' routes follow the seeds' rights while they
//! are open.

use sales_platform::identity::access::{Access::*, RouteRule, rule};

pub const POLICY: &[RouteRule] = &[
    rule("GET", "/api/v1/products", AnyCaller),
    rule("POST", "/api/v1/products", Admin),
    rule("GET", "/api/v1/products/{id}", AnyCaller),
    rule("PUT", "/api/v1/products/{id}", Admin),
    // Seed 000: the catalogue with stock; seed 002: a product by anyone, one product.
    rule("GET", "/products", AnyCaller),
    rule("POST", "/products", SeedWhileOpen),
    rule("GET", "/products/{id}", AnyCaller),
];
