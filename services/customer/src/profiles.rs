//! Customer profiles (seed 002): name, address, contact. A profile belongs to an
//! account (email + password) or, when made through seed 002's `POST /customers`,
//! stands alone without login credentials.

use chrono::{DateTime, Utc};
use sales_contracts::api::auth::Role;
use serde::Serialize;
use sqlx::{AssertSqlSafe, PgConnection};
use utoipa::ToSchema;

use crate::error::{CustomerError, Result};

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_ADDRESS_CHARS: usize = 500;
pub const MAX_CONTACT_CHARS: usize = 200;

/// A customer as the canonical API shows it. Never includes the password hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Customer {
    #[schema(example = 1)]
    pub customer_id: i64,
    /// The login email; `null` for a profile without an account (seed 002).
    #[schema(example = "ada@example.com")]
    pub email: Option<String>,
    #[schema(example = "Ada Lovelace")]
    pub name: String,
    #[schema(example = "12 St James's Square, London")]
    pub address: Option<String>,
    /// A phone number or any other way to reach the customer.
    #[schema(example = "+44 20 7946 0000")]
    pub contact: Option<String>,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Customer {
    /// Who owns this profile: the account itself, or no one (a profile made without
    /// an account, by seed 002's `POST /customers`).
    pub fn owner(&self) -> Option<i64> {
        self.email.as_ref().map(|_| self.customer_id)
    }
}

#[derive(sqlx::FromRow)]
struct CustomerRow {
    id: i64,
    email: Option<String>,
    name: String,
    address: Option<String>,
    contact: Option<String>,
    role: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<CustomerRow> for Customer {
    fn from(r: CustomerRow) -> Self {
        Customer {
            customer_id: r.id,
            email: r.email,
            name: r.name,
            address: r.address,
            contact: r.contact,
            role: parse_role(&r.role),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// The role stored in the database (a check constraint allows only these two).
pub fn parse_role(stored: &str) -> Role {
    if stored == Role::Admin.as_str() {
        Role::Admin
    } else {
        Role::Customer
    }
}

/// The columns its queries select or return, put in with `format!` under
/// `AssertSqlSafe` (sqlx 0.9): a constant, never input; values are bound parameters.
const COLUMNS: &str = "id, email, name, address, contact, role, created_at, updated_at";

/// Name, address and contact, checked: the name is required, the others optional;
/// surrounding whitespace is dropped and an empty address or contact is none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileDetails {
    pub name: String,
    pub address: Option<String>,
    pub contact: Option<String>,
}

impl ProfileDetails {
    pub fn new(name: &str, address: Option<&str>, contact: Option<&str>) -> Result<Self> {
        let name = name.trim();
        if name.is_empty() {
            return Err(CustomerError::Validation("name must not be empty".into()));
        }
        check_text("name", name, MAX_NAME_CHARS, false)?;
        // An address may span lines.
        let address = optional_text("address", address, MAX_ADDRESS_CHARS, true)?;
        let contact = optional_text("contact", contact, MAX_CONTACT_CHARS, false)?;
        Ok(ProfileDetails {
            name: name.to_owned(),
            address,
            contact,
        })
    }
}

fn optional_text(
    field: &str,
    value: Option<&str>,
    max: usize,
    multiline: bool,
) -> Result<Option<String>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => {
            check_text(field, v, max, multiline)?;
            Ok(Some(v.to_owned()))
        }
    }
}

fn check_text(field: &str, value: &str, max: usize, multiline: bool) -> Result<()> {
    let chars = value.chars().count();
    if chars > max {
        return Err(CustomerError::Validation(format!(
            "{field} must be at most {max} characters (got {chars})"
        )));
    }
    let allowed = |c: char| multiline && (c == '\n' || c == '\r' || c == '\t');
    if value.chars().any(|c| c.is_control() && !allowed(c)) {
        return Err(CustomerError::Validation(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(())
}

/// One customer.
pub async fn load(conn: &mut PgConnection, id: i64) -> Result<Customer> {
    sqlx::query_as::<_, CustomerRow>(AssertSqlSafe(format!(
        "select {COLUMNS} from customers where id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .map(Customer::from)
    .ok_or(CustomerError::NotFound(id))
}

/// Customers in the order they were made.
pub async fn list(conn: &mut PgConnection, limit: i64, offset: i64) -> Result<Vec<Customer>> {
    let rows = sqlx::query_as::<_, CustomerRow>(AssertSqlSafe(format!(
        "select {COLUMNS} from customers order by id limit $1 offset $2"
    )))
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Customer::from).collect())
}

/// Replace a customer's name, address and contact.
pub async fn update(
    conn: &mut PgConnection,
    id: i64,
    details: &ProfileDetails,
) -> Result<Customer> {
    sqlx::query_as::<_, CustomerRow>(AssertSqlSafe(format!(
        "update customers set name = $2, address = $3, contact = $4, updated_at = now()
         where id = $1 returning {COLUMNS}"
    )))
    .bind(id)
    .bind(&details.name)
    .bind(&details.address)
    .bind(&details.contact)
    .fetch_optional(conn)
    .await?
    .map(Customer::from)
    .ok_or(CustomerError::NotFound(id))
}

/// A profile without login credentials (seed 002's `POST /customers`).
pub async fn create_profile(conn: &mut PgConnection, details: &ProfileDetails) -> Result<Customer> {
    let row = sqlx::query_as::<_, CustomerRow>(AssertSqlSafe(format!(
        "insert into customers (name, address, contact) values ($1, $2, $3) returning {COLUMNS}"
    )))
    .bind(&details.name)
    .bind(&details.address)
    .bind(&details.contact)
    .fetch_one(conn)
    .await?;
    Ok(row.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_trimmed_and_checked() {
        let d = ProfileDetails::new("  Ada ", Some(" "), Some(" +44 1 ")).unwrap();
        assert_eq!(d.name, "Ada");
        assert_eq!(d.address, None);
        assert_eq!(d.contact.as_deref(), Some("+44 1"));
        assert!(ProfileDetails::new("   ", None, None).is_err());
        assert!(ProfileDetails::new(&"x".repeat(201), None, None).is_err());
        assert!(ProfileDetails::new(&"é".repeat(200), None, None).is_ok());
        assert!(ProfileDetails::new("Ada", Some(&"x".repeat(501)), None).is_err());
        assert!(ProfileDetails::new("Ada\u{0}", None, None).is_err());
        assert!(ProfileDetails::new("Ada\nL", None, None).is_err());
        assert!(ProfileDetails::new("Ada", Some("1 Road\nTown"), None).is_ok());
    }
}
