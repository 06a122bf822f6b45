//! `deadlines`: what the deadline worker has to do, for every product. It hosts the timers products contribute
//! ([`Timers`]): each product reads the events of its streams and sets or clears timers on them, each its own
//! typed value stored as JSON (`domain::tracks::TrackTimer`, `domain::interviews::InterviewTimer`). The worker
//! reads what is due ([`due`]) and hands each timer to the application layer, which routes it by stream to the
//! product that knows what it means. This module knows no product.
//!
//! Rebuilding it changes nothing the worker acts on: a timer fired is in the log as what it did, so its product
//! clears it again in a replay.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::Timestamp;
use eventlog::RecordedEvent;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};

use crate::host::{Contribution, Contributions};
use crate::{Product, Projection, ProjectionError, ReadModel};

pub const NAME: &str = "deadlines";

/// What a product contributes to the `deadlines` read model: from the events of its streams (those its
/// [`Contribution`] reads), which of its timers are set on them and when they are due.
#[async_trait]
pub trait Timers: Contribution {
    /// Sets and clears timers from one event of its streams, with [`set`], [`clear`] and [`on_stream`].
    async fn apply(
        &self,
        conn: &mut PgConnection,
        recorded: &RecordedEvent,
    ) -> Result<(), ProjectionError>;
}

/// The host: the `timers` table, and every product's own tables beside it.
pub struct Deadlines {
    products: Contributions<dyn Timers>,
}

impl Deadlines {
    /// The host of what `products` contribute.
    pub fn new(products: &[Product]) -> Self {
        let products = products.iter().filter_map(|p| p.timers.clone()).collect();
        Self {
            products: Contributions::new(products),
        }
    }
}

impl ReadModel for Deadlines {
    fn name(&self) -> &'static str {
        NAME
    }

    // 3: the host of products' timers (was: tables per product)
    fn version(&self) -> i32 {
        3
    }

    fn event_types(&self) -> Option<Vec<String>> {
        Some(self.products.event_types(&[]))
    }
}

#[async_trait]
impl Projection for Deadlines {
    async fn setup(&self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        sqlx::raw_sql(
            "create table timers (
                 -- the stream it fires on
                 stream_id text not null,
                 -- the product's timer, as its serde JSON
                 timer     jsonb not null,
                 due_at    timestamptz not null,
                 -- not fired by then, it no longer fires (a reminder once the deadline has come)
                 lapses_at timestamptz,
                 primary key (stream_id, timer)
             );
             create index timers_due on timers (due_at, stream_id, timer);",
        )
        .execute(&mut *conn)
        .await?;
        self.products.setup(conn).await
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        for recorded in events {
            self.products
                .of(NAME, recorded)?
                .apply(conn, recorded)
                .await?;
        }
        Ok(())
    }
}

/// Sets `timer` on `stream` to fire at `due` (and not after `lapses`), replacing its earlier time.
pub async fn set<T: Serialize + Sync>(
    conn: &mut PgConnection,
    stream: &str,
    timer: &T,
    due: Timestamp,
    lapses: Option<Timestamp>,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "insert into timers (stream_id, timer, due_at, lapses_at) values ($1, $2, $3, $4)
         on conflict (stream_id, timer) do update set due_at = excluded.due_at, lapses_at = excluded.lapses_at",
    )
    .bind(stream)
    .bind(Json(timer))
    .bind(DateTime::<Utc>::from(due))
    .bind(lapses.map(DateTime::<Utc>::from))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Clears `timer` on `stream`, if set.
pub async fn clear<T: Serialize + Sync>(
    conn: &mut PgConnection,
    stream: &str,
    timer: &T,
) -> Result<(), ProjectionError> {
    sqlx::query("delete from timers where stream_id = $1 and timer = $2")
        .bind(stream)
        .bind(Json(timer))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The timers set on `stream`, as its product's type.
pub async fn on_stream<T: DeserializeOwned + Send + Unpin + 'static>(
    conn: &mut PgConnection,
    stream: &str,
) -> Result<Vec<T>, ProjectionError> {
    let timers: Vec<Json<T>> =
        sqlx::query_scalar("select timer from timers where stream_id = $1 order by timer")
            .bind(stream)
            .fetch_all(&mut *conn)
            .await?;
    Ok(timers.into_iter().map(|t| t.0).collect())
}

/// A timer that is due.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DueTimer {
    pub due_at: DateTime<Utc>,
    pub stream_id: String,
    /// The product's timer, as stored.
    pub timer: serde_json::Value,
}

/// The timers due at `now` that have not lapsed, in the order they came due, after `after`.
#[tracing::instrument(skip_all)]
pub async fn due(
    pool: &PgPool,
    now: DateTime<Utc>,
    after: Option<&DueTimer>,
    limit: i64,
) -> Result<Vec<DueTimer>, sqlx::Error> {
    sqlx::query_as(
        "select due_at, stream_id, timer from deadlines.timers
          where due_at <= $1 and (lapses_at is null or lapses_at > $1)
            and ($2::timestamptz is null or (due_at, stream_id, timer) > ($2, $3::text, $4::jsonb))
          order by due_at, stream_id, timer limit $5",
    )
    .bind(now)
    .bind(after.map(|a| a.due_at))
    .bind(after.map(|a| a.stream_id.as_str()))
    .bind(after.map(|a| &a.timer))
    .bind(limit)
    .fetch_all(pool)
    .await
}
