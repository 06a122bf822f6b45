//! Domain events as a storage contract.
//!
//! A stored event is `(type, schema_version, data)`. The type string is stable and past tense; the data's shape
//! may change only by bumping the schema version and teaching `decode` to upcast older shapes.
//!
//! # Evolving an event
//!
//! The log is never rewritten, so every shape ever stored must stay readable by today's code:
//!
//! - **Type strings never change.** [`tagged_events!`] stores a variant's name as its type string, so a variant
//!   is never renamed; a new meaning gets a new event type.
//! - **An added field gets `#[serde(default)]`** (or is an `Option` with it), so data stored before the field
//!   existed still decodes. The schema version stays.
//! - **A renamed, split or retyped field bumps the schema version** of that event type, and `decode` upcasts the
//!   old shape: declare the new version in the enum's `tagged_events!` call (`versions: { NoShowReported: 2 }`)
//!   and give its upcaster (`upcast: upcast_slot_event`) a step from the previous version to the new one.
//!   Steps go one version at a time, so data stored at v1 passes v1 → v2 → v3 and each step is written once.
//!   Events are always written at their type's current version; only `decode` knows older ones.
//! - **Golden files stay forever.** `eventlog/tests/golden/` holds a stored example of every event type at every
//!   schema version, `<Type>.v<N>.json` (type, schema version, data, metadata). Files are frozen: never
//!   regenerated, edited or deleted. A new version adds a file holding the previous file's event as the new
//!   code writes it, and the golden test checks that every type has a file at each version up to its current
//!   one, that every file decodes, and that the files of one type decode to the same event.

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

/// One upcasting step: the data of `event_type` stored at `schema_version`, reshaped to `schema_version + 1`.
pub type Upcast =
    fn(event_type: &str, schema_version: i32, data: Value) -> Result<Value, DecodeError>;

/// Makes an adjacently tagged (`#[serde(tag = "type", content = "data")]`) enum of struct variants a
/// [`DomainEvent`]: each variant's name is its stable type string, listed in `TYPES`.
///
/// Every type is at schema version 1 unless the optional trailing section says otherwise: `versions` lists the
/// types at a later version, and `upcast` names the [`Upcast`] step that `decode` applies, one version at a time,
/// to data stored at an earlier one.
///
/// ```ignore
/// tagged_events!(LoanEvent { BookLent, BookReturned });
///
/// // BookLent's `due` became `due_day` at version 2
/// tagged_events!(LoanEvent { BookLent, BookReturned }, versions: { BookLent: 2 }, upcast: upcast_loan);
///
/// fn upcast_loan(event_type: &str, version: i32, mut data: Value) -> Result<Value, DecodeError> {
///     match (event_type, version) {
///         ("BookLent", 1) => {
///             rename_field(&mut data, "due", "due_day");
///             Ok(data)
///         }
///         _ => Err(DecodeError::unknown_version(event_type, version)),
///     }
/// }
/// ```
#[macro_export]
macro_rules! tagged_events {
    ($event:ident { $($variant:ident),+ $(,)? }) => {
        $crate::tagged_events!(
            $event { $($variant),+ }, versions: {}, upcast: $crate::event::no_upcast
        );
    };
    (
        $event:ident { $($variant:ident),+ $(,)? },
        versions: { $($bumped:ident: $version:literal),* $(,)? },
        upcast: $upcast:path $(,)?
    ) => {
        impl $event {
            /// Every type string of this enum, as stored.
            pub const TYPES: &'static [&'static str] = &[$(stringify!($variant)),+];

            /// The types whose current schema version is above 1, with that version.
            pub const SCHEMA_VERSIONS: &'static [(&'static str, i32)] =
                &[$((stringify!($bumped), $version)),*];

            /// Never called: refuses to compile when `versions` names a type that is not a variant.
            #[allow(dead_code)]
            fn versioned_types_are_variants(&self) {
                $(let _ = matches!(self, Self::$bumped { .. });)*
            }
        }

        impl $crate::DomainEvent for $event {
            fn event_type(&self) -> &'static str {
                match self {
                    $(Self::$variant { .. } => stringify!($variant)),+
                }
            }

            fn schema_version(&self) -> i32 {
                $crate::event::current_version(Self::SCHEMA_VERSIONS, self.event_type())
            }

            fn encode(&self) -> serde_json::Value {
                $crate::event::encode_tagged(self)
            }

            fn decode(
                event_type: &str,
                schema_version: i32,
                data: serde_json::Value,
            ) -> Result<Self, $crate::DecodeError> {
                $crate::event::decode_upcast(
                    Self::TYPES,
                    Self::SCHEMA_VERSIONS,
                    $upcast,
                    event_type,
                    schema_version,
                    data,
                )
            }
        }
    };
}

impl DecodeError {
    /// What an upcaster returns for a version it has no step from.
    pub fn unknown_version(event_type: &str, schema_version: i32) -> Self {
        Self::UnknownSchemaVersion {
            event_type: event_type.to_owned(),
            schema_version,
        }
    }
}

/// The current schema version of `event_type`, given the types above version 1.
pub fn current_version(versions: &[(&str, i32)], event_type: &str) -> i32 {
    versions
        .iter()
        .find(|(name, _)| *name == event_type)
        .map_or(1, |(_, version)| *version)
}

/// The upcaster of enums whose types are all at version 1 (never called: there is nothing to upcast).
pub fn no_upcast(event_type: &str, schema_version: i32, _: Value) -> Result<Value, DecodeError> {
    Err(DecodeError::unknown_version(event_type, schema_version))
}

/// Renames a field of stored data (an upcasting step's most common job); data without it is left alone.
pub fn rename_field(data: &mut Value, from: &str, to: &str) {
    if let Some(map) = data.as_object_mut()
        && let Some(value) = map.remove(from)
    {
        map.insert(to.to_owned(), value);
    }
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
    decode_upcast(
        known_types,
        &[],
        no_upcast,
        event_type,
        schema_version,
        data,
    )
}

/// The inverse of [`encode_tagged`] for events whose types may be past version 1 (`versions`, as in
/// [`current_version`]): data stored at an earlier version goes through `upcast` one version at a time.
pub fn decode_upcast<E: DeserializeOwned>(
    known_types: &[&str],
    versions: &[(&str, i32)],
    upcast: Upcast,
    event_type: &str,
    schema_version: i32,
    mut data: Value,
) -> Result<E, DecodeError> {
    if !known_types.contains(&event_type) {
        return Err(DecodeError::UnknownType(event_type.to_owned()));
    }
    let current = current_version(versions, event_type);
    if !(1..=current).contains(&schema_version) {
        return Err(DecodeError::unknown_version(event_type, schema_version));
    }
    for version in schema_version..current {
        data = upcast(event_type, version, data)?;
    }
    let tagged = serde_json::json!({ "type": event_type, "data": data });
    serde_json::from_value(tagged).map_err(|source| DecodeError::Malformed {
        event_type: event_type.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::{DecodeError, DomainEvent};
    use crate::interviews::SlotEvent;
    use crate::testing::at;

    fn reported() -> SlotEvent {
        SlotEvent::NoShowReported {
            reporter: Uuid::from_u128(2),
            absent: Uuid::from_u128(1),
            contest_by: at(1_700_090_000),
            at: at(1_700_003_600),
        }
    }

    #[test]
    fn events_are_written_at_their_types_current_version() {
        assert_eq!(reported().schema_version(), 2);
        assert_eq!(SlotEvent::SlotWithdrawn { at: at(1) }.schema_version(), 1);
        assert_eq!(SlotEvent::SCHEMA_VERSIONS, &[("NoShowReported", 2)]);
        assert_eq!(
            reported().encode(),
            json!({
                "reporter": Uuid::from_u128(2),
                "absent": Uuid::from_u128(1),
                "contest_by": 1_700_090_000,
                "at": 1_700_003_600,
            })
        );
    }

    #[test]
    fn older_versions_are_upcast_and_unknown_ones_refused() {
        let v1 = json!({
            "reporter": Uuid::from_u128(2),
            "absent": Uuid::from_u128(1),
            "settle_at": 1_700_090_000,
            "at": 1_700_003_600,
        });
        assert_eq!(
            SlotEvent::decode("NoShowReported", 1, v1.clone()).unwrap(),
            reported()
        );
        assert_eq!(
            SlotEvent::decode("NoShowReported", 2, reported().encode()).unwrap(),
            reported()
        );
        // the old shape is not accepted as the new version
        assert!(matches!(
            SlotEvent::decode("NoShowReported", 2, v1.clone()),
            Err(DecodeError::Malformed { .. })
        ));
        for version in [0, 3] {
            assert!(matches!(
                SlotEvent::decode("NoShowReported", version, v1.clone()),
                Err(DecodeError::UnknownSchemaVersion { .. })
            ));
        }
        assert!(matches!(
            SlotEvent::decode("SlotWithdrawn", 2, json!({ "at": 1 })),
            Err(DecodeError::UnknownSchemaVersion { .. })
        ));
        assert!(matches!(
            SlotEvent::decode("NoShowSettled", 1, json!({})),
            Err(DecodeError::UnknownType(_))
        ));
    }
}
