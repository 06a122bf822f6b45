//! The database: Academy's SQL schema, the one migrator used by the binary and by every test, and the
//! PostgreSQL cluster it runs on when no `DATABASE_URL` is given.
//!
//! - `sql/` holds the migrations, applied in file-name order. They are documentation too: every non-obvious
//!   column carries a comment.
//! - [`cluster`] starts a private PostgreSQL from the system's binaries (as an unprivileged user when we are root).
//! - [`testing`] (feature `testing`) gives each test a fresh, migrated database on one throwaway cluster per test
//!   binary.

pub mod cluster;
#[cfg(feature = "testing")]
pub mod testing;

use sqlx::PgPool;
use sqlx::migrate::{MigrateError, Migrator};

/// Every migration, embedded in the binary at compile time.
pub static MIGRATOR: Migrator = sqlx::migrate!("./sql");

/// Applies every pending migration. Safe to call from several processes at once (sqlx takes an advisory lock).
#[tracing::instrument(skip_all)]
pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    MIGRATOR.run(pool).await
}
