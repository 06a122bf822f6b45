//! `academy serve`: the database, the projections and the HTTP API in one process, until SIGINT/SIGTERM.

use std::sync::Arc;

use anyhow::Context;
use eventlog::EventLog;
use projections::{Projections, RunnerConfig};
use tokio::sync::watch;

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
    let database = Database::open(config).await?;
    let log = EventLog::new(database.pool.clone());
    let runner_config = RunnerConfig {
        holder: holder(),
        ..RunnerConfig::default()
    };
    let projections = Arc::new(Projections::new(
        log,
        crate::all_projections(),
        runner_config,
    )?);

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let address = listener.local_addr()?;
    let app = api::router(api::AppState {
        pool: database.pool.clone(),
        projections: projections.clone(),
    });
    // tests and scripts read this line to find the address
    println!("academy listening on http://{address}");
    tracing::info!(%address, "ready");

    // one stop signal for everything: the caller's, or the HTTP server ending on its own
    let stop_all = Arc::new(watch::Sender::new(false));
    let forward = stop_all.clone();
    let mut outer = stopping;
    tokio::spawn(async move {
        let _ = outer.wait_for(|stop| *stop).await;
        let _ = forward.send(true);
    });
    let mut http_stopping = stop_all.subscribe();
    let http = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = http_stopping.wait_for(|stop| *stop).await;
    });
    let (http, ()) = tokio::join!(
        async {
            let result = http.await;
            let _ = stop_all.send(true);
            result
        },
        projections.run(stop_all.subscribe())
    );
    drop(projections);
    database.close().await;
    http.context("HTTP server")?;
    Ok(())
}

fn holder() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}:{}", host.trim(), std::process::id())
}

async fn shutdown_signal() {
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
