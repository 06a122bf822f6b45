//! The Decider: one aggregate's rules as two pure functions (after Jérémie Chassaing's "Functional Event
//! Sourcing Decider").

use crate::event::DomainEvent;

/// An aggregate's rules.
///
/// The contract every implementation keeps:
/// - `decide` and `evolve` are pure and synchronous: same inputs, same outputs, no I/O, no clock, no randomness.
/// - A command that is already satisfied returns `Ok(vec![])`, not an error (so retries are harmless).
/// - An error names the broken rule.
pub trait Decider {
    type Command;
    type Event: DomainEvent;
    type State;
    type Error: std::error::Error + Send + Sync + 'static;

    /// The state of a stream with no events.
    fn initial_state() -> Self::State;

    /// The events `command` produces given `state`, or the rule it breaks.
    fn decide(
        command: &Self::Command,
        state: &Self::State,
    ) -> Result<Vec<Self::Event>, Self::Error>;

    /// The state after `event`.
    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;

    /// How this aggregate's state is snapshotted, if it is: an aggregate whose streams grow long (a track grows
    /// with its cohort) stores its folded state now and then, and loads that plus the events after it.
    fn snapshots() -> Option<Snapshots<Self::State>> {
        None
    }

    /// Folds `events` over the initial state.
    fn fold<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self::State
    where
        Self::Event: 'a,
    {
        events.into_iter().fold(Self::initial_state(), Self::evolve)
    }
}

/// How an aggregate's state is stored as a snapshot: a cache of the fold, never a source of truth.
///
/// A snapshot is stored under `schema`; change the schema whenever the state's shape or the meaning of `evolve`
/// changes, and snapshots stored under the old one are ignored (and replaced by the next one stored), so the
/// state is folded again from the events.
#[derive(Debug)]
pub struct Snapshots<S> {
    /// The state's schema, e.g. `track-state/1`.
    pub schema: &'static str,
    /// A snapshot is stored once at least this many events follow the last one (or the stream's start).
    pub every: i64,
    pub encode: fn(&S) -> Option<serde_json::Value>,
    pub decode: fn(serde_json::Value) -> Option<S>,
}

// by hand: a derive would ask `S: Copy`, and only function pointers are held
impl<S> Clone for Snapshots<S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for Snapshots<S> {}

impl<S: serde::Serialize + serde::de::DeserializeOwned> Snapshots<S> {
    /// Snapshots of a state that serde stores as JSON.
    pub fn json(schema: &'static str, every: i64) -> Self {
        Self {
            schema,
            every,
            encode: |state| serde_json::to_value(state).ok(),
            decode: |json| serde_json::from_value(json).ok(),
        }
    }
}
