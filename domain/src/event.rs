//! Domain events as a storage contract.
//!
//! A stored event is `(type, schema_version, data)`. The type string is stable and past tense; the data's shape
//! may change only by bumping the schema version and teaching `decode` to upcast older shapes.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("event type {event_type:?} has no schema version {schema_version}")]
    UnknownSchemaVersion {
        event_type: String,
        schema_version: i32,
    },
    #[error("event {event_type:?} has malformed data: {source}")]
    Malformed {
        event_type: String,
        #[source]
        source: serde_json::Error,
    },
}

/// An event that can be written to and read back from the log.
///
/// Enums of events usually get both methods from [`encode_tagged`] and [`decode_tagged`] with
/// `#[serde(tag = "type", content = "data")]`.
pub trait DomainEvent: Sized {
    /// The stable, past-tense type string stored with the event.
    fn event_type(&self) -> &'static str;

    /// The version of this event's data shape.
    fn schema_version(&self) -> i32 {
        1
    }

    /// The JSON data stored with the event.
    fn encode(&self) -> Value;

    /// Rebuilds the event from its stored form, upcasting older schema versions.
    fn decode(event_type: &str, schema_version: i32, data: Value) -> Result<Self, DecodeError>;
}

/// Makes an adjacently tagged (`#[serde(tag = "type", content = "data")]`) enum of struct variants a
/// [`DomainEvent`] at schema version 1: each variant's name is its stable type string, listed in `TYPES`.
///
/// ```ignore
/// tagged_events!(LoanEvent { BookLent, BookReturned });
/// ```
#[macro_export]
macro_rules! tagged_events {
    ($event:ident { $($variant:ident),+ $(,)? }) => {
        impl $event {
            /// Every type string of this enum, as stored.
            pub const TYPES: &'static [&'static str] = &[$(stringify!($variant)),+];
        }

        impl $crate::DomainEvent for $event {
            fn event_type(&self) -> &'static str {
                match self {
                    $(Self::$variant { .. } => stringify!($variant)),+
                }
            }

            fn encode(&self) -> serde_json::Value {
                $crate::event::encode_tagged(self)
            }

            fn decode(
                event_type: &str,
                schema_version: i32,
                data: serde_json::Value,
            ) -> Result<Self, $crate::DecodeError> {
                $crate::event::decode_tagged(Self::TYPES, event_type, schema_version, data)
            }
        }
    };
}

/// `data` of an adjacently tagged (`#[serde(tag = "type", content = "data")]`) enum value.
pub fn encode_tagged<E: Serialize>(event: &E) -> Value {
    match serde_json::to_value(event) {
        Ok(Value::Object(mut map)) => map.remove("data").unwrap_or(Value::Null),
        // serialising plain data structs to JSON cannot fail; an enum without `content` yields no "data"
        _ => Value::Null,
    }
}

/// The inverse of [`encode_tagged`], for events at schema version 1.
pub fn decode_tagged<E: DeserializeOwned>(
    known_types: &[&str],
    event_type: &str,
    schema_version: i32,
    data: Value,
) -> Result<E, DecodeError> {
    if !known_types.contains(&event_type) {
        return Err(DecodeError::UnknownType(event_type.to_owned()));
    }
    if schema_version != 1 {
        return Err(DecodeError::UnknownSchemaVersion {
            event_type: event_type.to_owned(),
            schema_version,
        });
    }
    let tagged = serde_json::json!({ "type": event_type, "data": data });
    serde_json::from_value(tagged).map_err(|source| DecodeError::Malformed {
        event_type: event_type.to_owned(),
        source,
    })
}
