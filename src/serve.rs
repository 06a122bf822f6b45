//! `academy serve`: the database, the projections, the HTTP API and the scheduled carsensor scraper in one
//! process, until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use api::Services;
use commands::identity::Identity;
use commands::{Actor, App, Clock, CommandExecutor, Request, Source, SystemClock};
use eventlog::EventLog;
use projections::{Projections, RunnerConfig};
use tokio::sync::watch;
use tokio::task::JoinSet;
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
    // the recorder first, so what start-up does is counted, and every series is there from the start
    api::metrics::handle();
    workers::register_metrics();
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
    let app = App::new(executor, database.pool.clone(), config.app()?)
        .context("setting up the services")?;
    bootstrap_admin(config, &app.identity).await?;
    let services = Arc::new(Services::new(
        database.pool.clone(),
        projections.clone(),
        app.clone(),
        config.auth(secret)?,
        Duration::from_millis(config.read_timeout_ms),
        clock.clone(),
    ));
    let state = api::AppState::new(services, config.http()).stopping(stopping.clone());
    let health = state.tasks.clone();

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let address = listener.local_addr()?;
    // tests and scripts read this line to find the address
    println!("academy listening on http://{address}");
    tracing::info!(%address, "ready");

    // shutting down drains HTTP first, while the projections still run (a request in flight may be waiting for
    // them to reach its minPosition); the rest stops once HTTP is done, or when the HTTP server ends on its own
    let stop_rest = watch::Sender::new(false);
    let mut tasks = JoinSet::new();
    tasks.spawn(named(
        "HTTP server",
        http(listener, api::router(state), stopping.clone()),
    ));
    let running = projections.clone();
    let rest = stop_rest.subscribe();
    tasks.spawn(named("projections", async move {
        running.run(rest).await;
        Ok(())
    }));
    let identity = app.identity.clone();
    tasks.spawn(named(
        "housekeeping",
        housekeeping(identity, stop_rest.subscribe()),
    ));
    // token checks use the account cache only while this follows the accounts' events
    let identity = app.identity.clone();
    let rest = stop_rest.subscribe();
    tasks.spawn(named("account cache", async move {
        identity.follow_accounts(rest).await;
        Ok(())
    }));
    if config.deadline_interval_seconds > 0 {
        let worker = Arc::new(DeadlineWorker::new(&app, database.pool.clone(), clock));
        let every = Duration::from_secs(config.deadline_interval_seconds);
        tasks.spawn(named(
            "deadline worker",
            worker.run_scheduled(every, stop_rest.subscribe()),
        ));
    }
    if config.carsensor_enabled {
        let scraper = Arc::new(Scraper::new(
            scraper_config,
            app.cars.clone(),
            projections.clone(),
            database.pool.clone(),
            Arc::new(SystemClock),
            Arc::new(TokioSleeper),
        ));
        let schedule = config.carsensor_schedule.clone();
        // the scraper stops with HTTP (a run in progress ends after its current page, recorded as incomplete)
        let stop = stopping.clone();
        tasks.spawn(named("carsensor scraper", async move {
            workers::carsensor::run_scheduled(scraper, &schedule, stop).await
        }));
    }
    if let Some(supervisor) =
        database.supervisor(health.clone(), stopping.clone(), stop_rest.subscribe())
    {
        tasks.spawn(named("database supervisor", supervisor));
    }
    let failed = supervise(tasks, &stopping, &stop_rest, &health).await;
    drop(projections);
    database.close().await;
    failed.map_or(Ok(()), Err)
}

/// A long-running part of the server, named for reports.
async fn named(
    name: &'static str,
    task: impl Future<Output = anyhow::Result<()>>,
) -> (&'static str, anyhow::Result<()>) {
    (name, task.await)
}

/// Waits for every task. The HTTP server ending (drained at shutdown, or failed) stops the rest; a task that
/// ends before shutdown began is reported at once and fails readiness. Returns the first failure.
///
/// When the database is gone at shutdown (its supervisor marked it down), the tasks get [`SHUTDOWN_GRACE`] and
/// are then ended: requests and projections waiting for a connection would otherwise hold the exit for the
/// pool's timeout.
async fn supervise(
    mut tasks: JoinSet<(&'static str, anyhow::Result<()>)>,
    stopping: &watch::Receiver<bool>,
    stop_rest: &watch::Sender<bool>,
    health: &api::Tasks,
) -> Option<anyhow::Error> {
    let mut first_failure = None;
    let mut give_up = std::pin::pin!(database_gone_at_shutdown(stopping.clone(), health));
    let mut gave_up = false;
    loop {
        let joined = tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(joined) => joined,
                None => break,
            },
            () = &mut give_up, if !gave_up => {
                tracing::warn!("the database is gone: ending the tasks that wait for it");
                let _ = stop_rest.send(true);
                tasks.abort_all();
                gave_up = true;
                continue;
            }
        };
        let (name, result) = match joined {
            Ok(done) => done,
            Err(error) if error.is_cancelled() => continue,
            Err(panic) => ("a task", Err(anyhow::anyhow!("{panic}"))),
        };
        let early = !*stopping.borrow() && !*stop_rest.borrow();
        if name == "HTTP server" {
            let _ = stop_rest.send(true);
        } else if early {
            let why = match &result {
                Ok(()) => "stopped".to_owned(),
                Err(error) => format!("{error:#}"),
            };
            tracing::error!(
                task = name,
                error = why,
                "a task stopped while the server runs"
            );
            health.stopped(name, why);
        }
        if let Err(error) = result {
            first_failure.get_or_insert(error.context(name));
        }
    }
    first_failure
}

/// How long the tasks may take to stop once shutdown began while the database is gone.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Ends [`SHUTDOWN_GRACE`] after shutdown began while the database is marked down; never otherwise.
async fn database_gone_at_shutdown(mut stopping: watch::Receiver<bool>, health: &api::Tasks) {
    if stopping.wait_for(|stop| *stop).await.is_err() {
        return std::future::pending().await;
    }
    while health.database_down().is_none() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(SHUTDOWN_GRACE).await;
}

/// The HTTP server until `stopping` turns true, then until the requests in flight are answered.
async fn http(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    mut stopping: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    })
    .await?;
    Ok(())
}

/// Forgets idle login throttles every minute until `stopping` turns true.
async fn housekeeping(
    identity: Identity,
    mut stopping: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = every.tick() => identity.forget_idle_throttles(),
            _ = stopping.wait_for(|stop| *stop) => return Ok(()),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_ending_before_shutdown_is_reported_and_the_http_server_ending_stops_the_rest() {
        let (stop, stopping) = watch::channel(false);
        let stop_rest = watch::Sender::new(false);
        let health = Arc::new(api::Tasks::default());
        let mut tasks = JoinSet::new();
        tasks.spawn(named("deadline worker", async {
            Err(anyhow::anyhow!("the scheduler failed"))
        }));
        let mut rest = stop_rest.subscribe();
        tasks.spawn(named("projections", async move {
            let _ = rest.wait_for(|stop| *stop).await;
            Ok(())
        }));
        let mut http_stopping = stopping.clone();
        tasks.spawn(named("HTTP server", async move {
            let _ = http_stopping.wait_for(|stop| *stop).await;
            Ok(())
        }));
        let supervised = tokio::spawn(async move {
            let failed = supervise(tasks, &stopping, &stop_rest, &health).await;
            (failed, health.list())
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.send(true).unwrap();
        let (failed, stopped) = tokio::time::timeout(Duration::from_secs(5), supervised)
            .await
            .expect("the HTTP server's end stops the projections")
            .unwrap();
        assert_eq!(stopped.len(), 1, "{stopped:?}");
        assert_eq!(stopped[0].name, "deadline worker");
        assert_eq!(stopped[0].error, "the scheduler failed");
        let failed = failed.expect("the worker's failure is returned");
        assert_eq!(
            format!("{failed:#}"),
            "deadline worker: the scheduler failed"
        );
    }
}
