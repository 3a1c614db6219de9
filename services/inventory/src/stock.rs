//! Stock levels: what is on hand, what is reserved, what is available.

use chrono::{DateTime, Utc};
use sales_contracts::api::stock::StockLevel;
use sqlx::{AssertSqlSafe, PgConnection};

use crate::error::{InventoryError, Result};

#[derive(sqlx::FromRow)]
struct StockRow {
    sku: String,
    product_id: Option<i64>,
    on_hand: i32,
    reserved: i32,
    updated_at: DateTime<Utc>,
}

impl From<StockRow> for StockLevel {
    fn from(r: StockRow) -> Self {
        StockLevel {
            sku: r.sku,
            product_id: r.product_id,
            on_hand: r.on_hand,
            reserved: r.reserved,
            available: r.on_hand - r.reserved,
            updated_at: r.updated_at,
        }
    }
}

/// The columns every query of a [`StockRow`] selects or returns. Queries put it in with
/// `format!` under `AssertSqlSafe`: it is a constant, never anything a caller sent
/// (values are always bound parameters).
const COLUMNS: &str = "sku, product_id, on_hand, reserved, updated_at";

/// The most units an item can count, on hand or reserved (the columns are `integer`).
pub const MAX_COUNT: i32 = i32::MAX;

/// Every item, by SKU; or only those of the given products.
pub async fn list_stock(
    conn: &mut PgConnection,
    product_ids: Option<&[i64]>,
    limit: i64,
    offset: i64,
) -> Result<Vec<StockLevel>> {
    let rows: Vec<StockRow> = match product_ids {
        Some(ids) => {
            sqlx::query_as(AssertSqlSafe(format!(
                "select {COLUMNS} from stock_items where product_id = any($1) order by sku limit $2 offset $3"
            )))
            .bind(ids)
            .bind(limit)
            .bind(offset)
            .fetch_all(conn)
            .await?
        }
        None => {
            sqlx::query_as(AssertSqlSafe(format!(
                "select {COLUMNS} from stock_items order by sku limit $1 offset $2"
            )))
            .bind(limit)
            .bind(offset)
            .fetch_all(conn)
            .await?
        }
    };
    Ok(rows.into_iter().map(StockLevel::from).collect())
}

pub async fn get_stock(conn: &mut PgConnection, sku: &str) -> Result<StockLevel> {
    refuse_nul(sku)?;
    sqlx::query_as::<_, StockRow>(AssertSqlSafe(format!(
        "select {COLUMNS} from stock_items where sku = $1"
    )))
    .bind(sku)
    .fetch_optional(conn)
    .await?
    .map(StockLevel::from)
    .ok_or_else(|| InventoryError::UnknownItems(vec![sku.to_owned()]))
}

/// Set the units on hand of an item, creating it if new (a stock count, a delivery).
/// On hand can never go below what is reserved.
pub async fn set_on_hand(
    conn: &mut PgConnection,
    sku: &str,
    on_hand: i32,
    product_id: Option<i64>,
) -> Result<(StockLevel, bool)> {
    validate_sku(sku)?;
    if on_hand < 0 {
        return Err(InventoryError::Validation(
            "quantity on hand cannot be negative".into(),
        ));
    }
    let existing: Option<(i32, Option<i64>)> =
        sqlx::query_as("select reserved, product_id from stock_items where sku = $1 for update")
            .bind(sku)
            .fetch_optional(&mut *conn)
            .await?;
    let created = existing.is_none();
    if let Some((reserved, linked)) = existing {
        if on_hand < reserved {
            return Err(InventoryError::OnHandBelowReserved {
                sku: sku.to_owned(),
                reserved,
            });
        }
        if let (Some(existing), Some(wanted)) = (linked, product_id)
            && existing != wanted
        {
            return Err(InventoryError::ProductMismatch {
                sku: sku.to_owned(),
                existing,
            });
        }
    }
    let row: StockRow = sqlx::query_as(AssertSqlSafe(format!(
        "insert into stock_items (sku, product_id, on_hand) values ($1, $2, $3)
         on conflict (sku) do update
            set on_hand = excluded.on_hand,
                product_id = coalesce(stock_items.product_id, excluded.product_id),
                updated_at = now()
         returning {COLUMNS}"
    )))
    .bind(sku)
    .bind(product_id)
    .bind(on_hand)
    .fetch_one(conn)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => InventoryError::ProductLinked {
            product_id: product_id.unwrap_or_default(),
        },
        _ => InventoryError::Database(e),
    })?;
    Ok((row.into(), created))
}

/// A product joined the catalogue: open its stock item. An item that already exists
/// under that SKU (made through the stock API) is linked to the product and keeps
/// its count.
pub async fn open_item_for_product(
    conn: &mut PgConnection,
    product_id: i64,
    sku: &str,
    initial_stock: i32,
) -> Result<()> {
    sqlx::query(
        "insert into stock_items (sku, product_id, on_hand) values ($1, $2, $3)
         on conflict (sku) do update
            set product_id = coalesce(stock_items.product_id, excluded.product_id),
                updated_at = now()",
    )
    .bind(sku)
    .bind(product_id)
    .bind(initial_stock.max(0))
    .execute(conn)
    .await?;
    Ok(())
}

/// The most characters a SKU may have.
pub const MAX_SKU_CHARS: usize = 64;

/// A SKU to look up: not blank, no NUL, at most 64 characters. One that no item can
/// have (see [`validate_sku`]) is simply not found.
pub fn validate_sku_to_find(sku: &str) -> Result<()> {
    if sku.trim().is_empty() {
        return Err(InventoryError::Validation("sku must not be empty".into()));
    }
    refuse_nul(sku)?;
    if sku.chars().count() > MAX_SKU_CHARS {
        return Err(InventoryError::Validation(format!(
            "sku must be at most {MAX_SKU_CHARS} characters"
        )));
    }
    Ok(())
}

/// A SKU for a new item names it in paths (`/api/v1/inventory/items/{sku}`): 1 to 64
/// characters, not only spaces and dots (`.` and `..` are path steps), without
/// control characters, `/`, `\`, `;` or `%` (which no path carries unambiguously).
pub fn validate_sku(sku: &str) -> Result<()> {
    validate_sku_to_find(sku)?;
    let fits_a_path = !sku
        .chars()
        .any(|c| c.is_control() || matches!(c, '/' | '\\' | ';' | '%'));
    if !fits_a_path || !sku.chars().any(|c| !c.is_whitespace() && c != '.') {
        return Err(InventoryError::Validation(
            "sku must not be only dots, nor contain control characters, /, \\, ; or %".into(),
        ));
    }
    Ok(())
}

/// PostgreSQL text cannot hold a NUL character: no SKU has one, and a query with one
/// would fail in the database.
fn refuse_nul(sku: &str) -> Result<()> {
    if sku.contains('\0') {
        return Err(InventoryError::Validation(
            "sku must not contain a NUL character".into(),
        ));
    }
    Ok(())
}

/// Take units out of the warehouse directly (seed 002's stock update): only if that
/// many are available (not reserved). Returns the new level.
pub async fn take_out(
    conn: &mut PgConnection,
    product_id: i64,
    quantity: i32,
) -> Result<Option<StockLevel>> {
    if quantity < 1 {
        return Err(InventoryError::Validation(format!(
            "quantity must be at least 1, got {quantity}"
        )));
    }
    let row: Option<StockRow> = sqlx::query_as(AssertSqlSafe(format!(
        "update stock_items set on_hand = on_hand - $2, updated_at = now()
         where product_id = $1 and on_hand - reserved >= $2
         returning {COLUMNS}"
    )))
    .bind(product_id)
    .bind(quantity)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(StockLevel::from))
}

/// The stock item of a product.
pub async fn get_stock_of_product(
    conn: &mut PgConnection,
    product_id: i64,
) -> Result<Option<StockLevel>> {
    let row: Option<StockRow> = sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from stock_items where product_id = $1"
    )))
    .bind(product_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(StockLevel::from))
}

/// Refuse `sku` if it is a catalogue product's item (seed 004's callers may act only
/// on items that belong to no product). An item not there yet is no product's.
pub async fn refuse_catalogue_item(conn: &mut PgConnection, sku: &str) -> Result<()> {
    let product: Option<Option<i64>> =
        sqlx::query_scalar("select product_id from stock_items where sku = $1")
            .bind(sku)
            .fetch_optional(conn)
            .await?;
    match product {
        Some(Some(_)) => Err(InventoryError::CatalogueItem(sku.to_owned())),
        _ => Ok(()),
    }
}

/// Make `available` units orderable (seed 004's "add or update a stock item", whose
/// quantity is what can still be reserved): on hand becomes `available` plus what
/// is reserved now. That sum must still be a count (at most [`i32::MAX`]): checked
/// in the statement itself, so that a reservation made meanwhile cannot push it over.
pub async fn set_available(
    conn: &mut PgConnection,
    sku: &str,
    available: i32,
) -> Result<StockLevel> {
    validate_sku(sku)?;
    if available < 0 {
        return Err(InventoryError::Validation(
            "quantity cannot be negative".into(),
        ));
    }
    let row: Option<StockRow> = sqlx::query_as(AssertSqlSafe(format!(
        "insert into stock_items (sku, on_hand) values ($1, $2)
         on conflict (sku) do update
            set on_hand = stock_items.reserved + excluded.on_hand, updated_at = now()
            where stock_items.reserved::bigint + excluded.on_hand <= $3
         returning {COLUMNS}"
    )))
    .bind(sku)
    .bind(available)
    .bind(i64::from(MAX_COUNT))
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = row {
        return Ok(row.into());
    }
    let reserved: i32 = sqlx::query_scalar("select reserved from stock_items where sku = $1")
        .bind(sku)
        .fetch_optional(conn)
        .await?
        .unwrap_or_default();
    Err(InventoryError::TooManyUnits {
        sku: sku.to_owned(),
        quantity: available,
        reserved,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sku_must_fit_in_a_path() {
        for sku in [
            "SKU-ABC",
            "a.b",
            "Kaffee 1 kg",
            "x~y",
            "..a",
            &"ß".repeat(64),
        ] {
            assert!(validate_sku(sku).is_ok(), "{sku:?}");
        }
        for sku in [
            "",
            " ",
            ".",
            "..",
            " . ",
            "a/b",
            "a\\b",
            "a;b",
            "100%",
            "a\u{0}b",
            "a\tb",
            "a\u{85}b",
            &"ß".repeat(65),
        ] {
            assert!(validate_sku(sku).is_err(), "{sku:?}");
        }
    }
}
