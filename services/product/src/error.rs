//! What can go wrong in the catalogue, and the HTTP answer for each.

use axum::response::{IntoResponse, Response};
use sales_platform::ApiError;
use sales_platform::client::CallError;

pub type Result<T, E = CatalogueError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("{0}")]
    Validation(String),
    #[error("product {0} not found")]
    NotFound(i64),
    #[error("a product with SKU {0} already exists")]
    DuplicateSku(String),
    #[error("stock levels are unavailable: {0}")]
    StockUnavailable(CallError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<CatalogueError> for ApiError {
    fn from(err: CatalogueError) -> Self {
        let message = err.to_string();
        match err {
            CatalogueError::Validation(_) => ApiError::validation(message),
            CatalogueError::NotFound(_) => ApiError::not_found(message),
            CatalogueError::DuplicateSku(_) => ApiError::conflict("duplicate_sku", message),
            CatalogueError::StockUnavailable(e) => {
                tracing::warn!(error = %e, "inventory call failed");
                ApiError::unavailable(message)
            }
            CatalogueError::Database(e) => ApiError::from(e),
        }
    }
}

impl IntoResponse for CatalogueError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}
