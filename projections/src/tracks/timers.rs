//! The cohort tracks' timers in the `deadlines` host: each open assignment's close at its deadline, and the
//! 80 % reminder of each participant it is open to who has neither submitted nor been reminded (lapsing at the
//! deadline). Beside the host's `timers` it keeps who is in each track and each open assignment's window.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::Timestamp;
use domain::tracks::{TrackEvent, TrackTimer, reminder_time};
use eventlog::RecordedEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::deadlines::{self, Timers};
use crate::{Contribution, ProjectionError, stream_uuid};

pub struct TrackTimers;

/// The track events that set or clear its timers.
const TYPES: &[&str] = &[
    "LearnerEnrolled",
    "LearnerLeft",
    "AssignmentOpened",
    "SolutionSubmitted",
    "DeadlineReminderSent",
    "DeadlineExtended",
    "AssignmentClosed",
    "AssignmentUnlocked",
];

#[async_trait]
impl Contribution for TrackTimers {
    fn category(&self) -> &'static str {
        "track"
    }

    fn event_types(&self) -> &'static [&'static str] {
        TYPES
    }

    async fn setup(&self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        sqlx::raw_sql(
            "create table track_participants (
                 track_id uuid not null,
                 user_id  uuid not null,
                 primary key (track_id, user_id)
             );
             -- open assignments only: a closed one has nothing left to do
             create table track_open (
                 track_id   uuid not null,
                 assignment integer not null,
                 opened_at  timestamptz not null,
                 deadline   timestamptz not null,
                 primary key (track_id, assignment)
             );",
        )
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Timers for TrackTimers {
    async fn apply(
        &self,
        conn: &mut PgConnection,
        recorded: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let on = Track {
            stream: &recorded.stream_id,
            id: stream_uuid(&recorded.stream_id, "track-")?,
        };
        match recorded.decode::<TrackEvent>()? {
            TrackEvent::LearnerEnrolled { participant, .. } => on.enrolled(conn, participant).await,
            TrackEvent::LearnerLeft { participant, .. } => on.left(conn, participant).await,
            TrackEvent::AssignmentOpened {
                assignment,
                opened_at,
                deadline,
            } => on.opened(conn, assignment, opened_at, deadline).await,
            TrackEvent::AssignmentUnlocked {
                assignment,
                participant,
                ..
            } => on.unlocked(conn, assignment, participant).await,
            TrackEvent::SolutionSubmitted {
                assignment,
                participant,
                ..
            }
            | TrackEvent::DeadlineReminderSent {
                assignment,
                participant,
                ..
            } => {
                let timer = TrackTimer::Remind {
                    assignment,
                    participant,
                };
                deadlines::clear(conn, on.stream, &timer).await
            }
            TrackEvent::DeadlineExtended {
                assignment,
                deadline,
                ..
            } => on.extended(conn, assignment, deadline).await,
            TrackEvent::AssignmentClosed { assignment, .. } => on.closed(conn, assignment).await,
            // not in TYPES, so never delivered here
            TrackEvent::TrackCreated { .. }
            | TrackEvent::CriteriaRevised { .. }
            | TrackEvent::TrackStarted { .. }
            | TrackEvent::ReviewsAllocated { .. }
            | TrackEvent::ReviewSubmitted { .. }
            | TrackEvent::TrackCompleted { .. } => Ok(()),
        }
    }
}

/// The track an event is on.
struct Track<'a> {
    stream: &'a str,
    id: Uuid,
}

impl Track<'_> {
    /// A participant; a late joiner is waited on for whatever is open.
    async fn enrolled(&self, conn: &mut PgConnection, user: Uuid) -> Result<(), ProjectionError> {
        sqlx::query("insert into track_participants (track_id, user_id) values ($1, $2)")
            .bind(self.id)
            .bind(user)
            .execute(&mut *conn)
            .await?;
        for (assignment, opened_at, deadline) in self.open(conn, None).await? {
            self.remind(conn, assignment, user, opened_at, deadline)
                .await?;
        }
        Ok(())
    }

    /// No longer a participant, nor reminded.
    async fn left(&self, conn: &mut PgConnection, user: Uuid) -> Result<(), ProjectionError> {
        sqlx::query("delete from track_participants where track_id = $1 and user_id = $2")
            .bind(self.id)
            .bind(user)
            .execute(&mut *conn)
            .await?;
        for timer in deadlines::on_stream::<TrackTimer>(conn, self.stream).await? {
            if matches!(timer, TrackTimer::Remind { participant, .. } if participant == user) {
                deadlines::clear(conn, self.stream, &timer).await?;
            }
        }
        Ok(())
    }

    /// The close at the deadline; the first assignment waits on every participant's reminder, later ones on each
    /// participant's as it opens to them.
    async fn opened(
        &self,
        conn: &mut PgConnection,
        assignment: u32,
        opened_at: Timestamp,
        deadline: Timestamp,
    ) -> Result<(), ProjectionError> {
        sqlx::query(
            "insert into track_open (track_id, assignment, opened_at, deadline) values ($1, $2, $3, $4)",
        )
        .bind(self.id)
        .bind(assignment as i32)
        .bind(DateTime::<Utc>::from(opened_at))
        .bind(DateTime::<Utc>::from(deadline))
        .execute(&mut *conn)
        .await?;
        let close = TrackTimer::Close { assignment };
        deadlines::set(conn, self.stream, &close, deadline, None).await?;
        if assignment == 0 {
            let participants: Vec<Uuid> =
                sqlx::query_scalar("select user_id from track_participants where track_id = $1")
                    .bind(self.id)
                    .fetch_all(&mut *conn)
                    .await?;
            for user in participants {
                self.remind(conn, 0, user, opened_at, deadline).await?;
            }
        }
        Ok(())
    }

    /// The participant's reminder, if the assignment is still open.
    async fn unlocked(
        &self,
        conn: &mut PgConnection,
        assignment: u32,
        user: Uuid,
    ) -> Result<(), ProjectionError> {
        for (assignment, opened_at, deadline) in self.open(conn, Some(assignment)).await? {
            self.remind(conn, assignment, user, opened_at, deadline)
                .await?;
        }
        Ok(())
    }

    /// The close and the reminders still waiting follow the new deadline.
    async fn extended(
        &self,
        conn: &mut PgConnection,
        assignment: u32,
        deadline: Timestamp,
    ) -> Result<(), ProjectionError> {
        let opened_at: DateTime<Utc> = sqlx::query_scalar(
            "update track_open set deadline = $3 where track_id = $1 and assignment = $2
             returning opened_at",
        )
        .bind(self.id)
        .bind(assignment as i32)
        .bind(DateTime::<Utc>::from(deadline))
        .fetch_one(&mut *conn)
        .await?;
        let opened_at = Timestamp::from(opened_at);
        for timer in deadlines::on_stream::<TrackTimer>(conn, self.stream).await? {
            match timer {
                TrackTimer::Remind {
                    assignment: a,
                    participant,
                } if a == assignment => {
                    self.remind(conn, assignment, participant, opened_at, deadline)
                        .await?;
                }
                TrackTimer::Close { assignment: a } if a == assignment => {
                    deadlines::set(conn, self.stream, &timer, deadline, None).await?;
                }
                TrackTimer::Remind { .. } | TrackTimer::Close { .. } => {}
            }
        }
        Ok(())
    }

    /// Nothing is left to do on a closed assignment.
    async fn closed(
        &self,
        conn: &mut PgConnection,
        assignment: u32,
    ) -> Result<(), ProjectionError> {
        sqlx::query("delete from track_open where track_id = $1 and assignment = $2")
            .bind(self.id)
            .bind(assignment as i32)
            .execute(&mut *conn)
            .await?;
        for timer in deadlines::on_stream::<TrackTimer>(conn, self.stream).await? {
            let on_it = match timer {
                TrackTimer::Remind { assignment: a, .. } | TrackTimer::Close { assignment: a } => {
                    a == assignment
                }
            };
            if on_it {
                deadlines::clear(conn, self.stream, &timer).await?;
            }
        }
        Ok(())
    }

    /// The open assignments (only `assignment`, when given): `(assignment, opened_at, deadline)`.
    async fn open(
        &self,
        conn: &mut PgConnection,
        assignment: Option<u32>,
    ) -> Result<Vec<(u32, Timestamp, Timestamp)>, ProjectionError> {
        let rows: Vec<(i32, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
            "select assignment, opened_at, deadline from track_open
              where track_id = $1 and ($2::int is null or assignment = $2) order by assignment",
        )
        .bind(self.id)
        .bind(assignment.map(|a| a as i32))
        .fetch_all(&mut *conn)
        .await?;
        let open = rows
            .into_iter()
            .map(|(a, o, d)| (a as u32, o.into(), d.into()));
        Ok(open.collect())
    }

    /// Sets the participant's 80 % reminder of an assignment open from `opened_at` until `deadline`.
    async fn remind(
        &self,
        conn: &mut PgConnection,
        assignment: u32,
        participant: Uuid,
        opened_at: Timestamp,
        deadline: Timestamp,
    ) -> Result<(), ProjectionError> {
        let timer = TrackTimer::Remind {
            assignment,
            participant,
        };
        let due = reminder_time(opened_at, deadline);
        deadlines::set(conn, self.stream, &timer, due, Some(deadline)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_track_events_it_reads_are_track_events() {
        for event_type in TYPES {
            assert!(TrackEvent::TYPES.contains(event_type), "{event_type}");
        }
    }
}
