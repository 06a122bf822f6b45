//! The `academy` binary's library: configuration, getting a database, and composing the crates into a server
//! and a command line. `main.rs` only parses arguments and calls in here, so tests start the real application.
//!
//! Data flows through the workspace in this order (see the README's code tour):
//! `migrations` (schema, embedded PostgreSQL) → `domain` (Deciders) → `eventlog` → `commands` → `projections`
//! → `api` → `workers`.

pub mod bench;
pub mod cli;
pub mod config;
pub mod database;
pub mod questions;
pub mod scrape;
pub mod serve;

use std::sync::Arc;

use projections::Projection;

/// Every read model this binary maintains.
pub fn all_projections() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(projections::log_stats::LogStats),
        Arc::new(projections::accounts::Accounts),
        Arc::new(projections::trainer::Trainer),
        Arc::new(projections::cars::Cars),
        Arc::new(projections::tracks::Tracks),
        Arc::new(projections::deadlines::Deadlines),
        Arc::new(projections::notifications::Notifications),
        Arc::new(projections::interviews::Interviews),
    ]
}
