//! Command execution against a real PostgreSQL, with a small test-only aggregate: a seat counter that refuses
//! to go over capacity.

mod checker;
mod ids;
mod snapshots;

use commands::{CommandError, CommandExecutor};
use domain::event::{decode_tagged, encode_tagged};
use domain::{Decider, DecodeError, DomainEvent, StreamId};
use eventlog::{EventLog, Metadata, Source};
use migrations::testing::TestDb;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
enum SeatEvent {
    SeatTaken { who: String },
}

impl DomainEvent for SeatEvent {
    fn event_type(&self) -> &'static str {
        "SeatTaken"
    }
    fn encode(&self) -> Value {
        encode_tagged(self)
    }
    fn decode(event_type: &str, schema_version: i32, data: Value) -> Result<Self, DecodeError> {
        decode_tagged(&["SeatTaken"], event_type, schema_version, data)
    }
}

#[derive(Debug, PartialEq, thiserror::Error)]
enum SeatError {
    #[error("no seat left")]
    Full,
}

struct Seats;

const CAPACITY: usize = 5;

impl Decider for Seats {
    type Command = String; // take a seat for this person
    type Event = SeatEvent;
    type State = Vec<String>;
    type Error = SeatError;

    fn initial_state() -> Vec<String> {
        vec![]
    }
    fn decide(who: &String, taken: &Vec<String>) -> Result<Vec<SeatEvent>, SeatError> {
        if taken.contains(who) {
            return Ok(vec![]);
        }
        if taken.len() >= CAPACITY {
            return Err(SeatError::Full);
        }
        Ok(vec![SeatEvent::SeatTaken { who: who.clone() }])
    }
    fn evolve(mut taken: Vec<String>, event: &SeatEvent) -> Vec<String> {
        let SeatEvent::SeatTaken { who } = event;
        taken.push(who.clone());
        taken
    }
}

/// A fresh database, its log (for the tests' own look at what was written) and an executor on it.
async fn executor() -> (TestDb, EventLog, CommandExecutor) {
    let db = TestDb::new().await;
    let log = EventLog::new(db.pool.clone());
    let executor = CommandExecutor::new(log.clone());
    (db, log, executor)
}

fn room() -> StreamId {
    StreamId::new("room", Uuid::now_v7()).unwrap()
}

fn meta() -> Metadata {
    Metadata::new(Source::Graphql).actor("user-1", "user")
}

/// `people` different people try to take a seat at the same moment.
async fn take_seats_at_once(
    executor: &CommandExecutor,
    stream: &StreamId,
    people: usize,
) -> Vec<Result<commands::Executed<SeatEvent>, CommandError<SeatError>>> {
    let tasks: Vec<_> = (0..people)
        .map(|n| {
            let (executor, stream) = (executor.clone(), stream.clone());
            tokio::spawn(async move {
                executor
                    .execute::<Seats>(&stream, &format!("p{n}"), &meta())
                    .await
            })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(people);
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    outcomes
}

#[tokio::test]
async fn a_command_appends_its_events_with_metadata_and_returns_the_position() {
    let (_db, log, executor) = executor().await;
    let stream = room();
    let metadata = meta();
    let done = executor
        .execute::<Seats>(&stream, &"ann".to_owned(), &metadata)
        .await
        .unwrap();
    assert_eq!(done.events, [SeatEvent::SeatTaken { who: "ann".into() }]);
    assert_eq!(done.version, 1);
    let stored = log.read_whole_stream(stream.as_str()).await.unwrap();
    assert_eq!(Some(stored[0].position), done.position());
    assert_eq!(stored[0].command_id, metadata.command_id);
    assert_eq!(stored[0].actor_id.as_deref(), Some("user-1"));
}

#[tokio::test]
async fn commands_on_one_stream_queue_in_process_instead_of_conflicting() {
    let (_db, log, executor) = executor().await;
    let stream = room();
    // without retries, any version conflict would fail a command
    let outcomes = take_seats_at_once(&executor.max_attempts(1), &stream, 30).await;
    let taken = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(taken, CAPACITY, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Ok(_) | Err(CommandError::Rejected(SeatError::Full)))),
        "{outcomes:?}"
    );
    assert_eq!(
        log.stream_version(stream.as_str()).await.unwrap(),
        CAPACITY as i64
    );
}

#[tokio::test]
async fn a_satisfied_command_appends_nothing() {
    let (_db, _log, executor) = executor().await;
    let stream = room();
    executor
        .execute::<Seats>(&stream, &"ann".to_owned(), &meta())
        .await
        .unwrap();
    let again = executor
        .execute::<Seats>(&stream, &"ann".to_owned(), &meta())
        .await
        .unwrap();
    assert!(again.events.is_empty() && again.appended.is_none());
    assert_eq!(again.version, 1);
}

#[tokio::test]
async fn a_rule_violation_is_a_typed_rejection_and_writes_nothing() {
    let (_db, log, executor) = executor().await;
    let stream = room();
    for n in 0..CAPACITY {
        executor
            .execute::<Seats>(&stream, &format!("p{n}"), &meta())
            .await
            .unwrap();
    }
    let refused = executor
        .execute::<Seats>(&stream, &"late".to_owned(), &meta())
        .await;
    assert!(matches!(
        refused,
        Err(CommandError::Rejected(SeatError::Full))
    ));
    assert_eq!(
        log.stream_version(stream.as_str()).await.unwrap(),
        CAPACITY as i64
    );
}

#[tokio::test]
async fn a_repeated_command_id_returns_the_first_result_without_deciding_again() {
    let (_db, log, executor) = executor().await;
    let stream = room();
    let metadata = meta();
    let first = executor
        .execute::<Seats>(&stream, &"ann".to_owned(), &metadata)
        .await
        .unwrap();
    // the room fills up with others
    for n in 1..CAPACITY {
        executor
            .execute::<Seats>(&stream, &format!("p{n}"), &meta())
            .await
            .unwrap();
    }
    // deciding the same command id again (for someone new) would now be refused as full; a retry of a command
    // that already succeeded must still answer with its first result
    let repeat = executor
        .execute::<Seats>(&stream, &"bob".to_owned(), &metadata)
        .await
        .unwrap();
    assert!(repeat.is_repeat());
    assert_eq!(repeat.position(), first.position());
    assert_eq!(
        log.stream_version(stream.as_str()).await.unwrap(),
        CAPACITY as i64
    );
}

#[tokio::test]
async fn concurrent_commands_on_one_stream_all_land_through_retries_without_breaking_the_rule() {
    let (_db, _log, executor) = executor().await;
    let stream = room();
    let mut seated = 0;
    let mut full = 0;
    for outcome in take_seats_at_once(&executor, &stream, 12).await {
        match outcome {
            Ok(done) => seated += done.events.len(),
            Err(CommandError::Rejected(SeatError::Full)) => full += 1,
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!((seated, full), (CAPACITY, 12 - CAPACITY));
    let (taken, version) = executor.load::<Seats>(&stream).await.unwrap();
    assert_eq!((taken.len(), version), (CAPACITY, CAPACITY as i64));
}

/// Seats whose `decide` waits until two commands have both loaded the stream: their appends then race on the
/// same expected version, so exactly one of them conflicts.
struct RacingSeats;

static BOTH_LOADED: std::sync::Barrier = std::sync::Barrier::new(2);

impl Decider for RacingSeats {
    type Command = String;
    type Event = SeatEvent;
    type State = Vec<String>;
    type Error = SeatError;

    fn initial_state() -> Vec<String> {
        Seats::initial_state()
    }
    fn decide(who: &String, taken: &Vec<String>) -> Result<Vec<SeatEvent>, SeatError> {
        BOTH_LOADED.wait();
        Seats::decide(who, taken)
    }
    fn evolve(taken: Vec<String>, event: &SeatEvent) -> Vec<String> {
        Seats::evolve(taken, event)
    }
}

/// Each racer runs on a thread of its own with its own runtime and pool: `decide` blocks on the barrier, which
/// must not block the other racer's runtime.
#[tokio::test]
async fn without_retries_a_lost_race_is_a_conflict_and_never_a_lost_write() {
    let db = TestDb::new().await;
    let stream = room();
    let racers: Vec<_> = ["ann", "bob"]
        .into_iter()
        .map(|who| {
            let (options, stream) = (db.connect_options(), stream.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let pool = sqlx::PgPool::connect_with(options).await.unwrap();
                    let executor = CommandExecutor::new(EventLog::new(pool)).max_attempts(1);
                    executor
                        .execute::<RacingSeats>(&stream, &who.to_owned(), &meta())
                        .await
                        .map(|done| done.version)
                })
            })
        })
        .collect();
    let outcomes: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();
    let landed = outcomes.iter().filter(|o| o.is_ok()).count();
    let conflicts = outcomes
        .iter()
        .filter(|o| matches!(o, Err(CommandError::Conflict { attempts: 1, .. })))
        .count();
    assert_eq!((landed, conflicts), (1, 1), "{outcomes:?}");
    let log = EventLog::new(db.pool.clone());
    assert_eq!(log.stream_version(stream.as_str()).await.unwrap(), 1);
}

#[tokio::test]
async fn history_that_does_not_decode_is_an_internal_error() {
    let (_db, log, executor) = executor().await;
    let stream = room();
    let broken = eventlog::AppendRequest::single(
        stream.clone(),
        eventlog::ExpectedVersion::NoStream,
        vec![eventlog::NewEvent::new(
            "SeatTaken",
            serde_json::json!({ "who": 7 }),
        )],
        meta(),
    );
    log.append(broken).await.unwrap();
    let result = executor
        .execute::<Seats>(&stream, &"ann".to_owned(), &meta())
        .await;
    assert!(matches!(
        result,
        Err(CommandError::Internal(
            commands::InternalError::Decode { .. }
        ))
    ));
}

/// Takes a seat for `who` in both rooms, or in neither.
async fn take_both(
    executor: &CommandExecutor,
    rooms: &[StreamId; 2],
    who: &str,
    metadata: &Metadata,
) -> Result<commands::Written, CommandError<SeatError>> {
    let who = who.to_owned();
    executor
        .execute_across("TakeBothSeats", rooms, metadata, |loaded| {
            let mut writes = Vec::new();
            for room in rooms {
                let events = Seats::decide(&who, &loaded.state::<Seats>(room))?;
                writes.push((room.clone(), commands::new_events(&events)));
            }
            Ok(writes)
        })
        .await
}

#[tokio::test]
async fn a_decision_across_streams_writes_to_all_of_them_or_to_none() {
    let (_db, log, executor) = executor().await;
    let rooms = [room(), room()];
    // the second room fills up on its own
    for n in 0..CAPACITY {
        executor
            .execute::<Seats>(&rooms[1], &format!("early{n}"), &meta())
            .await
            .unwrap();
    }
    let refused = take_both(&executor, &rooms, "ann", &meta()).await;
    assert!(matches!(
        refused,
        Err(CommandError::Rejected(SeatError::Full))
    ));
    assert_eq!(
        log.stream_version(rooms[0].as_str()).await.unwrap(),
        0,
        "nothing written to the first room"
    );

    let fresh = [room(), room()];
    let written = take_both(&executor, &fresh, "bob", &meta()).await.unwrap();
    assert_eq!(written.events, 2);
    let appended = written.appended.unwrap();
    assert_eq!(appended.version_of(fresh[0].as_str()), Some(1));
    assert_eq!(appended.version_of(fresh[1].as_str()), Some(1));
    // both events in one transaction
    assert_eq!(appended.events[0].1.xid, appended.events[1].1.xid);
    // already satisfied: nothing to write
    let again = take_both(&executor, &fresh, "bob", &meta()).await.unwrap();
    assert!(again.appended.is_none());
}

#[tokio::test]
async fn concurrent_decisions_across_streams_are_judged_on_current_state() {
    let (_db, log, _) = executor().await;
    let rooms = [room(), room()];
    let tasks: Vec<_> = (0..12)
        .map(|n| {
            // one executor per racer, as in separate processes: they meet at the append, not in a queue
            let executor = CommandExecutor::new(log.clone()).max_attempts(50);
            let rooms = rooms.clone();
            tokio::spawn(
                async move { take_both(&executor, &rooms, &format!("p{n}"), &meta()).await },
            )
        })
        .collect();
    let mut seated = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(written) => {
                assert_eq!(written.events, 2);
                seated += 1;
            }
            Err(CommandError::Rejected(SeatError::Full)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seated, CAPACITY, "exactly as many as there are seats");
    let first: Vec<String> = log
        .read_whole_stream(rooms[0].as_str())
        .await
        .unwrap()
        .iter()
        .map(|e| e.data["who"].as_str().unwrap().to_owned())
        .collect();
    let second: Vec<String> = log
        .read_whole_stream(rooms[1].as_str())
        .await
        .unwrap()
        .iter()
        .map(|e| e.data["who"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(first.len(), CAPACITY);
    assert_eq!(
        first.iter().collect::<std::collections::BTreeSet<_>>(),
        second.iter().collect::<std::collections::BTreeSet<_>>(),
        "the same people in both rooms"
    );
}

#[tokio::test]
async fn a_repeated_decision_across_streams_returns_the_first_result_and_undecodable_history_is_internal()
 {
    let (_db, log, executor) = executor().await;
    let rooms = [room(), room()];
    let metadata = meta().command_id(Uuid::now_v7());
    let first = take_both(&executor, &rooms, "ann", &metadata)
        .await
        .unwrap();
    let repeat = take_both(&executor, &rooms, "bob", &metadata)
        .await
        .unwrap();
    assert!(repeat.is_repeat());
    assert_eq!(repeat.position(), first.position());
    assert_eq!(
        log.stream_version(rooms[0].as_str()).await.unwrap(),
        1,
        "bob was never seated"
    );

    let broken = [room(), room()];
    log.append(eventlog::AppendRequest::single(
        broken[1].clone(),
        eventlog::ExpectedVersion::NoStream,
        vec![eventlog::NewEvent::new(
            "SeatTaken",
            serde_json::json!({ "who": 7 }),
        )],
        meta(),
    ))
    .await
    .unwrap();
    let result = take_both(&executor, &broken, "cid", &meta()).await;
    assert!(
        matches!(
            result,
            Err(CommandError::Internal(
                commands::InternalError::Decode { .. }
            ))
        ),
        "{result:?}"
    );
    assert_eq!(log.stream_version(broken[0].as_str()).await.unwrap(), 0);
}
