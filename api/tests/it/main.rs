//! The API over real HTTP and WebSocket connections, against a real PostgreSQL and running projections.

mod account_cache;
mod authorization;
mod cars;
mod fuzz;
mod http;
mod identity;
mod interviews;
mod operations;
mod reasons;
mod subscriptions;
mod tracks;
mod trainer;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use api::auth::{AuthConfig, JwtSecret};
use api::{AppState, HttpConfig, Services};
use commands::{Clock, CommandExecutor, SystemClock};
use eventlog::EventLog;
use migrations::testing::TestDb;
use projections::{Projections, RunnerConfig};
use serde_json::{Value, json};
use tokio::sync::watch;

pub const SECRET: &[u8] = b"test-secret-that-is-long-enough-for-hs256!!";

/// A served application on a free port, with its projections running.
pub struct TestApp {
    pub db: TestDb,
    pub address: SocketAddr,
    pub state: AppState,
    /// For tests that set up history the API has no mutation for (the scraper's observations, a worker's
    /// commands): the API itself holds no executor.
    pub executor: CommandExecutor,
    pub http: reqwest::Client,
    stop: watch::Sender<bool>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// How a test wants the application set up.
pub struct Setup {
    pub auth: AuthConfig,
    /// The services' settings (throttling, signup points, interview rules).
    pub app: commands::AppConfig,
    pub http: HttpConfig,
    /// The time mutations are issued at.
    pub clock: Arc<dyn Clock>,
    /// How long a query waits for a `minPosition`.
    pub read_timeout: Duration,
}

impl Default for Setup {
    fn default() -> Self {
        let auth = AuthConfig::new(JwtSecret::new(SECRET.to_vec()).unwrap());
        let mut app = commands::AppConfig::default();
        // generous, so tests that log in often are not throttled; the throttling tests set their own
        app.identity.logins_per_account = NonZeroU32::new(1000).unwrap();
        app.identity.logins_per_address = NonZeroU32::new(1000).unwrap();
        app.identity.registrations_per_address = NonZeroU32::new(1000).unwrap();
        Self {
            auth,
            app,
            http: HttpConfig::default(),
            clock: Arc::new(SystemClock),
            read_timeout: Duration::from_secs(10),
        }
    }
}

impl TestApp {
    /// Stops serving, as a server does on SIGTERM.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    pub async fn start() -> Self {
        Self::with(Setup::default()).await
    }

    pub async fn with(setup: Setup) -> Self {
        let db = TestDb::new().await;
        let log = EventLog::new(db.pool.clone());
        let runner = RunnerConfig {
            poll: Duration::from_millis(50),
            ..RunnerConfig::default()
        };
        let projections =
            Arc::new(Projections::new(log.clone(), projections::all(), runner).unwrap());
        let executor = CommandExecutor::new(log);
        let (stop, stopping) = watch::channel(false);
        let app = commands::App::new(executor.clone(), db.pool.clone(), setup.app).unwrap();
        // as the server runs it: token checks cache accounts while this follows their events
        let identity = app.identity.clone();
        let following = stopping.clone();
        tokio::spawn(async move { identity.follow_accounts(following).await });
        let services = Arc::new(Services::new(
            db.pool.clone(),
            projections.clone(),
            app,
            setup.auth,
            setup.read_timeout,
            setup.clock.clone(),
        ));
        let state = AppState::new(services, setup.http).stopping(stopping.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = api::router(state.clone());
        let mut http_stopping = stopping.clone();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = http_stopping.wait_for(|s| *s).await;
            })
            .await
            .unwrap();
        });
        tokio::spawn(async move { projections.run(stopping).await });
        Self {
            db,
            address,
            state,
            executor,
            http: reqwest::Client::new(),
            stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// GETs `path` as text.
    pub async fn text(&self, path: &str) -> String {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        response.text().await.unwrap()
    }

    /// POSTs a GraphQL request; returns the HTTP status and the JSON body.
    pub async fn post(
        &self,
        query: &str,
        variables: Value,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut request = self
            .http
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A GraphQL request's body.
    pub async fn gql(&self, query: &str, variables: Value, token: Option<&str>) -> Value {
        self.post(query, variables, token, &[]).await.1
    }

    /// Registers a user; returns its id and the position written.
    pub async fn register(&self, email: &str, username: &str, password: &str) -> (String, i64) {
        let body = self
            .gql(
                "mutation($input: RegisterInput!) { register(input: $input) { userId position } }",
                json!({ "input": { "email": email, "username": username, "password": password } }),
                None,
            )
            .await;
        assert!(body["errors"].is_null(), "registration failed: {body}");
        let payload = &body["data"]["register"];
        (
            payload["userId"].as_str().unwrap().to_owned(),
            payload["position"].as_i64().unwrap(),
        )
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let body = self
            .gql(
                "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken } }",
                json!({ "u": username, "p": password }),
                None,
            )
            .await;
        body["data"]["login"]["accessToken"]
            .as_str()
            .unwrap_or_else(|| panic!("login failed: {body}"))
            .to_owned()
    }

    /// A registered, signed-in plain user: (id, token).
    pub async fn user(&self, name: &str) -> (String, String) {
        let (id, _) = self
            .register(
                &format!("{name}@example.org"),
                name,
                "correct horse battery",
            )
            .await;
        (id, self.login(name, "correct horse battery").await)
    }

    /// A signed-in admin, made through the start-up bootstrap path: (id, token).
    pub async fn admin(&self) -> (String, String) {
        let (id, _) = self
            .state
            .services
            .app
            .identity
            .ensure_admin(
                &bootstrap(),
                "root@example.org",
                "root",
                "root password 123",
            )
            .await
            .unwrap();
        (
            id.to_string(),
            self.login("root", "root password 123").await,
        )
    }
}

/// The data of a successful GraphQL response.
pub fn data(body: Value) -> Value {
    assert!(body["errors"].is_null(), "unexpected errors: {body}");
    body["data"].clone()
}

/// The `extensions.code` of the first error of a GraphQL body.
pub fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

/// The `extensions.reason` of the first error of a GraphQL body (or of a REST body's `errors`).
pub fn reason(body: &Value) -> &str {
    body["errors"][0]["extensions"]["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("no error reason in {body}"))
}

/// The request of the start-up bootstrap of an admin.
pub fn bootstrap() -> commands::Request {
    commands::Request::new(
        commands::Actor::System { name: "bootstrap" },
        commands::Source::Cli,
        chrono::Utc::now(),
    )
}
