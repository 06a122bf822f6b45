//! Background workers (to come: deadline scheduler, scraper, Telegram bot, notifier) and the clock they run on.
//!
//! Workers never read the system time directly: they take a [`Clock`], so tests move time with a
//! [`ManualClock`] instead of sleeping, and the time a worker acted on is passed into its commands (and so
//! recorded in events), keeping `decide` pure.

pub mod clock;

pub use clock::{Clock, ManualClock, SystemClock};
