//! Academy's HTTP surface. As features arrive, each gets a module exposing a `router()` that [`router`] merges.
//!
//! For now: the operational endpoints. `GET /healthz` says the process is up; `GET /readyz` says it can serve
//! (the database answers), with each projection's state.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use projections::Projections;
use serde::Serialize;
use sqlx::PgPool;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub projections: Arc<Projections>,
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

#[derive(Debug, Serialize)]
struct Readiness {
    ready: bool,
    database: &'static str,
    projections: Vec<ProjectionReadiness>,
}

#[derive(Debug, Serialize)]
struct ProjectionReadiness {
    name: &'static str,
    status: projections::Status,
    caught_up: bool,
    /// Age of the last applied event while catching up; 0 once caught up.
    lag_seconds: Option<f64>,
    events_applied: i64,
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query("select 1").execute(&state.pool),
    )
    .await;
    let database_ok = matches!(database, Ok(Ok(_)));
    let now = chrono::Utc::now();
    let projections = state
        .projections
        .progress()
        .into_iter()
        .map(|(name, progress)| ProjectionReadiness {
            name,
            status: progress.status,
            caught_up: progress.caught_up,
            lag_seconds: progress.lag(now).map(|lag| lag.as_seconds_f64()),
            events_applied: progress.events_applied,
        })
        .collect();
    let body = Readiness {
        ready: database_ok,
        database: if database_ok { "ok" } else { "unreachable" },
        projections,
    };
    let code = if database_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}
