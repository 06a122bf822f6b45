//! Rule tests that read as specifications:
//!
//! ```ignore
//! given::<Loan>([BookLent { .. }]).when(ReturnBook { .. }).then([BookReturned { .. }]);
//! given::<Loan>([]).when(ReturnBook { .. }).then_err(LoanError::NotLent);
//! ```
//!
//! The helper is a fold: the given events are evolved over the initial state, then the command is decided. `then`
//! also checks that every produced event survives the storage round trip (encode, then decode) unchanged.
//!
//! Tests write instants as Unix seconds with [`at`]: `at(1_800_000_000) + TimeDelta::hours(2)`.

use std::fmt::Debug;

use crate::{Decider, DomainEvent, Timestamp};

/// The instant `unix_seconds` after 1970-01-01T00:00:00Z.
#[track_caller]
pub const fn at(unix_seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(unix_seconds).expect("a test's time is within chrono's range")
}

pub fn given<D: Decider>(events: impl IntoIterator<Item = D::Event>) -> Given<D> {
    Given {
        history: events.into_iter().collect(),
    }
}

pub struct Given<D: Decider> {
    history: Vec<D::Event>,
}

pub struct When<D: Decider> {
    outcome: Result<Vec<D::Event>, D::Error>,
}

impl<D: Decider> Given<D> {
    pub fn when(self, command: D::Command) -> When<D> {
        let state = D::fold(&self.history);
        When {
            outcome: D::decide(&command, &state),
        }
    }
}

impl<D: Decider> When<D>
where
    D::Event: PartialEq + Debug,
    D::Error: Debug,
{
    /// The command succeeds with exactly these events (none, for a command that is already satisfied).
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = D::Event>) {
        let expected: Vec<D::Event> = expected.into_iter().collect();
        match self.outcome {
            Ok(events) => {
                assert_eq!(
                    events, expected,
                    "the command produced other events than expected"
                );
                for event in &events {
                    let decoded = D::Event::decode(
                        event.event_type(),
                        event.schema_version(),
                        event.encode(),
                    )
                    .unwrap_or_else(|e| {
                        panic!("{event:?} does not decode from its own encoding: {e}")
                    });
                    assert_eq!(&decoded, event, "the event changes in a storage round trip");
                }
            }
            Err(error) => {
                panic!("expected events {expected:?}, but the command was rejected: {error:?}")
            }
        }
    }

    /// The command is rejected with exactly this error.
    #[track_caller]
    pub fn then_err(self, expected: D::Error)
    where
        D::Error: PartialEq,
    {
        match self.outcome {
            Ok(events) => {
                panic!("expected rejection {expected:?}, but the command produced {events:?}")
            }
            Err(error) => assert_eq!(error, expected),
        }
    }
}

#[cfg(test)]
mod tests {
    //! A small library-loan aggregate, only here to specify the helper itself.
    use serde::{Deserialize, Serialize};
    use serde_json::Value;

    use super::given;
    use crate::event::{decode_tagged, encode_tagged};
    use crate::{Decider, DecodeError, DomainEvent};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", content = "data")]
    enum LoanEvent {
        BookLent { reader: String, due_day: u32 },
        BookReturned { day: u32, late: bool },
    }

    impl DomainEvent for LoanEvent {
        fn event_type(&self) -> &'static str {
            match self {
                Self::BookLent { .. } => "BookLent",
                Self::BookReturned { .. } => "BookReturned",
            }
        }
        fn encode(&self) -> Value {
            encode_tagged(self)
        }
        fn decode(event_type: &str, schema_version: i32, data: Value) -> Result<Self, DecodeError> {
            decode_tagged(
                &["BookLent", "BookReturned"],
                event_type,
                schema_version,
                data,
            )
        }
    }

    enum LoanCommand {
        Lend { reader: String, due_day: u32 },
        Return { day: u32 },
    }

    #[derive(Debug, PartialEq, thiserror::Error)]
    enum LoanError {
        #[error("the book is already lent to someone else")]
        AlreadyLent,
        #[error("the book is not lent")]
        NotLent,
    }

    #[derive(Default)]
    struct LoanState {
        lent_to: Option<(String, u32)>,
    }

    struct Loan;

    impl Decider for Loan {
        type Command = LoanCommand;
        type Event = LoanEvent;
        type State = LoanState;
        type Error = LoanError;

        fn initial_state() -> LoanState {
            LoanState::default()
        }

        fn decide(command: &LoanCommand, state: &LoanState) -> Result<Vec<LoanEvent>, LoanError> {
            match (command, &state.lent_to) {
                (LoanCommand::Lend { reader, .. }, Some((holder, _))) if holder == reader => {
                    Ok(vec![])
                }
                (LoanCommand::Lend { .. }, Some(_)) => Err(LoanError::AlreadyLent),
                (LoanCommand::Lend { reader, due_day }, None) => Ok(vec![LoanEvent::BookLent {
                    reader: reader.clone(),
                    due_day: *due_day,
                }]),
                (LoanCommand::Return { .. }, None) => Err(LoanError::NotLent),
                (LoanCommand::Return { day }, Some((_, due))) => {
                    Ok(vec![LoanEvent::BookReturned {
                        day: *day,
                        late: day > due,
                    }])
                }
            }
        }

        fn evolve(mut state: LoanState, event: &LoanEvent) -> LoanState {
            state.lent_to = match event {
                LoanEvent::BookLent { reader, due_day } => Some((reader.clone(), *due_day)),
                LoanEvent::BookReturned { .. } => None,
            };
            state
        }
    }

    fn lent_to_ann() -> LoanEvent {
        LoanEvent::BookLent {
            reader: "ann".into(),
            due_day: 10,
        }
    }

    #[test]
    fn a_free_book_is_lent() {
        given::<Loan>([])
            .when(LoanCommand::Lend {
                reader: "ann".into(),
                due_day: 10,
            })
            .then([lent_to_ann()]);
    }

    #[test]
    fn lending_again_to_the_same_reader_changes_nothing() {
        given::<Loan>([lent_to_ann()])
            .when(LoanCommand::Lend {
                reader: "ann".into(),
                due_day: 10,
            })
            .then([]);
    }

    #[test]
    fn a_lent_book_cannot_be_lent_to_someone_else() {
        given::<Loan>([lent_to_ann()])
            .when(LoanCommand::Lend {
                reader: "bob".into(),
                due_day: 12,
            })
            .then_err(LoanError::AlreadyLent);
    }

    #[test]
    fn a_return_after_the_due_day_is_late() {
        given::<Loan>([lent_to_ann()])
            .when(LoanCommand::Return { day: 11 })
            .then([LoanEvent::BookReturned {
                day: 11,
                late: true,
            }]);
    }

    #[test]
    fn history_is_folded_in_order() {
        given::<Loan>([
            lent_to_ann(),
            LoanEvent::BookReturned {
                day: 9,
                late: false,
            },
        ])
        .when(LoanCommand::Return { day: 12 })
        .then_err(LoanError::NotLent);
    }

    #[test]
    #[should_panic(expected = "the command produced other events than expected")]
    fn then_fails_when_the_events_differ() {
        given::<Loan>([lent_to_ann()])
            .when(LoanCommand::Return { day: 3 })
            .then([LoanEvent::BookReturned { day: 3, late: true }]);
    }

    #[test]
    #[should_panic(expected = "but the command was rejected")]
    fn then_fails_when_the_command_is_rejected() {
        given::<Loan>([])
            .when(LoanCommand::Return { day: 3 })
            .then([]);
    }

    #[test]
    fn events_decode_only_at_known_types_and_versions() {
        let data = lent_to_ann().encode();
        assert_eq!(data, serde_json::json!({ "reader": "ann", "due_day": 10 }));
        assert!(matches!(
            LoanEvent::decode("BookBurned", 1, data.clone()),
            Err(DecodeError::UnknownType(_))
        ));
        assert!(matches!(
            LoanEvent::decode("BookLent", 2, data.clone()),
            Err(DecodeError::UnknownSchemaVersion { .. })
        ));
        assert!(matches!(
            LoanEvent::decode("BookLent", 1, serde_json::json!({ "reader": 5 })),
            Err(DecodeError::Malformed { .. })
        ));
    }

    /// An event whose decode loses what encode wrote: the helper must notice.
    #[derive(Debug, Clone, PartialEq)]
    struct Stamped {
        value: u32,
    }

    impl DomainEvent for Stamped {
        fn event_type(&self) -> &'static str {
            "Stamped"
        }
        fn encode(&self) -> Value {
            serde_json::json!({ "value": self.value })
        }
        fn decode(_: &str, _: i32, _: Value) -> Result<Self, DecodeError> {
            Ok(Stamped { value: 0 })
        }
    }

    struct Stamper;

    impl Decider for Stamper {
        type Command = u32;
        type Event = Stamped;
        type State = ();
        type Error = LoanError;

        fn initial_state() {}
        fn decide(value: &u32, _: &()) -> Result<Vec<Stamped>, LoanError> {
            Ok(vec![Stamped { value: *value }])
        }
        fn evolve(_: (), _: &Stamped) {}
    }

    #[test]
    #[should_panic(expected = "the event changes in a storage round trip")]
    fn then_fails_when_an_event_does_not_survive_storage() {
        given::<Stamper>([]).when(5).then([Stamped { value: 5 }]);
    }
}
