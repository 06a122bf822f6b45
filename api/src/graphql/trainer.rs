//! The question trainer in GraphQL: practising (random question, answer, contest, own statistics) and the
//! admins' bank (add, edit, retire, list) and users' statistics.

use async_graphql::connection::{Connection, Edge, OpaqueCursor};
use async_graphql::{Context, Enum, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use commands::trainer::{QuestionDraft, Trainer};
use domain::trainer::{KeyPoint, Level};
use projections::trainer::{self as model, QuestionFilter, QuestionRow};
use uuid::Uuid;

use super::accounts::MutationResult;
use super::{AdminOnly, SignedIn, admin, cursor, page_size, read_after, request, services, viewer};
use crate::error::ApiError;

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "Level", remote = "domain::trainer::Level")]
pub enum LevelValue {
    Junior,
    Middle,
    Senior,
}

fn level_of(raw: &str) -> LevelValue {
    Level::parse(raw).map_or(LevelValue::Junior, LevelValue::from)
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "Verdict", remote = "domain::trainer::Verdict")]
pub enum VerdictValue {
    Correct,
    Partial,
    Incorrect,
}

/// A question as a trainee sees it: without the answer.
#[derive(SimpleObject, Debug)]
pub struct QuestionCard {
    pub id: Uuid,
    pub level: LevelValue,
    pub topic: String,
    pub text: String,
}

#[derive(SimpleObject, InputObject, Debug, Clone)]
#[graphql(name = "KeyPoint", input_name = "KeyPointInput")]
pub struct KeyPointValue {
    pub concept: String,
    #[graphql(default)]
    pub synonyms: Vec<String>,
}

/// A question with everything admins curate.
#[derive(SimpleObject, Debug)]
pub struct QuestionDetails {
    pub id: Uuid,
    pub external_id: Option<String>,
    pub level: LevelValue,
    pub topic: String,
    pub text: String,
    pub reference_answer: String,
    pub key_points: Vec<KeyPointValue>,
    pub retired: bool,
    /// 1 when added, one more per edit (the log has every version).
    pub revision: i32,
    pub added_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<QuestionRow> for QuestionDetails {
    fn from(row: QuestionRow) -> Self {
        Self {
            id: row.id,
            external_id: row.external_id,
            level: level_of(&row.level),
            topic: row.topic,
            text: row.text,
            reference_answer: row.reference_answer,
            key_points: row
                .key_points
                .0
                .into_iter()
                .map(|p| KeyPointValue {
                    concept: p.concept,
                    synonyms: p.synonyms,
                })
                .collect(),
            retired: row.retired,
            revision: row.revision,
            added_at: row.added_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(InputObject, Debug)]
pub struct QuestionInput {
    pub level: LevelValue,
    pub topic: String,
    pub text: String,
    pub reference_answer: String,
    pub key_points: Vec<KeyPointValue>,
}

impl From<QuestionInput> for QuestionDraft {
    fn from(input: QuestionInput) -> Self {
        Self {
            level: input.level.into(),
            topic: input.topic,
            text: input.text,
            reference_answer: input.reference_answer,
            key_points: input
                .key_points
                .into_iter()
                .map(|p| KeyPoint {
                    concept: p.concept,
                    synonyms: p.synonyms,
                })
                .collect(),
        }
    }
}

#[derive(SimpleObject, Debug)]
pub struct QuestionPayload {
    pub question_id: Uuid,
    pub position: Option<i64>,
}

/// The checker's judgement, with what it was judged against.
#[derive(SimpleObject, Debug)]
pub struct AnswerResult {
    pub answer_id: Uuid,
    pub verdict: VerdictValue,
    /// 0 to 1.
    pub score: f64,
    pub matched_key_points: Vec<String>,
    pub missing_key_points: Vec<String>,
    /// Key points the answer mentioned only to deny them (also counted as missing).
    pub negated_key_points: Vec<String>,
    pub reference_answer: String,
    pub position: Option<i64>,
}

#[derive(SimpleObject, Debug)]
pub struct LevelStats {
    pub level: LevelValue,
    pub answered: i32,
    pub correct: i32,
    /// Correct answers among all, 0 to 1.
    pub correct_share: f64,
    /// Correct answers in a row, up to the latest.
    pub streak: i32,
    pub last_activity: DateTime<Utc>,
}

impl From<model::LevelStats> for LevelStats {
    fn from(stats: model::LevelStats) -> Self {
        Self {
            level: level_of(&stats.level),
            answered: stats.answered,
            correct: stats.correct,
            correct_share: stats.correct_share(),
            streak: stats.streak,
            last_activity: stats.last_activity,
        }
    }
}

#[derive(SimpleObject, Debug)]
pub struct UserStats {
    pub user_id: Uuid,
    pub username: Option<String>,
    pub email: Option<String>,
    #[graphql(flatten)]
    pub stats: LevelStats,
}

#[derive(Default)]
pub struct TrainerQuery;

#[Object]
impl TrainerQuery {
    /// A random active question of this level (and topic), preferring ones you have not answered yet.
    #[graphql(guard = "SignedIn")]
    async fn random_question(
        &self,
        ctx: &Context<'_>,
        level: LevelValue,
        topic: Option<String>,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Option<QuestionCard>> {
        let user = viewer(ctx).require_user()?;
        read_after(ctx, min_position, &[model::NAME]).await?;
        let level = Level::from(level);
        let row =
            model::random_question(&services(ctx).pool, user, level.as_str(), topic.as_deref())
                .await
                .map_err(ApiError::from)?;
        Ok(row.map(|row| QuestionCard {
            id: row.id,
            level: level_of(&row.level),
            topic: row.topic,
            text: row.text,
        }))
    }

    /// Your statistics at a level, or at every level you practised.
    #[graphql(guard = "SignedIn")]
    async fn my_stats(
        &self,
        ctx: &Context<'_>,
        level: Option<LevelValue>,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Vec<LevelStats>> {
        let user = viewer(ctx).require_user()?;
        read_after(ctx, min_position, &[model::NAME]).await?;
        let level = level.map(|l| Level::from(l).as_str());
        let rows = model::stats(&services(ctx).pool, user, level)
            .await
            .map_err(ApiError::from)?;
        Ok(rows.into_iter().map(LevelStats::from).collect())
    }

    /// The question bank, in the order questions were added.
    #[graphql(guard = "AdminOnly", directive = admin::apply())]
    #[allow(clippy::too_many_arguments)]
    async fn questions(
        &self,
        ctx: &Context<'_>,
        level: Option<LevelValue>,
        topic: Option<String>,
        #[graphql(default)] include_retired: bool,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Connection<OpaqueCursor<i64>, QuestionDetails>> {
        let limit = page_size("first", first)?;
        let after = cursor::<OpaqueCursor<i64>>(after)?.map(|c| c.0);
        read_after(ctx, min_position, &[model::NAME]).await?;
        let filter = QuestionFilter {
            level: level.map(|l| Level::from(l).as_str().to_owned()),
            topic,
            include_retired,
        };
        let mut rows = model::questions(&services(ctx).pool, &filter, after, limit + 1)
            .await
            .map_err(ApiError::from)?;
        let has_next = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let mut connection = Connection::new(after.is_some(), has_next);
        connection
            .edges
            .extend(rows.into_iter().map(|row| {
                Edge::new(OpaqueCursor(row.added_position), QuestionDetails::from(row))
            }));
        Ok(connection)
    }

    /// One question of the bank, with its reference answer and key points.
    #[graphql(guard = "AdminOnly", directive = admin::apply())]
    async fn question(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Option<QuestionDetails>> {
        read_after(ctx, min_position, &[model::NAME]).await?;
        let row = model::question(&services(ctx).pool, id)
            .await
            .map_err(ApiError::from)?;
        Ok(row.map(QuestionDetails::from))
    }

    /// Users' statistics at a level (every level when omitted), by user.
    #[graphql(guard = "AdminOnly", directive = admin::apply())]
    async fn user_stats(
        &self,
        ctx: &Context<'_>,
        level: Option<LevelValue>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Connection<OpaqueCursor<(Uuid, String)>, UserStats>> {
        let limit = page_size("first", first)?;
        let after = cursor::<OpaqueCursor<(Uuid, String)>>(after)?.map(|c| c.0);
        // a forged cursor's NUL would be PostgreSQL's error, not a refusal
        if after
            .as_ref()
            .is_some_and(|(_, level)| level.contains('\0'))
        {
            return Err(ApiError::validation("after is not a cursor of this list").into());
        }
        read_after(
            ctx,
            min_position,
            &[model::NAME, projections::accounts::NAME],
        )
        .await?;
        let level = level.map(|l| Level::from(l).as_str());
        let mut rows = model::users_stats(&services(ctx).pool, level, after.clone(), limit + 1)
            .await
            .map_err(ApiError::from)?;
        let has_next = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let mut connection = Connection::new(after.is_some(), has_next);
        connection.edges.extend(rows.into_iter().map(|row| {
            let key = (row.stats.user_id, row.stats.level.clone());
            Edge::new(
                OpaqueCursor(key),
                UserStats {
                    user_id: row.stats.user_id,
                    username: row.username,
                    email: row.email,
                    stats: row.stats.into(),
                },
            )
        }));
        Ok(connection)
    }
}

#[derive(Default)]
pub struct TrainerMutation;

#[Object]
impl TrainerMutation {
    /// Answers a question: the checker grades it now, and the grade is recorded with the answer.
    #[graphql(guard = "SignedIn")]
    async fn answer_question(
        &self,
        ctx: &Context<'_>,
        question_id: Uuid,
        answer: String,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<AnswerResult> {
        let answered = trainer(ctx)
            .answer_question(&request(ctx, command_id), question_id, answer)
            .await
            .map_err(ApiError::from)?;
        let grade = answered.grade;
        Ok(AnswerResult {
            answer_id: answered.answer_id,
            verdict: grade.verdict.into(),
            score: grade.score,
            matched_key_points: grade.matched,
            missing_key_points: grade.missing,
            negated_key_points: grade.negated,
            reference_answer: answered.reference_answer,
            position: answered.position,
        })
    }

    /// Says the verdict on one of your answers was wrong ("I was right"). Recorded for admins; the verdict and
    /// statistics stay as they were.
    #[graphql(guard = "SignedIn")]
    async fn contest_verdict(
        &self,
        ctx: &Context<'_>,
        answer_id: Uuid,
        reason: String,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<MutationResult> {
        let position = trainer(ctx)
            .contest_verdict(&request(ctx, command_id), answer_id, reason)
            .await
            .map_err(ApiError::from)?;
        Ok(MutationResult { position })
    }

    /// Adds a question to the bank.
    #[graphql(guard = "AdminOnly", directive = admin::apply())]
    async fn add_question(
        &self,
        ctx: &Context<'_>,
        input: QuestionInput,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<QuestionPayload> {
        let added = trainer(ctx)
            .add_question(&request(ctx, command_id), input.into())
            .await
            .map_err(ApiError::from)?;
        Ok(QuestionPayload {
            question_id: added.question_id,
            position: added.position,
        })
    }

    /// Replaces a question's content; the previous version stays in the log.
    #[graphql(guard = "AdminOnly", directive = admin::apply())]
    async fn edit_question(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        input: QuestionInput,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<MutationResult> {
        let edited = trainer(ctx)
            .edit_question(&request(ctx, command_id), id, input.into())
            .await
            .map_err(ApiError::from)?;
        Ok(MutationResult {
            position: edited.position,
        })
    }

    /// Takes a question out of practice (it stays in the log and in admins' lists).
    #[graphql(guard = "AdminOnly", directive = admin::apply())]
    async fn retire_question(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<MutationResult> {
        let retired = trainer(ctx)
            .retire_question(&request(ctx, command_id), id)
            .await
            .map_err(ApiError::from)?;
        Ok(MutationResult {
            position: retired.position,
        })
    }
}

fn trainer<'a>(ctx: &Context<'a>) -> &'a Trainer {
    &services(ctx).app.trainer
}
