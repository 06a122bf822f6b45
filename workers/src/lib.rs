//! Background workers and the clock they run on.
//!
//! - [`deadlines`]: the deadline worker of cohort tracks (80 % reminders, closing assignments at their deadline).
//!
//! Workers never read the system time directly: they take a [`Clock`], so tests move time with a
//! [`ManualClock`] instead of sleeping, and the time a worker acted on is passed into its commands (and so
//! recorded in events), keeping `decide` pure.

pub mod deadlines;

pub use commands::clock::{Clock, ManualClock, SystemClock};
