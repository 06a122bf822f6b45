//! `log_stats`: what the log holds, per event type and per stream category. For admins auditing history, and the
//! projection the replay benchmark measures.
//!
//! Batch-oriented: a batch is folded in memory and written with one upsert per table, so replay speed is bound
//! by reading the log, not by per-event round trips.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use eventlog::RecordedEvent;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use crate::{Projection, ProjectionError};

pub const NAME: &str = "log_stats";

#[derive(Debug, Default)]
pub struct LogStats;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct EventTypeStats {
    pub event_type: String,
    pub events: i64,
    pub last_position: i64,
    pub last_recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct CategoryStats {
    pub category: String,
    pub streams: i64,
    pub events: i64,
}

crate::read_model!(LogStats {
    name: NAME,
    version: 1,
    events: all
});

#[async_trait]
impl Projection for LogStats {
    async fn setup(&self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        sqlx::raw_sql(
            "create table event_types (
                 event_type       text primary key,
                 events           bigint not null,
                 -- the most recently applied event of this type (commit-safe order)
                 last_position    bigint not null,
                 last_recorded_at timestamptz not null
             );
             create table categories (
                 category text primary key,
                 -- streams started (events with version 1)
                 streams  bigint not null,
                 events   bigint not null
             );",
        )
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut types: HashMap<&str, (i64, i64, DateTime<Utc>)> = HashMap::new();
        let mut categories: HashMap<&str, (i64, i64)> = HashMap::new();
        for event in events {
            let entry =
                types
                    .entry(&event.event_type)
                    .or_insert((0, event.position, event.recorded_at));
            entry.0 += 1;
            entry.1 = event.position;
            entry.2 = event.recorded_at;
            let category = categories.entry(&event.stream_category).or_insert((0, 0));
            category.0 += i64::from(event.version == 1);
            category.1 += 1;
        }
        let (names, rest): (Vec<&str>, Vec<_>) = types.into_iter().unzip();
        let (counts, last): (Vec<i64>, Vec<(i64, DateTime<Utc>)>) =
            rest.into_iter().map(|(n, p, t)| (n, (p, t))).unzip();
        let (positions, times): (Vec<i64>, Vec<DateTime<Utc>>) = last.into_iter().unzip();
        sqlx::query(
            "insert into event_types as t (event_type, events, last_position, last_recorded_at)
             select * from unnest($1::text[], $2::bigint[], $3::bigint[], $4::timestamptz[])
             on conflict (event_type) do update
                set events = t.events + excluded.events, last_position = excluded.last_position,
                    last_recorded_at = excluded.last_recorded_at",
        )
        .bind(&names)
        .bind(&counts)
        .bind(&positions)
        .bind(&times)
        .execute(&mut *conn)
        .await?;
        let (names, counts): (Vec<&str>, Vec<(i64, i64)>) = categories.into_iter().unzip();
        let (streams, events): (Vec<i64>, Vec<i64>) = counts.into_iter().unzip();
        sqlx::query(
            "insert into categories as c (category, streams, events)
             select * from unnest($1::text[], $2::bigint[], $3::bigint[])
             on conflict (category) do update
                set streams = c.streams + excluded.streams, events = c.events + excluded.events",
        )
        .bind(&names)
        .bind(&streams)
        .bind(&events)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// Event counts per type, most frequent first.
pub async fn event_types(pool: &PgPool) -> Result<Vec<EventTypeStats>, sqlx::Error> {
    sqlx::query_as(
        "select event_type, events, last_position, last_recorded_at
           from log_stats.event_types order by events desc, event_type",
    )
    .fetch_all(pool)
    .await
}

/// Streams and events per category, largest first.
pub async fn categories(pool: &PgPool) -> Result<Vec<CategoryStats>, sqlx::Error> {
    sqlx::query_as(
        "select category, streams, events from log_stats.categories order by events desc, category",
    )
    .fetch_all(pool)
    .await
}
