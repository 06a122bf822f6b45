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

    /// Folds `events` over the initial state.
    fn fold<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self::State
    where
        Self::Event: 'a,
    {
        events.into_iter().fold(Self::initial_state(), Self::evolve)
    }
}
