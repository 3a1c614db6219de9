//! What an order's messages do to its reservation: `update-stock` holds it,
//! `paid-order` sells it, `restore-canceled-item` gives it back.
//!
//! The messages come through different queues, so in any order, and any of them may
//! come twice or be replayed from a dead-letter queue days later. Each one only moves
//! the reservation forward, from the state the reservation itself is in (its row,
//! locked; every change counts up `version`), never from the order the messages
//! came in:
//!
//! ```text
//!              pending ─▶ held ─▶ committed ─▶ released
//! update-stock   held      ·        ·           ·        (none: reserve, held)
//! paid-order   committed committed  ·           · ¹      (none: refused, replay later)
//! restore      released  released released ²    ·        (none: a released mark)
//! ```
//! `·` nothing changes. ¹ A reservation released by its expiry (not by the order) is
//! sold again from free stock: the order was paid at its last moment. ² The sold
//! units go back on hand.
//!
//! So any arrival order gives the same end: paid and never cancelled: `committed`;
//! cancelled: `released` with every unit back.

use sales_contracts::api::stock::{ReservationLine, ReservationStatus, Shortage};
use sqlx::{AssertSqlSafe, PgConnection};

use crate::error::{InventoryError, Result};
use crate::reservations::{
    COLUMNS, Origin, ReleasedBy, ReservationRow, adjust_stock, normalise_lines,
    release_reservation, reserve_in, set_status,
};
use crate::stock::MAX_COUNT;

/// The order's reservation, its row locked; `None` if the order has none.
async fn lock_for_order(conn: &mut PgConnection, order_id: i64) -> Result<Option<ReservationRow>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from reservations where order_id = $1 for update"
    )))
    .bind(order_id)
    .fetch_optional(conn)
    .await?)
}

/// `update-stock`: the order was placed, so its stock stays held until it is paid or
/// cancelled (no more expiry). If the order reserved nothing beforehand (a producer
/// that only sends `update-stock`, as seed 000's did), the stock is taken now, if
/// there is enough. Returns the reservation's id.
pub async fn hold_for_order(
    conn: &mut PgConnection,
    order_id: i64,
    lines: &[ReservationLine],
) -> Result<i64> {
    let Some(row) = lock_for_order(conn, order_id).await? else {
        let lines = normalise_lines(lines)?;
        let r = reserve_in(
            conn,
            Origin::Canonical,
            Some(order_id),
            &lines,
            ReservationStatus::Held,
            None,
        )
        .await?;
        return Ok(r.reservation_id);
    };
    if row.status() == ReservationStatus::Pending {
        set_status(conn, row.id, ReservationStatus::Held, None).await?;
    } else {
        tracing::debug!(
            order_id,
            reservation_id = row.id,
            status = row.status().as_str(),
            "the order's reservation is past held; update-stock changes nothing"
        );
    }
    Ok(row.id)
}

/// `paid-order`: sell the order's reserved units. Returns the reservation's id.
pub async fn commit_for_order(conn: &mut PgConnection, order_id: i64) -> Result<i64> {
    let row = lock_for_order(conn, order_id)
        .await?
        .ok_or(InventoryError::NoReservationForOrder(order_id))?;
    match (row.status(), row.released_by()) {
        (ReservationStatus::Pending | ReservationStatus::Held, _) => {
            adjust_stock(
                conn,
                row.id,
                "on_hand = s.on_hand - l.quantity, reserved = s.reserved - l.quantity",
            )
            .await?;
            set_status(conn, row.id, ReservationStatus::Committed, None).await?;
        }
        (ReservationStatus::Released, Some(ReleasedBy::Expiry)) => {
            sell_from_free_stock(conn, row.id).await?;
            set_status(conn, row.id, ReservationStatus::Committed, None).await?;
            tracing::warn!(
                order_id,
                reservation_id = row.id,
                "the order was paid after its reservation expired; sold again from free stock"
            );
        }
        (status, _) => tracing::debug!(
            order_id,
            reservation_id = row.id,
            status = status.as_str(),
            "the order's stock is sold or given back already; paid-order changes nothing"
        ),
    }
    Ok(row.id)
}

/// `restore-canceled-item`: the order's units go back to stock, whether they were
/// still reserved or already sold. For an order that reserved nothing (yet), a
/// released mark is left, so that its late `update-stock` takes nothing. Returns the
/// reservation's id.
pub async fn restore_for_order(conn: &mut PgConnection, order_id: i64) -> Result<i64> {
    let Some(row) = lock_for_order(conn, order_id).await? else {
        tracing::debug!(
            order_id,
            "nothing reserved for the order; marking it released"
        );
        let id: i64 = sqlx::query_scalar(
            "insert into reservations (order_id, status, released_by, origin)
             values ($1, 'released', $2, $3) returning id",
        )
        .bind(order_id)
        .bind(ReleasedBy::Order.as_str())
        .bind(Origin::Canonical.as_str())
        .fetch_one(&mut *conn)
        .await?;
        return Ok(id);
    };
    match row.status() {
        ReservationStatus::Pending | ReservationStatus::Held => {
            release_reservation(conn, row.id, ReleasedBy::Order).await?;
        }
        ReservationStatus::Committed => {
            check_restock(conn, row.id).await?;
            adjust_stock(conn, row.id, "on_hand = s.on_hand + l.quantity").await?;
            set_status(
                conn,
                row.id,
                ReservationStatus::Released,
                Some(ReleasedBy::Order),
            )
            .await?;
        }
        ReservationStatus::Released => {}
    }
    Ok(row.id)
}

/// A reservation's line with its item's stock, the item's row locked.
#[derive(sqlx::FromRow)]
struct LockedLine {
    sku: String,
    on_hand: i32,
    reserved: i32,
    quantity: i32,
}

/// Lock the stock rows of reservation `id`'s lines (in SKU order) and read them.
async fn lock_lines(conn: &mut PgConnection, id: i64) -> Result<Vec<LockedLine>> {
    Ok(sqlx::query_as(
        "select s.sku, s.on_hand, s.reserved, l.quantity from stock_items s
         join reservation_lines l on l.sku = s.sku and l.reservation_id = $1
         order by s.sku for update of s",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?)
}

/// Sell a released reservation's units from the stock nobody holds, if there is
/// enough of every line (none is taken otherwise).
async fn sell_from_free_stock(conn: &mut PgConnection, id: i64) -> Result<()> {
    let shortages: Vec<Shortage> = lock_lines(conn, id)
        .await?
        .into_iter()
        .filter(|l| l.on_hand - l.reserved < l.quantity)
        .map(|l| Shortage {
            available: l.on_hand - l.reserved,
            sku: l.sku,
            requested: l.quantity,
        })
        .collect();
    if !shortages.is_empty() {
        return Err(InventoryError::InsufficientStock(shortages));
    }
    adjust_stock(conn, id, "on_hand = s.on_hand - l.quantity").await
}

/// Lock the stock rows of a sold reservation and check that its units fit back on
/// hand: an item counts at most [`MAX_COUNT`] units.
async fn check_restock(conn: &mut PgConnection, id: i64) -> Result<()> {
    let lines = lock_lines(conn, id).await?;
    let over: Vec<String> = lines
        .iter()
        .filter(|l| i64::from(l.on_hand) + i64::from(l.quantity) > i64::from(MAX_COUNT))
        .map(|l| {
            format!(
                "{} units of {} (it has {} on hand)",
                l.quantity, l.sku, l.on_hand
            )
        })
        .collect();
    if over.is_empty() {
        return Ok(());
    }
    Err(InventoryError::Validation(format!(
        "cannot give {} back to stock: an item counts at most {MAX_COUNT} units",
        over.join(", ")
    )))
}
