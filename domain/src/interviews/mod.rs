//! Peer mock interviews: a board of slots, race-free booking, feedback, and a points economy.
//!
//! Three aggregates, written together by one atomic multi-stream append whenever a rule spans them:
//! - [`Slot`] (`slot-<uuid>`): one interview's life: published, booked, reminded, ended, feedback, settled.
//! - [`Calendar`] (`calendar-<user uuid>`): a user's interviews, so nobody ever holds two overlapping ones.
//! - [`Ledger`] (`points-<user uuid>`): a user's points: grants, holds (escrow), captures, releases, earnings.
//!
//! A slot command is decided on the slot's state plus facts read from the calendars and ledgers involved
//! (whether each is free, the interviewee's balance); each slot event then has [`effects`] on calendars and
//! ledgers, decided by their own deciders, so their invariants (no overlap, a balance never below zero) hold
//! even if a slot rule were wrong. The caller appends everything at once, each stream at the version it read.
//!
//! Points: taking the interviewee role costs [`INTERVIEW_COST`] points, held from the booking; the interviewer
//! earns [`INTERVIEWER_REWARD`] when the interviewee accepts the feedback (or disputes it: the dispute is
//! recorded for admins, the interview happened), or when nobody answers it in time (auto-accept). The hold is
//! released (refunded) when either side cancels before the cut-off, when the interviewer does not show up, or
//! when no feedback comes within its window. An interviewee who does not show up loses the hold and the
//! interviewer earns their point.

mod link;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::rename_field;
use crate::trainer::Level;
use crate::{Decider, DecodeError, StreamId, Timestamp};

pub use link::{MeetingLink, MeetingLinkError};

/// Points an interviewee pays for an interview.
pub const INTERVIEW_COST: i64 = 3;
/// Points an interviewer earns for one.
pub const INTERVIEWER_REWARD: i64 = 1;
/// How long after an interview's end a no-show can be reported (and a report contested).
pub const NO_SHOW_WINDOW: TimeDelta = TimeDelta::hours(24);

/// A timer of one booking of a slot, as the `deadlines` read model stores it (JSON): the booking's number (a
/// slot re-booked after a cancellation has timers of its own, [`SlotState::bookings`]) and which timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SlotTimer {
    pub booking: u32,
    pub timer: InterviewTimer,
}

/// The timers of a booked interview, which the deadline worker fires when they are due. Its serde name is
/// [`InterviewTimer::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterviewTimer {
    /// The reminder a day before the start.
    RemindDayBefore,
    /// The reminder an hour before the start.
    RemindHourBefore,
    /// The end: the interview awaits feedback.
    End,
    /// Feedback the interviewee did not answer is accepted for them.
    AutoAccept,
    /// No feedback came in its window: the interviewee is refunded.
    ExpireFeedback,
    /// A no-show report nobody contested settles.
    ConfirmNoShow,
}

impl InterviewTimer {
    pub const ALL: [InterviewTimer; 6] = [
        InterviewTimer::RemindDayBefore,
        InterviewTimer::RemindHourBefore,
        InterviewTimer::End,
        InterviewTimer::AutoAccept,
        InterviewTimer::ExpireFeedback,
        InterviewTimer::ConfirmNoShow,
    ];

    /// The reminders, each with how many hours before the start it goes out.
    pub const REMINDERS: [(InterviewTimer, u32); 2] = [
        (InterviewTimer::RemindDayBefore, 24),
        (InterviewTimer::RemindHourBefore, 1),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InterviewTimer::RemindDayBefore => "remind_day_before",
            InterviewTimer::RemindHourBefore => "remind_hour_before",
            InterviewTimer::End => "end",
            InterviewTimer::AutoAccept => "auto_accept",
            InterviewTimer::ExpireFeedback => "expire_feedback",
            InterviewTimer::ConfirmNoShow => "confirm_no_show",
        }
    }

    /// The reminder timer sent `hours_before` the start.
    pub fn reminder(hours_before: u32) -> Option<Self> {
        Self::REMINDERS
            .into_iter()
            .find(|(_, hours)| *hours == hours_before)
            .map(|(timer, _)| timer)
    }

    /// The slot command firing this timer at `at`.
    pub fn command(self, policy: &Policy, at: Timestamp) -> SlotCommand {
        match self {
            InterviewTimer::RemindDayBefore | InterviewTimer::RemindHourBefore => {
                let hours_before = Self::REMINDERS
                    .into_iter()
                    .find(|(timer, _)| *timer == self)
                    .map_or(0, |(_, hours)| hours);
                SlotCommand::Remind { hours_before, at }
            }
            InterviewTimer::End => SlotCommand::End {
                feedback_within: policy.feedback_within,
                at,
            },
            InterviewTimer::AutoAccept => SlotCommand::AutoAccept { at },
            InterviewTimer::ExpireFeedback => SlotCommand::ExpireFeedback { at },
            InterviewTimer::ConfirmNoShow => SlotCommand::ConfirmNoShow { at },
        }
    }
}

/// When the reminder `hours_before` the start of an interview starting at `start` is due.
pub fn reminder_time(start: Timestamp, hours_before: u32) -> Timestamp {
    start - TimeDelta::hours(i64::from(hours_before))
}

/// The configurable times of the interview rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// A booking can be cancelled until this long before the start.
    pub cancel_cutoff: TimeDelta,
    /// The interviewer has this long after the end to give feedback; then the hold is refunded.
    pub feedback_within: TimeDelta,
    /// The interviewee has this long to answer feedback; then it is accepted for them.
    pub accept_within: TimeDelta,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            cancel_cutoff: TimeDelta::hours(2),
            feedback_within: TimeDelta::hours(72),
            accept_within: TimeDelta::hours(72),
        }
    }
}

pub fn slot_stream(id: Uuid) -> StreamId {
    StreamId::new("slot", id).expect("'slot' is a valid category")
}

pub fn calendar_stream(user: Uuid) -> StreamId {
    StreamId::new("calendar", user).expect("'calendar' is a valid category")
}

pub fn points_stream(user: Uuid) -> StreamId {
    StreamId::new("points", user).expect("'points' is a valid category")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Interviewer,
    Interviewee,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Interviewer, Role::Interviewee];

    pub fn other(self) -> Role {
        match self {
            Role::Interviewer => Role::Interviewee,
            Role::Interviewee => Role::Interviewer,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Interviewer => "interviewer",
            Role::Interviewee => "interviewee",
        }
    }

    /// The role [`Role::as_str`] names.
    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == stored)
    }
}

/// What a slot offers, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotSpec {
    /// The role the publisher takes.
    pub role: Role,
    pub start: Timestamp,
    pub minutes: u32,
    pub link: MeetingLink,
    pub topic: String,
    pub level: Level,
}

impl SlotSpec {
    pub fn parse(
        role: Role,
        start: Timestamp,
        minutes: u32,
        link: &str,
        topic: &str,
        level: Level,
    ) -> Result<Self, InterviewError> {
        if !(15..=240).contains(&minutes) {
            return Err(InterviewError::Duration);
        }
        let topic = topic.trim();
        if topic.contains('\0') {
            return Err(InterviewError::NulCharacter);
        }
        if topic.is_empty() || topic.chars().count() > 64 {
            return Err(InterviewError::Topic);
        }
        let link = MeetingLink::parse(link).map_err(|e| InterviewError::Link(e.to_string()))?;
        let spec = Self {
            role,
            start,
            minutes,
            link,
            topic: topic.to_lowercase(),
            level,
        };
        // `end` must be an instant too (a start that late is refused as not ahead by the decider anyway)
        if spec.start.checked_add(spec.duration()).is_none() {
            return Err(InterviewError::StartNotAhead);
        }
        Ok(spec)
    }

    pub fn end(&self) -> Timestamp {
        self.start + self.duration()
    }

    fn duration(&self) -> TimeDelta {
        TimeDelta::minutes(i64::from(self.minutes))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterviewError {
    #[error("an interview lasts 15 to 240 minutes")]
    Duration,
    #[error("a topic has 1 to 64 characters")]
    Topic,
    #[error("{0}")]
    Link(String),
    #[error("the start must be in the future (and within a year)")]
    StartNotAhead,
    #[error("no such slot")]
    NotFound,
    #[error("this slot already exists")]
    AlreadyExists,
    #[error("you cannot book your own slot")]
    OwnSlot,
    #[error("this slot is already booked")]
    AlreadyBooked,
    #[error("this slot is not open for booking")]
    NotOpen,
    #[error("this interview has already started")]
    TooLate,
    #[error("the publisher no longer has the points this interview costs them")]
    PublisherCannotPay,
    #[error("text cannot contain NUL characters")]
    NulCharacter,
    #[error("you already have an interview at that time")]
    Overlap,
    #[error("the publisher already has an interview at that time")]
    OwnerBusy,
    #[error("the interviewee needs {INTERVIEW_COST} points and has {0}")]
    InsufficientPoints(i64),
    #[error("only the two sides of this interview may do that")]
    NotAParty,
    #[error("only the interviewer gives feedback")]
    NotInterviewer,
    #[error("only the interviewee answers the feedback")]
    NotInterviewee,
    #[error("the cut-off for cancelling has passed")]
    CutoffPassed,
    #[error("this interview can no longer be cancelled")]
    NotCancellable,
    #[error("this interview has not ended yet")]
    NotEnded,
    #[error("feedback is a score from 1 to 5 and a text of 1 to 5000 characters")]
    Feedback,
    #[error("feedback was already given")]
    FeedbackAlreadyGiven,
    #[error("the time for feedback is over")]
    FeedbackWindowClosed,
    #[error("there is no feedback to answer")]
    NoFeedback,
    #[error("a dispute's reason has 1 to 1000 characters")]
    Reason,
    #[error(
        "a no-show can be reported from the start until 24 hours after the end, before any feedback"
    )]
    NoShowWindow,
    #[error("the other side already reported a no-show; contest it instead")]
    NoShowAlreadyReported,
    #[error("nobody reported a no-show for this interview")]
    NoNoShowReport,
    #[error("only the side reported absent can contest the report")]
    NotAccused,
    #[error("the time to contest this report is over")]
    NoShowSettled,
    #[error("this no-show report is not contested")]
    NotContested,
    #[error("it is not time yet")]
    NotYetDue,
}

/// Why a [`Calendar`] refuses a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("you already have an interview at that time")]
    Overlap,
}

/// Why a [`Ledger`] refuses a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("the interviewee needs {INTERVIEW_COST} points and has {0}")]
    InsufficientPoints(i64),
}

/// A slot command's effect refused by a side's calendar is the slot's refusal: that side is busy.
impl From<CalendarError> for InterviewError {
    fn from(error: CalendarError) -> Self {
        match error {
            CalendarError::Overlap => InterviewError::Overlap,
        }
    }
}

/// A slot command's effect refused by a side's ledger is the slot's refusal: too few points.
impl From<LedgerError> for InterviewError {
    fn from(error: LedgerError) -> Self {
        match error {
            LedgerError::InsufficientPoints(balance) => InterviewError::InsufficientPoints(balance),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Slot

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotCommand {
    /// `owner_free`: no interview of the owner overlaps; `owner_balance`: their available points.
    Publish {
        owner: Uuid,
        spec: SlotSpec,
        owner_free: bool,
        owner_balance: i64,
        at: Timestamp,
    },
    /// Facts from both calendars and from the interviewee's ledger.
    Book {
        booker: Uuid,
        booker_free: bool,
        owner_free: bool,
        interviewee_balance: i64,
        at: Timestamp,
    },
    /// Before booking the owner withdraws the slot; after, either side cancels until `cutoff` before the start.
    Cancel {
        by: Uuid,
        cutoff: TimeDelta,
        at: Timestamp,
    },
    /// From the worker, `hours_before` the start.
    Remind {
        hours_before: u32,
        at: Timestamp,
    },
    /// From the worker at the end; feedback is due within `feedback_within`.
    End {
        feedback_within: TimeDelta,
        at: Timestamp,
    },
    GiveFeedback {
        by: Uuid,
        score: u8,
        text: String,
        feedback_within: TimeDelta,
        /// The interviewee has this long to answer before it is accepted for them.
        accept_within: TimeDelta,
        at: Timestamp,
    },
    Accept {
        by: Uuid,
        at: Timestamp,
    },
    /// From the worker once the time to answer is over.
    AutoAccept {
        at: Timestamp,
    },
    Dispute {
        by: Uuid,
        reason: String,
        at: Timestamp,
    },
    /// The other side did not show up. It settles after [`NO_SHOW_WINDOW`] unless the accused contests it.
    ReportNoShow {
        by: Uuid,
        at: Timestamp,
    },
    /// The side reported absent says they were there; an admin decides.
    ContestNoShow {
        by: Uuid,
        reason: String,
        at: Timestamp,
    },
    /// From the worker once an uncontested report's window is over.
    ConfirmNoShow {
        at: Timestamp,
    },
    /// An admin's decision on a contested report: who was absent (`None`: the interview took place).
    ResolveNoShow {
        by: Uuid,
        absent: Option<Role>,
        at: Timestamp,
    },
    /// From the worker when no feedback came in time.
    ExpireFeedback {
        at: Timestamp,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum SlotEvent {
    SlotPublished {
        owner: Uuid,
        spec: SlotSpec,
        at: Timestamp,
    },
    SlotWithdrawn {
        at: Timestamp,
    },
    SlotBooked {
        booker: Uuid,
        interviewer: Uuid,
        interviewee: Uuid,
        at: Timestamp,
    },
    /// `reopened`: the booker cancelled, so the slot is back on the board.
    BookingCancelled {
        by: Uuid,
        reopened: bool,
        at: Timestamp,
    },
    InterviewReminderSent {
        hours_before: u32,
        at: Timestamp,
    },
    InterviewEnded {
        feedback_due: Timestamp,
        at: Timestamp,
    },
    FeedbackGiven {
        score: u8,
        text: String,
        accept_by: Timestamp,
        at: Timestamp,
    },
    FeedbackAccepted {
        auto: bool,
        at: Timestamp,
    },
    FeedbackDisputed {
        reason: String,
        at: Timestamp,
    },
    NoShowReported {
        reporter: Uuid,
        absent: Uuid,
        /// Until when the side reported absent may contest the report; it is confirmed then if uncontested.
        /// (Called `settle_at` up to schema version 1.)
        contest_by: Timestamp,
        at: Timestamp,
    },
    NoShowContested {
        reason: String,
        at: Timestamp,
    },
    NoShowConfirmed {
        at: Timestamp,
    },
    NoShowResolved {
        /// Who was absent; `None`: nobody, the interview took place.
        absent: Option<Uuid>,
        by: Uuid,
        at: Timestamp,
    },
    FeedbackExpired {
        at: Timestamp,
    },
}

impl SlotEvent {
    pub fn at(&self) -> Timestamp {
        match self {
            SlotEvent::SlotPublished { at, .. }
            | SlotEvent::SlotWithdrawn { at }
            | SlotEvent::SlotBooked { at, .. }
            | SlotEvent::BookingCancelled { at, .. }
            | SlotEvent::InterviewReminderSent { at, .. }
            | SlotEvent::InterviewEnded { at, .. }
            | SlotEvent::FeedbackGiven { at, .. }
            | SlotEvent::FeedbackAccepted { at, .. }
            | SlotEvent::FeedbackDisputed { at, .. }
            | SlotEvent::NoShowReported { at, .. }
            | SlotEvent::NoShowContested { at, .. }
            | SlotEvent::NoShowConfirmed { at }
            | SlotEvent::NoShowResolved { at, .. }
            | SlotEvent::FeedbackExpired { at } => *at,
        }
    }
}

crate::tagged_events!(SlotEvent {
    SlotPublished,
    SlotWithdrawn,
    SlotBooked,
    BookingCancelled,
    InterviewReminderSent,
    InterviewEnded,
    FeedbackGiven,
    FeedbackAccepted,
    FeedbackDisputed,
    NoShowReported,
    NoShowContested,
    NoShowConfirmed,
    NoShowResolved,
    FeedbackExpired
}, versions: { NoShowReported: 2 }, upcast: upcast_slot_event);

/// Slot events' upcasting steps: data stored at `schema_version` as data of `schema_version + 1`.
fn upcast_slot_event(
    event_type: &str,
    schema_version: i32,
    mut data: serde_json::Value,
) -> Result<serde_json::Value, DecodeError> {
    match (event_type, schema_version) {
        // v2: `settle_at` became `contest_by`, the glossary's name for the deadline of a contest
        ("NoShowReported", 1) => {
            rename_field(&mut data, "settle_at", "contest_by");
            Ok(data)
        }
        _ => Err(DecodeError::unknown_version(event_type, schema_version)),
    }
}

/// Where a slot is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotStatus {
    Open,
    Withdrawn,
    Booked,
    AwaitingFeedback,
    FeedbackGiven,
    Accepted,
    Disputed,
    /// Reported absent; settles unless contested in time.
    NoShowReported,
    /// The report is contested; an admin decides.
    NoShowContested,
    /// A no-show report settled (confirmed or resolved).
    NoShow,
    FeedbackExpired,
}

impl SlotStatus {
    pub const ALL: [SlotStatus; 11] = [
        SlotStatus::Open,
        SlotStatus::Withdrawn,
        SlotStatus::Booked,
        SlotStatus::AwaitingFeedback,
        SlotStatus::FeedbackGiven,
        SlotStatus::Accepted,
        SlotStatus::Disputed,
        SlotStatus::NoShowReported,
        SlotStatus::NoShowContested,
        SlotStatus::NoShow,
        SlotStatus::FeedbackExpired,
    ];

    /// The stable name of the status (the `interviews` read model stores it).
    pub fn as_str(self) -> &'static str {
        match self {
            SlotStatus::Open => "open",
            SlotStatus::Withdrawn => "withdrawn",
            SlotStatus::Booked => "booked",
            SlotStatus::AwaitingFeedback => "awaiting_feedback",
            SlotStatus::FeedbackGiven => "feedback_given",
            SlotStatus::Accepted => "accepted",
            SlotStatus::Disputed => "disputed",
            SlotStatus::NoShowReported => "no_show_reported",
            SlotStatus::NoShowContested => "no_show_contested",
            SlotStatus::NoShow => "no_show",
            SlotStatus::FeedbackExpired => "feedback_expired",
        }
    }

    /// The status [`SlotStatus::as_str`] names.
    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == stored)
    }
}

/// A report that one side did not show up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoShowClaim {
    pub reporter: Uuid,
    pub absent: Uuid,
    /// Until when the side reported absent may contest it.
    pub contest_by: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Booking {
    pub booker: Uuid,
    pub interviewer: Uuid,
    pub interviewee: Uuid,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotState {
    pub owner: Uuid,
    pub spec: SlotSpec,
    pub status: SlotStatus,
    pub booking: Option<Booking>,
    pub reminded: BTreeSet<u32>,
    /// Bookings so far (a booker's cancellation reopens the slot): tells bookings of one slot apart.
    pub bookings: u32,
    /// Bookers who cancelled: a repeated cancellation of theirs changes nothing.
    pub cancelled_by: BTreeSet<Uuid>,
    pub feedback_due: Option<Timestamp>,
    pub no_show: Option<NoShowClaim>,
    /// (score, text, accept_by)
    pub feedback: Option<(u8, String, Timestamp)>,
}

impl SlotState {
    /// The people a command on this slot may touch: the owner and the booker, if any.
    pub fn parties(&self) -> Vec<Uuid> {
        let mut parties = vec![self.owner];
        parties.extend(self.booking.map(|b| b.booker));
        parties
    }

    /// `(interviewer, interviewee)` were `booker` to book this slot: the booker takes the role the owner did not.
    pub fn sides_if_booked_by(&self, booker: Uuid) -> (Uuid, Uuid) {
        match self.spec.role {
            Role::Interviewer => (self.owner, booker),
            Role::Interviewee => (booker, self.owner),
        }
    }

    fn is_party(&self, user: Uuid) -> bool {
        self.owner == user || self.booking.is_some_and(|b| b.booker == user)
    }
}

pub struct Slot;

impl Decider for Slot {
    type Command = SlotCommand;
    type Event = SlotEvent;
    type State = Option<SlotState>;
    type Error = InterviewError;

    fn initial_state() -> Self::State {
        None
    }

    fn decide(
        command: &SlotCommand,
        state: &Self::State,
    ) -> Result<Vec<SlotEvent>, InterviewError> {
        // every command but publishing acts on a slot that exists
        let slot = state.as_ref().ok_or(InterviewError::NotFound);
        match command {
            SlotCommand::Publish {
                owner,
                spec,
                owner_free,
                owner_balance,
                at,
            } => publish(
                state.as_ref(),
                *owner,
                spec,
                *owner_free,
                *owner_balance,
                *at,
            ),
            SlotCommand::Book {
                booker,
                booker_free,
                owner_free,
                interviewee_balance,
                at,
            } => book(
                slot?,
                *booker,
                *booker_free,
                *owner_free,
                *interviewee_balance,
                *at,
            ),
            SlotCommand::Cancel { by, cutoff, at } => cancel(slot?, *by, *cutoff, *at),
            SlotCommand::Remind { hours_before, at } => remind(slot?, *hours_before, *at),
            SlotCommand::End {
                feedback_within,
                at,
            } => end(slot?, *feedback_within, *at),
            SlotCommand::GiveFeedback {
                by,
                score,
                text,
                feedback_within,
                accept_within,
                at,
            } => give_feedback(
                slot?,
                *by,
                *score,
                text,
                *feedback_within,
                *accept_within,
                *at,
            ),
            SlotCommand::Accept { by, at } => accept(slot?, *by, *at),
            SlotCommand::AutoAccept { at } => auto_accept(slot?, *at),
            SlotCommand::Dispute { by, reason, at } => dispute(slot?, *by, reason, *at),
            SlotCommand::ReportNoShow { by, at } => report_no_show(slot?, *by, *at),
            SlotCommand::ContestNoShow { by, reason, at } => {
                contest_no_show(slot?, *by, reason, *at)
            }
            SlotCommand::ConfirmNoShow { at } => confirm_no_show(slot?, *at),
            SlotCommand::ResolveNoShow { by, absent, at } => {
                resolve_no_show(slot?, *by, *absent, *at)
            }
            SlotCommand::ExpireFeedback { at } => expire_feedback(slot?, *at),
        }
    }

    fn evolve(state: Self::State, event: &SlotEvent) -> Self::State {
        if let SlotEvent::SlotPublished { owner, spec, .. } = event {
            return Some(open_slot(*owner, spec));
        }
        let mut slot = state?;
        match event {
            SlotEvent::SlotPublished { .. } => {}
            SlotEvent::SlotWithdrawn { .. } => slot.status = SlotStatus::Withdrawn,
            SlotEvent::SlotBooked {
                booker,
                interviewer,
                interviewee,
                at,
            } => {
                slot.status = SlotStatus::Booked;
                slot.bookings += 1;
                slot.booking = Some(Booking {
                    booker: *booker,
                    interviewer: *interviewer,
                    interviewee: *interviewee,
                    at: *at,
                });
            }
            SlotEvent::BookingCancelled { by, reopened, .. } => {
                if *reopened {
                    slot.cancelled_by.insert(*by);
                }
                slot.booking = None;
                slot.reminded.clear();
                slot.status = if *reopened {
                    SlotStatus::Open
                } else {
                    SlotStatus::Withdrawn
                };
            }
            SlotEvent::InterviewReminderSent { hours_before, .. } => {
                slot.reminded.insert(*hours_before);
            }
            SlotEvent::InterviewEnded { feedback_due, .. } => {
                slot.status = SlotStatus::AwaitingFeedback;
                slot.feedback_due = Some(*feedback_due);
            }
            SlotEvent::FeedbackGiven {
                score,
                text,
                accept_by,
                ..
            } => {
                slot.status = SlotStatus::FeedbackGiven;
                slot.feedback = Some((*score, text.clone(), *accept_by));
            }
            SlotEvent::FeedbackAccepted { .. } => slot.status = SlotStatus::Accepted,
            SlotEvent::FeedbackDisputed { .. } => slot.status = SlotStatus::Disputed,
            SlotEvent::NoShowReported {
                reporter,
                absent,
                contest_by,
                ..
            } => {
                slot.status = SlotStatus::NoShowReported;
                slot.no_show = Some(NoShowClaim {
                    reporter: *reporter,
                    absent: *absent,
                    contest_by: *contest_by,
                });
            }
            SlotEvent::NoShowContested { .. } => slot.status = SlotStatus::NoShowContested,
            SlotEvent::NoShowConfirmed { .. } | SlotEvent::NoShowResolved { .. } => {
                slot.status = SlotStatus::NoShow
            }
            SlotEvent::FeedbackExpired { .. } => slot.status = SlotStatus::FeedbackExpired,
        }
        Some(slot)
    }
}

// Slot commands, one function each, in the order of `SlotCommand`.

/// A slot is published once, to start within a year, by an owner who is free then and, as interviewee, can pay.
fn publish(
    state: Option<&SlotState>,
    owner: Uuid,
    spec: &SlotSpec,
    owner_free: bool,
    owner_balance: i64,
    at: Timestamp,
) -> Result<Vec<SlotEvent>, InterviewError> {
    if let Some(slot) = state {
        return if slot.owner == owner && slot.spec == *spec {
            Ok(vec![])
        } else {
            Err(InterviewError::AlreadyExists)
        };
    }
    if spec.start <= at || spec.start > at + TimeDelta::days(365) {
        return Err(InterviewError::StartNotAhead);
    }
    if !owner_free {
        return Err(InterviewError::Overlap);
    }
    if spec.role == Role::Interviewee && owner_balance < INTERVIEW_COST {
        return Err(InterviewError::InsufficientPoints(owner_balance));
    }
    Ok(vec![SlotEvent::SlotPublished {
        owner,
        spec: spec.clone(),
        at,
    }])
}

/// Another user books an open slot before its start, when both sides are free and the interviewee can pay.
fn book(
    slot: &SlotState,
    booker: Uuid,
    booker_free: bool,
    owner_free: bool,
    interviewee_balance: i64,
    at: Timestamp,
) -> Result<Vec<SlotEvent>, InterviewError> {
    use SlotStatus::*;
    match slot.status {
        Open => {}
        _ if slot.booking.is_some_and(|b| b.booker == booker) => return Ok(vec![]),
        Booked | AwaitingFeedback | FeedbackGiven | Accepted | Disputed | NoShowReported
        | NoShowContested | NoShow | FeedbackExpired => {
            return Err(InterviewError::AlreadyBooked);
        }
        Withdrawn => return Err(InterviewError::NotOpen),
    }
    if booker == slot.owner {
        return Err(InterviewError::OwnSlot);
    }
    if at >= slot.spec.start {
        return Err(InterviewError::TooLate);
    }
    if !booker_free {
        return Err(InterviewError::Overlap);
    }
    if !owner_free {
        return Err(InterviewError::OwnerBusy);
    }
    if interviewee_balance < INTERVIEW_COST {
        // the booker may see their own balance, not the publisher's
        return Err(match slot.spec.role {
            Role::Interviewer => InterviewError::InsufficientPoints(interviewee_balance),
            Role::Interviewee => InterviewError::PublisherCannotPay,
        });
    }
    let (interviewer, interviewee) = slot.sides_if_booked_by(booker);
    Ok(vec![SlotEvent::SlotBooked {
        booker,
        interviewer,
        interviewee,
        at,
    }])
}

/// The owner withdraws an open slot; either side of a booking cancels it until `cutoff` before the start.
fn cancel(
    slot: &SlotState,
    by: Uuid,
    cutoff: TimeDelta,
    at: Timestamp,
) -> Result<Vec<SlotEvent>, InterviewError> {
    use SlotStatus::*;
    match slot.status {
        Open if by == slot.owner => Ok(vec![SlotEvent::SlotWithdrawn { at }]),
        Withdrawn if by == slot.owner => Ok(vec![]),
        _ if !slot.is_party(by) && slot.cancelled_by.contains(&by) => Ok(vec![]),
        _ if !slot.is_party(by) => Err(InterviewError::NotAParty),
        Booked if at <= slot.spec.start - cutoff => Ok(vec![SlotEvent::BookingCancelled {
            by,
            reopened: by != slot.owner,
            at,
        }]),
        Booked => Err(InterviewError::CutoffPassed),
        _ => Err(InterviewError::NotCancellable),
    }
}

/// Each reminder of a booked interview goes out once, when due, unless it no longer helps.
fn remind(
    slot: &SlotState,
    hours_before: u32,
    at: Timestamp,
) -> Result<Vec<SlotEvent>, InterviewError> {
    let due = reminder_time(slot.spec.start, hours_before);
    let booking = match (slot.status, slot.booking) {
        (SlotStatus::Booked, Some(booking)) => booking,
        _ => return Ok(vec![]),
    };
    // a closer reminder is due too (the worker was late): this one would only confuse
    let superseded = InterviewTimer::REMINDERS
        .iter()
        .map(|(_, h)| h)
        .any(|h| *h < hours_before && at >= reminder_time(slot.spec.start, *h));
    // already sent, booked after it was due, or too late to matter
    if slot.reminded.contains(&hours_before)
        || booking.at > due
        || at >= slot.spec.start
        || superseded
    {
        Ok(vec![])
    } else if at < due {
        Err(InterviewError::NotYetDue)
    } else {
        Ok(vec![SlotEvent::InterviewReminderSent { hours_before, at }])
    }
}

/// A booked interview ends at its end time and awaits feedback for `feedback_within`.
fn end(
    slot: &SlotState,
    feedback_within: TimeDelta,
    at: Timestamp,
) -> Result<Vec<SlotEvent>, InterviewError> {
    match slot.status {
        SlotStatus::Booked if at >= slot.spec.end() => Ok(vec![SlotEvent::InterviewEnded {
            feedback_due: slot.spec.end() + feedback_within,
            at,
        }]),
        SlotStatus::Booked => Err(InterviewError::NotYetDue),
        _ => Ok(vec![]),
    }
}

/// The interviewer gives feedback once, after the end and within its window: a score of 1 to 5 and a text.
fn give_feedback(
    slot: &SlotState,
    by: Uuid,
    score: u8,
    text: &str,
    feedback_within: TimeDelta,
    accept_within: TimeDelta,
    at: Timestamp,
) -> Result<Vec<SlotEvent>, InterviewError> {
    use SlotStatus::*;
    let booking = slot.booking.ok_or(InterviewError::NotAParty)?;
    if by != booking.interviewer {
        return Err(InterviewError::NotInterviewer);
    }
    let text = text.trim();
    if text.contains('\0') {
        return Err(InterviewError::NulCharacter);
    }
    if !(1..=5).contains(&score) || text.is_empty() || text.chars().count() > 5000 {
        return Err(InterviewError::Feedback);
    }
    let mut events = vec![];
    let feedback_due = match slot.status {
        Booked if at >= slot.spec.end() => {
            let due = slot.spec.end() + feedback_within;
            events.push(SlotEvent::InterviewEnded {
                feedback_due: due,
                at,
            });
            Some(due)
        }
        Booked => return Err(InterviewError::NotEnded),
        AwaitingFeedback => slot.feedback_due,
        FeedbackGiven | Accepted | Disputed => {
            return match &slot.feedback {
                Some((s, t, _)) if *s == score && t == text => Ok(vec![]),
                _ => Err(InterviewError::FeedbackAlreadyGiven),
            };
        }
        _ => return Err(InterviewError::FeedbackWindowClosed),
    };
    if feedback_due.is_some_and(|due| at >= due) {
        return Err(InterviewError::FeedbackWindowClosed);
    }
    events.push(SlotEvent::FeedbackGiven {
        score,
        text: text.to_owned(),
        accept_by: at + accept_within,
        at,
    });
    Ok(events)
}

/// The interviewee accepts the feedback.
fn accept(slot: &SlotState, by: Uuid, at: Timestamp) -> Result<Vec<SlotEvent>, InterviewError> {
    answer(slot, by)?;
    match slot.status {
        SlotStatus::FeedbackGiven => Ok(vec![SlotEvent::FeedbackAccepted { auto: false, at }]),
        SlotStatus::Accepted => Ok(vec![]),
        _ => Err(InterviewError::NoFeedback),
    }
}

/// Feedback the interviewee did not answer in time is accepted for them.
fn auto_accept(slot: &SlotState, at: Timestamp) -> Result<Vec<SlotEvent>, InterviewError> {
    match (&slot.status, &slot.feedback) {
        (SlotStatus::FeedbackGiven, Some((_, _, accept_by))) if at >= *accept_by => {
            Ok(vec![SlotEvent::FeedbackAccepted { auto: true, at }])
        }
        (SlotStatus::FeedbackGiven, _) => Err(InterviewError::NotYetDue),
        _ => Ok(vec![]),
    }
}

/// The interviewee disputes the feedback, with a reason.
fn dispute(
    slot: &SlotState,
    by: Uuid,
    reason: &str,
    at: Timestamp,
) -> Result<Vec<SlotEvent>, InterviewError> {
    answer(slot, by)?;
    let reason = check_reason(reason)?;
    match slot.status {
        SlotStatus::FeedbackGiven => Ok(vec![SlotEvent::FeedbackDisputed {
            reason: reason.to_owned(),
            at,
        }]),
        SlotStatus::Disputed => Ok(vec![]),
        _ => Err(InterviewError::NoFeedback),
    }
}

/// One side reports the other absent, once, from the start until [`NO_SHOW_WINDOW`] after the end.
fn report_no_show(
    slot: &SlotState,
    by: Uuid,
    at: Timestamp,
) -> Result<Vec<SlotEvent>, InterviewError> {
    use SlotStatus::*;
    let booking = slot.booking.ok_or(InterviewError::NotAParty)?;
    let absent = if by == booking.interviewer {
        booking.interviewee
    } else if by == booking.interviewee {
        booking.interviewer
    } else {
        return Err(InterviewError::NotAParty);
    };
    match (slot.status, slot.no_show) {
        (NoShowReported | NoShowContested | NoShow, Some(claim)) if claim.reporter == by => {
            Ok(vec![])
        }
        (NoShowReported | NoShowContested | NoShow, _) => {
            Err(InterviewError::NoShowAlreadyReported)
        }
        (Booked | AwaitingFeedback, _)
            if at >= slot.spec.start && at <= slot.spec.end() + NO_SHOW_WINDOW =>
        {
            Ok(vec![SlotEvent::NoShowReported {
                reporter: by,
                absent,
                contest_by: at + NO_SHOW_WINDOW,
                at,
            }])
        }
        _ => Err(InterviewError::NoShowWindow),
    }
}

/// The side reported absent contests the report, with a reason, before it settles.
fn contest_no_show(
    slot: &SlotState,
    by: Uuid,
    reason: &str,
    at: Timestamp,
) -> Result<Vec<SlotEvent>, InterviewError> {
    let claim = slot.no_show.ok_or(InterviewError::NoNoShowReport)?;
    if by != claim.absent {
        return Err(InterviewError::NotAccused);
    }
    let reason = check_reason(reason)?;
    match slot.status {
        SlotStatus::NoShowContested => Ok(vec![]),
        SlotStatus::NoShowReported if at < claim.contest_by => {
            Ok(vec![SlotEvent::NoShowContested {
                reason: reason.to_owned(),
                at,
            }])
        }
        _ => Err(InterviewError::NoShowSettled),
    }
}

/// A report nobody contested is confirmed once the time to contest it is over.
fn confirm_no_show(slot: &SlotState, at: Timestamp) -> Result<Vec<SlotEvent>, InterviewError> {
    match (slot.status, slot.no_show) {
        (SlotStatus::NoShowReported, Some(claim)) if at >= claim.contest_by => {
            Ok(vec![SlotEvent::NoShowConfirmed { at }])
        }
        (SlotStatus::NoShowReported, _) => Err(InterviewError::NotYetDue),
        _ => Ok(vec![]),
    }
}

/// An admin settles a contested report: who was absent, if anyone.
fn resolve_no_show(
    slot: &SlotState,
    by: Uuid,
    absent: Option<Role>,
    at: Timestamp,
) -> Result<Vec<SlotEvent>, InterviewError> {
    let booking = slot.booking.ok_or(InterviewError::NoNoShowReport)?;
    match slot.status {
        SlotStatus::NoShowContested => Ok(vec![SlotEvent::NoShowResolved {
            absent: absent.map(|role| match role {
                Role::Interviewer => booking.interviewer,
                Role::Interviewee => booking.interviewee,
            }),
            by,
            at,
        }]),
        SlotStatus::NoShow => Ok(vec![]),
        _ => Err(InterviewError::NotContested),
    }
}

/// An interview still awaiting feedback when its window is over expires.
fn expire_feedback(slot: &SlotState, at: Timestamp) -> Result<Vec<SlotEvent>, InterviewError> {
    match (slot.status, slot.feedback_due) {
        (SlotStatus::AwaitingFeedback, Some(due)) if at >= due => {
            Ok(vec![SlotEvent::FeedbackExpired { at }])
        }
        (SlotStatus::AwaitingFeedback, _) => Err(InterviewError::NotYetDue),
        _ => Ok(vec![]),
    }
}

/// Only the interviewee answers feedback.
fn answer(slot: &SlotState, by: Uuid) -> Result<(), InterviewError> {
    match slot.booking {
        Some(booking) if booking.interviewee == by => Ok(()),
        Some(_) => Err(InterviewError::NotInterviewee),
        None => Err(InterviewError::NoFeedback),
    }
}

/// A reason (for a dispute or a contest), trimmed: 1 to 1000 characters, no NUL.
fn check_reason(reason: &str) -> Result<&str, InterviewError> {
    let reason = reason.trim();
    if reason.contains('\0') {
        return Err(InterviewError::NulCharacter);
    }
    if reason.is_empty() || reason.chars().count() > 1000 {
        return Err(InterviewError::Reason);
    }
    Ok(reason)
}

/// A slot as published: open, nothing booked yet.
fn open_slot(owner: Uuid, spec: &SlotSpec) -> SlotState {
    SlotState {
        owner,
        spec: spec.clone(),
        status: SlotStatus::Open,
        booking: None,
        reminded: BTreeSet::new(),
        bookings: 0,
        cancelled_by: BTreeSet::new(),
        feedback_due: None,
        no_show: None,
        feedback: None,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Effects of slot events on calendars and ledgers

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Calendar(Uuid, CalendarCommand),
    Ledger(Uuid, LedgerCommand),
}

/// What `event`, happening to `slot` (its state before the event), does to calendars and ledgers.
pub fn effects(slot_id: Uuid, slot: Option<&SlotState>, event: &SlotEvent) -> Vec<Effect> {
    // every event with effects happens to a slot that exists
    let Some(slot) = slot else {
        return vec![];
    };
    let at = event.at();
    match (event, slot.booking) {
        (
            SlotEvent::SlotBooked {
                booker,
                interviewee,
                ..
            },
            _,
        ) => schedule(slot_id, slot, *booker, *interviewee, at),
        (SlotEvent::BookingCancelled { .. }, Some(booking)) => {
            unschedule(slot_id, slot, booking, at)
        }
        (
            SlotEvent::FeedbackAccepted { .. } | SlotEvent::FeedbackDisputed { .. },
            Some(booking),
        ) => settle(slot_id, booking, at),
        // a no-show settles when confirmed (uncontested) or resolved by an admin, not when reported
        (SlotEvent::NoShowConfirmed { .. }, Some(booking)) => match slot.no_show {
            Some(claim) if claim.absent == booking.interviewer => refund(slot_id, booking, at),
            Some(_) => settle(slot_id, booking, at),
            None => vec![],
        },
        (SlotEvent::NoShowResolved { absent, .. }, Some(booking)) => {
            if *absent == Some(booking.interviewer) {
                refund(slot_id, booking, at)
            } else {
                // the interviewee was absent, or the interview took place
                settle(slot_id, booking, at)
            }
        }
        (SlotEvent::FeedbackExpired { .. }, Some(booking)) => refund(slot_id, booking, at),
        _ => vec![],
    }
}

/// A booking takes the time in both sides' calendars and holds the interviewee's points.
fn schedule(
    slot_id: Uuid,
    slot: &SlotState,
    booker: Uuid,
    interviewee: Uuid,
    at: Timestamp,
) -> Vec<Effect> {
    let (start, end) = (slot.spec.start, slot.spec.end());
    vec![
        Effect::Calendar(
            slot.owner,
            CalendarCommand::Book {
                slot: slot_id,
                start,
                end,
                at,
            },
        ),
        Effect::Calendar(
            booker,
            CalendarCommand::Book {
                slot: slot_id,
                start,
                end,
                at,
            },
        ),
        Effect::Ledger(
            interviewee,
            LedgerCommand::Hold {
                slot: slot_id,
                amount: INTERVIEW_COST,
                at,
            },
        ),
    ]
}

/// A cancelled booking frees both calendars and refunds the interviewee.
fn unschedule(slot_id: Uuid, slot: &SlotState, booking: Booking, at: Timestamp) -> Vec<Effect> {
    let mut effects = vec![
        Effect::Calendar(slot.owner, CalendarCommand::Release { slot: slot_id, at }),
        Effect::Calendar(
            booking.booker,
            CalendarCommand::Release { slot: slot_id, at },
        ),
    ];
    effects.extend(refund(slot_id, booking, at));
    effects
}

/// The interview counts: the interviewee's hold is captured and the interviewer earns their reward.
fn settle(slot_id: Uuid, booking: Booking, at: Timestamp) -> Vec<Effect> {
    vec![
        Effect::Ledger(
            booking.interviewee,
            LedgerCommand::Capture { slot: slot_id, at },
        ),
        Effect::Ledger(
            booking.interviewer,
            LedgerCommand::Earn {
                slot: slot_id,
                amount: INTERVIEWER_REWARD,
                at,
            },
        ),
    ]
}

/// The interview does not count: the interviewee's hold is released.
fn refund(slot_id: Uuid, booking: Booking, at: Timestamp) -> Vec<Effect> {
    vec![Effect::Ledger(
        booking.interviewee,
        LedgerCommand::Release { slot: slot_id, at },
    )]
}

// ---------------------------------------------------------------------------------------------------------------
// Calendar

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalendarCommand {
    Book {
        slot: Uuid,
        start: Timestamp,
        end: Timestamp,
        at: Timestamp,
    },
    Release {
        slot: Uuid,
        at: Timestamp,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum CalendarEvent {
    InterviewScheduled {
        slot: Uuid,
        start: Timestamp,
        end: Timestamp,
        at: Timestamp,
    },
    InterviewUnscheduled {
        slot: Uuid,
        at: Timestamp,
    },
}

impl CalendarEvent {}

crate::tagged_events!(CalendarEvent {
    InterviewScheduled,
    InterviewUnscheduled
});

/// A user's interviews: slot → (start, end).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CalendarState {
    pub interviews: BTreeMap<Uuid, (Timestamp, Timestamp)>,
}

impl CalendarState {
    /// Whether `start..end` overlaps none of the interviews (other than `slot`'s own).
    pub fn is_free(&self, slot: Uuid, start: Timestamp, end: Timestamp) -> bool {
        self.interviews
            .iter()
            .all(|(other, (s, e))| *other == slot || end <= *s || start >= *e)
    }
}

pub struct Calendar;

impl Decider for Calendar {
    type Command = CalendarCommand;
    type Event = CalendarEvent;
    type State = CalendarState;
    type Error = CalendarError;

    fn initial_state() -> CalendarState {
        CalendarState::default()
    }

    fn decide(
        command: &CalendarCommand,
        state: &CalendarState,
    ) -> Result<Vec<CalendarEvent>, CalendarError> {
        match command {
            CalendarCommand::Book { slot, .. } if state.interviews.contains_key(slot) => Ok(vec![]),
            CalendarCommand::Book {
                slot,
                start,
                end,
                at,
            } => {
                if !state.is_free(*slot, *start, *end) {
                    return Err(CalendarError::Overlap);
                }
                Ok(vec![CalendarEvent::InterviewScheduled {
                    slot: *slot,
                    start: *start,
                    end: *end,
                    at: *at,
                }])
            }
            CalendarCommand::Release { slot, at } if state.interviews.contains_key(slot) => {
                Ok(vec![CalendarEvent::InterviewUnscheduled {
                    slot: *slot,
                    at: *at,
                }])
            }
            CalendarCommand::Release { .. } => Ok(vec![]),
        }
    }

    fn evolve(mut state: CalendarState, event: &CalendarEvent) -> CalendarState {
        match event {
            CalendarEvent::InterviewScheduled {
                slot, start, end, ..
            } => {
                state.interviews.insert(*slot, (*start, *end));
            }
            CalendarEvent::InterviewUnscheduled { slot, .. } => {
                state.interviews.remove(slot);
            }
        }
        state
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Ledger

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerCommand {
    Grant {
        amount: i64,
        reason: String,
        at: Timestamp,
    },
    Hold {
        slot: Uuid,
        amount: i64,
        at: Timestamp,
    },
    Capture {
        slot: Uuid,
        at: Timestamp,
    },
    Release {
        slot: Uuid,
        at: Timestamp,
    },
    Earn {
        slot: Uuid,
        amount: i64,
        at: Timestamp,
    },
}

/// The kind of a points ledger entry: one per [`LedgerEvent`]. Stored by [`PointsEntryKind::as_str`] in the
/// `interviews` read model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointsEntryKind {
    /// Points granted, with a reason (the sign-up points).
    Granted,
    /// Points held for a booked interview.
    Held,
    /// Held points paid: the interview took place, or the interviewee did not show up.
    Captured,
    /// Held points refunded.
    Released,
    /// A point earned as interviewer.
    Earned,
}

impl PointsEntryKind {
    pub const ALL: [PointsEntryKind; 5] = [
        PointsEntryKind::Granted,
        PointsEntryKind::Held,
        PointsEntryKind::Captured,
        PointsEntryKind::Released,
        PointsEntryKind::Earned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PointsEntryKind::Granted => "granted",
            PointsEntryKind::Held => "held",
            PointsEntryKind::Captured => "captured",
            PointsEntryKind::Released => "released",
            PointsEntryKind::Earned => "earned",
        }
    }

    /// The kind [`PointsEntryKind::as_str`] names.
    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == stored)
    }
}

/// Each entry moves points between "available" (the balance) and "held".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum LedgerEvent {
    PointsGranted {
        amount: i64,
        reason: String,
        at: Timestamp,
    },
    PointsHeld {
        slot: Uuid,
        amount: i64,
        at: Timestamp,
    },
    PointsCaptured {
        slot: Uuid,
        amount: i64,
        at: Timestamp,
    },
    PointsReleased {
        slot: Uuid,
        amount: i64,
        at: Timestamp,
    },
    PointsEarned {
        slot: Uuid,
        amount: i64,
        at: Timestamp,
    },
}

impl LedgerEvent {
    /// (change of the balance, change of what is held).
    pub fn deltas(&self) -> (i64, i64) {
        match self {
            LedgerEvent::PointsGranted { amount, .. }
            | LedgerEvent::PointsEarned { amount, .. } => (*amount, 0),
            LedgerEvent::PointsHeld { amount, .. } => (-amount, *amount),
            LedgerEvent::PointsCaptured { amount, .. } => (0, -amount),
            LedgerEvent::PointsReleased { amount, .. } => (*amount, -amount),
        }
    }
}

crate::tagged_events!(LedgerEvent {
    PointsGranted,
    PointsHeld,
    PointsCaptured,
    PointsReleased,
    PointsEarned
});

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerState {
    /// Points available.
    pub balance: i64,
    /// Holds by slot.
    pub held: BTreeMap<Uuid, i64>,
    /// Slots the user earned from.
    pub earned: BTreeSet<Uuid>,
}

pub struct Ledger;

impl Decider for Ledger {
    type Command = LedgerCommand;
    type Event = LedgerEvent;
    type State = LedgerState;
    type Error = LedgerError;

    fn initial_state() -> LedgerState {
        LedgerState::default()
    }

    fn decide(
        command: &LedgerCommand,
        state: &LedgerState,
    ) -> Result<Vec<LedgerEvent>, LedgerError> {
        Ok(match command {
            LedgerCommand::Grant { amount, reason, at } if *amount > 0 => {
                vec![LedgerEvent::PointsGranted {
                    amount: *amount,
                    reason: reason.clone(),
                    at: *at,
                }]
            }
            LedgerCommand::Grant { .. } => vec![],
            LedgerCommand::Hold { slot, .. } if state.held.contains_key(slot) => vec![],
            LedgerCommand::Hold { slot, amount, at } => {
                if state.balance < *amount {
                    return Err(LedgerError::InsufficientPoints(state.balance));
                }
                vec![LedgerEvent::PointsHeld {
                    slot: *slot,
                    amount: *amount,
                    at: *at,
                }]
            }
            LedgerCommand::Capture { slot, at } => match state.held.get(slot) {
                Some(amount) => vec![LedgerEvent::PointsCaptured {
                    slot: *slot,
                    amount: *amount,
                    at: *at,
                }],
                None => vec![],
            },
            LedgerCommand::Release { slot, at } => match state.held.get(slot) {
                Some(amount) => vec![LedgerEvent::PointsReleased {
                    slot: *slot,
                    amount: *amount,
                    at: *at,
                }],
                None => vec![],
            },
            LedgerCommand::Earn { slot, .. } if state.earned.contains(slot) => vec![],
            LedgerCommand::Earn { slot, amount, at } => {
                vec![LedgerEvent::PointsEarned {
                    slot: *slot,
                    amount: *amount,
                    at: *at,
                }]
            }
        })
    }

    fn evolve(mut state: LedgerState, event: &LedgerEvent) -> LedgerState {
        let (balance, _) = event.deltas();
        state.balance += balance;
        match event {
            LedgerEvent::PointsHeld { slot, amount, .. } => {
                state.held.insert(*slot, *amount);
            }
            LedgerEvent::PointsCaptured { slot, .. } | LedgerEvent::PointsReleased { slot, .. } => {
                state.held.remove(slot);
            }
            LedgerEvent::PointsEarned { slot, .. } => {
                state.earned.insert(*slot);
            }
            LedgerEvent::PointsGranted { .. } => {}
        }
        state
    }
}
