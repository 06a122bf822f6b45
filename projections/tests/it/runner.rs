use std::sync::Arc;
use std::time::Duration;

use projections::{Projection, Runner, Status, WaitError, status};
use tokio::sync::{Notify, watch};

use crate::{Ledger, WAIT, append, config, ledger_rows, log, start};

#[tokio::test]
async fn a_new_projection_catches_up_from_the_start_then_follows_live() {
    let (_db, log) = log().await;
    let position = append(&log, "ThingHappened", 250).await;
    let (projections, stop, task) = start(&log, vec![Arc::new(Ledger::new("ledger"))]);
    projections.wait_for(position, WAIT).await.unwrap();
    assert_eq!(
        ledger_rows(&log, "ledger").await,
        (250, 0, vec!["v1".to_owned()])
    );

    // live: a write followed by wait_for is visible at once
    let position = append(&log, "ThingHappened", 1).await;
    projections.wait_for(position, WAIT).await.unwrap();
    assert_eq!(ledger_rows(&log, "ledger").await.0, 251);

    let known: Vec<Arc<dyn Projection>> = projections.projections();
    let rows = status::status(&log, &known).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].status.as_str(), rows[0].version, rows[0].lag),
        ("running", 1, 0)
    );
    assert_eq!(rows[0].events_applied, 251);
    assert_eq!(rows[0].holder.as_deref(), Some("test"));

    stop.send(true).unwrap();
    task.await.unwrap();
    assert_eq!(projections.progress()[0].1.status, Status::Stopped);
}

#[tokio::test]
async fn waiting_for_a_position_that_does_not_exist_fails_clearly() {
    let (_db, log) = log().await;
    let (projections, _stop, _task) = start(&log, vec![Arc::new(Ledger::new("ledger"))]);
    let error = projections
        .wait_for(12345, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(matches!(error, WaitError::UnknownPosition(12345)));
}

#[tokio::test]
async fn a_runner_aborted_mid_batch_loses_and_repeats_nothing_when_restarted() {
    let (_db, log) = log().await;
    // the projection is live (built on an empty log) before the events arrive
    let (projections, stop, task) = start(&log, vec![Arc::new(Ledger::new("ledger"))]);
    let mut progress = projections.progress()[0].1.clone();
    while progress.status != Status::Running || !progress.caught_up {
        tokio::time::sleep(Duration::from_millis(20)).await;
        progress = projections.progress()[0].1.clone();
    }
    stop.send(true).unwrap();
    task.await.unwrap();
    let total = 500;
    let last = append(&log, "ThingHappened", total).await;
    let first: i64 = sqlx::query_scalar("select min(position) from events")
        .fetch_one(log.pool())
        .await
        .unwrap();
    let hang_position = first + 250; // in the third batch of 100
    let entered = Arc::new(Notify::new());
    let mut hanging = Ledger::new("ledger");
    hanging.hang_at = Some((hang_position, entered.clone()));
    let runner = Runner::new(log.clone(), Arc::new(hanging), config()).unwrap();
    let crashed = tokio::spawn(runner.run(std::future::pending()));
    tokio::time::timeout(WAIT, entered.notified())
        .await
        .expect("reached the batch");
    // the batch's rows are written but not committed; now the process "dies"
    crashed.abort();
    let _ = crashed.await;
    // exactly what the stored checkpoint says was applied is there: nothing of the interrupted batch, nothing
    // twice (batch boundaries depend on the log's horizon, so the count is read, not assumed)
    let (rows, repeated, _) = ledger_rows(&log, "ledger").await;
    let applied: i64 = sqlx::query_scalar(
        "select events_applied from projections where name = 'ledger' and slot = 'live'",
    )
    .fetch_one(log.pool())
    .await
    .unwrap();
    let hung_row: bool =
        sqlx::query_scalar("select exists(select 1 from ledger.applied where position = $1)")
            .bind(hang_position)
            .fetch_one(log.pool())
            .await
            .unwrap();
    assert_eq!((rows, repeated, hung_row), (applied, 0, false));
    assert!(rows < 251, "the interrupted batch left nothing behind");

    let (projections, _stop, _task) = start(&log, vec![Arc::new(Ledger::new("ledger"))]);
    projections.wait_for(last, WAIT).await.unwrap();
    assert_eq!(
        ledger_rows(&log, "ledger").await,
        (total as i64, 0, vec!["v1".to_owned()])
    );
}

#[tokio::test]
async fn two_runners_of_one_projection_never_both_apply_and_the_second_takes_over() {
    let (_db, log) = log().await;
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    let mut progress = Vec::new();
    for tag in ["a", "b"] {
        let mut ledger = Ledger::new("ledger");
        ledger.tag = tag.to_owned();
        let runner = Runner::new(log.clone(), Arc::new(ledger), config()).unwrap();
        progress.push(runner.progress());
        let (stop, mut stopped) = watch::channel(false);
        stops.push(stop);
        tasks.push(tokio::spawn(runner.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })));
    }
    for _ in 0..5 {
        append(&log, "ThingHappened", 40).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = 200;
    wait_rows(&log, total).await;
    let (rows, repeated, tags) = ledger_rows(&log, "ledger").await;
    assert_eq!((rows, repeated), (total, 0));
    assert_eq!(tags.len(), 1, "one runner applied everything: {tags:?}");
    let owner = if tags[0] == "a" { 0 } else { 1 };
    assert_eq!(progress[1 - owner].borrow().status, Status::Waiting);

    // the owner stops; the other takes over and continues where it left off
    stops[owner].send(true).unwrap();
    tasks.remove(owner).await.unwrap();
    append(&log, "ThingHappened", 50).await;
    wait_rows(&log, total + 50).await;
    let (rows, repeated, mut tags) = ledger_rows(&log, "ledger").await;
    tags.sort();
    assert_eq!(
        (rows, repeated, tags),
        (total + 50, 0, vec!["a".to_owned(), "b".to_owned()])
    );
}

async fn wait_rows(log: &eventlog::EventLog, expected: i64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let exists: bool = sqlx::query_scalar(
            "select exists(select 1 from pg_tables where schemaname = 'ledger')",
        )
        .fetch_one(log.pool())
        .await
        .unwrap();
        if exists && ledger_rows(log, "ledger").await.0 >= expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the ledger never reached {expected} rows"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn an_idle_runner_notices_when_its_tables_are_replaced_under_it() {
    let (_db, log) = log().await;
    let last = append(&log, "ThingHappened", 50).await;
    let (projections, _stop, _task) = start(&log, vec![Arc::new(Ledger::new("ledger"))]);
    projections.wait_for(last, WAIT).await.unwrap();
    // what a swap by another process amounts to for this runner: other tables, another checkpoint (here: empty
    // tables at the start of the log), while no new event arrives
    let mut tx = log.pool().begin().await.unwrap();
    sqlx::query("select pg_advisory_xact_lock(hashtextextended('checkpoint/ledger/live', 0))")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("truncate ledger.applied")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "update projections set checkpoint_xid = 0, checkpoint_position = 0, events_applied = 0
          where name = 'ledger' and slot = 'live'",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    wait_rows(&log, 50).await;
    assert_eq!(
        ledger_rows(&log, "ledger").await,
        (50, 0, vec!["v1".to_owned()])
    );
}
