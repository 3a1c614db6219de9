//! The product service's HTTP API: the canonical catalogue under `/api/v1/products`,
//! seed 000's `GET /products` ([`seed000`]) and seed 002's `POST /products` and
//! `GET /products/{id}` ([`seed002`]).

pub mod access;
pub mod seed000;
pub mod seed002;

use axum::extract::State;
use axum::http::StatusCode;
use sales_contracts::api::ErrorResponse;
use sales_contracts::api::catalogue::Product;
use sales_contracts::{Currency, Money};
use sales_platform::cache::Cache;
use sales_platform::client::ServiceClient;
use sales_platform::listing::{Page, parse_id_list};
use sales_platform::{ApiError, Json, Path, Query};
use serde::Deserialize;
use sqlx::PgPool;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::catalogue::{self, NewProduct, ProductChanges, ProductFilter};
use crate::error::CatalogueError;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// The inventory, for the stock levels the seed routes show.
    pub inventory: ServiceClient,
    /// `product:{id}` entries (seed 003's cache-aside, never stale after a change).
    pub cache: Cache,
    /// Currency of seed 002's plain-number prices.
    pub default_currency: Currency,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Product service",
        description = "The catalogue: products with SKUs and prices in integer minor units."
    ),
    components(schemas(ErrorResponse))
)]
struct ApiDoc;

pub fn router(state: AppState) -> OpenApiRouter {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_products, create_product))
        .routes(routes!(get_product, update_product))
        .routes(routes!(
            seed000::list_products_with_stock,
            seed002::create_product
        ))
        .routes(routes!(seed002::get_product))
        .with_state(state)
}

/// A product, from the cache when it is there.
pub async fn cached_product(state: &AppState, id: i64) -> Result<Product, CatalogueError> {
    state
        .cache
        .get_or_load("product", &format!("product:{id}"), || async {
            let mut conn = state.pool.acquire().await?;
            catalogue::get_product(&mut conn, id).await
        })
        .await
}

/// A product to add to the catalogue.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProduct {
    /// Stock-keeping unit; generated as `SKU-<id>` when left out. 1 to 64 characters,
    /// not only spaces and dots, without control characters, `/`, `\`, `;` or `%`
    /// (it names the stock item in paths); surrounding spaces are dropped.
    #[schema(schema_with = sales_contracts::api::stock::sku_schema)]
    sku: Option<String>,
    /// 1 to 200 characters, not only spaces; surrounding spaces are dropped.
    #[schema(
        example = "Espresso beans 1 kg",
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
    )]
    name: String,
    /// At most 5000 characters.
    #[serde(default)]
    #[schema(max_length = 5000)]
    description: String,
    /// Cannot be negative.
    #[schema(schema_with = sales_contracts::money::request_schemas::non_negative_money)]
    price: Money,
    /// Units the inventory starts with (default 0).
    #[serde(default)]
    #[schema(example = 10, minimum = 0)]
    initial_stock: i32,
}

/// Add a product. Its stock item appears in the inventory moments later.
#[utoipa::path(post, path = "/api/v1/products", tag = "products", request_body = CreateProduct,
    responses((status = 201, body = Product), (status = 400, body = ErrorResponse),
               (status = 409, description = "SKU taken", body = ErrorResponse)))]
async fn create_product(
    State(state): State<AppState>,
    Json(body): Json<CreateProduct>,
) -> Result<(StatusCode, Json<Product>), CatalogueError> {
    let product = catalogue::create_product(
        &state.pool,
        NewProduct {
            sku: body.sku,
            name: body.name,
            description: body.description,
            price: body.price,
            initial_stock: body.initial_stock,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(product)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListFilter {
    /// Only these products: comma-separated ids, e.g. `1,2,3` (at most 500).
    #[param(schema_with = sales_platform::listing::id_list_schema)]
    ids: Option<String>,
    /// Only these SKUs: comma-separated, e.g. `SKU-ABC,SKU-XYZ`.
    skus: Option<String>,
}

/// List products, oldest first.
#[utoipa::path(get, path = "/api/v1/products", tag = "products", params(ListFilter, Page),
    responses((status = 200, body = [Product]), (status = 400, body = ErrorResponse)))]
async fn list_products(
    State(state): State<AppState>,
    Query(query): Query<ListFilter>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<Product>>, ApiError> {
    let (limit, offset) = page.bounds()?;
    let filter = ProductFilter {
        ids: query
            .ids
            .as_deref()
            .map(|raw| parse_id_list(raw, "ids"))
            .transpose()?,
        skus: query.skus.as_deref().map(|raw| {
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        }),
    };
    let mut conn = state.pool.acquire().await?;
    Ok(Json(
        catalogue::list_products(&mut conn, &filter, limit, offset).await?,
    ))
}

/// One product (cached; a change is visible as soon as it is acknowledged).
#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "products",
    params(("id" = i64, Path)),
    responses((status = 200, body = Product), (status = 404, body = ErrorResponse)))]
async fn get_product(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Product>, CatalogueError> {
    Ok(Json(cached_product(&state, id).await?))
}

/// What to change about a product; fields left out stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProduct {
    /// 1 to 200 characters, not only spaces; surrounding spaces are dropped.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"
    )]
    name: Option<String>,
    /// At most 5000 characters.
    #[schema(max_length = 5000)]
    description: Option<String>,
    /// Cannot be negative.
    #[schema(schema_with = sales_contracts::money::request_schemas::optional_non_negative_money)]
    price: Option<Money>,
}

/// Change a product's name, description or price.
#[utoipa::path(put, path = "/api/v1/products/{id}", tag = "products",
    params(("id" = i64, Path)), request_body = UpdateProduct,
    responses((status = 200, body = Product), (status = 400, body = ErrorResponse),
               (status = 404, body = ErrorResponse)))]
async fn update_product(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Json(body): Json<UpdateProduct>,
) -> Result<Json<Product>, CatalogueError> {
    let product = catalogue::update_product(
        &state.pool,
        id,
        ProductChanges {
            name: body.name,
            description: body.description,
            price: body.price,
        },
    )
    .await?;
    state.cache.invalidate(&format!("product:{id}")).await;
    Ok(Json(product))
}
