//! The catalogue: adding products and reading them. Adding a product announces it
//! (`product-created`, through the outbox) so the inventory opens its stock item.

use chrono::{DateTime, Utc};
use sales_contracts::api::catalogue::Product;
use sales_contracts::events::ProductCreated;
use sales_contracts::{Currency, Money};
use sales_platform::outbox;
use sqlx::{PgConnection, PgPool};

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

const COLUMNS: &str = "id, sku, name, description, price_amount, currency, created_at, updated_at";

fn validate(p: &NewProduct) -> Result<()> {
    let name = p.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(CatalogueError::Validation(
            "name must be 1 to 200 characters".into(),
        ));
    }
    if let Some(sku) = &p.sku
        && (sku.trim().is_empty() || sku.len() > 64)
    {
        return Err(CatalogueError::Validation(
            "sku must be 1 to 64 characters".into(),
        ));
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
    if p.description.len() > 5000 {
        return Err(CatalogueError::Validation(
            "description must be at most 5000 characters".into(),
        ));
    }
    Ok(())
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
    let row: ProductRow = sqlx::query_as(&format!(
        "insert into products (id, sku, name, description, price_amount, currency)
         values ($1, $2, $3, $4, $5, $6) returning {COLUMNS}"
    ))
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
    tracing::info!(product_id = product.id, sku = %product.sku, "product added");
    Ok(product)
}

pub async fn get_product(conn: &mut PgConnection, id: i64) -> Result<Product> {
    sqlx::query_as::<_, ProductRow>(&format!("select {COLUMNS} from products where id = $1"))
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
    let rows: Vec<ProductRow> = sqlx::query_as(&format!(
        "select {COLUMNS} from products
         where ($1::bigint[] is null or id = any($1)) and ($2::text[] is null or sku = any($2))
         order by id limit $3 offset $4"
    ))
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
    if let Some(name) = &changes.name
        && (name.trim().is_empty() || name.len() > 200)
    {
        return Err(CatalogueError::Validation(
            "name must be 1 to 200 characters".into(),
        ));
    }
    if changes.price.is_some_and(|p| p.amount < 0) {
        return Err(CatalogueError::Validation(
            "price cannot be negative".into(),
        ));
    }
    if changes.description.as_ref().is_some_and(|d| d.len() > 5000) {
        return Err(CatalogueError::Validation(
            "description must be at most 5000 characters".into(),
        ));
    }
    let row: ProductRow = sqlx::query_as(&format!(
        "update products set
            name = coalesce($2, name),
            description = coalesce($3, description),
            price_amount = coalesce($4, price_amount),
            currency = coalesce($5, currency),
            updated_at = now()
         where id = $1 returning {COLUMNS}"
    ))
    .bind(id)
    .bind(changes.name.as_deref().map(str::trim))
    .bind(changes.description.as_deref())
    .bind(changes.price.map(|p| p.amount))
    .bind(changes.price.map(|p| p.currency.to_string()))
    .fetch_optional(pool)
    .await?
    .ok_or(CatalogueError::NotFound(id))?;
    tracing::info!(product_id = id, "product changed");
    Ok(row.into())
}
