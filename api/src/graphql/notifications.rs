//! Notifications in GraphQL: the list, marking read, and a live feed of new ones over the WebSocket.

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge, OpaqueCursor};
use async_graphql::{Context, Enum, Object, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use commands::inbox::Selection;
use futures_util::Stream;
use futures_util::stream::{self, StreamExt};
use projections::notifications::{self as model, NotificationRow};
use uuid::Uuid;

use super::{Services, SignedIn, cursor, page_size, read_after, request, services, viewer};
use crate::error::ApiError;

/// Why you were notified.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "domain::notices::NotificationKind")]
pub enum NotificationKind {
    /// A track you are enrolled in started: its first assignment is open.
    TrackStarted,
    /// You joined a running track.
    TrackJoined,
    /// The assignment you have no solution for yet is due soon (at 80 % of its time).
    DeadlineReminder,
    /// An assignment's deadline moved later.
    DeadlineExtended,
    /// Solutions were allocated to you for review.
    ReviewsAssigned,
    /// A peer reviewed your solution.
    ReviewReceived,
    /// You gave the reviews you owed: the open assignment is open to you.
    AssignmentUnlocked,
    /// Someone booked your slot.
    SlotBooked,
    /// The other side cancelled an interview.
    BookingCancelled,
    /// An interview starts soon.
    InterviewReminder,
    /// Your interviewer gave feedback.
    FeedbackReceived,
    /// Your feedback was accepted: you earned a point.
    PointEarned,
    /// The interviewee disputed your feedback.
    FeedbackDisputed,
    /// You were reported absent.
    NoShowReported,
    /// A no-show report on your interview is contested.
    NoShowContested,
    /// An admin decided a contested no-show.
    NoShowResolved,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct Notification {
    pub id: Uuid,
    pub kind: NotificationKind,
    pub track_id: Option<Uuid>,
    /// The assignment's number, when it is about one.
    pub assignment: Option<i32>,
    pub title: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub read: bool,
    pub read_at: Option<DateTime<Utc>>,
    /// The log position of the event it comes from.
    pub position: i64,
}

impl From<NotificationRow> for Notification {
    fn from(row: NotificationRow) -> Self {
        Self {
            id: row.id,
            kind: row.kind.into(),
            // the tracks' notices are about a track, and an assignment of it (by index) when one
            track_id: row
                .stream_id
                .strip_prefix("track-")
                .and_then(|id| id.parse().ok()),
            assignment: row.item.map(|i| i + 1),
            title: row.title,
            body: row.body,
            created_at: row.created_at,
            read: row.read_at.is_some(),
            read_at: row.read_at,
            position: row.position,
        }
    }
}

#[derive(SimpleObject, Debug)]
pub struct MarkReadPayload {
    /// How many notifications turned read.
    pub marked: i32,
    pub position: Option<i64>,
}

#[derive(Default)]
pub struct NotificationsQuery;

#[Object]
impl NotificationsQuery {
    /// Your notifications, newest first.
    #[graphql(guard = "SignedIn")]
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] unread_only: bool,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Connection<OpaqueCursor<(i64, Uuid)>, Notification>> {
        let user = viewer(ctx).require_user()?;
        let limit = page_size("first", first)?;
        let after = cursor::<OpaqueCursor<(i64, Uuid)>>(after)?.map(|c| c.0);
        read_after(ctx, min_position, &[model::NAME]).await?;
        let mut rows = model::list(&services(ctx).pool, user, unread_only, after, limit + 1)
            .await
            .map_err(ApiError::from)?;
        let has_next = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let mut connection = Connection::new(after.is_some(), has_next);
        connection.edges.extend(rows.into_iter().map(|row| {
            Edge::new(
                OpaqueCursor((row.position, row.id)),
                Notification::from(row),
            )
        }));
        Ok(connection)
    }

    /// How many of your notifications are unread.
    #[graphql(guard = "SignedIn")]
    async fn unread_notification_count(
        &self,
        ctx: &Context<'_>,
        min_position: Option<i64>,
    ) -> async_graphql::Result<i64> {
        let user = viewer(ctx).require_user()?;
        read_after(ctx, min_position, &[model::NAME]).await?;
        Ok(model::unread_count(&services(ctx).pool, user)
            .await
            .map_err(ApiError::from)?)
    }
}

#[derive(Default)]
pub struct NotificationsMutation;

#[Object]
impl NotificationsMutation {
    /// Marks notifications read: those of `ids`, or with `all`, every unread one (up to 500 at a time).
    #[graphql(guard = "SignedIn")]
    async fn mark_notifications_read(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] ids: Vec<Uuid>,
        #[graphql(default)] all: bool,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<MarkReadPayload> {
        let selection = match (all, ids.is_empty()) {
            (true, true) => Selection::AllUnread,
            (false, false) => Selection::Ids(ids),
            _ => return Err(ApiError::validation("give either ids or all: true").into()),
        };
        let marked = services(ctx)
            .app
            .inbox
            .mark_read(&request(ctx, command_id), selection)
            .await
            .map_err(ApiError::from)?;
        Ok(MarkReadPayload {
            marked: marked.marked as i32,
            position: marked.position,
        })
    }
}

#[derive(Default)]
pub struct NotificationsSubscription;

#[Subscription]
impl NotificationsSubscription {
    /// Your new notifications, live: from the moment you subscribe, or those from events after log position
    /// `after` (a notification's `position`, or one a mutation returned), so a client that reconnects misses
    /// nothing.
    #[graphql(guard = "SignedIn")]
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        after: Option<i64>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<Notification>> + use<>>
    {
        let user = viewer(ctx).require_user()?;
        if after.is_some_and(|a| a < 0) {
            return Err(ApiError::validation("after cannot be negative").into());
        }
        let services: Arc<Services> = ctx.data_unchecked::<Arc<Services>>().clone();
        let feed = services
            .projections
            .feed(after, services.projections.event_types(model::NAME))
            .await
            .map_err(ApiError::from)?;
        // each batch of events that may notify someone: once the read model has applied it, the viewer's
        // notifications from exactly those events
        let batches = stream::unfold(Some((feed, services)), move |state| async move {
            let (mut feed, services) = state?;
            let pushed = async {
                let batch = feed.next_batch().await.map_err(ApiError::internal)?;
                let Some(last) = batch.last() else {
                    return Ok(vec![]);
                };
                services
                    .projections
                    .wait_for_some(&[model::NAME], last.position, services.read_timeout)
                    .await?;
                let positions: Vec<i64> = batch.iter().map(|e| e.position).collect();
                let rows = model::at_positions(&services.pool, user, &positions).await?;
                Ok::<_, ApiError>(
                    rows.into_iter()
                        .map(|r| Ok(Notification::from(r)))
                        .collect(),
                )
            }
            .await;
            match pushed {
                Ok(items) => Some((stream::iter(items), Some((feed, services)))),
                // one coded error ends the subscription, never silently
                Err(error) => Some((stream::iter(vec![Err(error.into())]), None)),
            }
        });
        Ok(super::until_stopping(ctx, batches.flatten()))
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::EnumType;

    use super::NotificationKind;

    /// The mirror converts exhaustively both ways, so it has exactly the domain's kinds: as many items as
    /// `NotificationKind::ALL` lists means `ALL` (and so `parse`) misses none.
    #[test]
    fn the_domain_lists_every_kind_the_schema_shows() {
        assert_eq!(
            <NotificationKind as EnumType>::items().len(),
            domain::notices::NotificationKind::ALL.len()
        );
    }
}
