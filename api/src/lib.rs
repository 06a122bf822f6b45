//! Academy's HTTP surface, composed by [`router`]:
//!
//! - [`graphql`]: the GraphQL schema (one module per feature, merged), `POST /graphql`, GraphiQL on
//!   `GET /graphql`, subscriptions on `/graphql/ws`.
//! - [`auth`]: accounts, passwords, tokens, login throttling; who is asking ([`auth::Viewer`]).
//! - [`error`]: the one error type and its table of codes, shared by GraphQL and REST.
//! - [`rest`]: `POST /api/login` and `GET /api/cars` for the car-service spec, `GET /admin/users/export`
//!   (trainer statistics as CSV).
//! - [`metrics`]: `GET /metrics` and the request counters.
//! - Operations: `GET /healthz` (the process is up) and `GET /readyz` (the database answers and the
//!   projections are caught up within a bound).
//!
//! Every request gets an `x-request-id` (kept when the client sends a printable one of at most 128 characters)
//! that tags its log lines and is echoed
//! in the response; bodies are limited in size and requests in time. Browsers may call the API from the origins
//! [`HttpConfig::cors_origins`] lists, and from no other.

pub mod auth;
pub mod error;
pub mod graphql;
pub mod metrics;
pub mod rest;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};

pub use graphql::{AppSchema, QueryLimits, Services};

/// HTTP settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest request body accepted (413 beyond).
    pub body_limit: usize,
    /// Longest a request may take (408 beyond); subscriptions are not affected once upgraded.
    pub request_timeout: Duration,
    /// `/readyz` fails while a projection lags more than this.
    pub ready_max_lag: Duration,
    pub query_limits: QueryLimits,
    /// The origins (`https://app.example.org`, exactly as browsers send them) whose pages may call the API from
    /// the browser (CORS). Empty: no CORS headers at all, so browsers keep pages of other origins out.
    pub cors_origins: Vec<HeaderValue>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            ready_max_lag: Duration::from_secs(30),
            query_limits: QueryLimits::default(),
            cors_origins: Vec::new(),
        }
    }
}

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub services: Arc<Services>,
    pub schema: AppSchema,
    pub metrics: PrometheusHandle,
    pub http: HttpConfig,
    /// The process's background tasks (deadline worker, scraper, projections): one that stopped while the
    /// server runs makes it unready.
    pub tasks: Arc<Tasks>,
    /// Turns true when the server stops: open subscriptions complete and WebSockets close with 1001.
    pub stopping: Option<watch::Receiver<bool>>,
}

impl AppState {
    pub fn new(services: Arc<Services>, http: HttpConfig) -> Self {
        Self {
            schema: graphql::build_schema(services.clone(), http.query_limits),
            services,
            metrics: metrics::handle(),
            http,
            tasks: Arc::default(),
            stopping: None,
        }
    }

    /// The state of a server that stops when `stopping` turns true.
    pub fn stopping(mut self, stopping: watch::Receiver<bool>) -> Self {
        self.stopping = Some(stopping);
        self
    }
}

/// Which of the process's long-running tasks stopped while it was serving, and why.
#[derive(Debug, Default)]
pub struct Tasks {
    stopped: std::sync::Mutex<Vec<StoppedTask>>,
    /// Why the database is known to be down (its supervisor saw the embedded postmaster die), if it is.
    database_down: std::sync::Mutex<Option<&'static str>>,
}

/// A task that stopped before the server did.
#[derive(Debug, Clone, Serialize)]
pub struct StoppedTask {
    pub name: &'static str,
    pub error: String,
}

impl Tasks {
    /// Records that `name` stopped with `error` while the server was running.
    pub fn stopped(&self, name: &'static str, error: impl std::fmt::Display) {
        let mut stopped = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        stopped.push(StoppedTask {
            name,
            error: error.to_string(),
        });
    }

    /// Marks the database down (`Some("restarting")`, `Some("unavailable")`) or back (`None`): while down,
    /// `/readyz` fails at once, without waiting for the pool.
    pub fn database(&self, down: Option<&'static str>) {
        *self.database_down.lock().unwrap_or_else(|p| p.into_inner()) = down;
    }

    /// Why the database is known to be down, if it is.
    pub fn database_down(&self) -> Option<&'static str> {
        *self.database_down.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn list(&self) -> Vec<StoppedTask> {
        self.stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The whole HTTP application. Serve it with `into_make_service_with_connect_info::<SocketAddr>()` so login
/// throttling knows client addresses.
pub fn router(state: AppState) -> Router {
    let http = state.http.clone();
    let mut router = Router::new()
        .route("/graphql", get(graphql::graphiql).post(graphql::execute))
        .route("/graphql/ws", get(graphql::websocket))
        .merge(rest_routes())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::render))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            http.request_timeout,
        ))
        // the one body limit is the layer's (axum's extractors would add their own 2 MiB one)
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(http.body_limit))
        .layer(CatchPanicLayer::custom(|_| {
            error::ApiError::internal("a request handler panicked").into_response()
        }))
        .layer(axum::middleware::map_response(error::explain_bare_errors));
    // outside the handlers and the limits, so refusals carry the CORS headers too and browsers show them
    if let Some(cors) = cors(&http.cors_origins) {
        router = router.layer(cors);
    }
    router
        // outside the limits, so requests they refuse are counted too
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO))
                .on_failure(DefaultOnFailure::new().level(tracing::Level::WARN)),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        // before the id is set: a client's id that is too long or not plain text is replaced, never echoed
        .layer(axum::middleware::map_request(drop_unfit_request_id))
        .with_state(state)
}

/// The longest client-chosen `x-request-id` kept.
const MAX_REQUEST_ID: usize = 128;

/// Removes a client's `x-request-id` longer than [`MAX_REQUEST_ID`] or not printable ASCII, so a fresh one is
/// made.
async fn drop_unfit_request_id<B>(mut request: Request<B>) -> Request<B> {
    let fits = |value: &HeaderValue| {
        let bytes = value.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= MAX_REQUEST_ID
            && bytes.iter().all(|b| b.is_ascii_graphic())
    };
    if request
        .headers()
        .get("x-request-id")
        .is_some_and(|v| !fits(v))
    {
        request.headers_mut().remove("x-request-id");
    }
    request
}

/// The REST routes, which refuse NUL characters in query strings before any handler reads them.
fn rest_routes() -> Router<AppState> {
    Router::new()
        .route("/api/login", post(rest::login))
        .route("/admin/users/export", get(rest::export_users))
        .route("/api/cars", get(rest::cars))
        .route_layer(axum::middleware::from_fn(rest::refuse_nul))
}

/// CORS for `origins` (none without any): their pages may send `GET` and `POST` with the headers the API reads,
/// and read the headers it answers with; credentials are bearer tokens in `Authorization`, never cookies.
fn cors(origins: &[HeaderValue]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::ACCEPT,
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static(graphql::MIN_POSITION_HEADER),
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([
                header::RETRY_AFTER,
                header::WWW_AUTHENTICATE,
                HeaderName::from_static("x-request-id"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// Every log line of a request carries its method, path and request id.
fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id
    )
}

/// The client's address, when the server was started with connect info.
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}

async fn healthz() -> &'static str {
    "ok"
}

#[derive(Debug, Serialize)]
struct Readiness {
    ready: bool,
    database: &'static str,
    projections: Vec<ProjectionReadiness>,
    /// Committed events an open transaction holds back from every projection (the commit-safe order's price),
    /// with the backend holding them; null when nothing is held.
    held_back: Option<HeldBack>,
    /// Background tasks that stopped while the server runs (a dead deadline worker or scraper).
    stopped_tasks: Vec<StoppedTask>,
}

#[derive(Debug, Serialize)]
struct HeldBack {
    events: i64,
    seconds: f64,
    /// Whether the hold keeps the instance from being ready (it has lasted longer than the bound).
    blocking: bool,
    blocker: Option<projections::Blocker>,
}

#[derive(Debug, Serialize)]
struct ProjectionReadiness {
    name: &'static str,
    status: projections::Status,
    caught_up: bool,
    /// Age of the last applied event while catching up; 0 once caught up.
    lag_seconds: Option<f64>,
    events_applied: i64,
    /// Whether this projection keeps the instance from being ready.
    blocking: bool,
}

/// Ready when the database answers and no projection run here has failed or lags more than the bound. A
/// projection another process owns (`waiting`) does not count: that process reports on it.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    // a database known to be down (its postmaster died) fails at once, without asking the pool
    let down = state.tasks.database_down();
    let database_ok = down.is_none()
        && matches!(
            tokio::time::timeout(
                Duration::from_secs(2),
                sqlx::query("select 1").execute(&state.services.pool),
            )
            .await,
            Ok(Ok(_))
        );
    let now = chrono::Utc::now();
    let bound = state.http.ready_max_lag.as_secs_f64();
    let hold = match down {
        Some(_) => None,
        None => match state.services.projections.hold().await {
            Ok(hold) => hold,
            Err(error) => {
                tracing::warn!(%error, "readiness: cannot look for held-back events");
                None
            }
        },
    };
    let held_seconds = hold.as_ref().map(|h| h.age(now).as_seconds_f64());
    let projections: Vec<ProjectionReadiness> = state
        .services
        .projections
        .progress()
        .into_iter()
        .map(|(name, progress)| {
            // events held back are behind every projection, however caught up with the horizon it is
            let lag_seconds = progress
                .lag(now)
                .map(|lag| lag.as_seconds_f64().max(held_seconds.unwrap_or(0.0)));
            let blocking = progress.status == projections::Status::Failed
                || lag_seconds.is_some_and(|lag| lag > bound);
            ProjectionReadiness {
                name,
                status: progress.status,
                caught_up: progress.caught_up && hold.is_none(),
                lag_seconds,
                events_applied: progress.events_applied,
                blocking,
            }
        })
        .collect();
    let held_back = hold.map(|hold| HeldBack {
        events: hold.events,
        seconds: hold.age(now).as_seconds_f64(),
        blocking: hold.age(now).as_seconds_f64() > bound,
        blocker: hold.blocker,
    });
    let stopped_tasks = state.tasks.list();
    let ready = database_ok
        && !projections.iter().any(|p| p.blocking)
        && !held_back.as_ref().is_some_and(|h| h.blocking)
        && stopped_tasks.is_empty();
    let body = Readiness {
        ready,
        database: match down {
            Some(why) => why,
            None if database_ok => "ok",
            None => "unreachable",
        },
        projections,
        held_back,
        stopped_tasks,
    };
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}
