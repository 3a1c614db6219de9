//! A JSON body that may be left out: `POST /api/v1/shipments/{id}/ship` works with
//! no body at all, and a body that is there is checked like any other (400 when
//! malformed, 413 when too large, 415 without a JSON content type).

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use sales_platform::{ApiError, Json};
use serde::de::DeserializeOwned;

/// `None` for an empty (or all-whitespace) body, otherwise the parsed JSON.
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        // Reading through the extractor keeps the service's body size limit.
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "request body is larger than this service accepts",
                )
            } else {
                ApiError::new(e.status(), "bad_request", e.body_text())
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        let mut body = Request::new(Body::from(bytes));
        *body.headers_mut() = headers;
        let Json(value) = Json::<T>::from_request(body, state).await?;
        Ok(OptionalJson(Some(value)))
    }
}
