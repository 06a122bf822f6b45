//! `deadlines`: what the deadline worker has to do: assignments still open with their deadline and 80 % mark,
//! and who has neither submitted nor been reminded yet; and each booked interview's timers (reminders 24 h and
//! 1 h before, the end, the feedback windows).
//!
//! Rebuilding it changes nothing the worker acts on: a reminder sent or an assignment closed is in the log, so
//! it is gone from here after a replay too.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::Timestamp;
use domain::interviews::{self, InterviewTimer, SlotEvent};
use domain::tracks::{TrackEvent, reminder_time};
use eventlog::RecordedEvent;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{Projection, ProjectionError, stream_uuid, timestamp};

pub const NAME: &str = "deadlines";

#[derive(Debug, Default)]
pub struct Deadlines;

/// The track events the worker's due lists follow.
const TRACK_TYPES: &[&str] = &[
    "LearnerEnrolled",
    "LearnerLeft",
    "AssignmentOpened",
    "SolutionSubmitted",
    "DeadlineReminderSent",
    "DeadlineExtended",
    "AssignmentClosed",
    "AssignmentUnlocked",
];

crate::read_model!(Deadlines {
    name: NAME,
    version: 2,
    events: [TRACK_TYPES, SlotEvent::TYPES]
});

#[async_trait]
impl Projection for Deadlines {
    async fn setup(&self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        sqlx::raw_sql(
            "create table members (
                 track_id uuid not null,
                 user_id  uuid not null,
                 primary key (track_id, user_id)
             );
             -- open assignments only: a closed one has nothing left to do
             create table due (
                 track_id   uuid not null,
                 assignment integer not null,
                 opened_at  timestamptz not null,
                 deadline   timestamptz not null,
                 -- 80 % of the way from opened_at to deadline
                 remind_at  timestamptz not null,
                 primary key (track_id, assignment)
             );
             create index due_deadline on due (deadline);
             create index due_remind_at on due (remind_at);
             -- participants an open assignment is open to who have not submitted and were not reminded
             create table waiting (
                 track_id   uuid not null,
                 assignment integer not null,
                 user_id    uuid not null,
                 primary key (track_id, assignment, user_id)
             );
             -- published slots' times, for their timers
             create table slots (
                 slot_id   uuid primary key,
                 starts_at bigint not null,
                 ends_at   bigint not null
             );
             -- what is due on a booked interview: remind_24, remind_1, end, expire_feedback, auto_accept,
             -- confirm_no_show
             create table interview_due (
                 slot_id uuid not null,
                 kind    text not null,
                 due_at  timestamptz not null,
                 primary key (slot_id, kind)
             );
             create index interview_due_at on interview_due (due_at);",
        )
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        crate::by_category!(NAME, conn, events, { "track" => track_event, "slot" => slot_event })
    }
}

async fn track_event(
    conn: &mut PgConnection,
    recorded: &RecordedEvent,
) -> Result<(), ProjectionError> {
    let track = stream_uuid(&recorded.stream_id, "track-")?;
    apply_one(conn, track, recorded.decode::<TrackEvent>()?).await
}

async fn slot_event(
    conn: &mut PgConnection,
    recorded: &RecordedEvent,
) -> Result<(), ProjectionError> {
    let slot = stream_uuid(&recorded.stream_id, "slot-")?;
    apply_slot(conn, slot, recorded.decode::<SlotEvent>()?).await
}

async fn apply_one(
    conn: &mut PgConnection,
    track: Uuid,
    event: TrackEvent,
) -> Result<(), ProjectionError> {
    match event {
        TrackEvent::LearnerEnrolled { participant, .. } => {
            participant_enrolled(conn, track, participant).await
        }
        TrackEvent::LearnerLeft { participant, .. } => {
            participant_left(conn, track, participant).await
        }
        TrackEvent::AssignmentOpened {
            assignment,
            opened_at,
            deadline,
        } => assignment_opened(conn, track, assignment, opened_at, deadline).await,
        TrackEvent::AssignmentUnlocked {
            assignment,
            participant,
            ..
        } => assignment_unlocked(conn, track, assignment, participant).await,
        TrackEvent::SolutionSubmitted {
            assignment,
            participant,
            ..
        }
        | TrackEvent::DeadlineReminderSent {
            assignment,
            participant,
            ..
        } => stop_waiting(conn, track, assignment, participant).await,
        TrackEvent::DeadlineExtended {
            assignment,
            deadline,
            ..
        } => deadline_extended(conn, track, assignment, deadline).await,
        TrackEvent::AssignmentClosed { assignment, .. } => {
            assignment_closed(conn, track, assignment).await
        }
        // not in TRACK_TYPES, so never delivered here
        TrackEvent::TrackCreated { .. }
        | TrackEvent::CriteriaRevised { .. }
        | TrackEvent::TrackStarted { .. }
        | TrackEvent::ReviewsAllocated { .. }
        | TrackEvent::ReviewSubmitted { .. }
        | TrackEvent::TrackCompleted { .. } => Ok(()),
    }
}

/// Inserts the `members` row and a `waiting` row for each open assignment.
async fn participant_enrolled(
    conn: &mut PgConnection,
    track: Uuid,
    participant: Uuid,
) -> Result<(), ProjectionError> {
    sqlx::query("insert into members (track_id, user_id) values ($1, $2)")
        .bind(track)
        .bind(participant)
        .execute(&mut *conn)
        .await?;
    // a late joiner waits on whatever is open
    sqlx::query(
        "insert into waiting (track_id, assignment, user_id)
         select track_id, assignment, $2 from due where track_id = $1",
    )
    .bind(track)
    .bind(participant)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes the `members` row.
async fn participant_left(
    conn: &mut PgConnection,
    track: Uuid,
    participant: Uuid,
) -> Result<(), ProjectionError> {
    sqlx::query("delete from members where track_id = $1 and user_id = $2")
        .bind(track)
        .bind(participant)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Inserts the `due` row and, for the first assignment, a `waiting` row per member.
async fn assignment_opened(
    conn: &mut PgConnection,
    track: Uuid,
    assignment: u32,
    opened_at: Timestamp,
    deadline: Timestamp,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "insert into due (track_id, assignment, opened_at, deadline, remind_at)
         values ($1, $2, $3, $4, $5)",
    )
    .bind(track)
    .bind(assignment as i32)
    .bind(DateTime::<Utc>::from(opened_at))
    .bind(DateTime::<Utc>::from(deadline))
    .bind(DateTime::<Utc>::from(reminder_time(opened_at, deadline)))
    .execute(&mut *conn)
    .await?;
    // the first assignment is open to every member; later ones open to each by AssignmentUnlocked
    if assignment == 0 {
        sqlx::query(
            "insert into waiting (track_id, assignment, user_id)
             select $1, 0, user_id from members where track_id = $1",
        )
        .bind(track)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Inserts a `waiting` row for the participant if the assignment is still open.
async fn assignment_unlocked(
    conn: &mut PgConnection,
    track: Uuid,
    assignment: u32,
    participant: Uuid,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "insert into waiting (track_id, assignment, user_id)
         select track_id, assignment, $3 from due where track_id = $1 and assignment = $2",
    )
    .bind(track)
    .bind(assignment as i32)
    .bind(participant)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes the participant's `waiting` row (they submitted or were reminded).
async fn stop_waiting(
    conn: &mut PgConnection,
    track: Uuid,
    assignment: u32,
    participant: Uuid,
) -> Result<(), ProjectionError> {
    sqlx::query("delete from waiting where track_id = $1 and assignment = $2 and user_id = $3")
        .bind(track)
        .bind(assignment as i32)
        .bind(participant)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Moves the `due` row's deadline and recomputes its `remind_at`.
async fn deadline_extended(
    conn: &mut PgConnection,
    track: Uuid,
    assignment: u32,
    deadline: Timestamp,
) -> Result<(), ProjectionError> {
    let opened_at: DateTime<Utc> =
        sqlx::query_scalar("select opened_at from due where track_id = $1 and assignment = $2")
            .bind(track)
            .bind(assignment as i32)
            .fetch_one(&mut *conn)
            .await?;
    let remind_at = reminder_time(opened_at.into(), deadline);
    sqlx::query(
        "update due set deadline = $3, remind_at = $4 where track_id = $1 and assignment = $2",
    )
    .bind(track)
    .bind(assignment as i32)
    .bind(DateTime::<Utc>::from(deadline))
    .bind(DateTime::<Utc>::from(remind_at))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes the assignment's `due` and `waiting` rows.
async fn assignment_closed(
    conn: &mut PgConnection,
    track: Uuid,
    assignment: u32,
) -> Result<(), ProjectionError> {
    for table in ["due", "waiting"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "delete from {table} where track_id = $1 and assignment = $2"
        )))
        .bind(track)
        .bind(assignment as i32)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn apply_slot(
    conn: &mut PgConnection,
    slot: Uuid,
    event: SlotEvent,
) -> Result<(), ProjectionError> {
    let all = InterviewTimer::ALL.to_vec();
    let (clear, add): (Vec<InterviewTimer>, Vec<(InterviewTimer, Timestamp)>) = match event {
        SlotEvent::SlotPublished { spec, .. } => {
            sqlx::query("insert into slots (slot_id, starts_at, ends_at) values ($1, $2, $3)")
                .bind(slot)
                .bind(spec.start.unix_seconds())
                .bind(spec.end().unix_seconds())
                .execute(&mut *conn)
                .await?;
            return Ok(());
        }
        SlotEvent::SlotBooked { at, .. } => {
            let (start, end): (i64, i64) =
                sqlx::query_as("select starts_at, ends_at from slots where slot_id = $1")
                    .bind(slot)
                    .fetch_one(&mut *conn)
                    .await?;
            let (start, end) = (timestamp(start)?, timestamp(end)?);
            // a reminder whose time had passed at the booking is not sent (the decider skips it too)
            let mut add: Vec<(InterviewTimer, Timestamp)> = InterviewTimer::REMINDERS
                .iter()
                .map(|(timer, hours)| (*timer, interviews::reminder_time(start, *hours)))
                .filter(|(_, due)| *due >= at)
                .collect();
            add.push((InterviewTimer::End, end));
            (vec![], add)
        }
        SlotEvent::InterviewReminderSent { hours_before, .. } => (
            InterviewTimer::reminder(hours_before).into_iter().collect(),
            vec![],
        ),
        SlotEvent::InterviewEnded { feedback_due, .. } => (
            vec![
                InterviewTimer::RemindDayBefore,
                InterviewTimer::RemindHourBefore,
                InterviewTimer::End,
            ],
            vec![(InterviewTimer::ExpireFeedback, feedback_due)],
        ),
        SlotEvent::FeedbackGiven { accept_by, .. } => (
            vec![InterviewTimer::ExpireFeedback],
            vec![(InterviewTimer::AutoAccept, accept_by)],
        ),
        // nothing else runs on a reported interview; an uncontested report settles when its window ends
        SlotEvent::NoShowReported { contest_by, .. } => {
            (all, vec![(InterviewTimer::ConfirmNoShow, contest_by)])
        }
        SlotEvent::SlotWithdrawn { .. }
        | SlotEvent::BookingCancelled { .. }
        | SlotEvent::FeedbackAccepted { .. }
        | SlotEvent::FeedbackDisputed { .. }
        | SlotEvent::NoShowContested { .. }
        | SlotEvent::NoShowConfirmed { .. }
        | SlotEvent::NoShowResolved { .. }
        | SlotEvent::FeedbackExpired { .. } => (all, vec![]),
    };
    sqlx::query("delete from interview_due where slot_id = $1 and kind = any($2)")
        .bind(slot)
        .bind(clear.iter().map(|t| t.as_str()).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    for (kind, at) in add {
        sqlx::query("insert into interview_due (slot_id, kind, due_at) values ($1, $2, $3)")
            .bind(slot)
            .bind(kind.as_str())
            .bind(DateTime::<Utc>::from(at))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Interview timers that are due, `(due at, slot, kind)`, in that order, after `after`.
#[tracing::instrument(skip_all)]
pub async fn due_interview_timers(
    pool: &PgPool,
    now: DateTime<Utc>,
    after: Option<(DateTime<Utc>, Uuid, String)>,
    limit: i64,
) -> Result<Vec<(DateTime<Utc>, Uuid, String)>, sqlx::Error> {
    let (due, slot, kind) = match after {
        Some((d, s, k)) => (Some(d), Some(s), Some(k)),
        None => (None, None, None),
    };
    sqlx::query_as(
        "select due_at, slot_id, kind from deadlines.interview_due
          where due_at <= $1 and ($2::timestamptz is null or (due_at, slot_id, kind) > ($2, $3::uuid, $4::text))
          order by due_at, slot_id, kind limit $5",
    )
    .bind(now)
    .bind(due)
    .bind(slot)
    .bind(kind)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Open assignments whose deadline has come, `(track, assignment)`, in that order, after `after`.
#[tracing::instrument(skip_all)]
pub async fn due_to_close(
    pool: &PgPool,
    now: DateTime<Utc>,
    after: Option<(Uuid, i32)>,
    limit: i64,
) -> Result<Vec<(Uuid, i32)>, sqlx::Error> {
    let (track, assignment) = after.unzip();
    sqlx::query_as(
        "select track_id, assignment from deadlines.due
          where deadline <= $1 and ($2::uuid is null or (track_id, assignment) > ($2, $3::int))
          order by track_id, assignment limit $4",
    )
    .bind(now)
    .bind(track)
    .bind(assignment)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Reminders whose time has come, `(track, assignment, participant)`, in that order, after `after`.
#[tracing::instrument(skip_all)]
pub async fn due_reminders(
    pool: &PgPool,
    now: DateTime<Utc>,
    after: Option<(Uuid, i32, Uuid)>,
    limit: i64,
) -> Result<Vec<(Uuid, i32, Uuid)>, sqlx::Error> {
    let (track, assignment, user) = match after {
        Some((t, a, u)) => (Some(t), Some(a), Some(u)),
        None => (None, None, None),
    };
    sqlx::query_as(
        "select w.track_id, w.assignment, w.user_id
           from deadlines.waiting w
           join deadlines.due d on d.track_id = w.track_id and d.assignment = w.assignment
          where d.remind_at <= $1 and d.deadline > $1
            and ($2::uuid is null or (w.track_id, w.assignment, w.user_id) > ($2, $3::int, $4::uuid))
          order by w.track_id, w.assignment, w.user_id limit $5",
    )
    .bind(now)
    .bind(track)
    .bind(assignment)
    .bind(user)
    .bind(limit)
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_track_events_it_reads_are_track_events() {
        for event_type in TRACK_TYPES {
            assert!(TrackEvent::TYPES.contains(event_type), "{event_type}");
        }
    }
}
