//! A user's inbox (`inbox-<user uuid>`): which of their notifications they have read.
//!
//! Notifications themselves are derived from other events by the `notifications` read model (a reminder, a
//! review received...), under ids that are stable across rebuilds; marking them read is the user's own act,
//! so it is an event.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Decider, StreamId, Timestamp};

/// The most notifications one command marks.
pub const MAX_MARKED: usize = 500;

pub fn inbox_stream(user: Uuid) -> StreamId {
    StreamId::new("inbox", user).expect("'inbox' is a valid category")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboxCommand {
    MarkRead { ids: Vec<Uuid>, at: Timestamp },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum InboxEvent {
    NotificationsRead { ids: Vec<Uuid>, at: Timestamp },
}

impl InboxEvent {}

crate::tagged_events!(InboxEvent { NotificationsRead });

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboxError {
    #[error("mark 1 to {MAX_MARKED} notifications at a time")]
    Count,
    #[error("no notification {0} of yours")]
    NotYours(Uuid),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboxState {
    pub read: BTreeSet<Uuid>,
}

pub struct Inbox;

impl Decider for Inbox {
    type Command = InboxCommand;
    type Event = InboxEvent;
    type State = InboxState;
    type Error = InboxError;

    fn initial_state() -> InboxState {
        InboxState::default()
    }

    fn decide(command: &InboxCommand, state: &InboxState) -> Result<Vec<InboxEvent>, InboxError> {
        let InboxCommand::MarkRead { ids, at } = command;
        if ids.is_empty() || ids.len() > MAX_MARKED {
            return Err(InboxError::Count);
        }
        let unread: BTreeSet<Uuid> = ids
            .iter()
            .filter(|id| !state.read.contains(id))
            .copied()
            .collect();
        if unread.is_empty() {
            return Ok(vec![]);
        }
        Ok(vec![InboxEvent::NotificationsRead {
            ids: unread.into_iter().collect(),
            at: *at,
        }])
    }

    fn evolve(mut state: InboxState, event: &InboxEvent) -> InboxState {
        let InboxEvent::NotificationsRead { ids, .. } = event;
        state.read.extend(ids);
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{at, given};

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn marking_notifications_read_records_only_the_unread_ones() {
        given::<Inbox>([InboxEvent::NotificationsRead {
            ids: vec![id(1)],
            at: at(10),
        }])
        .when(InboxCommand::MarkRead {
            ids: vec![id(2), id(1), id(2)],
            at: at(20),
        })
        .then([InboxEvent::NotificationsRead {
            ids: vec![id(2)],
            at: at(20),
        }]);
    }

    #[test]
    fn marking_read_notifications_again_changes_nothing() {
        given::<Inbox>([InboxEvent::NotificationsRead {
            ids: vec![id(1)],
            at: at(10),
        }])
        .when(InboxCommand::MarkRead {
            ids: vec![id(1)],
            at: at(20),
        })
        .then([]);
    }

    #[test]
    fn an_empty_or_oversized_batch_is_refused() {
        given::<Inbox>([])
            .when(InboxCommand::MarkRead {
                ids: vec![],
                at: at(1),
            })
            .then_err(InboxError::Count);
        let many = (0..=MAX_MARKED as u128).map(id).collect();
        given::<Inbox>([])
            .when(InboxCommand::MarkRead {
                ids: many,
                at: at(1),
            })
            .then_err(InboxError::Count);
    }
}
