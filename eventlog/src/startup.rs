//! The start-up check on transaction ids.
//!
//! Readers only see events whose transaction id is below the oldest running transaction. If the log was restored
//! from a dump into a cluster whose transaction counter is behind the stored ids, every stored event would look
//! like it belongs to a transaction from the future and stay invisible to every reader, silently. So we refuse to
//! start instead.

use sqlx::PgPool;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(
        "the event log holds transaction ids up to {stored}, but this PostgreSQL cluster is only at {current}: the \
         log was probably restored from a dump into a different cluster. Readers would never see those events, so \
         Academy refuses to start. Restore into the original cluster (or a physical copy of it), or advance this \
         cluster's transaction counter past {stored} (pg_resetwal --next-transaction-id with the server stopped) \
         before starting"
    )]
    TransactionIdsAhead { stored: i64, current: i64 },
    #[error("checking the event log's transaction ids: {0}")]
    Database(#[from] sqlx::Error),
}

/// Fails when stored transaction ids are at or beyond the cluster's next transaction id.
pub async fn verify_transaction_ids(pool: &PgPool) -> Result<(), StartupError> {
    let (stored, current): (Option<i64>, i64) = sqlx::query_as(
        "select (select transaction_id::text::bigint from events order by transaction_id desc limit 1),
                pg_snapshot_xmax(pg_current_snapshot())::text::bigint",
    )
    .fetch_one(pool)
    .await?;
    match stored {
        Some(stored) if stored >= current => {
            Err(StartupError::TransactionIdsAhead { stored, current })
        }
        _ => Ok(()),
    }
}
