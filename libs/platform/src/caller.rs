//! Who is calling. The gateway verifies the customer's token and passes on who they
//! are in `x-customer-id` and `x-customer-role`; services behind it trust these
//! headers (only the gateway can reach them: see the operator's NetworkPolicies).
//! A request without them comes from inside the system (or a local run) and is
//! not limited to one customer.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::ApiError;

pub const CUSTOMER_ID_HEADER: &str = "x-customer-id";
pub const CUSTOMER_ROLE_HEADER: &str = "x-customer-role";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    /// The customer the request is for; `None` for internal calls.
    pub customer_id: Option<i64>,
    /// `customer` or `admin`, when known.
    pub role: Option<String>,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role.as_deref() == Some("admin")
    }

    /// Admins, and internal callers (no customer id, no customer role): who may
    /// manage things customers may only read.
    pub fn is_staff(&self) -> bool {
        self.is_admin() || (self.customer_id.is_none() && self.role.as_deref() != Some("customer"))
    }

    /// May this caller see something that belongs to `owner`? Internal callers and
    /// admins see everything; a customer sees only their own.
    pub fn may_see(&self, owner: Option<i64>) -> bool {
        match self.customer_id {
            None => true,
            Some(_) if self.is_admin() => true,
            Some(me) => owner == Some(me),
        }
    }

    /// The customer to limit a listing to, if any.
    pub fn listing_scope(&self) -> Option<i64> {
        if self.is_admin() {
            None
        } else {
            self.customer_id
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let customer_id = match parts.headers.get(CUSTOMER_ID_HEADER) {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                    .ok_or_else(|| {
                        ApiError::validation(format!("{CUSTOMER_ID_HEADER} must be an integer"))
                    })?,
            ),
        };
        let role = parts
            .headers
            .get(CUSTOMER_ROLE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Caller { customer_id, role })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility() {
        let internal = Caller::default();
        let alice = Caller {
            customer_id: Some(1),
            role: Some("customer".into()),
        };
        let admin = Caller {
            customer_id: Some(9),
            role: Some("admin".into()),
        };
        assert!(internal.may_see(Some(1)) && internal.may_see(None));
        assert!(alice.may_see(Some(1)));
        assert!(!alice.may_see(Some(2)) && !alice.may_see(None));
        assert!(admin.may_see(Some(1)));
        assert_eq!(alice.listing_scope(), Some(1));
        assert_eq!(admin.listing_scope(), None);
        assert!(internal.is_staff() && admin.is_staff());
        assert!(!alice.is_staff());
        let role_only = Caller {
            customer_id: None,
            role: Some("customer".into()),
        };
        assert!(!role_only.is_staff());
    }
}
