//! A consumer for platform tests: it records each `cancel-order` it handles as a row
//! of the test migration's `effects` table, so a test counts effects, not deliveries.

use sales_contracts::Envelope;
use sales_contracts::events::CancelOrder;
use sales_platform::messaging::{HandlerError, MessageHandler};
use sqlx::{PgPool, Postgres, Transaction};

/// Writes `(message_id, order_id)` of every `cancel-order` to `effects`.
pub struct Recorder;

impl MessageHandler for Recorder {
    async fn handle(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        envelope: &Envelope,
    ) -> Result<(), HandlerError> {
        let event: CancelOrder = envelope.decode()?;
        sqlx::query("insert into effects (message_id, order_id) values ($1, $2)")
            .bind(envelope.message_id)
            .bind(event.order_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// How many effects were recorded.
pub async fn effects(pool: &PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from effects")
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("counting effects: {e}"))
}

/// Messages the consumers of the service at `admin_url` counted under `outcome`
/// (`processed`, `retried`, `dead_lettered`...), from its metrics.
#[allow(clippy::expect_used)]
pub async fn consumed(admin_url: &str, outcome: &str) -> f64 {
    let text = sales_testkit::http_get(format!("{admin_url}/metrics"))
        .await
        .expect("the metrics answer")
        .text()
        .await
        .expect("the metrics text");
    text.lines()
        .filter(|l| l.starts_with("messages_consumed_total{"))
        .filter(|l| l.contains(&format!("outcome=\"{outcome}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
