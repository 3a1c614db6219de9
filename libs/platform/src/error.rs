//! HTTP errors: every 4xx and 5xx answer is `{"error": {"code", "message", "details"?}}`.
//! Extractors here ([`Json`], [`Path`], [`Query`]) turn malformed input into a 400
//! with a message that says what is wrong, never axum's plain-text rejections.
//! A 5xx never shows internals: the cause is logged with its chain, the client gets
//! a generic message and the request id to quote.
//!
//! What every API accepts, whatever its OpenAPI document says about one field:
//! - an integer may be written as a whole number with a zero fraction (`2.0` is `2`,
//!   as JSON Schema reads `"type": "integer"`);
//! - no text holds the NUL character (U+0000, which PostgreSQL cannot store): a body,
//!   path or query string with one is a 400 (the documents say so on every string:
//!   [`crate::http::public_router`]).

use std::borrow::Cow;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sales_contracts::api::{ErrorBody, ErrorResponse};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An error answer. Build one with the constructors; services convert their own
/// error enums into it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Cow<'static, str>,
    pub message: String,
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: impl Serialize) -> Self {
        self.details = serde_json::to_value(details).ok();
        self
    }

    /// 400 `validation_failed`: a field is missing or out of range.
    pub fn validation(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "validation_failed", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409 with a specific code (`insufficient_stock`, `invalid_transition`...).
    pub fn conflict(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    /// 503 `unavailable`: a dependency is down; the client may retry.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500: logs `err` with its cause chain, tells the client nothing internal.
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        let err = err.into();
        tracing::error!(error = format!("{err:#}"), "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the server failed to handle the request; quote the x-request-id header when reporting it",
        )
    }

    pub fn body(&self) -> ErrorResponse {
        ErrorResponse {
            error: ErrorBody {
                code: self.code.to_string(),
                message: self.message.clone(),
                details: self.details.clone(),
            },
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        (status, axum::Json(self.body())).into_response()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        if database_unavailable(&err) {
            tracing::warn!(error = %err, "database unavailable");
            return ApiError::unavailable("the database is unavailable; try again shortly");
        }
        ApiError::internal(err)
    }
}

/// Whether `err` says the database cannot be reached or is going away (an outage,
/// which passes), not that the request went wrong: no connection to be had, the
/// connection broken, or the server shutting down, starting or out of connections
/// (SQLSTATE classes 08 and 53, and 57P01 to 57P03).
pub fn database_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::Io(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08")
                || code.starts_with("53")
                || matches!(&*code, "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

/// JSON body extractor and responder: like `axum::Json`, but a bad body is a 400
/// (413 when too large, 415 without a JSON content type) with a clear message; an
/// integer may be written `2.0`, and no string may hold a NUL (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(req.headers()) {
            return Err(unsupported_media_type());
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(bytes_rejection)?;
        let text = normalise_json(&bytes)?;
        match axum::Json::<T>::from_bytes(&text) {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// `application/json` or any `application/...+json`, as `axum::Json` requires.
fn has_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let subtype = subtype.to_ascii_lowercase();
    kind.eq_ignore_ascii_case("application") && (subtype == "json" || subtype.ends_with("+json"))
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the body as JSON with the header Content-Type: application/json",
    )
}

fn bytes_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body is larger than this service accepts",
        )
    } else {
        ApiError::new(rejection.status(), "bad_request", rejection.body_text())
    }
}

/// The body as the deserializer should read it: numbers written as a whole number
/// with a zero fraction (`2.0`, `-7.00`) lose the fraction, so an integer field
/// takes them (JSON Schema's `integer` admits them); every other number and all
/// text stay as they are. A string holding NUL (`\u0000`) is refused. Borrowed
/// when nothing changes.
pub fn normalise_json(body: &[u8]) -> Result<Cow<'_, [u8]>, ApiError> {
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    let mut copied = 0;
    while i < body.len() {
        match body[i] {
            b'"' => {
                // A string: skip to its closing quote, looking at every escape.
                i += 1;
                while i < body.len() && body[i] != b'"' {
                    if body[i] == b'\\' {
                        if body.get(i + 1) == Some(&b'u')
                            && body.get(i + 2..i + 6) == Some(b"0000".as_slice())
                        {
                            return Err(ApiError::validation(
                                "request body is invalid: text must not contain the NUL character (\\u0000)",
                            ));
                        }
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                if body[i] == b'-' {
                    i += 1;
                }
                let digits_start = i;
                while i < body.len() && body[i].is_ascii_digit() {
                    i += 1;
                }
                let whole_end = i;
                let mut zero_fraction = false;
                if i < body.len() && body[i] == b'.' {
                    i += 1;
                    let fraction_start = i;
                    while i < body.len() && body[i] == b'0' {
                        i += 1;
                    }
                    zero_fraction = i > fraction_start;
                    while i < body.len() && body[i].is_ascii_digit() {
                        zero_fraction = false;
                        i += 1;
                    }
                }
                let exponent = i < body.len() && matches!(body[i], b'e' | b'E');
                if zero_fraction && !exponent && whole_end > digits_start {
                    let buffer = out.get_or_insert_with(|| Vec::with_capacity(body.len()));
                    buffer.extend_from_slice(&body[copied..whole_end]);
                    copied = i;
                }
            }
            _ => i += 1,
        }
    }
    Ok(match out {
        Some(mut buffer) => {
            buffer.extend_from_slice(&body[copied.min(body.len())..]);
            Cow::Owned(buffer)
        }
        None => Cow::Borrowed(body),
    })
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => {
            ApiError::validation(format!("request body is invalid: {}", innermost(&e)))
        }
        JsonRejection::JsonSyntaxError(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("request body is not valid JSON: {}", innermost(&e)),
        ),
        JsonRejection::MissingJsonContentType(_) => unsupported_media_type(),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body is larger than this service accepts",
            )
        }
        other => ApiError::new(other.status(), "bad_request", other.body_text()),
    }
}

/// An error and every cause under it, `outer: inner: innermost`, for logs and
/// messages (an HTTP client's error alone often says only "error sending request").
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The deepest source's message: serde's own words, without axum's wrapper text.
fn innermost(err: &dyn std::error::Error) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// Path extractor whose failures are 400 `invalid_path` (e.g. `/orders/abc`).
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.path().contains("%00") {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_path",
                "invalid path parameter: text must not contain the NUL character (%00)",
            ));
        }
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_path",
                format!("invalid path parameter: {}", e.body_text()),
            )),
            Err(other) => Err(ApiError::new(
                other.status(),
                "invalid_path",
                other.body_text(),
            )),
        }
    }
}

/// Query extractor whose failures are 400 `invalid_query`.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.query().is_some_and(|q| q.contains("%00")) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "invalid query string: text must not contain the NUL character (%00)",
            ));
        }
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("invalid query string: {}", innermost(&e)),
            )),
            Err(other) => Err(ApiError::new(
                other.status(),
                "invalid_query",
                other.body_text(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use serde::Deserialize;

    use super::*;

    fn normalised(json: &str) -> String {
        String::from_utf8(normalise_json(json.as_bytes()).unwrap().into_owned()).unwrap()
    }

    #[test]
    fn whole_numbers_lose_a_zero_fraction_and_nothing_else_changes() {
        assert_eq!(
            normalised(r#"{"a": 2.0, "b": -7.00, "c": [1.0,2.50,3.0e2]}"#),
            r#"{"a": 2, "b": -7, "c": [1,2.50,3.0e2]}"#
        );
        assert_eq!(
            normalised(r#"{"a": "2.0", "b\"2.0": 1.05}"#),
            r#"{"a": "2.0", "b\"2.0": 1.05}"#
        );
        assert_eq!(normalised("2147483647.0"), "2147483647");
        assert_eq!(normalised("0.0"), "0");
        assert_eq!(normalised("-0.0"), "-0");
        assert_eq!(normalised(r#"{"a":"\\"}"#), r#"{"a":"\\"}"#);
        assert!(matches!(
            normalise_json(b"{\"a\": 1}").unwrap(),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn nul_in_text_is_refused_but_an_escaped_backslash_is_not_nul() {
        let err = normalise_json(br#"{"name": "a\u0000b"}"#).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.message.contains("NUL"), "{err}");
        assert!(normalise_json(br#"{"name": "a\\u0000b"}"#).is_ok());
    }

    #[derive(Debug, Deserialize)]
    struct Body32 {
        quantity: i32,
        name: String,
    }

    async fn extract(content_type: Option<&str>, body: &str) -> Result<Body32, ApiError> {
        let mut req = axum::http::Request::builder().method("POST").uri("/");
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let req = req.body(Body::from(body.to_owned())).unwrap();
        Json::<Body32>::from_request(req, &())
            .await
            .map(|Json(b)| b)
    }

    #[tokio::test]
    async fn the_json_extractor_takes_whole_floats_and_refuses_clearly() {
        let ok = extract(
            Some("application/json"),
            r#"{"quantity": 2147483647.0, "name": "x"}"#,
        )
        .await
        .unwrap();
        assert_eq!(ok.quantity, i32::MAX);
        let ok = extract(
            Some("application/merge-patch+json; charset=utf-8"),
            r#"{"quantity": 1, "name": "x"}"#,
        )
        .await
        .unwrap();
        assert_eq!(ok.name, "x");
        let err = extract(None, r#"{"quantity": 1, "name": "x"}"#)
            .await
            .unwrap_err();
        assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let err = extract(Some("text/plain"), "{}").await.unwrap_err();
        assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let err = extract(
            Some("application/json"),
            r#"{"quantity": 1.5, "name": "x"}"#,
        )
        .await
        .unwrap_err();
        assert_eq!(
            (err.status, err.code.as_ref()),
            (StatusCode::BAD_REQUEST, "validation_failed")
        );
        let err = extract(
            Some("application/json"),
            r#"{"quantity": 1, "name": "\u0000"}"#,
        )
        .await
        .unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        let err = extract(Some("application/json"), "{").await.unwrap_err();
        assert_eq!(
            (err.status, err.code.as_ref()),
            (StatusCode::BAD_REQUEST, "malformed_json")
        );
    }

    #[tokio::test]
    async fn nul_in_a_path_or_query_is_a_400() {
        let (mut parts, ()) = axum::http::Request::builder()
            .uri("/items/a%00b?name=x")
            .body(())
            .unwrap()
            .into_parts();
        let err = Path::<String>::from_request_parts(&mut parts, &())
            .await
            .unwrap_err();
        assert_eq!(
            (err.status, err.code.as_ref()),
            (StatusCode::BAD_REQUEST, "invalid_path")
        );
        let (mut parts, ()) = axum::http::Request::builder()
            .uri("/items?name=a%00")
            .body(())
            .unwrap()
            .into_parts();
        let err =
            Query::<std::collections::HashMap<String, String>>::from_request_parts(&mut parts, &())
                .await
                .unwrap_err();
        assert_eq!(
            (err.status, err.code.as_ref()),
            (StatusCode::BAD_REQUEST, "invalid_query")
        );
    }
}
