//! Query-string pieces every list endpoint shares: `limit`/`offset` paging and
//! comma-separated id filters.

use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;

/// `?limit=&offset=`: at most `limit` (1-500, default 100) rows after skipping `offset`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// At most this many rows (1-500, default 100).
    pub limit: Option<i64>,
    /// Skip this many rows.
    pub offset: Option<i64>,
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
    if ids.len() > 500 {
        return Err(ApiError::validation(format!(
            "{field} may list at most 500 ids"
        )));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let err = parse_id_list("1,x", "ids").unwrap_err();
        assert!(err.message.contains("ids must be comma-separated integers"));
    }
}
