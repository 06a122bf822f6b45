//! `notifications`: what each user is told, derived from the events that concern them, and whether they read
//! it. A notification's id comes from the event and the user (stable across rebuilds), so marks of "read" in
//! users' inboxes still apply after a replay.
//!
//! Kinds ([`NotificationKind`], stored by its `as_str`): `track_started`, `track_joined`, `deadline_reminder`,
//! `deadline_extended`, `reviews_assigned`, `review_received`, `assignment_unlocked` (cohort tracks);
//! `slot_booked`, `booking_cancelled`, `interview_reminder`, `feedback_received`, `point_earned`,
//! `feedback_disputed`, `no_show_reported`, `no_show_contested`, `no_show_resolved` (mock interviews).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::Timestamp;
use domain::inbox::InboxEvent;
use domain::interviews::{SlotEvent, SlotSpec};
use domain::notices::NotificationKind;
use domain::tracks::{Allocation, TrackEvent, TrackSpec};
use eventlog::RecordedEvent;
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::{Projection, ProjectionError, stream_uuid, timestamp};

pub const NAME: &str = "notifications";

/// Namespace of notification ids.
const NOTIFICATION_NAMESPACE: Uuid = Uuid::from_u128(0x1e6d_52a9_c3f0_4b7e_9a18_6d2c_f05b_7e93);

/// The id of the notification `event` gives `user`.
pub fn notification_id(event: Uuid, user: Uuid) -> Uuid {
    let mut name = [0u8; 32];
    name[..16].copy_from_slice(event.as_bytes());
    name[16..].copy_from_slice(user.as_bytes());
    Uuid::new_v5(&NOTIFICATION_NAMESPACE, &name)
}

#[derive(Debug, Default)]
pub struct Notifications;

/// The track events that notify someone, or that this read model needs to word notifications.
const TRACK_TYPES: &[&str] = &[
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

crate::read_model!(Notifications {
    name: NAME,
    version: 2,
    events: [TRACK_TYPES, InboxEvent::TYPES, SlotEvent::TYPES]
});

#[async_trait]
impl Projection for Notifications {
    async fn setup(&self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        sqlx::raw_sql(
            "-- what notifications about a track need to say
             create table tracks (
                 id                uuid primary key,
                 title             text not null,
                 -- assignment titles, in order
                 assignments       jsonb not null,
                 started           boolean not null default false
             );
             create table members (
                 track_id uuid not null,
                 user_id  uuid not null,
                 primary key (track_id, user_id)
             );
             -- what notifications about an interview need to say
             create table slots (
                 id          uuid primary key,
                 topic       text not null,
                 starts_at   bigint not null,
                 owner       uuid not null,
                 booker      uuid,
                 interviewer uuid
             );
             create table notifications (
                 id         uuid primary key,
                 user_id    uuid not null,
                 -- domain::notices::NotificationKind::as_str
                 kind       text not null,
                 track_id   uuid,
                 slot_id    uuid,
                 -- 0-based assignment index, when about one
                 assignment integer,
                 title      text not null,
                 body       text not null,
                 created_at timestamptz not null,
                 -- log position of the event it comes from; with id, the order of a user's list and its cursor
                 position   bigint not null,
                 read_at    timestamptz
             );
             create index notifications_user on notifications (user_id, position, id);
             create index notifications_unread on notifications (user_id) where read_at is null;",
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
        crate::by_category!(NAME, conn, events, {
            "track" => apply_track,
            "slot" => apply_slot,
            "inbox" => apply_inbox,
        })
    }
}

/// Marks of "read" from a user's inbox.
async fn apply_inbox(
    conn: &mut PgConnection,
    recorded: &RecordedEvent,
) -> Result<(), ProjectionError> {
    let user = stream_uuid(&recorded.stream_id, "inbox-")?;
    let InboxEvent::NotificationsRead { ids, at } = recorded.decode()?;
    sqlx::query(
        "update notifications set read_at = $3
          where user_id = $1 and id = any($2) and read_at is null",
    )
    .bind(user)
    .bind(ids)
    .bind(DateTime::<Utc>::from(at))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Who is told what, from one track event.
struct Notice {
    users: Vec<Uuid>,
    kind: NotificationKind,
    assignment: Option<u32>,
    title: String,
    body: String,
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

fn when(at: Timestamp) -> String {
    DateTime::<Utc>::from(at)
        .format("%Y-%m-%d %H:%M UTC")
        .to_string()
}

async fn apply_track(
    conn: &mut PgConnection,
    recorded: &RecordedEvent,
) -> Result<(), ProjectionError> {
    let track = stream_uuid(&recorded.stream_id, "track-")?;
    let event = recorded.decode::<TrackEvent>()?;
    let at = DateTime::<Utc>::from(event.at());
    let notices = match event {
        TrackEvent::TrackCreated { spec, .. } => return track_created(conn, track, &spec).await,
        TrackEvent::LearnerEnrolled { participant, .. } => {
            participant_enrolled(conn, track, participant).await?
        }
        TrackEvent::LearnerLeft { participant, .. } => {
            return participant_left(conn, track, participant).await;
        }
        // the events below notify someone, with facts about the track
        TrackEvent::TrackStarted { .. } => track_started(conn, track).await?,
        TrackEvent::AssignmentOpened {
            assignment,
            deadline,
            ..
        } => assignment_opened(conn, track, assignment, deadline).await?,
        TrackEvent::DeadlineReminderSent {
            assignment,
            participant,
            deadline,
            ..
        } => deadline_reminder_sent(conn, track, assignment, participant, deadline).await?,
        TrackEvent::DeadlineExtended {
            assignment,
            deadline,
            ..
        } => deadline_extended(conn, track, assignment, deadline).await?,
        TrackEvent::ReviewsAllocated {
            assignment,
            allocation,
            ..
        } => reviews_allocated(conn, track, assignment, &allocation).await?,
        TrackEvent::ReviewSubmitted {
            assignment, author, ..
        } => review_submitted(conn, track, assignment, author).await?,
        TrackEvent::AssignmentUnlocked {
            assignment,
            participant,
            ..
        } => assignment_unlocked(conn, track, assignment, participant).await?,
        // not read by this model (not in TRACK_TYPES): nobody is notified of them
        TrackEvent::CriteriaRevised { .. }
        | TrackEvent::SolutionSubmitted { .. }
        | TrackEvent::AssignmentClosed { .. }
        | TrackEvent::TrackCompleted { .. } => return Ok(()),
    };
    insert_track_notices(conn, track, recorded, at, notices).await
}

/// Inserts the `tracks` row with the assignments' titles (what notifications are worded with).
async fn track_created(
    conn: &mut PgConnection,
    track: Uuid,
    spec: &TrackSpec,
) -> Result<(), ProjectionError> {
    let titles: Vec<&str> = spec.assignments.iter().map(|a| a.title.as_str()).collect();
    sqlx::query("insert into tracks (id, title, assignments) values ($1, $2, $3)")
        .bind(track)
        .bind(&spec.title)
        .bind(Json(titles))
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

/// Inserts the `members` row; tells a participant joining a running track that the first assignment is open.
async fn participant_enrolled(
    conn: &mut PgConnection,
    track: Uuid,
    participant: Uuid,
) -> Result<Vec<Notice>, ProjectionError> {
    sqlx::query("insert into members (track_id, user_id) values ($1, $2)")
        .bind(track)
        .bind(participant)
        .execute(&mut *conn)
        .await?;
    let facts = track_facts(conn, track).await?;
    // an enrollment before the start notifies nobody (the start does)
    if !facts.started {
        return Ok(vec![]);
    }
    Ok(vec![Notice {
        users: vec![participant],
        kind: NotificationKind::TrackJoined,
        assignment: Some(0),
        title: format!("You joined «{}»", facts.title),
        body: format!(
            "The track is running: {} is open to you.",
            facts.assignment(0)
        ),
    }])
}

/// Marks the track `started`; notifies nobody (the first assignment's opening does).
async fn track_started(
    conn: &mut PgConnection,
    track: Uuid,
) -> Result<Vec<Notice>, ProjectionError> {
    // read as for every notifying event, so a track never created fails here too
    track_facts(conn, track).await?;
    sqlx::query("update tracks set started = true where id = $1")
        .bind(track)
        .execute(&mut *conn)
        .await?;
    Ok(vec![])
}

/// Changes no rows; the first assignment's opening tells every member the track started.
async fn assignment_opened(
    conn: &mut PgConnection,
    track: Uuid,
    assignment: u32,
    deadline: Timestamp,
) -> Result<Vec<Notice>, ProjectionError> {
    let facts = track_facts(conn, track).await?;
    // a later assignment's opening notifies nobody (the unlock does)
    if assignment != 0 {
        return Ok(vec![]);
    }
    Ok(vec![Notice {
        users: members(conn, track).await?,
        kind: NotificationKind::TrackStarted,
        assignment: Some(0),
        title: format!("«{}» has started", facts.title),
        body: format!(
            "{} is open, due {}.",
            capital(&facts.assignment(0)),
            when(deadline)
        ),
    }])
}

/// Changes no rows; reminds the participant that the assignment is due soon.
async fn deadline_reminder_sent(
    conn: &mut PgConnection,
    track: Uuid,
    assignment: u32,
    participant: Uuid,
    deadline: Timestamp,
) -> Result<Vec<Notice>, ProjectionError> {
    let facts = track_facts(conn, track).await?;
    Ok(vec![Notice {
        users: vec![participant],
        kind: NotificationKind::DeadlineReminder,
        assignment: Some(assignment),
        title: format!("{} is due soon", capital(&facts.assignment(assignment))),
        body: format!(
            "Submit your solution to {} of «{}» before {}.",
            facts.assignment(assignment),
            facts.title,
            when(deadline)
        ),
    }])
}

/// Changes no rows; tells every member the assignment's new deadline.
async fn deadline_extended(
    conn: &mut PgConnection,
    track: Uuid,
    assignment: u32,
    deadline: Timestamp,
) -> Result<Vec<Notice>, ProjectionError> {
    let facts = track_facts(conn, track).await?;
    Ok(vec![Notice {
        users: members(conn, track).await?,
        kind: NotificationKind::DeadlineExtended,
        assignment: Some(assignment),
        title: format!("More time for {}", facts.assignment(assignment)),
        body: format!(
            "The deadline of {} of «{}» is now {}.",
            facts.assignment(assignment),
            facts.title,
            when(deadline)
        ),
    }])
}

/// Changes no rows; tells each reviewer how many solutions they have to review.
async fn reviews_allocated(
    conn: &mut PgConnection,
    track: Uuid,
    assignment: u32,
    allocation: &Allocation,
) -> Result<Vec<Notice>, ProjectionError> {
    let facts = track_facts(conn, track).await?;
    let mut reviewers: Vec<Uuid> = allocation.pairs.iter().map(|p| p.reviewer).collect();
    reviewers.sort_unstable();
    reviewers.dedup();
    Ok(reviewers
        .into_iter()
        .map(|reviewer| {
            let count = allocation.owed_by(reviewer);
            Notice {
                users: vec![reviewer],
                kind: NotificationKind::ReviewsAssigned,
                assignment: Some(assignment),
                title: format!("{count} solution{} to review", if count == 1 { "" } else { "s" }),
                body: format!(
                    "Review your peers' solutions to {} of «{}»; the next assignment opens to you when \
                     you are done.",
                    facts.assignment(assignment),
                    facts.title
                ),
            }
        })
        .collect())
}

/// Changes no rows; tells the author a review of their solution came in.
async fn review_submitted(
    conn: &mut PgConnection,
    track: Uuid,
    assignment: u32,
    author: Uuid,
) -> Result<Vec<Notice>, ProjectionError> {
    let facts = track_facts(conn, track).await?;
    Ok(vec![Notice {
        users: vec![author],
        kind: NotificationKind::ReviewReceived,
        assignment: Some(assignment),
        title: "You received a review".to_owned(),
        body: format!(
            "A peer reviewed your solution to {} of «{}».",
            facts.assignment(assignment),
            facts.title
        ),
    }])
}

/// Changes no rows; tells the participant the assignment is open to them.
async fn assignment_unlocked(
    conn: &mut PgConnection,
    track: Uuid,
    assignment: u32,
    participant: Uuid,
) -> Result<Vec<Notice>, ProjectionError> {
    let facts = track_facts(conn, track).await?;
    Ok(vec![Notice {
        users: vec![participant],
        kind: NotificationKind::AssignmentUnlocked,
        assignment: Some(assignment),
        title: format!("{} is open to you", capital(&facts.assignment(assignment))),
        body: format!(
            "You can now submit {} of «{}».",
            facts.assignment(assignment),
            facts.title
        ),
    }])
}

/// Inserts one `notifications` row per user of each notice of a track event.
async fn insert_track_notices(
    conn: &mut PgConnection,
    track: Uuid,
    recorded: &RecordedEvent,
    at: DateTime<Utc>,
    notices: Vec<Notice>,
) -> Result<(), ProjectionError> {
    for notice in notices {
        for user in notice.users {
            sqlx::query(
                "insert into notifications (id, user_id, kind, track_id, assignment, title, body, created_at, position)
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(notification_id(recorded.event_id, user))
            .bind(user)
            .bind(notice.kind.as_str())
            .bind(track)
            .bind(notice.assignment.map(|a| a as i32))
            .bind(&notice.title)
            .bind(&notice.body)
            .bind(at)
            .bind(recorded.position)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

/// One notification: to whom, of which kind, with what title and body.
type SlotNotice = (Vec<Uuid>, NotificationKind, String, String);

/// What the notifications of a slot event need to know about the slot.
struct SlotFacts {
    /// «topic» interview on <start>
    what: String,
    owner: Uuid,
    /// The owner and the booker, if booked.
    parties: Vec<Uuid>,
    interviewer: Option<Uuid>,
    interviewee: Option<Uuid>,
}

async fn apply_slot(
    conn: &mut PgConnection,
    recorded: &RecordedEvent,
) -> Result<(), ProjectionError> {
    let slot = stream_uuid(&recorded.stream_id, "slot-")?;
    let event = recorded.decode::<SlotEvent>()?;
    if let SlotEvent::SlotPublished { owner, spec, .. } = &event {
        return slot_published(conn, slot, *owner, spec).await;
    }
    let facts = slot_facts(conn, slot).await?;
    let at = event.at();
    let notices: Vec<SlotNotice> = match event {
        SlotEvent::SlotBooked {
            booker,
            interviewer,
            ..
        } => slot_booked(conn, slot, &facts, booker, interviewer).await?,
        SlotEvent::BookingCancelled { by, .. } => booking_cancelled(conn, slot, &facts, by).await?,
        SlotEvent::InterviewReminderSent { hours_before, .. } => {
            interview_reminder_sent(&facts, hours_before)
        }
        SlotEvent::FeedbackGiven { score, .. } => feedback_given(&facts, score),
        SlotEvent::FeedbackAccepted { auto, .. } => feedback_accepted(&facts, auto),
        SlotEvent::FeedbackDisputed { .. } => feedback_disputed(&facts),
        SlotEvent::NoShowReported { absent, .. } => no_show_reported(&facts, absent),
        SlotEvent::NoShowContested { .. } => no_show_contested(&facts),
        SlotEvent::NoShowResolved { absent, .. } => no_show_resolved(&facts, absent),
        // what the sides already know (they acted, or the worker did on schedule) notifies nobody
        SlotEvent::SlotPublished { .. }
        | SlotEvent::SlotWithdrawn { .. }
        | SlotEvent::InterviewEnded { .. }
        | SlotEvent::NoShowConfirmed { .. }
        | SlotEvent::FeedbackExpired { .. } => vec![],
    };
    insert_slot_notices(conn, slot, recorded, at, notices).await
}

/// Inserts the `slots` row (topic, start and owner, what notifications are worded with).
async fn slot_published(
    conn: &mut PgConnection,
    slot: Uuid,
    owner: Uuid,
    spec: &SlotSpec,
) -> Result<(), ProjectionError> {
    sqlx::query("insert into slots (id, topic, starts_at, owner) values ($1, $2, $3, $4)")
        .bind(slot)
        .bind(&spec.topic)
        .bind(spec.start.unix_seconds())
        .bind(owner)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The slot as stored, with the wording and the parties its notifications use.
async fn slot_facts(conn: &mut PgConnection, slot: Uuid) -> Result<SlotFacts, ProjectionError> {
    let (topic, start, owner, booker, interviewer): (
        String,
        i64,
        Uuid,
        Option<Uuid>,
        Option<Uuid>,
    ) = sqlx::query_as(
        "select topic, starts_at, owner, booker, interviewer from slots where id = $1",
    )
    .bind(slot)
    .fetch_one(&mut *conn)
    .await?;
    let what = format!("«{topic}» interview on {}", when(timestamp(start)?));
    let parties: Vec<Uuid> = std::iter::once(owner).chain(booker).collect();
    let interviewee = parties.iter().copied().find(|p| Some(*p) != interviewer);
    Ok(SlotFacts {
        what,
        owner,
        parties,
        interviewer,
        interviewee,
    })
}

/// Records the booker and the interviewer on the `slots` row; tells the owner their slot was booked.
async fn slot_booked(
    conn: &mut PgConnection,
    slot: Uuid,
    facts: &SlotFacts,
    booker: Uuid,
    interviewer: Uuid,
) -> Result<Vec<SlotNotice>, ProjectionError> {
    sqlx::query("update slots set booker = $2, interviewer = $3 where id = $1")
        .bind(slot)
        .bind(booker)
        .bind(interviewer)
        .execute(&mut *conn)
        .await?;
    Ok(vec![(
        vec![facts.owner],
        NotificationKind::SlotBooked,
        "Your slot was booked".to_owned(),
        format!("Someone booked your {}.", facts.what),
    )])
}

/// Clears the booker and the interviewer on the `slots` row; tells the other side of the cancellation.
async fn booking_cancelled(
    conn: &mut PgConnection,
    slot: Uuid,
    facts: &SlotFacts,
    by: Uuid,
) -> Result<Vec<SlotNotice>, ProjectionError> {
    sqlx::query("update slots set booker = null, interviewer = null where id = $1")
        .bind(slot)
        .execute(&mut *conn)
        .await?;
    let others = facts.parties.iter().copied().filter(|p| *p != by).collect();
    Ok(vec![(
        others,
        NotificationKind::BookingCancelled,
        "An interview was cancelled".to_owned(),
        format!("The {} was cancelled by the other side.", facts.what),
    )])
}

/// Reminds both sides that the interview starts soon.
fn interview_reminder_sent(facts: &SlotFacts, hours_before: u32) -> Vec<SlotNotice> {
    vec![(
        facts.parties.clone(),
        NotificationKind::InterviewReminder,
        format!("Interview in {hours_before} h"),
        format!(
            "Your {} starts in {hours_before} hour{}.",
            facts.what,
            if hours_before == 1 { "" } else { "s" }
        ),
    )]
}

/// Tells the interviewee their feedback and score arrived.
fn feedback_given(facts: &SlotFacts, score: u8) -> Vec<SlotNotice> {
    vec![(
        facts.interviewee.into_iter().collect(),
        NotificationKind::FeedbackReceived,
        "Feedback on your interview".to_owned(),
        format!(
            "Your interviewer scored the {} {score}/5. Accept it or dispute it.",
            facts.what
        ),
    )]
}

/// Tells the interviewer their feedback was accepted and earned a point.
fn feedback_accepted(facts: &SlotFacts, auto: bool) -> Vec<SlotNotice> {
    vec![(
        facts.interviewer.into_iter().collect(),
        NotificationKind::PointEarned,
        "You earned a point".to_owned(),
        format!(
            "Your feedback on the {} was {}; you earned 1 point.",
            facts.what,
            if auto {
                "accepted automatically"
            } else {
                "accepted"
            }
        ),
    )]
}

/// Tells the interviewer their feedback was disputed (and still earned a point).
fn feedback_disputed(facts: &SlotFacts) -> Vec<SlotNotice> {
    vec![(
        facts.interviewer.into_iter().collect(),
        NotificationKind::FeedbackDisputed,
        "Your feedback was disputed".to_owned(),
        format!(
            "The interviewee disputed your feedback on the {}; admins can see why. You earned 1 point.",
            facts.what
        ),
    )]
}

/// Tells the side reported absent that they may contest it.
fn no_show_reported(facts: &SlotFacts, absent: Uuid) -> Vec<SlotNotice> {
    vec![(
        vec![absent],
        NotificationKind::NoShowReported,
        "Reported as absent".to_owned(),
        format!(
            "The other side reported that you did not show up to the {}. If you were there, contest it \
             within 24 hours; otherwise it settles as reported.",
            facts.what
        ),
    )]
}

/// Tells both sides a no-show report is contested.
fn no_show_contested(facts: &SlotFacts) -> Vec<SlotNotice> {
    vec![(
        facts.parties.clone(),
        NotificationKind::NoShowContested,
        "A no-show report is contested".to_owned(),
        format!(
            "The report of a no-show at the {} is contested; an admin will decide.",
            facts.what
        ),
    )]
}

/// Tells both sides how an admin decided a contested no-show.
fn no_show_resolved(facts: &SlotFacts, absent: Option<Uuid>) -> Vec<SlotNotice> {
    let what = &facts.what;
    vec![(
        facts.parties.clone(),
        NotificationKind::NoShowResolved,
        "A contested no-show was decided".to_owned(),
        match absent {
            Some(_) => {
                format!("An admin decided who missed the {what}; points were settled accordingly.")
            }
            None => format!(
                "An admin decided that the {what} took place; points were settled as for an interview."
            ),
        },
    )]
}

/// Inserts one `notifications` row per user of each notice of a slot event.
async fn insert_slot_notices(
    conn: &mut PgConnection,
    slot: Uuid,
    recorded: &RecordedEvent,
    at: Timestamp,
    notices: Vec<SlotNotice>,
) -> Result<(), ProjectionError> {
    for (users, kind, title, body) in notices {
        for user in users {
            sqlx::query(
                "insert into notifications (id, user_id, kind, slot_id, title, body, created_at, position)
                 values ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(notification_id(recorded.event_id, user))
            .bind(user)
            .bind(kind.as_str())
            .bind(slot)
            .bind(&title)
            .bind(&body)
            .bind(DateTime::<Utc>::from(at))
            .bind(recorded.position)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

async fn members(conn: &mut PgConnection, track: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("select user_id from members where track_id = $1 order by user_id")
        .bind(track)
        .fetch_all(&mut *conn)
        .await
}

fn capital(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------------------------
// Queries

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotificationRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: NotificationKind,
    pub track_id: Option<Uuid>,
    pub slot_id: Option<Uuid>,
    pub assignment: Option<i32>,
    pub title: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub position: i64,
    pub read_at: Option<DateTime<Utc>>,
}

impl FromRow<'_, PgRow> for NotificationRow {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            kind: crate::named(row, "kind", NotificationKind::parse)?,
            track_id: row.try_get("track_id")?,
            slot_id: row.try_get("slot_id")?,
            assignment: row.try_get("assignment")?,
            title: row.try_get("title")?,
            body: row.try_get("body")?,
            created_at: row.try_get("created_at")?,
            position: row.try_get("position")?,
            read_at: row.try_get("read_at")?,
        })
    }
}

const COLUMNS: &str = "n.id, n.user_id, n.kind, n.track_id, n.slot_id, n.assignment, n.title, n.body, n.created_at, n.position, n.read_at";

/// `user`'s notifications, newest first, after the cursor `(position, id)` of the last one seen.
#[tracing::instrument(skip_all)]
pub async fn list(
    pool: &PgPool,
    user: Uuid,
    unread_only: bool,
    before: Option<(i64, Uuid)>,
    limit: i64,
) -> Result<Vec<NotificationRow>, sqlx::Error> {
    let (position, id) = before.unzip();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from notifications.notifications n
          where n.user_id = $1 and (not $2 or n.read_at is null)
            and ($3::bigint is null or (n.position, n.id) < ($3, $4::uuid))
          order by n.position desc, n.id desc
          limit $5"
    )))
    .bind(user)
    .bind(unread_only)
    .bind(position)
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// `user`'s notifications from the events at `positions`, in that order (for the live feed, which follows the
/// log batch by batch).
#[tracing::instrument(skip_all)]
pub async fn at_positions(
    pool: &PgPool,
    user: Uuid,
    positions: &[i64],
) -> Result<Vec<NotificationRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from notifications.notifications n
           join unnest($2::bigint[]) with ordinality as batch(position, rank) on batch.position = n.position
          where n.user_id = $1 order by batch.rank, n.id"
    )))
    .bind(user)
    .bind(positions)
    .fetch_all(pool)
    .await
}

#[tracing::instrument(skip_all)]
pub async fn unread_count(pool: &PgPool, user: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "select count(*) from notifications.notifications where user_id = $1 and read_at is null",
    )
    .bind(user)
    .fetch_one(pool)
    .await
}

/// Which of `ids` are `user`'s notifications.
#[tracing::instrument(skip_all)]
pub async fn owned(pool: &PgPool, user: Uuid, ids: &[Uuid]) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "select id from notifications.notifications where user_id = $1 and id = any($2) order by id",
    )
    .bind(user)
    .bind(ids)
    .fetch_all(pool)
    .await
}

/// Up to `limit` of `user`'s unread notifications' ids.
#[tracing::instrument(skip_all)]
pub async fn unread_ids(pool: &PgPool, user: Uuid, limit: i64) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "select id from notifications.notifications where user_id = $1 and read_at is null
          order by position, id limit $2",
    )
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
