//! The runner's bookkeeping rows (`projections`) and the DDL for a projection's schemas.

use eventlog::Checkpoint;
use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use uuid::Uuid;

/// The two slots a projection's rows can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Live,
    Build,
}

impl Slot {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Slot::Live => "live",
            Slot::Build => "build",
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct SlotRow {
    pub slot: String,
    pub version: i32,
    pub checkpoint_xid: i64,
    pub checkpoint_position: i64,
    pub events_applied: i64,
}

impl SlotRow {
    pub(crate) fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            xid: self.checkpoint_xid,
            position: self.checkpoint_position,
        }
    }
}

/// The live and build rows of projection `name`.
pub(crate) async fn load(
    pool: &PgPool,
    name: &str,
) -> Result<(Option<SlotRow>, Option<SlotRow>), sqlx::Error> {
    let rows: Vec<SlotRow> = sqlx::query_as(
        "select slot, version, checkpoint_xid, checkpoint_position, events_applied
           from public.projections where name = $1",
    )
    .bind(name)
    .fetch_all(pool)
    .await?;
    let find = |slot: Slot| rows.iter().find(|r| r.slot == slot.as_str()).cloned();
    Ok((find(Slot::Live), find(Slot::Build)))
}

/// The version and checkpoint stored for one slot.
pub(crate) async fn load_slot(
    pool: &PgPool,
    name: &str,
    slot: Slot,
) -> Result<Option<(i32, Checkpoint)>, sqlx::Error> {
    let row: Option<(i32, i64, i64)> = sqlx::query_as(
        "select version, checkpoint_xid, checkpoint_position from public.projections
          where name = $1 and slot = $2",
    )
    .bind(name)
    .bind(slot.as_str())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(version, xid, position)| (version, Checkpoint { xid, position })))
}

/// Serialises this transaction with every other checkpoint writer of the slot (its batch commits, a swap), then
/// reads the slot's checkpoint (`None`: no such row). A swap takes the build slot's lock, then the live one's.
///
/// A transaction-scoped advisory lock rather than `select ... for update`: row locks assign a transaction id,
/// and a transaction id held while a batch is applied would hold the log's read horizon back for every reader in
/// the cluster. The checkpoint is read in a second statement so its snapshot is taken after the lock is granted.
pub(crate) async fn lock_checkpoint(
    conn: &mut PgConnection,
    name: &str,
    slot: Slot,
) -> Result<Option<Checkpoint>, sqlx::Error> {
    sqlx::query(
        "select pg_advisory_xact_lock(hashtextextended('checkpoint/' || $1 || '/' || $2, 0))",
    )
    .bind(name)
    .bind(slot.as_str())
    .execute(&mut *conn)
    .await?;
    let row: Option<(i64, i64)> = sqlx::query_as(
        "select checkpoint_xid, checkpoint_position from public.projections where name = $1 and slot = $2",
    )
    .bind(name)
    .bind(slot.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|(xid, position)| Checkpoint { xid, position }))
}

/// Compare-and-set of the checkpoint from `from` to `to` of the slot built by `version`, provided `owner` still
/// holds a current lease on it. False: the checkpoint or version moved, or the lease is gone; the caller rolls back.
#[allow(clippy::too_many_arguments)] // one compare-and-set, every part of which is checked
pub(crate) async fn advance(
    conn: &mut PgConnection,
    name: &str,
    slot: Slot,
    version: i32,
    owner: Uuid,
    from: Checkpoint,
    to: Checkpoint,
    applied: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "update public.projections p
            set checkpoint_xid = $6, checkpoint_position = $7, events_applied = events_applied + $8,
                updated_at = now(), error = null, error_position = null, error_event_id = null,
                status = case when p.slot = 'build' then 'building' else 'running' end
          where p.name = $1 and p.slot = $2 and p.checkpoint_xid = $4 and p.checkpoint_position = $5
            and p.version = $9
            and exists (select 1 from public.projection_leases l
                         where l.name = $1 and l.slot = $2 and l.owner = $3 and l.expires_at > now())",
    )
    .bind(name)
    .bind(slot.as_str())
    .bind(owner)
    .bind(from.xid)
    .bind(from.position)
    .bind(to.xid)
    .bind(to.position)
    .bind(applied)
    .bind(version)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn set_search_path(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("select set_config('search_path', $1, true)")
        .bind(schema)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A quoted identifier for a schema name that passed [`crate::valid_name`] (plus our `__build` suffix).
fn quoted(schema: &str) -> String {
    debug_assert!(
        schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    );
    format!("\"{schema}\"")
}

/// Identifiers cannot be bound parameters; schema names are validated by `valid_name` before they get here.
pub(crate) async fn ddl(conn: &mut PgConnection, sql: String) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(crate) async fn recreate_schema(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<(), sqlx::Error> {
    let q = quoted(schema);
    ddl(
        conn,
        format!("drop schema if exists {q} cascade; create schema {q}"),
    )
    .await
}

/// Replaces the live schema by the build schema.
pub(crate) async fn swap_schemas(
    conn: &mut PgConnection,
    live: &str,
    build: &str,
) -> Result<(), sqlx::Error> {
    let (live, build) = (quoted(live), quoted(build));
    ddl(
        conn,
        format!("drop schema if exists {live} cascade; alter schema {build} rename to {live}"),
    )
    .await
}

pub(crate) async fn schema_exists(pool: &PgPool, schema: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select exists(select 1 from pg_namespace where nspname = $1)")
        .bind(schema)
        .fetch_one(pool)
        .await
}

/// Records that the projection's `setup` failed: a failed build row without a schema (so a retry starts afresh).
pub(crate) async fn record_setup_failure(
    pool: &PgPool,
    name: &str,
    version: i32,
    schema: &str,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into public.projections (name, slot, version, schema_name, status, error)
         values ($1, 'build', $2, $3, 'failed', $4)
         on conflict (name, slot) do update
            set version = excluded.version, status = 'failed', error = excluded.error, error_position = null,
                error_event_id = null, checkpoint_xid = 0, checkpoint_position = 0, events_applied = 0,
                updated_at = now()",
    )
    .bind(name)
    .bind(version)
    .bind(schema)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records that the event at `position` failed, and stops the slot.
pub(crate) async fn record_failure(
    pool: &PgPool,
    name: &str,
    slot: Slot,
    position: i64,
    event_id: Uuid,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update public.projections set status = 'failed', error = $3, error_position = $4, error_event_id = $5,
                updated_at = now()
          where name = $1 and slot = $2",
    )
    .bind(name)
    .bind(slot.as_str())
    .bind(error)
    .bind(position)
    .bind(event_id)
    .execute(pool)
    .await?;
    Ok(())
}
