//! `tracks`: cohort tracks as participants and admins browse them: each track with its assignments and their
//! windows, participants with the assignment they are on, solutions, the review allocation, reviews and diaries.

mod notices;
mod timers;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::Timestamp;
use domain::tracks::{
    Allocation, Criterion, DiaryEvent, RepoUrl, ReviewMode, Score, TrackEvent, TrackSpec,
    TrackStatus, submission_id,
};
use eventlog::RecordedEvent;
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::{Projection, ProjectionError, named, stream_uuid};

pub const NAME: &str = "tracks";

#[derive(Debug, Default)]
pub struct Tracks;

/// The cohort tracks' part of the read side: this read model, their notices and their timers.
pub fn product() -> crate::Product {
    crate::Product {
        name: "tracks",
        read_models: vec![std::sync::Arc::new(Tracks)],
        notices: Some(std::sync::Arc::new(notices::TrackNotices)),
        timers: Some(std::sync::Arc::new(timers::TrackTimers)),
    }
}

crate::read_model!(Tracks {
    name: NAME,
    version: 1,
    events: [TrackEvent::TYPES, DiaryEvent::TYPES]
});

#[async_trait]
impl Projection for Tracks {
    async fn setup(&self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        sqlx::raw_sql(
            "create table tracks (
                 id               uuid primary key,
                 title            text not null,
                 description      text not null,
                 min_participants integer not null,
                 max_participants integer,
                 -- [{name, description, min_score, max_score}]
                 criteria         jsonb not null,
                 assignment_count integer not null,
                 participants     integer not null default 0,
                 -- domain::tracks::TrackStatus::as_str: enrolling, running or completed
                 status           text not null,
                 -- the latest opened assignment (0-based), null before the start
                 open_assignment  integer,
                 created_at       timestamptz not null,
                 started_at       timestamptz,
                 completed_at     timestamptz,
                 -- log position of the creation: the stable order of lists and their cursor
                 created_position bigint not null unique
             );
             create table assignments (
                 track_id     uuid not null,
                 index        integer not null,
                 title        text not null,
                 description  text not null,
                 hours        integer not null,
                 opened_at    timestamptz,
                 deadline     timestamptz,
                 closed_at    timestamptz,
                 -- how reviews were allocated at the close (domain::tracks::ReviewMode::as_str: ring,
                 -- all_available, alone, nobody) and the seed drawn
                 review_mode  text,
                 review_seed  numeric(20),
                 primary key (track_id, index)
             );
             create table participants (
                 track_id           uuid not null,
                 user_id            uuid not null,
                 enrolled_at        timestamptz not null,
                 -- the latest assignment open to them; null before the start
                 current_assignment integer,
                 primary key (track_id, user_id)
             );
             create index participants_user on participants (user_id);
             create table submissions (
                 track_id      uuid not null,
                 assignment    integer not null,
                 user_id       uuid not null,
                 -- what reviewers see instead of the author
                 submission_id uuid not null unique,
                 repository    text not null,
                 submitted_at  timestamptz not null,
                 -- how many times the link was replaced
                 replaced      integer not null default 0,
                 primary key (track_id, assignment, user_id)
             );
             create table allocations (
                 track_id    uuid not null,
                 assignment  integer not null,
                 reviewer    uuid not null,
                 author      uuid not null,
                 reviewed_at timestamptz,
                 primary key (track_id, assignment, reviewer, author)
             );
             create index allocations_reviewer on allocations (reviewer);
             create table reviews (
                 track_id     uuid not null,
                 assignment   integer not null,
                 reviewer     uuid not null,
                 author       uuid not null,
                 -- [{criterion, score}] in the track's order of criteria
                 scores       jsonb not null,
                 comment      text,
                 submitted_at timestamptz not null,
                 position     bigint not null,
                 primary key (track_id, assignment, reviewer, author)
             );
             create index reviews_author on reviews (author);
             create table diary (
                 entry_id   uuid primary key,
                 track_id   uuid not null,
                 assignment integer not null,
                 user_id    uuid not null,
                 text       text not null,
                 written_at timestamptz not null,
                 position   bigint not null
             );
             create index diary_track_user on diary (track_id, user_id);",
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
        crate::by_category!(NAME, conn, events, { "track" => apply_track, "diary" => apply_diary })
    }
}

async fn apply_track(
    conn: &mut PgConnection,
    recorded: &RecordedEvent,
) -> Result<(), ProjectionError> {
    let track = stream_uuid(&recorded.stream_id, "track-")?;
    match recorded.decode::<TrackEvent>()? {
        TrackEvent::TrackCreated { spec, at, .. } => {
            track_created(conn, track, &spec, at, recorded.position).await
        }
        TrackEvent::CriteriaRevised { criteria, .. } => {
            criteria_revised(conn, track, &criteria).await
        }
        TrackEvent::LearnerEnrolled { participant, at } => {
            participant_enrolled(conn, track, participant, at).await
        }
        TrackEvent::LearnerLeft { participant, .. } => {
            participant_left(conn, track, participant).await
        }
        TrackEvent::TrackStarted { at, .. } => track_started(conn, track, at).await,
        TrackEvent::AssignmentOpened {
            assignment,
            opened_at,
            deadline,
        } => assignment_opened(conn, track, assignment, opened_at, deadline).await,
        TrackEvent::SolutionSubmitted {
            assignment,
            participant,
            repository,
            at,
            ..
        } => solution_submitted(conn, track, assignment, participant, &repository, at).await,
        TrackEvent::DeadlineExtended {
            assignment,
            deadline,
            ..
        } => deadline_extended(conn, track, assignment, deadline).await,
        TrackEvent::AssignmentClosed { assignment, at } => {
            assignment_closed(conn, track, assignment, at).await
        }
        TrackEvent::ReviewsAllocated {
            assignment,
            seed,
            allocation,
            ..
        } => reviews_allocated(conn, track, assignment, seed, &allocation).await,
        TrackEvent::ReviewSubmitted {
            assignment,
            reviewer,
            author,
            scores,
            comment,
            at,
        } => {
            let review = Review {
                assignment,
                reviewer,
                author,
                scores,
                comment,
                at,
            };
            review_submitted(conn, track, review, recorded.position).await
        }
        TrackEvent::AssignmentUnlocked {
            assignment,
            participant,
            ..
        } => assignment_unlocked(conn, track, assignment, participant).await,
        TrackEvent::TrackCompleted { at } => track_completed(conn, track, at).await,
        TrackEvent::DeadlineReminderSent { .. } => Ok(()),
    }
}

/// Inserts the track (enrolling) and one `assignments` row per assignment of its spec.
async fn track_created(
    conn: &mut PgConnection,
    track: Uuid,
    spec: &TrackSpec,
    at: Timestamp,
    position: i64,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "insert into tracks (id, title, description, min_participants, max_participants, criteria,
                             assignment_count, status, created_at, created_position)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(track)
    .bind(&spec.title)
    .bind(&spec.description)
    .bind(spec.min_participants as i32)
    .bind(spec.max_participants.map(|m| m as i32))
    .bind(Json(&spec.criteria))
    .bind(spec.assignments.len() as i32)
    .bind(TrackStatus::Enrolling.as_str())
    .bind(DateTime::<Utc>::from(at))
    .bind(position)
    .execute(&mut *conn)
    .await?;
    for (index, assignment) in spec.assignments.iter().enumerate() {
        sqlx::query(
            "insert into assignments (track_id, index, title, description, hours)
             values ($1, $2, $3, $4, $5)",
        )
        .bind(track)
        .bind(index as i32)
        .bind(&assignment.title)
        .bind(&assignment.description)
        .bind(assignment.hours as i32)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Replaces the track's `criteria`.
async fn criteria_revised(
    conn: &mut PgConnection,
    track: Uuid,
    criteria: &[Criterion],
) -> Result<(), ProjectionError> {
    sqlx::query("update tracks set criteria = $2 where id = $1")
        .bind(track)
        .bind(Json(criteria))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Inserts the `participants` row and recounts the track's `participants`.
async fn participant_enrolled(
    conn: &mut PgConnection,
    track: Uuid,
    participant: Uuid,
    at: Timestamp,
) -> Result<(), ProjectionError> {
    // joining a running track: the first assignment is theirs at once
    sqlx::query(
        "insert into participants (track_id, user_id, enrolled_at, current_assignment)
         select $1, $2, $3, case when t.status = $4 then null else 0 end
           from tracks t where t.id = $1",
    )
    .bind(track)
    .bind(participant)
    .bind(DateTime::<Utc>::from(at))
    .bind(TrackStatus::Enrolling.as_str())
    .execute(&mut *conn)
    .await?;
    count_participants(conn, track).await?;
    Ok(())
}

/// Deletes the `participants` row and recounts the track's `participants`.
async fn participant_left(
    conn: &mut PgConnection,
    track: Uuid,
    participant: Uuid,
) -> Result<(), ProjectionError> {
    sqlx::query("delete from participants where track_id = $1 and user_id = $2")
        .bind(track)
        .bind(participant)
        .execute(&mut *conn)
        .await?;
    count_participants(conn, track).await?;
    Ok(())
}

/// Marks the track running and puts every participant on the first assignment.
async fn track_started(
    conn: &mut PgConnection,
    track: Uuid,
    at: Timestamp,
) -> Result<(), ProjectionError> {
    sqlx::query("update tracks set status = $3, started_at = $2 where id = $1")
        .bind(track)
        .bind(DateTime::<Utc>::from(at))
        .bind(TrackStatus::Running.as_str())
        .execute(&mut *conn)
        .await?;
    sqlx::query("update participants set current_assignment = 0 where track_id = $1")
        .bind(track)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Sets the assignment's window and the track's `open_assignment`.
async fn assignment_opened(
    conn: &mut PgConnection,
    track: Uuid,
    assignment: u32,
    opened_at: Timestamp,
    deadline: Timestamp,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "update assignments set opened_at = $3, deadline = $4 where track_id = $1 and index = $2",
    )
    .bind(track)
    .bind(assignment as i32)
    .bind(DateTime::<Utc>::from(opened_at))
    .bind(DateTime::<Utc>::from(deadline))
    .execute(&mut *conn)
    .await?;
    sqlx::query("update tracks set open_assignment = $2 where id = $1")
        .bind(track)
        .bind(assignment as i32)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Inserts the `submissions` row, or replaces its link and counts the replacement.
async fn solution_submitted(
    conn: &mut PgConnection,
    track: Uuid,
    assignment: u32,
    participant: Uuid,
    repository: &RepoUrl,
    at: Timestamp,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "insert into submissions as s (track_id, assignment, user_id, submission_id, repository, submitted_at)
         values ($1, $2, $3, $4, $5, $6)
         on conflict (track_id, assignment, user_id) do update
            set repository = excluded.repository, submitted_at = excluded.submitted_at,
                replaced = s.replaced + 1",
    )
    .bind(track)
    .bind(assignment as i32)
    .bind(participant)
    .bind(submission_id(track, assignment, participant))
    .bind(repository.as_str())
    .bind(DateTime::<Utc>::from(at))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Moves the assignment's `deadline`.
async fn deadline_extended(
    conn: &mut PgConnection,
    track: Uuid,
    assignment: u32,
    deadline: Timestamp,
) -> Result<(), ProjectionError> {
    sqlx::query("update assignments set deadline = $3 where track_id = $1 and index = $2")
        .bind(track)
        .bind(assignment as i32)
        .bind(DateTime::<Utc>::from(deadline))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Sets the assignment's `closed_at`.
async fn assignment_closed(
    conn: &mut PgConnection,
    track: Uuid,
    assignment: u32,
    at: Timestamp,
) -> Result<(), ProjectionError> {
    sqlx::query("update assignments set closed_at = $3 where track_id = $1 and index = $2")
        .bind(track)
        .bind(assignment as i32)
        .bind(DateTime::<Utc>::from(at))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records the assignment's review mode and seed and inserts one `allocations` row per pair.
async fn reviews_allocated(
    conn: &mut PgConnection,
    track: Uuid,
    assignment: u32,
    seed: u64,
    allocation: &Allocation,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "update assignments set review_mode = $3, review_seed = $4::text::numeric
          where track_id = $1 and index = $2",
    )
    .bind(track)
    .bind(assignment as i32)
    .bind(allocation.mode.as_str())
    .bind(seed.to_string())
    .execute(&mut *conn)
    .await?;
    let (reviewers, authors): (Vec<Uuid>, Vec<Uuid>) = allocation
        .pairs
        .iter()
        .map(|p| (p.reviewer, p.author))
        .unzip();
    sqlx::query(
        "insert into allocations (track_id, assignment, reviewer, author)
         select $1, $2, r, a from unnest($3::uuid[], $4::uuid[]) as pairs(r, a)",
    )
    .bind(track)
    .bind(assignment as i32)
    .bind(reviewers)
    .bind(authors)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A submitted review, as `ReviewSubmitted` carries it.
struct Review {
    assignment: u32,
    reviewer: Uuid,
    author: Uuid,
    scores: Vec<Score>,
    comment: Option<String>,
    at: Timestamp,
}

/// Inserts the `reviews` row and marks its allocation reviewed.
async fn review_submitted(
    conn: &mut PgConnection,
    track: Uuid,
    review: Review,
    position: i64,
) -> Result<(), ProjectionError> {
    let at = DateTime::<Utc>::from(review.at);
    sqlx::query(
        "insert into reviews (track_id, assignment, reviewer, author, scores, comment, submitted_at, position)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(track)
    .bind(review.assignment as i32)
    .bind(review.reviewer)
    .bind(review.author)
    .bind(Json(&review.scores))
    .bind(review.comment)
    .bind(at)
    .bind(position)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "update allocations set reviewed_at = $5
          where track_id = $1 and assignment = $2 and reviewer = $3 and author = $4",
    )
    .bind(track)
    .bind(review.assignment as i32)
    .bind(review.reviewer)
    .bind(review.author)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Raises the participant's `current_assignment` to the unlocked one.
async fn assignment_unlocked(
    conn: &mut PgConnection,
    track: Uuid,
    assignment: u32,
    participant: Uuid,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "update participants set current_assignment = greatest(current_assignment, $3)
          where track_id = $1 and user_id = $2",
    )
    .bind(track)
    .bind(participant)
    .bind(assignment as i32)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks the track completed.
async fn track_completed(
    conn: &mut PgConnection,
    track: Uuid,
    at: Timestamp,
) -> Result<(), ProjectionError> {
    sqlx::query("update tracks set status = $3, completed_at = $2 where id = $1")
        .bind(track)
        .bind(DateTime::<Utc>::from(at))
        .bind(TrackStatus::Completed.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn count_participants(conn: &mut PgConnection, track: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update tracks set participants = (select count(*) from participants where track_id = $1) where id = $1",
    )
    .bind(track)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn apply_diary(
    conn: &mut PgConnection,
    recorded: &RecordedEvent,
) -> Result<(), ProjectionError> {
    let DiaryEvent::DiaryEntryWritten {
        entry_id,
        track,
        assignment,
        participant,
        text,
        at,
    } = recorded.decode::<DiaryEvent>()?;
    sqlx::query(
        "insert into diary (entry_id, track_id, assignment, user_id, text, written_at, position)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(entry_id)
    .bind(track)
    .bind(assignment as i32)
    .bind(participant)
    .bind(text)
    .bind(DateTime::<Utc>::from(at))
    .bind(recorded.position)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Queries

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackRow {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub min_participants: i32,
    pub max_participants: Option<i32>,
    pub criteria: Json<Vec<Criterion>>,
    pub assignment_count: i32,
    pub participants: i32,
    pub status: TrackStatus,
    pub open_assignment: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_position: i64,
}

impl FromRow<'_, PgRow> for TrackRow {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            title: row.try_get("title")?,
            description: row.try_get("description")?,
            min_participants: row.try_get("min_participants")?,
            max_participants: row.try_get("max_participants")?,
            criteria: row.try_get("criteria")?,
            assignment_count: row.try_get("assignment_count")?,
            participants: row.try_get("participants")?,
            status: named(row, "status", TrackStatus::parse)?,
            open_assignment: row.try_get("open_assignment")?,
            created_at: row.try_get("created_at")?,
            started_at: row.try_get("started_at")?,
            completed_at: row.try_get("completed_at")?,
            created_position: row.try_get("created_position")?,
        })
    }
}

const TRACK_COLUMNS: &str = "t.id, t.title, t.description, t.min_participants, t.max_participants, t.criteria, \
                             t.assignment_count, t.participants, t.status, t.open_assignment, t.created_at, \
                             t.started_at, t.completed_at, t.created_position";

#[tracing::instrument(skip_all)]
pub async fn track(pool: &PgPool, id: Uuid) -> Result<Option<TrackRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {TRACK_COLUMNS} from tracks.tracks t where t.id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Which tracks to list.
#[derive(Debug, Clone, Default)]
pub struct TrackFilter {
    pub status: Option<TrackStatus>,
    /// Words in the title or description.
    pub search: Option<String>,
    /// Only tracks this user is enrolled in.
    pub participant: Option<Uuid>,
}

/// The statement of [`tracks`]: the filters present, after the cursor on `created_position` (its unique index
/// gives the order).
pub fn tracks_statement(
    filter: &TrackFilter,
    after: Option<i64>,
    limit: i64,
) -> sqlx::QueryBuilder<sqlx::Postgres> {
    let mut q = sqlx::QueryBuilder::new(format!(
        "select {TRACK_COLUMNS} from tracks.tracks t where t.created_position > "
    ));
    q.push_bind(after.unwrap_or(0));
    if let Some(status) = filter.status {
        q.push(" and t.status = ").push_bind(status.as_str());
    }
    if let Some(pattern) = filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(like_pattern)
    {
        q.push(" and (t.title ilike ")
            .push_bind(pattern.clone())
            .push(" or t.description ilike ")
            .push_bind(pattern)
            .push(")");
    }
    if let Some(participant) = filter.participant {
        q.push(" and exists (select 1 from tracks.participants p where p.track_id = t.id and p.user_id = ")
            .push_bind(participant)
            .push(")");
    }
    q.push(" order by t.created_position limit ")
        .push_bind(limit);
    q
}

/// Up to `limit` tracks created after the one at `after` (a `created_position`), oldest first.
#[tracing::instrument(skip_all)]
pub async fn tracks(
    pool: &PgPool,
    filter: &TrackFilter,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<TrackRow>, sqlx::Error> {
    tracks_statement(filter, after, limit)
        .build_query_as()
        .fetch_all(pool)
        .await
}

/// `%text%` with LIKE's wildcards in `text` taken literally.
fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssignmentRow {
    pub track_id: Uuid,
    pub index: i32,
    pub title: String,
    pub description: String,
    pub hours: i32,
    pub opened_at: Option<DateTime<Utc>>,
    pub deadline: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Set when the assignment's reviews were allocated.
    pub review_mode: Option<ReviewMode>,
}

impl FromRow<'_, PgRow> for AssignmentRow {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            track_id: row.try_get("track_id")?,
            index: row.try_get("index")?,
            title: row.try_get("title")?,
            description: row.try_get("description")?,
            hours: row.try_get("hours")?,
            opened_at: row.try_get("opened_at")?,
            deadline: row.try_get("deadline")?,
            closed_at: row.try_get("closed_at")?,
            // null until the reviews are allocated
            review_mode: match row.try_get::<Option<&str>, _>("review_mode")? {
                None => None,
                Some(_) => Some(named(row, "review_mode", ReviewMode::parse)?),
            },
        })
    }
}

#[tracing::instrument(skip_all)]
pub async fn assignments(pool: &PgPool, track: Uuid) -> Result<Vec<AssignmentRow>, sqlx::Error> {
    sqlx::query_as(
        "select track_id, index, title, description, hours, opened_at, deadline, closed_at, review_mode
           from tracks.assignments where track_id = $1 order by index",
    )
    .bind(track)
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ParticipantRow {
    pub track_id: Uuid,
    pub user_id: Uuid,
    pub username: Option<String>,
    pub enrolled_at: DateTime<Utc>,
    pub current_assignment: Option<i32>,
}

/// `user`'s place in `track`, if enrolled.
#[tracing::instrument(skip_all)]
pub async fn participant(
    pool: &PgPool,
    track: Uuid,
    user: Uuid,
) -> Result<Option<ParticipantRow>, sqlx::Error> {
    sqlx::query_as(
        "select p.track_id, p.user_id, u.username, p.enrolled_at, p.current_assignment
           from tracks.participants p left join accounts.users u on u.id = p.user_id
          where p.track_id = $1 and p.user_id = $2",
    )
    .bind(track)
    .bind(user)
    .fetch_optional(pool)
    .await
}

/// Everyone enrolled in `track`, in enrollment order (with usernames from the `accounts` read model).
#[tracing::instrument(skip_all)]
pub async fn participants(pool: &PgPool, track: Uuid) -> Result<Vec<ParticipantRow>, sqlx::Error> {
    sqlx::query_as(
        "select p.track_id, p.user_id, u.username, p.enrolled_at, p.current_assignment
           from tracks.participants p left join accounts.users u on u.id = p.user_id
          where p.track_id = $1 order by p.enrolled_at, p.user_id",
    )
    .bind(track)
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct SubmissionRow {
    pub track_id: Uuid,
    pub assignment: i32,
    pub user_id: Uuid,
    pub submission_id: Uuid,
    pub repository: String,
    pub submitted_at: DateTime<Utc>,
    pub replaced: i32,
}

/// Solutions in `track` (to `assignment`, by `user` when given), by assignment then author.
#[tracing::instrument(skip_all)]
pub async fn submissions(
    pool: &PgPool,
    track: Uuid,
    assignment: Option<i32>,
    user: Option<Uuid>,
) -> Result<Vec<SubmissionRow>, sqlx::Error> {
    sqlx::query_as(
        "select track_id, assignment, user_id, submission_id, repository, submitted_at, replaced
           from tracks.submissions
          where track_id = $1 and ($2::int is null or assignment = $2) and ($3::uuid is null or user_id = $3)
          order by assignment, user_id",
    )
    .bind(track)
    .bind(assignment)
    .bind(user)
    .fetch_all(pool)
    .await
}

/// A solution someone was allocated to review (the author is not named).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ReviewTaskRow {
    pub track_id: Uuid,
    pub track_title: String,
    pub assignment: i32,
    pub assignment_title: String,
    pub submission_id: Uuid,
    pub repository: String,
    pub reviewed_at: Option<DateTime<Utc>>,
}

/// What `reviewer` was allocated to review (in `track` when given), pending ones first.
#[tracing::instrument(skip_all)]
pub async fn review_tasks(
    pool: &PgPool,
    reviewer: Uuid,
    track: Option<Uuid>,
) -> Result<Vec<ReviewTaskRow>, sqlx::Error> {
    sqlx::query_as(
        "select a.track_id, t.title as track_title, a.assignment, x.title as assignment_title, s.submission_id,
                s.repository, a.reviewed_at
           from tracks.allocations a
           join tracks.tracks t on t.id = a.track_id
           join tracks.assignments x on x.track_id = a.track_id and x.index = a.assignment
           join tracks.submissions s on s.track_id = a.track_id and s.assignment = a.assignment
                                    and s.user_id = a.author
          where a.reviewer = $1 and ($2::uuid is null or a.track_id = $2)
          order by a.reviewed_at is not null, a.track_id, a.assignment, s.submission_id",
    )
    .bind(reviewer)
    .bind(track)
    .fetch_all(pool)
    .await
}

/// The author behind a submission id, with where it belongs: `(track, assignment, author)`.
#[tracing::instrument(skip_all)]
pub async fn submission_author(
    pool: &PgPool,
    submission: Uuid,
) -> Result<Option<(Uuid, i32, Uuid)>, sqlx::Error> {
    sqlx::query_as(
        "select track_id, assignment, user_id from tracks.submissions where submission_id = $1",
    )
    .bind(submission)
    .fetch_optional(pool)
    .await
}

/// A review as its author sees it: without the reviewer.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ReceivedReviewRow {
    pub track_id: Uuid,
    pub assignment: i32,
    pub scores: Json<Vec<Score>>,
    pub comment: Option<String>,
    pub submitted_at: DateTime<Utc>,
}

/// Reviews of `author`'s solutions in `track` (to `assignment` when given), in the order they came.
#[tracing::instrument(skip_all)]
pub async fn reviews_received(
    pool: &PgPool,
    author: Uuid,
    track: Uuid,
    assignment: Option<i32>,
) -> Result<Vec<ReceivedReviewRow>, sqlx::Error> {
    sqlx::query_as(
        "select track_id, assignment, scores, comment, submitted_at from tracks.reviews
          where author = $1 and track_id = $2 and ($3::int is null or assignment = $3)
          order by assignment, position",
    )
    .bind(author)
    .bind(track)
    .bind(assignment)
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DiaryRow {
    pub entry_id: Uuid,
    pub track_id: Uuid,
    pub assignment: i32,
    pub user_id: Uuid,
    pub text: String,
    pub written_at: DateTime<Utc>,
}

/// `user`'s diary in `track` (under `assignment` when given), in the order it was written.
#[tracing::instrument(skip_all)]
pub async fn diary(
    pool: &PgPool,
    track: Uuid,
    user: Uuid,
    assignment: Option<i32>,
) -> Result<Vec<DiaryRow>, sqlx::Error> {
    sqlx::query_as(
        "select entry_id, track_id, assignment, user_id, text, written_at from tracks.diary
          where track_id = $1 and user_id = $2 and ($3::int is null or assignment = $3)
          order by position",
    )
    .bind(track)
    .bind(user)
    .bind(assignment)
    .fetch_all(pool)
    .await
}
