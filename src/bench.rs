//! `academy bench`: the event log's throughput, each figure next to a baseline measured in the same run on the
//! same server.
//!
//! - appends with 1 event per command, `writers` concurrent writers, against raw single-row `INSERT`s of an
//!   events-shaped row (same columns and indexes, no checks) with the same concurrency, the two alternating in
//!   rounds;
//! - appends with 10 events per command, against raw 10-row `INSERT`s;
//! - replay: rebuilding the `log_stats` projection from the start of a log of about a million events;
//! - listing upserts: 10,000 observed listings, 1 % of them repriced, each through one `Observe` command as the
//!   scraper sends them, against a plain-table upsert (`insert … on conflict do update … where distinct`) of the
//!   same rows at the same concurrency.
//!
//! It runs on a throwaway cluster (stock, durable settings) or, with `DATABASE_URL`, in a scratch database it
//! creates on that server and drops afterwards: events are immutable, so a benchmark must never write into a
//! real log.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use domain::StreamId;
use eventlog::{AppendRequest, EventLog, ExpectedVersion, Metadata, NewEvent, Source};
use migrations::cluster::Cluster;
use projections::{Runner, RunnerConfig};
use serde::Serialize;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::config::Config;

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Concurrent writers.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub writers: u16,
    /// Commands of one event each (and as many baseline inserts).
    #[arg(long, default_value_t = 16_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub single_commands: u32,
    /// Commands of ten events each (and as many baseline 10-row inserts).
    #[arg(long, default_value_t = 4_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_commands: u32,
    /// Events in the log the replay reads (the append phases' events count towards it).
    #[arg(long, default_value_t = 1_000_000)]
    pub replay_events: usize,
    /// Observed listings in the upsert benchmark (already listed; 1 % repriced).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(100..))]
    pub listings: u32,
    /// Only the listing-upsert benchmark.
    #[arg(long)]
    pub upserts_only: bool,
}

#[derive(Debug, Serialize)]
pub struct Figures {
    pub writers: usize,
    pub server_version: String,
    #[serde(flatten)]
    pub appends: Option<AppendFigures>,
    #[serde(flatten)]
    pub upserts: UpsertFigures,
}

/// The listing-upsert benchmark: observations per second through the `Car` decider, and the plain-table
/// upsert baseline.
#[derive(Debug, Serialize)]
pub struct UpsertFigures {
    pub upsert_listings: usize,
    pub upsert_changed: usize,
    pub upsert_listings_per_s: f64,
    pub baseline_upsert_per_s: f64,
    pub upsert_ratio: f64,
}

#[derive(Debug, Serialize)]
pub struct AppendFigures {
    pub append_single_per_s: f64,
    pub baseline_single_per_s: f64,
    pub append_single_ratio: f64,
    pub append_batch_events_per_s: f64,
    pub baseline_batch_events_per_s: f64,
    pub append_batch_ratio: f64,
    pub replay_events: i64,
    pub replay_events_per_s: f64,
}

const SCRATCH_DB: &str = "academy_bench";

pub async fn run(config: &Config, args: BenchArgs) -> anyhow::Result<()> {
    let place = Place::open(config).await?;
    let result = measure_all(&place.options, &args).await;
    place.close().await;
    let figures = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&figures)?);
    } else {
        print_table(&figures);
    }
    Ok(())
}

/// Where the benchmark runs, and how to clean up after it.
struct Place {
    options: PgConnectOptions,
    /// To drop the scratch database from.
    admin: PgConnectOptions,
    cluster: Option<(Cluster, tempfile::TempDir)>,
}

impl Place {
    async fn open(config: &Config) -> anyhow::Result<Self> {
        let (admin, cluster) = match &config.database_url {
            Some(url) => (
                url.parse::<PgConnectOptions>().context("DATABASE_URL")?,
                None,
            ),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("academy-bench-")
                    .tempdir()?;
                // the server's user (when we are root) must be able to enter it
                std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
                let cluster_config = config.cluster_config(&dir.path().join("data"));
                let cluster =
                    tokio::task::spawn_blocking(move || Cluster::start(&cluster_config)).await??;
                (cluster.connect_options("postgres"), Some((cluster, dir)))
            }
        };
        let mut conn = PgConnection::connect_with(&admin)
            .await
            .context("connecting for the benchmark")?;
        // separate statements: DROP/CREATE DATABASE refuse to run inside a (multi-statement) transaction
        for sql in [
            format!("drop database if exists {SCRATCH_DB} with (force)"),
            format!("create database {SCRATCH_DB}"),
        ] {
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .context("creating the scratch database academy_bench (the role needs CREATEDB)")?;
        }
        conn.close().await?;
        Ok(Self {
            options: admin.clone().database(SCRATCH_DB),
            admin,
            cluster,
        })
    }

    async fn close(self) {
        if let Ok(mut conn) = PgConnection::connect_with(&self.admin).await {
            let dropped = sqlx::raw_sql(AssertSqlSafe(format!(
                "drop database if exists {SCRATCH_DB} with (force)"
            )))
            .execute(&mut conn)
            .await;
            if let Err(error) = dropped {
                tracing::warn!(%error, "could not drop the scratch database {SCRATCH_DB}");
            }
            let _ = conn.close().await;
        }
        if let Some((cluster, dir)) = self.cluster {
            let _ = tokio::task::spawn_blocking(move || {
                cluster.stop();
                drop(dir);
            })
            .await;
        }
    }
}

async fn measure_all(options: &PgConnectOptions, args: &BenchArgs) -> anyhow::Result<Figures> {
    let pool = PgPoolOptions::new()
        .max_connections(u32::from(args.writers) + 4)
        .connect_with(options.clone())
        .await?;
    migrations::migrate(&pool).await?;
    let server_version: String = sqlx::query_scalar("show server_version")
        .fetch_one(&pool)
        .await?;
    // the upserts first, on a small log, as a scraper's first weeks would see it
    let upserts = measure_upserts(&pool, usize::from(args.writers), args.listings as usize).await?;
    let appends = if args.upserts_only {
        None
    } else {
        Some(measure_appends(&pool, args).await?)
    };
    pool.close().await;
    Ok(Figures {
        writers: usize::from(args.writers),
        server_version,
        appends,
        upserts,
    })
}

async fn measure_appends(pool: &PgPool, args: &BenchArgs) -> anyhow::Result<AppendFigures> {
    let pool = pool.clone();
    let (writers, single, batch) = (
        usize::from(args.writers),
        args.single_commands as usize,
        args.batch_commands as usize,
    );
    sqlx::raw_sql("create table bench_raw (like events including all)")
        .execute(&pool)
        .await?;
    let log = EventLog::new(pool.clone());

    // each side in several rounds, alternating, so that drift (caches warming, checkpoints, a neighbour on the
    // host) affects both alike
    let (baseline_single, append_single) = alternating(
        writers,
        single,
        Op::Raw(pool.clone(), 1),
        Op::Append(log.clone(), 1),
    )
    .await?;
    let (baseline_batch, append_batch) = alternating(
        writers,
        batch,
        Op::Raw(pool.clone(), 10),
        Op::Append(log.clone(), 10),
    )
    .await?;

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
        baseline_single_per_s,
        append_single_ratio: append_single_per_s / baseline_single_per_s,
        append_batch_events_per_s,
        baseline_batch_events_per_s,
        append_batch_ratio: append_batch_events_per_s / baseline_batch_events_per_s,
        replay_events,
        replay_events_per_s: per_s(replay_events as usize, replay),
    })
}

/// What a writer repeats: an append of n events, or the baseline insert of n rows.
#[derive(Clone)]
enum Op {
    Append(EventLog, usize),
    Raw(PgPool, usize),
}

impl Op {
    async fn once(&self) -> anyhow::Result<()> {
        match self {
            Op::Append(log, events) => append(log, *events).await,
            Op::Raw(pool, rows) => raw_insert(pool, *rows).await,
        }
    }
}

/// Runs `baseline` and `measured` `total` times each, in alternating rounds; returns their wall times.
async fn alternating(
    writers: usize,
    total: usize,
    baseline: Op,
    measured: Op,
) -> anyhow::Result<(Duration, Duration)> {
    const ROUNDS: usize = 4;
    let (mut baseline_took, mut measured_took) = (Duration::ZERO, Duration::ZERO);
    for round in 0..ROUNDS {
        let share = total / ROUNDS + usize::from(round < total % ROUNDS);
        if share == 0 {
            continue;
        }
        baseline_took += concurrently(writers, share, baseline.clone()).await?;
        measured_took += concurrently(writers, share, measured.clone()).await?;
    }
    Ok((baseline_took, measured_took))
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

/// The baseline: one autocommit `INSERT` of `rows` events-shaped rows, as a plain table would take them.
async fn raw_insert(pool: &PgPool, rows: usize) -> anyhow::Result<()> {
    let stream = format!("bench-{}", Uuid::now_v7());
    let metadata =
        serde_json::to_value(Metadata::new(Source::Cli).actor(Uuid::now_v7().to_string(), "user"))?;
    let versions: Vec<i64> = (1..=rows as i64).collect();
    let ids: Vec<Uuid> = (0..rows).map(|_| Uuid::now_v7()).collect();
    let data: Vec<serde_json::Value> = (0..rows).map(|_| payload()).collect();
    sqlx::query(
        "insert into bench_raw (stream_id, stream_category, version, event_id, event_type, data, metadata,
                                actor_id, actor_role, source, command_id, correlation_id)
         select $1, 'bench', v, id, 'LearnerEnrolled', d, $4, $5, 'user', 'cli', $6, $6
           from unnest($2::bigint[], $3::uuid[], $7::jsonb[]) as x(v, id, d)",
    )
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
    let missing = (target as i64 - have).max(0);
    let chunk = 25_000;
    let mut from = 0;
    while from < missing {
        let to = (from + chunk).min(missing) - 1;
        sqlx::query(
            "insert into events (stream_id, stream_category, version, event_id, event_type, data, metadata,
                                 actor_id, actor_role, source, command_id, correlation_id)
             select 'replay-' || (g / 10), 'replay', g % 10 + 1, gen_random_uuid(),
                    (array['LearnerEnrolled', 'SolutionSubmitted', 'ReviewSubmitted', 'QuestionAnswered'])[g % 4 + 1],
                    jsonb_build_object('n', g, 'title', 'Rust from zero to production', 'seat', g % 50),
                    jsonb_build_object('source', 'cli', 'actor_role', 'user'),
                    'user-' || (g % 997), 'user', 'cli', gen_random_uuid(), gen_random_uuid()
               from generate_series($1::bigint, $2::bigint) g",
        )
        .bind(from)
        .bind(to)
        .execute(pool)
        .await?;
        from = to + 1;
    }
    Ok(())
}

fn print_table(figures: &Figures) {
    let n = |x: f64| {
        let s = format!("{x:.0}");
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    println!(
        "academy bench: PostgreSQL {}, {} concurrent writers",
        figures.server_version, figures.writers
    );
    let u = &figures.upserts;
    println!(
        "  listing upserts, {} observed ({} repriced)  {:>10} listings/s   plain-table upsert baseline {:>10} rows/s   ratio {:.2}",
        n(u.upsert_listings as f64),
        n(u.upsert_changed as f64),
        n(u.upsert_listings_per_s),
        n(u.baseline_upsert_per_s),
        u.upsert_ratio
    );
    let Some(f) = &figures.appends else {
        return;
    };
    println!(
        "  append, 1 event per command    {:>10} events/s   raw INSERT baseline {:>10} rows/s   ratio {:.2} (target >= 0.60)",
        n(f.append_single_per_s),
        n(f.baseline_single_per_s),
        f.append_single_ratio
    );
    println!(
        "  append, 10 events per command  {:>10} events/s   raw INSERT baseline {:>10} rows/s   ratio {:.2} (target >= 0.60)",
        n(f.append_batch_events_per_s),
        n(f.baseline_batch_events_per_s),
        f.append_batch_ratio
    );
    println!(
        "  replay of log_stats over {} events: {} events/s (target >= 100,000)",
        n(f.replay_events as f64),
        n(f.replay_events_per_s)
    );
}

/// A listing as the scraper would observe it, the `n`th of a catalogue.
fn bench_listing(n: usize, repriced: bool) -> domain::cars::Listing {
    use domain::cars::{CarDetails, Listing, ListingId, Prices};
    const MAKES: [(&str, &str); 5] = [
        ("トヨタ", "プリウス"),
        ("ホンダ", "フィット"),
        ("マツダ", "CX-5"),
        ("日産", "ノート"),
        ("スバル", "レヴォーグ"),
    ];
    let (make, model) = MAKES[n % MAKES.len()];
    let total = 1_000_000 + (n as i64 % 400) * 10_000 - if repriced { 50_000 } else { 0 };
    Listing {
        id: ListingId::parse(&format!("AU{:010}", 6_000_000_000 + n)).expect("a valid listing id"),
        prices: Prices {
            body_yen: Some(total - 110_000),
            total_yen: Some(total),
        },
        details: CarDetails {
            make: Some(make.to_owned()),
            model: Some(model.to_owned()),
            grade: Some("2.0 Z".to_owned()),
            year: Some(2010 + (n % 15) as i32),
            mileage_km: Some((n as i64 * 37) % 150_000),
            inspection: Some("2026(R08)年07月".to_owned()),
            repair_history: Some(n.is_multiple_of(11)),
            warranty: Some("保証付".to_owned()),
            maintenance: Some("法定整備付".to_owned()),
            displacement_cc: Some(2000),
            transmission: Some("フロアCVT".to_owned()),
            body_type: Some("ハッチバック".to_owned()),
            color: Some("灰".to_owned()),
            prefecture: Some("兵庫県".to_owned()),
            city: Some("神戸市長田区".to_owned()),
            shop_name: Some("リバティ ドリーム長田店".to_owned()),
            shop_url: Some("https://www.carsensor.net/shop/hyogo/081189064/".to_owned()),
            photo_url: Some(format!(
                "https://ccsrpcma.carsensor.net/CSphoto/bkkn/{n}_001L.JPG"
            )),
            detail_url: Some(format!(
                "https://www.carsensor.net/usedcar/detail/AU{:010}/index.html",
                6_000_000_000 + n
            )),
        },
    }
}

/// The baseline: what a CRUD scraper would do per listing, one autocommit upsert that writes only when
/// something differs.
async fn plain_upsert(pool: &PgPool, listing: &domain::cars::Listing) -> anyhow::Result<()> {
    sqlx::query(
        "insert into bench_cars (listing_id, body_yen, total_yen, details, updated_at)
         values ($1, $2, $3, $4, now())
         on conflict (listing_id) do update
            set body_yen = excluded.body_yen, total_yen = excluded.total_yen, details = excluded.details,
                updated_at = excluded.updated_at
          where (bench_cars.body_yen, bench_cars.total_yen, bench_cars.details)
                is distinct from (excluded.body_yen, excluded.total_yen, excluded.details)",
    )
    .bind(listing.id.as_str())
    .bind(listing.prices.body_yen)
    .bind(listing.prices.total_yen)
    .bind(sqlx::types::Json(&listing.details))
    .execute(pool)
    .await?;
    Ok(())
}

/// Upserts `listings` into the plain table, `concurrency` at a time; returns the wall time.
async fn plain_upserts(
    pool: &PgPool,
    listings: &[domain::cars::Listing],
    concurrency: usize,
) -> anyhow::Result<Duration> {
    use futures_util::StreamExt;
    let started = Instant::now();
    let mut in_flight = futures_util::stream::FuturesUnordered::new();
    for listing in listings {
        if in_flight.len() >= concurrency
            && let Some(done) = in_flight.next().await
        {
            done?;
        }
        in_flight.push(plain_upsert(pool, listing));
    }
    while let Some(done) = in_flight.next().await {
        done?;
    }
    Ok(started.elapsed())
}

/// Observes `listings` through the `Car` decider, as the scraper does; returns the wall time and how many
/// changed.
async fn observed(
    executor: &commands::CommandExecutor,
    listings: Vec<domain::cars::Listing>,
    concurrency: usize,
) -> anyhow::Result<(Duration, usize)> {
    use workers::carsensor::Observed;
    let run = Uuid::now_v7();
    let at = domain::Timestamp::from(chrono::Utc::now());
    let started = Instant::now();
    let cars = commands::cars::Cars::new(executor.clone());
    let outcomes = cars.observe_all(run, listings, at, concurrency).await;
    let took = started.elapsed();
    let mut changed = 0;
    for outcome in outcomes {
        if outcome? != Observed::Unchanged {
            changed += 1;
        }
    }
    Ok((took, changed))
}

/// 10,000 listings already known, observed again with 1 % repriced: listings/s through one command each,
/// against the plain-table upsert of the same rows. The two sides alternate over halves of the catalogue.
async fn measure_upserts(
    pool: &PgPool,
    writers: usize,
    count: usize,
) -> anyhow::Result<UpsertFigures> {
    sqlx::raw_sql(
        "create table bench_cars (listing_id text primary key, body_yen bigint, total_yen bigint,
                                  details jsonb not null, updated_at timestamptz not null)",
    )
    .execute(pool)
    .await?;
    let executor = commands::CommandExecutor::new(EventLog::new(pool.clone()));
    let first: Vec<_> = (0..count).map(|n| bench_listing(n, false)).collect();
    // the catalogue as the previous run left it
    let (_, listed) = observed(&executor, first.clone(), writers).await?;
    anyhow::ensure!(listed == count, "listed {listed} of {count} listings");
    plain_upserts(pool, &first, writers).await?;
    sqlx::raw_sql("vacuum analyze").execute(pool).await?;

    let again: Vec<_> = (0..count)
        .map(|n| bench_listing(n, n.is_multiple_of(100)))
        .collect();
    let half = count / 2;
    let (mut baseline_took, mut measured_took, mut changed) = (Duration::ZERO, Duration::ZERO, 0);
    for part in [&again[..half], &again[half..]] {
        baseline_took += plain_upserts(pool, part, writers).await?;
        let (took, part_changed) = observed(&executor, part.to_vec(), writers).await?;
        measured_took += took;
        changed += part_changed;
    }
    let expected = (0..count).filter(|n| n.is_multiple_of(100)).count();
    anyhow::ensure!(
        changed == expected,
        "{changed} listings changed where {expected} were repriced"
    );
    let per_s = |took: Duration| count as f64 / took.as_secs_f64();
    Ok(UpsertFigures {
        upsert_listings: count,
        upsert_changed: changed,
        upsert_listings_per_s: per_s(measured_took),
        baseline_upsert_per_s: per_s(baseline_took),
        upsert_ratio: per_s(measured_took) / per_s(baseline_took),
    })
}
