//! Mock interviews in GraphQL: the board, one's slots and points, and every command of the slot's life.

use async_graphql::connection::{Connection, Edge, OpaqueCursor};
use async_graphql::{Context, Enum, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use commands::Source;
use commands::interviews::{Facts, execute_slot};
use domain::interviews::{
    InterviewError, Role, Slot, SlotCommand, SlotSpec, SlotState, slot_stream,
};
use domain::trainer::Level;
use projections::interviews::{self as model, BoardFilter, SlotRow};
use uuid::Uuid;

use super::accounts::MutationResult;
use super::trainer::LevelValue;
use super::{AdminOnly, SignedIn, admin, cursor, now, page_size, read_after, services, viewer};
use crate::error::ApiError;

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterviewRole {
    Interviewer,
    Interviewee,
}

impl From<InterviewRole> for Role {
    fn from(role: InterviewRole) -> Self {
        match role {
            InterviewRole::Interviewer => Role::Interviewer,
            InterviewRole::Interviewee => Role::Interviewee,
        }
    }
}

fn role_of(raw: &str) -> InterviewRole {
    if raw == "interviewee" {
        InterviewRole::Interviewee
    } else {
        InterviewRole::Interviewer
    }
}

#[derive(InputObject, Debug)]
pub struct PublishSlotInput {
    /// The role you take.
    pub role: InterviewRole,
    pub start: DateTime<Utc>,
    /// 15 to 240.
    pub minutes: i32,
    /// https link of a Google Meet, Zoom or Jitsi meeting.
    pub meeting_link: String,
    pub topic: String,
    pub level: LevelValue,
}

#[derive(SimpleObject, Debug)]
pub struct Feedback {
    pub score: i32,
    pub text: String,
    /// When it is accepted for the interviewee if they do not answer.
    pub accept_by: Option<DateTime<Utc>>,
}

/// A slot as the viewer may see it: the meeting link and the feedback only for its two sides.
#[derive(SimpleObject, Debug)]
pub struct SlotValue {
    pub id: Uuid,
    /// The role the publisher takes (the booker takes the other).
    pub owner_role: InterviewRole,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub minutes: i32,
    pub topic: String,
    pub level: LevelValue,
    /// open, withdrawn, booked, awaiting_feedback, feedback_given, accepted, disputed, no_show or
    /// feedback_expired.
    pub status: String,
    /// Your role in it, when you are one of its sides.
    pub my_role: Option<InterviewRole>,
    pub meeting_link: Option<String>,
    pub feedback: Option<Feedback>,
    /// Until when the interviewer may give feedback.
    pub feedback_due: Option<DateTime<Utc>>,
    /// The side reported absent (after an admin's decision: the side found absent, if any).
    pub no_show_absent: Option<InterviewRole>,
    /// Until when the side reported absent may contest the report.
    pub no_show_contest_by: Option<DateTime<Utc>>,
    /// Why the report is contested (for the two sides and admins).
    pub no_show_contest: Option<String>,
    pub published_at: DateTime<Utc>,
}

impl SlotValue {
    /// The slot as `viewer` sees it; an admin (`privileged`) sees what its two sides see.
    fn of(row: SlotRow, viewer: Uuid) -> Self {
        Self::seen_by(row, viewer, false)
    }

    fn seen_by(row: SlotRow, viewer: Uuid, privileged: bool) -> Self {
        let my_role = if row.interviewer == Some(viewer) {
            Some(InterviewRole::Interviewer)
        } else if row.interviewee == Some(viewer) {
            Some(InterviewRole::Interviewee)
        } else if row.owner == viewer {
            Some(role_of(&row.owner_role))
        } else {
            None
        };
        let party = my_role.is_some() || privileged;
        let no_show_absent = row.no_show_of.and_then(|absent| {
            if Some(absent) == row.interviewer {
                Some(InterviewRole::Interviewer)
            } else if Some(absent) == row.interviewee {
                Some(InterviewRole::Interviewee)
            } else {
                None
            }
        });
        Self {
            id: row.id,
            owner_role: role_of(&row.owner_role),
            start: row.starts_at,
            end: row.ends_at,
            minutes: row.minutes,
            topic: row.topic,
            level: Level::parse(&row.level).map_or(LevelValue::Junior, LevelValue::from),
            status: row.status,
            my_role,
            meeting_link: party.then_some(row.meeting_link),
            feedback: match (party, row.feedback_score, row.feedback_text) {
                (true, Some(score), Some(text)) => Some(Feedback {
                    score,
                    text,
                    accept_by: row.accept_by,
                }),
                _ => None,
            },
            feedback_due: row.feedback_due,
            no_show_absent,
            no_show_contest_by: row.no_show_settle_at,
            no_show_contest: row.no_show_contest.filter(|_| party),
            published_at: row.published_at,
        }
    }
}

#[derive(SimpleObject, Debug)]
pub struct PointsEntry {
    /// granted, held, captured, released or earned.
    pub kind: String,
    pub slot_id: Option<Uuid>,
    pub amount: i64,
    pub balance_change: i64,
    pub held_change: i64,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(SimpleObject, Debug)]
pub struct Points {
    /// Points available.
    pub balance: i64,
    /// Points held for booked interviews (you pay them when the interview is settled).
    pub held: i64,
    pub earned: i64,
    /// The latest entries, newest first.
    pub history: Vec<PointsEntry>,
}

#[derive(SimpleObject, Debug)]
pub struct SlotPayload {
    pub slot_id: Uuid,
    pub position: Option<i64>,
}

#[derive(Default)]
pub struct InterviewsQuery;

#[Object]
impl InterviewsQuery {
    /// Open slots to book, soonest first, without your own.
    #[graphql(guard = "SignedIn")]
    #[allow(clippy::too_many_arguments)]
    async fn board(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The role you want to take.")] role_wanted: Option<InterviewRole>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        level: Option<LevelValue>,
        topic: Option<String>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Connection<OpaqueCursor<(DateTime<Utc>, i64)>, SlotValue>> {
        let user = viewer(ctx).require_user()?;
        let limit = page_size(first)?;
        let after = cursor::<OpaqueCursor<(DateTime<Utc>, i64)>>(after)?.map(|c| c.0);
        read_after(ctx, min_position, &[model::NAME]).await?;
        let filter = BoardFilter {
            owner_role: role_wanted.map(|r| Role::from(r).other().as_str().to_owned()),
            from,
            to,
            level: level.map(|l| Level::from(l).as_str().to_owned()),
            topic,
            exclude_owner: Some(user),
        };
        let mut rows = model::board(&services(ctx).pool, &filter, now(ctx), after, limit + 1)
            .await
            .map_err(ApiError::from)?;
        let has_next = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let mut connection = Connection::new(after.is_some(), has_next);
        connection.edges.extend(rows.into_iter().map(|row| {
            Edge::new(
                OpaqueCursor((row.starts_at, row.published_position)),
                SlotValue::of(row, user),
            )
        }));
        Ok(connection)
    }

    /// The slots you published or booked, soonest first.
    #[graphql(guard = "SignedIn")]
    async fn my_slots(
        &self,
        ctx: &Context<'_>,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Vec<SlotValue>> {
        let user = viewer(ctx).require_user()?;
        read_after(ctx, min_position, &[model::NAME]).await?;
        let rows = model::slots_of(&services(ctx).pool, user)
            .await
            .map_err(ApiError::from)?;
        Ok(rows
            .into_iter()
            .map(|row| SlotValue::of(row, user))
            .collect())
    }

    /// One slot.
    #[graphql(guard = "SignedIn")]
    async fn slot(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Option<SlotValue>> {
        let user = viewer(ctx).require_user()?;
        read_after(ctx, min_position, &[model::NAME]).await?;
        let row = model::slot(&services(ctx).pool, id)
            .await
            .map_err(ApiError::from)?;
        Ok(row.map(|row| SlotValue::of(row, user)))
    }

    /// Interviews whose no-show report is contested, waiting for an admin's decision.
    #[graphql(guard = "AdminOnly", directive = admin::apply())]
    async fn contested_no_shows(
        &self,
        ctx: &Context<'_>,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Vec<SlotValue>> {
        let me = viewer(ctx).require_admin()?;
        read_after(ctx, min_position, &[model::NAME]).await?;
        let rows = model::contested(&services(ctx).pool)
            .await
            .map_err(ApiError::from)?;
        Ok(rows
            .into_iter()
            .map(|row| SlotValue::seen_by(row, me, true))
            .collect())
    }

    /// Your points: available, held, earned, and the latest ledger entries.
    #[graphql(guard = "SignedIn")]
    async fn my_points(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] history: i32,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Points> {
        let user = viewer(ctx).require_user()?;
        let limit = page_size(history)?;
        read_after(ctx, min_position, &[model::NAME]).await?;
        let pool = &services(ctx).pool;
        let balance = model::balance(pool, user).await.map_err(ApiError::from)?;
        let entries = model::entries(pool, user, limit)
            .await
            .map_err(ApiError::from)?;
        Ok(Points {
            balance: balance.balance,
            held: balance.held,
            earned: balance.earned,
            history: entries
                .into_iter()
                .map(|e| PointsEntry {
                    kind: e.kind,
                    slot_id: e.slot_id,
                    amount: e.amount,
                    balance_change: e.balance_change,
                    held_change: e.held_change,
                    reason: e.reason,
                    at: e.at,
                })
                .collect(),
        })
    }
}

#[derive(Default)]
pub struct InterviewsMutation;

#[Object]
impl InterviewsMutation {
    /// Publishes a slot on the board.
    #[graphql(guard = "SignedIn")]
    async fn publish_slot(
        &self,
        ctx: &Context<'_>,
        input: PublishSlotInput,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<SlotPayload> {
        let owner = viewer(ctx).require_user()?;
        let minutes = u32::try_from(input.minutes).unwrap_or(0);
        let spec = SlotSpec::parse(
            input.role.into(),
            input.start.timestamp(),
            minutes,
            &input.meeting_link,
            &input.topic,
            input.level.into(),
        )
        .map_err(ApiError::refusal)?;
        let id = super::command_id(
            ctx,
            command_id,
            "publishSlot",
            &[&spec.start.to_string(), spec.link.as_str(), &spec.topic],
        );
        let slot = Uuid::new_v5(&Uuid::NAMESPACE_OID, id.as_bytes());
        let at = now(ctx).timestamp();
        let position = run(ctx, "PublishSlot", slot, &[owner], id, |facts| {
            Ok(SlotCommand::Publish {
                owner,
                owner_free: facts.calendar(owner).is_free(slot, spec.start, spec.end()),
                owner_balance: facts.ledger(owner).balance,
                spec: spec.clone(),
                at,
            })
        })
        .await?;
        Ok(SlotPayload {
            slot_id: slot,
            position,
        })
    }

    /// Books a slot: you take the role the publisher did not. Booking as interviewee holds 3 of your points.
    #[graphql(guard = "SignedIn")]
    async fn book_slot(
        &self,
        ctx: &Context<'_>,
        slot_id: Uuid,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<MutationResult> {
        let booker = viewer(ctx).require_user()?;
        let slot = load(ctx, slot_id).await?;
        let id = super::command_id(ctx, command_id, "bookSlot", &[&slot_id.to_string()]);
        let at = now(ctx).timestamp();
        let position = run(
            ctx,
            "BookSlot",
            slot_id,
            &[slot.owner, booker],
            id,
            |facts| facts.book(slot_id, booker, at),
        )
        .await?;
        Ok(MutationResult { position })
    }

    /// Withdraws your open slot, or cancels a booked interview (either side, until the cut-off before the start;
    /// the interviewee's points are refunded; a booker cancelling puts the slot back on the board).
    #[graphql(guard = "SignedIn")]
    async fn cancel_slot(
        &self,
        ctx: &Context<'_>,
        slot_id: Uuid,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<MutationResult> {
        let by = viewer(ctx).require_user()?;
        let cutoff = services(ctx).interview_policy.cancel_cutoff;
        let command = SlotCommand::Cancel {
            by,
            cutoff,
            at: now(ctx).timestamp(),
        };
        slot_command(ctx, slot_id, command_id, "cancelSlot", command).await
    }

    /// The interviewer's feedback after the end: a score from 1 to 5 and a text.
    #[graphql(guard = "SignedIn")]
    async fn give_feedback(
        &self,
        ctx: &Context<'_>,
        slot_id: Uuid,
        score: i32,
        text: String,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<MutationResult> {
        let by = viewer(ctx).require_user()?;
        let policy = services(ctx).interview_policy;
        let command = SlotCommand::GiveFeedback {
            by,
            score: u8::try_from(score).unwrap_or(0),
            text,
            feedback_within: policy.feedback_within,
            accept_within: policy.accept_within,
            at: now(ctx).timestamp(),
        };
        slot_command(ctx, slot_id, command_id, "giveFeedback", command).await
    }

    /// The interviewee accepts the feedback: their held points are paid and the interviewer earns 1.
    #[graphql(guard = "SignedIn")]
    async fn accept_feedback(
        &self,
        ctx: &Context<'_>,
        slot_id: Uuid,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<MutationResult> {
        let by = viewer(ctx).require_user()?;
        let command = SlotCommand::Accept {
            by,
            at: now(ctx).timestamp(),
        };
        slot_command(ctx, slot_id, command_id, "acceptFeedback", command).await
    }

    /// The interviewee disputes the feedback (recorded for admins); the points settle as on acceptance.
    #[graphql(guard = "SignedIn")]
    async fn dispute_feedback(
        &self,
        ctx: &Context<'_>,
        slot_id: Uuid,
        reason: String,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<MutationResult> {
        let by = viewer(ctx).require_user()?;
        let command = SlotCommand::Dispute {
            by,
            reason,
            at: now(ctx).timestamp(),
        };
        slot_command(ctx, slot_id, command_id, "disputeFeedback", command).await
    }

    /// Contests a report that you did not show up (within 24 h of the report); an admin then decides.
    #[graphql(guard = "SignedIn")]
    async fn contest_no_show(
        &self,
        ctx: &Context<'_>,
        slot_id: Uuid,
        reason: String,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<MutationResult> {
        let by = viewer(ctx).require_user()?;
        let command = SlotCommand::ContestNoShow {
            by,
            reason,
            at: now(ctx).timestamp(),
        };
        slot_command(ctx, slot_id, command_id, "contestNoShow", command).await
    }

    /// Decides a contested no-show: who was absent (`absent` omitted: the interview took place). The points
    /// settle accordingly.
    #[graphql(guard = "AdminOnly", directive = admin::apply())]
    async fn resolve_no_show(
        &self,
        ctx: &Context<'_>,
        slot_id: Uuid,
        absent: Option<InterviewRole>,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<MutationResult> {
        let by = viewer(ctx).require_admin()?;
        let command = SlotCommand::ResolveNoShow {
            by,
            absent: absent.map(Role::from),
            at: now(ctx).timestamp(),
        };
        slot_command(ctx, slot_id, command_id, "resolveNoShow", command).await
    }

    /// Reports that the other side did not show up (from the start until 24 h after the end). It settles after
    /// 24 h unless the other side contests it.
    #[graphql(guard = "SignedIn")]
    async fn report_no_show(
        &self,
        ctx: &Context<'_>,
        slot_id: Uuid,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<MutationResult> {
        let by = viewer(ctx).require_user()?;
        let command = SlotCommand::ReportNoShow {
            by,
            at: now(ctx).timestamp(),
        };
        slot_command(ctx, slot_id, command_id, "reportNoShow", command).await
    }
}

/// The slot's state from its stream.
async fn load(ctx: &Context<'_>, slot: Uuid) -> Result<SlotState, ApiError> {
    let (state, _) = services(ctx)
        .executor
        .load::<Slot>(&slot_stream(slot))
        .await
        .map_err(ApiError::internal)?;
    state.ok_or_else(|| ApiError::refusal(domain::interviews::InterviewError::NotFound))
}

/// Runs `command` on the slot with its parties and the viewer.
async fn slot_command(
    ctx: &Context<'_>,
    slot_id: Uuid,
    command_id: Option<Uuid>,
    operation: &str,
    command: SlotCommand,
) -> async_graphql::Result<MutationResult> {
    let me = viewer(ctx).require_user()?;
    let slot = load(ctx, slot_id).await?;
    let mut people = slot.parties();
    people.push(me);
    let id = super::command_id(ctx, command_id, operation, &[&slot_id.to_string()]);
    let position = run(ctx, "SlotCommand", slot_id, &people, id, |_| {
        Ok(command.clone())
    })
    .await?;
    Ok(MutationResult { position })
}

async fn run(
    ctx: &Context<'_>,
    label: &'static str,
    slot: Uuid,
    people: &[Uuid],
    command_id: Uuid,
    command: impl Fn(&Facts<'_>) -> Result<SlotCommand, InterviewError>,
) -> Result<Option<i64>, ApiError> {
    let metadata = viewer(ctx).metadata(Source::Graphql, command_id);
    let done = execute_slot(
        &services(ctx).executor,
        label,
        slot,
        people,
        &metadata,
        command,
    )
    .await?;
    Ok(done.written.position())
}
