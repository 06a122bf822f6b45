//! The scraper against a local fake carsensor.net serving the real fixture pages and variations, with a real
//! PostgreSQL, the real command executor and the `cars` read model running.

mod deadlines;
mod fake;
mod parse;
mod scraper;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use commands::CommandExecutor;
use eventlog::EventLog;
use migrations::testing::TestDb;
use projections::{Checkpoint, Projections, RunnerConfig};
use reqwest::Url;
use tokio::sync::watch;
use workers::carsensor::fetch::FetchConfig;
use workers::carsensor::{RunReport, Scraper, ScraperConfig};
use workers::{ManualClock, ManualSleeper};

/// A fixture of `workers/tests/fixtures/carsensor/` (its README lists the values the pages hold).
pub fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/carsensor")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

pub fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-01T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// A database, the `cars` read model running on it, and a scraper pointed at `site` on a manual clock.
pub struct World {
    pub db: TestDb,
    pub log: EventLog,
    pub projections: Arc<Projections>,
    pub clock: Arc<ManualClock>,
    pub sleeper: Arc<ManualSleeper>,
    pub scraper: Scraper,
    _stop: watch::Sender<bool>,
}

pub fn scraper_config(site: &Url) -> ScraperConfig {
    let mut config = ScraperConfig::new(site.clone());
    config.page_limit = 10;
    config.delist_after_runs = 2;
    config.concurrency = 4;
    config.read_model_timeout = Duration::from_secs(20);
    config.fetch = FetchConfig {
        user_agent: "AcademyCarsBot/0.1 (tests)".to_owned(),
        timeout: Duration::from_millis(300),
        min_delay: Duration::from_secs(1),
        retries: 2,
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        max_retry_after: Duration::from_secs(60),
        max_body_bytes: 1024 * 1024,
    };
    config
}

impl World {
    pub async fn new(config: ScraperConfig) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let db = TestDb::new().await;
        let log = EventLog::new(db.pool.clone());
        let projections = Arc::new(
            Projections::new(
                log.clone(),
                vec![Arc::new(projections::cars::Cars)],
                RunnerConfig {
                    poll: Duration::from_millis(50),
                    ..RunnerConfig::default()
                },
            )
            .unwrap(),
        );
        let (stop, stopping) = watch::channel(false);
        let running = projections.clone();
        tokio::spawn(async move { running.run(stopping).await });
        let clock = Arc::new(ManualClock::new(start_time()));
        let sleeper = Arc::new(ManualSleeper::new(clock.clone()));
        let scraper = Scraper::new(
            config,
            commands::cars::Cars::new(CommandExecutor::new(log.clone())),
            projections.clone(),
            db.pool.clone(),
            clock.clone(),
            sleeper.clone(),
        );
        Self {
            db,
            log,
            projections,
            clock,
            sleeper,
            scraper,
            _stop: stop,
        }
    }

    /// One scraper run, then waits until the read model has taken it in.
    pub async fn run(&self) -> RunReport {
        let (_keep, never) = watch::channel(false);
        let report = self
            .scraper
            .run_once(never)
            .await
            .expect("the run does not fail")
            .expect("no other run holds the lock");
        self.projections
            .wait_for(report.position.unwrap(), Duration::from_secs(20))
            .await
            .unwrap();
        report
    }

    /// Every event of `types`, in log order: (stream id, type, data).
    pub async fn events(&self, types: &[&str]) -> Vec<(String, String, serde_json::Value)> {
        let types: Vec<String> = types.iter().map(|t| (*t).to_owned()).collect();
        let batch = self
            .log
            .read_all(Checkpoint::START, 100_000, Some(&types))
            .await
            .unwrap();
        batch
            .events
            .into_iter()
            .map(|e| (e.stream_id, e.event_type, e.data))
            .collect()
    }
}
