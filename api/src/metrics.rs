//! `GET /metrics` in the Prometheus text format: HTTP requests and latencies, commands by outcome and appended
//! events (counted by `commands`), and each projection's lag, measured when scraped.
//!
//! The `metrics` facade has one global recorder per process; it is installed once and shared by every router
//! built in the process (tests build many).

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::AppState;

pub const HTTP_REQUESTS_TOTAL: &str = "academy_http_requests_total";
pub const HTTP_REQUEST_DURATION: &str = "academy_http_request_duration_seconds";
pub const PROJECTION_LAG_SECONDS: &str = "academy_projection_lag_seconds";
pub const PROJECTION_LAG_EVENTS: &str = "academy_projection_lag_positions";
pub const PROJECTION_CHECKPOINT: &str = "academy_projection_checkpoint_position";
pub const PROJECTION_EVENTS_APPLIED: &str = "academy_projection_events_applied";
pub const PROJECTION_UP: &str = "academy_projection_running";
pub const LOG_HEAD: &str = "academy_log_head_position";

/// The process's Prometheus recorder (installed on first use).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(HTTP_REQUEST_DURATION.to_owned()),
                    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
                )
                .expect("bucket list is not empty");
            match builder.install_recorder() {
                Ok(handle) => handle,
                // another recorder is installed (an embedding application's): render ours, unregistered
                Err(error) => {
                    tracing::warn!(%error, "a metrics recorder is already installed; /metrics shows only gauges");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            }
        })
        .clone()
}

/// Counts and times every request by method, route template (never the raw path) and status.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS_TOTAL, "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_REQUEST_DURATION, "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`.
pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let now = chrono::Utc::now();
    let head = match state.services.projections.head().await {
        Ok(head) => Some(head),
        Err(error) => {
            tracing::warn!(%error, "metrics: cannot read the log's last position");
            None
        }
    };
    if let Some(head) = head {
        metrics::gauge!(LOG_HEAD).set(head as f64);
    }
    for (name, progress) in state.services.projections.progress() {
        let lag = progress
            .lag(now)
            .map_or(f64::NAN, |lag| lag.as_seconds_f64());
        metrics::gauge!(PROJECTION_LAG_SECONDS, "projection" => name).set(lag);
        // a checkpoint at the horizon carries no position of its own: it stands for "everything so far"
        let checkpoint = match head {
            Some(head) => progress.checkpoint.position.min(head),
            None => progress.checkpoint.position,
        };
        metrics::gauge!(PROJECTION_CHECKPOINT, "projection" => name).set(checkpoint as f64);
        metrics::gauge!(PROJECTION_EVENTS_APPLIED, "projection" => name)
            .set(progress.events_applied as f64);
        metrics::gauge!(PROJECTION_UP, "projection" => name).set(f64::from(u8::from(
            progress.status == projections::Status::Running,
        )));
        if let Some(head) = head {
            let behind = if progress.caught_up {
                0
            } else {
                (head - checkpoint).max(0)
            };
            metrics::gauge!(PROJECTION_LAG_EVENTS, "projection" => name).set(behind as f64);
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
