//! `interviews`: the slot board and each user's interviews, and the points each user has, held and earned,
//! with every ledger entry.

mod notices;
mod timers;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::Timestamp;
use domain::interviews::{LedgerEvent, PointsEntryKind, Role, SlotEvent, SlotSpec, SlotStatus};
use domain::trainer::Level;
use eventlog::RecordedEvent;
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, FromRow, PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::{Projection, ProjectionError, named, stream_uuid};

pub const NAME: &str = "interviews";

#[derive(Debug, Default)]
pub struct Interviews;

/// The mock interviews' part of the read side: this read model, their notices and their timers.
pub fn product() -> crate::Product {
    crate::Product {
        name: "interviews",
        read_models: vec![std::sync::Arc::new(Interviews)],
        notices: Some(std::sync::Arc::new(notices::InterviewNotices)),
        timers: Some(std::sync::Arc::new(timers::InterviewTimers)),
    }
}

// 2: `no_show_settle_at` is `no_show_contest_by`; 3: `slots_board` holds the board's whole order
crate::read_model!(Interviews {
    name: NAME,
    version: 3,
    events: [SlotEvent::TYPES, LedgerEvent::TYPES]
});

#[async_trait]
impl Projection for Interviews {
    async fn setup(&self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "create table slots (
                 id                 uuid primary key,
                 owner              uuid not null,
                 -- the role the owner takes (domain::interviews::Role::as_str): interviewer or interviewee
                 owner_role         text not null,
                 starts_at          timestamptz not null,
                 ends_at            timestamptz not null,
                 minutes            integer not null,
                 meeting_link       text not null,
                 topic              text not null,
                 -- domain::trainer::Level::as_str
                 level              text not null,
                 -- domain::interviews::SlotStatus::as_str: open, withdrawn, booked, awaiting_feedback, ...
                 status             text not null,
                 booker             uuid,
                 interviewer        uuid,
                 interviewee        uuid,
                 booked_at          timestamptz,
                 feedback_score     integer,
                 feedback_text      text,
                 feedback_due       timestamptz,
                 accept_by          timestamptz,
                 dispute_reason     text,
                 -- who was reported absent (after a resolution: who was found absent, if anyone)
                 no_show_of         uuid,
                 no_show_contest_by  timestamptz,
                 no_show_contest    text,
                 published_at       timestamptz not null,
                 -- log position of the publication: the stable order of lists and their cursor
                 published_position bigint not null unique
             );
             -- the board: open slots in their list order (start, then publication), a range scan per page
             create index slots_board on slots (starts_at, published_position) where status = '{open}';
             create index slots_owner on slots (owner);
             create index slots_booker on slots (booker);
             create table balances (
                 user_id uuid primary key,
                 balance bigint not null,
                 held    bigint not null,
                 earned  bigint not null
             );
             create table entries (
                 position bigint not null,
                 user_id  uuid not null,
                 -- domain::interviews::PointsEntryKind::as_str: granted, held, captured, released, earned
                 kind     text not null,
                 slot_id  uuid,
                 amount   bigint not null,
                 -- change of the balance and of what is held
                 balance_change bigint not null,
                 held_change    bigint not null,
                 reason   text,
                 at       timestamptz not null,
                 primary key (user_id, position)
             );",
            open = SlotStatus::Open.as_str(),
        )))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        crate::by_category!(NAME, conn, events, { "slot" => apply_slot, "points" => apply_points })
    }
}

/// Sets the slot's `status` only.
async fn status(
    conn: &mut PgConnection,
    slot: Uuid,
    status: SlotStatus,
) -> Result<(), ProjectionError> {
    sqlx::query("update slots set status = $2 where id = $1")
        .bind(slot)
        .bind(status.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn apply_slot(
    conn: &mut PgConnection,
    recorded: &RecordedEvent,
) -> Result<(), ProjectionError> {
    let slot = stream_uuid(&recorded.stream_id, "slot-")?;
    match recorded.decode::<SlotEvent>()? {
        SlotEvent::SlotPublished { owner, spec, at } => {
            slot_published(conn, slot, owner, &spec, at, recorded.position).await
        }
        SlotEvent::SlotWithdrawn { .. } => status(conn, slot, SlotStatus::Withdrawn).await,
        SlotEvent::SlotBooked {
            booker,
            interviewer,
            interviewee,
            at,
        } => slot_booked(conn, slot, booker, interviewer, interviewee, at).await,
        SlotEvent::BookingCancelled { reopened, .. } => {
            booking_cancelled(conn, slot, reopened).await
        }
        SlotEvent::InterviewReminderSent { .. } => Ok(()),
        SlotEvent::InterviewEnded { feedback_due, .. } => {
            interview_ended(conn, slot, feedback_due).await
        }
        SlotEvent::FeedbackGiven {
            score,
            text,
            accept_by,
            ..
        } => feedback_given(conn, slot, score, text, accept_by).await,
        SlotEvent::FeedbackAccepted { .. } => status(conn, slot, SlotStatus::Accepted).await,
        SlotEvent::FeedbackDisputed { reason, .. } => feedback_disputed(conn, slot, reason).await,
        SlotEvent::NoShowReported {
            absent, contest_by, ..
        } => no_show_reported(conn, slot, absent, contest_by).await,
        SlotEvent::NoShowContested { reason, .. } => no_show_contested(conn, slot, reason).await,
        SlotEvent::NoShowConfirmed { .. } => status(conn, slot, SlotStatus::NoShow).await,
        SlotEvent::NoShowResolved { absent, .. } => no_show_resolved(conn, slot, absent).await,
        SlotEvent::FeedbackExpired { .. } => status(conn, slot, SlotStatus::FeedbackExpired).await,
    }
}

/// Inserts the `slots` row, open.
async fn slot_published(
    conn: &mut PgConnection,
    slot: Uuid,
    owner: Uuid,
    spec: &SlotSpec,
    at: Timestamp,
    position: i64,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "insert into slots (id, owner, owner_role, starts_at, ends_at, minutes, meeting_link, topic, level,
                            status, published_at, published_position)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(slot)
    .bind(owner)
    .bind(spec.role.as_str())
    .bind(DateTime::<Utc>::from(spec.start))
    .bind(DateTime::<Utc>::from(spec.end()))
    .bind(spec.minutes as i32)
    .bind(spec.link.as_str())
    .bind(&spec.topic)
    .bind(spec.level.as_str())
    .bind(SlotStatus::Open.as_str())
    .bind(DateTime::<Utc>::from(at))
    .bind(position)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks the slot booked and records the booker, both sides and `booked_at`.
async fn slot_booked(
    conn: &mut PgConnection,
    slot: Uuid,
    booker: Uuid,
    interviewer: Uuid,
    interviewee: Uuid,
    at: Timestamp,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "update slots set status = $2, booker = $3, interviewer = $4, interviewee = $5, booked_at = $6
          where id = $1",
    )
    .bind(slot)
    .bind(SlotStatus::Booked.as_str())
    .bind(booker)
    .bind(interviewer)
    .bind(interviewee)
    .bind(DateTime::<Utc>::from(at))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Reopens (or withdraws) the slot and clears the booking columns.
async fn booking_cancelled(
    conn: &mut PgConnection,
    slot: Uuid,
    reopened: bool,
) -> Result<(), ProjectionError> {
    let status = if reopened {
        SlotStatus::Open
    } else {
        SlotStatus::Withdrawn
    };
    sqlx::query(
        "update slots set status = $2, booker = null, interviewer = null, interviewee = null, booked_at = null
          where id = $1",
    )
    .bind(slot)
    .bind(status.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks the slot awaiting feedback and sets `feedback_due`.
async fn interview_ended(
    conn: &mut PgConnection,
    slot: Uuid,
    feedback_due: Timestamp,
) -> Result<(), ProjectionError> {
    sqlx::query("update slots set status = $2, feedback_due = $3 where id = $1")
        .bind(slot)
        .bind(SlotStatus::AwaitingFeedback.as_str())
        .bind(DateTime::<Utc>::from(feedback_due))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Marks the slot's feedback given and stores its score, text and `accept_by`.
async fn feedback_given(
    conn: &mut PgConnection,
    slot: Uuid,
    score: u8,
    text: String,
    accept_by: Timestamp,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "update slots set status = $2, feedback_score = $3, feedback_text = $4, accept_by = $5
          where id = $1",
    )
    .bind(slot)
    .bind(SlotStatus::FeedbackGiven.as_str())
    .bind(i32::from(score))
    .bind(text)
    .bind(DateTime::<Utc>::from(accept_by))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks the slot's feedback disputed and stores the reason.
async fn feedback_disputed(
    conn: &mut PgConnection,
    slot: Uuid,
    reason: String,
) -> Result<(), ProjectionError> {
    sqlx::query("update slots set status = $2, dispute_reason = $3 where id = $1")
        .bind(slot)
        .bind(SlotStatus::Disputed.as_str())
        .bind(reason)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Marks the slot's no-show reported and stores who was absent and the contest-by time.
async fn no_show_reported(
    conn: &mut PgConnection,
    slot: Uuid,
    absent: Uuid,
    contest_by: Timestamp,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "update slots set status = $2, no_show_of = $3, no_show_contest_by = $4 where id = $1",
    )
    .bind(slot)
    .bind(SlotStatus::NoShowReported.as_str())
    .bind(absent)
    .bind(DateTime::<Utc>::from(contest_by))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks the slot's no-show contested and stores the reason.
async fn no_show_contested(
    conn: &mut PgConnection,
    slot: Uuid,
    reason: String,
) -> Result<(), ProjectionError> {
    sqlx::query("update slots set status = $2, no_show_contest = $3 where id = $1")
        .bind(slot)
        .bind(SlotStatus::NoShowContested.as_str())
        .bind(reason)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Marks the slot resolved as a no-show and stores who was absent (null: nobody).
async fn no_show_resolved(
    conn: &mut PgConnection,
    slot: Uuid,
    absent: Option<Uuid>,
) -> Result<(), ProjectionError> {
    sqlx::query("update slots set status = $2, no_show_of = $3 where id = $1")
        .bind(slot)
        .bind(SlotStatus::NoShow.as_str())
        .bind(absent)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn apply_points(
    conn: &mut PgConnection,
    recorded: &RecordedEvent,
) -> Result<(), ProjectionError> {
    let user = stream_uuid(&recorded.stream_id, "points-")?;
    let event = recorded.decode::<LedgerEvent>()?;
    let (balance, held) = event.deltas();
    let (kind, slot, amount, reason, at) = match &event {
        LedgerEvent::PointsGranted { amount, reason, at } => (
            PointsEntryKind::Granted,
            None,
            amount,
            Some(reason.as_str()),
            at,
        ),
        LedgerEvent::PointsHeld { slot, amount, at } => {
            (PointsEntryKind::Held, Some(*slot), amount, None, at)
        }
        LedgerEvent::PointsCaptured { slot, amount, at } => {
            (PointsEntryKind::Captured, Some(*slot), amount, None, at)
        }
        LedgerEvent::PointsReleased { slot, amount, at } => {
            (PointsEntryKind::Released, Some(*slot), amount, None, at)
        }
        LedgerEvent::PointsEarned { slot, amount, at } => {
            (PointsEntryKind::Earned, Some(*slot), amount, None, at)
        }
    };
    sqlx::query(
        "insert into entries (position, user_id, kind, slot_id, amount, balance_change, held_change, reason, at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(recorded.position)
    .bind(user)
    .bind(kind.as_str())
    .bind(slot)
    .bind(amount)
    .bind(balance)
    .bind(held)
    .bind(reason)
    .bind(DateTime::<Utc>::from(*at))
    .execute(&mut *conn)
    .await?;
    let earned = if kind == PointsEntryKind::Earned {
        *amount
    } else {
        0
    };
    sqlx::query(
        "insert into balances as b (user_id, balance, held, earned) values ($1, $2, $3, $4)
         on conflict (user_id) do update
            set balance = b.balance + $2, held = b.held + $3, earned = b.earned + $4",
    )
    .bind(user)
    .bind(balance)
    .bind(held)
    .bind(earned)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Queries

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotRow {
    pub id: Uuid,
    pub owner: Uuid,
    pub owner_role: Role,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub minutes: i32,
    pub meeting_link: String,
    pub topic: String,
    pub level: Level,
    pub status: SlotStatus,
    pub booker: Option<Uuid>,
    pub interviewer: Option<Uuid>,
    pub interviewee: Option<Uuid>,
    pub booked_at: Option<DateTime<Utc>>,
    pub feedback_score: Option<i32>,
    pub feedback_text: Option<String>,
    pub feedback_due: Option<DateTime<Utc>>,
    pub accept_by: Option<DateTime<Utc>>,
    pub dispute_reason: Option<String>,
    pub no_show_of: Option<Uuid>,
    pub no_show_contest_by: Option<DateTime<Utc>>,
    pub no_show_contest: Option<String>,
    pub published_at: DateTime<Utc>,
    pub published_position: i64,
}

impl FromRow<'_, PgRow> for SlotRow {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            owner: row.try_get("owner")?,
            owner_role: named(row, "owner_role", Role::parse)?,
            starts_at: row.try_get("starts_at")?,
            ends_at: row.try_get("ends_at")?,
            minutes: row.try_get("minutes")?,
            meeting_link: row.try_get("meeting_link")?,
            topic: row.try_get("topic")?,
            level: named(row, "level", |stored| Level::parse(stored).ok())?,
            status: named(row, "status", SlotStatus::parse)?,
            booker: row.try_get("booker")?,
            interviewer: row.try_get("interviewer")?,
            interviewee: row.try_get("interviewee")?,
            booked_at: row.try_get("booked_at")?,
            feedback_score: row.try_get("feedback_score")?,
            feedback_text: row.try_get("feedback_text")?,
            feedback_due: row.try_get("feedback_due")?,
            accept_by: row.try_get("accept_by")?,
            dispute_reason: row.try_get("dispute_reason")?,
            no_show_of: row.try_get("no_show_of")?,
            no_show_contest_by: row.try_get("no_show_contest_by")?,
            no_show_contest: row.try_get("no_show_contest")?,
            published_at: row.try_get("published_at")?,
            published_position: row.try_get("published_position")?,
        })
    }
}

const SLOT_COLUMNS: &str = "id, owner, owner_role, starts_at, ends_at, minutes, meeting_link, topic, level, status, \
                            booker, interviewer, interviewee, booked_at, feedback_score, feedback_text, \
                            feedback_due, accept_by, dispute_reason, no_show_of, no_show_contest_by, \
                            no_show_contest, published_at, published_position";

#[tracing::instrument(skip_all)]
pub async fn slot(pool: &PgPool, id: Uuid) -> Result<Option<SlotRow>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "select {SLOT_COLUMNS} from interviews.slots where id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// What the board shows.
#[derive(Debug, Clone, Default)]
pub struct BoardFilter {
    /// The role the owner takes (the viewer wants the other one).
    pub owner_role: Option<Role>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub level: Option<Level>,
    pub topic: Option<String>,
    /// Left out: the viewer's own slots.
    pub exclude_owner: Option<Uuid>,
}

/// The statement of [`board`]: the open slots' partial index in (start, publication) order, the cursor and the
/// time bounds as its range, the other filters present.
pub fn board_statement(
    filter: &BoardFilter,
    now: DateTime<Utc>,
    after: Option<(DateTime<Utc>, i64)>,
    limit: i64,
) -> sqlx::QueryBuilder<sqlx::Postgres> {
    // the status is written into the statement, not bound, so the planner can use the partial index `slots_board`
    let open = SlotStatus::Open.as_str();
    let mut q = sqlx::QueryBuilder::new(format!(
        "select {SLOT_COLUMNS} from interviews.slots where status = '{open}' and starts_at > "
    ));
    q.push_bind(now);
    if let Some(role) = filter.owner_role {
        q.push(" and owner_role = ").push_bind(role.as_str());
    }
    if let Some(from) = filter.from {
        q.push(" and starts_at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        q.push(" and starts_at <= ").push_bind(to);
    }
    if let Some(level) = filter.level {
        q.push(" and level = ").push_bind(level.as_str());
    }
    if let Some(topic) = &filter.topic {
        q.push(" and topic = lower(")
            .push_bind(topic.trim().to_owned())
            .push(")");
    }
    if let Some(owner) = filter.exclude_owner {
        q.push(" and owner <> ").push_bind(owner);
    }
    if let Some((start, position)) = after {
        q.push(" and (starts_at, published_position) > (")
            .push_bind(start)
            .push(", ")
            .push_bind(position)
            .push(")");
    }
    q.push(" order by starts_at, published_position limit ")
        .push_bind(limit);
    q
}

/// Open slots starting after `now`, soonest first, after the cursor `(start, position)`.
#[tracing::instrument(skip_all)]
pub async fn board(
    pool: &PgPool,
    filter: &BoardFilter,
    now: DateTime<Utc>,
    after: Option<(DateTime<Utc>, i64)>,
    limit: i64,
) -> Result<Vec<SlotRow>, sqlx::Error> {
    board_statement(filter, now, after, limit)
        .build_query_as()
        .fetch_all(pool)
        .await
}

/// Slots whose no-show report is contested, waiting for an admin, oldest first.
#[tracing::instrument(skip_all)]
pub async fn contested(pool: &PgPool) -> Result<Vec<SlotRow>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "select {SLOT_COLUMNS} from interviews.slots where status = $1 order by starts_at, id"
    )))
    .bind(SlotStatus::NoShowContested.as_str())
    .fetch_all(pool)
    .await
}

/// `user`'s slots: published or booked, soonest first.
#[tracing::instrument(skip_all)]
pub async fn slots_of(pool: &PgPool, user: Uuid) -> Result<Vec<SlotRow>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "select {SLOT_COLUMNS} from interviews.slots where owner = $1 or booker = $1
          order by starts_at, published_position"
    )))
    .bind(user)
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct BalanceRow {
    pub balance: i64,
    pub held: i64,
    pub earned: i64,
}

#[tracing::instrument(skip_all)]
pub async fn balance(pool: &PgPool, user: Uuid) -> Result<BalanceRow, sqlx::Error> {
    let row =
        sqlx::query_as("select balance, held, earned from interviews.balances where user_id = $1")
            .bind(user)
            .fetch_optional(pool)
            .await?;
    Ok(row.unwrap_or_default())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryRow {
    pub position: i64,
    pub kind: PointsEntryKind,
    pub slot_id: Option<Uuid>,
    pub amount: i64,
    pub balance_change: i64,
    pub held_change: i64,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

impl FromRow<'_, PgRow> for EntryRow {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            position: row.try_get("position")?,
            kind: named(row, "kind", PointsEntryKind::parse)?,
            slot_id: row.try_get("slot_id")?,
            amount: row.try_get("amount")?,
            balance_change: row.try_get("balance_change")?,
            held_change: row.try_get("held_change")?,
            reason: row.try_get("reason")?,
            at: row.try_get("at")?,
        })
    }
}

/// `user`'s ledger, newest first.
#[tracing::instrument(skip_all)]
pub async fn entries(pool: &PgPool, user: Uuid, limit: i64) -> Result<Vec<EntryRow>, sqlx::Error> {
    sqlx::query_as(
        "select position, kind, slot_id, amount, balance_change, held_change, reason, at
           from interviews.entries where user_id = $1 order by position desc limit $2",
    )
    .bind(user)
    .bind(limit)
    .fetch_all(pool)
    .await
}
