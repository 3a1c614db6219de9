//! The payment provider: where money really moves. The service talks to it only
//! through [`PaymentProvider`], the shape of a card processor's API (Stripe's, say):
//! every call carries an idempotency key, and the same key always gets the answer
//! of the first call with it, however often it is sent. Today the provider is
//! [`crate::simulated_provider`]; a real one is an adapter behind this trait.
//!
//! A call's outcome can be lost (a timeout, a crash after the provider acted):
//! [`ProviderError::NoAnswer`]. That is why every call is written down before it is
//! made (`crate::provider_calls`) and made again, with its key, until it is answered.

use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;
use sales_contracts::Money;

/// How long the service waits for the provider's answer before it counts the call
/// as unanswered (to be settled later).
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// What a call asks the provider to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Hold the amount on the card (seed 004's authorize, seed 002's two steps).
    Authorize,
    /// Take an amount held by an earlier authorization.
    Capture,
    /// Authorize and capture at once (the order service's charge).
    Charge,
    /// Give a captured amount back.
    Refund,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Authorize => "authorize",
            Operation::Capture => "capture",
            Operation::Charge => "charge",
            Operation::Refund => "refund",
        }
    }

    pub fn parse(s: &str) -> Option<Operation> {
        [
            Operation::Authorize,
            Operation::Capture,
            Operation::Charge,
            Operation::Refund,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }

    /// The key of this operation on a payment: one per payment and operation, since
    /// a payment is authorized, captured, charged and refunded at most once each.
    pub fn idempotency_key(self, payment_id: i64) -> String {
        format!("payment-{payment_id}-{}", self.as_str())
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One call to the provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderCall {
    pub operation: Operation,
    pub idempotency_key: String,
    pub amount: Money,
    /// The provider's reference of what this call acts on: the authorization to
    /// capture, the capture to refund.
    pub acts_on: Option<String>,
}

/// The provider's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderOutcome {
    /// Done; the provider's reference for it.
    Approved { reference: String },
    /// Refused (a card declined, an amount over the limit), with the reason.
    Declined { reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// No answer: the call may or may not have been carried out.
    #[error("the payment provider did not answer: {0}")]
    NoAnswer(String),
    /// The key was used before for another call (a bug: keys are per payment and
    /// operation).
    #[error("the payment provider refused idempotency key {0}: it was used for another call")]
    KeyReused(String),
}

/// A payment provider.
pub trait PaymentProvider: Send + Sync + 'static {
    fn call(
        &self,
        call: ProviderCall,
    ) -> BoxFuture<'static, Result<ProviderOutcome, ProviderError>>;
}
