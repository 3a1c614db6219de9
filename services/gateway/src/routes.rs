//! Which service answers which path: the routing table, as data.
//!
//! A prefix matches the path itself and everything below it (`/orders` matches
//! `/orders`, `/orders/` and `/orders/7`, never `/ordersX`); the longest matching
//! prefix wins. Path and query go to the service unchanged.

use std::fmt;

/// A service behind the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Upstream {
    Product,
    Order,
    Customer,
    Payment,
    Inventory,
    Shipping,
    Notification,
}

impl Upstream {
    pub const ALL: [Upstream; 7] = [
        Upstream::Product,
        Upstream::Order,
        Upstream::Customer,
        Upstream::Payment,
        Upstream::Inventory,
        Upstream::Shipping,
        Upstream::Notification,
    ];

    /// The service's name, as in metric labels, errors and `/openapi/{name}.json`.
    pub fn name(self) -> &'static str {
        match self {
            Upstream::Product => "product",
            Upstream::Order => "order",
            Upstream::Customer => "customer",
            Upstream::Payment => "payment",
            Upstream::Inventory => "inventory",
            Upstream::Shipping => "shipping",
            Upstream::Notification => "notification",
        }
    }

    pub fn from_name(name: &str) -> Option<Upstream> {
        Upstream::ALL.into_iter().find(|u| u.name() == name)
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The routing table: path prefix -> service.
pub const ROUTES: &[(&str, Upstream)] = &[
    ("/api/v1/products", Upstream::Product),
    ("/products", Upstream::Product),
    ("/api/v1/orders", Upstream::Order),
    ("/orders", Upstream::Order),
    ("/api/v1/customers", Upstream::Customer),
    ("/customers", Upstream::Customer),
    ("/users", Upstream::Customer),
    ("/api/v1/payments", Upstream::Payment),
    ("/payments", Upstream::Payment),
    ("/api/v1/inventory", Upstream::Inventory),
    ("/api/v1/stock", Upstream::Inventory),
    ("/inventory", Upstream::Inventory),
    ("/api/v1/shipments", Upstream::Shipping),
    ("/shipping", Upstream::Shipping),
    ("/api/v1/notifications", Upstream::Notification),
];

/// Does `prefix` cover `path` (the path itself or anything below it)?
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The service for `path` (no query string), by longest matching prefix.
pub fn route(path: &str) -> Option<Upstream> {
    route_in(ROUTES, path)
}

/// [`route`] over any table.
pub fn route_in(table: &[(&str, Upstream)], path: &str) -> Option<Upstream> {
    matching(table, path).map(|(_, upstream)| upstream)
}

/// The prefix that routes `path`: the gateway's `route` metric label (`/api/v1/orders…`).
pub fn matched_prefix(path: &str) -> Option<&'static str> {
    matching(ROUTES, path).map(|(prefix, _)| prefix)
}

fn matching<'a>(table: &[(&'a str, Upstream)], path: &str) -> Option<(&'a str, Upstream)> {
    table
        .iter()
        .filter(|(prefix, _)| prefix_matches(prefix, path))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(prefix, upstream)| (*prefix, *upstream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prefix_routes_to_its_service() {
        for (prefix, upstream) in ROUTES {
            assert_eq!(route(prefix), Some(*upstream), "{prefix}");
            assert_eq!(route(&format!("{prefix}/")), Some(*upstream), "{prefix}/");
            assert_eq!(route(&format!("{prefix}/7")), Some(*upstream), "{prefix}/7");
        }
    }

    #[test]
    fn routes_of_the_seeds() {
        use Upstream::*;
        let cases = [
            ("/api/v1/products/12", Product),
            ("/products", Product),
            ("/api/v1/orders", Order),
            ("/api/v1/orders/", Order),
            ("/api/v1/orders/5/cancel", Order),
            ("/orders/order", Order),
            ("/orders/paid", Order),
            ("/orders/product/3", Order),
            ("/users/user/login", Customer),
            ("/api/v1/customers/register", Customer),
            ("/customers", Customer),
            ("/api/v1/payments/authorize", Payment),
            ("/payments/4/confirm", Payment),
            ("/api/v1/stock/reserve", Inventory),
            ("/api/v1/inventory/items/SKU-1", Inventory),
            ("/inventory/stock/3", Inventory),
            ("/shipping/9", Shipping),
            ("/api/v1/shipments", Shipping),
            ("/api/v1/notifications", Notification),
        ];
        for (path, upstream) in cases {
            assert_eq!(route(path), Some(upstream), "{path}");
        }
    }

    #[test]
    fn unknown_paths_and_partial_segments_route_nowhere() {
        for path in [
            "/",
            "",
            "/api",
            "/api/v1",
            "/api/v1/reservations",
            "/productsX",
            "/api/v1/orders-archive",
            "/orderss/1",
            "/Products",
            "/health/x",
        ] {
            assert_eq!(route(path), None, "{path}");
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let table = [
            ("/api", Upstream::Customer),
            ("/api/v1/orders/archive", Upstream::Notification),
            ("/api/v1/orders", Upstream::Order),
        ];
        assert_eq!(route_in(&table, "/api/v1/orders/1"), Some(Upstream::Order));
        assert_eq!(
            route_in(&table, "/api/v1/orders/archive/1"),
            Some(Upstream::Notification)
        );
        assert_eq!(
            route_in(&table, "/api/v1/ordersx"),
            Some(Upstream::Customer)
        );
        assert_eq!(route_in(&table, "/apix"), None);
    }

    #[test]
    fn no_two_prefixes_are_equal() {
        let mut prefixes: Vec<_> = ROUTES.iter().map(|(p, _)| *p).collect();
        prefixes.sort_unstable();
        prefixes.dedup();
        assert_eq!(prefixes.len(), ROUTES.len());
    }

    #[test]
    fn names_round_trip() {
        for upstream in Upstream::ALL {
            assert_eq!(Upstream::from_name(upstream.name()), Some(upstream));
        }
        assert_eq!(Upstream::from_name("gateway"), None);
    }
}
