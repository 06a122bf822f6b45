//! Appending: validation in Rust, then one call of the `append_events` SQL function, which does the
//! idempotency check, one compare-and-set per stream and the insert in a single round trip; or, for a group of
//! concurrent appends, one call of `append_batch`, which runs `append_events` for each in a subtransaction.

use std::sync::Arc;

use serde_json::Value;
use sqlx::postgres::{PgDatabaseError, PgRow};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::types::{
    AppendRequest, Appended, AppendedEvent, ExpectedVersion, Metadata, StreamAppend,
};
use crate::{EventLog, ExpectedVersion as Expected};

/// SQLSTATE raised by `append_events` on a version mismatch.
const CONFLICT_SQLSTATE: &str = "AC409";
/// SQLSTATE of a deadlock (`deadlock_detected`).
const DEADLOCK_SQLSTATE: &str = "40P01";

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("stream {stream} is at version {actual}, but the append expected {expected:?}")]
    Conflict {
        stream: String,
        expected: ExpectedVersion,
        /// The stream's version when the append was refused (0: it does not exist).
        actual: i64,
    },
    /// The append deadlocked with a concurrent one and was rolled back: retry it as after a conflict.
    #[error("the append deadlocked with a concurrent append")]
    Contended,
    #[error("invalid append: {0}")]
    Invalid(&'static str),
    /// The database refused this append alone (it was rolled back; the others of its group committed).
    #[error("the database refused the append ({code}): {message}")]
    Refused { code: String, message: String },
    /// The database failed; shared by every append of a group commit.
    #[error("event log database error: {0}")]
    Database(Arc<sqlx::Error>),
}

impl From<sqlx::Error> for AppendError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(Arc::new(error))
    }
}

impl EventLog {
    /// Appends atomically to every stream of `request` and wakes subscribers.
    ///
    /// Concurrent appends of this process are committed together (see [`crate::GroupCommit`]): each keeps its own
    /// version checks, idempotency and result, and a lone append is not delayed.
    #[tracing::instrument(skip_all, fields(streams = request.streams.len()))]
    pub async fn append(&self, request: AppendRequest) -> Result<Appended, AppendError> {
        let prepared = Prepared::new(request)?;
        self.group.append(self, prepared).await
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
    Prepared::new(request)?.append_on(conn).await
}

/// One validated append in the shape `append_events` takes it: per stream, per event, and the metadata.
#[derive(Debug)]
pub(crate) struct Prepared {
    command_id: Option<Uuid>,
    stream_ids: Vec<String>,
    categories: Vec<String>,
    expected: Vec<Option<i64>>,
    counts: Vec<i64>,
    stream_index: Vec<i32>,
    offsets: Vec<i64>,
    event_ids: Vec<Uuid>,
    event_types: Vec<String>,
    schema_versions: Vec<i32>,
    data: Vec<Value>,
    metadata_json: Value,
    metadata: Metadata,
}

impl Prepared {
    pub(crate) fn new(request: AppendRequest) -> Result<Self, AppendError> {
        let AppendRequest {
            mut streams,
            metadata,
        } = request;
        validate(&mut streams)?;
        let event_count: usize = streams.iter().map(|s| s.events.len()).sum();
        let mut prepared = Prepared {
            command_id: metadata.command_id,
            stream_ids: Vec::with_capacity(streams.len()),
            categories: Vec::with_capacity(streams.len()),
            expected: Vec::with_capacity(streams.len()),
            counts: Vec::with_capacity(streams.len()),
            stream_index: Vec::with_capacity(event_count),
            offsets: Vec::with_capacity(event_count),
            event_ids: Vec::with_capacity(event_count),
            event_types: Vec::with_capacity(event_count),
            schema_versions: Vec::with_capacity(event_count),
            data: Vec::with_capacity(event_count),
            metadata_json: serde_json::to_value(&metadata)
                .map_err(|_| AppendError::Invalid("unencodable metadata"))?,
            metadata,
        };
        for (i, stream) in streams.into_iter().enumerate() {
            prepared.stream_ids.push(stream.stream.as_str().to_owned());
            prepared
                .categories
                .push(stream.stream.category().to_owned());
            prepared.expected.push(stream.expected.as_sql());
            prepared.counts.push(stream.events.len() as i64);
            for (offset, event) in stream.events.into_iter().enumerate() {
                prepared.stream_index.push(i as i32 + 1);
                prepared.offsets.push(offset as i64 + 1);
                prepared.event_ids.push(event.event_id);
                prepared.event_types.push(event.event_type);
                prepared.schema_versions.push(event.schema_version);
                prepared.data.push(event.data);
            }
        }
        Ok(prepared)
    }

    /// The smallest stream id it writes (streams are sorted).
    pub(crate) fn first_stream(&self) -> &str {
        &self.stream_ids[0]
    }

    /// One call of `append_events` on `conn`.
    pub(crate) async fn append_on(&self, conn: &mut PgConnection) -> Result<Appended, AppendError> {
        let rows = sqlx::query(
            "select out_position, out_stream_id, out_version, out_transaction_id, out_duplicate
               from append_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(self.command_id)
        .bind(&self.stream_ids)
        .bind(&self.categories)
        .bind(&self.expected)
        .bind(&self.counts)
        .bind(&self.stream_index)
        .bind(&self.offsets)
        .bind(&self.event_ids)
        .bind(&self.event_types)
        .bind(&self.schema_versions)
        .bind(&self.data)
        .bind(&self.metadata_json)
        .bind(&self.metadata.actor_id)
        .bind(&self.metadata.actor_role)
        .bind(self.metadata.source.as_str())
        .bind(self.metadata.correlation_id)
        .bind(self.metadata.causation_id)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| self.refusal(e))?;
        appended_from_rows(&rows).map_err(AppendError::from)
    }

    /// Every append of `batch` in one call of `append_batch` on `conn` (autocommit: one transaction), each
    /// with its own outcome, in the batch's order.
    pub(crate) async fn append_all_on(
        batch: &[&Prepared],
        conn: &mut PgConnection,
    ) -> Result<Vec<Result<Appended, AppendError>>, sqlx::Error> {
        let stream_counts: Vec<i32> = batch.iter().map(|p| p.stream_ids.len() as i32).collect();
        let event_counts: Vec<i32> = batch.iter().map(|p| p.event_ids.len() as i32).collect();
        let rows = sqlx::query(
            "select out_command, out_position, out_stream_id, out_version, out_transaction_id, out_duplicate,
                    out_error_code, out_error_message, out_error_detail
               from append_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                                 $18, $19)",
        )
        .bind(batch.iter().map(|p| p.command_id).collect::<Vec<_>>())
        .bind(&stream_counts)
        .bind(&event_counts)
        .bind(batch.iter().map(|p| &p.metadata_json).collect::<Vec<_>>())
        .bind(batch.iter().map(|p| p.metadata.actor_id.as_deref()).collect::<Vec<_>>())
        .bind(batch.iter().map(|p| p.metadata.actor_role.as_deref()).collect::<Vec<_>>())
        .bind(batch.iter().map(|p| p.metadata.source.as_str()).collect::<Vec<_>>())
        .bind(batch.iter().map(|p| p.metadata.correlation_id).collect::<Vec<_>>())
        .bind(batch.iter().map(|p| p.metadata.causation_id).collect::<Vec<_>>())
        .bind(batch.iter().flat_map(|p| &p.stream_ids).collect::<Vec<_>>())
        .bind(batch.iter().flat_map(|p| &p.categories).collect::<Vec<_>>())
        .bind(batch.iter().flat_map(|p| &p.expected).collect::<Vec<_>>())
        .bind(batch.iter().flat_map(|p| &p.counts).collect::<Vec<_>>())
        .bind(batch.iter().flat_map(|p| &p.stream_index).collect::<Vec<_>>())
        .bind(batch.iter().flat_map(|p| &p.offsets).collect::<Vec<_>>())
        .bind(batch.iter().flat_map(|p| &p.event_ids).collect::<Vec<_>>())
        .bind(batch.iter().flat_map(|p| &p.event_types).collect::<Vec<_>>())
        .bind(batch.iter().flat_map(|p| &p.schema_versions).collect::<Vec<_>>())
        .bind(batch.iter().flat_map(|p| &p.data).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await?;
        let mut per_command: Vec<Vec<PgRow>> = batch.iter().map(|_| Vec::new()).collect();
        for row in rows {
            let command: i32 = row.try_get("out_command")?;
            per_command[command as usize - 1].push(row);
        }
        let outcomes = batch
            .iter()
            .zip(per_command)
            .map(|(prepared, rows)| prepared.outcome(&rows))
            .collect();
        Ok(outcomes)
    }

    /// This append's outcome from its rows of `append_batch`.
    fn outcome(&self, rows: &[PgRow]) -> Result<Appended, AppendError> {
        let failure = match rows.first() {
            Some(row) => row.try_get::<Option<String>, _>("out_error_code")?,
            None => {
                return Err(AppendError::Invalid(
                    "the batch returned nothing for an append",
                ));
            }
        };
        let Some(code) = failure else {
            return appended_from_rows(rows).map_err(AppendError::from);
        };
        let message: Option<String> = rows[0].try_get("out_error_message")?;
        let detail: Option<String> = rows[0].try_get("out_error_detail")?;
        Err(self.refused(code, message.unwrap_or_default(), detail.as_deref()))
    }

    /// The error of a failed `append_events` call.
    fn refusal(&self, error: sqlx::Error) -> AppendError {
        if let sqlx::Error::Database(db) = &error
            && let Some(pg) = db.try_downcast_ref::<PgDatabaseError>()
        {
            return self.refused(pg.code().to_owned(), pg.message().to_owned(), pg.detail());
        }
        error.into()
    }

    /// A refusal with `code` (a SQLSTATE): a version conflict, a deadlock, or anything else.
    fn refused(&self, code: String, message: String, detail: Option<&str>) -> AppendError {
        match code.as_str() {
            CONFLICT_SQLSTATE => self.conflict(detail.unwrap_or_default()),
            DEADLOCK_SQLSTATE => AppendError::Contended,
            _ => AppendError::Refused { code, message },
        }
    }

    /// A version conflict from `append_events`' detail, `stream_id<TAB>actual_version`.
    fn conflict(&self, detail: &str) -> AppendError {
        let (stream, actual) = detail.split_once('\t').unwrap_or((detail, "0"));
        let expected = self
            .stream_ids
            .iter()
            .position(|s| s == stream)
            .and_then(|i| self.expected[i])
            .map_or(Expected::Any, |n| {
                if n == 0 {
                    Expected::NoStream
                } else {
                    Expected::Exactly(n)
                }
            });
        AppendError::Conflict {
            stream: stream.to_owned(),
            expected,
            actual: actual.parse().unwrap_or(0),
        }
    }
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
