use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use projections::{Projection, RebuildError, Runner, Status, status};
use tokio::sync::Semaphore;

use crate::{Ledger, WAIT, append, config, ledger_rows, log, start};

/// A ledger whose build advances one batch per permit of the returned gate.
fn gated(version: i32, tag: &str) -> (Ledger, Arc<Semaphore>) {
    let gate = Arc::new(Semaphore::new(0));
    let mut ledger = Ledger::new("ledger");
    ledger.version = version;
    ledger.tag = tag.to_owned();
    ledger.gate = Some(gate.clone());
    (ledger, gate)
}

/// Queries the live table until `done`; every answer must be complete: all `total` rows, from one build.
fn watch_queries(
    log: &eventlog::EventLog,
    total: i64,
    done: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<String>> {
    let log = log.clone();
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while !done.load(Ordering::SeqCst) {
            let (rows, repeated, tags) = ledger_rows(&log, "ledger").await;
            assert_eq!((rows, repeated), (total, 0), "a query saw incomplete data");
            assert_eq!(tags.len(), 1, "a query saw rows of two builds: {tags:?}");
            if seen.last() != Some(&tags[0]) {
                seen.push(tags[0].clone());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        seen
    })
}

async fn build_row_status(log: &eventlog::EventLog) -> Option<(String, i64)> {
    sqlx::query_as(
        "select status, events_applied from projections where name = 'ledger' and slot = 'build'",
    )
    .fetch_optional(log.pool())
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_builds_aside_while_the_old_one_serves_then_swaps_in_one_step() {
    let (_db, log) = log().await;
    let total = 400;
    let last = append(&log, "ThingHappened", total as usize).await;
    let (v1, stop, task) = start(&log, vec![Arc::new(Ledger::new("ledger"))]);
    v1.wait_for(last, WAIT).await.unwrap();
    stop.send(true).unwrap();
    task.await.unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let watcher = watch_queries(&log, total, done.clone());
    // a deploy with version 2; its build gets two of its four batches for now
    let (v2_ledger, gate) = gated(2, "v2");
    gate.add_permits(2);
    let (v2, _stop, _task) = start(&log, vec![Arc::new(v2_ledger)]);
    let deadline = tokio::time::Instant::now() + WAIT;
    while build_row_status(&log).await != Some(("building".to_owned(), 200)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the build did not get halfway"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        ledger_rows(&log, "ledger").await.2,
        ["v1"],
        "half-way through the build, v1 serves"
    );
    gate.add_permits(1000);
    v2.wait_for(last, WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    done.store(true, Ordering::SeqCst);
    assert_eq!(
        watcher.await.unwrap(),
        ["v1", "v2"],
        "complete v1, then complete v2, nothing between"
    );

    let known: Vec<Arc<dyn Projection>> = v2.projections();
    let rows = status::status(&log, &known).await.unwrap();
    assert_eq!(
        rows.len(),
        1,
        "the build slot is gone after the swap: {rows:?}"
    );
    assert_eq!(
        (
            rows[0].slot.as_str(),
            rows[0].version,
            rows[0].status.as_str()
        ),
        ("live", 2, "running")
    );
    let schemas: i64 =
        sqlx::query_scalar("select count(*) from pg_namespace where nspname like 'ledger%'")
            .fetch_one(log.pool())
            .await
            .unwrap();
    assert_eq!(schemas, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_rebuild_swaps_in_under_a_running_live_runner_without_losing_live_writes() {
    let (_db, log) = log().await;
    let total = 300;
    let last = append(&log, "ThingHappened", total as usize).await;
    let (live, _stop, _task) = start(&log, vec![Arc::new(Ledger::new("ledger"))]);
    live.wait_for(last, WAIT).await.unwrap();

    let (rebuilt, gate) = gated(1, "rebuilt");
    let rebuilder = Runner::new(log.clone(), Arc::new(rebuilt), config()).unwrap();
    let progress = rebuilder.progress();
    let rebuild = tokio::spawn(async move { rebuilder.rebuild().await });
    let deadline = tokio::time::Instant::now() + WAIT;
    while build_row_status(&log).await.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rebuild did not start"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // a second rebuild at the same time is refused
    let second = Runner::new(log.clone(), Arc::new(Ledger::new("ledger")), config()).unwrap();
    assert!(matches!(
        second.rebuild().await,
        Err(RebuildError::Busy { .. })
    ));
    // writes keep arriving during the rebuild and the live runner keeps applying them to the old tables
    for _ in 0..5 {
        let written = append(&log, "ThingHappened", 4).await;
        live.wait_for(written, WAIT).await.unwrap();
    }
    assert_eq!(ledger_rows(&log, "ledger").await.0, total + 20);
    gate.add_permits(1000);
    tokio::time::timeout(WAIT, rebuild)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(progress.borrow().events_applied >= total);
    assert_eq!(progress.borrow().status, Status::Running);

    // the live runner follows the swapped-in tables, applying whatever the build had not covered
    let last = append(&log, "ThingHappened", 1).await;
    live.wait_for(last, WAIT).await.unwrap();
    let (rows, repeated, _) = ledger_rows(&log, "ledger").await;
    assert_eq!((rows, repeated), (total + 21, 0));
    let rebuilt: i64 =
        sqlx::query_scalar("select count(*) from ledger.applied where tag = 'rebuilt'")
            .fetch_one(log.pool())
            .await
            .unwrap();
    assert!(rebuilt >= total, "the rebuilt tables are the ones serving");
}

#[tokio::test]
async fn an_older_binary_waits_instead_of_rebuilding_newer_tables_down() {
    let (_db, log) = log().await;
    let last = append(&log, "ThingHappened", 5).await;
    let mut v2 = Ledger::new("ledger");
    v2.version = 2;
    v2.tag = "v2".to_owned();
    let (newer, stop, task) = start(&log, vec![Arc::new(v2)]);
    newer.wait_for(last, WAIT).await.unwrap();
    stop.send(true).unwrap();
    task.await.unwrap();

    let (older, _stop, _task) = start(&log, vec![Arc::new(Ledger::new("ledger"))]);
    let mut progress = older.progress()[0].1.clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    while progress.error.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the older binary never said why it waits"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        progress = older.progress()[0].1.clone();
    }
    assert_eq!(progress.status, Status::Waiting);
    assert!(
        progress
            .error
            .unwrap()
            .contains("newer than this binary's 1")
    );
    assert_eq!(
        ledger_rows(&log, "ledger").await.2,
        ["v2"],
        "the v2 tables are untouched"
    );
    assert!(
        build_row_status(&log).await.is_none(),
        "no build was started"
    );
}
