//! Shipments: opening one per order, reading them, and moving them along
//! `pending -> shipped -> delivered` (see [`crate::status`]).
//!
//! - Opening is idempotent per order: the table's unique `order_id` and
//!   `on conflict do nothing` make a second open (a redelivered or repeated
//!   `paid-order`, a retried `POST`) return the shipment already there.
//! - A move locks the shipment's row (`select ... for update`), checks the move
//!   against the state machine, updates the row and writes `shipment-shipped` or
//!   `shipment-delivered` to the outbox, all in one transaction: the event goes out
//!   if and only if the move commits, and concurrent moves queue on the lock so only
//!   one of two identical moves succeeds.

use chrono::{DateTime, Utc};
use sales_contracts::events::{ShipmentDelivered, ShipmentShipped};
use sales_platform::identity::OwnerScope;
use sales_platform::outbox;
use serde::Serialize;
use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use utoipa::ToSchema;

use crate::SERVICE;
use crate::error::{Result, ShippingError};
use crate::status::ShipmentStatus;

/// Longest carrier name and tracking number accepted.
pub const MAX_LABEL_CHARS: usize = 100;

/// A shipment: the delivery of one order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Shipment {
    #[schema(example = 1)]
    pub id: i64,
    /// The order shipped; one shipment per order.
    #[schema(example = 42)]
    pub order_id: i64,
    /// The order's customer (from the `paid-order` event); null when unknown.
    #[schema(example = 7)]
    pub customer_id: Option<i64>,
    pub status: ShipmentStatus,
    #[schema(example = "DHL")]
    pub carrier: Option<String>,
    #[schema(example = "JD014600003SE")]
    pub tracking_number: Option<String>,
    /// When it left the warehouse.
    pub shipped_at: Option<DateTime<Utc>>,
    /// When it arrived.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When the order's payment was announced (its `paid-order`); null: not yet, and
    /// the shipment cannot ship until it is.
    pub paid_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns its queries select or return, put in with `format!` under
/// `AssertSqlSafe` (sqlx 0.9): a constant, never input; values are bound parameters.
const COLUMNS: &str = "id, order_id, customer_id, status, carrier, tracking_number, \
                       shipped_at, delivered_at, order_paid_at, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct ShipmentRow {
    id: i64,
    order_id: i64,
    customer_id: Option<i64>,
    status: String,
    carrier: Option<String>,
    tracking_number: Option<String>,
    shipped_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    order_paid_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<ShipmentRow> for Shipment {
    type Error = sqlx::Error;

    fn try_from(row: ShipmentRow) -> std::result::Result<Self, Self::Error> {
        // The table's check constraint allows only the known statuses.
        let status = ShipmentStatus::parse(&row.status).ok_or_else(|| {
            sqlx::Error::Decode(
                format!("shipment {} has unknown status {:?}", row.id, row.status).into(),
            )
        })?;
        Ok(Shipment {
            id: row.id,
            order_id: row.order_id,
            customer_id: row.customer_id,
            status,
            carrier: row.carrier,
            tracking_number: row.tracking_number,
            shipped_at: row.shipped_at,
            delivered_at: row.delivered_at,
            paid_at: row.order_paid_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

fn to_shipment(row: ShipmentRow) -> Result<Shipment> {
    Ok(Shipment::try_from(row)?)
}

pub fn validate_order_id(order_id: i64) -> Result<()> {
    if order_id < 1 {
        return Err(ShippingError::Validation(format!(
            "order_id must be a positive integer, got {order_id}"
        )));
    }
    Ok(())
}

/// Open the shipment of `order_id` (pending), unless the order already has one.
/// Returns the shipment and whether it was opened now. An existing shipment is left
/// as it is, except that a customer it did not know yet is recorded, and that `paid`
/// (the order's `paid-order` came) lets it ship.
pub async fn open(
    conn: &mut PgConnection,
    order_id: i64,
    customer_id: Option<i64>,
    paid: bool,
) -> Result<(Shipment, bool)> {
    validate_order_id(order_id)?;
    let inserted: Option<ShipmentRow> = sqlx::query_as(AssertSqlSafe(format!(
        "insert into shipments (order_id, customer_id, order_paid_at)
         values ($1, $2, case when $3 then now() end)
         on conflict (order_id) do nothing returning {COLUMNS}"
    )))
    .bind(order_id)
    .bind(customer_id)
    .bind(paid)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = inserted {
        return Ok((to_shipment(row)?, true));
    }
    let row: ShipmentRow = sqlx::query_as(AssertSqlSafe(format!(
        "update shipments set
             customer_id = coalesce(customer_id, $2),
             order_paid_at = case when $3 then coalesce(order_paid_at, now()) else order_paid_at end,
             updated_at = case when ($2::bigint is not null and customer_id is null)
                                    or ($3 and order_paid_at is null)
                               then now() else updated_at end
         where order_id = $1 returning {COLUMNS}"
    )))
    .bind(order_id)
    .bind(customer_id)
    .bind(paid)
    .fetch_one(&mut *conn)
    .await?;
    Ok((to_shipment(row)?, false))
}

/// Open a shipment in its own transaction (the HTTP `POST`s).
pub async fn open_in_pool(pool: &PgPool, order_id: i64) -> Result<(Shipment, bool)> {
    let mut tx = pool.begin().await?;
    let opened = open(&mut tx, order_id, None, false).await?;
    tx.commit().await?;
    Ok(opened)
}

pub async fn get(conn: &mut PgConnection, id: i64) -> Result<Shipment> {
    fetch_one(conn, id, "").await
}

/// Read the shipment and lock its row until the transaction ends.
pub async fn lock(conn: &mut PgConnection, id: i64) -> Result<Shipment> {
    fetch_one(conn, id, " for update").await
}

async fn fetch_one(conn: &mut PgConnection, id: i64, suffix: &'static str) -> Result<Shipment> {
    let row: ShipmentRow = sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from shipments where id = $1{suffix}"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(ShippingError::NotFound(id))?;
    to_shipment(row)
}

/// Which shipments to list.
#[derive(Clone, Debug)]
pub struct ShipmentFilter {
    /// Whose shipments: everyone's, or one owner's (a customer listing their own).
    pub owner: OwnerScope,
    pub order_id: Option<i64>,
    pub status: Option<ShipmentStatus>,
}

/// Shipments matching `filter`, newest first.
pub async fn list(
    conn: &mut PgConnection,
    filter: &ShipmentFilter,
    limit: i64,
    offset: i64,
) -> Result<Vec<Shipment>> {
    let rows: Vec<ShipmentRow> = sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from shipments
         where ($6 or customer_id is not distinct from $1)
           and ($2::bigint is null or order_id = $2)
           and ($3::text is null or status = $3)
         order by id desc limit $4 offset $5"
    )))
    .bind(filter.owner.sql_binds().1)
    .bind(filter.order_id)
    .bind(filter.status.map(ShipmentStatus::as_str))
    .bind(limit)
    .bind(offset)
    .bind(filter.owner.sql_binds().0)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(to_shipment).collect()
}

/// Who carries a shipment, given when it is shipped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dispatch {
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
}

impl Dispatch {
    /// Trimmed and checked: neither may be blank or longer than [`MAX_LABEL_CHARS`].
    pub fn new(carrier: Option<String>, tracking_number: Option<String>) -> Result<Dispatch> {
        Ok(Dispatch {
            carrier: check_label("carrier", carrier)?,
            tracking_number: check_label("tracking_number", tracking_number)?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.carrier.is_none() && self.tracking_number.is_none()
    }
}

fn check_label(field: &str, value: Option<String>) -> Result<Option<String>> {
    let Some(value) = value else {
        return Ok(None);
    };
    let value = value.trim();
    if value.is_empty() {
        return Err(ShippingError::Validation(format!(
            "{field} cannot be blank; leave it out instead"
        )));
    }
    if value.chars().count() > MAX_LABEL_CHARS {
        return Err(ShippingError::Validation(format!(
            "{field} is longer than {MAX_LABEL_CHARS} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ShippingError::Validation(format!(
            "{field} cannot contain control characters"
        )));
    }
    Ok(Some(value.to_owned()))
}

/// Does `scope` cover a shipment of `owner`?
pub fn in_scope(scope: OwnerScope, owner: Option<i64>) -> bool {
    match scope {
        OwnerScope::All => true,
        OwnerScope::Owner(only) => only == owner,
    }
}

/// Move shipment `id` to `to` and announce it through the outbox, in one
/// transaction. `dispatch` may only be given when shipping. A shipment outside
/// `scope` is not found: the owner is checked on the locked row, so a `paid-order`
/// that records the customer meanwhile cannot slip between check and move.
pub async fn advance(
    pool: &PgPool,
    id: i64,
    to: ShipmentStatus,
    dispatch: Dispatch,
    scope: OwnerScope,
) -> Result<Shipment> {
    if to != ShipmentStatus::Shipped && !dispatch.is_empty() {
        return Err(ShippingError::Validation(
            "carrier and tracking_number can only be given when shipping".into(),
        ));
    }
    let mut tx = pool.begin().await?;
    let current = lock(&mut tx, id).await?;
    if !in_scope(scope, current.customer_id) {
        return Err(ShippingError::NotFound(id));
    }
    let next = current
        .status
        .move_to(to)
        .map_err(|source| ShippingError::InvalidTransition {
            shipment_id: id,
            source,
        })?;
    if next == ShipmentStatus::Shipped && current.paid_at.is_none() {
        return Err(ShippingError::OrderNotPaid {
            shipment_id: id,
            order_id: current.order_id,
        });
    }
    let row: ShipmentRow = sqlx::query_as(AssertSqlSafe(format!(
        "update shipments set
             status = $2,
             shipped_at = case when $2 = 'shipped' then now() else shipped_at end,
             delivered_at = case when $2 = 'delivered' then now() else delivered_at end,
             carrier = coalesce($3, carrier),
             tracking_number = coalesce($4, tracking_number),
             updated_at = now()
         where id = $1 returning {COLUMNS}"
    )))
    .bind(id)
    .bind(next.as_str())
    .bind(dispatch.carrier)
    .bind(dispatch.tracking_number)
    .fetch_one(&mut *tx)
    .await?;
    let shipment = to_shipment(row)?;
    announce(&mut tx, &shipment).await?;
    tx.commit().await?;
    tracing::debug!(
        shipment_id = id,
        order_id = shipment.order_id,
        status = %next,
        "shipment moved"
    );
    Ok(shipment)
}

/// Write the event of the status `shipment` just entered to the outbox.
async fn announce(conn: &mut PgConnection, shipment: &Shipment) -> Result<()> {
    match shipment.status {
        ShipmentStatus::Pending => {}
        ShipmentStatus::Shipped => {
            outbox::enqueue(
                conn,
                SERVICE,
                ShipmentShipped {
                    shipment_id: shipment.id,
                    order_id: shipment.order_id,
                    customer_id: shipment.customer_id,
                    shipped_at: shipment.shipped_at.unwrap_or(shipment.updated_at),
                },
            )
            .await?;
        }
        ShipmentStatus::Delivered => {
            outbox::enqueue(
                conn,
                SERVICE,
                ShipmentDelivered {
                    shipment_id: shipment.id,
                    order_id: shipment.order_id,
                    customer_id: shipment.customer_id,
                    delivered_at: shipment.delivered_at.unwrap_or(shipment.updated_at),
                },
            )
            .await?;
        }
    }
    Ok(())
}
