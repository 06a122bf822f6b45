use eventlog::{ExpectedVersion, StartupError, verify_transaction_ids};

use crate::{event, log, request, stream};

#[tokio::test]
async fn a_log_written_by_this_cluster_passes_the_start_up_check() {
    let (_db, log) = log().await;
    verify_transaction_ids(log.pool()).await.unwrap();
    log.append(request(
        &stream("thing"),
        ExpectedVersion::NoStream,
        vec![event(1)],
    ))
    .await
    .unwrap();
    verify_transaction_ids(log.pool()).await.unwrap();
}

#[tokio::test]
async fn a_log_with_transaction_ids_from_the_future_is_refused() {
    let (_db, log) = log().await;
    // what a dump restored into a younger cluster looks like: ids far beyond this cluster's counter
    sqlx::query(
        "insert into events (stream_id, stream_category, version, event_id, event_type, data, source, transaction_id)
         values ('thing-restored', 'thing', 1, gen_random_uuid(), 'ThingHappened', '{}', 'cli', '900000000000'::xid8)",
    )
    .execute(log.pool())
    .await
    .unwrap();
    let error = verify_transaction_ids(log.pool()).await.unwrap_err();
    assert!(matches!(
        error,
        StartupError::TransactionIdsAhead {
            stored: 900_000_000_000,
            ..
        }
    ));
    assert!(error.to_string().contains("restored from a dump"));
}
