//! The services of the system as the operator runs them: names, the database each
//! owns, whether it talks to the broker or Redis, which peers it calls, and the ports
//! its container listens on. This is the Kubernetes twin of `sales_testkit::launch`
//! (the local run); `tests/service_env.rs` checks the two and every service's `Config`
//! agree.

use std::fmt;

/// Port of every service's public API inside its container (`HTTP_ADDR`).
pub const HTTP_PORT: i32 = 8080;
/// Port of every service's admin endpoints: `/metrics`, dead letters (`ADMIN_ADDR`).
pub const ADMIN_PORT: i32 = 9090;
/// How long a service may take to finish its work after SIGTERM (`SHUTDOWN_GRACE`).
pub const SHUTDOWN_GRACE_SECONDS: i64 = 20;
/// How long an API pod keeps serving after Kubernetes starts removing it (its
/// `preStop` sleep), while the endpoints drop it everywhere; SIGTERM comes after. The
/// process's own drain window (`SHUTDOWN_DRAIN_DELAY`) is then 0: this is it.
pub const DRAIN_SECONDS: i64 = 5;
/// Kubernetes waits this long before killing a pod (counted from the start of
/// `preStop`): the drain window, the grace above, and a margin to flush the outbox
/// and the traces and close connections.
pub const TERMINATION_GRACE_SECONDS: i64 = DRAIN_SECONDS + SHUTDOWN_GRACE_SECONDS + 5;
const _: () = assert!(TERMINATION_GRACE_SECONDS > DRAIN_SECONDS + SHUTDOWN_GRACE_SECONDS);
/// Kubernetes waits this long before killing a consumer pod it scaled away: on SIGTERM
/// the consumer cancels its subscriptions at once, then has `SHUTDOWN_GRACE` to finish
/// and ack the messages it holds, and a margin to close its channels and connections.
/// Must exceed [`SHUTDOWN_GRACE_SECONDS`], or a pod could be killed with work in hand.
pub const CONSUMER_TERMINATION_GRACE_SECONDS: i64 = SHUTDOWN_GRACE_SECONDS + 10;
const _: () = assert!(CONSUMER_TERMINATION_GRACE_SECONDS > SHUTDOWN_GRACE_SECONDS);

/// A service of the system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AppService {
    Product,
    Order,
    Customer,
    Payment,
    Inventory,
    Shipping,
    Notification,
    Gateway,
}

impl AppService {
    pub const ALL: [AppService; 8] = [
        AppService::Product,
        AppService::Order,
        AppService::Customer,
        AppService::Payment,
        AppService::Inventory,
        AppService::Shipping,
        AppService::Notification,
        AppService::Gateway,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AppService::Product => "product",
            AppService::Order => "order",
            AppService::Customer => "customer",
            AppService::Payment => "payment",
            AppService::Inventory => "inventory",
            AppService::Shipping => "shipping",
            AppService::Notification => "notification",
            AppService::Gateway => "gateway",
        }
    }

    /// The image name under the repository prefix: `order-service`.
    pub fn image_name(self) -> String {
        format!("{}-service", self.name())
    }

    /// The service's own database; the gateway has none.
    pub fn database(self) -> Option<&'static str> {
        Some(match self {
            AppService::Product => "products",
            AppService::Order => "orders",
            AppService::Customer => "customers",
            AppService::Payment => "payments",
            AppService::Inventory => "inventory",
            AppService::Shipping => "shipping",
            AppService::Notification => "notifications",
            AppService::Gateway => return None,
        })
    }

    /// Services with a database, in [`AppService::ALL`] order.
    pub fn with_database() -> impl Iterator<Item = AppService> {
        Self::ALL.into_iter().filter(|s| s.database().is_some())
    }

    /// Talks to the broker, RabbitMQ or Kafka (publishes through its outbox, or
    /// consumes). Customer and payment are called over REST only; the gateway has no
    /// broker.
    pub fn uses_broker(self) -> bool {
        matches!(
            self,
            AppService::Product
                | AppService::Order
                | AppService::Inventory
                | AppService::Shipping
                | AppService::Notification
        )
    }

    /// Reads `REDIS_URL`: the caches of product and order, the gateway's rate limits
    /// and the customers' token versions (revocation), which the customer service
    /// publishes and the gateway reads.
    pub fn uses_redis(self) -> bool {
        matches!(
            self,
            AppService::Product | AppService::Order | AppService::Customer | AppService::Gateway
        )
    }

    /// Asks the customer service (the identity provider) for service tokens with a
    /// client secret of its own: every service but the customer service itself.
    pub fn is_service_client(self) -> bool {
        self != AppService::Customer
    }

    /// The services with a client secret, in [`AppService::ALL`] order.
    pub fn service_clients() -> impl Iterator<Item = AppService> {
        Self::ALL.into_iter().filter(|s| s.is_service_client())
    }

    /// Consumes queues (and so can be scaled on queue depth).
    pub fn is_consumer(self) -> bool {
        sales_contracts::topology::subscriptions_of(self.name())
            .next()
            .is_some()
    }

    /// The peers this service calls over REST (it gets their `*_SERVICE_URL`).
    pub fn calls(self) -> &'static [AppService] {
        match self {
            AppService::Order => &[
                AppService::Product,
                AppService::Inventory,
                AppService::Payment,
            ],
            AppService::Product => &[AppService::Inventory],
            AppService::Gateway => &[
                AppService::Product,
                AppService::Order,
                AppService::Customer,
                AppService::Payment,
                AppService::Inventory,
                AppService::Shipping,
                AppService::Notification,
            ],
            _ => &[],
        }
    }

    /// The services that call this one.
    pub fn callers(self) -> impl Iterator<Item = AppService> {
        Self::ALL
            .into_iter()
            .filter(move |caller| caller.calls().contains(&self))
    }

    /// The variable a caller reads this service's base URL from: `ORDER_SERVICE_URL`.
    pub fn url_variable(self) -> String {
        format!("{}_SERVICE_URL", self.name().to_uppercase())
    }
}

impl fmt::Display for AppService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumers_are_the_services_with_queues() {
        let consumers: Vec<_> = AppService::ALL
            .into_iter()
            .filter(|s| s.is_consumer())
            .collect();
        assert_eq!(
            consumers,
            [
                AppService::Order,
                AppService::Inventory,
                AppService::Shipping,
                AppService::Notification
            ]
        );
        assert!(consumers.iter().all(|s| s.uses_broker()));
    }

    #[test]
    fn callers_are_the_inverse_of_calls() {
        let callers: Vec<_> = AppService::Inventory.callers().collect();
        assert_eq!(
            callers,
            [AppService::Product, AppService::Order, AppService::Gateway]
        );
        assert_eq!(AppService::Gateway.callers().count(), 0);
    }
}
