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

use anyhow::Context;
use clap::Args;
use migrations::cluster::Cluster;
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::config::Config;

mod appends;
mod read;
mod rebuild;
mod ryw;
mod scrape;
mod snapshots;
mod upserts;

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
    /// Only the scraper end to end against a local fake carsensor.net, beside the upsert path (`bench::scrape`).
    #[arg(long)]
    pub scrape: bool,
    /// Listings the fake site serves to `--scrape`.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(100..))]
    pub scrape_listings: u32,
    /// The recorded carsensor.net list page `--scrape` generates its pages from (default: the copy in this
    /// checkout's test fixtures).
    #[arg(long, default_value = scrape::RECORDED_LIST_PAGE)]
    pub scrape_page: std::path::PathBuf,
    /// Only the listing-upsert benchmark.
    #[arg(long)]
    pub upserts_only: bool,
    /// Only the append benchmark (and the replay after it).
    #[arg(long, conflicts_with = "upserts_only")]
    pub appends_only: bool,
    /// Only read-your-writes: answers at `--ryw-rate` per second for `--ryw-seconds`, each waiting for its own
    /// read (`bench::ryw`).
    #[arg(long)]
    pub ryw: bool,
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub ryw_rate: u32,
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=600))]
    pub ryw_seconds: u32,
    /// Only snapshots: commands on a track of `--snapshot-events` events, with snapshots and without.
    #[arg(long)]
    pub snapshots: bool,
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(10..))]
    pub snapshot_events: u32,
    /// Only the cost of each index of `events`: single-row inserts with every index, without each, and with none.
    #[arg(long)]
    pub indexes: bool,
    /// Group commit: transactions in flight at once (`eventlog::GroupCommit`).
    #[arg(long, default_value_t = eventlog::GroupCommit::default().committers)]
    pub committers: usize,
    /// Group commit: appends in one transaction at most.
    #[arg(long, default_value_t = eventlog::GroupCommit::default().max_batch)]
    pub max_batch: usize,
    /// Only the rebuild benchmark of this projection (`all`: each in turn), each over `--replay-events` events
    /// of its own (`bench::rebuild`).
    #[arg(long, value_name = "NAME")]
    pub rebuild: Option<String>,
    /// Listings in `--rebuild cars`'s catalogue (default: a tenth of `--replay-events`, so the log holds many
    /// runs; `--replay-events 103336 --rebuild-cars 100000` is one run over 100,000 listings).
    #[arg(long)]
    pub rebuild_cars: Option<usize>,
    /// Events per read and transaction of `--rebuild`'s builds.
    #[arg(long, default_value_t = projections::RunnerConfig::default().build_batch_size)]
    pub rebuild_batch: i64,
    /// Only the read path: the signed-in `cars` query through the real server beside the same SQL's ceiling
    /// (`bench::read`).
    #[arg(long)]
    pub read: bool,
    /// Cars in the read model for `--read`.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1000..))]
    pub read_cars: u32,
    /// Concurrent HTTP connections (and database connections for the ceiling) of `--read`.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub read_connections: u16,
    /// Seconds of load of `--read`, for the server and for the ceiling each.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..))]
    pub read_seconds: u32,
    /// Keep the scratch database (`academy_bench_<database>_<pid>`, printed) afterwards (with DATABASE_URL),
    /// e.g. to load a peer against the very same tables.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Serialize)]
pub struct Figures {
    pub writers: usize,
    pub server_version: String,
    #[serde(flatten)]
    pub upserts: Option<upserts::UpsertFigures>,
    #[serde(flatten)]
    pub scrape: Option<scrape::ScrapeFigures>,
    #[serde(flatten)]
    pub appends: Option<appends::AppendFigures>,
    #[serde(flatten)]
    pub rebuild: Option<rebuild::RebuildFigures>,
    #[serde(flatten)]
    pub read: Option<read::ReadFigures>,
    #[serde(flatten)]
    pub ryw: Option<ryw::RywFigures>,
    #[serde(flatten)]
    pub indexes: Option<appends::IndexFigures>,
    #[serde(flatten)]
    pub snapshots: Option<snapshots::SnapshotFigures>,
}

/// The scratch database of this run, beside `database` (runs on one server at once each have their own):
/// `academy_bench_<database>_<process id>`, with only letters, digits and `_` from the database's name.
fn scratch_db(database: &str) -> String {
    let database: String = database
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(30)
        .collect::<String>()
        .to_lowercase();
    format!("academy_bench_{database}_{}", std::process::id())
}

pub async fn run(config: &Config, args: BenchArgs) -> anyhow::Result<()> {
    let place = Place::open(config).await?;
    let result = measure_all(&place.options, &args).await;
    place.close(args.keep).await;
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
        let scratch = scratch_db(admin.get_database().unwrap_or("postgres"));
        for sql in [
            format!("drop database if exists {scratch} with (force)"),
            format!("create database {scratch}"),
        ] {
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .with_context(|| {
                    format!("creating the scratch database {scratch} (the role needs CREATEDB)")
                })?;
        }
        conn.close().await?;
        Ok(Self {
            options: admin.clone().database(&scratch),
            admin,
            cluster,
        })
    }

    async fn close(self, keep: bool) {
        let scratch = scratch_db(self.admin.get_database().unwrap_or("postgres"));
        if keep {
            eprintln!("kept the scratch database {scratch}");
        } else if let Ok(mut conn) = PgConnection::connect_with(&self.admin).await {
            let dropped = sqlx::raw_sql(AssertSqlSafe(format!(
                "drop database if exists {scratch} with (force)"
            )))
            .execute(&mut conn)
            .await;
            if let Err(error) = dropped {
                tracing::warn!(%error, "could not drop the scratch database {scratch}");
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
    let writers = usize::from(args.writers);
    let mut figures = Figures {
        writers,
        server_version,
        upserts: None,
        scrape: None,
        appends: None,
        rebuild: None,
        read: None,
        ryw: None,
        indexes: None,
        snapshots: None,
    };
    if args.snapshots {
        let events = args.snapshot_events as usize;
        figures.snapshots = Some(snapshots::measure(&pool, events, 200).await?);
        pool.close().await;
        return Ok(figures);
    }
    if args.indexes {
        let total = args.single_commands as usize;
        figures.indexes = Some(appends::measure_indexes(&pool, writers, total).await?);
        pool.close().await;
        return Ok(figures);
    }
    if args.ryw {
        figures.ryw = Some(ryw::measure(&pool, args.ryw_rate, args.ryw_seconds).await?);
        pool.close().await;
        return Ok(figures);
    }
    if args.read {
        figures.read = Some(read::measure(&pool, options, args).await?);
        pool.close().await;
        return Ok(figures);
    }
    if let Some(name) = &args.rebuild {
        let config = projections::RunnerConfig {
            build_batch_size: args.rebuild_batch,
            ..projections::RunnerConfig::default()
        };
        figures.rebuild = Some(
            rebuild::measure(&pool, name, args.replay_events, args.rebuild_cars, config).await?,
        );
        pool.close().await;
        return Ok(figures);
    }
    if args.scrape {
        figures.scrape = Some(
            scrape::measure(
                &pool,
                writers,
                args.scrape_listings as usize,
                &args.scrape_page,
            )
            .await?,
        );
        pool.close().await;
        return Ok(figures);
    }
    // the upserts first, on a small log, as a scraper's first weeks would see it
    if !args.appends_only {
        figures.upserts = Some(upserts::measure(&pool, writers, args.listings as usize).await?);
    }
    if !args.upserts_only {
        figures.appends = Some(appends::measure(&pool, args).await?);
    }
    pool.close().await;
    Ok(figures)
}

fn print_table(figures: &Figures) {
    println!(
        "academy bench: PostgreSQL {}, {} concurrent writers",
        figures.server_version, figures.writers
    );
    if let Some(upserts) = &figures.upserts {
        upserts.print();
    }
    if let Some(scrape) = &figures.scrape {
        scrape.print();
    }
    if let Some(appends) = &figures.appends {
        appends.print();
    }
    if let Some(rebuild) = &figures.rebuild {
        rebuild.print();
    }
    if let Some(ryw) = &figures.ryw {
        ryw.print();
    }
    if let Some(indexes) = &figures.indexes {
        indexes.print();
    }
    if let Some(snapshots) = &figures.snapshots {
        snapshots.print();
    }
    if let Some(read) = &figures.read {
        read.print();
    }
}

/// `x` (not negative) rounded, with thousands separated by commas: `12,345`.
fn thousands(x: f64) -> String {
    let digits = format!("{x:.0}");
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
