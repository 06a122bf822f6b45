//! Reading one stream, and the whole log in commit-safe order.

use futures_util::TryStreamExt;
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::EventLog;
use crate::types::{Checkpoint, Direction, RecordedEvent};

/// Columns of [`RecordedEvent`], in its field order.
macro_rules! event_columns {
    ($e:literal) => {
        concat!(
            $e,
            ".position, ",
            $e,
            ".stream_id, ",
            $e,
            ".stream_category, ",
            $e,
            ".version, ",
            $e,
            ".event_id, ",
            $e,
            ".event_type, ",
            $e,
            ".schema_version, ",
            $e,
            ".data, ",
            $e,
            ".metadata, ",
            $e,
            ".actor_id, ",
            $e,
            ".actor_role, ",
            $e,
            ".source, ",
            $e,
            ".command_id, ",
            $e,
            ".correlation_id, ",
            $e,
            ".causation_id, ",
            $e,
            ".recorded_at, ",
            $e,
            ".transaction_id::text::bigint as transaction_id"
        )
    };
}

/// The global read, done in one statement so that the horizon and the rows come from one snapshot: every
/// transaction below `xmin` has finished, so nothing can later appear below the returned checkpoint. The left
/// join returns the horizon even when no event qualifies.
///
/// No `order by` outside the lateral read: it would sort the whole batch again (with a batch of thousands of
/// wide rows, on disk: six times the time of the read itself). The rows come in the index's order; the reader
/// checks that and sorts only if the plan ever changes.
macro_rules! read_all_sql {
    ($type_filter:literal) => {
        concat!(
            "with x as materialized (select pg_snapshot_xmin(pg_current_snapshot()) as xmin), ",
            // one backward step of the commit-order index: is anything committed at or above the horizon?
            "h as materialized (select x.xmin, coalesce((select w.transaction_id from events w ",
            "order by w.transaction_id desc limit 1) >= x.xmin, false) as held_back from x) ",
            "select h.xmin::text::bigint as horizon, h.held_back, ",
            event_columns!("e"),
            " from h left join lateral (select * from events ev ",
            "where (ev.transaction_id, ev.position) > ($1::text::xid8, $2::bigint) ",
            "and ev.transaction_id < h.xmin ",
            $type_filter,
            " order by ev.transaction_id, ev.position limit $3) e on true"
        )
    };
}

/// One read of the global log.
#[derive(Debug, Clone)]
pub struct Batch {
    pub events: Vec<RecordedEvent>,
    /// Where the reader stands after this batch. Past the last event when the read reached the horizon: it then
    /// covers every event (of the filtered types) of all finished transactions.
    pub checkpoint: Checkpoint,
    /// Committed events exist beyond the horizon: a transaction that started earlier is still open (in any
    /// database of the cluster), and they become readable when it ends. Worth asking again soon.
    pub held_back: bool,
}

impl EventLog {
    /// Up to `limit` events of `stream`, from version `from` on (forward) or from `from` down (backward; pass
    /// `i64::MAX` for the end).
    #[tracing::instrument(skip_all, fields(stream_id = %stream))]
    pub async fn read_stream(
        &self,
        stream: &str,
        from: i64,
        direction: Direction,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, sqlx::Error> {
        let sql = match direction {
            Direction::Forward => concat!(
                "select ",
                event_columns!("e"),
                " from events e where e.stream_id = $1 and e.version >= $2 order by e.version limit $3"
            ),
            Direction::Backward => concat!(
                "select ",
                event_columns!("e"),
                " from events e where e.stream_id = $1 and e.version <= $2 order by e.version desc limit $3"
            ),
        };
        sqlx::query_as(sql)
            .bind(stream)
            .bind(from)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
    }

    /// Every event of `stream`, in order.
    pub async fn read_whole_stream(&self, stream: &str) -> Result<Vec<RecordedEvent>, sqlx::Error> {
        self.read_stream(stream, 1, Direction::Forward, i64::MAX)
            .await
    }

    /// The stream's current version (0 when it does not exist).
    pub async fn stream_version(&self, stream: &str) -> Result<i64, sqlx::Error> {
        let version: Option<i64> =
            sqlx::query_scalar("select version from streams where stream_id = $1")
                .bind(stream)
                .fetch_optional(&self.pool)
                .await?;
        Ok(version.unwrap_or(0))
    }

    /// Up to `limit` events after `after` in commit-safe order, of the given types only when `types` is given.
    ///
    /// A large read runs as a task of its own, decoding rows as they arrive: parsing the events' JSON overlaps
    /// the server sending the rest, and whatever the caller does meanwhile (a runner applies the previous batch
    /// while it reads the next).
    #[tracing::instrument(skip_all, fields(xid = after.xid, position = after.position))]
    pub async fn read_all(
        &self,
        after: Checkpoint,
        limit: i64,
        types: Option<&[String]>,
    ) -> Result<Batch, sqlx::Error> {
        if limit < READ_ASIDE_FROM {
            return read_all(&self.pool, after, limit, types).await;
        }
        let pool = self.pool.clone();
        let types = types.map(<[String]>::to_vec);
        tokio::spawn(async move { read_all(&pool, after, limit, types.as_deref()).await })
            .await
            .map_err(|error| sqlx::Error::Decode(format!("reading the log: {error}").into()))?
    }

    /// How many events (of `types`, when given) lie after `after`, finished or not: a reader's lag.
    pub async fn count_after(
        &self,
        after: Checkpoint,
        types: Option<&[String]>,
    ) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "select count(*) from events
              where (transaction_id, position) > ($1::text::xid8, $2::bigint)
                and ($3::text[] is null or event_type = any($3))",
        )
        .bind(after.xid.to_string())
        .bind(after.position)
        .bind(types)
        .fetch_one(&self.pool)
        .await
    }

    /// Where a reader that wants only events from now on starts: the current horizon.
    pub async fn horizon(&self) -> Result<Checkpoint, sqlx::Error> {
        let xmin: i64 =
            sqlx::query_scalar("select pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
                .fetch_one(&self.pool)
                .await?;
        Ok(Checkpoint::horizon(xmin))
    }

    /// The highest position written so far (0 for an empty log); committed or not yet visible to readers.
    pub async fn last_position(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("select coalesce(max(position), 0) from events")
            .fetch_one(&self.pool)
            .await
    }

    /// The commit-safe checkpoint of the event at `position`, or `None` when there is no such event.
    pub async fn checkpoint_of(&self, position: i64) -> Result<Option<Checkpoint>, sqlx::Error> {
        let xid: Option<i64> = sqlx::query_scalar(
            "select transaction_id::text::bigint from events where position = $1",
        )
        .bind(position)
        .fetch_optional(&self.pool)
        .await?;
        Ok(xid.map(|xid| Checkpoint { xid, position }))
    }
}

/// Reads of at least this many events run as a task of their own.
const READ_ASIDE_FROM: i64 = 256;

async fn read_all(
    pool: &sqlx::PgPool,
    after: Checkpoint,
    limit: i64,
    types: Option<&[String]>,
) -> Result<Batch, sqlx::Error> {
    let query = match types {
        None => sqlx::query(read_all_sql!(""))
            .bind(after.xid.to_string())
            .bind(after.position)
            .bind(limit),
        Some(types) => sqlx::query(read_all_sql!("and ev.event_type = any($4)"))
            .bind(after.xid.to_string())
            .bind(after.position)
            .bind(limit)
            .bind(types.to_vec()),
    };
    let mut rows = query.fetch(pool);
    // (horizon, held back), from the first row: every row carries them
    let mut horizon: Option<(i64, bool)> = None;
    let mut events = Vec::with_capacity(limit.clamp(0, 100_000) as usize);
    while let Some(row) = rows.try_next().await? {
        if horizon.is_none() {
            horizon = Some((row.try_get("horizon")?, row.try_get("held_back")?));
        }
        // the left join yields one row of nulls when no event qualifies
        if row.try_get::<Option<i64>, _>("position")?.is_some() {
            events.push(<RecordedEvent as sqlx::FromRow<'_, PgRow>>::from_row(&row)?);
        }
    }
    if !events.is_sorted_by_key(RecordedEvent::checkpoint) {
        events.sort_unstable_by_key(RecordedEvent::checkpoint);
    }
    Ok(batch_of(after, limit, horizon, events))
}

fn batch_of(
    after: Checkpoint,
    limit: i64,
    horizon: Option<(i64, bool)>,
    events: Vec<RecordedEvent>,
) -> Batch {
    let Some((horizon, held_back)) = horizon else {
        return Batch {
            events: vec![],
            checkpoint: after,
            held_back: false,
        };
    };
    let last = events.last().map(RecordedEvent::checkpoint);
    let checkpoint = if (events.len() as i64) < limit {
        // the read reached the horizon: everything below it has been covered
        after
            .max(Checkpoint::horizon(horizon))
            .max(last.unwrap_or(after))
    } else {
        last.unwrap_or(after)
    };
    Batch {
        events,
        checkpoint,
        held_back,
    }
}
