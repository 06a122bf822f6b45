//! Appending: validation in Rust, then one call of the `append_events` SQL function, which does the
//! idempotency check, one compare-and-set per stream and the insert in a single round trip.

use sqlx::postgres::{PgDatabaseError, PgRow};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::types::{AppendRequest, Appended, AppendedEvent, ExpectedVersion, StreamAppend};
use crate::{EventLog, ExpectedVersion as Expected};

/// SQLSTATE raised by `append_events` on a version mismatch.
const CONFLICT_SQLSTATE: &str = "AC409";

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("stream {stream} is at version {actual}, but the append expected {expected:?}")]
    Conflict {
        stream: String,
        expected: ExpectedVersion,
        /// The stream's version when the append was refused (0: it does not exist).
        actual: i64,
    },
    #[error("invalid append: {0}")]
    Invalid(&'static str),
    #[error("event log database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl EventLog {
    /// Appends atomically to every stream of `request` and wakes subscribers.
    #[tracing::instrument(skip_all, fields(streams = request.streams.len()))]
    pub async fn append(&self, request: AppendRequest) -> Result<Appended, AppendError> {
        let mut conn = self.pool.acquire().await?;
        let appended = append_in(&mut conn, request).await?;
        if !appended.duplicate {
            self.wakeup.local_commit();
        }
        Ok(appended)
    }

    /// The first append made with `command_id`, if any.
    pub async fn find_command(&self, command_id: Uuid) -> Result<Option<Appended>, sqlx::Error> {
        // the same columns as append_events returns, so one mapping serves both
        let rows = sqlx::query(
            "select position as out_position, stream_id as out_stream_id, version as out_version,
                    transaction_id::text::bigint as out_transaction_id, true as out_duplicate
               from events where command_id = $1 order by position",
        )
        .bind(command_id)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(appended_from_rows(&rows)?))
    }
}

/// Appends on `conn`, inside whatever transaction it is in (autocommit when none). Does not wake subscribers:
/// call [`EventLog::committed`] after committing.
pub async fn append_in(
    conn: &mut PgConnection,
    request: AppendRequest,
) -> Result<Appended, AppendError> {
    let AppendRequest {
        mut streams,
        metadata,
    } = request;
    validate(&mut streams)?;

    let event_count: usize = streams.iter().map(|s| s.events.len()).sum();
    let mut stream_ids = Vec::with_capacity(streams.len());
    let mut categories = Vec::with_capacity(streams.len());
    let mut expected = Vec::with_capacity(streams.len());
    let mut counts = Vec::with_capacity(streams.len());
    let mut stream_index = Vec::with_capacity(event_count);
    let mut offsets = Vec::with_capacity(event_count);
    let mut event_ids = Vec::with_capacity(event_count);
    let mut event_types = Vec::with_capacity(event_count);
    let mut schema_versions = Vec::with_capacity(event_count);
    let mut data = Vec::with_capacity(event_count);
    for (i, stream) in streams.iter_mut().enumerate() {
        stream_ids.push(stream.stream.as_str().to_owned());
        categories.push(stream.stream.category().to_owned());
        expected.push(stream.expected.as_sql());
        counts.push(stream.events.len() as i64);
        for (offset, event) in stream.events.drain(..).enumerate() {
            stream_index.push(i as i32 + 1);
            offsets.push(offset as i64 + 1);
            event_ids.push(event.event_id);
            event_types.push(event.event_type);
            schema_versions.push(event.schema_version);
            data.push(event.data);
        }
    }
    let metadata_json = serde_json::to_value(&metadata)
        .map_err(|_| AppendError::Invalid("unencodable metadata"))?;

    let rows = sqlx::query(
        "select out_position, out_stream_id, out_version, out_transaction_id, out_duplicate
           from append_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(metadata.command_id)
    .bind(&stream_ids)
    .bind(&categories)
    .bind(&expected)
    .bind(&counts)
    .bind(&stream_index)
    .bind(&offsets)
    .bind(&event_ids)
    .bind(&event_types)
    .bind(&schema_versions)
    .bind(&data)
    .bind(&metadata_json)
    .bind(&metadata.actor_id)
    .bind(&metadata.actor_role)
    .bind(metadata.source.as_str())
    .bind(metadata.correlation_id)
    .bind(metadata.causation_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| conflict_from(e, &stream_ids, &expected))?;

    appended_from_rows(&rows).map_err(AppendError::from)
}

/// Rows shaped like `append_events`' result, as an [`Appended`] in position order.
fn appended_from_rows(rows: &[PgRow]) -> Result<Appended, sqlx::Error> {
    let mut duplicate = false;
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        duplicate |= row.try_get::<bool, _>("out_duplicate")?;
        events.push((
            row.try_get("out_stream_id")?,
            AppendedEvent {
                position: row.try_get("out_position")?,
                version: row.try_get("out_version")?,
                xid: row.try_get("out_transaction_id")?,
            },
        ));
    }
    events.sort_by_key(|(_, e)| e.position);
    Ok(Appended { events, duplicate })
}

/// Sorts streams by id (so concurrent multi-stream appends lock stream rows in one order and cannot deadlock)
/// and rejects requests the SQL function must never see.
fn validate(streams: &mut [StreamAppend]) -> Result<(), AppendError> {
    if streams.is_empty() {
        return Err(AppendError::Invalid("an append needs at least one stream"));
    }
    if streams.iter().any(|s| s.events.is_empty()) {
        return Err(AppendError::Invalid(
            "every stream of an append needs at least one event",
        ));
    }
    if streams
        .iter()
        .any(|s| matches!(s.expected, Expected::Exactly(n) if n < 0))
    {
        return Err(AppendError::Invalid(
            "an expected version cannot be negative",
        ));
    }
    streams.sort_by(|a, b| a.stream.cmp(&b.stream));
    if streams.windows(2).any(|w| w[0].stream == w[1].stream) {
        return Err(AppendError::Invalid("a stream appears twice in one append"));
    }
    if streams
        .iter()
        .flat_map(|s| &s.events)
        .any(|e| e.event_type.is_empty() || e.schema_version < 1)
    {
        return Err(AppendError::Invalid(
            "an event needs a type and a schema version of at least 1",
        ));
    }
    Ok(())
}

fn conflict_from(error: sqlx::Error, streams: &[String], expected: &[Option<i64>]) -> AppendError {
    if let sqlx::Error::Database(db) = &error
        && let Some(pg) = db.try_downcast_ref::<PgDatabaseError>()
        && pg.code() == CONFLICT_SQLSTATE
        && let Some((stream, actual)) = pg.detail().and_then(|d| d.split_once('\t'))
    {
        let expected = streams
            .iter()
            .position(|s| s == stream)
            .and_then(|i| expected[i])
            .map_or(Expected::Any, |n| {
                if n == 0 {
                    Expected::NoStream
                } else {
                    Expected::Exactly(n)
                }
            });
        return AppendError::Conflict {
            stream: stream.to_owned(),
            expected,
            actual: actual.parse().unwrap_or(0),
        };
    }
    AppendError::Database(error)
}
