//! Operations for admins: projection states, and the log as a live subscription for auditing.

use async_graphql::{Context, Enum, Json, Object, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use futures_util::stream::{self, StreamExt};
use projections::RecordedEvent;
use uuid::Uuid;

use super::{AdminOnly, admin, services};
use crate::error::ApiError;

/// Fields of event data never shown through the API.
const SECRET_FIELDS: &[&str] = &["password_hash"];

/// Where a projection's runner is.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "projections::Status")]
pub enum ProjectionStatus {
    /// Not started yet, or another process owns it (this one waits to take over).
    Waiting,
    /// Building from the start of the log beside the serving tables.
    Building,
    Running,
    /// An event failed to apply; stopped there.
    Failed,
    Stopped,
}

/// One projection's state in this process.
#[derive(SimpleObject, Debug)]
pub struct ProjectionState {
    pub name: String,
    pub status: ProjectionStatus,
    pub checkpoint_position: i64,
    pub events_applied: i64,
    pub caught_up: bool,
    pub lag_seconds: Option<f64>,
    pub error: Option<String>,
}

/// An event of the log, as auditors see it (secrets such as password hashes removed).
#[derive(SimpleObject, Debug)]
pub struct LogEvent {
    pub position: i64,
    pub stream_id: String,
    pub version: i64,
    pub event_id: Uuid,
    #[graphql(name = "type")]
    pub event_type: String,
    pub schema_version: i32,
    pub data: Json<serde_json::Value>,
    pub actor_id: Option<String>,
    /// Null when the event recorded no role; a role this server does not know is an error of this field.
    pub actor_role: async_graphql::Result<Option<ActorRole>>,
    pub source: String,
    pub command_id: Option<Uuid>,
    pub recorded_at: DateTime<Utc>,
}

impl From<RecordedEvent> for LogEvent {
    fn from(event: RecordedEvent) -> Self {
        let mut data = event.data;
        redact(&mut data);
        Self {
            position: event.position,
            stream_id: event.stream_id,
            version: event.version,
            event_id: event.event_id,
            event_type: event.event_type,
            schema_version: event.schema_version,
            data: Json(data),
            actor_id: event.actor_id,
            actor_role: actor_role(event.actor_role.as_deref()),
            source: event.source,
            command_id: event.command_id,
            recorded_at: event.recorded_at,
        }
    }
}

/// Who acted, by the kind of actor an event's metadata records.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "commands::request::ActorRole")]
pub enum ActorRole {
    /// Someone not signed in (registering, signing in).
    Anonymous,
    /// A signed-in user.
    User,
    /// A signed-in admin.
    Admin,
    /// A worker (the deadline worker, the scraper).
    Worker,
    /// Academy itself (the start-up bootstrap of an admin).
    System,
}

/// The role an event recorded, read with the one mapping that writes it ([`commands::request::ActorRole`]).
fn actor_role(recorded: Option<&str>) -> async_graphql::Result<Option<ActorRole>> {
    recorded
        .map(|name| {
            commands::request::ActorRole::parse(name)
                .map(ActorRole::from)
                .ok_or_else(|| {
                    ApiError::internal(format!("an event records the unknown actor role {name:?}"))
                        .into()
                })
        })
        .transpose()
}

fn redact(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if SECRET_FIELDS.contains(&key.as_str()) {
                    *inner = serde_json::Value::String("[redacted]".to_owned());
                } else {
                    redact(inner);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

#[derive(Default)]
pub struct OperationsQuery;

#[Object]
impl OperationsQuery {
    /// Every read model this process maintains, with its progress.
    #[graphql(guard = "AdminOnly", directive = admin::apply())]
    async fn projections(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ProjectionState>> {
        let now = Utc::now();
        let projections = &services(ctx).projections;
        let head = projections.head().await.map_err(ApiError::from)?;
        Ok(projections
            .progress()
            .into_iter()
            .map(|(name, progress)| ProjectionState {
                name: name.to_owned(),
                status: progress.status.into(),
                // a checkpoint at the horizon stands for "everything so far"
                checkpoint_position: progress.checkpoint.position.min(head),
                events_applied: progress.events_applied,
                caught_up: progress.caught_up,
                lag_seconds: progress.lag(now).map(|lag| lag.as_seconds_f64()),
                error: progress.error,
            })
            .collect())
    }
}

#[derive(Default)]
pub struct OperationsSubscription;

#[Subscription]
impl OperationsSubscription {
    /// The log as it grows, in commit order: every event after position `after` (0: from the start; omitted:
    /// from now), only of `types` when given.
    #[graphql(guard = "AdminOnly", directive = admin::apply())]
    async fn log_events(
        &self,
        ctx: &Context<'_>,
        after: Option<i64>,
        types: Option<Vec<String>>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<LogEvent>> + use<>> {
        if after.is_some_and(|a| a < 0) {
            return Err(ApiError::validation("after cannot be negative").into());
        }
        let types = types.filter(|t| !t.is_empty());
        let feed = services(ctx)
            .projections
            .feed(after, types)
            .await
            .map_err(ApiError::from)?;
        // a failing read ends the subscription with one coded error, not silently
        let batches = stream::unfold(Some(feed), |feed| async move {
            let mut feed = feed?;
            match feed.next_batch().await {
                Ok(batch) => {
                    let events: Vec<async_graphql::Result<LogEvent>> =
                        batch.into_iter().map(|e| Ok(LogEvent::from(e))).collect();
                    Some((stream::iter(events), Some(feed)))
                }
                Err(error) => {
                    let error = async_graphql::Error::from(ApiError::internal(error));
                    Some((stream::iter(vec![Err(error)]), None))
                }
            }
        });
        Ok(super::until_stopping(ctx, batches.flatten()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_actor_role_is_read_by_its_name_and_an_unknown_one_is_an_error() {
        assert_eq!(actor_role(None).unwrap(), None);
        assert_eq!(actor_role(Some("admin")).unwrap(), Some(ActorRole::Admin));
        assert_eq!(
            actor_role(Some("anonymous")).unwrap(),
            Some(ActorRole::Anonymous)
        );
        assert!(actor_role(Some("superuser")).is_err());
    }

    #[test]
    fn password_hashes_never_leave_the_server() {
        let mut data = serde_json::json!({
            "email": "a@b.c",
            "password_hash": "$argon2id$...",
            "nested": [{ "password_hash": "x" }]
        });
        redact(&mut data);
        assert_eq!(data["password_hash"], "[redacted]");
        assert_eq!(data["nested"][0]["password_hash"], "[redacted]");
        assert_eq!(data["email"], "a@b.c");
    }
}
