//! Snapshots of long streams: a stream's folded state at some version, stored under the state's schema.

use serde_json::Value;

use crate::EventLog;

/// A stream's state folded up to `version`.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub version: i64,
    pub state: Value,
}

impl EventLog {
    /// The latest snapshot of `stream` stored under `schema`, if any.
    pub async fn snapshot(
        &self,
        stream: &str,
        schema: &str,
    ) -> Result<Option<Snapshot>, sqlx::Error> {
        let row: Option<(i64, Value)> = sqlx::query_as(
            "select version, state from snapshots where stream_id = $1 and schema = $2",
        )
        .bind(stream)
        .bind(schema)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(version, state)| Snapshot { version, state }))
    }

    /// Stores `snapshot` of `stream` under `schema`, unless a more recent one under the same schema is already
    /// there (one under another schema, or at the same version, is replaced: it may be one that did not decode).
    pub async fn save_snapshot(
        &self,
        stream: &str,
        schema: &str,
        snapshot: &Snapshot,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "insert into snapshots as s (stream_id, schema, version, state) values ($1, $2, $3, $4)
             on conflict (stream_id) do update
                set schema = excluded.schema, version = excluded.version, state = excluded.state,
                    recorded_at = now()
              where s.schema <> excluded.schema or s.version <= excluded.version",
        )
        .bind(stream)
        .bind(schema)
        .bind(snapshot.version)
        .bind(&snapshot.state)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
