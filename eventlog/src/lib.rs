//! The event log: Academy's single source of truth, on PostgreSQL.
//!
//! - [`append`](EventLog::append) writes events to one or several streams in one transaction (one round trip,
//!   through the `append_events` SQL function), each stream with an [`ExpectedVersion`]. A version mismatch is
//!   [`AppendError::Conflict`]; a command id that was already used returns the first append's result.
//!   Concurrent appends share a transaction ([`GroupCommit`]), each keeping its own checks and result.
//! - [`read_stream`](EventLog::read_stream) reads one stream forward or backward.
//! - [`read_all`](EventLog::read_all) reads the global log after a [`Checkpoint`] in commit-safe order, and
//!   [`subscribe`](EventLog::subscribe) turns that into catch-up-then-live delivery.
//! - [`verify_transaction_ids`] refuses a log whose transaction ids are ahead of the cluster's.
//!
//! Why `(transaction id, position)`: positions come from an identity column, so they are handed out in insert
//! order, not commit order. A transaction holding position 10 may commit after one holding 11; a reader that
//! checkpointed at 11 would never see 10. Instead every event stores its writing transaction id (`xid8`), readers
//! only look at transactions below the oldest one still running (`pg_snapshot_xmin`), all of which have finished,
//! and order by `(transaction id, position)`. Anything that commits later has a transaction id at or above that
//! horizon, so it sorts after every checkpoint taken so far.

mod append;
mod group;
mod hold;
mod read;
mod snapshot;
mod startup;
mod subscription;
mod types;
mod wakeup;

use std::sync::Arc;

use sqlx::PgPool;

pub use append::{AppendError, append_in};
pub use group::GroupCommit;
pub use hold::{Blocker, Hold};
pub use read::Batch;
pub use snapshot::Snapshot;
pub use startup::{StartupError, verify_transaction_ids};
pub use subscription::{DEFAULT_POLL, Subscription};
pub use types::{
    AppendRequest, Appended, AppendedEvent, Checkpoint, Direction, ExpectedVersion, Metadata,
    NewEvent, RecordedEvent, Source, StreamAppend,
};

/// A handle on the log. Cheap to clone; clones share the wake-up machinery.
#[derive(Clone, Debug)]
pub struct EventLog {
    pool: PgPool,
    wakeup: Arc<wakeup::Wakeup>,
    group: Arc<group::Group>,
}

impl EventLog {
    /// A log on `pool`. Starts two background tasks (coalesced cross-process NOTIFY, and LISTEN for other
    /// processes' appends) that end when the last clone is dropped. Must be called inside a tokio runtime.
    pub fn new(pool: PgPool) -> Self {
        Self::with_group_commit(pool, GroupCommit::default())
    }

    /// A log on `pool` whose concurrent appends are grouped as `group` says.
    pub fn with_group_commit(pool: PgPool, group: GroupCommit) -> Self {
        let wakeup = Arc::new(wakeup::Wakeup::start(pool.clone()));
        let group = Arc::new(group::Group::new(group));
        Self {
            pool,
            wakeup,
            group,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Tells subscribers that events were committed by [`append_in`] inside a caller's transaction. (Appends
    /// through [`EventLog::append`] do this themselves.)
    pub fn committed(&self) {
        self.wakeup.local_commit();
    }
}
