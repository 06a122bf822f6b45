//! The projection runner against a real PostgreSQL.

mod accounts;
mod cars;
mod cars_batches;
mod failures;
mod log_stats;
mod plans;
mod rebuild;
mod runner;
mod tracks;
mod trainer;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::StreamId;
use eventlog::{
    AppendRequest, EventLog, ExpectedVersion, Metadata, NewEvent, RecordedEvent, Source,
};
use migrations::testing::TestDb;
use projections::{Projection, ProjectionError, Projections, ReadModel, RunnerConfig};
use sqlx::PgConnection;
use tokio::sync::{Notify, Semaphore, watch};
use uuid::Uuid;

/// A test projection recording every event it applies, and how often: `times` > 1 would be a double apply.
pub struct Ledger {
    pub name: &'static str,
    pub version: i32,
    /// Written into each row: which runner (or version) applied it.
    pub tag: String,
    /// Events of this type make `apply` fail.
    pub poison: Option<&'static str>,
    /// When set, every batch waits for a permit: the test decides how far a build gets.
    pub gate: Option<Arc<Semaphore>>,
    /// Once a batch contains this position, apply writes its rows, announces itself, and never returns.
    pub hang_at: Option<(i64, Arc<Notify>)>,
    /// `setup` fails.
    pub broken_setup: bool,
}

impl Ledger {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            version: 1,
            tag: "v1".to_owned(),
            poison: None,
            gate: None,
            hang_at: None,
            broken_setup: false,
        }
    }
}

impl ReadModel for Ledger {
    fn name(&self) -> &'static str {
        self.name
    }
    fn version(&self) -> i32 {
        self.version
    }
    fn event_types(&self) -> Option<Vec<String>> {
        None
    }
}

#[async_trait]
impl Projection for Ledger {
    async fn setup(&self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        if self.broken_setup {
            return Err("the ledger's tables cannot be created".into());
        }
        sqlx::query(
            "create table applied (position bigint primary key, event_type text not null, times int not null,
                                   tag text not null)",
        )
        .execute(conn)
        .await?;
        Ok(())
    }
    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        if let Some(gate) = &self.gate {
            gate.acquire().await?.forget();
        }
        for event in events {
            if self.poison == Some(event.event_type.as_str()) {
                return Err(format!("cannot digest {}", event.event_type).into());
            }
            sqlx::query(
                "insert into applied values ($1, $2, 1, $3)
                 on conflict (position) do update set times = applied.times + 1",
            )
            .bind(event.position)
            .bind(&event.event_type)
            .bind(&self.tag)
            .execute(&mut *conn)
            .await?;
        }
        if let Some((position, entered)) = &self.hang_at
            && events.iter().any(|e| e.position == *position)
        {
            entered.notify_one();
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

pub fn config() -> RunnerConfig {
    RunnerConfig {
        batch_size: 100,
        build_batch_size: 100,
        lease_ttl: Duration::from_secs(2),
        poll: Duration::from_millis(50),
        retry_delay: Duration::from_millis(100),
        holder: "test".to_owned(),
    }
}

pub async fn log() -> (TestDb, EventLog) {
    // runner warnings show in a failing test's output
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let db = TestDb::new().await;
    let log = EventLog::new(db.pool.clone());
    (db, log)
}

/// Appends `count` events of `event_type`, one stream each; returns the last position.
pub async fn append(log: &EventLog, event_type: &str, count: usize) -> i64 {
    let mut last = 0;
    for n in 0..count {
        let stream = StreamId::new("thing", Uuid::now_v7()).unwrap();
        let appended = log
            .append(AppendRequest::single(
                stream,
                ExpectedVersion::NoStream,
                vec![NewEvent::new(event_type, serde_json::json!({ "n": n }))],
                Metadata::new(Source::Cli),
            ))
            .await
            .unwrap();
        last = appended.position().unwrap();
    }
    last
}

/// Appends domain `events` to `stream` (whatever its version); returns the last position.
pub async fn write<E: domain::DomainEvent>(log: &EventLog, stream: StreamId, events: &[E]) -> i64 {
    log.append(AppendRequest::single(
        stream,
        ExpectedVersion::Any,
        events.iter().map(NewEvent::from_domain).collect(),
        Metadata::new(Source::Cli),
    ))
    .await
    .unwrap()
    .position()
    .unwrap()
}

/// Starts `projections` in the background; send `true` to stop them.
pub fn start(
    log: &EventLog,
    projections: Vec<Arc<dyn Projection>>,
) -> (
    Arc<Projections>,
    watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let projections = Arc::new(Projections::new(log.clone(), projections, config()).unwrap());
    let (stop, stopped) = watch::channel(false);
    let running = projections.clone();
    let task = tokio::spawn(async move { running.run(stopped).await });
    (projections, stop, task)
}

/// (rows, rows applied more than once, distinct tags) of a ledger's live table.
pub async fn ledger_rows(log: &EventLog, schema: &str) -> (i64, i64, Vec<String>) {
    let sql = format!(
        "select count(*), count(*) filter (where times > 1), coalesce(array_agg(distinct tag), '{{}}')
           from {schema}.applied"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_one(log.pool())
        .await
        .unwrap()
}

pub const WAIT: Duration = Duration::from_secs(30);
