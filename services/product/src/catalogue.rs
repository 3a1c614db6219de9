//! The catalogue: adding products and reading them. Adding a product announces it
//! (`product-created`, through the outbox) so the inventory opens its stock item.

use chrono::{DateTime, Utc};
use sales_contracts::api::catalogue::Product;
use sales_contracts::events::ProductCreated;
use sales_contracts::{Currency, Money};
use sales_platform::outbox;
use sqlx::{AssertSqlSafe, PgConnection, PgPool};

use crate::SERVICE;
use crate::error::{CatalogueError, Result};

/// What it takes to add a product.
#[derive(Clone, Debug)]
pub struct NewProduct {
    /// Generated (`SKU-<id>`) when not given.
    pub sku: Option<String>,
    pub name: String,
    pub description: String,
    pub price: Money,
    /// Units the inventory starts with.
    pub initial_stock: i32,
}

#[derive(sqlx::FromRow)]
struct ProductRow {
    id: i64,
    sku: String,
    name: String,
    description: String,
    price_amount: i64,
    currency: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<ProductRow> for Product {
    fn from(r: ProductRow) -> Self {
        Product {
            id: r.id,
            sku: r.sku,
            name: r.name,
            description: r.description,
            price: Money::new(r.price_amount, r.currency.parse().unwrap_or(Currency::USD)),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// The columns its queries select or return, put in with `format!` under
/// `AssertSqlSafe` (sqlx 0.9): a constant, never input; values are bound parameters.
const COLUMNS: &str = "id, sku, name, description, price_amount, currency, created_at, updated_at";

/// The most characters a product's name may have.
pub const MAX_NAME_CHARS: usize = 200;
/// The most characters a description may have.
pub const MAX_DESCRIPTION_CHARS: usize = 5000;
/// The most characters a SKU may have.
pub const MAX_SKU_CHARS: usize = 64;

/// A name: 1 to 200 characters, not only spaces (they are trimmed off).
fn validate_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(CatalogueError::Validation(format!(
            "name must be 1 to {MAX_NAME_CHARS} characters, not only spaces"
        )));
    }
    Ok(())
}

fn validate_description(description: &str) -> Result<()> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(CatalogueError::Validation(format!(
            "description must be at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    Ok(())
}

/// A SKU names the product's stock item in paths (`/api/v1/inventory/items/{sku}`):
/// 1 to 64 characters, not only spaces and dots (`.` and `..` are path steps),
/// without control characters, `/`, `\`, `;` or `%` (which no path can carry
/// unambiguously).
pub fn validate_sku(sku: &str) -> Result<()> {
    let fits_a_path = !sku
        .chars()
        .any(|c| c.is_control() || matches!(c, '/' | '\\' | ';' | '%'));
    let named = sku.chars().any(|c| !c.is_whitespace() && c != '.');
    if !named || !fits_a_path || sku.chars().count() > MAX_SKU_CHARS {
        return Err(CatalogueError::Validation(format!(
            "sku must be 1 to {MAX_SKU_CHARS} characters, not only spaces and dots, without \
             control characters, /, \\, ; or %"
        )));
    }
    Ok(())
}

fn validate(p: &NewProduct) -> Result<()> {
    validate_name(&p.name)?;
    if let Some(sku) = &p.sku {
        validate_sku(sku)?;
    }
    if p.price.amount < 0 {
        return Err(CatalogueError::Validation(
            "price cannot be negative".into(),
        ));
    }
    if p.initial_stock < 0 {
        return Err(CatalogueError::Validation(
            "initial stock cannot be negative".into(),
        ));
    }
    validate_description(&p.description)
}

/// Add a product and announce it, in one transaction.
pub async fn create_product(pool: &PgPool, new: NewProduct) -> Result<Product> {
    validate(&new)?;
    let mut tx = pool.begin().await?;
    let id: i64 = sqlx::query_scalar("select nextval(pg_get_serial_sequence('products', 'id'))")
        .fetch_one(&mut *tx)
        .await?;
    let sku = new
        .sku
        .as_deref()
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| format!("SKU-{id}"));
    let row: ProductRow = sqlx::query_as(AssertSqlSafe(format!(
        "insert into products (id, sku, name, description, price_amount, currency)
         values ($1, $2, $3, $4, $5, $6) returning {COLUMNS}"
    )))
    .bind(id)
    .bind(&sku)
    .bind(new.name.trim())
    .bind(&new.description)
    .bind(new.price.amount)
    .bind(new.price.currency.as_str())
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            CatalogueError::DuplicateSku(sku.clone())
        }
        _ => CatalogueError::Database(e),
    })?;
    let product = Product::from(row);
    outbox::enqueue(
        &mut tx,
        SERVICE,
        ProductCreated {
            product_id: product.id,
            sku: product.sku.clone(),
            name: product.name.clone(),
            price: product.price,
            initial_stock: new.initial_stock,
        },
    )
    .await?;
    tx.commit().await?;
    tracing::debug!(product_id = product.id, sku = %product.sku, "product added");
    Ok(product)
}

pub async fn get_product(conn: &mut PgConnection, id: i64) -> Result<Product> {
    sqlx::query_as::<_, ProductRow>(AssertSqlSafe(format!(
        "select {COLUMNS} from products where id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .map(Product::from)
    .ok_or(CatalogueError::NotFound(id))
}

/// Which products to list.
#[derive(Clone, Debug, Default)]
pub struct ProductFilter {
    pub ids: Option<Vec<i64>>,
    pub skus: Option<Vec<String>>,
}

/// Products matching `filter` (those that exist), oldest first.
pub async fn list_products(
    conn: &mut PgConnection,
    filter: &ProductFilter,
    limit: i64,
    offset: i64,
) -> Result<Vec<Product>> {
    let rows: Vec<ProductRow> = sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from products
         where ($1::bigint[] is null or id = any($1)) and ($2::text[] is null or sku = any($2))
         order by id limit $3 offset $4"
    )))
    .bind(filter.ids.as_deref())
    .bind(filter.skus.as_deref())
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Product::from).collect())
}

/// What may change about a product (its SKU may not: stock and orders refer to it).
#[derive(Clone, Debug, Default)]
pub struct ProductChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub price: Option<Money>,
}

/// Change a product. The caller invalidates its cache entry after this returns.
pub async fn update_product(pool: &PgPool, id: i64, changes: ProductChanges) -> Result<Product> {
    if let Some(name) = &changes.name {
        validate_name(name)?;
    }
    if changes.price.is_some_and(|p| p.amount < 0) {
        return Err(CatalogueError::Validation(
            "price cannot be negative".into(),
        ));
    }
    if let Some(description) = &changes.description {
        validate_description(description)?;
    }
    let row: ProductRow = sqlx::query_as(AssertSqlSafe(format!(
        "update products set
            name = coalesce($2, name),
            description = coalesce($3, description),
            price_amount = coalesce($4, price_amount),
            currency = coalesce($5, currency),
            updated_at = now()
         where id = $1 returning {COLUMNS}"
    )))
    .bind(id)
    .bind(changes.name.as_deref().map(str::trim))
    .bind(changes.description.as_deref())
    .bind(changes.price.map(|p| p.amount))
    .bind(changes.price.map(|p| p.currency.to_string()))
    .fetch_optional(pool)
    .await?
    .ok_or(CatalogueError::NotFound(id))?;
    tracing::debug!(product_id = id, "product changed");
    Ok(row.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(name: &str, sku: Option<&str>, description: &str) -> NewProduct {
        NewProduct {
            sku: sku.map(str::to_owned),
            name: name.into(),
            description: description.into(),
            price: Money::new(100, Currency::USD),
            initial_stock: 0,
        }
    }

    #[test]
    fn lengths_count_characters_as_the_api_document_does() {
        // 200 characters of two bytes each: within the document's maxLength.
        let name = "é".repeat(200);
        assert!(validate(&product(&name, None, "")).is_ok());
        assert!(validate(&product(&"é".repeat(201), None, "")).is_err());
        assert!(validate(&product("n", None, &"ü".repeat(5000))).is_ok());
        assert!(validate(&product("n", None, &"ü".repeat(5001))).is_err());
        assert!(validate(&product("n", Some(&"ß".repeat(64)), "")).is_ok());
        assert!(validate(&product("n", Some(&"ß".repeat(65)), "")).is_err());
        assert!(validate(&product("   ", None, "")).is_err());
    }

    #[test]
    fn a_sku_must_fit_in_a_path() {
        for sku in ["SKU-ABC", "a.b", "Kaffee 1 kg", "x~y", "..a"] {
            assert!(validate_sku(sku).is_ok(), "{sku:?}");
        }
        for sku in [
            "", " ", ".", "..", " . ", "a/b", "a\\b", "a;b", "100%", "a\u{0}b", "a\tb", "a\u{85}b",
        ] {
            assert!(validate_sku(sku).is_err(), "{sku:?}");
        }
    }
}
