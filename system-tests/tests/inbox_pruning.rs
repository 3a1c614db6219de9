//! The inbox is pruned (issue 12): rows of messages handled longer ago than the
//! retention go, recent ones stay (they still guard against redeliveries).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sales_platform::inbox::{INBOX_RETENTION, prune};
use sales_testkit::TestDatabase;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn rows_older_than_the_retention_are_deleted_and_recent_ones_kept() {
    sales_testkit::init_test_logging();
    let db = TestDatabase::create("inbox_prune").await;
    let pool = db.pool().await;
    sales_platform::db::migrate(
        &pool,
        sqlx::migrate!("tests/migrations"),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    // 12,000 old rows (more than one batch), 3 recent ones, one just inside the retention.
    sqlx::query(
        "insert into inbox (consumer, message_id, message_type, created_at)
         select 'c', gen_random_uuid(), 'paid-order', now() - interval '8 days'
         from generate_series(1, 12000)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into inbox (consumer, message_id, message_type, created_at)
         select 'c', gen_random_uuid(), 'paid-order', now() - interval '1 hour'
         from generate_series(1, 3)
         union all
         select 'c', gen_random_uuid(), 'paid-order', now() - interval '6 days 23 hours'",
    )
    .execute(&pool)
    .await
    .unwrap();

    let deleted = prune(&pool, INBOX_RETENTION).await.unwrap();
    assert_eq!(deleted, 12_000);
    let left: i64 = sqlx::query_scalar("select count(*) from inbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 4);
    assert_eq!(prune(&pool, INBOX_RETENTION).await.unwrap(), 0);
    // A shorter retention takes the hour-old rows too.
    assert_eq!(prune(&pool, Duration::from_secs(60)).await.unwrap(), 4);
    pool.close().await;
    db.drop_database().await;
}
