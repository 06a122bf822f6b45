//! The inbox's use case: marking one's notifications read. Which notifications are the user's comes from the
//! `notifications` read model (a notification's id derives from an event and a user, so the log alone cannot
//! tell); what was read is the `Inbox` decider's.

use domain::inbox::{
    Inbox as InboxDecider, InboxCommand, InboxError, InboxEvent, MAX_MARKED, inbox_stream,
};
use projections::notifications;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{CommandError, CommandExecutor, InternalError, Request};

/// Which notifications to mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These (each must be the user's).
    Ids(Vec<Uuid>),
    /// Every unread one, up to [`MAX_MARKED`] at a time.
    AllUnread,
}

/// What marking did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marked {
    /// How many were unread and are read now.
    pub marked: usize,
    pub position: Option<i64>,
}

/// The inbox service.
#[derive(Debug, Clone)]
pub struct Inbox {
    executor: CommandExecutor,
    /// The read models, for which notifications are the user's.
    pool: PgPool,
}

impl Inbox {
    pub fn new(executor: CommandExecutor, pool: PgPool) -> Self {
        Self { executor, pool }
    }

    /// Marks the user's notifications read.
    pub async fn mark_read(
        &self,
        request: &Request,
        selection: Selection,
    ) -> Result<Marked, CommandError<InboxError>> {
        let user = request.user()?;
        let ids = self.resolve(user, selection).await?;
        if ids.is_empty() {
            return Ok(Marked {
                marked: 0,
                position: None,
            });
        }
        let joined: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        let metadata = request.metadata("markNotificationsRead", &[&joined.join(",")]);
        let command = InboxCommand::MarkRead {
            ids,
            at: request.at,
        };
        let executed = self
            .executor
            .execute::<InboxDecider>(&inbox_stream(user), &command, &metadata)
            .await?;
        let marked = executed
            .events
            .iter()
            .map(|InboxEvent::NotificationsRead { ids, .. }| ids.len())
            .sum();
        Ok(Marked {
            marked,
            position: executed.position(),
        })
    }

    /// The ids `selection` names, checked to be `user`'s.
    async fn resolve(
        &self,
        user: Uuid,
        selection: Selection,
    ) -> Result<Vec<Uuid>, CommandError<InboxError>> {
        let internal = |e: sqlx::Error| CommandError::Internal(InternalError::from(e));
        match selection {
            Selection::AllUnread => notifications::unread_ids(&self.pool, user, MAX_MARKED as i64)
                .await
                .map_err(internal),
            Selection::Ids(ids) => {
                if ids.len() > MAX_MARKED {
                    return Err(CommandError::Rejected(InboxError::Count));
                }
                let owned = notifications::owned(&self.pool, user, &ids)
                    .await
                    .map_err(internal)?;
                match ids.iter().find(|id| !owned.contains(id)) {
                    Some(unknown) => Err(CommandError::Rejected(InboxError::NotYours(*unknown))),
                    None => Ok(owned),
                }
            }
        }
    }
}
