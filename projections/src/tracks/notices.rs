//! The cohort tracks' notices in the `notifications` host: a track starting, a late joiner let in, deadline
//! reminders and extensions, reviews to give and received, an assignment opening to a participant. Beside the
//! host's rows it keeps each track's title, assignment titles, start and participants, to word and address them.

use async_trait::async_trait;
use domain::Timestamp;
use domain::notices::NotificationKind;
use domain::tracks::{Allocation, TrackEvent, TrackSpec};
use eventlog::RecordedEvent;
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::notifications::{Notice, Notices, when};
use crate::{Contribution, ProjectionError, stream_uuid};

pub struct TrackNotices;

/// The track events that notify someone, or that it needs to word notifications.
const TYPES: &[&str] = &[
    "TrackCreated",
    "LearnerEnrolled",
    "LearnerLeft",
    "TrackStarted",
    "AssignmentOpened",
    "DeadlineReminderSent",
    "DeadlineExtended",
    "ReviewsAllocated",
    "ReviewSubmitted",
    "AssignmentUnlocked",
];

#[async_trait]
impl Contribution for TrackNotices {
    fn category(&self) -> &'static str {
        "track"
    }

    fn event_types(&self) -> &'static [&'static str] {
        TYPES
    }

    async fn setup(&self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        sqlx::raw_sql(
            "create table tracks (
                 id                uuid primary key,
                 title             text not null,
                 -- assignment titles, in order
                 assignments       jsonb not null,
                 started           boolean not null default false
             );
             create table track_participants (
                 track_id uuid not null,
                 user_id  uuid not null,
                 primary key (track_id, user_id)
             );",
        )
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Notices for TrackNotices {
    async fn notices(
        &self,
        conn: &mut PgConnection,
        recorded: &RecordedEvent,
    ) -> Result<Vec<Notice>, ProjectionError> {
        let track = stream_uuid(&recorded.stream_id, "track-")?;
        let event = recorded.decode::<TrackEvent>()?;
        let at = event.at();
        let told = match event {
            TrackEvent::TrackCreated { spec, .. } => track_created(conn, track, &spec).await?,
            TrackEvent::LearnerEnrolled { participant, .. } => {
                participant_enrolled(conn, track, participant).await?
            }
            TrackEvent::LearnerLeft { participant, .. } => {
                participant_left(conn, track, participant).await?
            }
            TrackEvent::TrackStarted { .. } => track_started(conn, track).await?,
            TrackEvent::AssignmentOpened {
                assignment,
                deadline,
                ..
            } => {
                let facts = track_facts(conn, track).await?;
                // a later assignment's opening notifies nobody (the unlock does)
                if assignment == 0 {
                    vec![facts.started(participants(conn, track).await?, deadline)]
                } else {
                    vec![]
                }
            }
            TrackEvent::DeadlineReminderSent {
                assignment,
                participant,
                deadline,
                ..
            } => {
                let facts = track_facts(conn, track).await?;
                vec![facts.deadline_reminder(assignment, participant, deadline)]
            }
            TrackEvent::DeadlineExtended {
                assignment,
                deadline,
                ..
            } => {
                let facts = track_facts(conn, track).await?;
                let participants = participants(conn, track).await?;
                vec![facts.deadline_extended(participants, assignment, deadline)]
            }
            TrackEvent::ReviewsAllocated {
                assignment,
                allocation,
                ..
            } => track_facts(conn, track)
                .await?
                .reviews_allocated(assignment, &allocation),
            TrackEvent::ReviewSubmitted {
                assignment, author, ..
            } => {
                let facts = track_facts(conn, track).await?;
                vec![facts.review_received(assignment, author)]
            }
            TrackEvent::AssignmentUnlocked {
                assignment,
                participant,
                ..
            } => vec![
                track_facts(conn, track)
                    .await?
                    .unlocked(assignment, participant),
            ],
            // not in TYPES: nobody is notified of them
            TrackEvent::CriteriaRevised { .. }
            | TrackEvent::SolutionSubmitted { .. }
            | TrackEvent::AssignmentClosed { .. }
            | TrackEvent::TrackCompleted { .. } => vec![],
        };
        Ok(told.into_iter().map(|t| t.at(at)).collect())
    }
}

/// A notice about an assignment of a track, before its time is known.
struct Told {
    users: Vec<Uuid>,
    kind: NotificationKind,
    assignment: u32,
    title: String,
    body: String,
}

impl Told {
    fn at(self, at: Timestamp) -> Notice {
        Notice {
            users: self.users,
            kind: self.kind,
            item: Some(self.assignment),
            title: self.title,
            body: self.body,
            at,
        }
    }
}

/// What the notifications of a track event need to know about the track.
struct TrackFacts {
    title: String,
    assignments: Vec<String>,
    started: bool,
}

impl TrackFacts {
    fn assignment(&self, index: u32) -> String {
        let title = self
            .assignments
            .get(index as usize)
            .map_or("", String::as_str);
        format!("assignment {} «{title}»", index + 1)
    }
}

/// Inserts the `tracks` row with the assignments' titles (what notifications are worded with).
async fn track_created(
    conn: &mut PgConnection,
    track: Uuid,
    spec: &TrackSpec,
) -> Result<Vec<Told>, ProjectionError> {
    let titles: Vec<&str> = spec.assignments.iter().map(|a| a.title.as_str()).collect();
    sqlx::query("insert into tracks (id, title, assignments) values ($1, $2, $3)")
        .bind(track)
        .bind(&spec.title)
        .bind(Json(titles))
        .execute(&mut *conn)
        .await?;
    Ok(vec![])
}

/// Deletes the `track_participants` row.
async fn participant_left(
    conn: &mut PgConnection,
    track: Uuid,
    participant: Uuid,
) -> Result<Vec<Told>, ProjectionError> {
    sqlx::query("delete from track_participants where track_id = $1 and user_id = $2")
        .bind(track)
        .bind(participant)
        .execute(&mut *conn)
        .await?;
    Ok(vec![])
}

/// The track's title, assignment titles and whether it started, as stored for wording notifications.
async fn track_facts(conn: &mut PgConnection, track: Uuid) -> Result<TrackFacts, ProjectionError> {
    let (title, assignments, started): (String, Json<Vec<String>>, bool) =
        sqlx::query_as("select title, assignments, started from tracks where id = $1")
            .bind(track)
            .fetch_one(&mut *conn)
            .await?;
    Ok(TrackFacts {
        title,
        assignments: assignments.0,
        started,
    })
}

async fn participants(conn: &mut PgConnection, track: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "select user_id from track_participants where track_id = $1 order by user_id",
    )
    .bind(track)
    .fetch_all(&mut *conn)
    .await
}

/// Inserts the `track_participants` row; tells a participant joining a running track that the first assignment is
/// open.
async fn participant_enrolled(
    conn: &mut PgConnection,
    track: Uuid,
    participant: Uuid,
) -> Result<Vec<Told>, ProjectionError> {
    sqlx::query("insert into track_participants (track_id, user_id) values ($1, $2)")
        .bind(track)
        .bind(participant)
        .execute(&mut *conn)
        .await?;
    let facts = track_facts(conn, track).await?;
    // an enrollment before the start notifies nobody (the start does)
    if !facts.started {
        return Ok(vec![]);
    }
    Ok(vec![Told {
        users: vec![participant],
        kind: NotificationKind::TrackJoined,
        assignment: 0,
        title: format!("You joined «{}»", facts.title),
        body: format!(
            "The track is running: {} is open to you.",
            facts.assignment(0)
        ),
    }])
}

/// Marks the track `started`; notifies nobody (the first assignment's opening does).
async fn track_started(conn: &mut PgConnection, track: Uuid) -> Result<Vec<Told>, ProjectionError> {
    // read as for every notifying event, so a track never created fails here too
    track_facts(conn, track).await?;
    sqlx::query("update tracks set started = true where id = $1")
        .bind(track)
        .execute(&mut *conn)
        .await?;
    Ok(vec![])
}

/// The notices of the events that change nothing here, worded with the track's facts.
impl TrackFacts {
    /// The first assignment's opening tells every participant the track started.
    fn started(&self, participants: Vec<Uuid>, deadline: Timestamp) -> Told {
        Told {
            users: participants,
            kind: NotificationKind::TrackStarted,
            assignment: 0,
            title: format!("«{}» has started", self.title),
            body: format!(
                "{} is open, due {}.",
                capital(&self.assignment(0)),
                when(deadline)
            ),
        }
    }

    /// Reminds the participant that the assignment is due soon.
    fn deadline_reminder(&self, assignment: u32, participant: Uuid, deadline: Timestamp) -> Told {
        Told {
            users: vec![participant],
            kind: NotificationKind::DeadlineReminder,
            assignment,
            title: format!("{} is due soon", capital(&self.assignment(assignment))),
            body: format!(
                "Submit your solution to {} of «{}» before {}.",
                self.assignment(assignment),
                self.title,
                when(deadline)
            ),
        }
    }

    /// Tells every participant the assignment's new deadline.
    fn deadline_extended(
        &self,
        participants: Vec<Uuid>,
        assignment: u32,
        deadline: Timestamp,
    ) -> Told {
        Told {
            users: participants,
            kind: NotificationKind::DeadlineExtended,
            assignment,
            title: format!("More time for {}", self.assignment(assignment)),
            body: format!(
                "The deadline of {} of «{}» is now {}.",
                self.assignment(assignment),
                self.title,
                when(deadline)
            ),
        }
    }

    /// Tells each reviewer how many solutions they have to review.
    fn reviews_allocated(&self, assignment: u32, allocation: &Allocation) -> Vec<Told> {
        let mut reviewers: Vec<Uuid> = allocation.pairs.iter().map(|p| p.reviewer).collect();
        reviewers.sort_unstable();
        reviewers.dedup();
        let told = |reviewer: Uuid| {
            let count = allocation.owed_by(reviewer);
            Told {
                users: vec![reviewer],
                kind: NotificationKind::ReviewsAssigned,
                assignment,
                title: format!(
                    "{count} solution{} to review",
                    if count == 1 { "" } else { "s" }
                ),
                body: format!(
                    "Review your peers' solutions to {} of «{}»; the next assignment opens to you when \
                     you are done.",
                    self.assignment(assignment),
                    self.title
                ),
            }
        };
        reviewers.into_iter().map(told).collect()
    }

    /// Tells the author a review of their solution came in.
    fn review_received(&self, assignment: u32, author: Uuid) -> Told {
        Told {
            users: vec![author],
            kind: NotificationKind::ReviewReceived,
            assignment,
            title: "You received a review".to_owned(),
            body: format!(
                "A peer reviewed your solution to {} of «{}».",
                self.assignment(assignment),
                self.title
            ),
        }
    }

    /// Tells the participant the assignment is open to them.
    fn unlocked(&self, assignment: u32, participant: Uuid) -> Told {
        Told {
            users: vec![participant],
            kind: NotificationKind::AssignmentUnlocked,
            assignment,
            title: format!("{} is open to you", capital(&self.assignment(assignment))),
            body: format!(
                "You can now submit {} of «{}».",
                self.assignment(assignment),
                self.title
            ),
        }
    }
}

fn capital(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
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
