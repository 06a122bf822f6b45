//! Getting a database: `DATABASE_URL`, or the embedded cluster (created and started on demand, reused when
//! another `academy` already runs it). Either way, migrated and checked before use.

use std::time::Duration;

use anyhow::Context;
use migrations::cluster::Cluster;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};

use crate::config::Config;

/// An open, migrated database, and the cluster behind it when we run one.
pub struct Database {
    pub pool: PgPool,
    /// Dropping it stops a cluster this process started, so it must outlive the pool's use.
    cluster: Option<Cluster>,
}

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
        Ok(Self { pool, cluster })
    }

    /// Closes the pool. The embedded cluster is stopped when no other `academy` process uses it any more (the
    /// server and CLI commands may share it, whichever started it), and left running otherwise.
    pub async fn close(mut self) {
        let others = match &self.cluster {
            Some(_) => other_processes(&self.pool).await.unwrap_or(0),
            None => 0,
        };
        self.pool.close().await;
        if let Some(cluster) = self.cluster.take() {
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
