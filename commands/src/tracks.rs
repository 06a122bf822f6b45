//! Cohort tracks' use cases: creating and revising tracks, enrolling and leaving, solutions, reviews, diaries,
//! and the reminders and closes the deadline worker fires.

use async_trait::async_trait;
use domain::tracks::{
    AssignmentSpec, Criterion, Diary, DiaryCommand, DiaryError, RepoUrl, Score, Track,
    TrackCommand, TrackError, TrackEvent, TrackSpec, TrackTimer, diary_stream, parse_criteria,
    submission_id, track_stream,
};
use domain::{Decider, Timestamp};
use uuid::Uuid;

use crate::timers::{self, Fired, FiredTimer, FiresTimers, TimerError};
use crate::{CommandError, CommandExecutor, Decided, Request, new_events};

/// Namespace of the ids of the deadline worker's track commands.
const TIMER_NAMESPACE: Uuid = Uuid::from_u128(0x3f9a_0c61_d2b4_4e57_8c1d_a96e_24f0_b718);

pub type TrackResult<T> = Result<T, CommandError<TrackError>>;

/// The cohort-track service.
#[derive(Debug, Clone)]
pub struct Tracks {
    executor: CommandExecutor,
}

/// What a track command did.
#[derive(Debug, Clone, Copy)]
pub struct TrackChanged {
    pub position: Option<i64>,
    /// Whether this command started the track (an enrollment that reached the minimum).
    pub started: bool,
    /// Whether it appended anything.
    pub changed: bool,
}

/// A track to create, as a client sends it.
#[derive(Debug, Clone)]
pub struct NewTrack {
    pub title: String,
    pub description: String,
    /// The track starts by itself when this many have enrolled.
    pub min_participants: u32,
    pub max_participants: Option<u32>,
    pub criteria: Vec<Criterion>,
    /// In the order they open.
    pub assignments: Vec<AssignmentSpec>,
}

/// A created track.
#[derive(Debug, Clone, Copy)]
pub struct Created {
    pub track_id: Uuid,
    pub position: Option<i64>,
}

/// A submitted solution.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub submission_id: Uuid,
    pub repository: RepoUrl,
    pub position: Option<i64>,
}

/// A written diary entry.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    pub entry_id: Uuid,
    pub position: Option<i64>,
}

impl Tracks {
    pub fn new(executor: CommandExecutor) -> Self {
        Self { executor }
    }

    /// Creates a track (admins). The track id derives from the command id, so a retry names the same track.
    pub async fn create_track(&self, request: &Request, input: NewTrack) -> TrackResult<Created> {
        let by = request.admin()?;
        let spec = TrackSpec::parse(
            &input.title,
            &input.description,
            input.min_participants,
            input.max_participants,
            input.criteria,
            input.assignments,
        )
        .map_err(CommandError::Rejected)?;
        let command_id = request.command_id("createTrack", &[&spec.title]);
        let track_id = Uuid::new_v5(&Uuid::NAMESPACE_OID, command_id.as_bytes());
        let command = TrackCommand::Create {
            spec,
            by,
            at: request.at,
        };
        let metadata = request.metadata_with_id(command_id);
        let changed = self.run(track_id, &command, &metadata).await?;
        Ok(Created {
            track_id,
            position: changed.position,
        })
    }

    /// Replaces a track's review criteria (admins; only before it starts).
    pub async fn revise_criteria(
        &self,
        request: &Request,
        track: Uuid,
        criteria: Vec<Criterion>,
    ) -> TrackResult<TrackChanged> {
        let by = request.admin()?;
        let criteria = parse_criteria(criteria).map_err(CommandError::Rejected)?;
        let names: Vec<&str> = criteria.iter().map(|c| c.name.as_str()).collect();
        let metadata = request.metadata(
            "reviseCriteria",
            &[&track.to_string(), &names.join("\u{0}")],
        );
        let command = TrackCommand::ReviseCriteria {
            criteria,
            by,
            at: request.at,
        };
        self.run(track, &command, &metadata).await
    }

    /// Moves the open assignment's deadline later (admins).
    pub async fn extend_deadline(
        &self,
        request: &Request,
        track: Uuid,
        assignment: u32,
        deadline: Timestamp,
    ) -> TrackResult<TrackChanged> {
        let by = request.admin()?;
        // the deadline as Unix seconds, as command ids have always named it
        let metadata = request.metadata(
            "extendDeadline",
            &[
                &track.to_string(),
                &assignment.to_string(),
                &deadline.unix_seconds().to_string(),
            ],
        );
        let command = TrackCommand::ExtendDeadline {
            assignment,
            deadline,
            by,
            at: request.at,
        };
        self.run(track, &command, &metadata).await
    }

    /// Enrolls the user; the enrollment that reaches the minimum starts the track.
    pub async fn enroll(&self, request: &Request, track: Uuid) -> TrackResult<TrackChanged> {
        let command = TrackCommand::Enroll {
            participant: request.user()?,
            at: request.at,
        };
        let metadata = request.metadata("enroll", &[&track.to_string()]);
        self.run(track, &command, &metadata).await
    }

    /// Leaves a track before it starts.
    pub async fn leave_track(&self, request: &Request, track: Uuid) -> TrackResult<TrackChanged> {
        let command = TrackCommand::Leave {
            participant: request.user()?,
            at: request.at,
        };
        let metadata = request.metadata("leaveTrack", &[&track.to_string()]);
        self.run(track, &command, &metadata).await
    }

    /// Submits (or, before the deadline, replaces) the user's solution to an assignment.
    pub async fn submit_solution(
        &self,
        request: &Request,
        track: Uuid,
        assignment: u32,
        repository: &str,
    ) -> TrackResult<Submitted> {
        let participant = request.user()?;
        let repository =
            RepoUrl::parse(repository).map_err(|e| CommandError::Rejected(TrackError::from(e)))?;
        let metadata = request.metadata(
            "submitSolution",
            &[
                &track.to_string(),
                &assignment.to_string(),
                repository.as_str(),
            ],
        );
        let command = TrackCommand::SubmitSolution {
            assignment,
            participant,
            repository: repository.clone(),
            at: request.at,
        };
        let changed = self.run(track, &command, &metadata).await?;
        Ok(Submitted {
            submission_id: submission_id(track, assignment, participant),
            repository,
            position: changed.position,
        })
    }

    /// Reviews a solution the user was allocated: a score per criterion and a comment.
    pub async fn submit_review(
        &self,
        request: &Request,
        track: Uuid,
        submission: Uuid,
        scores: Vec<Score>,
        comment: Option<String>,
    ) -> TrackResult<TrackChanged> {
        let reviewer = request.user()?;
        let at = request.at;
        let metadata = request.metadata(
            "submitReview",
            &[&track.to_string(), &submission.to_string()],
        );
        let decided = self
            .executor
            .execute_with::<Track, _>(&track_stream(track), &metadata, |state| {
                let state = state.as_ref().ok_or(TrackError::NotFound)?;
                let (assignment, author) = state
                    .allocated_submission(track, reviewer, submission)
                    .ok_or(TrackError::NotAllocated)?;
                Ok(TrackCommand::SubmitReview {
                    assignment,
                    reviewer,
                    author,
                    scores: scores.clone(),
                    comment: comment.clone(),
                    at,
                })
            })
            .await?;
        Ok(changed(decided))
    }

    /// Writes in the user's diary under an assignment of the track that has opened.
    pub async fn write_diary_entry(
        &self,
        request: &Request,
        track: Uuid,
        assignment: u32,
        text: String,
    ) -> Result<Written, CommandError<DiaryError>> {
        let participant = request.user()?;
        let entry_id = request.command_id(
            "writeDiaryEntry",
            &[&track.to_string(), &assignment.to_string(), &text],
        );
        let (track_stream, diary) = (track_stream(track), diary_stream(track, participant));
        let streams = [track_stream.clone(), diary.clone()];
        let metadata = request.metadata_with_id(entry_id);
        let written = self
            .executor
            .execute_across("WriteDiaryEntry", &streams, &metadata, |loaded| {
                let state = loaded.state::<Track>(&track_stream);
                let state = state.as_ref().ok_or(DiaryError::NoSuchTrack)?;
                let command = DiaryCommand::Write {
                    entry_id,
                    track,
                    assignment,
                    participant,
                    text: text.clone(),
                    enrolled: state.is_participant(participant),
                    assignment_opened: (assignment as usize) < state.stages.len(),
                    at: request.at,
                };
                let events = Diary::decide(&command, &loaded.state::<Diary>(&diary))?;
                Ok(vec![(diary.clone(), new_events(&events))])
            })
            .await?;
        Ok(Written {
            entry_id,
            position: written.position(),
        })
    }

    /// Fires `timer` (the deadline worker): the 80 % reminder of one participant, or the close of an assignment
    /// at its deadline, which allocates the reviews with `seed`. Its command id names what it is about, so a
    /// retry, a restart or a second worker never fires it twice; one no longer due (the read model was behind
    /// an extension) or already done is [`Fired::Skipped`].
    pub async fn fire_timer(
        &self,
        request: &Request,
        track: Uuid,
        timer: TrackTimer,
        seed: u64,
    ) -> TrackResult<Fired> {
        let at = request.at;
        let (command, id) = match timer {
            TrackTimer::Remind {
                assignment,
                participant,
            } => (
                TrackCommand::RemindDeadline {
                    assignment,
                    participant,
                    at,
                },
                timer_id(&[
                    "remind",
                    &track.to_string(),
                    &assignment.to_string(),
                    &participant.to_string(),
                ]),
            ),
            TrackTimer::Close { assignment } => (
                TrackCommand::CloseAssignment {
                    assignment,
                    seed,
                    at,
                },
                timer_id(&["close", &track.to_string(), &assignment.to_string()]),
            ),
        };
        match self
            .run(track, &command, &request.metadata_with_id(id))
            .await
        {
            Ok(changed) if changed.changed => Ok(Fired::Done),
            Ok(_) | Err(CommandError::Rejected(TrackError::NotYetDue)) => Ok(Fired::Skipped),
            Err(error) => Err(error),
        }
    }

    async fn run(
        &self,
        track: Uuid,
        command: &TrackCommand,
        metadata: &crate::Metadata,
    ) -> TrackResult<TrackChanged> {
        let stream = track_stream(track);
        let executed = self
            .executor
            .execute::<Track>(&stream, command, metadata)
            .await?;
        // a repeat reports what its first execution did
        let first = match &executed.appended {
            Some(appended) if executed.is_repeat() => self
                .executor
                .appended_events::<Track>(&stream, appended)
                .await
                .map_err(CommandError::Internal)?,
            _ => vec![],
        };
        Ok(TrackChanged {
            position: executed.position(),
            started: started(&executed.events) || started(&first),
            changed: !executed.events.is_empty(),
        })
    }
}

#[async_trait]
impl FiresTimers for Tracks {
    fn category(&self) -> &'static str {
        "track"
    }

    async fn fire(
        &self,
        request: &Request,
        track: Uuid,
        timer: &serde_json::Value,
        seed: u64,
    ) -> Result<FiredTimer, TimerError> {
        let stream = track_stream(track);
        let timer: TrackTimer = timers::decode(&stream, timer)?;
        let fired = self.fire_timer(request, track, timer, seed).await;
        timers::outcome(&stream, timer.action(), fired)
    }
}

fn changed(decided: Decided<Vec<TrackEvent>>) -> TrackChanged {
    let events = decided.output.unwrap_or_default();
    TrackChanged {
        position: decided.written.position(),
        started: started(&events),
        changed: decided.written.events > 0,
    }
}

fn started(events: &[TrackEvent]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, TrackEvent::TrackStarted { .. }))
}

/// The id of a deadline-worker command: what it is about, so it never fires twice.
fn timer_id(parts: &[&str]) -> Uuid {
    Uuid::new_v5(&TIMER_NAMESPACE, parts.join("\u{0}").as_bytes())
}
