//! Everything that can go wrong with customers, and the HTTP answer for each.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sales_platform::ApiError;

use crate::passwords::PasswordError;
use crate::tokens::SigningError;

pub type Result<T, E = CustomerError> = std::result::Result<T, E>;

/// The one message for a wrong email and a wrong password alike, so that a failed
/// login does not tell whether an account exists.
pub const INVALID_CREDENTIALS: &str = "the email or the password is incorrect";

#[derive(Debug, thiserror::Error)]
pub enum CustomerError {
    #[error("{0}")]
    Validation(String),
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("{INVALID_CREDENTIALS}")]
    InvalidCredentials,
    #[error("this route is for a signed-in customer: log in at POST /api/v1/customers/login")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("customer {0} not found")]
    NotFound(i64),
    #[error("too many failed attempts; try again in {retry_after} s")]
    Throttled { retry_after: u64 },
    #[error("the tokens were revoked, but not every gateway could be told yet; try again shortly")]
    RevocationNotPublished,
    #[error(transparent)]
    Signing(#[from] SigningError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for CustomerError {
    fn from(err: sqlx::Error) -> Self {
        // Two registrations of one email racing: the unique index decides.
        if let sqlx::Error::Database(db) = &err
            && db.constraint() == Some("customers_email_key")
        {
            return CustomerError::EmailTaken;
        }
        CustomerError::Database(err)
    }
}

impl From<CustomerError> for ApiError {
    fn from(err: CustomerError) -> Self {
        let message = err.to_string();
        match err {
            CustomerError::Validation(_) => ApiError::validation(message),
            CustomerError::EmailTaken => ApiError::conflict("email_taken", message),
            CustomerError::InvalidCredentials => {
                ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", message)
            }
            CustomerError::Unauthenticated => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
            }
            CustomerError::Forbidden(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
            }
            CustomerError::NotFound(_) => ApiError::not_found(message),
            CustomerError::Throttled { .. } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", message)
            }
            CustomerError::RevocationNotPublished => ApiError::unavailable(message),
            CustomerError::Signing(e) => ApiError::internal(e),
            CustomerError::Password(PasswordError::Busy) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                PasswordError::Busy.to_string(),
            ),
            CustomerError::Password(e) => ApiError::internal(e),
            CustomerError::Database(e) => ApiError::from(e),
        }
    }
}

impl CustomerError {
    /// Seconds a client should wait before trying again, for 429 and busy 503s.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            CustomerError::Throttled { retry_after } => Some(*retry_after),
            CustomerError::Password(PasswordError::Busy)
            | CustomerError::RevocationNotPublished => Some(1),
            _ => None,
        }
    }
}

impl IntoResponse for CustomerError {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after();
        let mut response = ApiError::from(self).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
