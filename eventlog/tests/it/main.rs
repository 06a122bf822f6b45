//! The event log against a real PostgreSQL: one throwaway cluster for this binary, a fresh database per test.

mod append;
mod golden;
mod group;
mod ordering;
mod read;
mod startup;

use domain::StreamId;
use eventlog::{AppendRequest, EventLog, ExpectedVersion, Metadata, NewEvent, Source};
use migrations::testing::TestDb;
use serde_json::json;
use uuid::Uuid;

pub async fn log() -> (TestDb, EventLog) {
    let db = TestDb::new().await;
    let log = EventLog::new(db.pool.clone());
    (db, log)
}

pub fn stream(category: &str) -> StreamId {
    StreamId::new(category, Uuid::now_v7()).unwrap()
}

pub fn event(n: i64) -> NewEvent {
    NewEvent::new("ThingHappened", json!({ "n": n }))
}

pub fn request(
    stream: &StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> AppendRequest {
    AppendRequest::single(stream.clone(), expected, events, Metadata::new(Source::Cli))
}

/// Appends event `n` to a new `thing` stream.
pub async fn append_one(log: &EventLog, n: i64) -> eventlog::Appended {
    log.append(request(
        &stream("thing"),
        ExpectedVersion::NoStream,
        vec![event(n)],
    ))
    .await
    .unwrap()
}
