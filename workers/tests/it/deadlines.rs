//! The deadline worker against a real PostgreSQL, with a manual clock: time moves when the test says so.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use commands::{CommandExecutor, ManualClock, Metadata, Source};
use domain::Timestamp;
use domain::tracks::{
    AssignmentSpec, Criterion, RepoUrl, Track, TrackCommand, TrackSpec, track_stream,
};
use eventlog::EventLog;
use migrations::testing::TestDb;
use projections::deadlines::Deadlines;
use projections::{Projections, RunnerConfig};
use tokio::sync::watch;
use uuid::Uuid;
use workers::deadlines::{DeadlineWorker, Pass};

const HOUR: TimeDelta = TimeDelta::hours(1);
const SECOND: TimeDelta = TimeDelta::seconds(1);
const T0: Timestamp = domain::testing::at(1_800_000_000);

/// The clock's reading at `time`.
fn at(time: Timestamp) -> DateTime<Utc> {
    time.into()
}

struct World {
    db: TestDb,
    log: EventLog,
    executor: CommandExecutor,
    clock: Arc<ManualClock>,
    projections: Arc<Projections>,
    stop: watch::Sender<bool>,
    track: Uuid,
    people: Vec<Uuid>,
}

impl World {
    /// A track of 3 (minimum 3) with two 10-hour assignments, started at T0 by the third enrollment.
    async fn start() -> Self {
        let db = TestDb::new().await;
        let log = EventLog::new(db.pool.clone());
        let executor = CommandExecutor::new(log.clone());
        let clock = Arc::new(ManualClock::new(at(T0)));
        let projections = Arc::new(
            Projections::new(
                log.clone(),
                vec![Arc::new(Deadlines::new(&projections::products()))],
                RunnerConfig {
                    poll: Duration::from_millis(50),
                    ..RunnerConfig::default()
                },
            )
            .unwrap(),
        );
        let (stop, stopping) = watch::channel(false);
        let running = projections.clone();
        tokio::spawn(async move { running.run(stopping).await });
        let world = Self {
            db,
            log,
            executor,
            clock,
            projections,
            stop,
            track: Uuid::now_v7(),
            people: (0..3).map(|_| Uuid::now_v7()).collect(),
        };
        let spec = TrackSpec::parse(
            "Rust",
            "",
            3,
            None,
            vec![Criterion {
                name: "Correctness".into(),
                description: "".into(),
                min_score: 0,
                max_score: 5,
            }],
            vec![
                AssignmentSpec {
                    title: "One".into(),
                    description: "".into(),
                    hours: 10,
                },
                AssignmentSpec {
                    title: "Two".into(),
                    description: "".into(),
                    hours: 10,
                },
            ],
        )
        .unwrap();
        world
            .command(TrackCommand::Create {
                spec,
                by: Uuid::now_v7(),
                at: T0 - HOUR,
            })
            .await;
        for person in world.people.clone() {
            world
                .command(TrackCommand::Enroll {
                    participant: person,
                    at: T0,
                })
                .await;
        }
        world
    }

    async fn command(&self, command: TrackCommand) {
        self.executor
            .execute::<Track>(
                &track_stream(self.track),
                &command,
                &Metadata::new(Source::Cli),
            )
            .await
            .unwrap();
    }

    fn worker(&self) -> DeadlineWorker {
        let app = commands::App::new(
            self.executor.clone(),
            self.db.pool.clone(),
            commands::AppConfig::default(),
        )
        .unwrap();
        DeadlineWorker::new(&app, self.db.pool.clone(), self.clock.clone())
    }

    /// Waits until the read model has everything in the log, then runs one pass.
    async fn pass(&self, worker: &DeadlineWorker) -> Pass {
        let head = self.projections.head().await.unwrap();
        self.projections
            .wait_for(head, Duration::from_secs(30))
            .await
            .unwrap();
        worker.pass().await.unwrap()
    }

    async fn count(&self, event_type: &str) -> i64 {
        sqlx::query_scalar("select count(*) from events where event_type = $1")
            .bind(event_type)
            .fetch_one(self.log.pool())
            .await
            .unwrap()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

#[tokio::test]
async fn reminders_go_out_once_at_80_percent_and_skip_who_submitted() {
    let world = World::start().await;
    let repository = RepoUrl::parse("https://github.com/a/b").unwrap();
    world
        .command(TrackCommand::SubmitSolution {
            assignment: 0,
            participant: world.people[0],
            repository,
            at: T0 + HOUR,
        })
        .await;
    let worker = world.worker();
    world.clock.set(at(T0 + HOUR * 8 - SECOND));
    assert_eq!(world.pass(&worker).await, Pass::default(), "not yet 80 %");

    world.clock.set(at(T0 + HOUR * 8));
    let pass = world.pass(&worker).await;
    assert_eq!((pass.done_of(&["remind_deadline"]), pass.failed), (2, 0));
    let reminded: Vec<Uuid> = sqlx::query_scalar(
        "select (data->>'participant')::uuid from events where event_type = 'DeadlineReminderSent'",
    )
    .fetch_all(world.log.pool())
    .await
    .unwrap();
    assert!(!reminded.contains(&world.people[0]));

    // again, a restarted worker, and a worker acting on a read model that has not seen the reminders yet
    world.clock.set(at(T0 + HOUR * 9));
    assert_eq!(world.pass(&worker).await, Pass::default());
    assert_eq!(world.pass(&world.worker()).await, Pass::default());
    let rebuilt = projections::rebuild(
        world.log.clone(),
        Arc::new(Deadlines::new(&projections::products())),
        RunnerConfig::default(),
    );
    rebuilt.await.unwrap();
    assert_eq!(
        world
            .worker()
            .pass()
            .await
            .unwrap()
            .done_of(&["remind_deadline"]),
        0
    );
    assert_eq!(world.count("DeadlineReminderSent").await, 2);
}

#[tokio::test]
async fn at_the_deadline_the_assignment_closes_once_even_after_a_replay() {
    let world = World::start().await;
    for person in &world.people {
        let repository = RepoUrl::parse(&format!("https://github.com/p/{person}")).unwrap();
        world
            .command(TrackCommand::SubmitSolution {
                assignment: 0,
                participant: *person,
                repository,
                at: T0 + HOUR,
            })
            .await;
    }
    let worker = world.worker();
    world.clock.set(at(T0 + HOUR * 10 - SECOND));
    assert_eq!(world.pass(&worker).await.done_of(&["close_assignment"]), 0);
    world.clock.set(at(T0 + HOUR * 10));
    let pass = world.pass(&worker).await;
    assert_eq!((pass.done_of(&["close_assignment"]), pass.failed), (1, 0));
    assert_eq!(world.count("ReviewsAllocated").await, 1);
    assert_eq!(world.count("AssignmentOpened").await, 2);

    // a replay of the log rebuilds the read model; nothing fires again
    projections::rebuild(
        world.log.clone(),
        Arc::new(Deadlines::new(&projections::products())),
        RunnerConfig::default(),
    )
    .await
    .unwrap();
    let before: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(world.log.pool())
        .await
        .unwrap();
    world.clock.set(at(T0 + HOUR * 15));
    let pass = world.worker().pass().await.unwrap();
    assert_eq!(
        (
            pass.done_of(&["close_assignment"]),
            pass.done_of(&["remind_deadline"])
        ),
        (0, 0)
    );
    let after: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(world.log.pool())
        .await
        .unwrap();
    assert_eq!(before, after);
}

#[tokio::test]
async fn an_extended_deadline_moves_the_reminder_and_the_close() {
    let world = World::start().await;
    world
        .command(TrackCommand::ExtendDeadline {
            assignment: 0,
            deadline: T0 + HOUR * 20,
            by: Uuid::now_v7(),
            at: T0 + HOUR,
        })
        .await;
    let worker = world.worker();
    world.clock.set(at(T0 + HOUR * 10));
    assert_eq!(
        world.pass(&worker).await,
        Pass::default(),
        "the old 80 % and deadline are gone"
    );
    world.clock.set(at(T0 + HOUR * 16));
    assert_eq!(world.pass(&worker).await.done_of(&["remind_deadline"]), 3);
    world.clock.set(at(T0 + HOUR * 20));
    assert_eq!(world.pass(&worker).await.done_of(&["close_assignment"]), 1);
}

#[tokio::test]
async fn the_scheduled_worker_acts_on_its_own() {
    let world = World::start().await;
    world.clock.set(at(T0 + HOUR * 10));
    let head = world.projections.head().await.unwrap();
    world
        .projections
        .wait_for(head, Duration::from_secs(30))
        .await
        .unwrap();
    let (stop, stopping) = watch::channel(false);
    let scheduled =
        tokio::spawn(Arc::new(world.worker()).run_scheduled(Duration::from_secs(1), stopping));
    // wait for the outcome, not for a time
    let mut closed = 0;
    for _ in 0..200 {
        closed = world.count("AssignmentClosed").await;
        if closed > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(closed, 1);
    stop.send(true).unwrap();
    scheduled.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_next_assignment_is_reminded_only_to_those_it_is_open_to() {
    let world = World::start().await;
    for person in &world.people {
        let repository = RepoUrl::parse(&format!("https://github.com/p/{person}")).unwrap();
        world
            .command(TrackCommand::SubmitSolution {
                assignment: 0,
                participant: *person,
                repository,
                at: T0 + HOUR,
            })
            .await;
    }
    let worker = world.worker();
    world.clock.set(at(T0 + HOUR * 10));
    assert_eq!(world.pass(&worker).await.done_of(&["close_assignment"]), 1);
    // 3 submitters review each other (2 each); nobody has assignment 1 yet. Its 80 % mark is at 18 h.
    world.clock.set(at(T0 + HOUR * 18));
    assert_eq!(world.pass(&worker).await.done_of(&["remind_deadline"]), 0);
    let (state, _) = world
        .executor
        .load::<Track>(&track_stream(world.track))
        .await
        .unwrap();
    let first = world.people[0];
    for pair in state.unwrap().stages[0]
        .allocation
        .as_ref()
        .unwrap()
        .pairs
        .iter()
        .filter(|p| p.reviewer == first)
    {
        world
            .command(TrackCommand::SubmitReview {
                assignment: 0,
                reviewer: first,
                author: pair.author,
                scores: vec![domain::tracks::Score {
                    criterion: "Correctness".into(),
                    score: 3,
                }],
                comment: None,
                at: T0 + HOUR * 19,
            })
            .await;
    }
    // past the 80 % mark when it opens to them: reminded at the next pass, and only them
    world.clock.set(at(T0 + HOUR * 19));
    assert_eq!(world.pass(&worker).await.done_of(&["remind_deadline"]), 1);
    let reminded: Vec<Uuid> = sqlx::query_scalar(
        "select (data->>'participant')::uuid from events
          where event_type = 'DeadlineReminderSent' and (data->>'assignment')::int = 1",
    )
    .fetch_all(world.log.pool())
    .await
    .unwrap();
    assert_eq!(reminded, vec![first]);
}

#[tokio::test]
async fn a_close_asked_for_before_the_deadline_is_refused_as_not_yet_due() {
    use commands::CommandError;
    use domain::refusal::Refusal;

    let world = World::start().await;
    let early = world
        .executor
        .execute::<Track>(
            &track_stream(world.track),
            &TrackCommand::CloseAssignment {
                assignment: 0,
                seed: 1,
                at: T0 + HOUR,
            },
            &Metadata::new(Source::Worker),
        )
        .await;
    match early {
        Err(CommandError::Rejected(rule)) => assert_eq!(rule.reason(), "not_yet_due"),
        other => panic!("expected a refusal, got {:?}", other.map(|e| e.events)),
    }
    assert_eq!(world.count("AssignmentClosed").await, 0);
}
