//! The commit-safe ordering contract under load: writers whose transactions commit out of position order, and a
//! live subscriber that must still receive every event exactly once, in (transaction id, position) order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use eventlog::{Checkpoint, ExpectedVersion, RecordedEvent};
use rand::{Rng, SeedableRng};
use tokio::sync::Mutex;

use crate::{event, log, request, stream};

const WRITERS: u64 = 8;
const EVENTS_PER_WRITER: usize = 2_500;
const TOTAL: usize = WRITERS as usize * EVENTS_PER_WRITER;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_subscriber_gets_every_event_once_in_commit_safe_order_despite_late_commits() {
    let (_db, log) = log().await;
    let commit_seq = Arc::new(AtomicU64::new(0));
    // (commit sequence, highest position of the append) for every append
    let commits = Arc::new(Mutex::new(Vec::<(u64, i64)>::new()));

    let mut subscription = log
        .subscribe(Checkpoint::START, None)
        .batch_size(500)
        .poll_interval(Duration::from_millis(20));
    let subscriber = tokio::spawn(async move {
        let mut received: Vec<RecordedEvent> = Vec::with_capacity(TOTAL);
        while received.len() < TOTAL {
            received.extend(subscription.next_batch().await.unwrap());
        }
        // anything beyond TOTAL would be a duplicate; look once more for stragglers
        if let Some(more) = subscription.try_next_batch().await.unwrap() {
            received.extend(more);
        }
        received
    });

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (log, commit_seq, commits) = (log.clone(), commit_seq.clone(), commits.clone());
            tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(w);
                // half the writers hold their transaction open a while after taking their positions
                let holds = w % 2 == 0;
                let streams: Vec<_> = (0..20).map(|_| stream("stress")).collect();
                let mut versions = vec![0_i64; streams.len()];
                let mut written = 0;
                while written < EVENTS_PER_WRITER {
                    let count = rng.random_range(1..=5).min(EVENTS_PER_WRITER - written);
                    let i = rng.random_range(0..streams.len());
                    let events = (0..count).map(|k| event((written + k) as i64)).collect();
                    let req = request(&streams[i], ExpectedVersion::Exactly(versions[i]), events);
                    let appended = if holds {
                        let mut tx = log.pool().begin().await.unwrap();
                        let appended = eventlog::append_in(&mut tx, req).await.unwrap();
                        tokio::time::sleep(Duration::from_micros(rng.random_range(0..4_000))).await;
                        tx.commit().await.unwrap();
                        log.committed();
                        appended
                    } else {
                        log.append(req).await.unwrap()
                    };
                    let seq = commit_seq.fetch_add(1, Ordering::SeqCst);
                    commits
                        .lock()
                        .await
                        .push((seq, appended.position().unwrap()));
                    versions[i] += count as i64;
                    written += count;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let received = tokio::time::timeout(Duration::from_secs(120), subscriber)
        .await
        .expect("the subscriber received everything")
        .unwrap();

    // the scenario really happened: some appends committed after an append with a larger position
    let mut commits = commits.lock().await.clone();
    commits.sort();
    let mut highest = 0;
    let late_commits = commits
        .iter()
        .filter(|(_, position)| {
            let late = *position < highest;
            highest = highest.max(*position);
            late
        })
        .count();
    assert!(
        late_commits > 0,
        "no commit landed out of position order; the test proved nothing"
    );

    let all: Vec<(i64, i64)> = sqlx::query_as(
        "select transaction_id::text::bigint, position from events order by transaction_id, position",
    )
    .fetch_all(log.pool())
    .await
    .unwrap();
    assert_eq!(all.len(), TOTAL);
    let got: Vec<(i64, i64)> = received
        .iter()
        .map(|e| (e.transaction_id, e.position))
        .collect();
    assert_eq!(got.len(), TOTAL, "every committed event exactly once");
    assert_eq!(
        got, all,
        "in commit-safe order: by (transaction id, position)"
    );
    println!(
        "{late_commits} of {} appends committed after a larger position",
        commits.len()
    );
}
