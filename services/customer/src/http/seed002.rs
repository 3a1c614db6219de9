//! Seed 002's customer routes, with its shapes: `POST /customers {"name", "address",
//! "contact"}` -> 201 with the stored row `{"id", "name", "address", "contact",
//! "created_at"}`, and `GET /customers/{id}` -> the same row (404 if unknown). These
//! profiles have no login credentials; a registered account's profile reads the same.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use sales_contracts::api::ErrorResponse;
use sales_platform::identity::Caller;
use sales_platform::{Json, Path};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::CustomerContext;
use crate::error::CustomerError;
use crate::profiles::{self, Customer, ProfileDetails};

/// A customer row as seed 002 answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Seed002Customer {
    #[schema(example = 1)]
    id: i64,
    #[schema(example = "Ada Lovelace")]
    name: String,
    #[schema(example = "12 St James's Square, London")]
    address: Option<String>,
    #[schema(example = "+44 20 7946 0000")]
    contact: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<Customer> for Seed002Customer {
    fn from(c: Customer) -> Self {
        Seed002Customer {
            id: c.customer_id,
            name: c.name,
            address: c.address,
            contact: c.contact,
            created_at: c.created_at,
        }
    }
}

/// A customer's details (seed 002). The name is required.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Seed002CreateCustomer {
    /// 1 to 200 characters, not only spaces, no control characters.
    #[schema(
        example = "Ada Lovelace",
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    name: String,
    /// At most 500 characters; may span lines; no other control characters.
    #[schema(
        example = "12 St James's Square, London",
        max_length = 500,
        pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
    )]
    address: Option<String>,
    /// At most 200 characters, no control characters.
    #[schema(
        example = "+44 20 7946 0000",
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    contact: Option<String>,
}

/// Seed 002: record a customer (a profile without login credentials).
#[utoipa::path(post, path = "/customers", tag = "seed 002", request_body = Seed002CreateCustomer,
    responses((status = 201, body = Seed002Customer), (status = 400, body = ErrorResponse)))]
pub async fn create_customer(
    State(ctx): State<CustomerContext>,
    Json(body): Json<Seed002CreateCustomer>,
) -> Result<(StatusCode, Json<Seed002Customer>), CustomerError> {
    let details =
        ProfileDetails::new(&body.name, body.address.as_deref(), body.contact.as_deref())?;
    let mut conn = ctx.pool.acquire().await?;
    let customer = profiles::create_profile(&mut conn, &details).await?;
    Ok((StatusCode::CREATED, Json(customer.into())))
}

/// Seed 002: one customer. A customer sees only their own profile; a caller without
/// an account (the seed's routes open) only profiles without one, as seed 002 made
/// them: anything else is a 404.
#[utoipa::path(get, path = "/customers/{id}", tag = "seed 002",
    operation_id = "seed002_get_customer",
    params(("id" = i64, Path)),
    responses((status = 200, body = Seed002Customer), (status = 400, body = ErrorResponse),
               (status = 404, body = ErrorResponse)))]
pub async fn get_customer(
    State(ctx): State<CustomerContext>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Seed002Customer>, CustomerError> {
    let mut conn = ctx.pool.acquire().await?;
    let customer = profiles::load(&mut conn, id).await?;
    if !caller.may_see(customer.owner()) {
        return Err(CustomerError::NotFound(id));
    }
    Ok(Json(customer.into()))
}
