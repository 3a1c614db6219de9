//! The simulated payment provider: no card network is called and no money moves.
//! It decides as seed 004's rule says ([`Authorizer`]: an amount at or above
//! `DECLINE_AT` is declined) and keeps its own books, as a real provider does: one
//! row per idempotency key in `simulated_provider_operations`, written in a
//! statement of its own, never inside a payment's transaction. The same key
//! answers what it answered the first time.

use futures::future::BoxFuture;
use sqlx::{AssertSqlSafe, PgPool};

use crate::authorizer::{Authorizer, Decision};
use crate::provider::{Operation, PaymentProvider, ProviderCall, ProviderError, ProviderOutcome};

#[derive(Clone)]
pub struct SimulatedProvider {
    pub books: PgPool,
    pub authorizer: Authorizer,
}

#[derive(sqlx::FromRow)]
struct BookedCall {
    operation: String,
    amount_minor: i64,
    currency: String,
    approved: bool,
    decline_reason: Option<String>,
    reference: String,
}

impl BookedCall {
    fn outcome(self) -> ProviderOutcome {
        match self.decline_reason {
            Some(reason) if !self.approved => ProviderOutcome::Declined { reason },
            _ => ProviderOutcome::Approved {
                reference: self.reference,
            },
        }
    }
}

impl SimulatedProvider {
    async fn carry_out(&self, call: ProviderCall) -> Result<ProviderOutcome, ProviderError> {
        let no_answer = |e: sqlx::Error| ProviderError::NoAnswer(e.to_string());
        let decision = match call.operation {
            Operation::Authorize | Operation::Charge => self.authorizer.decide(call.amount),
            Operation::Capture | Operation::Refund => Decision::Approved,
        };
        let reason = match &decision {
            Decision::Approved => None,
            Decision::Declined { reason } => Some(reason.as_str()),
        };
        let reference = format!("sim_{}", call.idempotency_key);
        let columns = "operation, amount_minor, currency, approved, decline_reason, reference";
        let booked: Option<BookedCall> = sqlx::query_as(AssertSqlSafe(format!(
            "insert into simulated_provider_operations
                 (idempotency_key, operation, amount_minor, currency, approved, decline_reason, reference)
             values ($1, $2, $3, $4, $5, $6, $7)
             on conflict (idempotency_key) do nothing
             returning {columns}"
        )))
        .bind(&call.idempotency_key)
        .bind(call.operation.as_str())
        .bind(call.amount.amount)
        .bind(call.amount.currency.as_str())
        .bind(reason.is_none())
        .bind(reason)
        .bind(&reference)
        .fetch_optional(&self.books)
        .await
        .map_err(no_answer)?;
        if let Some(booked) = booked {
            return Ok(booked.outcome());
        }
        // Called before with this key: the first answer again, if it was this call.
        let earlier: BookedCall = sqlx::query_as(AssertSqlSafe(format!(
            "select {columns} from simulated_provider_operations where idempotency_key = $1"
        )))
        .bind(&call.idempotency_key)
        .fetch_one(&self.books)
        .await
        .map_err(no_answer)?;
        if earlier.operation != call.operation.as_str()
            || earlier.amount_minor != call.amount.amount
            || earlier.currency != call.amount.currency.as_str()
        {
            return Err(ProviderError::KeyReused(call.idempotency_key));
        }
        tracing::debug!(key = %call.idempotency_key, "provider call repeated; answering as before");
        Ok(earlier.outcome())
    }
}

impl PaymentProvider for SimulatedProvider {
    fn call(
        &self,
        call: ProviderCall,
    ) -> BoxFuture<'static, Result<ProviderOutcome, ProviderError>> {
        let provider = self.clone();
        Box::pin(async move { provider.carry_out(call).await })
    }
}
