//! Statements per order, from PostgreSQL's `pg_stat_statements`: reset before a step,
//! summed by database after it (every `sales_bench_*` database, one per service).
//! Needs the library preloaded (`shared_preload_libraries`, as the private
//! PostgreSQL of `cargo xtask infra` starts); without it the report says so and the
//! bench goes on. `track = all` counts the statements inside functions too; BEGIN and
//! COMMIT count as statements (`track_utility`).

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::{Connection as _, PgConnection};

/// Marks the bench's own queries in the services' databases, which the counts leave out.
pub const OWN_QUERY: &str = "/* sales-bench */";

/// One statement among the most called.
#[derive(Clone, Debug, Serialize)]
pub struct TopStatement {
    pub database: String,
    pub calls_per_order: f64,
    pub mean_ms: f64,
    /// The normalized text, on one line, shortened.
    pub query: String,
}

/// A step's statements, per order.
#[derive(Clone, Debug, Serialize)]
pub struct StatementsPerOrder {
    pub by_database: BTreeMap<String, f64>,
    pub total: f64,
    /// Of them, `BEGIN`: explicit transactions.
    pub transactions: f64,
    /// Time PostgreSQL spent executing them (not waiting for locks between them).
    pub exec_ms: f64,
    pub top: Vec<TopStatement>,
}

/// A connection to the admin database with the extension, or why there is none.
pub struct Statements {
    admin: Result<PgConnection, String>,
    db_prefix: String,
}

impl Statements {
    pub async fn connect(postgres_url: &str, db_prefix: &str) -> Statements {
        let admin = async {
            let mut c = PgConnection::connect(postgres_url)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query("create extension if not exists pg_stat_statements")
                .execute(&mut c)
                .await
                .map_err(|e| e.to_string())?;
            // Fails when the library is not preloaded.
            sqlx::query("select pg_stat_statements_reset()")
                .execute(&mut c)
                .await
                .map_err(|e| e.to_string())?;
            Ok(c)
        }
        .await;
        Statements {
            admin,
            db_prefix: db_prefix.to_owned(),
        }
    }

    /// Why there are no statement counts, if there are none.
    pub fn unavailable(&self) -> Option<String> {
        self.admin.as_ref().err().map(|e| {
            format!("statements per order not measured: pg_stat_statements is not available ({e}); start PostgreSQL with -c shared_preload_libraries=pg_stat_statements (cargo xtask infra does, once its PostgreSQL restarts)")
        })
    }

    pub async fn reset(&mut self) {
        if let Ok(c) = &mut self.admin
            && let Err(e) = sqlx::query("select pg_stat_statements_reset()")
                .execute(c)
                .await
        {
            self.admin = Err(e.to_string());
        }
    }

    /// Statements since the last reset, per order of `orders`; `None` if unavailable.
    pub async fn per_order(&mut self, orders: u64) -> Option<StatementsPerOrder> {
        let c = self.admin.as_mut().ok()?;
        let rows: Vec<(String, String, i64, f64)> = match sqlx::query_as(
            "select d.datname::text, s.query, s.calls, s.total_exec_time
             from pg_stat_statements s join pg_database d on s.dbid = d.oid
             where d.datname like $1 and s.query not like $2",
        )
        .bind(format!("{}%", self.db_prefix))
        .bind(format!("%{OWN_QUERY}%"))
        .fetch_all(c)
        .await
        {
            Ok(rows) => rows,
            Err(e) => {
                self.admin = Err(e.to_string());
                return None;
            }
        };
        let n = orders.max(1) as f64;
        let mut by_database: BTreeMap<String, f64> = BTreeMap::new();
        let (mut transactions, mut exec_ms) = (0.0, 0.0);
        let mut top = Vec::new();
        for (db, query, calls, total_ms) in rows {
            let database = db.strip_prefix(&self.db_prefix).unwrap_or(&db).to_owned();
            *by_database.entry(database.clone()).or_default() += calls as f64 / n;
            exec_ms += total_ms / n;
            if query.trim().eq_ignore_ascii_case("begin") {
                transactions += calls as f64 / n;
            }
            top.push(TopStatement {
                database,
                calls_per_order: calls as f64 / n,
                mean_ms: if calls > 0 {
                    total_ms / calls as f64
                } else {
                    0.0
                },
                query: one_line(&query, 140),
            });
        }
        top.sort_by(|a, b| b.calls_per_order.total_cmp(&a.calls_per_order));
        top.truncate(10);
        Some(StatementsPerOrder {
            total: by_database.values().sum(),
            transactions,
            exec_ms,
            by_database,
            top,
        })
    }
}

/// `text` on one line (runs of white space as one space), at most `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        return line;
    }
    let mut short: String = line.chars().take(max.saturating_sub(1)).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_shown_on_one_short_line() {
        assert_eq!(
            one_line("select a,\n       b\n  from t", 80),
            "select a, b from t"
        );
        assert_eq!(one_line("select 1234567", 8), "select …");
    }
}
