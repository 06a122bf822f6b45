//! Getting a database: `DATABASE_URL`, or the embedded cluster (created and started on demand, reused when
//! another `academy` already runs it). Either way, migrated and checked before use.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use migrations::cluster::Cluster;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};
use tokio::sync::watch;

use crate::config::Config;

/// An open, migrated database, and the cluster behind it when we run one.
pub struct Database {
    pub pool: PgPool,
    /// Dropping it stops a cluster this process started, so it must outlive the pool's use. Shared with the
    /// cluster's supervisor ([`Database::supervisor`]), which restarts it; `None` inside with `DATABASE_URL`.
    cluster: SharedCluster,
}

type SharedCluster = Arc<Mutex<Option<Cluster>>>;

/// How often the supervisor looks at the postmaster.
const WATCH_EVERY: Duration = Duration::from_millis(100);
/// How long a restarted cluster may take to accept connections (crash recovery replays the WAL) before it is
/// started again.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(120);
/// Shutdown steps that need the database wait no longer than this when it does not answer.
const SHUTDOWN_DB_WAIT: Duration = Duration::from_secs(2);

impl Database {
    /// Connects (starting the embedded cluster when there is no `DATABASE_URL`), applies migrations and refuses
    /// a log whose transaction ids are ahead of the cluster's.
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        let (options, cluster) = match &config.database_url {
            Some(url) => {
                let options: PgConnectOptions = url
                    .parse()
                    .context("DATABASE_URL is not a valid PostgreSQL URL")?;
                (options, None)
            }
            None => {
                let cluster = start_embedded(config).await?;
                ensure_database(&cluster, &config.db_name).await?;
                (cluster.connect_options(&config.db_name), Some(cluster))
            }
        };
        // every process names its sessions, so the last one out can tell it is the last
        let options = options.application_name(&application_name());
        // migrations run on a session of their own, without the statement timeout: one may rewrite a large table
        let migrator = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .context("connecting to PostgreSQL")?;
        let migrated = migrations::migrate(&migrator).await;
        migrator.close().await;
        migrated.context("applying migrations")?;
        let pool = pool_options(config)
            .connect_with(options)
            .await
            .context("connecting to PostgreSQL")?;
        eventlog::verify_transaction_ids(&pool).await?;
        Ok(Self {
            pool,
            cluster: Arc::new(Mutex::new(cluster)),
        })
    }

    /// The embedded cluster's supervisor, when there is one (see [`supervise_cluster`]); runs until `stop_rest`.
    pub fn supervisor(
        &self,
        health: Arc<api::Tasks>,
        stopping: watch::Receiver<bool>,
        stop_rest: watch::Receiver<bool>,
    ) -> Option<impl Future<Output = anyhow::Result<()>> + Send + 'static> {
        lock(&self.cluster).as_ref()?;
        Some(supervise_cluster(
            self.cluster.clone(),
            self.pool.clone(),
            health,
            stopping,
            stop_rest,
        ))
    }

    /// Closes the pool. The embedded cluster is stopped when no other `academy` process uses it any more (the
    /// server and CLI commands may share it, whichever started it), and left running otherwise.
    ///
    /// When the cluster is gone (killed, or restarting), nothing here waits for it longer than a moment: the pool
    /// is dropped, a cluster this process started is stopped (a restart in progress is ended), and one another
    /// process started is left to it.
    pub async fn close(self) {
        let cluster = lock(&self.cluster).take();
        let running = cluster
            .as_ref()
            .is_some_and(|c| c.is_running() && c.is_ready());
        let others = match &cluster {
            Some(_) if running => {
                match tokio::time::timeout(SHUTDOWN_DB_WAIT, other_processes(&self.pool)).await {
                    Ok(Ok(others)) => others,
                    // a cluster that does not answer is not ours to stop when we merely attached to it
                    _ if !cluster.as_ref().is_some_and(Cluster::is_owned) => 1,
                    _ => 0,
                }
            }
            Some(cluster) if !cluster.is_owned() => 1,
            _ => 0,
        };
        if tokio::time::timeout(SHUTDOWN_DB_WAIT, self.pool.close())
            .await
            .is_err()
        {
            tracing::warn!("the database did not answer; closed the pool without it");
        }
        if let Some(cluster) = cluster {
            tokio::task::spawn_blocking(move || {
                if others == 0 {
                    cluster.stop();
                } else {
                    tracing::info!(
                        others,
                        "other academy processes use the embedded PostgreSQL"
                    );
                    cluster.leave_running();
                }
            })
            .await
            .ok();
        }
    }
}

/// The pool of Academy's sessions: each carries `statement_timeout` and `idle_in_transaction_session_timeout`
/// (`ACADEMY_STATEMENT_TIMEOUT_SECONDS`, `ACADEMY_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS`), so a runaway statement or
/// a transaction left open cannot hold back the projections (they read the log only below the oldest transaction
/// in flight) for longer than that, whatever the server's own settings. Set per session rather than as startup
/// options, which a connection pooler in front of PostgreSQL may refuse.
pub fn pool_options(config: &Config) -> PgPoolOptions {
    let statement = config.statement_timeout_seconds.saturating_mul(1000);
    let idle = config
        .idle_in_transaction_timeout_seconds
        .saturating_mul(1000);
    // PostgreSQL takes at most i32::MAX milliseconds
    let settings = format!(
        "set statement_timeout = {}; set idle_in_transaction_session_timeout = {}",
        statement.min(i32::MAX as u64),
        idle.min(i32::MAX as u64),
    );
    PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _| {
            let settings = settings.clone();
            Box::pin(async move {
                // two numbers of ours, not input
                sqlx::raw_sql(AssertSqlSafe(settings)).execute(conn).await?;
                Ok(())
            })
        })
}

fn application_name() -> String {
    format!("academy:{}", std::process::id())
}

/// How many other `academy` processes have sessions open on the cluster.
async fn other_processes(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "select count(distinct application_name) from pg_stat_activity
          where application_name like 'academy:%' and application_name <> $1",
    )
    .bind(application_name())
    .fetch_one(pool)
    .await
}

async fn start_embedded(config: &Config) -> anyhow::Result<Cluster> {
    let cluster_config = config.cluster_config(&config.data_dir);
    // initdb and the readiness wait block; the server itself is spawned from a dedicated guardian thread
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(&cluster_config))
        .await
        .context("starting the embedded PostgreSQL")??;
    tracing::info!(
        data_dir = %cluster.data_dir().display(),
        reused = !cluster.is_owned(),
        "embedded PostgreSQL ready"
    );
    Ok(cluster)
}

/// Creates database `name` on first run. Two processes racing here is fine: the loser sees it exists.
async fn ensure_database(cluster: &Cluster, name: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "ACADEMY_DB_NAME must be lowercase letters, digits and '_'"
    );
    let mut conn = PgConnection::connect_with(&cluster.connect_options("postgres"))
        .await
        .context("connecting to the embedded PostgreSQL")?;
    let exists: bool =
        sqlx::query_scalar("select exists(select 1 from pg_database where datname = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        // an identifier cannot be a bound parameter; the name was checked above
        let created = sqlx::raw_sql(AssertSqlSafe(format!("create database \"{name}\"")))
            .execute(&mut conn)
            .await;
        if let Err(error) = created {
            let raced = matches!(&error, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("42P04" | "23505")));
            if !raced {
                return Err(error).context("creating the database");
            }
        }
    }
    conn.close().await?;
    Ok(())
}

fn lock(cluster: &SharedCluster) -> std::sync::MutexGuard<'_, Option<Cluster>> {
    cluster.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Watches the embedded cluster while the server runs. When its postmaster is gone (killed, crashed), readiness
/// fails at once (`/readyz` says `database: "restarting"`, or `"unavailable"` for a cluster another process
/// started); a cluster this process started is started again (PostgreSQL's crash recovery runs as it starts)
/// until it accepts connections, and counted in `academy_database_restarts_total`; one another process started
/// is waited for, not restarted. Readiness comes back once the pool answers again; the pool, the projections and
/// the LISTEN wake-up reconnect by themselves. After shutdown began it only watches (no restart), until
/// `stop_rest`.
async fn supervise_cluster(
    cluster: SharedCluster,
    pool: PgPool,
    health: Arc<api::Tasks>,
    stopping: watch::Receiver<bool>,
    mut stop_rest: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let owned = lock(&cluster).as_ref().is_some_and(Cluster::is_owned);
    loop {
        if pause(&mut stop_rest, WATCH_EVERY).await {
            return Ok(());
        }
        if lock(&cluster).as_ref().is_none_or(Cluster::is_running) {
            continue;
        }
        health.database(Some(if owned { "restarting" } else { "unavailable" }));
        if owned {
            tracing::error!("the embedded PostgreSQL died; restarting it");
            if !restart(&cluster, &stopping, &mut stop_rest).await {
                return Ok(());
            }
            api::metrics::count_database_restart();
        } else {
            tracing::error!(
                "the PostgreSQL this server attached to (started by another process) is gone; waiting for it"
            );
            loop {
                if pause(&mut stop_rest, WATCH_EVERY).await {
                    return Ok(());
                }
                if lock(&cluster).as_ref().is_some_and(Cluster::is_ready) {
                    break;
                }
            }
        }
        // the server accepts connections; ready again once the pool has a working session
        loop {
            let answered = tokio::time::timeout(
                Duration::from_secs(2),
                sqlx::query("select 1").execute(&pool),
            )
            .await;
            if matches!(answered, Ok(Ok(_))) {
                break;
            }
            if pause(&mut stop_rest, Duration::from_millis(200)).await {
                return Ok(());
            }
        }
        health.database(None);
        tracing::info!("PostgreSQL is back; serving again");
    }
}

/// Starts the cluster again until it accepts connections; false when shutdown came first (no restart is begun
/// once shutdown began).
async fn restart(
    cluster: &SharedCluster,
    stopping: &watch::Receiver<bool>,
    stop_rest: &mut watch::Receiver<bool>,
) -> bool {
    let mut delay = Duration::from_millis(500);
    loop {
        if *stopping.borrow() {
            return false;
        }
        let shared = cluster.clone();
        // joins the dead server's guardian thread (a moment) and spawns the new server
        let started = tokio::task::spawn_blocking(move || match lock(&shared).as_mut() {
            Some(cluster) => cluster.restart(),
            None => Ok(()),
        })
        .await;
        match started {
            Ok(Ok(())) => {
                let deadline = Instant::now() + RECOVERY_TIMEOUT;
                loop {
                    if pause(stop_rest, WATCH_EVERY).await {
                        return false;
                    }
                    let guard = lock(cluster);
                    let Some(c) = guard.as_ref() else {
                        return false;
                    };
                    if c.is_ready() {
                        return true;
                    }
                    if c.start_failed() || Instant::now() > deadline {
                        // for instance the dead server's backends still hold its shared memory: try again
                        tracing::warn!(log = %c.log_tail(), "the restarted PostgreSQL did not come up; trying again");
                        break;
                    }
                }
            }
            Ok(Err(error)) => tracing::error!(%error, "cannot restart PostgreSQL; trying again"),
            Err(error) => tracing::error!(%error, "cannot restart PostgreSQL; trying again"),
        }
        if pause(stop_rest, delay).await {
            return false;
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Sleeps `duration`; true when `stop` turned true first (or its sender is gone).
async fn pause(stop: &mut watch::Receiver<bool>, duration: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(duration) => false,
        stopped = stop.wait_for(|stop| *stop) => { let _ = stopped; true }
    }
}
