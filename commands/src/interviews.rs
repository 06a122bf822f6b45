//! Running a slot command with its effects: the slot, the calendars and the ledgers it touches are loaded, the
//! slot decides on facts read from them, each resulting event's effects are decided by the calendar and ledger
//! deciders, and everything is appended at once (each stream at the version it was loaded at).

use domain::interviews::{
    Calendar, CalendarState, Effect, InterviewError, Ledger, LedgerState, Slot, SlotCommand,
    SlotEvent, SlotState, calendar_stream, effects, points_stream, slot_stream,
};
use domain::{Decider, StreamId};
use uuid::Uuid;

use crate::{CommandError, CommandExecutor, Loaded, Metadata, NewEvent, Written, new_events};

/// What a slot command is decided on.
pub struct Facts<'a> {
    pub slot: Option<SlotState>,
    loaded: &'a Loaded,
}

impl Facts<'_> {
    pub fn calendar(&self, user: Uuid) -> CalendarState {
        self.loaded.state::<Calendar>(&calendar_stream(user))
    }

    pub fn ledger(&self, user: Uuid) -> LedgerState {
        self.loaded.state::<Ledger>(&points_stream(user))
    }

    /// `booker`'s booking of slot `slot` at `at`, with the facts it is judged on: both calendars around the
    /// slot's time and the balance of whoever would be the interviewee.
    pub fn book(&self, slot: Uuid, booker: Uuid, at: i64) -> Result<SlotCommand, InterviewError> {
        let state = self.slot.as_ref().ok_or(InterviewError::NotFound)?;
        let (start, end) = (state.spec.start, state.spec.end());
        let (_, interviewee) = state.sides_if_booked_by(booker);
        Ok(SlotCommand::Book {
            booker,
            booker_free: self.calendar(booker).is_free(slot, start, end),
            owner_free: self.calendar(state.owner).is_free(slot, start, end),
            interviewee_balance: self.ledger(interviewee).balance,
            at,
        })
    }
}

/// What a slot command wrote, and the slot events among it.
pub struct SlotWritten {
    pub written: Written,
    pub events: Vec<SlotEvent>,
}

/// Runs the slot command `command` builds from the loaded facts on slot `slot`, touching the calendars and
/// ledgers of `people` (the slot's parties, plus whoever acts). An effect on someone else's streams means the
/// slot changed hands meanwhile: the command is refused with [`InterviewError::Changed`].
pub async fn execute_slot<F>(
    executor: &CommandExecutor,
    label: &'static str,
    slot: Uuid,
    people: &[Uuid],
    metadata: &Metadata,
    command: F,
) -> Result<SlotWritten, CommandError<InterviewError>>
where
    F: Fn(&Facts<'_>) -> Result<SlotCommand, InterviewError>,
{
    let mut people = people.to_vec();
    people.sort_unstable();
    people.dedup();
    let slot_stream = slot_stream(slot);
    let mut streams = vec![slot_stream.clone()];
    streams.extend(
        people
            .iter()
            .flat_map(|p| [calendar_stream(*p), points_stream(*p)]),
    );
    let decided = std::sync::Mutex::new(vec![]);
    let written = executor
        .execute_across(label, &streams, metadata, |loaded| {
            let facts = Facts {
                slot: loaded.state::<Slot>(&slot_stream),
                loaded,
            };
            let command = command(&facts)?;
            let slot_events = Slot::decide(&command, &facts.slot)?;
            let mut calendars: Vec<(Uuid, CalendarState, Vec<_>)> = vec![];
            let mut ledgers: Vec<(Uuid, LedgerState, Vec<_>)> = vec![];
            let mut state = facts.slot.clone();
            for event in &slot_events {
                for effect in effects(slot, state.as_ref(), event) {
                    let user = match &effect {
                        Effect::Calendar(user, _) | Effect::Ledger(user, _) => *user,
                    };
                    if !people.contains(&user) {
                        return Err(InterviewError::Changed);
                    }
                    match effect {
                        Effect::Calendar(user, command) => {
                            let entry = entry(&mut calendars, user, || facts.calendar(user));
                            apply::<Calendar>(&mut entry.1, &mut entry.2, &command)?;
                        }
                        Effect::Ledger(user, command) => {
                            let entry = entry(&mut ledgers, user, || facts.ledger(user));
                            apply::<Ledger>(&mut entry.1, &mut entry.2, &command)?;
                        }
                    }
                }
                state = Slot::evolve(state, event);
            }
            let mut writes: Vec<(StreamId, Vec<NewEvent>)> =
                vec![(slot_stream.clone(), new_events(&slot_events))];
            writes.extend(
                calendars
                    .iter()
                    .map(|(u, _, e)| (calendar_stream(*u), new_events(e))),
            );
            writes.extend(
                ledgers
                    .iter()
                    .map(|(u, _, e)| (points_stream(*u), new_events(e))),
            );
            *decided.lock().unwrap_or_else(|p| p.into_inner()) = slot_events;
            Ok(writes)
        })
        .await?;
    let events = if written.events > 0 {
        decided.into_inner().unwrap_or_else(|p| p.into_inner())
    } else {
        vec![]
    };
    Ok(SlotWritten { written, events })
}

fn entry<S, E>(
    entries: &mut Vec<(Uuid, S, Vec<E>)>,
    user: Uuid,
    load: impl FnOnce() -> S,
) -> &mut (Uuid, S, Vec<E>) {
    let index = match entries.iter().position(|(u, _, _)| *u == user) {
        Some(index) => index,
        None => {
            entries.push((user, load(), vec![]));
            entries.len() - 1
        }
    };
    &mut entries[index]
}

fn apply<D: Decider<Error = InterviewError>>(
    state: &mut D::State,
    events: &mut Vec<D::Event>,
    command: &D::Command,
) -> Result<(), InterviewError>
where
    D::State: Clone,
    D::Event: Clone,
{
    for event in D::decide(command, state)? {
        *state = D::evolve(state.clone(), &event);
        events.push(event);
    }
    Ok(())
}
