//! Payments: how they are stored and every operation on them.
//!
//! One payment per order (the table's unique `(source, order_id)`). Making a payment
//! for an order that already has one returns that payment if the amount and currency
//! are the same, and is refused (`payment_exists`) if they differ, so every caller may
//! retry.
//!
//! A payment's [`Source`] says which payments an order id names: the orders' own
//! (the order service's charge, admins) or the seeds' (made through a seed's route by
//! a caller without an account, who may name any order id). Each source has its own
//! payment per order id, so a seed call never finds, changes or blocks an order's
//! payment; and a seed route's caller reaches only the seeds' payments ([`Reach`]).
//!
//! Every move locks the payment's row (`select ... for update`, or the row just
//! inserted) for the whole transaction: concurrent requests for one payment queue, and
//! concurrent requests for one order make exactly one payment (`insert ... on conflict
//! do nothing` waits for the other insert to commit, then the row is locked).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sales_contracts::api::payments::Payment;
use sales_contracts::{Currency, Money};
use sales_platform::identity::Caller;
use sqlx::{AssertSqlSafe, PgConnection, PgPool};

use crate::error::{PaymentError, Result};
use crate::metrics::PaymentMetrics;
use crate::payment_status::{self, PaymentMove, PaymentStatus};
use crate::provider::{Operation, PaymentProvider};
use crate::provider_calls::{Join, begin_call};

/// What the payment operations share.
#[derive(Clone)]
pub struct Payments {
    pub pool: PgPool,
    /// Where money moves (today the simulated provider).
    pub provider: Arc<dyn PaymentProvider>,
    pub metrics: PaymentMetrics,
}

/// Where a payment was made: each source has its own payment per order id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The order's own payment: made by the order service's charge, or by an admin
    /// (on any route).
    Canonical,
    /// Made through a seed's route by a caller without an account. It belongs to no
    /// one, and its order id is only what that caller said.
    Seed,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Canonical => "canonical",
            Source::Seed => "seed",
        }
    }

    fn parse(s: &str) -> Option<Source> {
        match s {
            "canonical" => Some(Source::Canonical),
            "seed" => Some(Source::Seed),
            _ => None,
        }
    }
}

/// Which payments a request may act on by id; any other is not found (404), as if
/// it did not exist.
#[derive(Clone, Copy, Debug)]
pub enum Reach<'a> {
    /// Every payment: for admins (on any route) and, to refund, the order service.
    All,
    /// The seeds' payments that `caller` may see: a seed route's caller without an
    /// account.
    Seed(&'a Caller),
}

impl Reach<'_> {
    fn reaches(self, source: Source, owner: Option<i64>) -> bool {
        match self {
            Reach::All => true,
            Reach::Seed(caller) => source == Source::Seed && caller.may_see(owner),
        }
    }
}

/// A payment and whether this request made it (201) or found it (200).
#[derive(Clone, Debug)]
pub struct Stored {
    pub payment: Payment,
    pub created: bool,
}

#[derive(sqlx::FromRow)]
struct PaymentRow {
    id: i64,
    order_id: i64,
    customer_id: Option<i64>,
    source: String,
    amount_minor: i64,
    currency: String,
    status: String,
    decline_reason: Option<String>,
    provider_call: Option<String>,
    provider_reference: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<PaymentRow> for Payment {
    type Error = PaymentError;

    fn try_from(r: PaymentRow) -> Result<Payment> {
        let corrupt = |what: String| PaymentError::Database(sqlx::Error::Decode(what.into()));
        let currency: Currency = r
            .currency
            .parse()
            .map_err(|e| corrupt(format!("payment {}: {e}", r.id)))?;
        let status = payment_status::parse(&r.status)
            .ok_or_else(|| corrupt(format!("payment {}: unknown status {:?}", r.id, r.status)))?;
        Ok(Payment {
            payment_id: r.id,
            order_id: r.order_id,
            customer_id: r.customer_id,
            amount: Money::new(r.amount_minor, currency),
            status,
            decline_reason: r.decline_reason,
            provider_call_in_flight: r.provider_call.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// The columns its queries select or return, put in with `format!` under
/// `AssertSqlSafe` (sqlx 0.9): a constant, never input; values are bound parameters.
const COLUMNS: &str = "id, order_id, customer_id, source, amount_minor, currency, status, \
    decline_reason, provider_call, provider_reference, created_at, updated_at";

/// Check what a new payment would be made of.
pub fn validate_new(order_id: i64, amount: Money) -> Result<()> {
    if order_id < 1 {
        return Err(PaymentError::Validation(format!(
            "order_id must be a positive integer, got {order_id}"
        )));
    }
    if amount.amount < 1 {
        return Err(PaymentError::Validation(format!(
            "amount must be greater than zero, got {amount}"
        )));
    }
    Ok(())
}

/// The statuses a transaction moved payments into, counted once it has committed.
#[derive(Default)]
pub(crate) struct Entered(pub(crate) Vec<(PaymentStatus, Money)>);

impl Payments {
    /// One payment, if `caller` may see it: a customer sees only the payments of
    /// their own orders (another's is not found, as if it did not exist).
    pub async fn get(&self, id: i64, caller: &Caller) -> Result<Payment> {
        let row: Option<PaymentRow> = sqlx::query_as(AssertSqlSafe(format!(
            "select {COLUMNS} from payments where id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let payment = Payment::try_from(row.ok_or(PaymentError::NotFound(id))?)?;
        if caller.may_see(payment.customer_id) {
            Ok(payment)
        } else {
            Err(PaymentError::NotFound(id))
        }
    }

    /// Payments by id, optionally only the one of an order; a customer's own only.
    pub async fn list(
        &self,
        order_id: Option<i64>,
        caller: &Caller,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Payment>> {
        let rows: Vec<PaymentRow> = sqlx::query_as(AssertSqlSafe(format!(
            "select {COLUMNS} from payments
             where ($1::bigint is null or order_id = $1)
               and ($4 or customer_id is not distinct from $5)
             order by id limit $2 offset $3"
        )))
        .bind(order_id)
        .bind(limit)
        .bind(offset)
        .bind(caller.owner_scope().sql_binds().0)
        .bind(caller.owner_scope().sql_binds().1)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Payment::try_from).collect()
    }

    /// The order's own payment ([`Source::Canonical`]), if it has one: what the order
    /// service asks when it settles an order whose charge it never heard back from.
    pub async fn of_order(&self, order_id: i64) -> Result<Option<Payment>> {
        let row: Option<PaymentRow> = sqlx::query_as(AssertSqlSafe(format!(
            "select {COLUMNS} from payments where order_id = $1 and source = 'canonical'"
        )))
        .bind(order_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(Payment::try_from).transpose()
    }

    /// Open a pending payment for an order (or find the one it has in `source`).
    pub async fn open(&self, order_id: i64, amount: Money, source: Source) -> Result<Stored> {
        validate_new(order_id, amount)?;
        let mut entered = Entered::default();
        let mut tx = self.pool.begin().await?;
        let (locked, created) =
            lock_or_open(&mut tx, order_id, None, amount, source, &mut entered).await?;
        tx.commit().await?;
        self.count(entered);
        Ok(Stored {
            payment: locked.payment,
            created,
        })
    }

    /// Charge an order: authorize and capture in one call to the provider, ending
    /// `confirmed` or `declined`. An order's payment that exists already is taken as
    /// far as it goes (pending: charged; authorized: captured) and returned.
    pub async fn charge(
        &self,
        order_id: i64,
        customer_id: Option<i64>,
        amount: Money,
    ) -> Result<Stored> {
        validate_new(order_id, amount)?;
        if customer_id.is_some_and(|c| c < 1) {
            return Err(PaymentError::Validation(
                "customer_id must be a positive integer".into(),
            ));
        }
        self.open_and_call(
            order_id,
            customer_id,
            amount,
            Source::Canonical,
            |status| match status {
                PaymentStatus::Pending => Some(Operation::Charge),
                PaymentStatus::Authorized => Some(Operation::Capture),
                _ => None,
            },
        )
        .await
    }

    /// Seed 004: authorize an order's payment in `source`, making it if there is
    /// none. A payment that is no longer pending is returned as it is.
    pub async fn authorize_order(
        &self,
        order_id: i64,
        amount: Money,
        source: Source,
    ) -> Result<Stored> {
        validate_new(order_id, amount)?;
        self.open_and_call(order_id, None, amount, source, |status| {
            (status == PaymentStatus::Pending).then_some(Operation::Authorize)
        })
        .await
    }

    /// Find or open the order's payment, then make the provider call `next` picks
    /// for its status, if any. These requests are idempotent: one that finds the same
    /// call in flight makes it again with its key and answers its outcome.
    async fn open_and_call(
        &self,
        order_id: i64,
        customer_id: Option<i64>,
        amount: Money,
        source: Source,
        next: impl FnOnce(PaymentStatus) -> Option<Operation>,
    ) -> Result<Stored> {
        let mut entered = Entered::default();
        let mut tx = self.pool.begin().await?;
        let (locked, created) =
            lock_or_open(&mut tx, order_id, customer_id, amount, source, &mut entered).await?;
        let call = match next(locked.payment.status) {
            Some(operation) => Some(begin_call(&mut tx, &locked, operation, Join::Yes).await?),
            None => None,
        };
        tx.commit().await?;
        self.count(entered);
        let payment = match call {
            Some(call) => {
                self.finish_call_detached(locked.payment.payment_id, call)
                    .await?
            }
            None => locked.payment,
        };
        Ok(Stored { payment, created })
    }

    /// Authorize a pending payment: `authorized` or `declined`, as the provider decides.
    pub async fn authorize(&self, id: i64) -> Result<Payment> {
        self.call(id, Reach::All, Join::No, |_| Some(Operation::Authorize))
            .await
    }

    /// Confirm (capture) a payment within `reach`. A pending one is charged (authorized
    /// and captured at once) and ends `declined` if the provider declines. With
    /// `already_ok`, a payment that is already confirmed is returned as it is (seed
    /// 002's idempotent `PUT`).
    pub async fn confirm(&self, id: i64, reach: Reach<'_>, already_ok: bool) -> Result<Payment> {
        self.call(id, reach, Join::when(already_ok), |status| match status {
            PaymentStatus::Confirmed if already_ok => None,
            PaymentStatus::Pending => Some(Operation::Charge),
            _ => Some(Operation::Capture),
        })
        .await
    }

    /// Refund a confirmed payment within `reach`. With `already_ok`, a payment that is
    /// already refunded is returned as it is (seed 002's idempotent `PUT`).
    pub async fn refund(&self, id: i64, reach: Reach<'_>, already_ok: bool) -> Result<Payment> {
        self.call(id, reach, Join::when(already_ok), |status| match status {
            PaymentStatus::Refunded if already_ok => None,
            _ => Some(Operation::Refund),
        })
        .await
    }

    /// Lock payment `id` (within `reach`) and make the provider call `next` picks for
    /// its status (`None`: return it as it is).
    async fn call(
        &self,
        id: i64,
        reach: Reach<'_>,
        join: Join,
        next: impl FnOnce(PaymentStatus) -> Option<Operation>,
    ) -> Result<Payment> {
        let mut tx = self.pool.begin().await?;
        let locked = lock(&mut tx, id, reach).await?;
        let Some(operation) = next(locked.payment.status) else {
            return Ok(locked.payment);
        };
        let call = begin_call(&mut tx, &locked, operation, join).await?;
        tx.commit().await?;
        self.finish_call_detached(id, call).await
    }

    pub(crate) fn count(&self, entered: Entered) {
        for (status, amount) in entered.0 {
            self.metrics.entered(status, amount);
        }
    }
}

/// A payment locked in a transaction, with the provider call in flight for it.
pub(crate) struct Locked {
    pub payment: Payment,
    /// The call written down and not yet answered, if any.
    pub call: Option<Operation>,
    /// The provider's reference for the payment's last approved call.
    pub provider_reference: Option<String>,
}

impl TryFrom<PaymentRow> for Locked {
    type Error = PaymentError;

    fn try_from(mut row: PaymentRow) -> Result<Locked> {
        let call = match row.provider_call.as_deref() {
            Some(text) => Some(Operation::parse(text).ok_or_else(|| {
                PaymentError::Database(sqlx::Error::Decode(
                    format!("payment {}: unknown provider call {text:?}", row.id).into(),
                ))
            })?),
            None => None,
        };
        let provider_reference = row.provider_reference.take();
        Ok(Locked {
            payment: row.try_into()?,
            call,
            provider_reference,
        })
    }
}

/// Lock a payment's row for the rest of the transaction, if it is within `reach`
/// (another is not found).
pub(crate) async fn lock(conn: &mut PgConnection, id: i64, reach: Reach<'_>) -> Result<Locked> {
    let row: Option<PaymentRow> = sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from payments where id = $1 for update"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    let row = row.ok_or(PaymentError::NotFound(id))?;
    let source = Source::parse(&row.source).ok_or_else(|| {
        PaymentError::Database(sqlx::Error::Decode(
            format!("payment {id}: unknown source {:?}", row.source).into(),
        ))
    })?;
    if !reach.reaches(source, row.customer_id) {
        return Err(PaymentError::NotFound(id));
    }
    row.try_into()
}

/// The order's payment in `source`, locked: made `pending` now (`true`) or found
/// (`false`). A payment found with another amount or currency is a `payment_exists`
/// conflict.
async fn lock_or_open(
    conn: &mut PgConnection,
    order_id: i64,
    customer_id: Option<i64>,
    amount: Money,
    source: Source,
    entered: &mut Entered,
) -> Result<(Locked, bool)> {
    // Rows are never deleted, so a conflicting insert means the row is there once the
    // other transaction commits; the loop only guards against the impossible.
    for _ in 0..3 {
        let inserted: Option<PaymentRow> = sqlx::query_as(AssertSqlSafe(format!(
            "insert into payments (order_id, customer_id, amount_minor, currency, status, source)
             values ($1, $4, $2, $3, 'pending', $5)
             on conflict (source, order_id) do nothing
             returning {COLUMNS}"
        )))
        .bind(order_id)
        .bind(amount.amount)
        .bind(amount.currency.as_str())
        .bind(customer_id)
        .bind(source.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = inserted {
            let locked = Locked::try_from(row)?;
            entered
                .0
                .push((PaymentStatus::Pending, locked.payment.amount));
            tracing::debug!(payment_id = locked.payment.payment_id, order_id, amount = %amount, source = source.as_str(), "payment opened");
            return Ok((locked, true));
        }
        let existing: Option<PaymentRow> = sqlx::query_as(AssertSqlSafe(format!(
            "select {COLUMNS} from payments where order_id = $1 and source = $2 for update"
        )))
        .bind(order_id)
        .bind(source.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = existing {
            let locked = Locked::try_from(row)?;
            if locked.payment.amount != amount {
                return Err(PaymentError::PaymentExists {
                    order_id,
                    payment_id: locked.payment.payment_id,
                    existing: locked.payment.amount,
                    requested: amount,
                });
            }
            return Ok((locked, false));
        }
    }
    Err(PaymentError::Database(sqlx::Error::RowNotFound))
}

/// Make one move of the state machine on a locked payment.
pub(crate) async fn apply(
    conn: &mut PgConnection,
    payment: Payment,
    mv: PaymentMove,
    decline_reason: Option<&str>,
    entered: &mut Entered,
) -> Result<Payment> {
    let next = mv
        .apply(payment.status)
        .map_err(|source| PaymentError::InvalidTransition {
            payment_id: payment.payment_id,
            source,
        })?;
    let row: PaymentRow = sqlx::query_as(AssertSqlSafe(format!(
        "update payments set status = $2, decline_reason = $3, updated_at = now()
         where id = $1 returning {COLUMNS}"
    )))
    .bind(payment.payment_id)
    .bind(payment_status::as_str(next))
    .bind(decline_reason)
    .fetch_one(conn)
    .await?;
    let payment = Payment::try_from(row)?;
    entered.0.push((next, payment.amount));
    tracing::debug!(
        payment_id = payment.payment_id,
        status = payment_status::as_str(next),
        "payment moved"
    );
    Ok(payment)
}
