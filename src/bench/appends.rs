//! Appends of 1 and 10 events per command against raw INSERTs, and the `log_stats` replay.

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::StreamId;
use eventlog::{AppendRequest, EventLog, ExpectedVersion, GroupCommit, Metadata, NewEvent, Source};
use projections::{Runner, RunnerConfig};
use serde::Serialize;
use serde_json::json;
use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;

use super::{BenchArgs, thousands as n};

#[derive(Debug, Serialize)]
pub struct AppendFigures {
    pub append_single_per_s: f64,
    /// The same appends with group commit off (each command its own transaction, as before it).
    pub ungrouped_single_per_s: f64,
    pub baseline_single_per_s: f64,
    pub append_single_ratio: f64,
    pub append_batch_events_per_s: f64,
    pub ungrouped_batch_events_per_s: f64,
    pub baseline_batch_events_per_s: f64,
    pub append_batch_ratio: f64,
    /// Median latency of one append at one writer, with and without group commit.
    pub lone_append_p50_ms: f64,
    pub lone_ungrouped_p50_ms: f64,
    pub replay_events: i64,
    pub replay_events_per_s: f64,
}

impl AppendFigures {
    pub(super) fn print(&self) {
        println!(
            "  append, 1 event per command    {:>10} events/s   raw INSERT baseline {:>10} rows/s   ratio {:.2} (target >= 1.00); without group commit {} events/s",
            n(self.append_single_per_s),
            n(self.baseline_single_per_s),
            self.append_single_ratio,
            n(self.ungrouped_single_per_s),
        );
        println!(
            "  append, 10 events per command  {:>10} events/s   raw INSERT baseline {:>10} rows/s   ratio {:.2}; without group commit {} events/s",
            n(self.append_batch_events_per_s),
            n(self.baseline_batch_events_per_s),
            self.append_batch_ratio,
            n(self.ungrouped_batch_events_per_s),
        );
        println!(
            "  a lone append (1 writer), p50  {:>10.2} ms         without group commit {:.2} ms",
            self.lone_append_p50_ms, self.lone_ungrouped_p50_ms,
        );
        println!(
            "  replay of log_stats over {} events: {} events/s (target >= 300,000)",
            n(self.replay_events as f64),
            n(self.replay_events_per_s)
        );
    }
}

pub(super) async fn measure(pool: &PgPool, args: &BenchArgs) -> anyhow::Result<AppendFigures> {
    let pool = pool.clone();
    let (writers, single, batch) = (
        usize::from(args.writers),
        args.single_commands as usize,
        args.batch_commands as usize,
    );
    sqlx::raw_sql("create table bench_raw (like events including all)")
        .execute(&pool)
        .await?;
    let group = GroupCommit {
        committers: args.committers,
        max_batch: args.max_batch,
    };
    let log = EventLog::with_group_commit(pool.clone(), group);
    let ungrouped = EventLog::with_group_commit(pool.clone(), GroupCommit::off(writers));

    // each side in several rounds, alternating, so that drift (caches warming, checkpoints, a neighbour on the
    // host) affects every side alike
    let sides = |n| {
        [
            Op::Raw(pool.clone(), n),
            Op::Append(ungrouped.clone(), n),
            Op::Append(log.clone(), n),
        ]
    };
    let [baseline_single, ungrouped_single, append_single] =
        alternating(writers, single, sides(1)).await?;
    let [baseline_batch, ungrouped_batch, append_batch] =
        alternating(writers, batch, sides(10)).await?;
    let lone_ungrouped = lone_p50(&Op::Append(ungrouped, 1)).await?;
    let lone_append = lone_p50(&Op::Append(log.clone(), 1)).await?;

    fill_for_replay(&pool, args.replay_events).await?;
    let replay_events: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&pool)
        .await?;
    sqlx::raw_sql("vacuum analyze events")
        .execute(&pool)
        .await?;
    let runner = Runner::new(
        log.clone(),
        Arc::new(projections::log_stats::LogStats),
        RunnerConfig::default(),
    )?;
    let started = Instant::now();
    runner.rebuild().await?;
    let replay = started.elapsed();
    let applied: i64 = sqlx::query_scalar("select sum(events)::bigint from log_stats.event_types")
        .fetch_one(&pool)
        .await?;
    anyhow::ensure!(
        applied == replay_events,
        "the replay applied {applied} of {replay_events} events"
    );

    let per_s = |count: usize, took: Duration| count as f64 / took.as_secs_f64();
    let append_single_per_s = per_s(single, append_single);
    let baseline_single_per_s = per_s(single, baseline_single);
    let append_batch_events_per_s = per_s(batch * 10, append_batch);
    let baseline_batch_events_per_s = per_s(batch * 10, baseline_batch);
    Ok(AppendFigures {
        append_single_per_s,
        ungrouped_single_per_s: per_s(single, ungrouped_single),
        baseline_single_per_s,
        append_single_ratio: append_single_per_s / baseline_single_per_s,
        append_batch_events_per_s,
        ungrouped_batch_events_per_s: per_s(batch * 10, ungrouped_batch),
        baseline_batch_events_per_s,
        append_batch_ratio: append_batch_events_per_s / baseline_batch_events_per_s,
        lone_append_p50_ms: lone_append.as_secs_f64() * 1e3,
        lone_ungrouped_p50_ms: lone_ungrouped.as_secs_f64() * 1e3,
        replay_events,
        replay_events_per_s: per_s(replay_events as usize, replay),
    })
}

/// The median time of `op` run alone, one after another.
async fn lone_p50(op: &Op) -> anyhow::Result<Duration> {
    const TIMES: usize = 400;
    let mut took = Vec::with_capacity(TIMES);
    for _ in 0..TIMES {
        let started = Instant::now();
        op.once().await?;
        took.push(started.elapsed());
    }
    took.sort();
    Ok(took[TIMES / 2])
}

/// What a writer repeats: an append of n events, or the baseline insert of n rows into a table.
#[derive(Clone)]
enum Op {
    Append(EventLog, usize),
    Raw(PgPool, usize),
    /// Into a table of the index benchmark.
    RawInto(PgPool, &'static str, usize),
}

impl Op {
    async fn once(&self) -> anyhow::Result<()> {
        match self {
            Op::Append(log, events) => append(log, *events).await,
            Op::Raw(pool, rows) => raw_insert(pool, "bench_raw", *rows).await,
            Op::RawInto(pool, table, rows) => raw_insert(pool, table, *rows).await,
        }
    }
}

/// Runs each of `sides` `total` times, in alternating rounds; returns their wall times.
async fn alternating<const N: usize>(
    writers: usize,
    total: usize,
    sides: [Op; N],
) -> anyhow::Result<[Duration; N]> {
    const ROUNDS: usize = 4;
    let mut took = [Duration::ZERO; N];
    for round in 0..ROUNDS {
        let share = total / ROUNDS + usize::from(round < total % ROUNDS);
        if share == 0 {
            continue;
        }
        for (side, took) in sides.iter().zip(&mut took) {
            *took += concurrently(writers, share, side.clone()).await?;
        }
    }
    Ok(took)
}

/// Runs `op` `total` times over `writers` concurrent tasks; returns the wall time.
async fn concurrently(writers: usize, total: usize, op: Op) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let op = op.clone();
            let share = total / writers + usize::from(w < total % writers);
            tokio::spawn(async move {
                for _ in 0..share {
                    op.once().await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(started.elapsed())
}

fn payload() -> serde_json::Value {
    json!({ "track_id": Uuid::now_v7(), "title": "Rust from zero to production", "seat": 17 })
}

/// One command appending `events` events to a new stream, with metadata as the API would write it.
async fn append(log: &EventLog, events: usize) -> anyhow::Result<()> {
    let stream = StreamId::new("bench", Uuid::now_v7())?;
    let events = (0..events)
        .map(|_| NewEvent::new("LearnerEnrolled", payload()))
        .collect();
    let metadata = Metadata::new(Source::Cli).actor(Uuid::now_v7().to_string(), "user");
    log.append(AppendRequest::single(
        stream,
        ExpectedVersion::NoStream,
        events,
        metadata,
    ))
    .await?;
    Ok(())
}

/// The baseline: one autocommit `INSERT` of `rows` events-shaped rows into `table` (one of the benchmark's own),
/// as a plain table would take them.
async fn raw_insert(pool: &PgPool, table: &str, rows: usize) -> anyhow::Result<()> {
    let stream = format!("bench-{}", Uuid::now_v7());
    let metadata =
        serde_json::to_value(Metadata::new(Source::Cli).actor(Uuid::now_v7().to_string(), "user"))?;
    let versions: Vec<i64> = (1..=rows as i64).collect();
    let ids: Vec<Uuid> = (0..rows).map(|_| Uuid::now_v7()).collect();
    let data: Vec<serde_json::Value> = (0..rows).map(|_| payload()).collect();
    // the table is one of this module's names, never input
    sqlx::query(AssertSqlSafe(format!(
        "insert into {table} (stream_id, stream_category, version, event_id, event_type, data, metadata,
                              actor_id, actor_role, source, command_id, correlation_id)
         select $1, 'bench', v, id, 'LearnerEnrolled', d, $4, $5, 'user', 'cli', $6, $6
           from unnest($2::bigint[], $3::uuid[], $7::jsonb[]) as x(v, id, d)"
    )))
    .bind(&stream)
    .bind(&versions)
    .bind(&ids)
    .bind(&metadata)
    .bind(metadata["actor_id"].as_str())
    .bind(Uuid::now_v7())
    .bind(&data)
    .execute(pool)
    .await?;
    Ok(())
}

/// Tops the log up to `target` events with set-based inserts (what is being measured is the replay, not this).
async fn fill_for_replay(pool: &PgPool, target: usize) -> anyhow::Result<()> {
    let have: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(pool)
        .await?;
    let missing = (target as i64 - have).max(0) as usize;
    super::rebuild::fill_anything(pool, missing).await
}

/// The indexes `events` has had, each with the read path that needs it (ARCHITECTURE.md, "The log's indexes"),
/// and `(event_id)`, which no read path needs and which the log dropped.
const EVENT_INDEXES: [(&str, &str); 6] = [
    (
        "position (primary key)",
        "alter table {t} add primary key (position)",
    ),
    (
        "(stream_id, version) unique",
        "alter table {t} add unique (stream_id, version)",
    ),
    (
        "(event_id) unique [dropped]",
        "alter table {t} add unique (event_id)",
    ),
    (
        "(transaction_id, position)",
        "create index on {t} (transaction_id, position)",
    ),
    (
        "command_id (partial)",
        "create index on {t} (command_id) where command_id is not null",
    ),
    (
        "(event_type, transaction_id, position)",
        "create index on {t} (event_type, transaction_id, position)",
    ),
];

/// The cost of each index of `events`: single-row autocommit inserts per second into an events-shaped table
/// with every index, without each one in turn, and with none, alternating in rounds.
#[derive(Debug, Serialize)]
pub struct IndexFigures {
    /// (variant, rows/s)
    pub index_inserts_per_s: Vec<(String, f64)>,
}

impl IndexFigures {
    pub(super) fn print(&self) {
        let all = self.index_inserts_per_s.first().map_or(1.0, |(_, r)| *r);
        for (variant, rate) in &self.index_inserts_per_s {
            println!(
                "  single-row INSERT, {variant:<48} {:>8} rows/s   {:+.0} % against every index",
                n(*rate),
                (rate / all - 1.0) * 100.0
            );
        }
    }
}

pub(super) async fn measure_indexes(
    pool: &PgPool,
    writers: usize,
    total: usize,
) -> anyhow::Result<IndexFigures> {
    const TABLES: [&str; 8] = [
        "bench_idx_all",
        "bench_idx_0",
        "bench_idx_1",
        "bench_idx_2",
        "bench_idx_3",
        "bench_idx_4",
        "bench_idx_5",
        "bench_idx_none",
    ];
    let mut variants = vec!["every index".to_owned()];
    variants.extend(
        EVENT_INDEXES
            .iter()
            .map(|(name, _)| format!("without {name}")),
    );
    variants.push("no index".to_owned());
    for (i, table) in TABLES.iter().enumerate() {
        let sql = format!("create table {table} (like events including all excluding indexes)");
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(pool).await?;
        for (index, (_, create)) in EVENT_INDEXES.iter().enumerate() {
            // the variant i (1..=6) leaves out index i - 1; the last has none
            if i == TABLES.len() - 1 || i == index + 1 {
                continue;
            }
            let sql = create.replace("{t}", table);
            sqlx::raw_sql(AssertSqlSafe(sql)).execute(pool).await?;
        }
    }
    let sides = TABLES.map(|table| Op::RawInto(pool.clone(), table, 1));
    let took = alternating(writers, total, sides).await?;
    let index_inserts_per_s = variants
        .into_iter()
        .zip(took)
        .map(|(variant, took)| (variant, total as f64 / took.as_secs_f64()))
        .collect();
    Ok(IndexFigures {
        index_inserts_per_s,
    })
}
