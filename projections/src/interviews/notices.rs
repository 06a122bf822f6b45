//! The mock interviews' notices in the `notifications` host: a slot booked, a booking cancelled, reminders
//! before the start, feedback and what came of it, no-show reports and their outcome. Beside the host's rows it
//! keeps each slot's topic, start and parties, to word and address them.

use async_trait::async_trait;
use domain::Timestamp;
use domain::interviews::{INTERVIEWER_REWARD, SlotEvent, SlotSpec};
use domain::notices::NotificationKind;
use eventlog::RecordedEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::notifications::{Notice, Notices, when};
use crate::{Contribution, ProjectionError, stream_uuid, timestamp};

pub struct InterviewNotices;

#[async_trait]
impl Contribution for InterviewNotices {
    fn category(&self) -> &'static str {
        "slot"
    }

    fn event_types(&self) -> &'static [&'static str] {
        SlotEvent::TYPES
    }

    async fn setup(&self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        sqlx::raw_sql(
            "create table slots (
                 id          uuid primary key,
                 topic       text not null,
                 starts_at   bigint not null,
                 owner       uuid not null,
                 booker      uuid,
                 interviewer uuid
             );",
        )
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Notices for InterviewNotices {
    async fn notices(
        &self,
        conn: &mut PgConnection,
        recorded: &RecordedEvent,
    ) -> Result<Vec<Notice>, ProjectionError> {
        let slot = stream_uuid(&recorded.stream_id, "slot-")?;
        let event = recorded.decode::<SlotEvent>()?;
        if let SlotEvent::SlotPublished { owner, spec, .. } = &event {
            slot_published(conn, slot, *owner, spec).await?;
            return Ok(vec![]);
        }
        let facts = slot_facts(conn, slot).await?;
        let at = event.at();
        let told: Vec<Told> = match event {
            SlotEvent::SlotBooked {
                booker,
                interviewer,
                ..
            } => slot_booked(conn, slot, &facts, booker, interviewer).await?,
            SlotEvent::BookingCancelled { by, .. } => {
                booking_cancelled(conn, slot, &facts, by).await?
            }
            SlotEvent::InterviewReminderSent { hours_before, .. } => {
                interview_reminder_sent(&facts, hours_before)
            }
            SlotEvent::FeedbackGiven { score, .. } => feedback_given(&facts, score),
            SlotEvent::FeedbackAccepted { auto, .. } => feedback_accepted(&facts, auto),
            SlotEvent::FeedbackDisputed { .. } => feedback_disputed(&facts),
            SlotEvent::NoShowReported {
                absent, contest_by, ..
            } => no_show_reported(&facts, absent, contest_by),
            SlotEvent::NoShowContested { .. } => no_show_contested(&facts),
            SlotEvent::NoShowResolved { absent, .. } => no_show_resolved(&facts, absent),
            // what the sides already know (they acted, or the worker did on schedule) notifies nobody
            SlotEvent::SlotPublished { .. }
            | SlotEvent::SlotWithdrawn { .. }
            | SlotEvent::InterviewEnded { .. }
            | SlotEvent::NoShowConfirmed { .. }
            | SlotEvent::FeedbackExpired { .. } => vec![],
        };
        Ok(told
            .into_iter()
            .map(|(users, kind, title, body)| Notice {
                users,
                kind,
                item: None,
                title,
                body,
                at,
            })
            .collect())
    }
}

/// One notice: to whom, of which kind, with what title and body.
type Told = (Vec<Uuid>, NotificationKind, String, String);

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
) -> Result<Vec<Told>, ProjectionError> {
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
) -> Result<Vec<Told>, ProjectionError> {
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
fn interview_reminder_sent(facts: &SlotFacts, hours_before: u32) -> Vec<Told> {
    vec![(
        facts.parties.clone(),
        NotificationKind::InterviewReminder,
        format!("Interview in {hours_before} h"),
        format!(
            "Your {} starts in {hours_before} hour{}.",
            facts.what,
            plural(i64::from(hours_before))
        ),
    )]
}

/// Tells the interviewee their feedback and score arrived.
fn feedback_given(facts: &SlotFacts, score: u8) -> Vec<Told> {
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

/// What the interviewer earns, in words.
fn reward() -> String {
    format!("{INTERVIEWER_REWARD} point{}", plural(INTERVIEWER_REWARD))
}

fn plural(count: i64) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// Tells the interviewer their feedback was accepted and earned the reward.
fn feedback_accepted(facts: &SlotFacts, auto: bool) -> Vec<Told> {
    let how = if auto {
        "accepted automatically"
    } else {
        "accepted"
    };
    vec![(
        facts.interviewer.into_iter().collect(),
        NotificationKind::PointEarned,
        format!("You earned {}", reward()),
        format!(
            "Your feedback on the {} was {how}; you earned {}.",
            facts.what,
            reward()
        ),
    )]
}

/// Tells the interviewer their feedback was disputed (and still earned the reward).
fn feedback_disputed(facts: &SlotFacts) -> Vec<Told> {
    vec![(
        facts.interviewer.into_iter().collect(),
        NotificationKind::FeedbackDisputed,
        "Your feedback was disputed".to_owned(),
        format!(
            "The interviewee disputed your feedback on the {}; admins can see why. You earned {}.",
            facts.what,
            reward()
        ),
    )]
}

/// Tells the side reported absent that they may contest it, and until when.
fn no_show_reported(facts: &SlotFacts, absent: Uuid, contest_by: Timestamp) -> Vec<Told> {
    vec![(
        vec![absent],
        NotificationKind::NoShowReported,
        "Reported as absent".to_owned(),
        format!(
            "The other side reported that you did not show up to the {}. If you were there, contest it \
             before {}; otherwise it settles as reported.",
            facts.what,
            when(contest_by)
        ),
    )]
}

/// Tells both sides a no-show report is contested.
fn no_show_contested(facts: &SlotFacts) -> Vec<Told> {
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
fn no_show_resolved(facts: &SlotFacts, absent: Option<Uuid>) -> Vec<Told> {
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
