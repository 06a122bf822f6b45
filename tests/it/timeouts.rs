//! Limiting the blast radius of a transaction left open or a runaway statement: Academy's sessions carry
//! `statement_timeout` and `idle_in_transaction_session_timeout`, and the embedded cluster ends any session idle
//! in a transaction.

use std::time::Duration;

use academy::config::Config;
use academy::database::Database;
use clap::Parser;
use sqlx::Connection;

use crate::data_folder;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    config: Config,
}

#[tokio::test]
async fn the_server_ends_an_idle_transaction_and_cancels_a_long_statement() {
    let dir = data_folder();
    let data_dir = dir.path().join("pg");
    let args = Args::try_parse_from([
        "academy",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--statement-timeout-seconds",
        "1",
        "--idle-in-transaction-timeout-seconds",
        "1",
    ])
    .unwrap();
    let config = args.config;
    let database = Database::open(&config).await.unwrap();

    // a statement longer than the statement timeout is cancelled (query_canceled)
    let long = sqlx::query("select pg_sleep(3)")
        .execute(&database.pool)
        .await
        .unwrap_err();
    let code = long.as_database_error().and_then(|e| e.code());
    assert_eq!(code.as_deref(), Some("57014"), "{long}");

    // a transaction left idle longer than the timeout: the server ends the session, so the next statement fails
    let mut held = database.pool.acquire().await.unwrap();
    sqlx::raw_sql("begin; select 1")
        .execute(&mut *held)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let next = sqlx::query("select 1").execute(&mut *held).await;
    assert!(next.is_err(), "the idle transaction was ended");
    held.detach();
    // the pool goes on with fresh sessions
    sqlx::query("select 1")
        .execute(&database.pool)
        .await
        .unwrap();

    // the embedded cluster sets it for every session, not only Academy's
    if config.database_url.is_none() {
        let mut other = sqlx::PgConnection::connect_with(
            &sqlx::postgres::PgConnectOptions::new()
                .host(&data_dir.to_string_lossy())
                .username("postgres")
                .database("academy"),
        )
        .await
        .unwrap();
        let setting: String = sqlx::query_scalar("show idle_in_transaction_session_timeout")
            .fetch_one(&mut other)
            .await
            .unwrap();
        assert_eq!(setting, "1s");
        other.close().await.unwrap();
    }
    database.close().await;
}
