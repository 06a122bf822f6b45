//! Every projection's state, for operators (`academy projections status`) and readiness checks.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use eventlog::{Checkpoint, EventLog};
use serde::Serialize;
use uuid::Uuid;

use crate::Projection;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SlotStatus {
    pub name: String,
    pub slot: String,
    pub version: i32,
    pub status: String,
    pub checkpoint_xid: i64,
    pub checkpoint_position: i64,
    pub events_applied: i64,
    pub error: Option<String>,
    pub error_position: Option<i64>,
    pub error_event_id: Option<Uuid>,
    pub updated_at: DateTime<Utc>,
    pub holder: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Events of the types it handles that it has not applied yet.
    #[sqlx(default)]
    pub lag: i64,
    /// The version this binary's code would build (None: not a projection of this binary).
    #[sqlx(default)]
    pub code_version: Option<i32>,
}

/// The rows of every projection slot, with lag, plus one `not started` row for each known projection without
/// rows yet.
pub async fn status(
    log: &EventLog,
    known: &[Arc<dyn Projection>],
) -> Result<Vec<SlotStatus>, sqlx::Error> {
    let mut rows: Vec<SlotStatus> = sqlx::query_as(
        "select p.name, p.slot, p.version, p.status, p.checkpoint_xid, p.checkpoint_position, p.events_applied,
                p.error, p.error_position, p.error_event_id, p.updated_at,
                l.holder, l.expires_at as lease_expires_at
           from public.projections p
           left join public.projection_leases l on l.name = p.name and l.slot = p.slot and l.expires_at > now()
          order by p.name, p.slot desc",
    )
    .fetch_all(log.pool())
    .await?;
    for row in &mut rows {
        let projection = known.iter().find(|p| p.name() == row.name);
        row.code_version = projection.map(|p| p.version());
        let types = projection.and_then(|p| p.event_types());
        let at = Checkpoint {
            xid: row.checkpoint_xid,
            position: row.checkpoint_position,
        };
        row.lag = log.count_after(at, types.as_deref()).await?;
    }
    for projection in known {
        if !rows.iter().any(|r| r.name == projection.name()) {
            let lag = log
                .count_after(Checkpoint::START, projection.event_types().as_deref())
                .await?;
            rows.push(SlotStatus {
                name: projection.name().to_owned(),
                slot: "live".to_owned(),
                version: 0,
                status: "not started".to_owned(),
                checkpoint_xid: 0,
                checkpoint_position: 0,
                events_applied: 0,
                error: None,
                error_position: None,
                error_event_id: None,
                updated_at: Utc::now(),
                holder: None,
                lease_expires_at: None,
                lag,
                code_version: Some(projection.version()),
            });
        }
    }
    Ok(rows)
}
