//! The mock interviews' timers in the `deadlines` host: a booked interview's reminders a day and an hour before
//! the start, its end, then the feedback windows and the no-show window. Beside the host's `timers` it keeps
//! each published slot's times.

use async_trait::async_trait;
use domain::Timestamp;
use domain::interviews::{self, InterviewTimer, SlotEvent, SlotTimer};
use eventlog::RecordedEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::deadlines::{self, Timers};
use crate::{Contribution, ProjectionError, stream_uuid, timestamp};

pub struct InterviewTimers;

#[async_trait]
impl Contribution for InterviewTimers {
    fn category(&self) -> &'static str {
        "slot"
    }

    fn event_types(&self) -> &'static [&'static str] {
        SlotEvent::TYPES
    }

    async fn setup(&self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        sqlx::raw_sql(
            "create table slot_times (
                 slot_id   uuid primary key,
                 starts_at bigint not null,
                 ends_at   bigint not null,
                 -- bookings so far: the number of the current one, which its timers carry
                 bookings  integer not null default 0
             );",
        )
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Timers for InterviewTimers {
    async fn apply(
        &self,
        conn: &mut PgConnection,
        recorded: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let stream = recorded.stream_id.as_str();
        let slot = stream_uuid(stream, "slot-")?;
        let (clear, set) = match recorded.decode::<SlotEvent>()? {
            SlotEvent::SlotPublished { spec, .. } => {
                sqlx::query(
                    "insert into slot_times (slot_id, starts_at, ends_at) values ($1, $2, $3)",
                )
                .bind(slot)
                .bind(spec.start.unix_seconds())
                .bind(spec.end().unix_seconds())
                .execute(&mut *conn)
                .await?;
                return Ok(());
            }
            SlotEvent::SlotBooked { at, .. } => (vec![], booked(conn, slot, at).await?),
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
            SlotEvent::NoShowReported { contest_by, .. } => (
                InterviewTimer::ALL.to_vec(),
                vec![(InterviewTimer::ConfirmNoShow, contest_by)],
            ),
            SlotEvent::SlotWithdrawn { .. }
            | SlotEvent::BookingCancelled { .. }
            | SlotEvent::FeedbackAccepted { .. }
            | SlotEvent::FeedbackDisputed { .. }
            | SlotEvent::NoShowContested { .. }
            | SlotEvent::NoShowConfirmed { .. }
            | SlotEvent::NoShowResolved { .. }
            | SlotEvent::FeedbackExpired { .. } => (InterviewTimer::ALL.to_vec(), vec![]),
        };
        for timer in deadlines::on_stream::<SlotTimer>(conn, stream).await? {
            if clear.contains(&timer.timer) {
                deadlines::clear(conn, stream, &timer).await?;
            }
        }
        if set.is_empty() {
            return Ok(());
        }
        let booking: i32 = sqlx::query_scalar("select bookings from slot_times where slot_id = $1")
            .bind(slot)
            .fetch_one(&mut *conn)
            .await?;
        for (timer, due) in set {
            let timer = SlotTimer {
                booking: booking as u32,
                timer,
            };
            deadlines::set(conn, stream, &timer, due, None).await?;
        }
        Ok(())
    }
}

/// Counts the booking; the timers it sets: the reminders whose time is still ahead (the decider skips the others
/// too), and the end.
async fn booked(
    conn: &mut PgConnection,
    slot: Uuid,
    at: Timestamp,
) -> Result<Vec<(InterviewTimer, Timestamp)>, ProjectionError> {
    let (start, end): (i64, i64) = sqlx::query_as(
        "update slot_times set bookings = bookings + 1 where slot_id = $1 returning starts_at, ends_at",
    )
    .bind(slot)
    .fetch_one(&mut *conn)
    .await?;
    let (start, end) = (timestamp(start)?, timestamp(end)?);
    let mut set: Vec<(InterviewTimer, Timestamp)> = InterviewTimer::REMINDERS
        .iter()
        .map(|(timer, hours)| (*timer, interviews::reminder_time(start, *hours)))
        .filter(|(_, due)| *due >= at)
        .collect();
    set.push((InterviewTimer::End, end));
    Ok(set)
}
