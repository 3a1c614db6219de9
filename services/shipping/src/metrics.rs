//! The shipping service's business metrics.

use prometheus::IntCounterVec;
use sales_platform::metrics::Metrics;

use crate::status::ShipmentStatus;

#[derive(Clone)]
pub struct ShippingMetrics {
    /// `shipments_total{status}`: shipments entering each status.
    pub shipments: IntCounterVec,
}

impl ShippingMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        let shipments = metrics.counter_vec(
            "shipments_total",
            "Shipments entering each status",
            &["status"],
        );
        // Every series exists from the start, so rates and alerts see a zero.
        for status in ShipmentStatus::ALL {
            shipments.with_label_values(&[status.as_str()]);
        }
        ShippingMetrics { shipments }
    }

    pub fn status_entered(&self, status: ShipmentStatus) {
        self.shipments.with_label_values(&[status.as_str()]).inc();
    }
}
