//! The payment state machine: every legal move, in one place. An illegal move is an
//! error the API answers with 409 `invalid_transition`, never a silent overwrite.
//!
//! ```text
//!            authorize (approved)          capture             refund
//! pending ───────────────────────> authorized ──────> confirmed ──────> refunded
//!    │
//!    │ authorize (declined)
//!    └──────────────────────> declined
//! ```
//!
//! A pending payment becomes confirmed only through authorize-then-capture: confirming
//! (or charging) a pending payment authorizes it first, and it ends `declined` if the
//! authorizer declines. `declined` and `refunded` are final.
//!
//! The statuses are [`PaymentStatus`] from the contracts (seed 002 names `pending` and
//! `confirmed`); this module adds their text form and the moves.

pub use sales_contracts::api::payments::PaymentStatus;

use crate::authorizer::Decision;

/// The text stored in the database and shown in the API (`pending`, `confirmed`...).
pub fn as_str(status: PaymentStatus) -> &'static str {
    match status {
        PaymentStatus::Pending => "pending",
        PaymentStatus::Authorized => "authorized",
        PaymentStatus::Declined => "declined",
        PaymentStatus::Confirmed => "confirmed",
        PaymentStatus::Refunded => "refunded",
    }
}

pub const ALL: [PaymentStatus; 5] = [
    PaymentStatus::Pending,
    PaymentStatus::Authorized,
    PaymentStatus::Declined,
    PaymentStatus::Confirmed,
    PaymentStatus::Refunded,
];

pub fn parse(s: &str) -> Option<PaymentStatus> {
    ALL.into_iter().find(|st| as_str(*st) == s)
}

/// A move of the state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentMove {
    /// `pending -> authorized` when the authorizer approves, `pending -> declined` when not.
    Authorize(Outcome),
    /// `authorized -> confirmed`: the authorized amount is taken.
    Capture,
    /// `confirmed -> refunded`: the amount goes back.
    Refund,
}

/// The authorizer's answer without its reason (the reason is stored beside the status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Approved,
    Declined,
}

impl From<&Decision> for Outcome {
    fn from(d: &Decision) -> Self {
        match d {
            Decision::Approved => Outcome::Approved,
            Decision::Declined { .. } => Outcome::Declined,
        }
    }
}

impl PaymentMove {
    /// The verb, for error messages: "payment 5 is declined and cannot be confirmed".
    pub fn past_participle(self) -> &'static str {
        match self {
            PaymentMove::Authorize(_) => "authorized",
            PaymentMove::Capture => "confirmed",
            PaymentMove::Refund => "refunded",
        }
    }

    /// Where this move takes a payment in status `from`, if it may happen at all.
    pub fn apply(self, from: PaymentStatus) -> Result<PaymentStatus, IllegalTransition> {
        use PaymentStatus::*;
        match (from, self) {
            (Pending, PaymentMove::Authorize(Outcome::Approved)) => Ok(Authorized),
            (Pending, PaymentMove::Authorize(Outcome::Declined)) => Ok(Declined),
            (Authorized, PaymentMove::Capture) => Ok(Confirmed),
            (Confirmed, PaymentMove::Refund) => Ok(Refunded),
            (from, attempted) => Err(IllegalTransition { from, attempted }),
        }
    }
}

/// A move the state machine does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("is {} and cannot be {}", as_str(*.from), .attempted.past_participle())]
pub struct IllegalTransition {
    pub from: PaymentStatus,
    pub attempted: PaymentMove,
}

/// No move leaves this status.
pub fn is_final(status: PaymentStatus) -> bool {
    [
        PaymentMove::Authorize(Outcome::Approved),
        PaymentMove::Authorize(Outcome::Declined),
        PaymentMove::Capture,
        PaymentMove::Refund,
    ]
    .into_iter()
    .all(|m| m.apply(status).is_err())
}

/// Whether the authorizer approved this payment at some point (seed 004's `authorized`).
pub fn was_authorized(status: PaymentStatus) -> bool {
    matches!(
        status,
        PaymentStatus::Authorized | PaymentStatus::Confirmed | PaymentStatus::Refunded
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use PaymentStatus::*;

    const MOVES: [PaymentMove; 4] = [
        PaymentMove::Authorize(Outcome::Approved),
        PaymentMove::Authorize(Outcome::Declined),
        PaymentMove::Capture,
        PaymentMove::Refund,
    ];

    #[test]
    fn exactly_the_legal_moves_are_allowed() {
        let legal = [
            (Pending, MOVES[0], Authorized),
            (Pending, MOVES[1], Declined),
            (Authorized, MOVES[2], Confirmed),
            (Confirmed, MOVES[3], Refunded),
        ];
        for from in ALL {
            for m in MOVES {
                let expected = legal
                    .iter()
                    .find(|(f, mv, _)| *f == from && *mv == m)
                    .map(|(_, _, to)| *to);
                match expected {
                    Some(to) => assert_eq!(m.apply(from), Ok(to), "{from:?} {m:?}"),
                    None => assert_eq!(
                        m.apply(from),
                        Err(IllegalTransition { from, attempted: m }),
                        "{from:?} {m:?}"
                    ),
                }
            }
        }
    }

    #[test]
    fn pending_reaches_confirmed_only_through_authorized() {
        assert!(PaymentMove::Capture.apply(Pending).is_err());
        let authorized = PaymentMove::Authorize(Outcome::Approved)
            .apply(Pending)
            .ok();
        assert_eq!(
            authorized.and_then(|s| PaymentMove::Capture.apply(s).ok()),
            Some(Confirmed)
        );
    }

    #[test]
    fn final_statuses_and_messages() {
        assert!(is_final(Declined) && is_final(Refunded));
        assert!(!is_final(Pending) && !is_final(Authorized) && !is_final(Confirmed));
        let err = PaymentMove::Capture
            .apply(Declined)
            .err()
            .map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("is declined and cannot be confirmed"));
        for s in ALL {
            assert_eq!(parse(as_str(s)), Some(s));
            assert_eq!(
                serde_json::to_value(s).ok(),
                Some(serde_json::json!(as_str(s)))
            );
        }
        assert_eq!(parse("paid"), None);
    }
}
