//! Configuration: one typed struct, parsed once from flags, the environment and `.env`.

use std::net::SocketAddr;
use std::path::PathBuf;

use std::io::Write;
use std::num::NonZeroU32;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use api::auth::{AuthConfig, JwtSecret};
use clap::{Args, ValueEnum};

/// The longest token lifetime accepted.
const MAX_TOKEN_TTL_SECONDS: u64 = 30 * 24 * 3600;

/// The generated token secret's file name inside the data folder.
pub const JWT_SECRET_FILE: &str = "academy-jwt-secret";

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// PostgreSQL to use. When unset, Academy runs its own cluster in ACADEMY_DATA_DIR.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// Data folder of the embedded PostgreSQL cluster (created on first run).
    #[arg(
        long,
        env = "ACADEMY_DATA_DIR",
        default_value = "var/postgres",
        global = true
    )]
    pub data_dir: PathBuf,

    /// Folder holding PostgreSQL's initdb and postgres (default: PATH, then /usr/lib/postgresql/*/bin).
    #[arg(long, env = "ACADEMY_PG_BIN", global = true)]
    pub pg_bin: Option<PathBuf>,

    /// Unprivileged system user that runs the embedded PostgreSQL when Academy runs as root.
    #[arg(
        long,
        env = "ACADEMY_PG_USER",
        default_value = "postgres",
        global = true
    )]
    pub pg_user: String,

    /// Database name inside the embedded cluster.
    #[arg(
        long,
        env = "ACADEMY_DB_NAME",
        default_value = "academy",
        global = true
    )]
    pub db_name: String,

    /// Connections in the pool.
    #[arg(
        long,
        env = "ACADEMY_DB_MAX_CONNECTIONS",
        default_value_t = 20,
        global = true
    )]
    pub db_max_connections: u32,

    /// Longest statement of Academy's own sessions, in seconds (cancelled beyond; migrations are exempt); 0: no
    /// limit.
    #[arg(
        long,
        env = "ACADEMY_STATEMENT_TIMEOUT_SECONDS",
        default_value_t = 30,
        global = true
    )]
    pub statement_timeout_seconds: u64,

    /// Longest a session may stay idle inside a transaction, in seconds, before PostgreSQL ends it: Academy's own
    /// sessions, and with the embedded cluster every session; 0: no limit.
    #[arg(
        long,
        env = "ACADEMY_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS",
        default_value_t = 60,
        global = true
    )]
    pub idle_in_transaction_timeout_seconds: u64,

    /// Address the HTTP server listens on (port 0: any free port; the chosen address is printed).
    #[arg(
        long,
        env = "ACADEMY_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,

    /// Secret for signing access tokens (at least 32 bytes). When unset with the embedded database, one is
    /// generated once and kept in the data folder (0600); with DATABASE_URL it is required.
    #[arg(
        long,
        env = "ACADEMY_JWT_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub jwt_secret: Option<String>,

    /// Lifetime of an access token, in seconds.
    #[arg(
        long,
        env = "ACADEMY_TOKEN_TTL_SECONDS",
        default_value_t = 43_200,
        global = true
    )]
    pub token_ttl_seconds: u64,

    /// With ACADEMY_ADMIN_PASSWORD: make sure this admin account exists at start-up.
    #[arg(long, env = "ACADEMY_ADMIN_EMAIL", global = true)]
    pub admin_email: Option<String>,

    /// Password for a new ACADEMY_ADMIN_EMAIL account (an existing account keeps its password).
    #[arg(
        long,
        env = "ACADEMY_ADMIN_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub admin_password: Option<String>,

    /// Username for a new ACADEMY_ADMIN_EMAIL account.
    #[arg(
        long,
        env = "ACADEMY_ADMIN_USERNAME",
        default_value = "admin",
        global = true
    )]
    pub admin_username: String,

    /// Login attempts allowed per account per minute.
    #[arg(
        long,
        env = "ACADEMY_LOGINS_PER_ACCOUNT",
        default_value_t = 5,
        global = true
    )]
    pub logins_per_account: u32,

    /// Login attempts allowed per client address per minute.
    #[arg(
        long,
        env = "ACADEMY_LOGINS_PER_ADDRESS",
        default_value_t = 30,
        global = true
    )]
    pub logins_per_address: u32,

    /// Registrations allowed per client address per minute.
    #[arg(
        long,
        env = "ACADEMY_REGISTRATIONS_PER_ADDRESS",
        default_value_t = 10,
        global = true
    )]
    pub registrations_per_address: u32,

    /// How long a query waits for the read models to reach a requested minimum position, in milliseconds.
    #[arg(
        long,
        env = "ACADEMY_READ_TIMEOUT_MS",
        default_value_t = 5_000,
        global = true
    )]
    pub read_timeout_ms: u64,

    /// Longest an HTTP request may take, in seconds (408 beyond).
    #[arg(
        long,
        env = "ACADEMY_REQUEST_TIMEOUT_SECONDS",
        default_value_t = 30,
        global = true
    )]
    pub request_timeout_seconds: u64,

    /// Largest HTTP request body, in bytes (413 beyond).
    #[arg(
        long,
        env = "ACADEMY_BODY_LIMIT_BYTES",
        default_value_t = 1_048_576,
        global = true
    )]
    pub body_limit_bytes: usize,

    /// /readyz fails while a projection lags more than this many seconds.
    #[arg(
        long,
        env = "ACADEMY_READY_MAX_LAG_SECONDS",
        default_value_t = 30,
        global = true
    )]
    pub ready_max_lag_seconds: u64,

    /// Origins whose browser pages may call the API (CORS), comma-separated, e.g.
    /// `https://app.example.org,http://localhost:5173`. Unset: no CORS headers, browsers keep other origins out.
    #[arg(
        long,
        env = "ACADEMY_CORS_ORIGINS",
        value_delimiter = ',',
        value_parser = parse_cors_origin,
        global = true
    )]
    pub cors_origins: Vec<String>,

    /// The carsensor site the scraper reads.
    #[arg(
        long,
        env = "ACADEMY_CARSENSOR_BASE_URL",
        default_value = "https://www.carsensor.net",
        global = true
    )]
    pub carsensor_base_url: String,

    /// Where the scraper's walks start: paths on the site (or absolute URLs), comma-separated.
    #[arg(
        long,
        env = "ACADEMY_CARSENSOR_START_PAGES",
        default_value = "/usedcar/index.html",
        value_delimiter = ',',
        global = true
    )]
    pub carsensor_start_pages: Vec<String>,

    /// Most list pages one scraper run fetches (reaching it makes the run incomplete: nothing is delisted).
    #[arg(
        long,
        env = "ACADEMY_CARSENSOR_PAGE_LIMIT",
        default_value_t = 50,
        global = true
    )]
    pub carsensor_page_limit: u32,

    /// When the server runs the scraper: a cron expression with seconds (default: hourly, on the hour).
    #[arg(
        long,
        env = "ACADEMY_CARSENSOR_SCHEDULE",
        default_value = "0 0 * * * *",
        global = true
    )]
    pub carsensor_schedule: String,

    /// Whether the server runs the scraper on its schedule (`academy scrape --once` works either way).
    #[arg(
        long,
        env = "ACADEMY_CARSENSOR_ENABLED",
        default_value_t = true,
        action = clap::ArgAction::Set,
        global = true
    )]
    pub carsensor_enabled: bool,

    /// Least pause between two requests to the site, in milliseconds (robots.txt's Crawl-delay wins when longer).
    #[arg(
        long,
        env = "ACADEMY_CARSENSOR_DELAY_MS",
        default_value_t = 1_000,
        global = true
    )]
    pub carsensor_delay_ms: u64,

    /// Timeout of one request to the site, in milliseconds.
    #[arg(
        long,
        env = "ACADEMY_CARSENSOR_TIMEOUT_MS",
        default_value_t = 20_000,
        global = true
    )]
    pub carsensor_timeout_ms: u64,

    /// Retries of a request after network errors, 5xx and 429 (with exponential backoff and jitter).
    #[arg(
        long,
        env = "ACADEMY_CARSENSOR_RETRIES",
        default_value_t = 4,
        global = true
    )]
    pub carsensor_retries: usize,

    /// First backoff before a retry, in milliseconds (doubling, with jitter, up to 60 s).
    #[arg(
        long,
        env = "ACADEMY_CARSENSOR_BACKOFF_MS",
        default_value_t = 2_000,
        global = true
    )]
    pub carsensor_backoff_ms: u64,

    /// A listing missing from this many consecutive complete runs is delisted.
    #[arg(
        long,
        env = "ACADEMY_CARSENSOR_DELIST_AFTER_RUNS",
        default_value_t = 3,
        global = true
    )]
    pub carsensor_delist_after_runs: u32,

    /// The scraper's User-Agent (say who you are and how to reach you).
    #[arg(
        long,
        env = "ACADEMY_CARSENSOR_USER_AGENT",
        default_value = workers::carsensor::fetch::DEFAULT_USER_AGENT,
        global = true
    )]
    pub carsensor_user_agent: String,

    /// How often the deadline worker looks for due reminders and deadlines, in seconds (0: not in this process).
    #[arg(
        long,
        env = "ACADEMY_DEADLINE_INTERVAL_SECONDS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(0..=86_400),
        global = true
    )]
    pub deadline_interval_seconds: u64,

    /// Mock-interview points a new account starts with.
    #[arg(
        long,
        env = "ACADEMY_SIGNUP_POINTS",
        default_value_t = 0,
        value_parser = clap::value_parser!(i64).range(0..=1000),
        global = true
    )]
    pub signup_points: i64,

    /// A booked interview can be cancelled until this many hours before its start.
    #[arg(
        long,
        env = "ACADEMY_INTERVIEW_CANCEL_CUTOFF_HOURS",
        default_value_t = 2,
        value_parser = clap::value_parser!(u32).range(0..=720),
        global = true
    )]
    pub interview_cancel_cutoff_hours: u32,

    /// The interviewer gives feedback within this many hours after the end (then the interviewee is refunded).
    #[arg(
        long,
        env = "ACADEMY_FEEDBACK_WINDOW_HOURS",
        default_value_t = 72,
        value_parser = clap::value_parser!(u32).range(1..=720),
        global = true
    )]
    pub feedback_window_hours: u32,

    /// Feedback not answered within this many hours is accepted automatically.
    #[arg(
        long,
        env = "ACADEMY_FEEDBACK_ACCEPT_HOURS",
        default_value_t = 72,
        value_parser = clap::value_parser!(u32).range(1..=720),
        global = true
    )]
    pub feedback_accept_hours: u32,

    /// Log format.
    #[arg(
        long,
        env = "ACADEMY_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

/// One of `ACADEMY_CORS_ORIGINS`: an http or https origin (scheme, host and an optional port; a trailing `/` is
/// dropped), written as browsers send it in `Origin`. Blank items are skipped; `*` is refused: list the origins.
fn parse_cors_origin(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(String::new());
    }
    let refuse = |why: &str| {
        Err(format!(
            "{value:?} is not an origin ({why}); write scheme://host[:port], e.g. https://app.example.org"
        ))
    };
    if value == "*" {
        return refuse("any origin is not allowed: list them");
    }
    let Ok(url) = reqwest::Url::parse(value) else {
        return refuse("not a URL");
    };
    if !matches!(url.scheme(), "http" | "https") {
        return refuse("not http or https");
    }
    if url.host().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return refuse("an origin has no user, path, query or fragment");
    }
    Ok(url.origin().ascii_serialization())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// The API's HTTP settings.
    pub fn http(&self) -> api::HttpConfig {
        api::HttpConfig {
            body_limit: self.body_limit_bytes,
            request_timeout: Duration::from_secs(self.request_timeout_seconds),
            ready_max_lag: Duration::from_secs(self.ready_max_lag_seconds),
            query_limits: api::QueryLimits::default(),
            cors_origins: self
                .cors_origins
                .iter()
                .filter(|origin| !origin.is_empty())
                .filter_map(|origin| axum::http::HeaderValue::from_str(origin).ok())
                .collect(),
        }
    }

    /// The application services' settings.
    pub fn app(&self) -> anyhow::Result<commands::AppConfig> {
        let identity = commands::identity::IdentityConfig {
            logins_per_account: NonZeroU32::new(self.logins_per_account)
                .context("ACADEMY_LOGINS_PER_ACCOUNT must be at least 1")?,
            logins_per_address: NonZeroU32::new(self.logins_per_address)
                .context("ACADEMY_LOGINS_PER_ADDRESS must be at least 1")?,
            registrations_per_address: NonZeroU32::new(self.registrations_per_address)
                .context("ACADEMY_REGISTRATIONS_PER_ADDRESS must be at least 1")?,
            ..Default::default()
        };
        Ok(commands::AppConfig {
            identity,
            interviews: self.interview_policy(),
            signup_points: self.signup_points,
        })
    }

    /// The mock-interview rules' times.
    fn interview_policy(&self) -> domain::interviews::Policy {
        let hours = |h: u32| chrono::TimeDelta::hours(i64::from(h));
        domain::interviews::Policy {
            cancel_cutoff: hours(self.interview_cancel_cutoff_hours),
            feedback_within: hours(self.feedback_window_hours),
            accept_within: hours(self.feedback_accept_hours),
        }
    }

    /// The scraper's settings.
    pub fn scraper(&self) -> anyhow::Result<workers::carsensor::ScraperConfig> {
        use workers::carsensor::ScraperConfig;
        let base_url = reqwest::Url::parse(&self.carsensor_base_url)
            .context("ACADEMY_CARSENSOR_BASE_URL must be an absolute URL")?;
        if !matches!(base_url.scheme(), "http" | "https") {
            bail!("ACADEMY_CARSENSOR_BASE_URL must be an http or https URL");
        }
        let start_pages: Vec<String> = self
            .carsensor_start_pages
            .iter()
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect();
        if start_pages.is_empty() {
            bail!("ACADEMY_CARSENSOR_START_PAGES names no page");
        }
        for page in &start_pages {
            base_url.join(page).with_context(|| {
                format!("ACADEMY_CARSENSOR_START_PAGES: {page:?} is not a path or URL")
            })?;
        }
        if self.carsensor_page_limit == 0 || self.carsensor_delist_after_runs == 0 {
            bail!(
                "ACADEMY_CARSENSOR_PAGE_LIMIT and ACADEMY_CARSENSOR_DELIST_AFTER_RUNS must be at least 1"
            );
        }
        let mut config = ScraperConfig::new(base_url);
        config.start_pages = start_pages;
        config.page_limit = self.carsensor_page_limit;
        config.delist_after_runs = self.carsensor_delist_after_runs;
        config.fetch.user_agent = self.carsensor_user_agent.clone();
        config.fetch.min_delay = Duration::from_millis(self.carsensor_delay_ms);
        config.fetch.timeout = Duration::from_millis(self.carsensor_timeout_ms.max(1));
        config.fetch.retries = self.carsensor_retries;
        config.fetch.min_backoff = Duration::from_millis(self.carsensor_backoff_ms);
        config.fetch.max_backoff = config.fetch.max_backoff.max(config.fetch.min_backoff);
        Ok(config)
    }

    /// Token settings with `secret`.
    pub fn auth(&self, secret: JwtSecret) -> anyhow::Result<AuthConfig> {
        let mut auth = AuthConfig::new(secret);
        auth.token_ttl = Duration::from_secs(self.token_ttl_seconds);
        if !(1..=MAX_TOKEN_TTL_SECONDS).contains(&self.token_ttl_seconds) {
            bail!(
                "ACADEMY_TOKEN_TTL_SECONDS must be between 1 and {MAX_TOKEN_TTL_SECONDS} (30 days)"
            );
        }
        Ok(auth)
    }

    /// The token-signing secret: ACADEMY_JWT_SECRET, or (embedded database only) the one kept in the data folder,
    /// generated on first use. Call after the embedded cluster is initialised (initdb wants an empty folder).
    pub fn jwt_secret(&self) -> anyhow::Result<JwtSecret> {
        if let Some(secret) = &self.jwt_secret {
            return JwtSecret::new(secret.as_bytes().to_vec())
                .map_err(|e| anyhow::anyhow!("ACADEMY_JWT_SECRET: {e}"));
        }
        if self.database_url.is_some() {
            bail!(
                "ACADEMY_JWT_SECRET is required with DATABASE_URL (every instance must sign tokens with the same \
                 secret); generate one with: head -c 48 /dev/urandom | base64"
            );
        }
        let path = self.data_dir.join(JWT_SECRET_FILE);
        let secret = read_or_create_secret(&path)?;
        JwtSecret::new(secret.into_bytes()).map_err(|e| {
            anyhow::anyhow!("{}: {e}; delete it to generate a new one", path.display())
        })
    }

    /// The embedded cluster's settings for a data folder (durable: this is for data that matters or for
    /// measuring as production would run).
    pub fn cluster_config(&self, data_dir: &std::path::Path) -> migrations::cluster::ClusterConfig {
        let mut cluster = migrations::cluster::ClusterConfig::new(data_dir);
        cluster.bin_dir = self.pg_bin.clone();
        cluster.run_as = self.pg_user.clone();
        cluster.durability = migrations::cluster::Durability::Durable;
        cluster.idle_in_transaction_timeout =
            std::time::Duration::from_secs(self.idle_in_transaction_timeout_seconds);
        cluster
    }
}

/// Reads the secret at `path`, or creates it (64 random bytes, hex, mode 0600) when absent. The file appears
/// whole or not at all (written aside, then hard-linked into place), so processes starting at once agree on it.
fn read_or_create_secret(path: &Path) -> anyhow::Result<String> {
    use rand::RngCore;
    if !path.exists() {
        let mut bytes = [0u8; 64];
        rand::rng().fill_bytes(&mut bytes);
        let fresh: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let aside = path.with_extension(format!("new-{}", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&aside)
            .with_context(|| format!("creating {}", aside.display()))?;
        file.write_all(fresh.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", aside.display()))?;
        let linked = std::fs::hard_link(&aside, path);
        let _ = std::fs::remove_file(&aside);
        match linked {
            Ok(()) => {
                tracing::info!(path = %path.display(), "generated a token-signing secret");
                return Ok(fresh);
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => {
                return Err(error).with_context(|| format!("creating {}", path.display()));
            }
        }
    }
    let metadata =
        std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if metadata.permissions().mode() & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "the token secret was readable by others; restricting it to 0600");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", path.display()))?;
    }
    let secret =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(secret.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::parse_cors_origin;

    #[test]
    fn cors_origins_are_origins_as_browsers_send_them() {
        let origin = |value: &str| parse_cors_origin(value);
        assert_eq!(
            origin(" https://App.Example.org/ ").unwrap(),
            "https://app.example.org"
        );
        assert_eq!(
            origin("http://localhost:5173").unwrap(),
            "http://localhost:5173"
        );
        assert_eq!(
            origin("https://app.example.org:443").unwrap(),
            "https://app.example.org"
        );
        assert_eq!(origin("").unwrap(), "");
        for wrong in [
            "*",
            "app.example.org",
            "ftp://app.example.org",
            "https://app.example.org/path",
            "https://user@app.example.org",
            "https://app.example.org?x=1",
        ] {
            assert!(origin(wrong).is_err(), "{wrong}");
        }
    }
}
