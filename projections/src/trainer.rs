//! `trainer`: the question bank as it stands, every answer, and each user's statistics per level.
//!
//! Statistics per (user, level): answers given, correct ones, the current streak of correct answers (reset by
//! a partial or incorrect one) and the last activity. A contested verdict is marked on its answer; statistics
//! count the verdict as recorded.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::trainer::{QuestionContent, QuestionEvent, TraineeEvent, Verdict};
use eventlog::RecordedEvent;
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{Projection, ProjectionError, stream_uuid};

pub const NAME: &str = "trainer";

#[derive(Debug, Default)]
pub struct Trainer;

/// The trainer product's part of the read side: this read model, no notices, no timers.
pub fn product() -> crate::Product {
    crate::Product {
        name: "trainer",
        read_models: vec![std::sync::Arc::new(Trainer)],
        notices: None,
        timers: None,
    }
}

crate::read_model!(Trainer {
    name: NAME,
    version: 1,
    events: [QuestionEvent::TYPES, TraineeEvent::TYPES]
});

#[async_trait]
impl Projection for Trainer {
    async fn setup(&self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        sqlx::raw_sql(
            "create table questions (
                 id               uuid primary key,
                 -- the id in the file it was imported from, if any
                 external_id      text unique,
                 level            text not null,
                 topic            text not null,
                 text             text not null,
                 reference_answer text not null,
                 -- [{concept, synonyms: [..]}]
                 key_points       jsonb not null,
                 retired          boolean not null default false,
                 -- 1 when added, +1 per edit
                 revision         integer not null,
                 added_at         timestamptz not null,
                 updated_at       timestamptz not null,
                 -- log position of the addition: the stable order of lists and their cursor
                 added_position   bigint not null unique
             );
             create index questions_level_topic on questions (level, topic) where not retired;
             create table answers (
                 answer_id   uuid primary key,
                 user_id     uuid not null,
                 question_id uuid not null,
                 level       text not null,
                 topic       text not null,
                 verdict     text not null,
                 score       double precision not null,
                 answered_at timestamptz not null,
                 contested   boolean not null default false
             );
             create index answers_user_question on answers (user_id, question_id);
             create table user_stats (
                 user_id       uuid not null,
                 level         text not null,
                 answered      integer not null,
                 correct       integer not null,
                 -- correct answers in a row, up to the latest answer
                 streak        integer not null,
                 last_activity timestamptz not null,
                 primary key (user_id, level)
             );",
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
        crate::by_category!(NAME, conn, events, { "question" => apply_question, "trainee" => apply_trainee })
    }
}

async fn apply_question(
    conn: &mut PgConnection,
    recorded: &RecordedEvent,
) -> Result<(), ProjectionError> {
    let id = stream_uuid(&recorded.stream_id, "question-")?;
    match recorded.decode::<QuestionEvent>()? {
        QuestionEvent::QuestionAdded {
            external_id,
            content,
            at,
            ..
        } => {
            sqlx::query(
                "insert into questions (id, external_id, level, topic, text, reference_answer, key_points,
                                        revision, added_at, updated_at, added_position)
                 values ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8, $9)",
            )
            .bind(id)
            .bind(external_id)
            .bind(content.level.as_str())
            .bind(&content.topic)
            .bind(&content.text)
            .bind(&content.reference_answer)
            .bind(Json(&content.key_points))
            .bind(DateTime::<Utc>::from(at))
            .bind(recorded.position)
            .execute(&mut *conn)
            .await?;
        }
        QuestionEvent::QuestionEdited { content, at, .. } => {
            sqlx::query(
                "update questions set level = $2, topic = $3, text = $4, reference_answer = $5, key_points = $6,
                        revision = revision + 1, updated_at = $7
                  where id = $1",
            )
            .bind(id)
            .bind(content.level.as_str())
            .bind(&content.topic)
            .bind(&content.text)
            .bind(&content.reference_answer)
            .bind(Json(&content.key_points))
            .bind(DateTime::<Utc>::from(at))
            .execute(&mut *conn)
            .await?;
        }
        QuestionEvent::QuestionRetired { at, .. } => {
            sqlx::query("update questions set retired = true, updated_at = $2 where id = $1")
                .bind(id)
                .bind(DateTime::<Utc>::from(at))
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

async fn apply_trainee(
    conn: &mut PgConnection,
    recorded: &RecordedEvent,
) -> Result<(), ProjectionError> {
    let user = stream_uuid(&recorded.stream_id, "trainee-")?;
    match recorded.decode::<TraineeEvent>()? {
        TraineeEvent::QuestionAnswered {
            answer_id,
            question_id,
            level,
            topic,
            grade,
            at,
            ..
        } => {
            let at = DateTime::<Utc>::from(at);
            let correct = grade.verdict == Verdict::Correct;
            sqlx::query(
                "insert into answers (answer_id, user_id, question_id, level, topic, verdict, score, answered_at)
                 values ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(answer_id)
            .bind(user)
            .bind(question_id)
            .bind(level.as_str())
            .bind(&topic)
            .bind(grade.verdict.as_str())
            .bind(grade.score)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "insert into user_stats as s (user_id, level, answered, correct, streak, last_activity)
                 values ($1, $2, 1, $3::int, $3::int, $4)
                 on conflict (user_id, level) do update
                    set answered = s.answered + 1,
                        correct = s.correct + $3::int,
                        streak = case when $3 then s.streak + 1 else 0 end,
                        last_activity = greatest(s.last_activity, $4)",
            )
            .bind(user)
            .bind(level.as_str())
            .bind(correct)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        TraineeEvent::VerdictContested { answer_id, .. } => {
            sqlx::query("update answers set contested = true where answer_id = $1")
                .bind(answer_id)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// A question as the bank has it now.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct QuestionRow {
    pub id: Uuid,
    pub external_id: Option<String>,
    pub level: String,
    pub topic: String,
    pub text: String,
    pub reference_answer: String,
    pub key_points: Json<Vec<domain::trainer::KeyPoint>>,
    pub retired: bool,
    pub revision: i32,
    pub added_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub added_position: i64,
}

impl QuestionRow {
    /// The content, for grading.
    pub fn content(&self) -> Result<QuestionContent, domain::trainer::QuestionError> {
        QuestionContent::parse(
            domain::trainer::Level::parse(&self.level)?,
            &self.topic,
            &self.text,
            &self.reference_answer,
            self.key_points.0.clone(),
        )
    }
}

const QUESTION_COLUMNS: &str = "id, external_id, level, topic, text, reference_answer, key_points, retired, \
                                revision, added_at, updated_at, added_position";

#[tracing::instrument(skip_all)]
pub async fn question(pool: &PgPool, id: Uuid) -> Result<Option<QuestionRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {QUESTION_COLUMNS} from trainer.questions where id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// A random active question of `level` (and `topic`), preferring those `user` has not answered yet.
#[tracing::instrument(skip_all)]
pub async fn random_question(
    pool: &PgPool,
    user: Uuid,
    level: &str,
    topic: Option<&str>,
) -> Result<Option<QuestionRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {QUESTION_COLUMNS} from trainer.questions q
          where not retired and level = $1 and ($2::text is null or topic = lower($2))
          order by exists (select 1 from trainer.answers a where a.user_id = $3 and a.question_id = q.id),
                   random()
          limit 1"
    )))
    .bind(level)
    .bind(topic)
    .bind(user)
    .fetch_optional(pool)
    .await
}

/// Which questions to list.
#[derive(Debug, Clone, Default)]
pub struct QuestionFilter {
    pub level: Option<String>,
    pub topic: Option<String>,
    pub include_retired: bool,
}

/// Up to `limit` questions added after the one at `after` (an `added_position`), in the order they were added.
#[tracing::instrument(skip_all)]
pub async fn questions(
    pool: &PgPool,
    filter: &QuestionFilter,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<QuestionRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {QUESTION_COLUMNS} from trainer.questions
          where added_position > $1
            and ($2::text is null or level = $2)
            and ($3::text is null or topic = lower($3))
            and ($4 or not retired)
          order by added_position
          limit $5"
    )))
    .bind(after.unwrap_or(0))
    .bind(filter.level.as_deref())
    .bind(filter.topic.as_deref())
    .bind(filter.include_retired)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// One user's statistics at one level.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct LevelStats {
    pub user_id: Uuid,
    pub level: String,
    pub answered: i32,
    pub correct: i32,
    pub streak: i32,
    pub last_activity: DateTime<Utc>,
}

impl LevelStats {
    /// Correct answers among all answers, 0 to 1.
    pub fn correct_share(&self) -> f64 {
        if self.answered == 0 {
            0.0
        } else {
            f64::from(self.correct) / f64::from(self.answered)
        }
    }
}

/// `user`'s statistics, at `level` or at every level they answered.
#[tracing::instrument(skip_all)]
pub async fn stats(
    pool: &PgPool,
    user: Uuid,
    level: Option<&str>,
) -> Result<Vec<LevelStats>, sqlx::Error> {
    sqlx::query_as(
        "select user_id, level, answered, correct, streak, last_activity from trainer.user_stats
          where user_id = $1 and ($2::text is null or level = $2)
          order by case level when 'junior' then 1 when 'middle' then 2 else 3 end",
    )
    .bind(user)
    .bind(level)
    .fetch_all(pool)
    .await
}

/// A user's statistics at a level, with who they are (from the `accounts` read model).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct UserLevelStats {
    #[sqlx(flatten)]
    pub stats: LevelStats,
    pub username: Option<String>,
    pub email: Option<String>,
}

/// Every user's statistics at `level` (every level when `None`), ordered by user and level, after the
/// `(user, level)` in `after`.
#[tracing::instrument(skip_all)]
pub async fn users_stats(
    pool: &PgPool,
    level: Option<&str>,
    after: Option<(Uuid, String)>,
    limit: i64,
) -> Result<Vec<UserLevelStats>, sqlx::Error> {
    let (after_user, after_level) = after.unzip();
    sqlx::query_as(
        "select s.user_id, s.level, s.answered, s.correct, s.streak, s.last_activity, u.username, u.email
           from trainer.user_stats s left join accounts.users u on u.id = s.user_id
          where ($1::text is null or s.level = $1)
            and ($2::uuid is null or (s.user_id, s.level) > ($2, $3::text))
          order by s.user_id, s.level
          limit $4",
    )
    .bind(level)
    .bind(after_user)
    .bind(after_level)
    .bind(limit)
    .fetch_all(pool)
    .await
}
