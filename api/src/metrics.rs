//! `GET /metrics` in the Prometheus text format: HTTP requests and latencies, commands by outcome and appended
//! events (counted by `commands`), and each projection's lag, measured when scraped.
//!
//! The `metrics` facade has one global recorder per process; it is installed once and shared by every router
//! built in the process (tests build many).
//!
//! Every documented series exists from the start: [`handle`] registers this crate's and `commands`' series when
//! it installs the recorder (the server registers the workers' right after). A counter with a finite label set is
//! registered at zero for each of its label sets; a series whose labels are open-ended (the HTTP series, by route
//! and status; `academy_commands_total` and `academy_events_appended_total`, by command) is only described, and
//! `/metrics` shows a described series without samples as its `# HELP` and `# TYPE` lines, with no sample line,
//! until the first sample (a zero for a label set nothing has used would be made up).

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::AppState;

pub const HTTP_REQUESTS_TOTAL: &str = "academy_http_requests_total";
pub const HTTP_REQUEST_DURATION: &str = "academy_http_request_duration_seconds";
pub const PROJECTION_LAG_SECONDS: &str = "academy_projection_lag_seconds";
pub const PROJECTION_LAG_EVENTS: &str = "academy_projection_lag_positions";
pub const PROJECTION_CHECKPOINT: &str = "academy_projection_checkpoint_position";
pub const PROJECTION_EVENTS_APPLIED: &str = "academy_projection_events_applied";
pub const PROJECTION_UP: &str = "academy_projection_running";
pub const LOG_HEAD: &str = "academy_log_head_position";
pub const LOG_HELD_BACK_EVENTS: &str = "academy_log_held_back_events";
pub const LOG_HELD_BACK_SECONDS: &str = "academy_log_held_back_seconds";
pub const DATABASE_RESTARTS_TOTAL: &str = "academy_database_restarts_total";

/// The process's Prometheus recorder (installed on first use, with this crate's and `commands`' series
/// registered).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(HTTP_REQUEST_DURATION.to_owned()),
                    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
                )
                .expect("bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(Describing(recorder)) {
                Ok(()) => {
                    register();
                    commands::register_metrics();
                    handle
                }
                // another recorder is installed (an embedding application's): render ours, unregistered
                Err(error) => {
                    tracing::warn!(%error, "a metrics recorder is already installed; /metrics shows only gauges");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            }
        })
        .clone()
}

/// Describes this crate's series. The gauges are set at each scrape; the HTTP series have open-ended labels.
fn register() {
    metrics::describe_counter!(
        HTTP_REQUESTS_TOTAL,
        "HTTP requests answered, by method, route template and status"
    );
    metrics::describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "time to answer an HTTP request, by method and route template"
    );
    metrics::describe_gauge!(
        PROJECTION_LAG_SECONDS,
        Unit::Seconds,
        "age of the newest event a projection has not applied (0 when caught up)"
    );
    metrics::describe_gauge!(
        PROJECTION_LAG_EVENTS,
        "log positions a projection is behind the log's last position"
    );
    metrics::describe_gauge!(
        PROJECTION_CHECKPOINT,
        "the log position a projection has applied up to"
    );
    metrics::describe_gauge!(
        PROJECTION_EVENTS_APPLIED,
        "events a projection has applied since the process started"
    );
    metrics::describe_gauge!(PROJECTION_UP, "1 while a projection is running");
    metrics::describe_gauge!(LOG_HEAD, "the event log's last position");
    metrics::describe_gauge!(
        LOG_HELD_BACK_EVENTS,
        "committed events an open transaction holds back from every projection"
    );
    metrics::describe_gauge!(
        LOG_HELD_BACK_SECONDS,
        Unit::Seconds,
        "how long committed events have been held back from every projection (0: none)"
    );
    metrics::describe_counter!(
        DATABASE_RESTARTS_TOTAL,
        "times the embedded PostgreSQL was restarted after it died"
    );
    metrics::counter!(DATABASE_RESTARTS_TOTAL).increment(0);
}

/// Counts a restart of the embedded PostgreSQL.
pub fn count_database_restart() {
    metrics::counter!(DATABASE_RESTARTS_TOTAL).increment(1);
}

/// The Prometheus type of every described series, to show a described series that has no sample yet.
static DESCRIBED: Mutex<BTreeMap<String, (&'static str, String)>> = Mutex::new(BTreeMap::new());

/// The Prometheus recorder, noting what is described.
struct Describing(PrometheusRecorder);

impl Describing {
    fn note(key: &KeyName, kind: &'static str, description: &SharedString) {
        DESCRIBED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.as_str().to_owned(), (kind, description.to_string()));
    }
}

impl Recorder for Describing {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        Self::note(&key, "counter", &description);
        self.0.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        Self::note(&key, "gauge", &description);
        self.0.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        // the exporter renders a histogram with buckets as a histogram, any other as a summary
        let kind = if key.as_str() == HTTP_REQUEST_DURATION {
            "histogram"
        } else {
            "summary"
        };
        Self::note(&key, kind, &description);
        self.0.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.0.register_counter(key, metadata)
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.0.register_gauge(key, metadata)
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.0.register_histogram(key, metadata)
    }
}

/// The exporter's text, plus `# HELP` and `# TYPE` of each described series that has no sample yet.
fn render_all(handle: &PrometheusHandle) -> String {
    let mut text = handle.render();
    let described = DESCRIBED.lock().unwrap_or_else(PoisonError::into_inner);
    for (name, (kind, help)) in described.iter() {
        if !text.contains(&format!("# TYPE {name} ")) {
            let help = help.replace('\\', "\\\\").replace('\n', "\\n");
            text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n\n"));
        }
    }
    text
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
    let hold = match state.services.projections.hold().await {
        Ok(hold) => hold,
        Err(error) => {
            tracing::warn!(%error, "metrics: cannot look for held-back events");
            None
        }
    };
    let held_seconds = hold.as_ref().map_or(0.0, |h| h.age(now).as_seconds_f64());
    metrics::gauge!(LOG_HELD_BACK_EVENTS).set(hold.as_ref().map_or(0.0, |h| h.events as f64));
    metrics::gauge!(LOG_HELD_BACK_SECONDS).set(held_seconds);
    for (name, progress) in state.services.projections.progress() {
        // events held back are behind every projection, however caught up with the horizon it is
        let lag = progress
            .lag(now)
            .map_or(f64::NAN, |lag| lag.as_seconds_f64().max(held_seconds));
        metrics::gauge!(PROJECTION_LAG_SECONDS, "projection" => name).set(lag);
        // a checkpoint at the horizon carries no position of its own: it stands for "everything so far", which
        // ends before the first held-back event
        let mut checkpoint = match head {
            Some(head) => progress.checkpoint.position.min(head),
            None => progress.checkpoint.position,
        };
        if let Some(hold) = &hold {
            checkpoint = checkpoint.min(hold.first_position - 1);
        }
        metrics::gauge!(PROJECTION_CHECKPOINT, "projection" => name).set(checkpoint as f64);
        metrics::gauge!(PROJECTION_EVENTS_APPLIED, "projection" => name)
            .set(progress.events_applied as f64);
        metrics::gauge!(PROJECTION_UP, "projection" => name).set(f64::from(u8::from(
            progress.status == projections::Status::Running,
        )));
        if let Some(head) = head {
            let behind = if progress.caught_up && hold.is_none() {
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
        render_all(&state.metrics),
    )
}
