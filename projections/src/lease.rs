//! Who runs a projection slot: a session advisory lock held on a dedicated connection, plus a lease row.
//!
//! The advisory lock is the exclusion: it lives exactly as long as the owner's connection, so a crashed owner
//! releases it at once. The lease row (`projection_leases`) makes ownership visible, and every checkpoint write
//! re-checks it, so an owner that lost its lock connection, or stalled past the expiry while someone else took
//! over, cannot keep writing.

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::store::Slot;

#[derive(Debug)]
pub struct Lease {
    /// Holds the advisory lock; dropping it (closing the session) releases the lock.
    conn: PgConnection,
    name: String,
    slot: Slot,
    owner: Uuid,
    ttl: Duration,
    renewed: Instant,
}

impl Lease {
    /// Takes the slot if nobody holds it. `None`: someone else does.
    pub(crate) async fn try_acquire(
        pool: &PgPool,
        name: &str,
        slot: Slot,
        owner: Uuid,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, sqlx::Error> {
        // a connection of its own, outside the pool: returned to a pool, it would keep the lock for a stranger
        let mut conn = pool.acquire().await?.detach();
        let locked: bool =
            sqlx::query_scalar("select pg_try_advisory_lock(hashtextextended($1 || '/' || $2, 0))")
                .bind(name)
                .bind(slot.as_str())
                .fetch_one(&mut conn)
                .await?;
        if !locked {
            conn.close().await?;
            return Ok(None);
        }
        // holding the lock means any previous owner's session is gone: its lease row is void, take it over
        sqlx::query(
            "insert into public.projection_leases (name, slot, owner, holder, acquired_at, expires_at)
             values ($1, $2, $3, $4, now(), now() + $5 * interval '1 millisecond')
             on conflict (name, slot) do update
                set owner = excluded.owner, holder = excluded.holder, acquired_at = excluded.acquired_at,
                    expires_at = excluded.expires_at",
        )
        .bind(name)
        .bind(slot.as_str())
        .bind(owner)
        .bind(holder)
        .bind(ttl.as_millis() as i64)
        .execute(&mut conn)
        .await?;
        Ok(Some(Lease {
            conn,
            name: name.to_owned(),
            slot,
            owner,
            ttl,
            renewed: Instant::now(),
        }))
    }

    pub fn owner(&self) -> Uuid {
        self.owner
    }

    /// Extends the lease when a third of it has passed. False: it was lost (taken over, or the lock session died).
    pub(crate) async fn renew_if_due(&mut self) -> Result<bool, sqlx::Error> {
        if self.renewed.elapsed() < self.ttl / 3 {
            return Ok(true);
        }
        self.renew().await
    }

    pub(crate) async fn renew(&mut self) -> Result<bool, sqlx::Error> {
        let renewed = sqlx::query(
            "update public.projection_leases set expires_at = now() + $4 * interval '1 millisecond'
              where name = $1 and slot = $2 and owner = $3",
        )
        .bind(&self.name)
        .bind(self.slot.as_str())
        .bind(self.owner)
        .bind(self.ttl.as_millis() as i64)
        .execute(&mut self.conn)
        .await?;
        self.renewed = Instant::now();
        Ok(renewed.rows_affected() == 1)
    }

    /// Gives the slot up: deletes the lease row and ends the lock session.
    pub(crate) async fn release(mut self) {
        let deleted = sqlx::query(
            "delete from public.projection_leases where name = $1 and slot = $2 and owner = $3",
        )
        .bind(&self.name)
        .bind(self.slot.as_str())
        .bind(self.owner)
        .execute(&mut self.conn)
        .await;
        if let Err(error) = deleted {
            tracing::warn!(%error, name = %self.name, "could not delete the lease row; it will expire");
        }
        // closing the session releases the advisory lock
        let _ = self.conn.close().await;
    }

    /// Who holds the slot, for messages: the holder description, when a lease row says so.
    pub(crate) async fn holder(
        pool: &PgPool,
        name: &str,
        slot: Slot,
    ) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar(
            "select holder from public.projection_leases where name = $1 and slot = $2",
        )
        .bind(name)
        .bind(slot.as_str())
        .fetch_optional(pool)
        .await
    }
}
