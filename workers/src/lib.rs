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

/// Registers the workers' series: every label set they can take is at zero from the start, whether or not this
/// process runs the scraper or the deadline worker. Call once, after the metrics recorder is installed.
pub fn register_metrics() {
    use carsensor::fetch::REQUESTS_TOTAL;
    use carsensor::{LAYOUT_CHANGES_TOTAL, LISTINGS_TOTAL, PAGE_FAILURES_TOTAL, RUNS_TOTAL};

    metrics::describe_counter!(
        REQUESTS_TOTAL,
        "the scraper's requests, by outcome (ok, redirect, network_error, http_error; off_site and disallowed were not sent)"
    );
    for outcome in [
        "ok",
        "redirect",
        "network_error",
        "http_error",
        "off_site",
        "disallowed",
    ] {
        metrics::counter!(REQUESTS_TOTAL, "outcome" => outcome).increment(0);
    }
    metrics::describe_counter!(
        RUNS_TOTAL,
        "scraper runs, by outcome (complete, incomplete, error)"
    );
    for outcome in ["complete", "incomplete", "error"] {
        metrics::counter!(RUNS_TOTAL, "outcome" => outcome).increment(0);
    }
    metrics::describe_counter!(
        LISTINGS_TOTAL,
        "listings the scraper observed or delisted, by outcome (new, changed, unchanged, delisted)"
    );
    for outcome in ["new", "changed", "unchanged", "delisted"] {
        metrics::counter!(LISTINGS_TOTAL, "outcome" => outcome).increment(0);
    }
    metrics::describe_counter!(
        PAGE_FAILURES_TOTAL,
        "list and detail pages the scraper could not fetch"
    );
    metrics::counter!(PAGE_FAILURES_TOTAL).increment(0);
    metrics::describe_counter!(
        LAYOUT_CHANGES_TOTAL,
        "changes of the site's page layout the scraper noticed"
    );
    metrics::counter!(LAYOUT_CHANGES_TOTAL).increment(0);
    metrics::describe_counter!(
        deadlines::ACTIONS_TOTAL,
        "timers the deadline worker fired, by worker, action and outcome (done, skipped; failed carries no action)"
    );
    // the actions are each product's own names; a failure is counted without one
    metrics::counter!(deadlines::ACTIONS_TOTAL, "worker" => "deadlines", "outcome" => "failed")
        .increment(0);
}
