//! Where a payment reaches the provider: every call is written down before it is
//! made, and its answer recorded after, in two transactions with the call between
//! them (never a provider call inside a transaction):
//!
//! 1. [`begin_call`], in the caller's transaction, with the payment locked: the
//!    move must be legal now; the call and its idempotency key are stored on the
//!    payment (`provider_call`, `provider_call_key`).
//! 2. [`Payments::finish_call`]: the provider is called (at most
//!    [`PROVIDER_TIMEOUT`]); its answer moves the payment through the state machine
//!    and clears the call, under the row lock again.
//!
//! A crash or a timeout between 1 and 2 leaves the call written down, its outcome
//! unknown: the payment was maybe charged. [`settle_calls_in_doubt`] (every
//! replica, every few seconds) makes such calls, unanswered for
//! `PROVIDER_CALL_IN_DOUBT_AFTER` (30 s), again with the same key; the
//! provider answers what it did the first time, or does it now, and the payment
//! ends where the provider says. Calls still unanswered after
//! [`ATTEMPTS_BEFORE_ALERT`] tries are counted in `payment_provider_calls_in_doubt`
//! (alert `SalesPaymentProviderCallsInDoubt`).

use std::time::Duration;

use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;

use crate::error::{PaymentError, Result};
use sales_contracts::api::payments::Payment;

use crate::payment_status::{Outcome, PaymentMove};
use crate::payments::{Entered, Locked, Payments, Reach, apply, lock};
use crate::provider::{Operation, PROVIDER_TIMEOUT, ProviderCall, ProviderError, ProviderOutcome};

/// Calls the reconciler tried this many times without an answer are counted and
/// alerted on.
pub const ATTEMPTS_BEFORE_ALERT: i32 = 3;

/// The move a call makes if the provider approves it.
fn approved_move(operation: Operation) -> PaymentMove {
    match operation {
        Operation::Authorize | Operation::Charge => PaymentMove::Authorize(Outcome::Approved),
        Operation::Capture => PaymentMove::Capture,
        Operation::Refund => PaymentMove::Refund,
    }
}

/// Whether a request that finds its own call in flight joins it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Join {
    /// Yes: an idempotent request (the order service's charge, the seeds' `PUT`s)
    /// makes the call again with its key and answers its outcome.
    Yes,
    /// No: one request makes the move, the others are told (409), as when it has
    /// already been made (the canonical `confirm`, `refund`, `authorize`).
    No,
}

impl Join {
    pub(crate) fn when(idempotent: bool) -> Join {
        if idempotent { Join::Yes } else { Join::No }
    }
}

/// Write down `operation` on the locked payment, if its status allows it and no
/// other call is in flight for it. The same call again (a retry) is written again
/// and made again with the same key, if `join` says so.
pub(crate) async fn begin_call(
    conn: &mut PgConnection,
    locked: &Locked,
    operation: Operation,
    join: Join,
) -> Result<ProviderCall> {
    let payment = &locked.payment;
    approved_move(operation)
        .apply(payment.status)
        .map_err(|source| PaymentError::InvalidTransition {
            payment_id: payment.payment_id,
            source,
        })?;
    if let Some(in_flight) = locked.call
        && (in_flight != operation || join == Join::No)
    {
        return Err(PaymentError::CallInFlight {
            payment_id: payment.payment_id,
            operation: in_flight,
        });
    }
    let call = ProviderCall {
        operation,
        idempotency_key: operation.idempotency_key(payment.payment_id),
        amount: payment.amount,
        acts_on: match operation {
            Operation::Capture | Operation::Refund => locked.provider_reference.clone(),
            Operation::Authorize | Operation::Charge => None,
        },
    };
    // Attempts count the reconciler's tries only: a request joining the call in
    // flight keeps the count.
    sqlx::query(
        "update payments set provider_call = $2, provider_call_key = $3, provider_call_at = now(),
                provider_call_attempts =
                    case when provider_call is null then 0 else provider_call_attempts end
         where id = $1",
    )
    .bind(payment.payment_id)
    .bind(operation.as_str())
    .bind(&call.idempotency_key)
    .execute(conn)
    .await?;
    Ok(call)
}

impl Payments {
    /// [`Payments::finish_call`] in a task of its own: a client that hangs up (the
    /// order service's timeout, a gateway giving up) does not abandon a call that
    /// may be moving money; its answer is recorded all the same.
    pub(crate) async fn finish_call_detached(
        &self,
        payment_id: i64,
        call: ProviderCall,
    ) -> Result<Payment> {
        let operation = call.operation;
        let payments = self.clone();
        tokio::spawn(async move { payments.finish_call(payment_id, call).await })
            .await
            .unwrap_or(Err(PaymentError::ProviderNoAnswer {
                payment_id,
                operation,
            }))
    }

    /// Make a call written down by [`begin_call`] and record its answer.
    pub(crate) async fn finish_call(&self, payment_id: i64, call: ProviderCall) -> Result<Payment> {
        let operation = call.operation;
        let answer = match tokio::time::timeout(PROVIDER_TIMEOUT, self.provider.call(call)).await {
            Ok(answer) => answer,
            Err(_) => Err(ProviderError::NoAnswer(format!(
                "no answer within {PROVIDER_TIMEOUT:?}"
            ))),
        };
        let outcome = match answer {
            Ok(outcome) => outcome,
            Err(ProviderError::KeyReused(key)) => {
                // A bug, not an outage: the call stays written down (counted in
                // doubt, alerted on) and the request fails as one.
                self.metrics.provider_call(operation, "key_reused");
                tracing::error!(payment_id, %operation, key, "the provider refused the call's idempotency key");
                return Err(PaymentError::ProviderKeyReused { payment_id, key });
            }
            Err(err) => {
                self.metrics.provider_call(operation, "no_answer");
                tracing::warn!(payment_id, %operation, error = %err, "provider call unanswered; it will be made again");
                return Err(PaymentError::ProviderNoAnswer {
                    payment_id,
                    operation,
                });
            }
        };
        self.metrics.provider_call(
            operation,
            match outcome {
                ProviderOutcome::Approved { .. } => "approved",
                ProviderOutcome::Declined { .. } => "declined",
            },
        );
        self.record_answer(payment_id, operation, outcome).await
    }

    /// Move the payment as the provider's answer says, unless the call was settled
    /// meanwhile (by a retry or the reconciler).
    async fn record_answer(
        &self,
        payment_id: i64,
        operation: Operation,
        outcome: ProviderOutcome,
    ) -> Result<Payment> {
        let mut entered = Entered::default();
        let mut tx = self.pool.begin().await?;
        let locked = lock(&mut tx, payment_id, Reach::All).await?;
        if locked.call != Some(operation) {
            return Ok(locked.payment);
        }
        let mut payment = locked.payment;
        let mut reference = None;
        let mut refused = None;
        match (operation, outcome) {
            (Operation::Authorize | Operation::Charge, ProviderOutcome::Declined { reason }) => {
                let mv = PaymentMove::Authorize(Outcome::Declined);
                payment = apply(&mut tx, payment, mv, Some(&reason), &mut entered).await?;
            }
            (_, ProviderOutcome::Declined { reason }) => refused = Some(reason),
            (_, ProviderOutcome::Approved { reference: r }) => {
                payment = apply(
                    &mut tx,
                    payment,
                    approved_move(operation),
                    None,
                    &mut entered,
                )
                .await?;
                if operation == Operation::Charge {
                    payment =
                        apply(&mut tx, payment, PaymentMove::Capture, None, &mut entered).await?;
                }
                reference = Some(r);
            }
        }
        sqlx::query(
            "update payments set provider_call = null, provider_call_key = null,
                    provider_call_at = null, provider_call_attempts = 0,
                    provider_reference = coalesce($2, provider_reference)
             where id = $1",
        )
        .bind(payment_id)
        .bind(reference)
        .execute(&mut *tx)
        .await?;
        payment.provider_call_in_flight = None;
        tx.commit().await?;
        self.count(entered);
        match refused {
            Some(reason) => Err(PaymentError::ProviderRefused {
                payment_id,
                operation,
                reason,
            }),
            None => Ok(payment),
        }
    }
}

/// Make again every call unanswered for `in_doubt_after`, with its key, and record
/// the answers. Safe on every replica (each claims other payments). Returns how
/// many calls were settled.
pub async fn settle_calls_in_doubt(payments: &Payments, in_doubt_after: Duration) -> Result<usize> {
    let due: Vec<(i64, String, String, i64, String, Option<String>)> = sqlx::query_as(
        "update payments set provider_call_at = now(),
                provider_call_attempts = provider_call_attempts + 1
         where id in (select id from payments
                      where provider_call is not null
                        and provider_call_at <= now() - make_interval(secs => $1)
                      order by provider_call_at limit 50 for update skip locked)
         returning id, provider_call, provider_call_key, amount_minor, currency, provider_reference",
    )
    .bind(in_doubt_after.as_secs_f64())
    .fetch_all(&payments.pool)
    .await?;
    let mut settled = 0;
    for (payment_id, operation, key, amount_minor, currency, reference) in due {
        let (Some(operation), Ok(currency)) = (Operation::parse(&operation), currency.parse())
        else {
            tracing::error!(payment_id, "a call in doubt cannot be read; needs a person");
            continue;
        };
        let call = ProviderCall {
            operation,
            idempotency_key: key,
            amount: sales_contracts::Money::new(amount_minor, currency),
            acts_on: reference,
        };
        match payments.finish_call(payment_id, call).await {
            Ok(payment) => {
                settled += 1;
                tracing::debug!(
                    payment_id,
                    %operation,
                    status = crate::payment_status::as_str(payment.status),
                    "provider call in doubt settled"
                );
            }
            Err(err) => {
                tracing::warn!(payment_id, %operation, error = %err, "provider call still in doubt")
            }
        }
    }
    let in_doubt: i64 = sqlx::query_scalar(
        "select count(*) from payments where provider_call is not null and provider_call_attempts >= $1",
    )
    .bind(ATTEMPTS_BEFORE_ALERT)
    .fetch_one(&payments.pool)
    .await?;
    payments.metrics.calls_in_doubt.set(in_doubt);
    Ok(settled)
}

/// Run [`settle_calls_in_doubt`] every `every` until shut down.
pub async fn run(
    payments: Payments,
    every: Duration,
    in_doubt_after: Duration,
    shutdown: CancellationToken,
) {
    sales_platform::shutdown::every(every, shutdown, "settle provider calls in doubt", || {
        settle_calls_in_doubt(&payments, in_doubt_after)
    })
    .await;
}
