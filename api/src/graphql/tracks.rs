//! Cohort tracks in GraphQL: the catalogue and one's own tracks, assignments with the one each participant is
//! on, solutions, reviews to give and reviews received (reviewers stay anonymous), diaries; and the commands of
//! participants and admins.
//!
//! Assignments are numbered from 1 here (`number`); the domain counts from 0.

use async_graphql::connection::{Connection, Edge, OpaqueCursor};
use async_graphql::{ComplexObject, Context, Enum, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use commands::tracks::{NewTrack, TrackChanged, TrackResult, Tracks};
use domain::tracks::{AssignmentSpec, Criterion, Score};
use projections::tracks::{self as model, TrackFilter, TrackRow};
use uuid::Uuid;

use super::accounts::MutationResult;
use super::{AdminOnly, SignedIn, admin, cursor, page_size, read_after, request, services, viewer};
use crate::error::ApiError;

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "domain::tracks::TrackStatus")]
pub enum TrackStatus {
    /// Waiting for its minimum of participants.
    Enrolling,
    Running,
    /// Its last assignment has closed.
    Completed,
}

/// How an assignment's reviews were allocated at its close.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "domain::tracks::ReviewMode")]
pub enum ReviewMode {
    /// 4 or more submitters: 3 reviews each way around a shuffled circle.
    Ring,
    /// 2 or 3 submitters: everyone reviews everyone else.
    AllAvailable,
    /// One submitter: nobody to review, reviewed by nobody.
    Alone,
    /// No submissions.
    Nobody,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignmentState {
    NotOpen,
    Open,
    /// Past its deadline: reviews are allocated.
    Closed,
}

/// A review criterion and its range of scores.
#[derive(SimpleObject, InputObject, Debug, Clone)]
#[graphql(name = "Criterion", input_name = "CriterionInput")]
pub struct CriterionValue {
    pub name: String,
    #[graphql(default)]
    pub description: String,
    pub min_score: i32,
    pub max_score: i32,
}

impl From<CriterionValue> for Criterion {
    fn from(c: CriterionValue) -> Self {
        Criterion {
            name: c.name,
            description: c.description,
            min_score: c.min_score,
            max_score: c.max_score,
        }
    }
}

impl From<Criterion> for CriterionValue {
    fn from(c: Criterion) -> Self {
        CriterionValue {
            name: c.name,
            description: c.description,
            min_score: c.min_score,
            max_score: c.max_score,
        }
    }
}

#[derive(InputObject, Debug)]
pub struct AssignmentInput {
    pub title: String,
    #[graphql(default)]
    pub description: String,
    /// Time to complete, from the moment it opens.
    pub hours: i32,
}

#[derive(InputObject, Debug)]
pub struct CreateTrackInput {
    pub title: String,
    #[graphql(default)]
    pub description: String,
    /// The track starts by itself when this many have enrolled.
    pub min_participants: i32,
    pub max_participants: Option<i32>,
    pub criteria: Vec<CriterionValue>,
    /// In the order they open.
    pub assignments: Vec<AssignmentInput>,
}

impl From<CreateTrackInput> for NewTrack {
    fn from(input: CreateTrackInput) -> Self {
        let count = |n: i32| u32::try_from(n).unwrap_or(0);
        Self {
            title: input.title,
            description: input.description,
            min_participants: count(input.min_participants),
            max_participants: input.max_participants.map(count),
            criteria: input.criteria.into_iter().map(Criterion::from).collect(),
            assignments: input
                .assignments
                .into_iter()
                .map(|a| AssignmentSpec {
                    title: a.title,
                    description: a.description,
                    hours: count(a.hours),
                })
                .collect(),
        }
    }
}

/// A track of the catalogue.
#[derive(SimpleObject, Debug)]
#[graphql(complex)]
pub struct Track {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub min_participants: i32,
    pub max_participants: Option<i32>,
    pub criteria: Vec<CriterionValue>,
    pub participant_count: i32,
    pub assignment_count: i32,
    pub status: TrackStatus,
    /// The number of the assignment open now (or the last one, once completed); null before the start.
    pub open_assignment: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl From<TrackRow> for Track {
    fn from(row: TrackRow) -> Self {
        Self {
            id: row.id,
            title: row.title,
            description: row.description,
            min_participants: row.min_participants,
            max_participants: row.max_participants,
            criteria: row
                .criteria
                .0
                .into_iter()
                .map(CriterionValue::from)
                .collect(),
            participant_count: row.participants,
            assignment_count: row.assignment_count,
            status: row.status.into(),
            open_assignment: row.open_assignment.map(|i| i + 1),
            created_at: row.created_at,
            started_at: row.started_at,
            completed_at: row.completed_at,
        }
    }
}

#[ComplexObject]
impl Track {
    /// Every assignment, in order, with its window once opened.
    async fn assignments(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Assignment>> {
        let rows = model::assignments(&services(ctx).pool, self.id)
            .await
            .map_err(ApiError::from)?;
        Ok(rows.into_iter().map(Assignment::from).collect())
    }

    /// Your place in this track (null when you are not enrolled).
    #[graphql(guard = "SignedIn")]
    async fn my_participation(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<Participation>> {
        let user = viewer(ctx).require_user()?;
        let row = model::participant(&services(ctx).pool, self.id, user)
            .await
            .map_err(ApiError::from)?;
        Ok(row.map(Participation::from))
    }

    /// Everyone enrolled, with the assignment each is on. Admins only.
    #[graphql(guard = "AdminOnly", directive = admin::apply())]
    async fn participants(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Participation>> {
        let rows = model::participants(&services(ctx).pool, self.id)
            .await
            .map_err(ApiError::from)?;
        Ok(rows.into_iter().map(Participation::from).collect())
    }
}

#[derive(SimpleObject, Debug)]
pub struct Assignment {
    /// 1 for the first assignment.
    pub number: i32,
    pub title: String,
    pub description: String,
    pub hours: i32,
    pub state: AssignmentState,
    pub opened_at: Option<DateTime<Utc>>,
    pub deadline: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// How reviews were allocated at the close; null before it.
    pub review_mode: Option<ReviewMode>,
}

impl From<model::AssignmentRow> for Assignment {
    fn from(row: model::AssignmentRow) -> Self {
        let state = match (row.opened_at, row.closed_at) {
            (_, Some(_)) => AssignmentState::Closed,
            (Some(_), None) => AssignmentState::Open,
            (None, None) => AssignmentState::NotOpen,
        };
        Self {
            number: row.index + 1,
            title: row.title,
            description: row.description,
            hours: row.hours,
            state,
            opened_at: row.opened_at,
            deadline: row.deadline,
            closed_at: row.closed_at,
            review_mode: row.review_mode.map(ReviewMode::from),
        }
    }
}

/// A participant in a track.
#[derive(SimpleObject, Debug)]
pub struct Participation {
    pub user_id: Uuid,
    pub username: Option<String>,
    pub enrolled_at: DateTime<Utc>,
    /// The number of the assignment they work on now: the latest open to them (the next one opens to them once
    /// they completed their reviews of the previous one). Null before the start.
    pub current_assignment: Option<i32>,
}

impl From<model::ParticipantRow> for Participation {
    fn from(row: model::ParticipantRow) -> Self {
        Self {
            user_id: row.user_id,
            username: row.username,
            enrolled_at: row.enrolled_at,
            current_assignment: row.current_assignment.map(|i| i + 1),
        }
    }
}

#[derive(SimpleObject, Debug)]
pub struct Submission {
    pub submission_id: Uuid,
    pub track_id: Uuid,
    pub assignment: i32,
    pub user_id: Uuid,
    /// Normalised repository link.
    pub repository: String,
    pub submitted_at: DateTime<Utc>,
    /// How many times the link was replaced before the deadline.
    pub replaced: i32,
}

impl From<model::SubmissionRow> for Submission {
    fn from(row: model::SubmissionRow) -> Self {
        Self {
            submission_id: row.submission_id,
            track_id: row.track_id,
            assignment: row.assignment + 1,
            user_id: row.user_id,
            repository: row.repository,
            submitted_at: row.submitted_at,
            replaced: row.replaced,
        }
    }
}

/// A solution you were allocated to review (its author is not named).
#[derive(SimpleObject, Debug)]
pub struct ReviewTask {
    pub submission_id: Uuid,
    pub track_id: Uuid,
    pub track_title: String,
    pub assignment: i32,
    pub assignment_title: String,
    pub repository: String,
    pub done: bool,
    pub reviewed_at: Option<DateTime<Utc>>,
}

#[derive(SimpleObject, InputObject, Debug, Clone)]
#[graphql(name = "Score", input_name = "ScoreInput")]
pub struct ScoreValue {
    pub criterion: String,
    pub score: i32,
}

/// A review of your solution; who wrote it is not shown.
#[derive(SimpleObject, Debug)]
pub struct ReceivedReview {
    pub assignment: i32,
    pub scores: Vec<ScoreValue>,
    pub comment: Option<String>,
    pub submitted_at: DateTime<Utc>,
}

#[derive(SimpleObject, Debug)]
pub struct DiaryEntry {
    pub id: Uuid,
    pub track_id: Uuid,
    pub user_id: Uuid,
    pub assignment: i32,
    pub text: String,
    pub written_at: DateTime<Utc>,
}

#[derive(SimpleObject, Debug)]
pub struct TrackPayload {
    pub track_id: Uuid,
    pub position: Option<i64>,
}

#[derive(SimpleObject, Debug)]
pub struct EnrollPayload {
    /// Whether this enrollment reached the minimum and started the track.
    pub started: bool,
    pub position: Option<i64>,
}

#[derive(SimpleObject, Debug)]
pub struct SubmissionPayload {
    pub submission_id: Uuid,
    /// The link as stored (normalised).
    pub repository: String,
    pub position: Option<i64>,
}

#[derive(SimpleObject, Debug)]
pub struct DiaryPayload {
    pub entry_id: Uuid,
    pub position: Option<i64>,
}

/// An assignment number from the API as the domain's 0-based index.
fn index_of(number: i32) -> Result<u32, ApiError> {
    u32::try_from(number)
        .ok()
        .filter(|n| *n >= 1)
        .map(|n| n - 1)
        .ok_or_else(|| ApiError::validation("assignments are numbered from 1"))
}

#[derive(Default)]
pub struct TracksQuery;

#[Object]
impl TracksQuery {
    /// The catalogue of tracks, oldest first.
    async fn tracks(
        &self,
        ctx: &Context<'_>,
        status: Option<TrackStatus>,
        #[graphql(desc = "Words in the title or description.")] search: Option<String>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Connection<OpaqueCursor<i64>, Track>> {
        let filter = TrackFilter {
            status: status.map(domain::tracks::TrackStatus::from),
            search,
            participant: None,
        };
        track_page(ctx, filter, first, after, min_position).await
    }

    /// One track.
    async fn track(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Option<Track>> {
        read_after(ctx, min_position, &[model::NAME]).await?;
        let row = model::track(&services(ctx).pool, id)
            .await
            .map_err(ApiError::from)?;
        Ok(row.map(Track::from))
    }

    /// The tracks you are enrolled in.
    #[graphql(guard = "SignedIn")]
    async fn my_tracks(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Connection<OpaqueCursor<i64>, Track>> {
        let filter = TrackFilter {
            participant: Some(viewer(ctx).require_user()?),
            ..TrackFilter::default()
        };
        track_page(ctx, filter, first, after, min_position).await
    }

    /// Your solutions in a track.
    #[graphql(guard = "SignedIn")]
    async fn my_submissions(
        &self,
        ctx: &Context<'_>,
        track_id: Uuid,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Vec<Submission>> {
        let user = viewer(ctx).require_user()?;
        read_after(ctx, min_position, &[model::NAME]).await?;
        let rows = model::submissions(&services(ctx).pool, track_id, None, Some(user))
            .await
            .map_err(ApiError::from)?;
        Ok(rows.into_iter().map(Submission::from).collect())
    }

    /// Every solution in a track (to one assignment when given).
    #[graphql(guard = "AdminOnly", directive = admin::apply())]
    async fn submissions(
        &self,
        ctx: &Context<'_>,
        track_id: Uuid,
        assignment: Option<i32>,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Vec<Submission>> {
        let index = assignment.map(index_of).transpose()?.map(|i| i as i32);
        read_after(ctx, min_position, &[model::NAME]).await?;
        let rows = model::submissions(&services(ctx).pool, track_id, index, None)
            .await
            .map_err(ApiError::from)?;
        Ok(rows.into_iter().map(Submission::from).collect())
    }

    /// The solutions you were allocated to review (in one track when given), pending ones first.
    #[graphql(guard = "SignedIn")]
    async fn reviews_to_do(
        &self,
        ctx: &Context<'_>,
        track_id: Option<Uuid>,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Vec<ReviewTask>> {
        let user = viewer(ctx).require_user()?;
        read_after(ctx, min_position, &[model::NAME]).await?;
        let rows = model::review_tasks(&services(ctx).pool, user, track_id)
            .await
            .map_err(ApiError::from)?;
        Ok(rows
            .into_iter()
            .map(|row| ReviewTask {
                submission_id: row.submission_id,
                track_id: row.track_id,
                track_title: row.track_title,
                assignment: row.assignment + 1,
                assignment_title: row.assignment_title,
                repository: row.repository,
                done: row.reviewed_at.is_some(),
                reviewed_at: row.reviewed_at,
            })
            .collect())
    }

    /// Reviews of your solutions in a track (to one assignment when given). Reviewers are not named.
    #[graphql(guard = "SignedIn")]
    async fn reviews_received(
        &self,
        ctx: &Context<'_>,
        track_id: Uuid,
        assignment: Option<i32>,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Vec<ReceivedReview>> {
        let user = viewer(ctx).require_user()?;
        let index = assignment.map(index_of).transpose()?.map(|i| i as i32);
        read_after(ctx, min_position, &[model::NAME]).await?;
        let rows = model::reviews_received(&services(ctx).pool, user, track_id, index)
            .await
            .map_err(ApiError::from)?;
        Ok(rows
            .into_iter()
            .map(|row| ReceivedReview {
                assignment: row.assignment + 1,
                scores: row
                    .scores
                    .0
                    .into_iter()
                    .map(|s| ScoreValue {
                        criterion: s.criterion,
                        score: s.score,
                    })
                    .collect(),
                comment: row.comment,
                submitted_at: row.submitted_at,
            })
            .collect())
    }

    /// A diary in a track: yours, or (admins only) a participant's.
    #[graphql(guard = "SignedIn")]
    async fn diary(
        &self,
        ctx: &Context<'_>,
        track_id: Uuid,
        user_id: Option<Uuid>,
        assignment: Option<i32>,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Vec<DiaryEntry>> {
        let viewer = viewer(ctx);
        let me = viewer.require_user()?;
        let whose = match user_id {
            Some(other) if other != me => {
                viewer.require_admin()?;
                other
            }
            _ => me,
        };
        let index = assignment.map(index_of).transpose()?.map(|i| i as i32);
        read_after(ctx, min_position, &[model::NAME]).await?;
        let rows = model::diary(&services(ctx).pool, track_id, whose, index)
            .await
            .map_err(ApiError::from)?;
        Ok(rows
            .into_iter()
            .map(|row| DiaryEntry {
                id: row.entry_id,
                track_id: row.track_id,
                user_id: row.user_id,
                assignment: row.assignment + 1,
                text: row.text,
                written_at: row.written_at,
            })
            .collect())
    }
}

async fn track_page(
    ctx: &Context<'_>,
    filter: TrackFilter,
    first: i32,
    after: Option<String>,
    min_position: Option<i64>,
) -> async_graphql::Result<Connection<OpaqueCursor<i64>, Track>> {
    let limit = page_size("first", first)?;
    let after = cursor::<OpaqueCursor<i64>>(after)?.map(|c| c.0);
    read_after(ctx, min_position, &[model::NAME]).await?;
    let mut rows = model::tracks(&services(ctx).pool, &filter, after, limit + 1)
        .await
        .map_err(ApiError::from)?;
    let has_next = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let mut connection = Connection::new(after.is_some(), has_next);
    connection.edges.extend(
        rows.into_iter()
            .map(|row| Edge::new(OpaqueCursor(row.created_position), Track::from(row))),
    );
    Ok(connection)
}

#[derive(Default)]
pub struct TracksMutation;

#[Object]
impl TracksMutation {
    /// Creates a track. It starts by itself when `minParticipants` have enrolled.
    #[graphql(guard = "AdminOnly", directive = admin::apply())]
    async fn create_track(
        &self,
        ctx: &Context<'_>,
        input: CreateTrackInput,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<TrackPayload> {
        let created = tracks(ctx)
            .create_track(&request(ctx, command_id), input.into())
            .await
            .map_err(ApiError::from)?;
        Ok(TrackPayload {
            track_id: created.track_id,
            position: created.position,
        })
    }

    /// Replaces a track's review criteria; only before it starts.
    #[graphql(guard = "AdminOnly", directive = admin::apply())]
    async fn revise_criteria(
        &self,
        ctx: &Context<'_>,
        track_id: Uuid,
        criteria: Vec<CriterionValue>,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<MutationResult> {
        let criteria = criteria.into_iter().map(Criterion::from).collect();
        let changed = tracks(ctx)
            .revise_criteria(&request(ctx, command_id), track_id, criteria)
            .await;
        done(changed)
    }

    /// Moves the open assignment's deadline later. The 80 % reminder and the close follow the new deadline.
    #[graphql(guard = "AdminOnly", directive = admin::apply())]
    async fn extend_deadline(
        &self,
        ctx: &Context<'_>,
        track_id: Uuid,
        assignment: i32,
        deadline: DateTime<Utc>,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<MutationResult> {
        let index = index_of(assignment)?;
        let changed = tracks(ctx)
            .extend_deadline(&request(ctx, command_id), track_id, index, deadline.into())
            .await;
        done(changed)
    }

    /// Enrolls you in a track. The enrollment that reaches the minimum starts it.
    #[graphql(guard = "SignedIn")]
    async fn enroll(
        &self,
        ctx: &Context<'_>,
        track_id: Uuid,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<EnrollPayload> {
        let changed = tracks(ctx)
            .enroll(&request(ctx, command_id), track_id)
            .await
            .map_err(ApiError::from)?;
        Ok(EnrollPayload {
            started: changed.started,
            position: changed.position,
        })
    }

    /// Leaves a track; only before it starts.
    #[graphql(guard = "SignedIn")]
    async fn leave_track(
        &self,
        ctx: &Context<'_>,
        track_id: Uuid,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<MutationResult> {
        let changed = tracks(ctx)
            .leave_track(&request(ctx, command_id), track_id)
            .await;
        done(changed)
    }

    /// Submits (or, before the deadline, replaces) your solution: a link to a repository on a git host.
    #[graphql(guard = "SignedIn")]
    async fn submit_solution(
        &self,
        ctx: &Context<'_>,
        track_id: Uuid,
        assignment: i32,
        repository: String,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<SubmissionPayload> {
        let index = index_of(assignment)?;
        let submitted = tracks(ctx)
            .submit_solution(&request(ctx, command_id), track_id, index, &repository)
            .await
            .map_err(ApiError::from)?;
        Ok(SubmissionPayload {
            submission_id: submitted.submission_id,
            repository: submitted.repository.to_string(),
            position: submitted.position,
        })
    }

    /// Reviews a solution you were allocated: a score for every criterion of the track, and a comment.
    #[graphql(guard = "SignedIn")]
    async fn submit_review(
        &self,
        ctx: &Context<'_>,
        track_id: Uuid,
        submission_id: Uuid,
        scores: Vec<ScoreValue>,
        comment: Option<String>,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<MutationResult> {
        let scores = scores
            .into_iter()
            .map(|s| Score {
                criterion: s.criterion,
                score: s.score,
            })
            .collect();
        let changed = tracks(ctx)
            .submit_review(
                &request(ctx, command_id),
                track_id,
                submission_id,
                scores,
                comment,
            )
            .await;
        done(changed)
    }

    /// Writes in your diary under an assignment that has opened.
    #[graphql(guard = "SignedIn")]
    async fn write_diary_entry(
        &self,
        ctx: &Context<'_>,
        track_id: Uuid,
        assignment: i32,
        text: String,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<DiaryPayload> {
        let index = index_of(assignment)?;
        let written = tracks(ctx)
            .write_diary_entry(&request(ctx, command_id), track_id, index, text)
            .await
            .map_err(ApiError::from)?;
        Ok(DiaryPayload {
            entry_id: written.entry_id,
            position: written.position,
        })
    }
}

fn tracks<'a>(ctx: &Context<'a>) -> &'a Tracks {
    &services(ctx).app.tracks
}

fn done(changed: TrackResult<TrackChanged>) -> async_graphql::Result<MutationResult> {
    let changed = changed.map_err(ApiError::from)?;
    Ok(MutationResult {
        position: changed.position,
    })
}
