//! Command execution against a real PostgreSQL, with a small test-only aggregate: a seat counter that refuses
//! to go over capacity.

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

async fn executor() -> (TestDb, CommandExecutor) {
    let db = TestDb::new().await;
    let executor = CommandExecutor::new(EventLog::new(db.pool.clone()));
    (db, executor)
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
    let (_db, executor) = executor().await;
    let stream = room();
    let metadata = meta();
    let done = executor
        .execute::<Seats>(&stream, &"ann".to_owned(), &metadata)
        .await
        .unwrap();
    assert_eq!(done.events, [SeatEvent::SeatTaken { who: "ann".into() }]);
    assert_eq!(done.version, 1);
    let stored = executor
        .log()
        .read_whole_stream(stream.as_str())
        .await
        .unwrap();
    assert_eq!(Some(stored[0].position), done.position());
    assert_eq!(stored[0].command_id, metadata.command_id);
    assert_eq!(stored[0].actor_id.as_deref(), Some("user-1"));
}

#[tokio::test]
async fn a_satisfied_command_appends_nothing() {
    let (_db, executor) = executor().await;
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
    let (_db, executor) = executor().await;
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
        executor
            .log()
            .stream_version(stream.as_str())
            .await
            .unwrap(),
        CAPACITY as i64
    );
}

#[tokio::test]
async fn a_repeated_command_id_returns_the_first_result_without_deciding_again() {
    let (_db, executor) = executor().await;
    let stream = room();
    let metadata = meta();
    let first = executor
        .execute::<Seats>(&stream, &"ann".to_owned(), &metadata)
        .await
        .unwrap();
    // the same command id with another payload: still the first result, and "bob" gets no seat
    let repeat = executor
        .execute::<Seats>(&stream, &"bob".to_owned(), &metadata)
        .await
        .unwrap();
    assert!(repeat.is_repeat());
    assert_eq!(repeat.position(), first.position());
    assert_eq!(
        executor
            .log()
            .stream_version(stream.as_str())
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn concurrent_commands_on_one_stream_all_land_through_retries_without_breaking_the_rule() {
    let (_db, executor) = executor().await;
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

#[tokio::test]
async fn without_retries_contention_surfaces_as_a_conflict_and_never_as_a_lost_write() {
    let (_db, executor) = executor().await;
    let executor = executor.max_attempts(1);
    let stream = room();
    let mut landed = 0;
    for outcome in take_seats_at_once(&executor, &stream, CAPACITY).await {
        match outcome {
            Ok(_) => landed += 1,
            Err(CommandError::Conflict { attempts: 1, .. }) => {}
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert!(landed >= 1);
    assert_eq!(
        executor
            .log()
            .stream_version(stream.as_str())
            .await
            .unwrap(),
        landed
    );
}

#[tokio::test]
async fn history_that_does_not_decode_is_an_internal_error() {
    let (_db, executor) = executor().await;
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
    executor.log().append(broken).await.unwrap();
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
