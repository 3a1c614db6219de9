//! Who may call each route of the order service (see
//! `sales_platform::identity::access`). Orders are for signed-in customers (their
//! own) and admins; seed 004's one-call order and seed 003's routes follow the seeds'
//! rights while they are open: a caller without an account sees only orders placed
//! without one, as in those seeds.

use sales_platform::identity::access::{Access::*, RouteRule, rule};

pub const POLICY: &[RouteRule] = &[
    rule("POST", "/api/v1/orders", SignedIn),
    rule("GET", "/api/v1/orders", SignedIn),
    rule("GET", "/api/v1/orders/{id}", Seed),
    rule("POST", "/api/v1/orders/{id}/pay", SignedIn),
    rule("POST", "/api/v1/orders/{id}/cancel", SignedIn),
    // Seed 004 (trailing slash).
    rule("POST", "/api/v1/orders/", Seed),
    rule("GET", "/api/v1/orders/", Seed),
    // Seed 000: its own order routes need a token in seed 000 too (and its code's
    // Kafka-named twins of them).
    rule("POST", "/orders/order", SignedIn),
    rule("POST", "/orders/orderkafka", SignedIn),
    rule("POST", "/orders/paid", SignedIn),
    rule("POST", "/orders/paidkafka", SignedIn),
    // Seed 002/003.
    rule("POST", "/orders", Seed),
    rule("GET", "/orders/product/{product_id}", Seed),
];
