//! Query-string pieces every list endpoint shares: `limit`/`offset` paging and
//! comma-separated id filters.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use utoipa::IntoParams;

use crate::error::ApiError;

/// The most ids (or SKUs) a list filter may name.
pub const MAX_LISTED: usize = 500;

/// `?limit=&offset=`: at most `limit` (1-500, default 100) rows after skipping `offset`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// At most this many rows (1-500, default 100).
    #[param(minimum = 1, maximum = 500)]
    #[serde(default, deserialize_with = "whole_number")]
    pub limit: Option<i64>,
    /// Skip this many rows.
    #[param(minimum = 0)]
    #[serde(default, deserialize_with = "whole_number")]
    pub offset: Option<i64>,
}

/// An integer query parameter, as JSON Schema's `integer` reads one: `7`, and also
/// `7.0` (a whole number with a zero fraction). Use it on `Option<i64>` fields with
/// `#[serde(default, deserialize_with = "sales_platform::listing::whole_number")]`.
pub fn whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let Some(text) = Option::<Cow<'de, str>>::deserialize(d)? else {
        return Ok(None);
    };
    match parse_whole_number(&text) {
        Some(n) => Ok(Some(n)),
        // The words an integer parameter has always been refused with.
        None => Err(serde::de::Error::custom(
            text.parse::<i64>()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "invalid digit found in string".into()),
        )),
    }
}

/// `7`, `-7` or `7.00` as an integer; `None` for anything else.
pub fn parse_whole_number(text: &str) -> Option<i64> {
    let whole = match text.split_once('.') {
        Some((whole, fraction)) if !fraction.is_empty() && fraction.bytes().all(|b| b == b'0') => {
            whole
        }
        Some(_) => return None,
        None => text,
    };
    let digits = whole.strip_prefix('-').unwrap_or(whole);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    whole.parse().ok()
}

/// The schema of a comma-separated id filter (`1,2,3`) as [`parse_id_list`] reads
/// it: at most [`MAX_LISTED`] ids, each a 64-bit integer (an empty list matches
/// nothing). Use it with `#[param(schema_with = sales_platform::listing::id_list_schema)]`.
pub fn id_list_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(r"^(-?[0-9]{1,18}(,-?[0-9]{1,18}){0,499})?$"))
        .examples([serde_json::json!("1,2,3")])
        .build()
}

impl Page {
    /// `(limit, offset)`, checked.
    pub fn bounds(&self) -> Result<(i64, i64), ApiError> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=500).contains(&limit) {
            return Err(ApiError::validation(format!(
                "limit must be between 1 and 500, got {limit}"
            )));
        }
        let offset = self.offset.unwrap_or(0);
        if offset < 0 {
            return Err(ApiError::validation("offset cannot be negative"));
        }
        Ok((limit, offset))
    }
}

/// Parse `1,2,3` into ids; `field` names the parameter in the error.
pub fn parse_id_list(raw: &str, field: &str) -> Result<Vec<i64>, ApiError> {
    let ids = raw
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim().parse::<i64>().map_err(|_| {
                ApiError::validation(format!(
                    "{field} must be comma-separated integers, got {s:?}"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ids.len() > MAX_LISTED {
        return Err(ApiError::validation(format!(
            "{field} may list at most {MAX_LISTED} ids"
        )));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_read_whole_numbers_from_the_query() {
        let page: Page = serde_urlencoded_from("limit=10.0&offset=3");
        assert_eq!(page.bounds().unwrap(), (10, 3));
        let page: Page = serde_urlencoded_from("");
        assert_eq!(page.bounds().unwrap(), (100, 0));
    }

    fn serde_urlencoded_from<T: serde::de::DeserializeOwned>(query: &str) -> T {
        let uri: axum::http::Uri = format!("/?{query}").parse().unwrap();
        axum::extract::Query::<T>::try_from_uri(&uri).unwrap().0
    }

    #[test]
    fn pages_and_ids() {
        assert_eq!(Page::default().bounds().unwrap(), (100, 0));
        assert!(
            Page {
                limit: Some(0),
                offset: None
            }
            .bounds()
            .is_err()
        );
        assert!(
            Page {
                limit: Some(10),
                offset: Some(-1)
            }
            .bounds()
            .is_err()
        );
        assert_eq!(parse_id_list("1, 2,,3", "ids").unwrap(), vec![1, 2, 3]);
        assert_eq!(parse_whole_number("7"), Some(7));
        assert_eq!(parse_whole_number("-7.00"), Some(-7));
        assert_eq!(parse_whole_number("7.5"), None);
        assert_eq!(parse_whole_number("7."), None);
        assert_eq!(parse_whole_number("+7"), None);
        assert_eq!(parse_whole_number(" 7"), None);
        assert_eq!(parse_whole_number("99999999999999999999"), None);
        let err = parse_id_list("1,x", "ids").unwrap_err();
        assert!(err.message.contains("ids must be comma-separated integers"));
    }
}
