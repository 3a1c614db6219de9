//! The order service's business metrics (the "orders" and "revenue" panels of the
//! Grafana dashboards read these).

use prometheus::{IntCounterVec, IntGauge};
use sales_contracts::Money;
use sales_platform::metrics::Metrics;

use crate::order_status::OrderStatus;

#[derive(Clone)]
pub struct OrderMetrics {
    /// `orders_total{status}`: orders entering each status.
    pub orders: IntCounterVec,
    /// `orders_refused_total{reason}`: orders not made (`unavailable`, `unknown_items`,
    /// `too_many_unpaid_orders`, `too_many_reserved_units`).
    pub orders_refused: IntCounterVec,
    /// `order_revenue_minor_units_total{currency}`: paid order totals.
    pub revenue: IntCounterVec,
    /// `order_payments_unsettled`: charges started over 10 minutes ago whose outcome
    /// the order has not settled (`payment_reconciler`).
    pub payments_unsettled: IntGauge,
    /// `order_placements_abandoned_total{cause}`: orders given up after their stock was
    /// asked for and before they were stored, their stock given back: `refused` (the
    /// request failed), `expired` (its claim expired: a crash or a hung request).
    pub placements_abandoned: IntCounterVec,
}

impl OrderMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        let m = OrderMetrics {
            orders: metrics.counter_vec("orders_total", "Orders entering each status", &["status"]),
            orders_refused: metrics.counter_vec(
                "orders_refused_total",
                "Orders refused before they were made, by reason",
                &["reason"],
            ),
            revenue: metrics.counter_vec(
                "order_revenue_minor_units_total",
                "Totals of paid orders, in minor units of the currency",
                &["currency"],
            ),
            payments_unsettled: metrics.gauge(
                "order_payments_unsettled",
                "Charges started over 10 minutes ago whose outcome the order has not settled",
            ),
            placements_abandoned: metrics.counter_vec(
                "order_placements_abandoned_total",
                "Orders given up after their stock was asked for, before they were stored",
                &["cause"],
            ),
        };
        for cause in ["refused", "expired"] {
            m.placements_abandoned.with_label_values(&[cause]);
        }
        // Every status exists from the start, at 0, so the first order of each shows.
        for status in OrderStatus::ALL {
            m.orders.with_label_values(&[status.as_str()]);
        }
        for reason in [
            "unavailable",
            "unknown_items",
            "too_many_unpaid_orders",
            "too_many_reserved_units",
        ] {
            m.orders_refused.with_label_values(&[reason]);
        }
        m
    }

    pub fn status_entered(&self, status: OrderStatus) {
        self.orders.with_label_values(&[status.as_str()]).inc();
    }

    pub fn placements_abandoned(&self, cause: &str) {
        self.placements_abandoned.with_label_values(&[cause]).inc();
    }

    pub fn revenue(&self, total: Money) {
        if let Ok(amount) = u64::try_from(total.amount) {
            self.revenue
                .with_label_values(&[total.currency.as_str()])
                .inc_by(amount);
        }
    }
}
