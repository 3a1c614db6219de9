//! The customer service's business metrics.

use prometheus::{IntCounter, IntCounterVec};
use sales_platform::metrics::Metrics;

#[derive(Clone)]
pub struct CustomerMetrics {
    /// `customer_logins_total{outcome="success|failure"}`
    pub logins: IntCounterVec,
    /// `customer_registrations_total`: accounts opened (not seed 002's bare profiles).
    pub registrations: IntCounter,
    /// `customer_logins_throttled_total`: logins refused (429) before the password
    /// was checked, for too many failures of the account or the address.
    pub logins_throttled: IntCounter,
}

impl CustomerMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        let registrations = metrics
            .counter_vec(
                "customer_registrations_total",
                "Customer accounts registered",
                &[],
            )
            .with_label_values::<&str>(&[]);
        let logins = metrics.counter_vec(
            "customer_logins_total",
            "Login attempts by outcome: success, or failure (wrong email or password)",
            &["outcome"],
        );
        // Export both series from the start, so rates work before the first failure.
        logins.with_label_values(&["success"]);
        logins.with_label_values(&["failure"]);
        let logins_throttled = metrics
            .counter_vec(
                "customer_logins_throttled_total",
                "Logins refused for too many failures of the account or the client address",
                &[],
            )
            .with_label_values::<&str>(&[]);
        CustomerMetrics {
            logins,
            registrations,
            logins_throttled,
        }
    }

    pub fn login_throttled(&self) {
        self.logins_throttled.inc();
    }

    pub fn login(&self, success: bool) {
        let outcome = if success { "success" } else { "failure" };
        self.logins.with_label_values(&[outcome]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_from_the_start() {
        let m = Metrics::new("customer");
        let c = CustomerMetrics::new(&m);
        c.registrations.inc();
        c.login(false);
        let text = m.render();
        assert!(
            text.contains(r#"customer_registrations_total{service="customer"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"customer_logins_total{outcome="failure",service="customer"} 1"#));
        assert!(text.contains(r#"customer_logins_total{outcome="success",service="customer"} 0"#));
    }
}
