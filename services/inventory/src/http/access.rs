//! Who may call each route of the inventory (see `sales_platform::identity::access`).
//! Anyone the gateway lets through reads stock levels; admins set them; reservations
//! are the order service's business (scope `stock:reserve`) and admins'; the seeds'
//! routes follow the seeds' rights while they are open.

use sales_platform::identity::access::{Access::*, RouteRule, rule};

const RESERVE: sales_platform::identity::Access = AdminOrService("stock:reserve");

pub const POLICY: &[RouteRule] = &[
    rule("GET", "/api/v1/inventory/items", AnyCaller),
    rule("GET", "/api/v1/inventory/items/{sku}", AnyCaller),
    rule("PUT", "/api/v1/inventory/items/{sku}", Admin),
    rule("POST", "/api/v1/inventory/reservations", RESERVE),
    rule("GET", "/api/v1/inventory/reservations/{id}", RESERVE),
    rule(
        "POST",
        "/api/v1/inventory/reservations/{id}/release",
        RESERVE,
    ),
    rule(
        "POST",
        "/api/v1/inventory/reservations/{id}/commit",
        RESERVE,
    ),
    // Seed 004: its stock API (no accounts in seed 004).
    rule("POST", "/api/v1/stock/items", SeedWhileOpen),
    rule("GET", "/api/v1/stock/", Seed),
    rule("GET", "/api/v1/stock/{sku}", Seed),
    rule("POST", "/api/v1/stock/reserve", SeedWhileOpen),
    rule("POST", "/api/v1/stock/release", SeedWhileOpen),
    // Seed 002: take stock out, read it.
    rule("PUT", "/inventory/stock", SeedWhileOpen),
    rule("GET", "/inventory/stock/{product_id}", Seed),
];
