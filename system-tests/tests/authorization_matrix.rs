//! Who may call what, every cell of it: each operation of each service's OpenAPI
//! document (and the gateway's), called straight at the service (as a pod in the
//! namespace would) and through the gateway, by eleven callers: no credential,
//! someone without an account, customers A and B, an admin, the order service, and
//! tokens that are forged, `alg: none`, expired, for another audience, or revoked.
//!
//! The expected answers come from [`RULES`], written here from the issue and the
//! docs, not read from the services' own tables: the two must agree. An operation
//! without a row fails the test, so a new route cannot slip in without a rule.
//! The seeds' routes are closed, as the charts and the operator have them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use sales_platform::identity::claims::{Audience, OnBehalfOf, TokenClaims};
use sales_platform::identity::keys::{SigningKeys, generate_pem};
use sales_platform::identity::service_audience;
use serde_json::{Value, json};
use system_tests::{ADMIN_ID, Service, System, SystemOptions, Who};

/// What a service asks of the caller, as this test understands the issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    /// A public document (JWKS): 200 for anyone, credential or not.
    Open,
    /// The identity provider's OAuth endpoints: they take client credentials (in a
    /// form) only.
    ClientCredentials,
    /// Anyone the gateway lets through, and services.
    Any,
    /// Signed-in customers and admins.
    SignedIn,
    /// A's own thing: A and admins; B is told it does not exist.
    OwnedByA,
    Admin,
    /// Admins and the order service (its scope).
    AdminOrOrder,
    /// A seed's route (closed): customers and admins.
    Seed,
    /// A seed's route, and the thing is A's: B is told it does not exist.
    SeedOwnedByA,
    /// A seed's route that only the seeds' openness allows: admins.
    SeedWhileOpen,
    /// A seed's route that changes what customers only read: admins.
    SeedNoCustomers,
}

/// What the gateway's own policy asks, before the service does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Edge {
    Public,
    Token,
    Admin,
    /// A seed route, closed: a token.
    Seed,
    /// A seed route that writes, closed: an admin's token.
    SeedAdmin,
    /// No service has the path at the gateway (404).
    Unrouted,
    /// Served by the gateway itself, outside the gate.
    Own,
}

use Edge as E;
use Rule as R;

/// Every operation: (service, method, path) -> (the service's rule, the gateway's).
const RULES: &[(&str, &str, &str, Rule, Edge)] = &[
    // customer
    (
        "customer",
        "POST",
        "/api/v1/customers/register",
        R::Any,
        E::Public,
    ),
    (
        "customer",
        "POST",
        "/api/v1/customers/login",
        R::Any,
        E::Public,
    ),
    (
        "customer",
        "POST",
        "/api/v1/customers/logout",
        R::SignedIn,
        E::Token,
    ),
    (
        "customer",
        "PUT",
        "/api/v1/customers/me/password",
        R::SignedIn,
        E::Token,
    ),
    (
        "customer",
        "GET",
        "/api/v1/customers/me",
        R::SignedIn,
        E::Token,
    ),
    ("customer", "GET", "/api/v1/customers", R::Admin, E::Token),
    (
        "customer",
        "GET",
        "/api/v1/customers/{id}",
        R::OwnedByA,
        E::Token,
    ),
    (
        "customer",
        "PUT",
        "/api/v1/customers/{id}",
        R::OwnedByA,
        E::Token,
    ),
    (
        "customer",
        "POST",
        "/users/user/register",
        R::SeedWhileOpen,
        E::SeedAdmin,
    ),
    ("customer", "POST", "/users/user/login", R::Any, E::Public),
    ("customer", "POST", "/customers", R::Seed, E::Seed),
    (
        "customer",
        "GET",
        "/customers/{id}",
        R::SeedOwnedByA,
        E::Seed,
    ),
    ("customer", "GET", "/.well-known/jwks.json", R::Open, E::Own),
    (
        "customer",
        "POST",
        "/oauth/token",
        R::ClientCredentials,
        E::Unrouted,
    ),
    (
        "customer",
        "POST",
        "/oauth/introspect",
        R::ClientCredentials,
        E::Unrouted,
    ),
    // product
    ("product", "GET", "/api/v1/products", R::Any, E::Public),
    ("product", "POST", "/api/v1/products", R::Admin, E::Admin),
    ("product", "GET", "/api/v1/products/{id}", R::Any, E::Public),
    (
        "product",
        "PUT",
        "/api/v1/products/{id}",
        R::Admin,
        E::Admin,
    ),
    ("product", "GET", "/products", R::Any, E::Public),
    (
        "product",
        "POST",
        "/products",
        R::SeedWhileOpen,
        E::SeedAdmin,
    ),
    ("product", "GET", "/products/{id}", R::Any, E::Public),
    // order
    ("order", "POST", "/api/v1/orders", R::SignedIn, E::Token),
    ("order", "GET", "/api/v1/orders", R::SignedIn, E::Token),
    (
        "order",
        "GET",
        "/api/v1/orders/{id}",
        R::SeedOwnedByA,
        E::Seed,
    ),
    (
        "order",
        "POST",
        "/api/v1/orders/{id}/pay",
        R::OwnedByA,
        E::Token,
    ),
    (
        "order",
        "POST",
        "/api/v1/orders/{id}/cancel",
        R::OwnedByA,
        E::Token,
    ),
    ("order", "POST", "/api/v1/orders/", R::Seed, E::Seed),
    ("order", "GET", "/api/v1/orders/", R::Seed, E::Seed),
    ("order", "POST", "/orders/order", R::SignedIn, E::Token),
    ("order", "POST", "/orders/paid", R::SignedIn, E::Token),
    ("order", "POST", "/orders/orderkafka", R::SignedIn, E::Token),
    ("order", "POST", "/orders/paidkafka", R::SignedIn, E::Token),
    ("order", "POST", "/orders", R::Seed, E::Seed),
    (
        "order",
        "GET",
        "/orders/product/{product_id}",
        R::Seed,
        E::Seed,
    ),
    // payment
    (
        "payment",
        "POST",
        "/api/v1/payments/charge",
        R::AdminOrOrder,
        E::Token,
    ),
    ("payment", "POST", "/api/v1/payments", R::Admin, E::Token),
    ("payment", "GET", "/api/v1/payments", R::SignedIn, E::Token),
    (
        "payment",
        "GET",
        "/api/v1/payments/{id}",
        R::OwnedByA,
        E::Token,
    ),
    (
        "payment",
        "GET",
        "/api/v1/payments/orders/{order_id}",
        R::AdminOrOrder,
        E::Token,
    ),
    (
        "payment",
        "POST",
        "/api/v1/payments/{id}/authorize",
        R::Admin,
        E::Token,
    ),
    (
        "payment",
        "POST",
        "/api/v1/payments/{id}/confirm",
        R::Admin,
        E::Token,
    ),
    (
        "payment",
        "POST",
        "/api/v1/payments/{id}/refund",
        R::AdminOrOrder,
        E::Token,
    ),
    (
        "payment",
        "POST",
        "/api/v1/payments/authorize",
        R::SeedNoCustomers,
        E::Seed,
    ),
    ("payment", "POST", "/payments", R::SeedNoCustomers, E::Seed),
    (
        "payment",
        "PUT",
        "/payments/{id}/confirm",
        R::SeedNoCustomers,
        E::Seed,
    ),
    (
        "payment",
        "PUT",
        "/payments/{id}/refund",
        R::SeedNoCustomers,
        E::Seed,
    ),
    // inventory
    (
        "inventory",
        "GET",
        "/api/v1/inventory/items",
        R::Any,
        E::Token,
    ),
    (
        "inventory",
        "GET",
        "/api/v1/inventory/items/{sku}",
        R::Any,
        E::Token,
    ),
    (
        "inventory",
        "PUT",
        "/api/v1/inventory/items/{sku}",
        R::Admin,
        E::Admin,
    ),
    (
        "inventory",
        "POST",
        "/api/v1/inventory/reservations",
        R::AdminOrOrder,
        E::Admin,
    ),
    (
        "inventory",
        "GET",
        "/api/v1/inventory/reservations/{id}",
        R::AdminOrOrder,
        E::Admin,
    ),
    (
        "inventory",
        "POST",
        "/api/v1/inventory/reservations/{id}/release",
        R::AdminOrOrder,
        E::Admin,
    ),
    (
        "inventory",
        "POST",
        "/api/v1/inventory/reservations/{id}/commit",
        R::AdminOrOrder,
        E::Admin,
    ),
    (
        "inventory",
        "POST",
        "/api/v1/stock/items",
        R::SeedWhileOpen,
        E::SeedAdmin,
    ),
    ("inventory", "GET", "/api/v1/stock/", R::Seed, E::Seed),
    ("inventory", "GET", "/api/v1/stock/{sku}", R::Seed, E::Seed),
    (
        "inventory",
        "POST",
        "/api/v1/stock/reserve",
        R::SeedWhileOpen,
        E::SeedAdmin,
    ),
    (
        "inventory",
        "POST",
        "/api/v1/stock/release",
        R::SeedWhileOpen,
        E::SeedAdmin,
    ),
    (
        "inventory",
        "PUT",
        "/inventory/stock",
        R::SeedWhileOpen,
        E::SeedAdmin,
    ),
    (
        "inventory",
        "GET",
        "/inventory/stock/{product_id}",
        R::Seed,
        E::Seed,
    ),
    // shipping
    ("shipping", "POST", "/api/v1/shipments", R::Admin, E::Token),
    (
        "shipping",
        "GET",
        "/api/v1/shipments",
        R::SignedIn,
        E::Token,
    ),
    (
        "shipping",
        "GET",
        "/api/v1/shipments/{id}",
        R::OwnedByA,
        E::Token,
    ),
    (
        "shipping",
        "POST",
        "/api/v1/shipments/{id}/ship",
        R::Admin,
        E::Token,
    ),
    (
        "shipping",
        "POST",
        "/api/v1/shipments/{id}/deliver",
        R::Admin,
        E::Token,
    ),
    ("shipping", "POST", "/shipping", R::SeedNoCustomers, E::Seed),
    (
        "shipping",
        "GET",
        "/shipping/{id}",
        R::SeedOwnedByA,
        E::Seed,
    ),
    (
        "shipping",
        "PUT",
        "/shipping/{id}",
        R::SeedNoCustomers,
        E::Seed,
    ),
    // notification
    (
        "notification",
        "GET",
        "/api/v1/notifications",
        R::SignedIn,
        E::Token,
    ),
    // the gateway's own
    (
        "gateway",
        "GET",
        "/openapi/{service}.json",
        R::Any,
        E::Public,
    ),
    ("gateway", "GET", "/.well-known/jwks.json", R::Open, E::Own),
];

/// The callers of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    Nobody,
    /// Through the gateway without an account (only meaningful at a service).
    Anonymous,
    A,
    B,
    Admin,
    OrderService,
    Forged,
    AlgNone,
    Expired,
    WrongAudience,
    Revoked,
}

const CALLERS: [Caller; 11] = [
    Caller::Nobody,
    Caller::Anonymous,
    Caller::A,
    Caller::B,
    Caller::Admin,
    Caller::OrderService,
    Caller::Forged,
    Caller::AlgNone,
    Caller::Expired,
    Caller::WrongAudience,
    Caller::Revoked,
];

/// What a cell must answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    /// Anything but 401, 403 and 5xx: the caller got in (the answer may still be a
    /// 400 for the empty body, a 404, a 409...).
    In,
    /// Got in, and the thing is not theirs: 404 (reads and actions without a body) or
    /// the body's 400.
    NotTheirs,
    Status(u16),
}

impl Caller {
    fn bad_token(self) -> bool {
        matches!(
            self,
            Caller::Forged
                | Caller::AlgNone
                | Caller::Expired
                | Caller::WrongAudience
                | Caller::Revoked
        )
    }
}

/// At a service, straight.
fn at_service(rule: Rule, caller: Caller) -> Want {
    use Want::*;
    match rule {
        Rule::Open => return Status(200),
        // The empty JSON body is no token request: 400 before any client is checked.
        Rule::ClientCredentials => return Status(400),
        _ => {}
    }
    if caller == Caller::Nobody || caller.bad_token() {
        return Status(401);
    }
    match (rule, caller) {
        (_, Caller::Admin) => In,
        (Rule::Any, _) => In,
        (_, Caller::Anonymous) => Status(401),
        (Rule::AdminOrOrder, Caller::OrderService) => In,
        (_, Caller::OrderService) => Status(403),
        (Rule::SignedIn | Rule::Seed, _) => In,
        (Rule::OwnedByA | Rule::SeedOwnedByA, Caller::A) => In,
        (Rule::OwnedByA | Rule::SeedOwnedByA, _) => NotTheirs,
        (Rule::Admin | Rule::AdminOrOrder | Rule::SeedWhileOpen | Rule::SeedNoCustomers, _) => {
            Status(403)
        }
        (Rule::Open | Rule::ClientCredentials, _) => Status(401),
    }
}

/// Through the gateway.
fn at_gateway(edge: Edge, rule: Rule, caller: Caller) -> Want {
    use Want::*;
    if edge == Edge::Own {
        return Status(200);
    }
    // The gateway takes customers' access tokens only: a service's token, and a token
    // the gateway itself gave a service, are not for it.
    if caller.bad_token() || caller == Caller::OrderService {
        return Status(401);
    }
    if edge == Edge::Unrouted {
        return Status(404);
    }
    let customer = matches!(caller, Caller::A | Caller::B);
    match edge {
        Edge::Token | Edge::Seed if caller == Caller::Nobody => return Status(401),
        Edge::Admin | Edge::SeedAdmin if caller == Caller::Nobody => return Status(401),
        Edge::Admin | Edge::SeedAdmin if customer => return Status(403),
        _ => {}
    }
    // Past the gateway: the service sees an anonymous caller or the customer.
    let behind = if caller == Caller::Nobody {
        Caller::Anonymous
    } else {
        caller
    };
    at_service(rule, behind)
}

/// Everything the cells need: tokens and the ids of A's things.
struct Fixture {
    sku: String,
    product: i64,
    a: i64,
    b: i64,
    a_token: String,
    b_token: String,
    admin_token: String,
    revoked_token: String,
    order: i64,
    reservation: i64,
    payment: i64,
    shipment: i64,
}

impl Fixture {
    async fn make(sys: &System) -> Fixture {
        let admin_token = sys.admin_token().await;
        let sku = "MATRIX-1".to_owned();
        let product = sys.add_product_as(&admin_token, &sku, 500, 100).await;
        let (a, a_token) = sys.register("a@example.com", "A").await;
        let (b, b_token) = sys.register("b@example.com", "B").await;
        let (_, revoked_token) = sys.register("c@example.com", "C").await;
        let (status, _) = sys
            .call(
                Method::POST,
                "/api/v1/customers/logout",
                None,
                Some(&revoked_token),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let place = || async {
            let (status, order) = sys
                .call(
                    Method::POST,
                    "/api/v1/orders",
                    Some(json!({"items": [{"product_id": product, "quantity": 1}]})),
                    Some(&a_token),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{order}");
            order
        };
        let paid = place().await;
        let paid_id = paid["order_id"].as_i64().unwrap();
        let (status, body) = sys
            .call(
                Method::POST,
                &format!("/api/v1/orders/{paid_id}/pay"),
                None,
                Some(&a_token),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let pending = place().await;
        let find = |path: String| {
            let token = a_token.clone();
            async move {
                sales_testkit::eventually(&path.clone(), Duration::from_secs(20), || async {
                    let (_, list) = sys.call(Method::GET, &path, None, Some(&token)).await;
                    list[0]["id"].as_i64().or(list[0]["payment_id"].as_i64())
                })
                .await
            }
        };
        let payment = find(format!("/api/v1/payments?order_id={paid_id}")).await;
        let shipment = find(format!("/api/v1/shipments?order_id={paid_id}")).await;
        Fixture {
            sku,
            product,
            a,
            b,
            a_token,
            b_token,
            admin_token,
            revoked_token,
            order: pending["order_id"].as_i64().unwrap(),
            reservation: pending["reservation_id"].as_i64().unwrap(),
            payment,
            shipment,
        }
    }

    /// `path` with its parameters filled with A's things.
    fn fill(&self, path: &str) -> String {
        let id = if path.contains("customers") {
            self.a
        } else if path.contains("products") {
            self.product
        } else if path.contains("orders") {
            self.order
        } else if path.contains("payments") {
            self.payment
        } else if path.contains("reservations") {
            self.reservation
        } else {
            self.shipment
        };
        path.replace("{id}", &id.to_string())
            .replace("{sku}", &self.sku)
            .replace("{product_id}", &self.product.to_string())
            .replace("{order_id}", &self.order.to_string())
            .replace("{service}", "order")
    }
}

/// Tokens that must be refused, for `service` (`None`: the gateway).
fn bad_token(sys: &System, fixture: &Fixture, caller: Caller, service: Option<Service>) -> String {
    let stranger = SigningKeys::from_pem(&generate_pem().unwrap()).unwrap();
    let good_claims = || match service {
        Some(s) => TokenClaims::gateway(
            service_audience(s.name()),
            OnBehalfOf::Admin(ADMIN_ID),
            false,
            None,
            Duration::from_secs(60),
        ),
        None => TokenClaims::customer_access(
            ADMIN_ID,
            true,
            1,
            "x",
            "x@example.com",
            Duration::from_secs(60),
        ),
    };
    let sign = |claims: &TokenClaims| match service {
        Some(_) => sys.minter.sign_as_gateway(claims),
        None => sys.minter.sign_as_provider(claims),
    };
    match caller {
        Caller::Forged => stranger.sign(&good_claims()).unwrap(),
        Caller::AlgNone => {
            let good = sign(&good_claims());
            let payload = good.split('.').nth(1).unwrap().to_owned();
            format!(
                "{}.{payload}.",
                URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#)
            )
        }
        Caller::Expired => {
            let mut claims = good_claims();
            claims.iat -= 7200;
            claims.nbf -= 7200;
            claims.exp -= 7200;
            sign(&claims)
        }
        Caller::WrongAudience => match service {
            // A token the gateway gave another service.
            Some(s) => {
                let other = if s == Service::Order {
                    Service::Payment
                } else {
                    Service::Order
                };
                sys.token_for(other, Who::Admin(ADMIN_ID))
            }
            // A token for a service, presented to the gateway.
            None => {
                let mut claims = good_claims();
                claims.aud = Audience::One(service_audience("order"));
                sys.minter.sign_as_provider(&claims)
            }
        },
        Caller::Revoked => fixture.revoked_token.clone(),
        _ => unreachable!(),
    }
}

/// The `Authorization` a caller sends to `service` (`None`: the gateway).
fn credential(
    sys: &System,
    f: &Fixture,
    caller: Caller,
    service: Option<Service>,
) -> Option<String> {
    let direct = |who: Who| service.map(|s| sys.token_for(s, who));
    match caller {
        Caller::Nobody => None,
        Caller::Anonymous => direct(Who::Anonymous { seed_compat: false }),
        Caller::A => match service {
            Some(s) => Some(sys.token_for(s, Who::Customer(f.a))),
            None => Some(f.a_token.clone()),
        },
        Caller::B => match service {
            Some(s) => Some(sys.token_for(s, Who::Customer(f.b))),
            None => Some(f.b_token.clone()),
        },
        Caller::Admin => match service {
            Some(s) => Some(sys.token_for(s, Who::Admin(ADMIN_ID))),
            None => Some(f.admin_token.clone()),
        },
        Caller::OrderService => {
            let scopes: &'static [&'static str] = &["stock:reserve", "payments:charge"];
            let audience = service.unwrap_or(Service::Inventory);
            Some(sys.token_for(audience, Who::Service("order", scopes)))
        }
        bad => Some(bad_token(sys, f, bad, service)),
    }
}

fn service_named(name: &str) -> Service {
    Service::ALL.into_iter().find(|s| s.name() == name).unwrap()
}

/// Every (method, path) of a service's OpenAPI document but the probes.
async fn operations(sys: &System, service: Service) -> BTreeSet<(String, String)> {
    let doc: Value = sales_testkit::http_get(format!("{}/openapi.json", sys.url(service)))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if matches!(path.as_str(), "/health" | "/ready") {
            continue;
        }
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

fn check(want: Want, got: StatusCode, cell: &str, failures: &mut Vec<String>) {
    let code = got.as_u16();
    let ok = match want {
        Want::Status(s) => code == s,
        Want::In => !matches!(code, 401 | 403) && code < 500,
        Want::NotTheirs => matches!(code, 404 | 400 | 409 | 422),
    };
    if !ok {
        failures.push(format!("{cell}: wanted {want:?}, got {code}"));
    }
}

#[tokio::test]
async fn every_operation_times_every_caller() {
    let sys = System::start_with(SystemOptions {
        seed_compat_open: false,
        ..Default::default()
    })
    .await;
    let f = Fixture::make(&sys).await;
    let client = sales_testkit::http_client();

    // Every operation has a row, and every row an operation.
    let mut documented = BTreeSet::new();
    for service in Service::ALL {
        for (method, path) in operations(&sys, service).await {
            documented.insert((service.name().to_owned(), method, path));
        }
    }
    let ruled: BTreeSet<(String, String, String)> = RULES
        .iter()
        .map(|(s, m, p, _, _)| (s.to_string(), m.to_string(), p.to_string()))
        .collect();
    let unruled: Vec<_> = documented.difference(&ruled).collect();
    let gone: Vec<_> = ruled.difference(&documented).collect();
    assert!(
        unruled.is_empty(),
        "operations without a row in RULES: {unruled:?}"
    );
    assert!(gone.is_empty(), "rows of RULES for no operation: {gone:?}");

    // Logging out revokes the caller's tokens: those rows come last.
    let mut rows: Vec<_> = RULES.to_vec();
    rows.sort_by_key(|(_, _, path, _, _)| path.ends_with("/logout"));
    let mut failures = Vec::new();
    let mut cells = 0;
    for (service_name, method, path, rule, edge) in rows {
        let service = service_named(service_name);
        let filled = f.fill(path);
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let send = |base: String, token: Option<String>| {
            let mut r = client
                .request(method.clone(), format!("{base}{filled}"))
                .header("content-type", "application/json");
            if method != Method::GET {
                r = r.body("{}");
            }
            if let Some(token) = token {
                r = r.bearer_auth(token);
            }
            async move { r.send().await.unwrap().status() }
        };
        for caller in CALLERS {
            // Through the gateway first (someone without an account there is simply
            // no token): a logout straight at the service leaves the customer's own
            // token revoked.
            if caller != Caller::Anonymous {
                let token = credential(&sys, &f, caller, None);
                let got = send(sys.gateway(), token).await;
                check(
                    at_gateway(edge, rule, caller),
                    got,
                    &format!("{caller:?} {method} {filled} (gateway)"),
                    &mut failures,
                );
                cells += 1;
            }
            // Straight at the service (the gateway's own routes: at the gateway).
            if service != Service::Gateway {
                let token = credential(&sys, &f, caller, Some(service));
                let got = send(sys.url(service), token).await;
                check(
                    at_service(rule, caller),
                    got,
                    &format!("{caller:?} {method} {service_name}{filled} (direct)"),
                    &mut failures,
                );
                cells += 1;
            }
        }
    }
    assert!(cells > 1000, "only {cells} cells");
    assert!(
        failures.is_empty(),
        "{} of {cells} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    sys.stop().await;
}
