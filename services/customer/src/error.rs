//! Everything that can go wrong with customers, and the HTTP answer for each.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sales_platform::ApiError;

use crate::passwords::PasswordError;
use crate::tokens::TokenError;

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
    #[error(
        "this route is for a signed-in customer: send a bearer token through the gateway \
         (which passes on x-customer-id)"
    )]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("customer {0} not found")]
    NotFound(i64),
    #[error(transparent)]
    Token(#[from] TokenError),
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
            CustomerError::Token(e) => ApiError::internal(e),
            CustomerError::Password(e) => ApiError::internal(e),
            CustomerError::Database(e) => ApiError::from(e),
        }
    }
}

impl IntoResponse for CustomerError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}
