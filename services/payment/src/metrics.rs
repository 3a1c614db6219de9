//! The payment service's business metrics.

use prometheus::{IntCounterVec, IntGauge};
use sales_contracts::Money;
use sales_platform::metrics::Metrics;

use crate::payment_status::{PaymentStatus, as_str};
use crate::provider::Operation;

#[derive(Clone)]
pub struct PaymentMetrics {
    /// `payments_total{status}`: payments entering each status.
    pub payments: IntCounterVec,
    /// `payment_amount_minor_units_total{currency, status}`: amounts confirmed
    /// (taken) and refunded (given back), in minor units of the currency.
    pub amounts: IntCounterVec,
    /// `payment_provider_calls_total{operation, outcome}`: calls to the provider,
    /// `approved`, `declined` or `no_answer`.
    pub provider_calls: IntCounterVec,
    /// `payment_provider_calls_in_doubt`: calls written down and still unanswered
    /// after several tries (the payment may or may not have moved money).
    pub calls_in_doubt: IntGauge,
}

impl PaymentMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        let m = PaymentMetrics {
            payments: metrics.counter_vec(
                "payments_total",
                "Payments entering each status",
                &["status"],
            ),
            amounts: metrics.counter_vec(
                "payment_amount_minor_units_total",
                "Amounts of payments confirmed and refunded, in minor units of the currency",
                &["currency", "status"],
            ),
            provider_calls: metrics.counter_vec(
                "payment_provider_calls_total",
                "Calls to the payment provider, by operation and outcome (approved, declined, no_answer)",
                &["operation", "outcome"],
            ),
            calls_in_doubt: metrics.gauge(
                "payment_provider_calls_in_doubt",
                "Provider calls written down and still unanswered after several tries",
            ),
        };
        // Every status exists from the start, at 0.
        for status in [
            PaymentStatus::Pending,
            PaymentStatus::Authorized,
            PaymentStatus::Declined,
            PaymentStatus::Confirmed,
            PaymentStatus::Refunded,
        ] {
            m.payments.with_label_values(&[as_str(status)]);
        }
        m
    }

    /// A call to the provider ended with `outcome`.
    pub fn provider_call(&self, operation: Operation, outcome: &str) {
        self.provider_calls
            .with_label_values(&[operation.as_str(), outcome])
            .inc();
    }

    /// A payment of `amount` entered `status`.
    pub fn entered(&self, status: PaymentStatus, amount: Money) {
        self.payments.with_label_values(&[as_str(status)]).inc();
        if matches!(status, PaymentStatus::Confirmed | PaymentStatus::Refunded)
            && let Ok(minor) = u64::try_from(amount.amount)
        {
            self.amounts
                .with_label_values(&[amount.currency.as_str(), as_str(status)])
                .inc_by(minor);
        }
    }
}
