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

use chrono::{DateTime, Utc};
use sales_contracts::api::payments::Payment;
use sales_contracts::{Currency, Money};
use sales_platform::identity::Caller;
use sqlx::{PgConnection, PgPool};

use crate::authorizer::{Authorizer, Decision};
use crate::error::{PaymentError, Result};
use crate::metrics::PaymentMetrics;
use crate::payment_status::{self, Outcome, PaymentMove, PaymentStatus};

/// What the payment operations share.
#[derive(Clone)]
pub struct Payments {
    pub pool: PgPool,
    pub authorizer: Authorizer,
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
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const COLUMNS: &str = "id, order_id, customer_id, source, amount_minor, currency, status, \
    decline_reason, created_at, updated_at";

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
struct Entered(Vec<(PaymentStatus, Money)>);

impl Payments {
    /// One payment, if `caller` may see it: a customer sees only the payments of
    /// their own orders (another's is not found, as if it did not exist).
    pub async fn get(&self, id: i64, caller: &Caller) -> Result<Payment> {
        let row: Option<PaymentRow> =
            sqlx::query_as(&format!("select {COLUMNS} from payments where id = $1"))
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
        let rows: Vec<PaymentRow> = sqlx::query_as(&format!(
            "select {COLUMNS} from payments
             where ($1::bigint is null or order_id = $1)
               and ($4 or customer_id is not distinct from $5)
             order by id limit $2 offset $3"
        ))
        .bind(order_id)
        .bind(limit)
        .bind(offset)
        .bind(caller.owner_scope().sql_binds().0)
        .bind(caller.owner_scope().sql_binds().1)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Payment::try_from).collect()
    }

    /// Open a pending payment for an order (or find the one it has in `source`).
    pub async fn open(&self, order_id: i64, amount: Money, source: Source) -> Result<Stored> {
        validate_new(order_id, amount)?;
        let mut entered = Entered::default();
        let mut tx = self.pool.begin().await?;
        let (payment, created) =
            lock_or_open(&mut tx, order_id, None, amount, source, &mut entered).await?;
        tx.commit().await?;
        self.count(entered);
        Ok(Stored { payment, created })
    }

    /// Charge an order: authorize and capture in one step, ending `confirmed` or
    /// `declined`. An order's payment that exists already is taken as far as it goes
    /// (pending: authorized and captured; authorized: captured) and returned.
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
        let mut entered = Entered::default();
        let mut tx = self.pool.begin().await?;
        let (mut payment, created) = lock_or_open(
            &mut tx,
            order_id,
            customer_id,
            amount,
            Source::Canonical,
            &mut entered,
        )
        .await?;
        if payment.status == PaymentStatus::Pending {
            payment = self
                .authorize_locked(&mut tx, payment, &mut entered)
                .await?;
        }
        if payment.status == PaymentStatus::Authorized {
            payment = apply(&mut tx, payment, PaymentMove::Capture, None, &mut entered).await?;
        }
        tx.commit().await?;
        self.count(entered);
        Ok(Stored { payment, created })
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
        let mut entered = Entered::default();
        let mut tx = self.pool.begin().await?;
        let (mut payment, created) =
            lock_or_open(&mut tx, order_id, None, amount, source, &mut entered).await?;
        if payment.status == PaymentStatus::Pending {
            payment = self
                .authorize_locked(&mut tx, payment, &mut entered)
                .await?;
        }
        tx.commit().await?;
        self.count(entered);
        Ok(Stored { payment, created })
    }

    /// Authorize a pending payment: `authorized` or `declined`, as the authorizer decides.
    pub async fn authorize(&self, id: i64) -> Result<Payment> {
        let mut entered = Entered::default();
        let mut tx = self.pool.begin().await?;
        let payment = lock(&mut tx, id, Reach::All).await?;
        let payment = self
            .authorize_locked(&mut tx, payment, &mut entered)
            .await?;
        tx.commit().await?;
        self.count(entered);
        Ok(payment)
    }

    /// Confirm (capture) a payment within `reach`. A pending one is authorized first
    /// and ends `declined` if the authorizer declines. With `already_ok`, a payment
    /// that is already confirmed is returned as it is (seed 002's idempotent `PUT`).
    pub async fn confirm(&self, id: i64, reach: Reach<'_>, already_ok: bool) -> Result<Payment> {
        let mut entered = Entered::default();
        let mut tx = self.pool.begin().await?;
        let mut payment = lock(&mut tx, id, reach).await?;
        if already_ok && payment.status == PaymentStatus::Confirmed {
            return Ok(payment);
        }
        if payment.status == PaymentStatus::Pending {
            payment = self
                .authorize_locked(&mut tx, payment, &mut entered)
                .await?;
            if payment.status == PaymentStatus::Declined {
                tx.commit().await?;
                self.count(entered);
                return Ok(payment);
            }
        }
        let payment = apply(&mut tx, payment, PaymentMove::Capture, None, &mut entered).await?;
        tx.commit().await?;
        self.count(entered);
        Ok(payment)
    }

    /// Refund a confirmed payment within `reach`. With `already_ok`, a payment that is
    /// already refunded is returned as it is (seed 002's idempotent `PUT`).
    pub async fn refund(&self, id: i64, reach: Reach<'_>, already_ok: bool) -> Result<Payment> {
        let mut entered = Entered::default();
        let mut tx = self.pool.begin().await?;
        let payment = lock(&mut tx, id, reach).await?;
        if already_ok && payment.status == PaymentStatus::Refunded {
            return Ok(payment);
        }
        let payment = apply(&mut tx, payment, PaymentMove::Refund, None, &mut entered).await?;
        tx.commit().await?;
        self.count(entered);
        Ok(payment)
    }

    /// Ask the (simulated) authorizer and move the locked payment accordingly.
    async fn authorize_locked(
        &self,
        conn: &mut PgConnection,
        payment: Payment,
        entered: &mut Entered,
    ) -> Result<Payment> {
        let decision = self.authorizer.decide(payment.amount);
        let reason = match &decision {
            Decision::Approved => None,
            Decision::Declined { reason } => Some(reason.as_str()),
        };
        let mv = PaymentMove::Authorize(Outcome::from(&decision));
        let payment = apply(conn, payment, mv, reason, entered).await?;
        tracing::info!(
            payment_id = payment.payment_id,
            order_id = payment.order_id,
            amount = %payment.amount,
            status = payment_status::as_str(payment.status),
            decline_reason = reason,
            "payment authorization decided"
        );
        Ok(payment)
    }

    fn count(&self, entered: Entered) {
        for (status, amount) in entered.0 {
            self.metrics.entered(status, amount);
        }
    }
}

/// Lock a payment's row for the rest of the transaction, if it is within `reach`
/// (another is not found).
async fn lock(conn: &mut PgConnection, id: i64, reach: Reach<'_>) -> Result<Payment> {
    let row: Option<PaymentRow> = sqlx::query_as(&format!(
        "select {COLUMNS} from payments where id = $1 for update"
    ))
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
) -> Result<(Payment, bool)> {
    // Rows are never deleted, so a conflicting insert means the row is there once the
    // other transaction commits; the loop only guards against the impossible.
    for _ in 0..3 {
        let inserted: Option<PaymentRow> = sqlx::query_as(&format!(
            "insert into payments (order_id, customer_id, amount_minor, currency, status, source)
             values ($1, $4, $2, $3, 'pending', $5)
             on conflict (source, order_id) do nothing
             returning {COLUMNS}"
        ))
        .bind(order_id)
        .bind(amount.amount)
        .bind(amount.currency.as_str())
        .bind(customer_id)
        .bind(source.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = inserted {
            let payment = Payment::try_from(row)?;
            entered.0.push((PaymentStatus::Pending, payment.amount));
            tracing::info!(payment_id = payment.payment_id, order_id, amount = %amount, source = source.as_str(), "payment opened");
            return Ok((payment, true));
        }
        let existing: Option<PaymentRow> = sqlx::query_as(&format!(
            "select {COLUMNS} from payments where order_id = $1 and source = $2 for update"
        ))
        .bind(order_id)
        .bind(source.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = existing {
            let payment = Payment::try_from(row)?;
            if payment.amount != amount {
                return Err(PaymentError::PaymentExists {
                    order_id,
                    payment_id: payment.payment_id,
                    existing: payment.amount,
                    requested: amount,
                });
            }
            return Ok((payment, false));
        }
    }
    Err(PaymentError::Database(sqlx::Error::RowNotFound))
}

/// Make one move of the state machine on a locked payment.
async fn apply(
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
    let row: PaymentRow = sqlx::query_as(&format!(
        "update payments set status = $2, decline_reason = $3, updated_at = now()
         where id = $1 returning {COLUMNS}"
    ))
    .bind(payment.payment_id)
    .bind(payment_status::as_str(next))
    .bind(decline_reason)
    .fetch_one(conn)
    .await?;
    let payment = Payment::try_from(row)?;
    entered.0.push((next, payment.amount));
    tracing::info!(
        payment_id = payment.payment_id,
        status = payment_status::as_str(next),
        "payment moved"
    );
    Ok(payment)
}
