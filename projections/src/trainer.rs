//! `trainer`: the question bank as it stands, every answer, and each user's statistics per level.
//!
//! Statistics per (user, level): answers given, correct ones, the current streak of correct answers (reset by
//! a partial or incorrect one) and the last activity. A contested verdict is marked on its answer; statistics
//! count the verdict as recorded.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::trainer::{Level, QuestionContent, QuestionEvent, TraineeEvent, Verdict};
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

    /// Set-based: loads the questions, statistics and answers the batch changes, folds its events into them in
    /// log order, and writes each table once. A question added twice or an answer recorded twice fails the
    /// event, as the primary keys did; an edit of a question never added changes nothing.
    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut batch = Vec::with_capacity(events.len());
        for recorded in events {
            batch.push(match recorded.stream_category.as_str() {
                "question" => Decoded::Question(
                    stream_uuid(&recorded.stream_id, "question-")?,
                    recorded.position,
                    recorded.decode()?,
                ),
                "trainee" => Decoded::Trainee(
                    stream_uuid(&recorded.stream_id, "trainee-")?,
                    recorded.decode()?,
                ),
                other => return Err(crate::unexpected_stream(NAME, other)),
            });
        }
        let mut fold = Fold::load(conn, &batch).await?;
        for event in batch {
            fold.apply(event)?;
        }
        fold.write(conn).await
    }
}

enum Decoded {
    Question(Uuid, i64, QuestionEvent),
    Trainee(Uuid, TraineeEvent),
}

/// A `questions` row as the fold holds it.
struct QuestionState {
    external_id: Option<String>,
    level: String,
    topic: String,
    text: String,
    reference_answer: String,
    key_points: serde_json::Value,
    retired: bool,
    revision: i32,
    added_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    added_position: i64,
    changed: bool,
}

/// A `user_stats` row as the fold holds it.
struct StatsState {
    answered: i32,
    correct: i32,
    streak: i32,
    last_activity: DateTime<Utc>,
}

/// An answer the batch records.
struct AnswerState {
    answer_id: Uuid,
    user_id: Uuid,
    question_id: Uuid,
    level: &'static str,
    topic: String,
    verdict: &'static str,
    score: f64,
    answered_at: DateTime<Utc>,
    contested: bool,
}

#[derive(Default)]
struct Fold {
    questions: HashMap<Uuid, QuestionState>,
    stats: HashMap<(Uuid, &'static str), StatsState>,
    /// Answers recorded by this batch, in order, and where each is in `answers`.
    answers: Vec<AnswerState>,
    new_answers: HashMap<Uuid, usize>,
    /// Answers of earlier batches contested by this one.
    contested: Vec<Uuid>,
}

impl Fold {
    async fn load(conn: &mut PgConnection, batch: &[Decoded]) -> Result<Self, ProjectionError> {
        let mut fold = Fold::default();
        let questions: Vec<Uuid> = batch
            .iter()
            .filter_map(|e| match e {
                Decoded::Question(id, _, _) => Some(*id),
                Decoded::Trainee(..) => None,
            })
            .collect();
        if !questions.is_empty() {
            let rows: Vec<QuestionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "select {QUESTION_COLUMNS} from questions where id = any($1)"
            )))
            .bind(&questions)
            .fetch_all(&mut *conn)
            .await?;
            for q in rows {
                fold.questions.insert(
                    q.id,
                    QuestionState {
                        external_id: q.external_id,
                        level: q.level,
                        topic: q.topic,
                        text: q.text,
                        reference_answer: q.reference_answer,
                        key_points: serde_json::to_value(&q.key_points.0)?,
                        retired: q.retired,
                        revision: q.revision,
                        added_at: q.added_at,
                        updated_at: q.updated_at,
                        added_position: q.added_position,
                        changed: false,
                    },
                );
            }
        }
        let (users, levels): (Vec<Uuid>, Vec<&str>) = batch
            .iter()
            .filter_map(|e| match e {
                Decoded::Trainee(user, TraineeEvent::QuestionAnswered { level, .. }) => {
                    Some((*user, level.as_str()))
                }
                _ => None,
            })
            .unzip();
        if !users.is_empty() {
            let rows: Vec<(Uuid, String, i32, i32, i32, DateTime<Utc>)> = sqlx::query_as(
                "select s.user_id, s.level, s.answered, s.correct, s.streak, s.last_activity
                   from user_stats s
                  where (s.user_id, s.level) in (select * from unnest($1::uuid[], $2::text[]))",
            )
            .bind(&users)
            .bind(&levels)
            .fetch_all(&mut *conn)
            .await?;
            for (user, level, answered, correct, streak, last_activity) in rows {
                let level = Level::parse(&level)?.as_str();
                fold.stats.insert(
                    (user, level),
                    StatsState {
                        answered,
                        correct,
                        streak,
                        last_activity,
                    },
                );
            }
        }
        Ok(fold)
    }

    fn apply(&mut self, event: Decoded) -> Result<(), ProjectionError> {
        match event {
            Decoded::Question(id, position, event) => self.apply_question(id, position, event),
            Decoded::Trainee(user, event) => self.apply_trainee(user, event),
        }
    }

    fn apply_question(
        &mut self,
        id: Uuid,
        position: i64,
        event: QuestionEvent,
    ) -> Result<(), ProjectionError> {
        match event {
            QuestionEvent::QuestionAdded {
                external_id,
                content,
                at,
                ..
            } => {
                if self.questions.contains_key(&id) {
                    return Err(format!("question {id} is added already").into());
                }
                let at = DateTime::<Utc>::from(at);
                self.questions.insert(
                    id,
                    QuestionState {
                        external_id,
                        level: content.level.as_str().to_owned(),
                        topic: content.topic,
                        text: content.text,
                        reference_answer: content.reference_answer,
                        key_points: serde_json::to_value(&content.key_points)?,
                        retired: false,
                        revision: 1,
                        added_at: at,
                        updated_at: at,
                        added_position: position,
                        changed: true,
                    },
                );
            }
            QuestionEvent::QuestionEdited { content, at, .. } => {
                if let Some(q) = self.questions.get_mut(&id) {
                    q.level = content.level.as_str().to_owned();
                    q.topic = content.topic;
                    q.text = content.text;
                    q.reference_answer = content.reference_answer;
                    q.key_points = serde_json::to_value(&content.key_points)?;
                    q.revision += 1;
                    q.updated_at = DateTime::<Utc>::from(at);
                    q.changed = true;
                }
            }
            QuestionEvent::QuestionRetired { at, .. } => {
                if let Some(q) = self.questions.get_mut(&id) {
                    q.retired = true;
                    q.updated_at = DateTime::<Utc>::from(at);
                    q.changed = true;
                }
            }
        }
        Ok(())
    }

    fn apply_trainee(&mut self, user: Uuid, event: TraineeEvent) -> Result<(), ProjectionError> {
        match event {
            TraineeEvent::QuestionAnswered {
                answer_id,
                question_id,
                level,
                topic,
                grade,
                at,
                ..
            } => {
                if self.new_answers.contains_key(&answer_id) {
                    return Err(format!("answer {answer_id} is recorded already").into());
                }
                let at = DateTime::<Utc>::from(at);
                let correct = grade.verdict == Verdict::Correct;
                self.new_answers.insert(answer_id, self.answers.len());
                self.answers.push(AnswerState {
                    answer_id,
                    user_id: user,
                    question_id,
                    level: level.as_str(),
                    topic,
                    verdict: grade.verdict.as_str(),
                    score: grade.score,
                    answered_at: at,
                    contested: false,
                });
                let stats = self
                    .stats
                    .entry((user, level.as_str()))
                    .or_insert(StatsState {
                        answered: 0,
                        correct: 0,
                        streak: 0,
                        last_activity: at,
                    });
                stats.answered += 1;
                stats.correct += i32::from(correct);
                stats.streak = if correct { stats.streak + 1 } else { 0 };
                stats.last_activity = stats.last_activity.max(at);
            }
            TraineeEvent::VerdictContested { answer_id, .. } => {
                match self.new_answers.get(&answer_id) {
                    Some(&i) => self.answers[i].contested = true,
                    None => self.contested.push(answer_id),
                }
            }
        }
        Ok(())
    }

    /// Contests of earlier answers first (an answer this batch records after its contest stays uncontested, as
    /// the update before the insert left it), then one statement per table.
    async fn write(self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        if !self.contested.is_empty() {
            sqlx::query("update answers set contested = true where answer_id = any($1)")
                .bind(&self.contested)
                .execute(&mut *conn)
                .await?;
        }
        let a = &self.answers;
        if !a.is_empty() {
            sqlx::query(
                "insert into answers (answer_id, user_id, question_id, level, topic, verdict, score, answered_at,
                                      contested)
                 select * from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                                      $7::float8[], $8::timestamptz[], $9::boolean[])",
            )
            .bind(a.iter().map(|x| x.answer_id).collect::<Vec<_>>())
            .bind(a.iter().map(|x| x.user_id).collect::<Vec<_>>())
            .bind(a.iter().map(|x| x.question_id).collect::<Vec<_>>())
            .bind(a.iter().map(|x| x.level).collect::<Vec<_>>())
            .bind(a.iter().map(|x| x.topic.as_str()).collect::<Vec<_>>())
            .bind(a.iter().map(|x| x.verdict).collect::<Vec<_>>())
            .bind(a.iter().map(|x| x.score).collect::<Vec<_>>())
            .bind(a.iter().map(|x| x.answered_at).collect::<Vec<_>>())
            .bind(a.iter().map(|x| x.contested).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        if !self.stats.is_empty() {
            let s: Vec<(&(Uuid, &str), &StatsState)> = self.stats.iter().collect();
            sqlx::query(
                "insert into user_stats as s (user_id, level, answered, correct, streak, last_activity)
                 select * from unnest($1::uuid[], $2::text[], $3::int[], $4::int[], $5::int[], $6::timestamptz[])
                 on conflict (user_id, level) do update
                    set answered = excluded.answered, correct = excluded.correct, streak = excluded.streak,
                        last_activity = excluded.last_activity",
            )
            .bind(s.iter().map(|(k, _)| k.0).collect::<Vec<_>>())
            .bind(s.iter().map(|(k, _)| k.1).collect::<Vec<_>>())
            .bind(s.iter().map(|(_, v)| v.answered).collect::<Vec<_>>())
            .bind(s.iter().map(|(_, v)| v.correct).collect::<Vec<_>>())
            .bind(s.iter().map(|(_, v)| v.streak).collect::<Vec<_>>())
            .bind(s.iter().map(|(_, v)| v.last_activity).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        let mut q: Vec<(&Uuid, &QuestionState)> =
            self.questions.iter().filter(|(_, q)| q.changed).collect();
        if !q.is_empty() {
            q.sort_unstable_by_key(|(_, q)| q.added_position);
            sqlx::query(
                "insert into questions (id, external_id, level, topic, text, reference_answer, key_points, retired,
                                        revision, added_at, updated_at, added_position)
                 select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                                      $7::text[]::jsonb[], $8::boolean[], $9::int[], $10::timestamptz[],
                                      $11::timestamptz[], $12::bigint[])
                 on conflict (id) do update
                    set level = excluded.level, topic = excluded.topic, text = excluded.text,
                        reference_answer = excluded.reference_answer, key_points = excluded.key_points,
                        retired = excluded.retired, revision = excluded.revision, updated_at = excluded.updated_at",
            )
            .bind(q.iter().map(|(id, _)| **id).collect::<Vec<_>>())
            .bind(q.iter().map(|(_, x)| x.external_id.as_deref()).collect::<Vec<_>>())
            .bind(q.iter().map(|(_, x)| x.level.as_str()).collect::<Vec<_>>())
            .bind(q.iter().map(|(_, x)| x.topic.as_str()).collect::<Vec<_>>())
            .bind(q.iter().map(|(_, x)| x.text.as_str()).collect::<Vec<_>>())
            .bind(q.iter().map(|(_, x)| x.reference_answer.as_str()).collect::<Vec<_>>())
            .bind(q.iter().map(|(_, x)| x.key_points.to_string()).collect::<Vec<_>>())
            .bind(q.iter().map(|(_, x)| x.retired).collect::<Vec<_>>())
            .bind(q.iter().map(|(_, x)| x.revision).collect::<Vec<_>>())
            .bind(q.iter().map(|(_, x)| x.added_at).collect::<Vec<_>>())
            .bind(q.iter().map(|(_, x)| x.updated_at).collect::<Vec<_>>())
            .bind(q.iter().map(|(_, x)| x.added_position).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
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

/// The statement of [`questions`]: the filters present, after the cursor on `added_position` (its unique index
/// gives the order).
pub fn questions_statement(
    filter: &QuestionFilter,
    after: Option<i64>,
    limit: i64,
) -> sqlx::QueryBuilder<sqlx::Postgres> {
    let mut q = sqlx::QueryBuilder::new(format!(
        "select {QUESTION_COLUMNS} from trainer.questions where added_position > "
    ));
    q.push_bind(after.unwrap_or(0));
    if let Some(level) = &filter.level {
        q.push(" and level = ").push_bind(level.clone());
    }
    if let Some(topic) = &filter.topic {
        q.push(" and topic = lower(")
            .push_bind(topic.clone())
            .push(")");
    }
    if !filter.include_retired {
        q.push(" and not retired");
    }
    q.push(" order by added_position limit ").push_bind(limit);
    q
}

/// Up to `limit` questions added after the one at `after` (an `added_position`), in the order they were added.
#[tracing::instrument(skip_all)]
pub async fn questions(
    pool: &PgPool,
    filter: &QuestionFilter,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<QuestionRow>, sqlx::Error> {
    questions_statement(filter, after, limit)
        .build_query_as()
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

/// The statement of [`users_stats`]: the primary key `(user_id, level)` in order, the cursor as its range.
pub fn users_stats_statement(
    level: Option<&str>,
    after: Option<(Uuid, String)>,
    limit: i64,
) -> sqlx::QueryBuilder<sqlx::Postgres> {
    let mut q = sqlx::QueryBuilder::new(
        "select s.user_id, s.level, s.answered, s.correct, s.streak, s.last_activity, u.username, u.email
           from trainer.user_stats s left join accounts.users u on u.id = s.user_id
          where true",
    );
    if let Some(level) = level {
        q.push(" and s.level = ").push_bind(level.to_owned());
    }
    if let Some((user, level)) = after {
        q.push(" and (s.user_id, s.level) > (")
            .push_bind(user)
            .push(", ")
            .push_bind(level)
            .push(")");
    }
    q.push(" order by s.user_id, s.level limit ")
        .push_bind(limit);
    q
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
    users_stats_statement(level, after, limit)
        .build_query_as()
        .fetch_all(pool)
        .await
}
