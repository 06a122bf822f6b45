//! What the commit-safe order holds back. Readers take only events whose transaction is older than every
//! transaction still running (`pg_snapshot_xmin`), so a transaction that holds an id and stays open — anywhere in
//! the cluster — keeps every committed event after it from every reader until it ends. [`EventLog::hold`] says
//! how many events are waiting, since when, and which backend holds them, so readiness, metrics and the CLI can
//! report it instead of showing readers as caught up.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::EventLog;

/// Committed events no reader can take yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hold {
    /// How many.
    pub events: i64,
    /// The lowest position among them (readers have everything before it, unless they are behind).
    pub first_position: i64,
    /// When the oldest of them was recorded.
    pub since: DateTime<Utc>,
    /// The oldest transaction still running that holds an id, when `pg_stat_activity` shows it.
    pub blocker: Option<Blocker>,
}

impl Hold {
    /// How long events have been held back at `now`.
    pub fn age(&self, now: DateTime<Utc>) -> chrono::Duration {
        (now - self.since).max(chrono::Duration::zero())
    }
}

/// A backend whose open transaction holds the horizon back.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Blocker {
    pub pid: i32,
    pub transaction_start: Option<DateTime<Utc>>,
    pub query_start: Option<DateTime<Utc>>,
    pub state: Option<String>,
    pub application_name: Option<String>,
    /// The start of its current or last query.
    pub query: Option<String>,
}

impl EventLog {
    /// The committed events held back by a transaction still running, if any.
    pub async fn hold(&self) -> Result<Option<Hold>, sqlx::Error> {
        let (events, first_position, since): (i64, Option<i64>, Option<DateTime<Utc>>) =
            sqlx::query_as(
                "select count(*), min(position), min(recorded_at) from events
                  where transaction_id >= pg_snapshot_xmin(pg_current_snapshot())",
            )
            .fetch_one(&self.pool)
            .await?;
        let (Some(first_position), Some(since)) = (first_position, since) else {
            return Ok(None);
        };
        let blocker = sqlx::query_as(
            "select pid, xact_start as transaction_start, query_start, state, application_name,
                    left(query, 200) as query
               from pg_stat_activity
              where backend_xid is not null and pid <> pg_backend_pid()
              order by age(backend_xid) desc
              limit 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(Some(Hold {
            events,
            first_position,
            since,
            blocker,
        }))
    }
}
