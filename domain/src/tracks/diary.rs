//! A participant's diary in a track: comments under assignments, for them and for admins.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::TRACK_NAMESPACE;
use crate::{Decider, StreamId, Timestamp};

/// The stream of `participant`'s diary in `track`.
pub fn diary_stream(track: Uuid, participant: Uuid) -> StreamId {
    let mut name = Vec::with_capacity(38);
    name.extend_from_slice(b"diary");
    name.extend_from_slice(track.as_bytes());
    name.extend_from_slice(participant.as_bytes());
    StreamId::new("diary", Uuid::new_v5(&TRACK_NAMESPACE, &name))
        .expect("'diary' is a valid category")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiaryCommand {
    Write {
        entry_id: Uuid,
        track: Uuid,
        assignment: u32,
        participant: Uuid,
        text: String,
        /// Facts read from the track's stream by the caller: whether `participant` is enrolled, and whether
        /// `assignment` has opened.
        enrolled: bool,
        assignment_opened: bool,
        at: Timestamp,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum DiaryEvent {
    DiaryEntryWritten {
        entry_id: Uuid,
        track: Uuid,
        assignment: u32,
        participant: Uuid,
        text: String,
        at: Timestamp,
    },
}

impl DiaryEvent {}

crate::tagged_events!(DiaryEvent { DiaryEntryWritten });

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiaryError {
    #[error("no such track")]
    NoSuchTrack,
    #[error("a diary entry has 1 to 10000 characters")]
    Length,
    #[error("you are not enrolled in this track")]
    NotEnrolled,
    #[error("assignment {} has not opened yet", .0 + 1)]
    NotOpened(u32),
}

/// The entries written so far (so a retried write adds nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiaryState {
    pub entries: BTreeSet<Uuid>,
}

pub struct Diary;

impl Decider for Diary {
    type Command = DiaryCommand;
    type Event = DiaryEvent;
    type State = DiaryState;
    type Error = DiaryError;

    fn initial_state() -> DiaryState {
        DiaryState::default()
    }

    fn decide(command: &DiaryCommand, state: &DiaryState) -> Result<Vec<DiaryEvent>, DiaryError> {
        let DiaryCommand::Write {
            entry_id,
            track,
            assignment,
            participant,
            text,
            enrolled,
            assignment_opened,
            at,
        } = command;
        if state.entries.contains(entry_id) {
            return Ok(vec![]);
        }
        let text = text.trim();
        if text.is_empty() || text.chars().count() > 10_000 {
            return Err(DiaryError::Length);
        }
        if !enrolled {
            return Err(DiaryError::NotEnrolled);
        }
        if !assignment_opened {
            return Err(DiaryError::NotOpened(*assignment));
        }
        Ok(vec![DiaryEvent::DiaryEntryWritten {
            entry_id: *entry_id,
            track: *track,
            assignment: *assignment,
            participant: *participant,
            text: text.to_owned(),
            at: *at,
        }])
    }

    fn evolve(mut state: DiaryState, event: &DiaryEvent) -> DiaryState {
        let DiaryEvent::DiaryEntryWritten { entry_id, .. } = event;
        state.entries.insert(*entry_id);
        state
    }
}
