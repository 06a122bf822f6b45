//! The log's vocabulary: what goes in, what comes out, and where a reader stands.

use chrono::{DateTime, Utc};
use domain::{DecodeError, DomainEvent, StreamId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// A reader's place in the commit-safe global order: everything at or before `(xid, position)` has been seen.
///
/// Ordered by transaction id first, then position. [`Checkpoint::START`] is before every event.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Checkpoint {
    /// Writing transaction id (epoch-extended xid8, as a number).
    pub xid: i64,
    pub position: i64,
}

impl Checkpoint {
    pub const START: Checkpoint = Checkpoint {
        xid: 0,
        position: 0,
    };

    /// The checkpoint after every event of transactions below `xmin`: what a reader has covered once a read up to
    /// the horizon came back short.
    pub(crate) fn horizon(xmin: i64) -> Checkpoint {
        Checkpoint {
            xid: xmin - 1,
            position: i64::MAX,
        }
    }
}

/// What an append expects of a stream's current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this version (0 means the same as `NoStream`).
    Exactly(i64),
}

impl ExpectedVersion {
    /// The `append_events` encoding: null = any, 0 = no stream, n = exactly n.
    pub(crate) fn as_sql(self) -> Option<i64> {
        match self {
            Self::Any => None,
            Self::NoStream => Some(0),
            Self::Exactly(n) => Some(n),
        }
    }
}

/// Which door a command came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Graphql,
    Telegram,
    Worker,
    Cli,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Graphql => "graphql",
            Self::Telegram => "telegram",
            Self::Worker => "worker",
            Self::Cli => "cli",
        }
    }
}

/// Who and what caused an append. Stored whole as JSON and, for the fields below, as columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub actor_id: Option<String>,
    pub actor_role: Option<String>,
    pub source: Source,
    /// Idempotency key: an append with a command id already used writes nothing and returns the first result.
    pub command_id: Option<Uuid>,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
}

impl Metadata {
    /// Metadata for `source` with a fresh command id that also starts a new correlation.
    pub fn new(source: Source) -> Self {
        let command_id = Uuid::now_v7();
        Self {
            actor_id: None,
            actor_role: None,
            source,
            command_id: Some(command_id),
            correlation_id: Some(command_id),
            causation_id: None,
        }
    }

    pub fn actor(mut self, id: impl Into<String>, role: impl Into<String>) -> Self {
        self.actor_id = Some(id.into());
        self.actor_role = Some(role.into());
        self
    }

    pub fn command_id(mut self, id: Uuid) -> Self {
        self.command_id = Some(id);
        self
    }

    pub fn correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    pub fn causation_id(mut self, id: Uuid) -> Self {
        self.causation_id = Some(id);
        self
    }
}

/// An event about to be appended.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub data: Value,
}

impl NewEvent {
    pub fn new(event_type: impl Into<String>, data: Value) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            schema_version: 1,
            data,
        }
    }

    /// The stored form of a domain event.
    pub fn from_domain<E: DomainEvent>(event: &E) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type: event.event_type().to_owned(),
            schema_version: event.schema_version(),
            data: event.encode(),
        }
    }
}

/// The events for one stream within an append.
#[derive(Debug, Clone)]
pub struct StreamAppend {
    pub stream: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

/// One atomic append: every stream's check passes and all events are written, or nothing is.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub streams: Vec<StreamAppend>,
    pub metadata: Metadata,
}

impl AppendRequest {
    pub fn single(
        stream: StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        metadata: Metadata,
    ) -> Self {
        Self {
            streams: vec![StreamAppend {
                stream,
                expected,
                events,
            }],
            metadata,
        }
    }
}

/// Where one appended event landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendedEvent {
    pub position: i64,
    pub version: i64,
    pub xid: i64,
}

/// The result of an append (or, for a repeated command id, of the first append with that id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Per appended event in position order, with its stream id.
    pub events: Vec<(String, AppendedEvent)>,
    /// True when the command id had been used: nothing was written now.
    pub duplicate: bool,
}

impl Appended {
    /// The highest position written, to hand back to clients for read-your-writes.
    pub fn position(&self) -> Option<i64> {
        self.events.iter().map(|(_, e)| e.position).max()
    }

    /// The checkpoint a reader must reach to have seen all of this append.
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        self.events
            .iter()
            .map(|(_, e)| Checkpoint {
                xid: e.xid,
                position: e.position,
            })
            .max()
    }

    /// The version `stream` has after this append.
    pub fn version_of(&self, stream: &str) -> Option<i64> {
        self.events
            .iter()
            .filter(|(s, _)| s == stream)
            .map(|(_, e)| e.version)
            .max()
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, Serialize)]
pub struct RecordedEvent {
    pub position: i64,
    pub stream_id: String,
    pub stream_category: String,
    pub version: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub data: Value,
    pub metadata: Value,
    pub actor_id: Option<String>,
    pub actor_role: Option<String>,
    pub source: String,
    pub command_id: Option<Uuid>,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    pub recorded_at: DateTime<Utc>,
    pub transaction_id: i64,
}

impl RecordedEvent {
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            xid: self.transaction_id,
            position: self.position,
        }
    }

    /// The domain event this record stores (upcast by the event type's `decode`).
    pub fn decode<E: DomainEvent>(&self) -> Result<E, DecodeError> {
        E::decode(&self.event_type, self.schema_version, self.data.clone())
    }
}

/// Reading direction within a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}
