//! Academy's domain: what can happen, and the rules deciding whether it may.
//!
//! Each aggregate is a [`Decider`]: a pure `decide(command, state) -> events` and a pure
//! `evolve(state, event) -> state`. Nothing here does I/O, reads a clock or draws a random number: time, ids and
//! seeds arrive inside commands and are recorded in events, so replaying the log always reproduces the same state.
//!
//! - [`decider`]: the Decider contract.
//! - [`event`]: how domain events become stored events (a stable type string, a schema version, JSON data).
//! - [`stream`]: stream ids, `<category>-<uuid>`.
//! - [`time`]: [`Timestamp`], the instants commands, events and state hold (durations are `chrono::TimeDelta`).
//! - [`identity`]: accounts, roles, and the claims that keep emails and usernames unique.
//! - [`trainer`]: the question bank and users' answers.
//! - [`cars`]: car listings observed by the scraper, and the scraper's runs.
//! - [`tracks`]: cohort tracks: enrollment, assignments and deadlines, solutions, peer reviews, diaries.
//! - [`inbox`]: what a user has read of their notifications.
//! - [`notices`]: the kinds of notification users get.
//! - [`interviews`]: peer mock interviews: slots, calendars and the points ledger.
//! - [`refusal`]: the table of rules commands can break: each domain error's stable reason and kind.
//! - [`testing`] (feature `testing`): `given(events).when(command).then(events)` for rule tests.

pub mod cars;
pub mod decider;
pub mod event;
pub mod identity;
pub mod inbox;
pub mod interviews;
pub mod notices;
pub mod refusal;
mod serde_pairs;
pub mod stream;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;
pub mod tracks;
pub mod trainer;

pub use decider::{Decider, Snapshots};
pub use event::{DecodeError, DomainEvent};
pub use stream::{StreamId, StreamIdError};
pub use time::Timestamp;
