//! The customer service's HTTP API: the canonical API under `/api/v1/customers`,
//! seed 000's `POST /users/user/register` and `/users/user/login` ([`seed000`]), and
//! seed 002's `POST /customers` and `GET /customers/{id}` ([`seed002`]).
//!
//! Who may call what is [`access::POLICY`]; within it, a customer sees and changes
//! only their own profile (another one is a 404), admins any.

pub mod access;
pub mod seed000;
pub mod seed002;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use sales_contracts::api::ErrorResponse;
use sales_platform::identity::Caller;
use sales_platform::listing::Page;
use sales_platform::{ApiError, Json, Path, Query};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::CustomerError;
use crate::profiles::{self, Customer, ProfileDetails};
use crate::registration::{NewAccount, register};
use crate::{CustomerContext, SignedIn, login};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Customer service",
        description = "Customer accounts (register, log in for an access token, log out, \
            change the password) and profiles (name, address, contact); the system's \
            identity provider (its keys at `/.well-known/jwks.json`, service tokens at \
            `/oauth/token`, introspection at `/oauth/introspect`).\n\n\
            Every route but those needs the token the gateway gives each request it \
            forwards: a customer sees only their own profile; admins see all."
    ),
    components(schemas(ErrorResponse))
)]
struct ApiDoc;

pub fn router(ctx: CustomerContext) -> OpenApiRouter {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(register_account))
        .routes(routes!(log_in))
        .routes(routes!(log_out))
        .routes(routes!(change_password))
        .routes(routes!(my_profile))
        .routes(routes!(list_customers))
        .routes(routes!(get_customer, update_customer))
        .routes(routes!(seed000::register))
        .routes(routes!(seed000::log_in))
        .routes(routes!(seed002::create_customer))
        .routes(routes!(seed002::get_customer))
        .with_state(ctx)
}

/// An account to open.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// `local@domain.tld`, at most 254 characters. The document's pattern is the
    /// usual form; the service takes any address of that shape (`local` up to 64
    /// characters without spaces, host name labels of letters, digits and `-`).
    #[schema(
        example = "ada@example.com",
        max_length = 254,
        pattern = r"^[A-Za-z0-9_%+-]{1,16}(\.[A-Za-z0-9_%+-]{1,16}){0,2}@([A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?\.){1,3}[A-Za-z]{2,10}$"
    )]
    pub email: String,
    /// 8 to 256 characters. Stored only as an argon2id hash.
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 256)]
    pub password: SecretString,
    /// 1 to 200 characters, not only spaces, no control characters.
    #[schema(
        example = "Ada Lovelace",
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// At most 500 characters; may span lines; no other control characters.
    #[schema(
        max_length = 500,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub address: Option<String>,
    /// At most 200 characters, no control characters.
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub contact: Option<String>,
}

/// Email and password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The account's email (see registration).
    #[schema(
        example = "ada@example.com",
        max_length = 254,
        pattern = r"^[A-Za-z0-9_%+-]{1,16}(\.[A-Za-z0-9_%+-]{1,16}){0,2}@([A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?\.){1,3}[A-Za-z]{2,10}$"
    )]
    pub email: String,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

/// A token for the customer: send it as `Authorization: Bearer <token>`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountToken {
    #[schema(example = 1)]
    pub customer_id: i64,
    /// A JWT (EdDSA) for the gateway: sub (the customer id), role, ver, name, email,
    /// iat, nbf, exp, iss, aud, jti.
    pub token: String,
    /// When the token stops being accepted.
    pub expires_at: DateTime<Utc>,
}

impl From<SignedIn> for AccountToken {
    fn from(s: SignedIn) -> Self {
        AccountToken {
            customer_id: s.customer_id,
            token: s.token.token,
            expires_at: s.token.expires_at,
        }
    }
}

/// The answer to a registration: the same whether the email was free or not.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrationAccepted {
    #[schema(example = "accepted")]
    pub status: &'static str,
    pub message: &'static str,
}

/// Register an account. The answer is the same 202 whether the email already had an
/// account or not (so it tells no one which emails do): log in next
/// (`POST /api/v1/customers/login`) for a token.
#[utoipa::path(post, path = "/api/v1/customers/register", tag = "accounts",
    request_body = RegisterRequest,
    responses((status = 202, description = "Accepted: log in with the email and password", body = RegistrationAccepted),
               (status = 400, description = "Invalid email, short password, missing field", body = ErrorResponse),
               (status = 429, description = "`too_many_attempts`: too many registrations from this address", body = ErrorResponse),
               (status = 503, description = "`busy`: too many password hashes at once", body = ErrorResponse)))]
async fn register_account(
    State(ctx): State<CustomerContext>,
    caller: Caller,
    Json(body): Json<RegisterRequest>,
) -> Result<(StatusCode, Json<RegistrationAccepted>), CustomerError> {
    let details =
        ProfileDetails::new(&body.name, body.address.as_deref(), body.contact.as_deref())?;
    register(
        &ctx,
        NewAccount {
            email: body.email,
            password: body.password,
            details,
        },
        caller.client_ip,
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RegistrationAccepted {
            status: "accepted",
            message: "if this email had no account, it has one now: log in with POST /api/v1/customers/login",
        }),
    ))
}

/// Log in: an access token for the right email and password. A wrong email and a
/// wrong password get the same 401 `invalid_credentials`. After too many failures of
/// one account or from one address, 429 until the window ends.
#[utoipa::path(post, path = "/api/v1/customers/login", tag = "accounts",
    request_body = LoginRequest,
    responses((status = 200, body = AccountToken),
               (status = 400, body = ErrorResponse),
               (status = 401, description = "`invalid_credentials`: wrong email or password", body = ErrorResponse),
               (status = 429, description = "`too_many_attempts`, with `Retry-After`", body = ErrorResponse),
               (status = 503, description = "`busy`: too many password checks at once, with `Retry-After`", body = ErrorResponse)))]
async fn log_in(
    State(ctx): State<CustomerContext>,
    caller: Caller,
    Json(body): Json<LoginRequest>,
) -> Result<Json<AccountToken>, CustomerError> {
    let signed_in = login::log_in(&ctx, &body.email, body.password, caller.client_ip).await?;
    Ok(Json(signed_in.into()))
}

/// Log out: every token issued to the calling customer so far stops working, on
/// every device.
#[utoipa::path(post, path = "/api/v1/customers/logout", tag = "accounts",
    responses((status = 204, description = "Logged out everywhere"),
               (status = 401, body = ErrorResponse),
               (status = 503, description = "Not every gateway could be told yet; try again", body = ErrorResponse)))]
async fn log_out(
    State(ctx): State<CustomerContext>,
    caller: Caller,
) -> Result<StatusCode, CustomerError> {
    let id = caller.customer_id().ok_or(CustomerError::Unauthenticated)?;
    crate::login::log_out(&ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The current password and the new one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    #[schema(value_type = String, format = Password)]
    pub current_password: SecretString,
    /// 8 to 256 characters.
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 256)]
    pub new_password: SecretString,
}

/// Change the calling customer's password. Every earlier token stops working; the
/// answer carries a new one. A wrong current password is a 401 and counts as a
/// failed login.
#[utoipa::path(put, path = "/api/v1/customers/me/password", tag = "accounts",
    request_body = ChangePassword,
    responses((status = 200, body = AccountToken),
               (status = 400, body = ErrorResponse),
               (status = 401, description = "`invalid_credentials`: the current password is wrong", body = ErrorResponse),
               (status = 429, body = ErrorResponse),
               (status = 503, body = ErrorResponse)))]
async fn change_password(
    State(ctx): State<CustomerContext>,
    caller: Caller,
    Json(body): Json<ChangePassword>,
) -> Result<Json<AccountToken>, CustomerError> {
    let id = caller.customer_id().ok_or(CustomerError::Unauthenticated)?;
    let signed_in = crate::login::change_password(
        &ctx,
        id,
        body.current_password,
        body.new_password,
        caller.client_ip,
    )
    .await?;
    Ok(Json(signed_in.into()))
}

/// The calling customer's own profile.
#[utoipa::path(get, path = "/api/v1/customers/me", tag = "profiles",
    responses((status = 200, body = Customer),
               (status = 401, description = "`unauthenticated`: no customer", body = ErrorResponse),
               (status = 404, body = ErrorResponse)))]
async fn my_profile(
    State(ctx): State<CustomerContext>,
    caller: Caller,
) -> Result<Json<Customer>, CustomerError> {
    let id = caller.customer_id().ok_or(CustomerError::Unauthenticated)?;
    let mut conn = ctx.pool.acquire().await?;
    Ok(Json(profiles::load(&mut conn, id).await?))
}

/// Every customer, oldest first. For admins: a customer gets 403.
#[utoipa::path(get, path = "/api/v1/customers", tag = "profiles", params(Page),
    responses((status = 200, body = [Customer]),
               (status = 400, body = ErrorResponse),
               (status = 403, description = "`forbidden`: customers cannot list customers", body = ErrorResponse)))]
async fn list_customers(
    State(ctx): State<CustomerContext>,
    caller: Caller,
    Query(page): Query<Page>,
) -> Result<Json<Vec<Customer>>, ApiError> {
    if !caller.is_admin() {
        return Err(CustomerError::Forbidden("only admins may list customers".into()).into());
    }
    let (limit, offset) = page.bounds()?;
    let mut conn = ctx.pool.acquire().await?;
    Ok(Json(profiles::list(&mut conn, limit, offset).await?))
}

/// One customer. A customer sees only their own profile: another id is a 404.
#[utoipa::path(get, path = "/api/v1/customers/{id}", tag = "profiles",
    params(("id" = i64, Path)),
    responses((status = 200, body = Customer), (status = 400, body = ErrorResponse),
               (status = 404, body = ErrorResponse)))]
async fn get_customer(
    State(ctx): State<CustomerContext>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Customer>, CustomerError> {
    if !caller.may_see(Some(id)) {
        return Err(CustomerError::NotFound(id));
    }
    let mut conn = ctx.pool.acquire().await?;
    Ok(Json(profiles::load(&mut conn, id).await?))
}

/// A profile's new name, address and contact. This replaces all three: an address
/// or contact left out (or `null`) is removed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProfile {
    /// 1 to 200 characters, not only spaces, no control characters.
    #[schema(
        example = "Ada King",
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// At most 500 characters; may span lines; no other control characters.
    #[schema(
        max_length = 500,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    pub address: Option<String>,
    /// At most 200 characters, no control characters.
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub contact: Option<String>,
}

/// Replace a customer's name, address and contact. A customer may change only
/// their own profile: another id is a 404.
#[utoipa::path(put, path = "/api/v1/customers/{id}", tag = "profiles",
    params(("id" = i64, Path)), request_body = UpdateProfile,
    responses((status = 200, body = Customer), (status = 400, body = ErrorResponse),
               (status = 404, body = ErrorResponse)))]
async fn update_customer(
    State(ctx): State<CustomerContext>,
    caller: Caller,
    Path(id): Path<i64>,
    Json(body): Json<UpdateProfile>,
) -> Result<Json<Customer>, CustomerError> {
    if !caller.may_see(Some(id)) {
        return Err(CustomerError::NotFound(id));
    }
    let details =
        ProfileDetails::new(&body.name, body.address.as_deref(), body.contact.as_deref())?;
    let mut conn = ctx.pool.acquire().await?;
    Ok(Json(profiles::update(&mut conn, id, &details).await?))
}
