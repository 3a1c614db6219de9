//! A database that goes away is an outage, not a bug: the request is answered 503
//! ("try again shortly"), never 500. Found by `cargo xtask chaos`: a place-order whose
//! connection PostgreSQL ended while it stopped (`terminating connection due to
//! administrator command`, SQLSTATE 57P01) was answered 500.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sales_platform::ApiError;
use sales_testkit::TestDatabase;
use sqlx::{Connection, PgConnection};

#[tokio::test]
async fn a_connection_the_server_ended_is_answered_503_not_500() {
    let db = TestDatabase::create("db_errors").await;
    let mut ended = PgConnection::connect(&db.url).await.unwrap();
    let pid: i32 = sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(&mut ended)
        .await
        .unwrap();
    let mut admin = PgConnection::connect(&db.url).await.unwrap();
    let terminated: bool = sqlx::query_scalar("select pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(terminated);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let err = sqlx::query("select 1")
        .execute(&mut ended)
        .await
        .expect_err("the server ended this connection");
    let described = format!("{err:?}");
    let answer = ApiError::from(err);
    assert_eq!(
        answer.status.as_u16(),
        503,
        "{described}: {}",
        answer.message
    );
    assert!(answer.message.contains("try again"), "{}", answer.message);
    admin.close().await.unwrap();
    db.drop_database().await;
}
