//! The shipment state machine: every status a shipment can be in and every legal
//! move. Anything else (backwards, skipping a step, repeating one) is an error the
//! API answers with 409, never a silent overwrite.
//!
//! ```text
//!          ship             deliver
//! pending ──────> shipped ──────────> delivered
//! ```
//!
//! The names are seed 002's (`pending`, `shipped`), which its `PUT /shipping/{id}`
//! sends as they are.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ShipmentStatus {
    /// Opened for a paid order; still in the warehouse.
    Pending,
    /// Left the warehouse (`shipped_at`), perhaps with a carrier and tracking number.
    Shipped,
    /// Arrived (`delivered_at`). Final.
    Delivered,
}

/// A move the state machine does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("shipment is {} and cannot move to {}; {}", .from.as_str(), .to.as_str(), .from.next_hint())]
pub struct IllegalTransition {
    pub from: ShipmentStatus,
    pub to: ShipmentStatus,
}

impl ShipmentStatus {
    pub const ALL: [ShipmentStatus; 3] = [
        ShipmentStatus::Pending,
        ShipmentStatus::Shipped,
        ShipmentStatus::Delivered,
    ];

    /// The statuses a shipment can be moved to (`PUT /shipping/{id}`).
    pub const TARGETS: [ShipmentStatus; 2] = [ShipmentStatus::Shipped, ShipmentStatus::Delivered];

    pub const fn as_str(self) -> &'static str {
        match self {
            ShipmentStatus::Pending => "pending",
            ShipmentStatus::Shipped => "shipped",
            ShipmentStatus::Delivered => "delivered",
        }
    }

    /// Case-insensitive; surrounding spaces ignored.
    pub fn parse(s: &str) -> Option<ShipmentStatus> {
        let s = s.trim();
        ShipmentStatus::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
    }

    /// The one status this one may move to, if any.
    pub const fn next(self) -> Option<ShipmentStatus> {
        match self {
            ShipmentStatus::Pending => Some(ShipmentStatus::Shipped),
            ShipmentStatus::Shipped => Some(ShipmentStatus::Delivered),
            ShipmentStatus::Delivered => None,
        }
    }

    /// Move to `to` if that is the next step; otherwise say why not.
    pub fn move_to(self, to: ShipmentStatus) -> Result<ShipmentStatus, IllegalTransition> {
        match self.next() {
            Some(next) if next == to => Ok(to),
            _ => Err(IllegalTransition { from: self, to }),
        }
    }

    /// What may happen next, for error messages.
    pub fn next_hint(self) -> String {
        match self.next() {
            Some(next) => format!(
                "the only move from {} is to {}",
                self.as_str(),
                next.as_str()
            ),
            None => format!("{} is final", self.as_str()),
        }
    }

    /// `"a, b, c"` for error messages.
    pub fn list(statuses: &[ShipmentStatus]) -> String {
        statuses
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::fmt::Display for ShipmentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::ShipmentStatus::*;
    use super::*;

    #[test]
    fn the_happy_path() {
        let s = Pending.move_to(Shipped).unwrap();
        assert_eq!(s.move_to(Delivered).unwrap(), Delivered);
    }

    #[test]
    fn every_move_not_drawn_is_illegal() {
        let legal = [(Pending, Shipped), (Shipped, Delivered)];
        for from in ShipmentStatus::ALL {
            for to in ShipmentStatus::ALL {
                assert_eq!(
                    from.move_to(to).is_ok(),
                    legal.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }

    #[test]
    fn refusals_name_the_current_status() {
        assert_eq!(
            Pending.move_to(Delivered).unwrap_err().to_string(),
            "shipment is pending and cannot move to delivered; the only move from pending is to shipped"
        );
        assert_eq!(
            Delivered.move_to(Shipped).unwrap_err().to_string(),
            "shipment is delivered and cannot move to shipped; delivered is final"
        );
        assert_eq!(
            Shipped.move_to(Shipped).unwrap_err().to_string(),
            "shipment is shipped and cannot move to shipped; the only move from shipped is to delivered"
        );
    }

    #[test]
    fn names_round_trip() {
        for s in ShipmentStatus::ALL {
            assert_eq!(ShipmentStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(ShipmentStatus::parse(" SHIPPED "), Some(Shipped));
        assert_eq!(ShipmentStatus::parse("lost"), None);
        assert_eq!(
            ShipmentStatus::list(&ShipmentStatus::TARGETS),
            "shipped, delivered"
        );
    }
}
