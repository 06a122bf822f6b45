//! Throwaway PostgreSQL for tests: one cluster per test binary, started lazily from the system's binaries and
//! tuned for speed; each test gets its own fresh database cloned from a migrated template.
//!
//! The cluster's data folder lives in the temp folder and is swept by the next test binary once its process
//! is gone (statics are never dropped, so a test process cannot clean up after itself; PostgreSQL shuts itself
//! down when the process dies).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};

use crate::cluster::{Cluster, ClusterConfig, Durability};

const TEMPLATE: &str = "academy_template";
const DIR_PREFIX: &str = "academy-test-";

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static TEMPLATE_READY: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// A fresh, migrated database of its own.
#[derive(Debug)]
pub struct TestDb {
    pub pool: PgPool,
    pub name: String,
}

impl TestDb {
    /// A fresh database for one test, with every migration applied.
    pub async fn new() -> Self {
        let cluster = cluster();
        TEMPLATE_READY
            .get_or_init(|| async {
                let mut admin = PgConnection::connect_with(&cluster.connect_options("postgres"))
                    .await
                    .expect("connect to the test cluster");
                // identifiers cannot be bound; both names are ours, not input
                sqlx::raw_sql(AssertSqlSafe(format!("create database {TEMPLATE}")))
                    .execute(&mut admin)
                    .await
                    .expect("create the template database");
                admin.close().await.expect("close");
                // a short-lived pool: the template must have no connections left when it is cloned
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .connect_with(cluster.connect_options(TEMPLATE))
                    .await
                    .expect("connect to the template database");
                crate::migrate(&pool)
                    .await
                    .expect("migrate the template database");
                pool.close().await;
            })
            .await;

        let name = format!("test_{}", NEXT_DB.fetch_add(1, Ordering::Relaxed));
        let mut admin = PgConnection::connect_with(&cluster.connect_options("postgres"))
            .await
            .expect("connect to the test cluster");
        sqlx::raw_sql(AssertSqlSafe(format!(
            "create database {name} template {TEMPLATE}"
        )))
        .execute(&mut admin)
        .await
        .expect("create a test database");
        admin.close().await.expect("close");
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .connect_with(cluster.connect_options(&name))
            .await
            .expect("connect to the test database");
        Self { pool, name }
    }

    /// Options to open more connections (or another pool) to this database.
    pub fn connect_options(&self) -> PgConnectOptions {
        cluster().connect_options(&self.name)
    }

    /// A `DATABASE_URL` for this database, for child processes.
    pub fn url(&self) -> String {
        cluster().url(&self.name)
    }
}

/// The test binary's cluster, started on first use.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        let base = std::env::temp_dir();
        sweep_dead_clusters(&base);
        let dir = base.join(format!(
            "{DIR_PREFIX}{}-{}",
            std::process::id(),
            unique_suffix()
        ));
        let mut config = ClusterConfig::new(dir);
        config.durability = Durability::Throwaway;
        if let Some(bin) = std::env::var_os("ACADEMY_PG_BIN") {
            config.bin_dir = Some(PathBuf::from(bin));
        }
        Cluster::start(&config)
            .unwrap_or_else(|e| panic!("cannot start a test PostgreSQL cluster: {e}"))
    })
}

fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Removes data folders of test processes that are gone.
fn sweep_dead_clusters(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let owner_alive = Path::new(&format!("/proc/{pid}")).exists();
        let server_alive = std::fs::read_to_string(entry.path().join("postmaster.pid"))
            .ok()
            .and_then(|c| c.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
            .is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !owner_alive && !server_alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
