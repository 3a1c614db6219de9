//! Reservations: stock held for an order between placing it and paying for it.
//!
//! ```text
//! reserve ──> pending ──update-stock──> held ──paid-order──> committed
//!                │                        │                     │
//!                └─expires / release──> released <──cancel──────┘ (restocked)
//!                                          (final: a late update-stock takes nothing)
//! ```
//!
//! Reserving is all-or-nothing and never oversells: the stock rows of every item are
//! locked in SKU order (so concurrent reservations queue instead of deadlocking),
//! availability is checked for all of them, and only then is anything changed. The
//! table's checks (`reserved <= on_hand`) back this up in the database itself.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sales_contracts::api::stock::{Reservation, ReservationLine, ReservationStatus, Shortage};
use sqlx::{AssertSqlSafe, PgConnection, PgPool};

use crate::error::{InventoryError, Result};
use crate::stock::validate_sku_to_find;

/// Where a reservation was made. Seed 004's stock API let anyone release what its
/// own `reserve` made, and nothing else; its `release` may touch only [`Origin::Seed004`]
/// reservations (see [`release_seed004_reservation`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The canonical API (the order service, administrators) and the messages.
    Canonical,
    /// Seed 004's `POST /api/v1/stock/reserve`: for no order.
    Seed004,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Canonical => "canonical",
            Origin::Seed004 => "seed004",
        }
    }
}

/// Who released a reservation (`reservations.released_by`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleasedBy {
    /// The order: declined, cancelled, restored. Final for the order's messages.
    Order,
    /// No order claimed it in time. A `paid-order` that comes later sells the units
    /// again from free stock (the order was paid at its last moment).
    Expiry,
    /// A caller of the API (seed 004's clients, administrators).
    Caller,
}

impl ReleasedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleasedBy::Order => "order",
            ReleasedBy::Expiry => "expiry",
            ReleasedBy::Caller => "caller",
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ReservationRow {
    pub(crate) id: i64,
    order_id: Option<i64>,
    status: String,
    expires_at: Option<DateTime<Utc>>,
    released_by: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl ReservationRow {
    pub(crate) fn status(&self) -> ReservationStatus {
        // The table's check constraint allows only the four known values.
        ReservationStatus::parse(&self.status).unwrap_or(ReservationStatus::Released)
    }

    pub(crate) fn released_by(&self) -> Option<ReleasedBy> {
        match self.released_by.as_deref()? {
            "expiry" => Some(ReleasedBy::Expiry),
            "caller" => Some(ReleasedBy::Caller),
            _ => Some(ReleasedBy::Order),
        }
    }
}

/// The columns every query of a [`ReservationRow`] selects or returns. Queries put it in
/// with `format!` under `AssertSqlSafe`: it is a constant, never anything a caller sent
/// (values are always bound parameters).
pub(crate) const COLUMNS: &str =
    "id, order_id, status, expires_at, released_by, created_at, updated_at";

/// Merge duplicate SKUs and check every line.
pub fn normalise_lines(lines: &[ReservationLine]) -> Result<Vec<ReservationLine>> {
    if lines.is_empty() {
        return Err(InventoryError::Validation(
            "items must contain at least one item".into(),
        ));
    }
    let mut merged: BTreeMap<&str, i64> = BTreeMap::new();
    for line in lines {
        validate_sku_to_find(&line.sku)?;
        if line.quantity < 1 {
            return Err(InventoryError::Validation(format!(
                "quantity of {} must be at least 1, got {}",
                line.sku, line.quantity
            )));
        }
        *merged.entry(line.sku.as_str()).or_default() += i64::from(line.quantity);
    }
    merged
        .into_iter()
        .map(|(sku, quantity)| {
            let quantity = i32::try_from(quantity).map_err(|_| {
                InventoryError::Validation(format!("quantity of {sku} is too large"))
            })?;
            Ok(ReservationLine {
                sku: sku.to_owned(),
                quantity,
            })
        })
        .collect()
}

/// The longest a caller may ask a reservation no order claims to be kept.
pub const MAX_HOLD: Duration = Duration::from_secs(24 * 3600);

/// How long to keep a reservation asked to be kept until `until` (the order's pay-by
/// time): up to [`MAX_HOLD`]; nothing if the time is past.
pub fn hold_until(until: DateTime<Utc>) -> Duration {
    (until - Utc::now())
        .to_std()
        .unwrap_or_default()
        .min(MAX_HOLD)
}

/// Reserve `lines` for `order_id` (or for nobody), all or nothing, in one transaction.
/// Reserving again for the same order returns the first reservation (`false`).
pub async fn reserve_stock(
    pool: &PgPool,
    origin: Origin,
    order_id: Option<i64>,
    lines: &[ReservationLine],
    hold: Duration,
) -> Result<(Reservation, bool)> {
    let lines = normalise_lines(lines)?;
    // An order's reservation is unique: a second one for it fails its first insert,
    // and the first one is answered (below).
    let mut tx = pool.begin().await?;
    match reserve_in(
        &mut tx,
        origin,
        order_id,
        &lines,
        ReservationStatus::Pending,
        Some(hold),
    )
    .await
    {
        Ok(reservation) => {
            tx.commit().await?;
            Ok((reservation, true))
        }
        // The order has a reservation already (a retry, or another request at the
        // same moment): return it.
        Err(InventoryError::Database(sqlx::Error::Database(db)))
            if db.is_unique_violation() && order_id.is_some() =>
        {
            drop(tx);
            let order_id = order_id.unwrap_or_default();
            let existing = find_for_order(&mut *pool.acquire().await?, order_id)
                .await?
                .ok_or(InventoryError::NoReservationForOrder(order_id))?;
            Ok((existing, false))
        }
        Err(e) => Err(e),
    }
}

/// The reserving itself, inside the caller's transaction.
#[tracing::instrument(name = "db reserve stock", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
pub(crate) async fn reserve_in(
    conn: &mut PgConnection,
    origin: Origin,
    order_id: Option<i64>,
    lines: &[ReservationLine],
    status: ReservationStatus,
    hold: Option<Duration>,
) -> Result<Reservation> {
    take_stock(conn, lines).await?;
    let expires_at = hold.map(|h| Utc::now() + chrono::Duration::from_std(h).unwrap_or_default());
    let row: ReservationRow = sqlx::query_as(AssertSqlSafe(format!(
        "insert into reservations (order_id, status, expires_at, origin) values ($1, $2, $3, $4)
         returning {COLUMNS}"
    )))
    .bind(order_id)
    .bind(status.as_str())
    .bind(expires_at)
    .bind(origin.as_str())
    .fetch_one(&mut *conn)
    .await?;
    let skus: Vec<&str> = lines.iter().map(|l| l.sku.as_str()).collect();
    let quantities: Vec<i32> = lines.iter().map(|l| l.quantity).collect();
    sqlx::query(
        "insert into reservation_lines (reservation_id, sku, quantity)
         select $1, sku, quantity from unnest($2::text[], $3::int[]) as l(sku, quantity)",
    )
    .bind(row.id)
    .bind(&skus)
    .bind(&quantities)
    .execute(&mut *conn)
    .await?;
    Ok(to_reservation(row, lines.to_vec()))
}

/// Lock the items in SKU order, check every one, then move the units to `reserved`.
async fn take_stock(conn: &mut PgConnection, lines: &[ReservationLine]) -> Result<()> {
    let skus: Vec<&str> = lines.iter().map(|l| l.sku.as_str()).collect();
    let stock: Vec<(String, i32, i32)> = sqlx::query_as(
        "select sku, on_hand, reserved from stock_items where sku = any($1) order by sku for update",
    )
    .bind(&skus)
    .fetch_all(&mut *conn)
    .await?;
    let unknown: Vec<String> = lines
        .iter()
        .filter(|l| !stock.iter().any(|(sku, _, _)| *sku == l.sku))
        .map(|l| l.sku.clone())
        .collect();
    if !unknown.is_empty() {
        return Err(InventoryError::UnknownItems(unknown));
    }
    let shortages: Vec<Shortage> = lines
        .iter()
        .filter_map(|l| {
            let (_, on_hand, reserved) = stock.iter().find(|(sku, _, _)| *sku == l.sku)?;
            let available = on_hand - reserved;
            (available < l.quantity).then(|| Shortage {
                sku: l.sku.clone(),
                requested: l.quantity,
                available,
            })
        })
        .collect();
    if !shortages.is_empty() {
        return Err(InventoryError::InsufficientStock(shortages));
    }
    let quantities: Vec<i32> = lines.iter().map(|l| l.quantity).collect();
    sqlx::query(
        "update stock_items s set reserved = s.reserved + l.quantity, updated_at = now()
         from unnest($1::text[], $2::int[]) as l(sku, quantity) where s.sku = l.sku",
    )
    .bind(&skus)
    .bind(&quantities)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn get_reservation(conn: &mut PgConnection, id: i64) -> Result<Reservation> {
    let row: ReservationRow = sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from reservations where id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(InventoryError::ReservationNotFound(id))?;
    let lines = load_lines(conn, id).await?;
    Ok(to_reservation(row, lines))
}

pub async fn find_for_order(conn: &mut PgConnection, order_id: i64) -> Result<Option<Reservation>> {
    let row: Option<ReservationRow> = sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from reservations where order_id = $1"
    )))
    .bind(order_id)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => {
            let lines = load_lines(conn, row.id).await?;
            Ok(Some(to_reservation(row, lines)))
        }
        None => Ok(None),
    }
}

async fn load_lines(conn: &mut PgConnection, id: i64) -> Result<Vec<ReservationLine>> {
    let lines: Vec<(String, i32)> = sqlx::query_as(
        "select sku, quantity from reservation_lines where reservation_id = $1 order by sku",
    )
    .bind(id)
    .fetch_all(conn)
    .await?;
    Ok(lines
        .into_iter()
        .map(|(sku, quantity)| ReservationLine { sku, quantity })
        .collect())
}

fn to_reservation(row: ReservationRow, items: Vec<ReservationLine>) -> Reservation {
    Reservation {
        reservation_id: row.id,
        order_id: row.order_id,
        status: row.status(),
        items,
        expires_at: row.expires_at,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// Lock a reservation row (and learn its status).
pub(crate) async fn lock(conn: &mut PgConnection, id: i64) -> Result<ReservationRow> {
    sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from reservations where id = $1 for update"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(InventoryError::ReservationNotFound(id))
}

/// Lock the reservation's stock rows in SKU order, then apply `update` to them.
/// `update` is a `set` clause written in this crate (`'static`: a literal, never
/// anything a caller sent), hence the `AssertSqlSafe` below.
pub(crate) async fn adjust_stock(
    conn: &mut PgConnection,
    id: i64,
    update: &'static str,
) -> Result<()> {
    sqlx::query(
        "select 1 from stock_items where sku in
            (select sku from reservation_lines where reservation_id = $1)
         order by sku for update",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(AssertSqlSafe(format!(
        "update stock_items s set {update}, updated_at = now()
         from reservation_lines l where l.reservation_id = $1 and s.sku = l.sku"
    )))
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Move a reservation to `status` (released: by whom) and count up its version.
pub(crate) async fn set_status(
    conn: &mut PgConnection,
    id: i64,
    status: ReservationStatus,
    released_by: Option<ReleasedBy>,
) -> Result<()> {
    sqlx::query(
        "update reservations set status = $2, released_by = $3, expires_at = null,
                version = version + 1, updated_at = now()
         where id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(released_by.map(ReleasedBy::as_str))
    .execute(conn)
    .await?;
    Ok(())
}

/// Give a pending or held reservation's units back to stock.
pub async fn release_reservation(
    conn: &mut PgConnection,
    id: i64,
    by: ReleasedBy,
) -> Result<Reservation> {
    let row = lock(conn, id).await?;
    match row.status() {
        ReservationStatus::Pending | ReservationStatus::Held => {
            adjust_stock(conn, id, "reserved = s.reserved - l.quantity").await?;
            set_status(conn, id, ReservationStatus::Released, Some(by)).await?;
            get_reservation(conn, id).await
        }
        status => Err(InventoryError::InvalidTransition {
            reservation_id: id,
            status,
            action: "released",
        }),
    }
}

/// Seed 004's release: [`release_reservation`] for a reservation seed 004's own
/// `reserve` made. Any other (an order's, one made through the canonical API) is, to
/// seed 004's callers, not there: they had no right to it in the seed.
pub async fn release_seed004_reservation(conn: &mut PgConnection, id: i64) -> Result<Reservation> {
    // A reservation's origin never changes: checking it before the lock is enough.
    let origin: Option<String> =
        sqlx::query_scalar("select origin from reservations where id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    if origin.as_deref() != Some(Origin::Seed004.as_str()) {
        return Err(InventoryError::ReservationNotFound(id));
    }
    release_reservation(conn, id, ReleasedBy::Caller).await
}

/// The order was paid: the reserved units leave the warehouse. Committing twice is
/// a no-op.
pub async fn commit_reservation(conn: &mut PgConnection, id: i64) -> Result<Reservation> {
    let row = lock(conn, id).await?;
    match row.status() {
        ReservationStatus::Pending | ReservationStatus::Held => {
            adjust_stock(
                conn,
                id,
                "on_hand = s.on_hand - l.quantity, reserved = s.reserved - l.quantity",
            )
            .await?;
            set_status(conn, id, ReservationStatus::Committed, None).await?;
            get_reservation(conn, id).await
        }
        ReservationStatus::Committed => get_reservation(conn, id).await,
        status => Err(InventoryError::InvalidTransition {
            reservation_id: id,
            status,
            action: "committed",
        }),
    }
}

/// Release pending reservations whose time is up. Safe to run on every replica:
/// each claims different rows. Returns how many were released.
pub async fn expire_pending(pool: &PgPool) -> Result<usize> {
    let mut released = 0;
    loop {
        let mut tx = pool.begin().await?;
        let due: Vec<i64> = sqlx::query_scalar(
            "select id from reservations where status = 'pending' and expires_at <= now()
             order by expires_at limit 100 for update skip locked",
        )
        .fetch_all(&mut *tx)
        .await?;
        if due.is_empty() {
            return Ok(released);
        }
        for id in &due {
            release_reservation(&mut tx, *id, ReleasedBy::Expiry).await?;
        }
        tx.commit().await?;
        released += due.len();
        tracing::info!(count = due.len(), "released expired reservations");
    }
}

/// Run [`expire_pending`] every `every` until shut down.
pub async fn run_expiry(
    pool: PgPool,
    every: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    sales_platform::shutdown::every(every, shutdown, "expire reservations", || {
        expire_pending(&pool)
    })
    .await;
}
