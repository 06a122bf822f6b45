//! `academy scrape [--once]`: the carsensor scraper from the command line. The read models run alongside (a
//! run waits for the `cars` read model before delisting); with a server on the same database, the server keeps
//! running them and this process waits on its progress instead.

use std::sync::Arc;

use anyhow::Context;
use commands::CommandExecutor;
use commands::cars::Cars;
use eventlog::EventLog;
use projections::{Projections, RunnerConfig};
use tokio::sync::watch;
use workers::carsensor::{RunReport, Scraper};
use workers::{SystemClock, TokioSleeper};

use crate::config::Config;
use crate::database::Database;

/// One run (`once`), or runs on the configured schedule until SIGINT/SIGTERM.
pub async fn scrape(config: &Config, once: bool) -> anyhow::Result<()> {
    let scraper_config = config.scraper()?;
    if !once {
        workers::carsensor::check_schedule(&config.carsensor_schedule)?;
    }
    let database = Database::open(config).await?;
    let log = EventLog::new(database.pool.clone());
    let result = async {
        let projections = Arc::new(Projections::new(
            log.clone(),
            projections::all(),
            RunnerConfig {
                holder: format!("academy scrape (pid {})", std::process::id()),
                ..RunnerConfig::default()
            },
        )?);
        let (stop, stopping) = watch::channel(false);
        let (stop_projections, projections_stopping) = watch::channel(false);
        let running = projections.clone();
        let runner = tokio::spawn(async move { running.run(projections_stopping).await });
        tokio::spawn(async move {
            crate::serve::shutdown_signal().await;
            let _ = stop.send(true);
        });
        let scraper = Arc::new(Scraper::new(
            scraper_config,
            Cars::new(CommandExecutor::new(log.clone())),
            projections,
            database.pool.clone(),
            Arc::new(SystemClock),
            Arc::new(TokioSleeper),
        ));
        let outcome = if once {
            match scraper.run_once(stopping).await {
                Ok(Some(report)) => {
                    print_report(&report);
                    Ok(())
                }
                Ok(None) => {
                    println!("another scraper run is in progress on this database; nothing done");
                    Ok(())
                }
                Err(error) => Err(error.context("scraper run")),
            }
        } else {
            workers::carsensor::run_scheduled(scraper, &config.carsensor_schedule, stopping).await
        };
        let _ = stop_projections.send(true);
        runner.await.context("the projections task")?;
        outcome
    }
    .await;
    database.close().await;
    result
}

fn print_report(report: &RunReport) {
    let t = report.tally;
    println!(
        "run {}: {}; {} pages, {} listings seen: {} new, {} changed ({} relisted), {} delisted, {} errors",
        report.run_id,
        if report.complete {
            "complete"
        } else {
            "incomplete"
        },
        t.pages,
        t.listings_seen,
        t.new,
        t.changed,
        t.relisted,
        t.delisted,
        t.errors
    );
}
