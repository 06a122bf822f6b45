//! The cohort tracks' read models (`tracks`, `deadlines`, `notifications`): what they show along a track's life,
//! and that rebuilding each from the log gives exactly the rows kept live.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use domain::inbox::{InboxEvent, inbox_stream};
use domain::testing::at;
use domain::tracks::{
    AssignmentSpec, Criterion, Diary, DiaryCommand, RepoUrl, Score, Track, TrackCommand, TrackSpec,
    TrackTimer, diary_stream, track_stream,
};
use domain::{Decider, Timestamp};
use eventlog::EventLog;
use projections::deadlines::{self, Deadlines};
use projections::notifications::{self, Notifications};
use projections::tracks::{self, Tracks};
use projections::{Projection, RunnerConfig};
use uuid::Uuid;

use crate::{WAIT, log, start, write};

const HOUR: TimeDelta = TimeDelta::hours(1);
const T0: Timestamp = at(1_800_000_000);

/// Decides `command` on the track's current stream and appends what it produces.
async fn track(log: &EventLog, id: Uuid, command: TrackCommand) -> i64 {
    let stream = track_stream(id);
    let history: Vec<_> = log
        .read_whole_stream(stream.as_str())
        .await
        .unwrap()
        .iter()
        .map(|e| e.decode().unwrap())
        .collect();
    let events = Track::decide(&command, &Track::fold(&history)).unwrap();
    write(log, stream, &events).await
}

fn spec() -> TrackSpec {
    TrackSpec::parse(
        "Rust cohort",
        "",
        4,
        Some(6),
        vec![Criterion {
            name: "Correctness".into(),
            description: "".into(),
            min_score: 0,
            max_score: 5,
        }],
        vec![
            AssignmentSpec {
                title: "Ownership".into(),
                description: "".into(),
                hours: 10,
            },
            AssignmentSpec {
                title: "Traits".into(),
                description: "".into(),
                hours: 10,
            },
        ],
    )
    .unwrap()
}

/// Every row of every table in `schema`, as JSON, in a stable order.
async fn snapshot(log: &EventLog, schema: &str) -> BTreeMap<String, Vec<serde_json::Value>> {
    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables where table_schema = $1 order by 1",
    )
    .bind(schema)
    .fetch_all(log.pool())
    .await
    .unwrap();
    let mut rows = BTreeMap::new();
    for table in tables {
        let sql = format!("select to_jsonb(t) from {schema}.{table} t order by t::text");
        let values: Vec<serde_json::Value> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(log.pool())
            .await
            .unwrap();
        rows.insert(table, values);
    }
    rows
}

/// The timers due at `now`, as tracks' timers on their streams.
async fn due_timers(
    log: &EventLog,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<(String, TrackTimer)> {
    let due = deadlines::due(log.pool(), now, None, 100).await.unwrap();
    due.into_iter()
        .map(|d| (d.stream_id, serde_json::from_value(d.timer).unwrap()))
        .collect()
}

#[tokio::test]
async fn the_track_read_models_follow_a_cohort_and_rebuild_to_the_same_rows() {
    let (_db, log) = log().await;
    let models: Vec<Arc<dyn Projection>> = vec![
        Arc::new(Tracks),
        Arc::new(Deadlines::new(&projections::products())),
        Arc::new(Notifications::new(&projections::products())),
    ];
    // participants are listed with usernames from `accounts`
    let mut running = models.clone();
    running.push(Arc::new(projections::accounts::Accounts));
    let (projections, stop, task) = start(&log, running);
    let id = Uuid::now_v7();
    let admin = Uuid::now_v7();
    let people: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();

    track(
        &log,
        id,
        TrackCommand::Create {
            spec: spec(),
            by: admin,
            at: T0 - HOUR,
        },
    )
    .await;
    for (n, person) in people.iter().enumerate() {
        // the 4th starts the track; the 5th joins it running
        track(
            &log,
            id,
            TrackCommand::Enroll {
                participant: *person,
                at: T0 + TimeDelta::seconds(n as i64 - 3),
            },
        )
        .await;
    }
    for person in &people[..4] {
        let repository = RepoUrl::parse(&format!("https://github.com/u/{person}")).unwrap();
        track(
            &log,
            id,
            TrackCommand::SubmitSolution {
                assignment: 0,
                participant: *person,
                repository,
                at: T0 + HOUR,
            },
        )
        .await;
    }
    let head = track(
        &log,
        id,
        TrackCommand::ExtendDeadline {
            assignment: 0,
            deadline: T0 + HOUR * 20,
            by: admin,
            at: T0 + HOUR * 2,
        },
    )
    .await;
    projections.wait_for(head, WAIT).await.unwrap();
    // after the extension the 80 % mark is at 16 h; the one who did not submit is waiting for a reminder
    let now = DateTime::<Utc>::from(T0 + HOUR * 16);
    let due = due_timers(&log, now).await;
    let reminder = TrackTimer::Remind {
        assignment: 0,
        participant: people[4],
    };
    assert_eq!(due, vec![(track_stream(id).to_string(), reminder)]);
    assert!(
        due_timers(&log, now - chrono::Duration::seconds(1))
            .await
            .is_empty()
    );

    track(
        &log,
        id,
        TrackCommand::RemindDeadline {
            assignment: 0,
            participant: people[4],
            at: T0 + HOUR * 16,
        },
    )
    .await;
    track(
        &log,
        id,
        TrackCommand::CloseAssignment {
            assignment: 0,
            seed: 11,
            at: T0 + HOUR * 20,
        },
    )
    .await;
    let (state, _) = {
        let history: Vec<_> = log
            .read_whole_stream(track_stream(id).as_str())
            .await
            .unwrap()
            .iter()
            .map(|e| e.decode().unwrap())
            .collect();
        (Track::fold(&history).unwrap(), ())
    };
    let allocation = state.stages[0].allocation.clone().unwrap();
    for pair in allocation.pairs.iter().filter(|p| p.reviewer == people[0]) {
        let scores = vec![Score {
            criterion: "Correctness".into(),
            score: 4,
        }];
        track(
            &log,
            id,
            TrackCommand::SubmitReview {
                assignment: 0,
                reviewer: pair.reviewer,
                author: pair.author,
                scores,
                comment: Some("Clear.".into()),
                at: T0 + HOUR * 21,
            },
        )
        .await;
    }
    let diary = Diary::decide(
        &DiaryCommand::Write {
            entry_id: Uuid::now_v7(),
            track: id,
            assignment: 0,
            participant: people[0],
            text: "Borrowing finally makes sense.".into(),
            enrolled: true,
            assignment_opened: true,
            at: T0 + HOUR * 3,
        },
        &Default::default(),
    )
    .unwrap();
    write(&log, diary_stream(id, people[0]), &diary).await;
    let mine = {
        let head = projections.head().await.unwrap();
        projections.wait_for(head, WAIT).await.unwrap();
        notifications::list(log.pool(), people[4], false, None, 50)
            .await
            .unwrap()
    };
    let kinds: Vec<&str> = mine.iter().map(|n| n.kind.as_str()).collect();
    // newest first: the close unlocked the next assignment for them (nothing to review), after the reminder,
    // the extension and joining a running track
    assert_eq!(
        kinds,
        [
            "assignment_unlocked",
            "deadline_reminder",
            "deadline_extended",
            "track_joined"
        ]
    );
    let read = InboxEvent::NotificationsRead {
        ids: vec![mine[1].id],
        at: T0 + HOUR * 22,
    };
    let head = write(&log, inbox_stream(people[4]), &[read]).await;
    projections.wait_for(head, WAIT).await.unwrap();
    assert_eq!(
        notifications::unread_count(log.pool(), people[4])
            .await
            .unwrap(),
        3
    );

    // what the tracks model shows
    let row = tracks::track(log.pool(), id).await.unwrap().unwrap();
    assert_eq!(
        (row.status.as_str(), row.participants, row.open_assignment),
        ("running", 5, Some(1))
    );
    let places: BTreeMap<Uuid, Option<i32>> = tracks::participants(log.pool(), id)
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.user_id, p.current_assignment))
        .collect();
    assert_eq!(places[&people[0]], Some(1), "three reviews done");
    assert_eq!(places[&people[1]], Some(0), "reviews pending");
    assert_eq!(places[&people[4]], Some(1), "nothing to review");
    let tasks = tracks::review_tasks(log.pool(), people[0], Some(id))
        .await
        .unwrap();
    assert_eq!(tasks.len(), 3);
    assert!(tasks.iter().all(|t| t.reviewed_at.is_some()));
    let reviewed = allocation
        .pairs
        .iter()
        .find(|p| p.reviewer == people[0])
        .unwrap()
        .author;
    let received = tracks::reviews_received(log.pool(), reviewed, id, None)
        .await
        .unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].comment.as_deref(), Some("Clear."));
    assert_eq!(
        tracks::diary(log.pool(), id, people[0], Some(0))
            .await
            .unwrap()
            .len(),
        1
    );
    // the next assignment is what the worker waits on now
    let later = DateTime::<Utc>::from(T0 + HOUR * 30);
    assert_eq!(
        due_timers(&log, later).await,
        vec![(
            track_stream(id).to_string(),
            TrackTimer::Close { assignment: 1 }
        )]
    );

    let live: Vec<_> = {
        let mut all = vec![];
        for model in &models {
            all.push(snapshot(&log, model.name()).await);
        }
        all
    };
    stop.send(true).unwrap();
    task.await.unwrap();
    for (model, live) in models.into_iter().zip(live) {
        let name = model.name();
        projections::rebuild(log.clone(), model, RunnerConfig::default())
            .await
            .unwrap();
        assert_eq!(
            snapshot(&log, name).await,
            live,
            "{name} rebuilt differs from live"
        );
    }
}
