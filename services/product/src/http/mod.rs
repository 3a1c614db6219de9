//! The product service's HTTP API: the canonical catalogue under `/api/v1/products`
//! and seed 000's `GET /products` ([`seed000`]).

pub mod seed000;

use axum::extract::State;
use axum::http::StatusCode;
use sales_contracts::Money;
use sales_contracts::api::ErrorResponse;
use sales_contracts::api::catalogue::Product;
use sales_platform::client::ServiceClient;
use sales_platform::listing::{Page, parse_id_list};
use sales_platform::{ApiError, Json, Path, Query};
use serde::Deserialize;
use sqlx::PgPool;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::catalogue::{self, NewProduct};
use crate::error::CatalogueError;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// The inventory, for the stock levels seed 000's product list shows.
    pub inventory: ServiceClient,
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
        .routes(routes!(get_product))
        .routes(routes!(seed000::list_products_with_stock))
        .with_state(state)
}

/// A product to add to the catalogue.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProduct {
    /// Stock-keeping unit; generated as `SKU-<id>` when left out.
    #[schema(example = "SKU-ABC")]
    sku: Option<String>,
    #[schema(example = "Espresso beans 1 kg")]
    name: String,
    #[serde(default)]
    description: String,
    price: Money,
    /// Units the inventory starts with (default 0).
    #[serde(default)]
    #[schema(example = 10)]
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
pub struct ProductFilter {
    /// Only these products: comma-separated ids, e.g. `1,2,3`.
    ids: Option<String>,
}

/// List products, oldest first.
#[utoipa::path(get, path = "/api/v1/products", tag = "products", params(ProductFilter, Page),
    responses((status = 200, body = [Product]), (status = 400, body = ErrorResponse)))]
async fn list_products(
    State(state): State<AppState>,
    Query(filter): Query<ProductFilter>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<Product>>, ApiError> {
    let (limit, offset) = page.bounds()?;
    let ids = filter
        .ids
        .as_deref()
        .map(|raw| parse_id_list(raw, "ids"))
        .transpose()?;
    let mut conn = state.pool.acquire().await?;
    Ok(Json(
        catalogue::list_products(&mut conn, ids.as_deref(), limit, offset).await?,
    ))
}

/// One product.
#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "products",
    params(("id" = i64, Path)),
    responses((status = 200, body = Product), (status = 404, body = ErrorResponse)))]
async fn get_product(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Product>, CatalogueError> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(catalogue::get_product(&mut conn, id).await?))
}
