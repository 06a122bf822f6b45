//! `academy serve`: the database, the projections, the HTTP API and the scheduled carsensor scraper in one
//! process, until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use api::Services;
use api::auth::Tokens;
use commands::identity::Identity;
use commands::{Actor, App, Clock, CommandExecutor, Request, Source, SystemClock};
use eventlog::EventLog;
use projections::{Projections, RunnerConfig};
use tokio::sync::watch;
use workers::TokioSleeper;
use workers::carsensor::Scraper;
use workers::deadlines::DeadlineWorker;

use crate::config::Config;
use crate::database::Database;

/// Runs the server until a shutdown signal; then drains HTTP requests, stops the projections, closes the pool
/// and stops the embedded PostgreSQL (when this process started it).
pub async fn serve(config: &Config) -> anyhow::Result<()> {
    let (stop, stopping) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    });
    run(config, stopping).await
}

/// The server until `stopping` turns true. Split from [`serve`] so tests can stop it without signals.
pub async fn run(config: &Config, stopping: watch::Receiver<bool>) -> anyhow::Result<()> {
    let scraper_config = config.scraper()?;
    if config.carsensor_enabled {
        workers::carsensor::check_schedule(&config.carsensor_schedule)?;
    }
    let database = Database::open(config).await?;
    let log = EventLog::new(database.pool.clone());
    let runner_config = RunnerConfig {
        holder: holder(),
        ..RunnerConfig::default()
    };
    let projections = Arc::new(Projections::new(
        log.clone(),
        projections::all(),
        runner_config,
    )?);
    let secret = config.jwt_secret()?;
    let executor = CommandExecutor::new(log);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let app = App::new(executor.clone(), database.pool.clone(), config.app()?)
        .context("setting up the services")?;
    bootstrap_admin(config, &app.identity).await?;
    let tokens = Arc::new(Tokens::new(app.identity.clone(), config.auth(secret)?));
    let services = Arc::new(Services {
        pool: database.pool.clone(),
        projections: projections.clone(),
        tokens,
        app: app.clone(),
        read_timeout: Duration::from_millis(config.read_timeout_ms),
        clock: clock.clone(),
    });
    // the scraper stops with HTTP (a run in progress ends after its current page, recorded as incomplete)
    let scraper = config.carsensor_enabled.then(|| {
        let scraper = Arc::new(Scraper::new(
            scraper_config,
            app.cars.clone(),
            projections.clone(),
            database.pool.clone(),
            Arc::new(SystemClock),
            Arc::new(TokioSleeper),
        ));
        let schedule = config.carsensor_schedule.clone();
        let stop = stopping.clone();
        tokio::spawn(
            async move { workers::carsensor::run_scheduled(scraper, &schedule, stop).await },
        )
    });

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let address = listener.local_addr()?;
    let router = api::router(api::AppState::new(services, config.http()));
    // tests and scripts read this line to find the address
    println!("academy listening on http://{address}");
    tracing::info!(%address, "ready");

    // shutting down drains HTTP first, while the projections still run (a request in flight may be waiting for
    // them to reach its minPosition); the rest stops once HTTP is done, or when the HTTP server ends on its own
    let stop_rest = Arc::new(watch::Sender::new(false));
    let mut housekeeping_stopping = stop_rest.subscribe();
    let housekeeping = app.identity.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = every.tick() => housekeeping.forget_idle_throttles(),
                _ = housekeeping_stopping.wait_for(|stop| *stop) => break,
            }
        }
    });
    let deadlines = (config.deadline_interval_seconds > 0).then(|| {
        let worker = Arc::new(DeadlineWorker::new(&app, database.pool.clone(), clock));
        let every = Duration::from_secs(config.deadline_interval_seconds);
        let stopping = stop_rest.subscribe();
        tokio::spawn(async move {
            // reported when it happens: the server keeps serving without the worker
            if let Err(error) = worker.run_scheduled(every, stopping).await {
                tracing::error!(error = format!("{error:#}"), "the deadline worker stopped");
            }
        })
    });
    let mut http_stopping = stopping;
    let http = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = http_stopping.wait_for(|stop| *stop).await;
    });
    let (http, ()) = tokio::join!(
        async {
            let result = http.await;
            let _ = stop_rest.send(true);
            result
        },
        projections.run(stop_rest.subscribe())
    );
    let scraped = match scraper {
        Some(task) => task.await.context("the scraper task")?,
        None => Ok(()),
    };
    if let Some(deadlines) = deadlines
        && let Err(error) = deadlines.await
    {
        tracing::error!(%error, "the deadline worker panicked");
    }
    drop(projections);
    database.close().await;
    http.context("HTTP server")?;
    scraped.context("the carsensor scraper")
}

/// ACADEMY_ADMIN_EMAIL + ACADEMY_ADMIN_PASSWORD: the first admin, made sure of at every start-up.
pub(crate) async fn bootstrap_admin(config: &Config, identity: &Identity) -> anyhow::Result<()> {
    let (email, password) = match (&config.admin_email, &config.admin_password) {
        (None, None) => return Ok(()),
        (Some(email), Some(password)) => (email, password),
        _ => bail!("set both ACADEMY_ADMIN_EMAIL and ACADEMY_ADMIN_PASSWORD, or neither"),
    };
    let request = Request::new(
        Actor::System { name: "bootstrap" },
        Source::Cli,
        chrono::Utc::now(),
    );
    let (id, created) = identity
        .ensure_admin(&request, email, &config.admin_username, password)
        .await
        .map_err(|e| anyhow::anyhow!("ACADEMY_ADMIN_EMAIL: {e}"))?;
    if created {
        tracing::info!(%id, "created the admin account from ACADEMY_ADMIN_EMAIL");
    }
    Ok(())
}

fn holder() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}:{}", host.trim(), std::process::id())
}

/// SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
