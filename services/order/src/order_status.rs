//! The order state machine: every status an order can be in and every legal move.
//! An illegal move is an error the API answers with 409, never a silent overwrite.
//!
//! ```text
//!            pay            ship           deliver
//! PENDING ────────> CONFIRMED ──────> SHIPPED ────────> DELIVERED
//!    │  \
//!    │   \ payment declined
//!    │    └──────> FAILED
//!    │ cancel (customer, or not paid in time)
//!    └───────────> CANCELLED
//! ```
//!
//! The names are seed 004's, which the API shares: seed 000 calls `PENDING`
//! "unpaid" and `CONFIRMED` "paid".

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum OrderStatus {
    /// Placed, stock held, waiting for payment (seed 000: unpaid).
    Pending,
    /// Paid (seed 000: paid).
    Confirmed,
    /// Payment declined; the stock went back.
    Failed,
    /// Cancelled by the customer or for not being paid in time; the stock went back.
    Cancelled,
    /// On its way.
    Shipped,
    /// Arrived.
    Delivered,
}

/// What can happen to an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderEvent {
    Pay,
    DeclinePayment,
    Cancel,
    Ship,
    Deliver,
}

impl OrderEvent {
    /// The verb, for error messages: "order 5 is CANCELLED and cannot be paid".
    pub fn past_participle(self) -> &'static str {
        match self {
            OrderEvent::Pay => "paid",
            OrderEvent::DeclinePayment => "declined",
            OrderEvent::Cancel => "cancelled",
            OrderEvent::Ship => "shipped",
            OrderEvent::Deliver => "delivered",
        }
    }
}

/// A move the state machine does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("order is {} and cannot be {}", .from.as_str(), .event.past_participle())]
pub struct IllegalTransition {
    pub from: OrderStatus,
    pub event: OrderEvent,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 6] = [
        OrderStatus::Pending,
        OrderStatus::Confirmed,
        OrderStatus::Failed,
        OrderStatus::Cancelled,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Confirmed => "CONFIRMED",
            OrderStatus::Failed => "FAILED",
            OrderStatus::Cancelled => "CANCELLED",
            OrderStatus::Shipped => "SHIPPED",
            OrderStatus::Delivered => "DELIVERED",
        }
    }

    pub fn parse(s: &str) -> Option<OrderStatus> {
        OrderStatus::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
    }

    /// Where `event` takes an order in this status, if it may happen at all.
    pub fn on(self, event: OrderEvent) -> Result<OrderStatus, IllegalTransition> {
        use OrderEvent::*;
        use OrderStatus::*;
        match (self, event) {
            (Pending, Pay) => Ok(Confirmed),
            (Pending, DeclinePayment) => Ok(Failed),
            (Pending, Cancel) => Ok(Cancelled),
            (Confirmed, Ship) => Ok(Shipped),
            (Shipped, Deliver) => Ok(Delivered),
            (from, event) => Err(IllegalTransition { from, event }),
        }
    }

    /// No event moves an order out of this status.
    pub fn is_final(self) -> bool {
        [
            OrderEvent::Pay,
            OrderEvent::DeclinePayment,
            OrderEvent::Cancel,
            OrderEvent::Ship,
            OrderEvent::Deliver,
        ]
        .into_iter()
        .all(|e| self.on(e).is_err())
    }
}

/// Where the order's payment stands (seed 004's `payment_status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum PaymentStatus {
    Pending,
    Succeeded,
    Failed,
    Refunded,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "PENDING",
            PaymentStatus::Succeeded => "SUCCEEDED",
            PaymentStatus::Failed => "FAILED",
            PaymentStatus::Refunded => "REFUNDED",
        }
    }

    pub fn parse(s: &str) -> Option<PaymentStatus> {
        [
            PaymentStatus::Pending,
            PaymentStatus::Succeeded,
            PaymentStatus::Failed,
            PaymentStatus::Refunded,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::OrderEvent::*;
    use super::OrderStatus::*;
    use super::*;

    #[test]
    fn the_happy_path() {
        let s = Pending.on(Pay).unwrap();
        let s = s.on(Ship).unwrap();
        assert_eq!(s.on(Deliver).unwrap(), Delivered);
    }

    #[test]
    fn every_move_not_drawn_is_illegal() {
        let legal = [
            (Pending, Pay),
            (Pending, DeclinePayment),
            (Pending, Cancel),
            (Confirmed, Ship),
            (Shipped, Deliver),
        ];
        for from in OrderStatus::ALL {
            for event in [Pay, DeclinePayment, Cancel, Ship, Deliver] {
                assert_eq!(
                    from.on(event).is_ok(),
                    legal.contains(&(from, event)),
                    "{from:?} on {event:?}"
                );
            }
        }
    }

    #[test]
    fn paying_twice_or_after_cancel_is_refused_with_a_clear_message() {
        let err = Confirmed.on(Pay).unwrap_err();
        assert_eq!(err.to_string(), "order is CONFIRMED and cannot be paid");
        assert_eq!(
            Cancelled.on(Pay).unwrap_err().to_string(),
            "order is CANCELLED and cannot be paid"
        );
    }

    #[test]
    fn final_states() {
        assert!(Failed.is_final() && Cancelled.is_final() && Delivered.is_final());
        assert!(!Pending.is_final() && !Confirmed.is_final() && !Shipped.is_final());
    }

    #[test]
    fn names_round_trip() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(OrderStatus::parse("pending"), Some(Pending));
        assert_eq!(
            PaymentStatus::parse("SUCCEEDED"),
            Some(PaymentStatus::Succeeded)
        );
    }
}
