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
