//! Configuration: one typed struct, parsed once from flags, the environment and `.env`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

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

    /// Address the HTTP server listens on (port 0: any free port; the chosen address is printed).
    #[arg(
        long,
        env = "ACADEMY_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,

    /// Log format.
    #[arg(
        long,
        env = "ACADEMY_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// The embedded cluster's settings for a data folder (durable: this is for data that matters or for
    /// measuring as production would run).
    pub fn cluster_config(&self, data_dir: &std::path::Path) -> migrations::cluster::ClusterConfig {
        let mut cluster = migrations::cluster::ClusterConfig::new(data_dir);
        cluster.bin_dir = self.pg_bin.clone();
        cluster.run_as = self.pg_user.clone();
        cluster.durability = migrations::cluster::Durability::Durable;
        cluster
    }
}
