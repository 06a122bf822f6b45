//! Snapshots of long streams: a stream is loaded from its latest snapshot and the events after it, a snapshot
//! is stored every few events, and one under another schema (or one that does not decode) is never trusted.

use commands::{CommandError, CommandExecutor};
use domain::event::{decode_tagged, encode_tagged};
use domain::{Decider, DecodeError, DomainEvent, Snapshots, StreamId};
use eventlog::{EventLog, Snapshot};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::meta;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
enum GuestEvent {
    GuestArrived { who: String },
}

impl DomainEvent for GuestEvent {
    fn event_type(&self) -> &'static str {
        "GuestArrived"
    }
    fn encode(&self) -> Value {
        encode_tagged(self)
    }
    fn decode(event_type: &str, schema_version: i32, data: Value) -> Result<Self, DecodeError> {
        decode_tagged(&["GuestArrived"], event_type, schema_version, data)
    }
}

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("the party is full")]
struct Full;

/// Guests of a party of at most 5, snapshotted every 3 events.
struct Party;

const SCHEMA: &str = "party/1";

impl Decider for Party {
    type Command = String;
    type Event = GuestEvent;
    type State = Vec<String>;
    type Error = Full;

    fn initial_state() -> Vec<String> {
        vec![]
    }
    fn snapshots() -> Option<Snapshots<Vec<String>>> {
        Some(Snapshots::json(SCHEMA, 3))
    }
    fn decide(who: &String, guests: &Vec<String>) -> Result<Vec<GuestEvent>, Full> {
        if guests.contains(who) {
            Ok(vec![])
        } else if guests.len() >= 5 {
            Err(Full)
        } else {
            Ok(vec![GuestEvent::GuestArrived { who: who.clone() }])
        }
    }
    fn evolve(mut guests: Vec<String>, event: &GuestEvent) -> Vec<String> {
        let GuestEvent::GuestArrived { who } = event;
        guests.push(who.clone());
        guests
    }
}

fn party() -> StreamId {
    StreamId::new("party", Uuid::now_v7()).unwrap()
}

async fn arrive(
    executor: &CommandExecutor,
    stream: &StreamId,
    who: &str,
) -> Result<(), CommandError<Full>> {
    executor
        .execute::<Party>(stream, &who.to_owned(), &meta())
        .await
        .map(|_| ())
}

/// `who` arrives through a decision derived from the state (the path of commands built from what they read).
async fn arrive_derived(
    executor: &CommandExecutor,
    stream: &StreamId,
    who: &str,
) -> Result<(), CommandError<Full>> {
    executor
        .execute_with::<Party, _>(stream, &meta(), |_| Ok(who.to_owned()))
        .await
        .map(|_| ())
}

async fn stored(log: &EventLog, stream: &StreamId) -> Option<(String, i64, Value)> {
    sqlx::query_as("select schema, version, state from snapshots where stream_id = $1")
        .bind(stream.as_str())
        .fetch_optional(log.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_snapshot_is_stored_every_few_events_and_holds_the_folded_state() {
    let (_db, log, executor) = crate::executor().await;
    let stream = party();
    for who in ["ann", "bob", "cy"] {
        arrive(&executor, &stream, who).await.unwrap();
    }
    assert_eq!(
        stored(&log, &stream).await,
        None,
        "3 events, and none loaded yet"
    );
    arrive(&executor, &stream, "dee").await.unwrap();
    assert_eq!(
        stored(&log, &stream).await,
        Some((SCHEMA.to_owned(), 3, json!(["ann", "bob", "cy"]))),
        "the fourth command loaded 3 events and stored them folded"
    );
    let (state, version) = executor.load::<Party>(&stream).await.unwrap();
    assert_eq!(
        (state, version),
        (
            vec!["ann".into(), "bob".into(), "cy".into(), "dee".into()],
            4
        )
    );
}

#[tokio::test]
async fn both_kinds_of_command_load_from_the_snapshot_and_the_events_after_it() {
    let (_db, log, executor) = crate::executor().await;
    let stream = party();
    for who in ["ann", "bob"] {
        arrive(&executor, &stream, who).await.unwrap();
    }
    // a snapshot at version 2 that says the party is full: only a load that starts from it refuses the next guest
    let full = Snapshot {
        version: 2,
        state: json!(["a", "b", "c", "d", "e"]),
    };
    log.save_snapshot(stream.as_str(), SCHEMA, &full)
        .await
        .unwrap();
    assert!(matches!(
        arrive(&executor, &stream, "cy").await,
        Err(CommandError::Rejected(Full))
    ));
    assert!(matches!(
        arrive_derived(&executor, &stream, "cy").await,
        Err(CommandError::Rejected(Full))
    ));
    // without snapshots, the same stream folds from its first event
    arrive(&executor.clone().without_snapshots(), &stream, "cy")
        .await
        .unwrap();
    assert_eq!(log.stream_version(stream.as_str()).await.unwrap(), 3);
}

#[tokio::test]
async fn a_snapshot_under_another_schema_or_that_does_not_decode_is_not_trusted_and_is_replaced() {
    let (_db, log, executor) = crate::executor().await;
    for bad in [
        ("party/0", json!(["a", "b", "c", "d", "e"])),
        (SCHEMA, json!({ "not": "a list" })),
    ] {
        let stream = party();
        for who in ["ann", "bob", "cy"] {
            arrive(&executor.clone().without_snapshots(), &stream, who)
                .await
                .unwrap();
        }
        let snapshot = Snapshot {
            version: 3,
            state: bad.1.clone(),
        };
        log.save_snapshot(stream.as_str(), bad.0, &snapshot)
            .await
            .unwrap();
        arrive(&executor, &stream, "dee").await.unwrap();
        assert_eq!(
            stored(&log, &stream).await,
            Some((SCHEMA.to_owned(), 3, json!(["ann", "bob", "cy"]))),
            "{bad:?} was folded over and replaced"
        );
    }
}
