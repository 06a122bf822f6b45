//! Cohort tracks: a track's definition, enrollment, assignments with deadlines, solutions, peer reviews.
//!
//! - [`Track`] (`track-<uuid>`): everything a cohort shares, in one stream so its rules are judged on one
//!   consistent state: the definition, who enrolled, the start, each assignment's window, solutions, reminders,
//!   the review allocation and the reviews.
//! - [`Diary`] (`diary-<uuid>`, one per participant and track): the participant's comments under assignments.
//!
//! The rules, in the order a track lives them:
//! - An admin creates a track: title, description, minimum and optional maximum of participants, review
//!   criteria with score ranges, and ordered assignments with hours to complete. Criteria may be revised only
//!   until the track starts.
//! - Users enroll; they may leave only before the start. The track starts by itself, exactly once, in the
//!   enrollment that reaches the minimum, and the first assignment opens then. Enrollment stays open after the
//!   start (up to the maximum) until the first assignment's deadline; late joiners get the cohort's deadline.
//! - A solution is a [`RepoUrl`]; submitting again before the deadline replaces the link, after it is refused.
//! - When an assignment closes (at its deadline, by the deadline worker) its reviews are allocated
//!   ([`allocation`]) and the next assignment opens for the cohort with a deadline `hours` after that moment.
//! - A participant may work on (submit to) the open assignment once they have given every review they were
//!   allocated so far; whoever owes none (did not submit, or submitted alone) may at once. Reviews owed from an
//!   earlier assignment keep the participant locked until given, whatever they did since; when the last one is
//!   given, the assignment open at that moment opens to them (never a closed one). The deadline is the
//!   cohort's and does not move for late reviewers: time spent reviewing comes out of the next assignment's time.
//! - A review scores every criterion within its range and may add a comment. Reviews have no deadline.
//! - An admin may extend the open assignment's deadline (later only); the 80 % reminder and the close follow
//!   the new deadline.
//! - At 80 % of an assignment's time, each participant it is open to who has not submitted gets one reminder
//!   (someone it opens to later, once the 80 % mark has passed, gets theirs then); none once the deadline has come.

pub mod allocation;
mod diary;
pub mod repo_url;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Decider, Snapshots, StreamId, Timestamp};

pub use allocation::{Allocation, REVIEWS_EACH, ReviewMode, ReviewPair, allocate};
pub use diary::{Diary, DiaryCommand, DiaryError, DiaryEvent, DiaryState, diary_stream};
pub use repo_url::{RepoUrl, RepoUrlError};

/// Namespace of ids derived from a track (submissions, diaries).
const TRACK_NAMESPACE: Uuid = Uuid::from_u128(0x5c0e_1f4b_8a27_4d93_a6f2_91b8_3e7d_c045);

/// The stream of a track.
pub fn track_stream(id: Uuid) -> StreamId {
    StreamId::new("track", id).expect("'track' is a valid category")
}

/// The id under which reviewers see `author`'s solution to `assignment` (it does not reveal the author).
pub fn submission_id(track: Uuid, assignment: u32, author: Uuid) -> Uuid {
    let mut name = Vec::with_capacity(36);
    name.extend_from_slice(track.as_bytes());
    name.extend_from_slice(&assignment.to_be_bytes());
    name.extend_from_slice(author.as_bytes());
    Uuid::new_v5(&TRACK_NAMESPACE, &name)
}

/// How far ahead of the moment it is set an extended deadline may be.
pub const MAX_DEADLINE_AHEAD: TimeDelta = TimeDelta::days(365);

/// When the 80 % reminder of an assignment open from `opened_at` until `deadline` is due.
pub fn reminder_time(opened_at: Timestamp, deadline: Timestamp) -> Timestamp {
    opened_at + (deadline - opened_at) * 4 / 5
}

/// What the deadline worker fires on a track, as the `deadlines` read model stores it (JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackTimer {
    /// The 80 % reminder of a participant who has not submitted: [`TrackCommand::RemindDeadline`].
    Remind { assignment: u32, participant: Uuid },
    /// The deadline: [`TrackCommand::CloseAssignment`].
    Close { assignment: u32 },
}

impl TrackTimer {
    /// What firing it does, for the worker's counts and logs.
    pub fn action(self) -> &'static str {
        match self {
            TrackTimer::Remind { .. } => "remind_deadline",
            TrackTimer::Close { .. } => "close_assignment",
        }
    }
}

/// Where a track is in its life, as the `tracks` read model stores it ([`TrackStatus::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackStatus {
    /// Created, waiting for its minimum of participants.
    Enrolling,
    /// Started: its assignments open one after the other.
    Running,
    /// Its last assignment has closed.
    Completed,
}

impl TrackStatus {
    pub const ALL: [TrackStatus; 3] = [
        TrackStatus::Enrolling,
        TrackStatus::Running,
        TrackStatus::Completed,
    ];

    /// The stable name of the status (the `tracks` read model stores it).
    pub fn as_str(self) -> &'static str {
        match self {
            TrackStatus::Enrolling => "enrolling",
            TrackStatus::Running => "running",
            TrackStatus::Completed => "completed",
        }
    }

    /// The status [`TrackStatus::as_str`] names.
    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == stored)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The definition

/// A review criterion: what reviewers score, and the range of scores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Criterion {
    pub name: String,
    pub description: String,
    pub min_score: i32,
    pub max_score: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentSpec {
    pub title: String,
    pub description: String,
    /// Time to complete, from the moment the assignment opens.
    pub hours: u32,
}

impl AssignmentSpec {
    /// [`Self::hours`] as a duration.
    pub fn time_to_complete(&self) -> TimeDelta {
        TimeDelta::hours(i64::from(self.hours))
    }
}

/// A track's definition, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackSpec {
    pub title: String,
    pub description: String,
    pub min_participants: u32,
    pub max_participants: Option<u32>,
    pub criteria: Vec<Criterion>,
    pub assignments: Vec<AssignmentSpec>,
}

/// The most participants a track may have.
pub const MAX_PARTICIPANTS: u32 = 1000;

/// A track's state is snapshotted every this many events: its stream grows with the cohort (every enrollment,
/// solution, review and reminder), and a command loads the latest snapshot and at most this many events.
pub const TRACK_SNAPSHOT_EVERY: i64 = 200;

impl TrackSpec {
    /// Trims the texts and checks every bound.
    pub fn parse(
        title: &str,
        description: &str,
        min_participants: u32,
        max_participants: Option<u32>,
        criteria: Vec<Criterion>,
        assignments: Vec<AssignmentSpec>,
    ) -> Result<Self, TrackError> {
        let title = bounded(title, 200).ok_or(TrackError::Title)?;
        let description = description.trim();
        if description.chars().count() > 10_000 {
            return Err(TrackError::Description);
        }
        if !(1..=MAX_PARTICIPANTS).contains(&min_participants)
            || max_participants.is_some_and(|max| max < min_participants || max > MAX_PARTICIPANTS)
        {
            return Err(TrackError::Participants);
        }
        if assignments.is_empty() || assignments.len() > 50 {
            return Err(TrackError::Assignments);
        }
        let assignments = assignments
            .into_iter()
            .map(|a| {
                let title = bounded(&a.title, 200).ok_or(TrackError::Assignments)?;
                let description = a.description.trim();
                if description.chars().count() > 10_000 || !(1..=8760).contains(&a.hours) {
                    return Err(TrackError::Assignments);
                }
                Ok(AssignmentSpec {
                    title,
                    description: description.to_owned(),
                    hours: a.hours,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            title,
            description: description.to_owned(),
            min_participants,
            max_participants,
            criteria: parse_criteria(criteria)?,
            assignments,
        })
    }
}

/// Checks review criteria: 1 to 20, names unique (ignoring case), each range `min < max` within ±1000.
pub fn parse_criteria(criteria: Vec<Criterion>) -> Result<Vec<Criterion>, TrackError> {
    if criteria.is_empty() || criteria.len() > 20 {
        return Err(TrackError::Criteria(
            "a track has 1 to 20 review criteria".into(),
        ));
    }
    let mut names = BTreeSet::new();
    criteria
        .into_iter()
        .map(|c| {
            let name = bounded(&c.name, 64)
                .ok_or_else(|| TrackError::Criteria("a criterion's name has 1 to 64 characters".into()))?;
            if !names.insert(name.to_lowercase()) {
                return Err(TrackError::Criteria(format!("criterion {name:?} appears twice")));
            }
            let description = c.description.trim();
            if description.chars().count() > 1000 {
                return Err(TrackError::Criteria(format!(
                    "criterion {name:?}: a description has at most 1000 characters"
                )));
            }
            if c.min_score >= c.max_score || c.min_score < -1000 || c.max_score > 1000 {
                return Err(TrackError::Criteria(format!(
                    "criterion {name:?}: the lowest score must be below the highest, both within -1000..=1000"
                )));
            }
            Ok(Criterion {
                name,
                description: description.to_owned(),
                min_score: c.min_score,
                max_score: c.max_score,
            })
        })
        .collect()
}

/// `text` trimmed, when it has 1 to `max` characters.
fn bounded(text: &str, max: usize) -> Option<String> {
    let text = text.trim();
    (!text.is_empty() && text.chars().count() <= max).then(|| text.to_owned())
}

/// One criterion's score in a review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Score {
    pub criterion: String,
    pub score: i32,
}

// ---------------------------------------------------------------------------------------------------------------
// Commands and events

/// Assignments are numbered from 0 in commands and events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackCommand {
    Create {
        spec: TrackSpec,
        by: Uuid,
        at: Timestamp,
    },
    ReviseCriteria {
        criteria: Vec<Criterion>,
        by: Uuid,
        at: Timestamp,
    },
    Enroll {
        participant: Uuid,
        at: Timestamp,
    },
    Leave {
        participant: Uuid,
        at: Timestamp,
    },
    SubmitSolution {
        assignment: u32,
        participant: Uuid,
        repository: RepoUrl,
        at: Timestamp,
    },
    /// From the deadline worker at 80 % of the assignment's time.
    RemindDeadline {
        assignment: u32,
        participant: Uuid,
        at: Timestamp,
    },
    ExtendDeadline {
        assignment: u32,
        deadline: Timestamp,
        by: Uuid,
        at: Timestamp,
    },
    /// From the deadline worker at the deadline; `seed` is drawn by the caller and recorded.
    CloseAssignment {
        assignment: u32,
        seed: u64,
        at: Timestamp,
    },
    SubmitReview {
        assignment: u32,
        reviewer: Uuid,
        author: Uuid,
        scores: Vec<Score>,
        comment: Option<String>,
        at: Timestamp,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum TrackEvent {
    TrackCreated {
        spec: TrackSpec,
        by: Uuid,
        at: Timestamp,
    },
    CriteriaRevised {
        criteria: Vec<Criterion>,
        by: Uuid,
        at: Timestamp,
    },
    LearnerEnrolled {
        participant: Uuid,
        at: Timestamp,
    },
    LearnerLeft {
        participant: Uuid,
        at: Timestamp,
    },
    /// The cohort at the start.
    TrackStarted {
        participants: Vec<Uuid>,
        at: Timestamp,
    },
    AssignmentOpened {
        assignment: u32,
        opened_at: Timestamp,
        deadline: Timestamp,
    },
    SolutionSubmitted {
        assignment: u32,
        participant: Uuid,
        repository: RepoUrl,
        /// Whether it replaces an earlier link.
        replaces: bool,
        at: Timestamp,
    },
    DeadlineReminderSent {
        assignment: u32,
        participant: Uuid,
        deadline: Timestamp,
        at: Timestamp,
    },
    DeadlineExtended {
        assignment: u32,
        previous: Timestamp,
        deadline: Timestamp,
        by: Uuid,
        at: Timestamp,
    },
    AssignmentClosed {
        assignment: u32,
        at: Timestamp,
    },
    ReviewsAllocated {
        assignment: u32,
        seed: u64,
        allocation: Allocation,
        at: Timestamp,
    },
    ReviewSubmitted {
        assignment: u32,
        reviewer: Uuid,
        author: Uuid,
        scores: Vec<Score>,
        comment: Option<String>,
        at: Timestamp,
    },
    /// `participant` may now submit to `assignment` (from 1 on; the first is open to every participant).
    AssignmentUnlocked {
        assignment: u32,
        participant: Uuid,
        at: Timestamp,
    },
    /// The last assignment closed.
    TrackCompleted {
        at: Timestamp,
    },
}

impl TrackEvent {
    /// When it happened (for an opened assignment, when it opened).
    pub fn at(&self) -> Timestamp {
        match self {
            TrackEvent::AssignmentOpened { opened_at, .. } => *opened_at,
            TrackEvent::TrackCreated { at, .. }
            | TrackEvent::CriteriaRevised { at, .. }
            | TrackEvent::LearnerEnrolled { at, .. }
            | TrackEvent::LearnerLeft { at, .. }
            | TrackEvent::TrackStarted { at, .. }
            | TrackEvent::SolutionSubmitted { at, .. }
            | TrackEvent::DeadlineReminderSent { at, .. }
            | TrackEvent::DeadlineExtended { at, .. }
            | TrackEvent::AssignmentClosed { at, .. }
            | TrackEvent::ReviewsAllocated { at, .. }
            | TrackEvent::ReviewSubmitted { at, .. }
            | TrackEvent::AssignmentUnlocked { at, .. }
            | TrackEvent::TrackCompleted { at } => *at,
        }
    }
}

crate::tagged_events!(TrackEvent {
    TrackCreated,
    CriteriaRevised,
    LearnerEnrolled,
    LearnerLeft,
    TrackStarted,
    AssignmentOpened,
    SolutionSubmitted,
    DeadlineReminderSent,
    DeadlineExtended,
    AssignmentClosed,
    ReviewsAllocated,
    ReviewSubmitted,
    AssignmentUnlocked,
    TrackCompleted
});

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackError {
    #[error("a track's title has 1 to 200 characters")]
    Title,
    #[error("a track's description has at most 10000 characters")]
    Description,
    #[error(
        "a track needs a minimum of 1 to 1000 participants, and a maximum (if any) not below the minimum"
    )]
    Participants,
    #[error(
        "a track has 1 to 50 assignments, each with a title of 1 to 200 characters, a description of at most \
         10000 and 1 to 8760 hours"
    )]
    Assignments,
    #[error("{0}")]
    Criteria(String),
    #[error("this track already exists")]
    AlreadyExists,
    #[error("no such track")]
    NotFound,
    #[error("the track has started")]
    AlreadyStarted,
    #[error("enrollment is closed: the first assignment's deadline has passed")]
    EnrollmentClosed,
    #[error("the track is full")]
    Full,
    #[error("you are not enrolled in this track")]
    NotEnrolled,
    #[error("this track has no assignment {}", .0 + 1)]
    NoSuchAssignment(u32),
    #[error("assignment {} is not open", .0 + 1)]
    AssignmentNotOpen(u32),
    #[error("assignment {} is locked until you have given the reviews you were allocated", .0 + 1)]
    AssignmentLocked(u32),
    #[error("the deadline of assignment {} has passed", .0 + 1)]
    PastDeadline(u32),
    #[error("assignment {} is closed", .0 + 1)]
    AssignmentClosed(u32),
    #[error("it is not time yet")]
    NotYetDue,
    #[error("a new deadline must be later than the current one and in the future")]
    DeadlineNotLater,
    #[error("a deadline can be at most a year ahead")]
    DeadlineTooFar,
    #[error("this review is not yours to give")]
    NotYourReview,
    #[error("no solution of this id was allocated to you")]
    NotAllocated,
    #[error(transparent)]
    Repository(#[from] RepoUrlError),
    #[error("you already reviewed this solution")]
    AlreadyReviewed,
    #[error("{0}")]
    Scores(String),
    #[error("a review's comment has at most 5000 characters")]
    Comment,
}

// ---------------------------------------------------------------------------------------------------------------
// State

/// A track as its stream tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackState {
    pub spec: TrackSpec,
    /// In enrollment order.
    pub participants: Vec<Uuid>,
    pub started_at: Option<Timestamp>,
    /// One per opened assignment, in order.
    pub stages: Vec<Stage>,
    pub completed: bool,
}

/// An opened assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    pub opened_at: Timestamp,
    pub deadline: Timestamp,
    pub closed_at: Option<Timestamp>,
    pub submissions: BTreeMap<Uuid, RepoUrl>,
    pub reminded: BTreeSet<Uuid>,
    /// Who may submit (every participant for the first assignment).
    pub unlocked: BTreeSet<Uuid>,
    pub allocation: Option<Allocation>,
    /// Reviews given, by (reviewer, author).
    #[serde(with = "crate::serde_pairs")]
    pub reviews: BTreeMap<(Uuid, Uuid), (Vec<Score>, Option<String>)>,
}

impl Stage {
    pub fn remind_at(&self) -> Timestamp {
        reminder_time(self.opened_at, self.deadline)
    }

    /// Reviews `reviewer` was allocated here and has not given yet.
    pub fn reviews_pending(&self, reviewer: Uuid) -> usize {
        self.allocation.as_ref().map_or(0, |a| {
            a.pairs
                .iter()
                .filter(|p| {
                    p.reviewer == reviewer && !self.reviews.contains_key(&(p.reviewer, p.author))
                })
                .count()
        })
    }
}

impl TrackState {
    pub fn is_participant(&self, user: Uuid) -> bool {
        self.participants.contains(&user)
    }

    /// The assignment open now (the latest opened, if not closed).
    pub fn open_assignment(&self) -> Option<(u32, &Stage)> {
        let last = self.stages.len().checked_sub(1)?;
        let stage = &self.stages[last];
        stage.closed_at.is_none().then_some((last as u32, stage))
    }

    /// The assignment `participant` works on now: the latest unlocked for them.
    pub fn current_assignment(&self, participant: Uuid) -> Option<u32> {
        self.stages
            .iter()
            .rposition(|s| s.unlocked.contains(&participant))
            .map(|i| i as u32)
    }

    /// The assignment and author of `submission` when it was allocated to `reviewer` in track `track`.
    pub fn allocated_submission(
        &self,
        track: Uuid,
        reviewer: Uuid,
        submission: Uuid,
    ) -> Option<(u32, Uuid)> {
        self.stages.iter().enumerate().find_map(|(index, stage)| {
            let index = index as u32;
            stage
                .allocation
                .as_ref()?
                .pairs
                .iter()
                .find(|p| {
                    p.reviewer == reviewer && submission_id(track, index, p.author) == submission
                })
                .map(|p| (index, p.author))
        })
    }

    /// Reviews `reviewer` owes, over every closed assignment.
    pub fn reviews_owed(&self, reviewer: Uuid) -> usize {
        self.stages
            .iter()
            .map(|s| s.reviews_pending(reviewer))
            .sum()
    }

    fn stage(&self, assignment: u32) -> Result<&Stage, TrackError> {
        if assignment as usize >= self.spec.assignments.len() {
            return Err(TrackError::NoSuchAssignment(assignment));
        }
        self.stages
            .get(assignment as usize)
            .ok_or(TrackError::AssignmentNotOpen(assignment))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Decider

pub struct Track;

impl Decider for Track {
    type Command = TrackCommand;
    type Event = TrackEvent;
    type State = Option<TrackState>;
    type Error = TrackError;

    fn initial_state() -> Self::State {
        None
    }

    fn snapshots() -> Option<Snapshots<Self::State>> {
        Some(Snapshots::json("track-state/1", TRACK_SNAPSHOT_EVERY))
    }

    fn decide(command: &TrackCommand, state: &Self::State) -> Result<Vec<TrackEvent>, TrackError> {
        // every command but creating acts on a track that exists
        let track = state.as_ref().ok_or(TrackError::NotFound);
        match command {
            TrackCommand::Create { spec, by, at } => create(state.as_ref(), spec, *by, *at),
            TrackCommand::ReviseCriteria { criteria, by, at } => {
                revise_criteria(track?, criteria, *by, *at)
            }
            TrackCommand::Enroll { participant, at } => enroll(track?, *participant, *at),
            TrackCommand::Leave { participant, at } => leave(track?, *participant, *at),
            TrackCommand::SubmitSolution {
                assignment,
                participant,
                repository,
                at,
            } => submit_solution(track?, *assignment, *participant, repository, *at),
            TrackCommand::RemindDeadline {
                assignment,
                participant,
                at,
            } => remind_deadline(track?, *assignment, *participant, *at),
            TrackCommand::ExtendDeadline {
                assignment,
                deadline,
                by,
                at,
            } => extend_deadline(track?, *assignment, *deadline, *by, *at),
            TrackCommand::CloseAssignment {
                assignment,
                seed,
                at,
            } => close_assignment(track?, *assignment, *seed, *at),
            TrackCommand::SubmitReview {
                assignment,
                reviewer,
                author,
                scores,
                comment,
                at,
            } => submit_review(
                track?,
                *assignment,
                ReviewPair {
                    reviewer: *reviewer,
                    author: *author,
                },
                scores,
                comment.as_deref(),
                *at,
            ),
        }
    }

    fn evolve(state: Self::State, event: &TrackEvent) -> Self::State {
        if let TrackEvent::TrackCreated { spec, .. } = event {
            return Some(new_track(spec));
        }
        let mut track = state?;
        match event {
            TrackEvent::TrackCreated { .. } => {}
            TrackEvent::CriteriaRevised { criteria, .. } => track.spec.criteria = criteria.clone(),
            TrackEvent::LearnerEnrolled { participant, .. } => {
                track.participants.push(*participant);
                // joining a running track: the first assignment is open to them
                if let Some(first) = track.stages.first_mut() {
                    first.unlocked.insert(*participant);
                }
            }
            TrackEvent::LearnerLeft { participant, .. } => {
                track.participants.retain(|p| p != participant)
            }
            TrackEvent::TrackStarted { at, .. } => track.started_at = Some(*at),
            TrackEvent::AssignmentOpened {
                assignment,
                opened_at,
                deadline,
            } => {
                let stage = new_stage(&track, *assignment, *opened_at, *deadline);
                track.stages.push(stage);
            }
            TrackEvent::SolutionSubmitted { assignment, .. }
            | TrackEvent::DeadlineReminderSent { assignment, .. }
            | TrackEvent::DeadlineExtended { assignment, .. }
            | TrackEvent::AssignmentClosed { assignment, .. }
            | TrackEvent::ReviewsAllocated { assignment, .. }
            | TrackEvent::ReviewSubmitted { assignment, .. }
            | TrackEvent::AssignmentUnlocked { assignment, .. } => {
                if let Some(stage) = track.stages.get_mut(*assignment as usize) {
                    evolve_stage(stage, event);
                }
            }
            TrackEvent::TrackCompleted { .. } => track.completed = true,
        }
        Some(track)
    }
}

// Track commands, one function each, in the order of `TrackCommand`.

/// An admin creates a track once; creating the same track again changes nothing.
fn create(
    state: Option<&TrackState>,
    spec: &TrackSpec,
    by: Uuid,
    at: Timestamp,
) -> Result<Vec<TrackEvent>, TrackError> {
    match state {
        None => Ok(vec![TrackEvent::TrackCreated {
            spec: spec.clone(),
            by,
            at,
        }]),
        Some(track) if track.spec == *spec => Ok(vec![]),
        Some(_) => Err(TrackError::AlreadyExists),
    }
}

/// Criteria may be revised only until the track starts.
fn revise_criteria(
    track: &TrackState,
    criteria: &[Criterion],
    by: Uuid,
    at: Timestamp,
) -> Result<Vec<TrackEvent>, TrackError> {
    let criteria = parse_criteria(criteria.to_vec())?;
    if track.started_at.is_some() {
        Err(TrackError::AlreadyStarted)
    } else if criteria == track.spec.criteria {
        Ok(vec![])
    } else {
        Ok(vec![TrackEvent::CriteriaRevised { criteria, by, at }])
    }
}

/// A user enrolls until the first deadline, up to the maximum; the enrollment reaching the minimum starts the track.
fn enroll(
    track: &TrackState,
    participant: Uuid,
    at: Timestamp,
) -> Result<Vec<TrackEvent>, TrackError> {
    if track.is_participant(participant) {
        return Ok(vec![]);
    }
    if let Some(first) = track.stages.first()
        && (first.closed_at.is_some() || at >= first.deadline)
    {
        return Err(TrackError::EnrollmentClosed);
    }
    if track
        .spec
        .max_participants
        .is_some_and(|max| track.participants.len() as u32 >= max)
    {
        return Err(TrackError::Full);
    }
    let mut events = vec![TrackEvent::LearnerEnrolled { participant, at }];
    let enrolled = track.participants.len() as u32 + 1;
    if track.started_at.is_none() && enrolled >= track.spec.min_participants {
        let mut participants = track.participants.clone();
        participants.push(participant);
        events.push(TrackEvent::TrackStarted { participants, at });
        events.push(TrackEvent::AssignmentOpened {
            assignment: 0,
            opened_at: at,
            deadline: at + track.spec.assignments[0].time_to_complete(),
        });
    }
    Ok(events)
}

/// A participant may leave only before the start.
fn leave(
    track: &TrackState,
    participant: Uuid,
    at: Timestamp,
) -> Result<Vec<TrackEvent>, TrackError> {
    if !track.is_participant(participant) {
        Err(TrackError::NotEnrolled)
    } else if track.started_at.is_some() {
        Err(TrackError::AlreadyStarted)
    } else {
        Ok(vec![TrackEvent::LearnerLeft { participant, at }])
    }
}

/// A participant submits a link to an assignment unlocked for them, before its deadline; a new link replaces the old.
fn submit_solution(
    track: &TrackState,
    assignment: u32,
    participant: Uuid,
    repository: &RepoUrl,
    at: Timestamp,
) -> Result<Vec<TrackEvent>, TrackError> {
    if !track.is_participant(participant) {
        return Err(TrackError::NotEnrolled);
    }
    let stage = track.stage(assignment)?;
    if stage.closed_at.is_some() || at >= stage.deadline {
        return Err(TrackError::PastDeadline(assignment));
    }
    if !stage.unlocked.contains(&participant) {
        return Err(TrackError::AssignmentLocked(assignment));
    }
    let previous = stage.submissions.get(&participant);
    if previous == Some(repository) {
        return Ok(vec![]);
    }
    Ok(vec![TrackEvent::SolutionSubmitted {
        assignment,
        participant,
        repository: repository.clone(),
        replaces: previous.is_some(),
        at,
    }])
}

/// At 80 % of the time, a participant it is open to who has not submitted is reminded, once, before the deadline.
fn remind_deadline(
    track: &TrackState,
    assignment: u32,
    participant: Uuid,
    at: Timestamp,
) -> Result<Vec<TrackEvent>, TrackError> {
    let stage = track.stage(assignment)?;
    // nothing to remind of: closed or due, not theirs (yet), reminded, or submitted
    let settled = stage.closed_at.is_some()
        || at >= stage.deadline
        || !stage.unlocked.contains(&participant)
        || stage.reminded.contains(&participant)
        || stage.submissions.contains_key(&participant);
    if settled {
        Ok(vec![])
    } else if at < stage.remind_at() {
        Err(TrackError::NotYetDue)
    } else {
        Ok(vec![TrackEvent::DeadlineReminderSent {
            assignment,
            participant,
            deadline: stage.deadline,
            at,
        }])
    }
}

/// An admin extends an open assignment's deadline: later only, and into the future.
fn extend_deadline(
    track: &TrackState,
    assignment: u32,
    deadline: Timestamp,
    by: Uuid,
    at: Timestamp,
) -> Result<Vec<TrackEvent>, TrackError> {
    let stage = track.stage(assignment)?;
    if stage.closed_at.is_some() {
        Err(TrackError::AssignmentClosed(assignment))
    } else if deadline == stage.deadline {
        Ok(vec![])
    } else if deadline < stage.deadline || deadline <= at {
        Err(TrackError::DeadlineNotLater)
    } else if deadline > at + MAX_DEADLINE_AHEAD {
        Err(TrackError::DeadlineTooFar)
    } else {
        Ok(vec![TrackEvent::DeadlineExtended {
            assignment,
            previous: stage.deadline,
            deadline,
            by,
            at,
        }])
    }
}

/// At its deadline an assignment closes: reviews are allocated, and the next opens (or the track completes).
fn close_assignment(
    track: &TrackState,
    assignment: u32,
    seed: u64,
    at: Timestamp,
) -> Result<Vec<TrackEvent>, TrackError> {
    let stage = track.stage(assignment)?;
    if stage.closed_at.is_some() {
        return Ok(vec![]);
    }
    if at < stage.deadline {
        return Err(TrackError::NotYetDue);
    }
    let submitters: Vec<Uuid> = stage.submissions.keys().copied().collect();
    let allocation = allocate(&submitters, seed);
    let mut events = vec![
        TrackEvent::AssignmentClosed { assignment, at },
        TrackEvent::ReviewsAllocated {
            assignment,
            seed,
            allocation: allocation.clone(),
            at,
        },
    ];
    let next = assignment + 1;
    match track.spec.assignments.get(next as usize) {
        Some(spec) => {
            events.push(TrackEvent::AssignmentOpened {
                assignment: next,
                opened_at: at,
                deadline: at + spec.time_to_complete(),
            });
            // nothing to review, from this assignment or an earlier one: on to the next at once
            events.extend(
                track
                    .participants
                    .iter()
                    .filter(|p| allocation.owed_by(**p) == 0 && track.reviews_owed(**p) == 0)
                    .map(|p| TrackEvent::AssignmentUnlocked {
                        assignment: next,
                        participant: *p,
                        at,
                    }),
            );
        }
        None => events.push(TrackEvent::TrackCompleted { at }),
    }
    Ok(events)
}

/// A reviewer gives an allocated review once, scoring every criterion; the last one owed unlocks the open assignment.
fn submit_review(
    track: &TrackState,
    assignment: u32,
    pair: ReviewPair,
    scores: &[Score],
    comment: Option<&str>,
    at: Timestamp,
) -> Result<Vec<TrackEvent>, TrackError> {
    let stage = track.stage(assignment)?;
    let allocated = stage.allocation.as_ref().is_some_and(|a| a.contains(pair));
    if !allocated {
        return Err(TrackError::NotYourReview);
    }
    let scores = check_scores(&track.spec.criteria, scores)?;
    let comment = comment.map(str::trim).filter(|c| !c.is_empty());
    if comment.is_some_and(|c| c.chars().count() > 5000) {
        return Err(TrackError::Comment);
    }
    let comment = comment.map(str::to_owned);
    if let Some(given) = stage.reviews.get(&(pair.reviewer, pair.author)) {
        return if *given == (scores, comment) {
            Ok(vec![])
        } else {
            Err(TrackError::AlreadyReviewed)
        };
    }
    let mut events = vec![TrackEvent::ReviewSubmitted {
        assignment,
        reviewer: pair.reviewer,
        author: pair.author,
        scores,
        comment,
        at,
    }];
    // the last review owed opens the assignment open now, if it is not theirs yet
    let last_review = track.reviews_owed(pair.reviewer) == 1;
    if let Some((open, open_stage)) = track.open_assignment()
        && last_review
        && !open_stage.unlocked.contains(&pair.reviewer)
    {
        events.push(TrackEvent::AssignmentUnlocked {
            assignment: open,
            participant: pair.reviewer,
            at,
        });
    }
    Ok(events)
}

/// One score per criterion, each within its range, in the criteria's order.
fn check_scores(criteria: &[Criterion], scores: &[Score]) -> Result<Vec<Score>, TrackError> {
    for score in scores {
        let known = criteria
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case(score.criterion.trim()));
        if !known {
            return Err(TrackError::Scores(format!(
                "this track has no criterion {:?}",
                score.criterion
            )));
        }
    }
    criteria
        .iter()
        .map(|c| {
            let mut given = scores
                .iter()
                .filter(|s| s.criterion.trim().eq_ignore_ascii_case(&c.name));
            let score = given.next().ok_or_else(|| {
                TrackError::Scores(format!("criterion {:?} needs a score", c.name))
            })?;
            if given.next().is_some() {
                return Err(TrackError::Scores(format!(
                    "criterion {:?} is scored twice",
                    c.name
                )));
            }
            if !(c.min_score..=c.max_score).contains(&score.score) {
                return Err(TrackError::Scores(format!(
                    "criterion {:?} is scored from {} to {}; got {}",
                    c.name, c.min_score, c.max_score, score.score
                )));
            }
            Ok(Score {
                criterion: c.name.clone(),
                score: score.score,
            })
        })
        .collect()
}

// Track events: the state they start and the assignment they change.

/// A track as created: nobody enrolled, not started.
fn new_track(spec: &TrackSpec) -> TrackState {
    TrackState {
        spec: spec.clone(),
        participants: vec![],
        started_at: None,
        stages: vec![],
        completed: false,
    }
}

/// An assignment as it opens: the first is open to every participant, a later one to nobody yet.
fn new_stage(
    track: &TrackState,
    assignment: u32,
    opened_at: Timestamp,
    deadline: Timestamp,
) -> Stage {
    let unlocked = if assignment == 0 {
        track.participants.iter().copied().collect()
    } else {
        BTreeSet::new()
    };
    Stage {
        opened_at,
        deadline,
        closed_at: None,
        submissions: BTreeMap::new(),
        reminded: BTreeSet::new(),
        unlocked,
        allocation: None,
        reviews: BTreeMap::new(),
    }
}

/// What an event of one opened assignment changes in it.
fn evolve_stage(stage: &mut Stage, event: &TrackEvent) {
    match event {
        TrackEvent::SolutionSubmitted {
            participant,
            repository,
            ..
        } => {
            stage.submissions.insert(*participant, repository.clone());
        }
        TrackEvent::DeadlineReminderSent { participant, .. } => {
            stage.reminded.insert(*participant);
        }
        TrackEvent::DeadlineExtended { deadline, .. } => stage.deadline = *deadline,
        TrackEvent::AssignmentClosed { at, .. } => stage.closed_at = Some(*at),
        TrackEvent::ReviewsAllocated { allocation, .. } => {
            stage.allocation = Some(allocation.clone());
        }
        TrackEvent::ReviewSubmitted {
            reviewer,
            author,
            scores,
            comment,
            ..
        } => {
            stage
                .reviews
                .insert((*reviewer, *author), (scores.clone(), comment.clone()));
        }
        TrackEvent::AssignmentUnlocked { participant, .. } => {
            stage.unlocked.insert(*participant);
        }
        // events of the whole track, which `Track::evolve` handles
        TrackEvent::TrackCreated { .. }
        | TrackEvent::CriteriaRevised { .. }
        | TrackEvent::LearnerEnrolled { .. }
        | TrackEvent::LearnerLeft { .. }
        | TrackEvent::TrackStarted { .. }
        | TrackEvent::AssignmentOpened { .. }
        | TrackEvent::TrackCompleted { .. } => {}
    }
}
