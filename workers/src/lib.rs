//! Background workers and the clock they run on.
//!
//! - [`deadlines`]: the deadline worker of cohort tracks (80 % reminders, closing assignments at their deadline).
//!
//! - [`carsensor`]: the carsensor.net scraper: fetches politely ([`carsensor::fetch`]), parses pages into
//!   normalised listings ([`carsensor::parse`]), upserts each listing as one command, records each run, delists
//!   listings that complete runs keep missing, and runs on a cron schedule.
//! - [`clock`]: workers never read the system time or sleep directly: they take a [`Clock`] and a [`Sleeper`],
//!   so tests move time with a [`ManualClock`] instead of waiting, and the time a worker acted on is passed into
//!   its commands (and so recorded in events), keeping `decide` pure.

pub mod carsensor;
pub mod deadlines;

pub use commands::clock;
pub use commands::clock::{Clock, ManualClock, ManualSleeper, Sleeper, SystemClock, TokioSleeper};
