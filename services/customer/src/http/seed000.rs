//! Seed 000's account routes, with its request and answer shapes:
//!
//! - `POST /users/user/register {"email", "password", "name"}` -> 201
//!   `{"success": true, "data": {"token"}, "error_message": null}`; an email already
//!   registered -> 409 `{"success": false, "data": null, "error_message": "..."}`.
//! - `POST /users/user/login {"email", "password"}` -> 200
//!   `{"success": true, "data": {"token"}, "error_message": null}`.
//!
//! Every error keeps that envelope, with the status the canonical API would use.
//! The registration route is open only while the seeds' routes are (its 409 tells
//! which emails have accounts); the canonical one does not tell.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sales_platform::identity::Caller;
use sales_platform::{ApiError, Json};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::CustomerError;
use crate::profiles::ProfileDetails;
use crate::registration::{NewAccount, Registered, register as register_account};
use crate::{CustomerContext, SignedIn, login};

/// Seed 000's answer envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct Seed000TokenAnswer {
    success: bool,
    data: Option<Seed000Token>,
    error_message: Option<String>,
}

/// An error on seed 000's routes: its envelope, or the platform's error body when the
/// request is refused before it reaches the route (no valid token).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Seed000Error {
    Seed(Seed000TokenAnswer),
    Platform(sales_contracts::api::ErrorResponse),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Seed000Token {
    /// A JWT (EdDSA): sub (the customer id), name, email, role, iat, exp, iss.
    token: String,
}

fn ok(status: StatusCode, signed_in: SignedIn) -> Response {
    (
        status,
        axum::Json(Seed000TokenAnswer {
            success: true,
            data: Some(Seed000Token {
                token: signed_in.token.token,
            }),
            error_message: None,
        }),
    )
        .into_response()
}

/// Any error in seed 000's envelope, with the status the canonical API would use
/// (and its `Retry-After`).
fn failed(err: impl Into<CustomerErrorOrApi>) -> Response {
    let (retry_after, err) = match err.into() {
        CustomerErrorOrApi::Customer(e) => (e.retry_after(), ApiError::from(e)),
        CustomerErrorOrApi::Api(e) => (None, e),
    };
    let mut response = (
        err.status,
        axum::Json(Seed000TokenAnswer {
            success: false,
            data: None,
            error_message: Some(err.message),
        }),
    )
        .into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

enum CustomerErrorOrApi {
    Customer(CustomerError),
    Api(ApiError),
}

impl From<CustomerError> for CustomerErrorOrApi {
    fn from(e: CustomerError) -> Self {
        CustomerErrorOrApi::Customer(e)
    }
}

impl From<ApiError> for CustomerErrorOrApi {
    fn from(e: ApiError) -> Self {
        CustomerErrorOrApi::Api(e)
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Seed000Register {
    /// `local@domain.tld` (see the canonical registration).
    #[schema(
        example = "ada@example.com",
        max_length = 254,
        pattern = r"^[A-Za-z0-9_%+-]{1,16}(\.[A-Za-z0-9_%+-]{1,16}){0,2}@([A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?\.){1,3}[A-Za-z]{2,10}$"
    )]
    email: String,
    /// 8 to 256 characters.
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 256)]
    password: SecretString,
    /// Seed 000's schema also calls it `fullname`. 1 to 200 characters, not only
    /// spaces, no control characters.
    #[serde(alias = "fullname")]
    #[schema(
        example = "Ada Lovelace",
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    name: String,
}

/// Seed 000: register and get a token (open only while the seeds' routes are).
#[utoipa::path(post, path = "/users/user/register", tag = "seed 000",
    operation_id = "seed000_register",
    request_body = Seed000Register,
    responses((status = 201, body = Seed000TokenAnswer),
               (status = 400, body = Seed000TokenAnswer),
               (status = 401, description = "No valid token (the platform's error)", body = Seed000Error),
               (status = 409, description = "Email already registered", body = Seed000TokenAnswer),
               (status = 413, description = "The body is too large", body = Seed000TokenAnswer),
               (status = 415, description = "The body is not JSON", body = Seed000TokenAnswer),
               (status = 429, body = Seed000TokenAnswer),
               (status = 503, description = "`busy`: too many password hashes at once", body = Seed000TokenAnswer)))]
pub async fn register(
    State(ctx): State<CustomerContext>,
    caller: Caller,
    body: Result<Json<Seed000Register>, ApiError>,
) -> Response {
    let body = match body {
        Ok(Json(body)) => body,
        Err(e) => return failed(e),
    };
    let details = match ProfileDetails::new(&body.name, None, None) {
        Ok(d) => d,
        Err(e) => return failed(e),
    };
    let account = NewAccount {
        email: body.email,
        password: body.password,
        details,
    };
    match register_account(&ctx, account, caller.client_ip).await {
        Ok(Registered::Opened(signed_in)) => ok(StatusCode::CREATED, signed_in),
        Ok(Registered::EmailTaken) => failed(CustomerError::EmailTaken),
        Err(e) => failed(e),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Seed000Login {
    #[schema(
        example = "ada@example.com",
        max_length = 254,
        pattern = r"^[A-Za-z0-9_%+-]{1,16}(\.[A-Za-z0-9_%+-]{1,16}){0,2}@([A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?\.){1,3}[A-Za-z]{2,10}$"
    )]
    email: String,
    #[schema(value_type = String, format = Password)]
    password: SecretString,
}

/// Seed 000: log in for a token. A wrong email and a wrong password get the same 401.
#[utoipa::path(post, path = "/users/user/login", tag = "seed 000",
    operation_id = "seed000_log_in",
    request_body = Seed000Login,
    responses((status = 200, body = Seed000TokenAnswer),
               (status = 400, body = Seed000TokenAnswer),
               (status = 401, description = "Wrong email or password (or no valid token: the platform's error)", body = Seed000Error),
               (status = 413, description = "The body is too large", body = Seed000TokenAnswer),
               (status = 415, description = "The body is not JSON", body = Seed000TokenAnswer),
               (status = 429, body = Seed000TokenAnswer),
               (status = 503, description = "`busy`: too many password checks at once", body = Seed000TokenAnswer)))]
pub async fn log_in(
    State(ctx): State<CustomerContext>,
    caller: Caller,
    body: Result<Json<Seed000Login>, ApiError>,
) -> Response {
    let body = match body {
        Ok(Json(body)) => body,
        Err(e) => return failed(e),
    };
    match login::log_in(&ctx, &body.email, body.password, caller.client_ip).await {
        Ok(signed_in) => ok(StatusCode::OK, signed_in),
        Err(e) => failed(e),
    }
}
