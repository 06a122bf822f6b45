//! Group commit: appends that queue behind a busy committer share one transaction, each with its own outcome.

use std::collections::HashSet;

use eventlog::{
    AppendError, AppendRequest, Appended, EventLog, ExpectedVersion, GroupCommit, Metadata,
    NewEvent, Source,
};
use migrations::testing::TestDb;
use sqlx::Connection;

use crate::{event, request, stream};

/// A log with one committer, busy: its append waits on a stream row another session holds until `release`.
struct BusyCommitter {
    log: EventLog,
    other: sqlx::PgConnection,
    first: tokio::task::JoinHandle<Result<Appended, AppendError>>,
}

impl BusyCommitter {
    async fn start(db: &TestDb) -> Self {
        let one_slot = GroupCommit {
            committers: 1,
            max_batch: 32,
        };
        let log = EventLog::with_group_commit(db.pool.clone(), one_slot);
        let blocker = stream("thing");
        log.append(request(&blocker, ExpectedVersion::NoStream, vec![event(1)]))
            .await
            .unwrap();
        let mut other = sqlx::PgConnection::connect_with(&db.connect_options())
            .await
            .unwrap();
        sqlx::query("begin").execute(&mut other).await.unwrap();
        sqlx::query("select version from streams where stream_id = $1 for update")
            .bind(blocker.as_str())
            .execute(&mut other)
            .await
            .unwrap();
        let first = tokio::spawn({
            let (log, request) = (
                log.clone(),
                request(&blocker, ExpectedVersion::Exactly(1), vec![event(2)]),
            );
            async move { log.append(request).await }
        });
        wait_for_lock_wait(&db.pool).await;
        Self { log, other, first }
    }

    /// Spawns an append of each of `requests`, and lets each run up to its queueing (a current-thread runtime).
    async fn queue(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Vec<tokio::task::JoinHandle<Result<Appended, AppendError>>> {
        let queued = requests
            .into_iter()
            .map(|r| {
                let log = self.log.clone();
                tokio::spawn(async move { log.append(r).await })
            })
            .collect();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        queued
    }

    async fn release(mut self) -> EventLog {
        sqlx::query("commit")
            .execute(&mut self.other)
            .await
            .unwrap();
        self.first.await.unwrap().unwrap();
        self.log
    }
}

/// The outcomes of `requests` appended while the only committer is busy (so they go as one group).
async fn queued_behind_a_busy_committer(
    db: &TestDb,
    requests: Vec<AppendRequest>,
) -> (EventLog, Vec<Result<Appended, AppendError>>) {
    let busy = BusyCommitter::start(db).await;
    let queued = busy.queue(requests).await;
    let log = busy.release().await;
    let mut outcomes = Vec::new();
    for task in queued {
        outcomes.push(task.await.unwrap());
    }
    (log, outcomes)
}

#[tokio::test]
async fn an_append_whose_caller_is_dropped_while_it_waits_in_the_queue_is_never_committed() {
    let db = TestDb::new().await;
    let (dropped, kept) = (stream("thing"), stream("thing"));
    let busy = BusyCommitter::start(&db).await;
    let queued = busy
        .queue(vec![request(
            &dropped,
            ExpectedVersion::NoStream,
            vec![event(1)],
        )])
        .await;
    for task in &queued {
        task.abort();
    }
    for task in queued {
        assert!(task.await.unwrap_err().is_cancelled());
    }
    let log = busy.release().await;
    log.append(request(&kept, ExpectedVersion::NoStream, vec![event(1)]))
        .await
        .unwrap();
    assert_eq!(log.stream_version(kept.as_str()).await.unwrap(), 1);
    assert_eq!(
        log.stream_version(dropped.as_str()).await.unwrap(),
        0,
        "withdrawn"
    );
}

#[tokio::test]
async fn appends_queued_behind_a_busy_committer_commit_together_each_with_its_own_outcome() {
    let db = TestDb::new().await;
    let old = stream("thing");
    EventLog::new(db.pool.clone())
        .append(request(
            &old,
            ExpectedVersion::NoStream,
            vec![event(1), event(2)],
        ))
        .await
        .unwrap();
    let fresh: Vec<_> = (0..5).map(|_| stream("thing")).collect();
    let twin_stream = stream("thing");
    let twin_metadata = Metadata::new(Source::Cli);
    let mut requests = vec![request(&old, ExpectedVersion::Exactly(1), vec![event(3)])];
    for _ in 0..2 {
        let mut twin = request(&twin_stream, ExpectedVersion::NoStream, vec![event(5)]);
        twin.metadata = twin_metadata.clone();
        requests.push(twin);
    }
    requests.extend(
        fresh
            .iter()
            .map(|s| request(s, ExpectedVersion::NoStream, vec![event(6), event(7)])),
    );
    let (log, outcomes) = queued_behind_a_busy_committer(&db, requests).await;

    let [stale, twin_a, twin_b, rest @ ..] = &outcomes[..] else {
        unreachable!()
    };
    assert!(
        matches!(stale, Err(AppendError::Conflict { stream, actual: 2, .. }) if stream == old.as_str()),
        "{stale:?}"
    );
    let (twin_a, twin_b) = (twin_a.as_ref().unwrap(), twin_b.as_ref().unwrap());
    assert_ne!(twin_a.duplicate, twin_b.duplicate, "one twin writes");
    assert_eq!(twin_a.events, twin_b.events, "both report the same events");
    let written: Vec<_> = rest.iter().map(|o| o.as_ref().unwrap()).collect();
    let transactions: HashSet<i64> = written
        .iter()
        .chain([&twin_a])
        .flat_map(|a| a.events.iter().map(|(_, e)| e.xid))
        .collect();
    assert_eq!(
        transactions.len(),
        1,
        "the queued appends shared one commit"
    );

    assert_eq!(log.stream_version(old.as_str()).await.unwrap(), 2);
    for s in &fresh {
        assert_eq!(log.stream_version(s.as_str()).await.unwrap(), 2);
    }
    assert_eq!(log.stream_version(twin_stream.as_str()).await.unwrap(), 1);
    let stored: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(stored, 2 + 2 + 1 + 10, "the stale append wrote nothing");
}

#[tokio::test]
async fn an_append_the_database_refuses_fails_alone_even_when_it_fails_its_whole_group() {
    let db = TestDb::new().await;
    let fresh: Vec<_> = (0..3).map(|_| stream("thing")).collect();
    // PostgreSQL's jsonb refuses a NUL character, before any append of the group runs
    let nul = NewEvent::new("ThingHappened", serde_json::json!({ "text": "a\u{0}b" }));
    let mut requests = vec![request(
        &stream("thing"),
        ExpectedVersion::NoStream,
        vec![nul],
    )];
    requests.extend(
        fresh
            .iter()
            .map(|s| request(s, ExpectedVersion::NoStream, vec![event(1)])),
    );
    let (log, outcomes) = queued_behind_a_busy_committer(&db, requests).await;
    assert!(
        matches!(&outcomes[0], Err(AppendError::Refused { code, .. }) if code == "22P05"),
        "{:?}",
        outcomes[0]
    );
    for (s, outcome) in fresh.iter().zip(&outcomes[1..]) {
        assert!(outcome.is_ok(), "{outcome:?}");
        assert_eq!(log.stream_version(s.as_str()).await.unwrap(), 1);
    }
}

#[tokio::test]
async fn many_concurrent_appends_all_land_in_fewer_transactions() {
    let db = TestDb::new().await;
    let log = EventLog::new(db.pool.clone());
    let tasks: Vec<_> = (0..200)
        .map(|n| {
            let log = log.clone();
            tokio::spawn(async move {
                log.append(request(
                    &stream("thing"),
                    ExpectedVersion::NoStream,
                    vec![NewEvent::new(
                        "ThingHappened",
                        serde_json::json!({ "n": n }),
                    )],
                ))
                .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let (events, transactions): (i64, i64) =
        sqlx::query_as("select count(*), count(distinct transaction_id) from events")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(events, 200);
    assert!(transactions < 200, "{transactions} transactions");
}

#[tokio::test]
async fn without_grouping_every_append_commits_alone() {
    let db = TestDb::new().await;
    let log = EventLog::with_group_commit(db.pool.clone(), GroupCommit::off(8));
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let log = log.clone();
            tokio::spawn(async move {
                log.append(request(
                    &stream("thing"),
                    ExpectedVersion::NoStream,
                    vec![event(1)],
                ))
                .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let transactions: i64 = sqlx::query_scalar("select count(distinct transaction_id) from events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(transactions, 40);
}

/// Waits until some session of the test database waits on a lock.
async fn wait_for_lock_wait(pool: &sqlx::PgPool) {
    for _ in 0..500 {
        let waiting: bool = sqlx::query_scalar(
            "select exists(select 1 from pg_stat_activity
                            where datname = current_database() and wait_event_type = 'Lock')",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("no append waited on the locked stream row");
}
