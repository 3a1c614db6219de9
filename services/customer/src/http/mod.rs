//! The customer service's HTTP API: the canonical API under `/api/v1/customers`,
//! seed 000's `POST /users/user/register` and `/users/user/login` ([`seed000`]), and
//! seed 002's `POST /customers` and `GET /customers/{id}` ([`seed002`]).
//!
//! Who is calling comes from the gateway's `x-customer-id` / `x-customer-role`
//! ([`Caller`]): a customer sees and changes only their own profile (another one is
//! a 404), admins and internal callers (no header) any.

pub mod seed000;
pub mod seed002;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use sales_contracts::api::ErrorResponse;
use sales_platform::caller::Caller;
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
        description = "Customer accounts (register, log in for an HS256 JWT) and profiles \
            (name, address, contact).\n\n\
            Behind the gateway, `x-customer-id` and `x-customer-role` say who is calling: a \
            customer sees only their own profile; admins and internal callers see all."
    ),
    components(schemas(ErrorResponse))
)]
struct ApiDoc;

pub fn router(ctx: CustomerContext) -> OpenApiRouter {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(register_account))
        .routes(routes!(log_in))
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
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// At least 8 characters. Stored only as an argon2id hash.
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 256)]
    pub password: SecretString,
    #[schema(example = "Ada Lovelace")]
    pub name: String,
    pub address: Option<String>,
    pub contact: Option<String>,
}

/// Email and password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "ada@example.com")]
    pub email: String,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

/// A token for the customer: send it as `Authorization: Bearer <token>`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountToken {
    #[schema(example = 1)]
    pub customer_id: i64,
    /// An HS256 JWT: sub (the customer id), name, email, role, iat, exp, iss.
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

/// Register: open an account and get a token.
#[utoipa::path(post, path = "/api/v1/customers/register", tag = "accounts",
    request_body = RegisterRequest,
    responses((status = 201, description = "Registered", body = AccountToken),
               (status = 400, description = "Invalid email, short password, missing field", body = ErrorResponse),
               (status = 409, description = "`email_taken`: an account has this email (in any case)", body = ErrorResponse)))]
async fn register_account(
    State(ctx): State<CustomerContext>,
    Json(body): Json<RegisterRequest>,
) -> Result<(StatusCode, Json<AccountToken>), CustomerError> {
    let details =
        ProfileDetails::new(&body.name, body.address.as_deref(), body.contact.as_deref())?;
    let signed_in = register(
        &ctx,
        NewAccount {
            email: body.email,
            password: body.password,
            details,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(signed_in.into())))
}

/// Log in: a token for the right email and password. A wrong email and a wrong
/// password get the same 401 `invalid_credentials`.
#[utoipa::path(post, path = "/api/v1/customers/login", tag = "accounts",
    request_body = LoginRequest,
    responses((status = 200, body = AccountToken),
               (status = 400, body = ErrorResponse),
               (status = 401, description = "`invalid_credentials`: wrong email or password", body = ErrorResponse)))]
async fn log_in(
    State(ctx): State<CustomerContext>,
    Json(body): Json<LoginRequest>,
) -> Result<Json<AccountToken>, CustomerError> {
    let signed_in = login::log_in(&ctx, &body.email, body.password).await?;
    Ok(Json(signed_in.into()))
}

/// The calling customer's own profile (from `x-customer-id`).
#[utoipa::path(get, path = "/api/v1/customers/me", tag = "profiles",
    params(("x-customer-id" = Option<i64>, Header, description = "Set by the gateway from the token")),
    responses((status = 200, body = Customer),
               (status = 401, description = "`unauthenticated`: no customer", body = ErrorResponse),
               (status = 404, body = ErrorResponse)))]
async fn my_profile(
    State(ctx): State<CustomerContext>,
    caller: Caller,
) -> Result<Json<Customer>, CustomerError> {
    let id = caller.customer_id.ok_or(CustomerError::Unauthenticated)?;
    let mut conn = ctx.pool.acquire().await?;
    Ok(Json(profiles::load(&mut conn, id).await?))
}

/// Every customer, oldest first. For admins and internal callers: a customer gets 403.
#[utoipa::path(get, path = "/api/v1/customers", tag = "profiles", params(Page),
    responses((status = 200, body = [Customer]),
               (status = 400, body = ErrorResponse),
               (status = 403, description = "`forbidden`: customers cannot list customers", body = ErrorResponse)))]
async fn list_customers(
    State(ctx): State<CustomerContext>,
    caller: Caller,
    Query(page): Query<Page>,
) -> Result<Json<Vec<Customer>>, ApiError> {
    if !caller.is_staff() {
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
    #[schema(example = "Ada King")]
    pub name: String,
    pub address: Option<String>,
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
