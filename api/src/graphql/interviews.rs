//! Mock interviews in GraphQL: the board, one's slots and points, and every command of the slot's life.

use async_graphql::connection::{Connection, Edge, OpaqueCursor};
use async_graphql::{Context, Enum, InputObject, Object, SimpleObject};
use chrono::{DateTime, Datelike, Utc};
use commands::interviews::{InterviewResult, Interviews, PublishSlot, SlotChanged};
use domain::interviews::Role;
use projections::interviews::{self as model, BoardFilter, SlotRow};
use uuid::Uuid;

use super::accounts::MutationResult;
use super::trainer::LevelValue;
use super::{
    AdminOnly, SignedIn, admin, cursor, now, page_size, read_after, request, services, viewer,
};
use crate::error::ApiError;

/// Whether the board may compare slots' times with `time`: PostgreSQL holds no time before 4713 BC (a bound
/// there is its error, not a refusal), and no slot is outside the years 1 to 9999.
fn comparable(time: DateTime<Utc>) -> bool {
    (1..=9999).contains(&time.year())
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "domain::interviews::Role")]
pub enum InterviewRole {
    Interviewer,
    Interviewee,
}

/// Where a slot is in its life.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "domain::interviews::SlotStatus")]
pub enum SlotStatus {
    /// On the board.
    Open,
    /// Its publisher took it off the board (or cancelled its booking).
    Withdrawn,
    /// Booked, not over yet.
    Booked,
    /// Over: the interviewer's feedback is due.
    AwaitingFeedback,
    /// The interviewee may accept or dispute the feedback.
    FeedbackGiven,
    /// The interviewee accepted the feedback (or did not answer it in time).
    Accepted,
    /// The interviewee disputed the feedback.
    Disputed,
    /// Reported absent; settles unless contested in time.
    NoShowReported,
    /// The report is contested; an admin decides.
    NoShowContested,
    /// A no-show report settled (confirmed or resolved).
    NoShow,
    /// No feedback came in its window: the interviewee's points were refunded.
    FeedbackExpired,
}

/// The kind of a points ledger entry.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "domain::interviews::PointsEntryKind")]
pub enum PointsEntryKind {
    /// Points granted, with a reason (the sign-up points).
    Granted,
    /// Points held for a booked interview.
    Held,
    /// Held points paid: the interview took place, or the interviewee did not show up.
    Captured,
    /// Held points refunded.
    Released,
    /// A point earned as interviewer.
    Earned,
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
pub struct Slot {
    pub id: Uuid,
    /// The role the publisher takes (the booker takes the other).
    pub owner_role: InterviewRole,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub minutes: i32,
    pub topic: String,
    pub level: LevelValue,
    pub status: SlotStatus,
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

impl Slot {
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
            Some(row.owner_role.into())
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
            owner_role: row.owner_role.into(),
            start: row.starts_at,
            end: row.ends_at,
            minutes: row.minutes,
            topic: row.topic,
            level: row.level.into(),
            status: row.status.into(),
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
            no_show_contest_by: row.no_show_contest_by,
            no_show_contest: row.no_show_contest.filter(|_| party),
            published_at: row.published_at,
        }
    }
}

#[derive(SimpleObject, Debug)]
pub struct PointsEntry {
    pub kind: PointsEntryKind,
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
    ) -> async_graphql::Result<Connection<OpaqueCursor<(DateTime<Utc>, i64)>, Slot>> {
        let user = viewer(ctx).require_user()?;
        let limit = page_size("first", first)?;
        let after = cursor::<OpaqueCursor<(DateTime<Utc>, i64)>>(after)?.map(|c| c.0);
        if after.is_some_and(|(time, _)| !comparable(time)) {
            return Err(ApiError::validation("after is not a cursor of this list").into());
        }
        for (name, bound) in [("from", from), ("to", to)] {
            if bound.is_some_and(|time| !comparable(time)) {
                return Err(ApiError::validation(format!(
                    "{name} must be a time between the years 1 and 9999"
                ))
                .into());
            }
        }
        read_after(ctx, min_position, &[model::NAME]).await?;
        let filter = BoardFilter {
            owner_role: role_wanted.map(|r| Role::from(r).other()),
            from,
            to,
            level: level.map(Into::into),
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
                Slot::of(row, user),
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
    ) -> async_graphql::Result<Vec<Slot>> {
        let user = viewer(ctx).require_user()?;
        read_after(ctx, min_position, &[model::NAME]).await?;
        let rows = model::slots_of(&services(ctx).pool, user)
            .await
            .map_err(ApiError::from)?;
        Ok(rows.into_iter().map(|row| Slot::of(row, user)).collect())
    }

    /// One slot.
    #[graphql(guard = "SignedIn")]
    async fn slot(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Option<Slot>> {
        let user = viewer(ctx).require_user()?;
        read_after(ctx, min_position, &[model::NAME]).await?;
        let row = model::slot(&services(ctx).pool, id)
            .await
            .map_err(ApiError::from)?;
        Ok(row.map(|row| Slot::of(row, user)))
    }

    /// Interviews whose no-show report is contested, waiting for an admin's decision.
    #[graphql(guard = "AdminOnly", directive = admin::apply())]
    async fn contested_no_shows(
        &self,
        ctx: &Context<'_>,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Vec<Slot>> {
        let me = viewer(ctx).require_admin()?;
        read_after(ctx, min_position, &[model::NAME]).await?;
        let rows = model::contested(&services(ctx).pool)
            .await
            .map_err(ApiError::from)?;
        Ok(rows
            .into_iter()
            .map(|row| Slot::seen_by(row, me, true))
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
        let limit = page_size("history", history)?;
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
                    kind: e.kind.into(),
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
        let input = PublishSlot {
            role: input.role.into(),
            start: input.start.into(),
            minutes: u32::try_from(input.minutes).unwrap_or(0),
            meeting_link: input.meeting_link,
            topic: input.topic,
            level: input.level.into(),
        };
        let published = interviews(ctx)
            .publish_slot(&request(ctx, command_id), input)
            .await
            .map_err(ApiError::from)?;
        Ok(SlotPayload {
            slot_id: published.slot_id,
            position: published.position,
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
        let changed = interviews(ctx)
            .book_slot(&request(ctx, command_id), slot_id)
            .await;
        done(changed)
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
        let changed = interviews(ctx)
            .cancel_slot(&request(ctx, command_id), slot_id)
            .await;
        done(changed)
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
        let changed = interviews(ctx)
            .give_feedback(&request(ctx, command_id), slot_id, score, text)
            .await;
        done(changed)
    }

    /// The interviewee accepts the feedback: their held points are paid and the interviewer earns 1.
    #[graphql(guard = "SignedIn")]
    async fn accept_feedback(
        &self,
        ctx: &Context<'_>,
        slot_id: Uuid,
        command_id: Option<Uuid>,
    ) -> async_graphql::Result<MutationResult> {
        let changed = interviews(ctx)
            .accept_feedback(&request(ctx, command_id), slot_id)
            .await;
        done(changed)
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
        let changed = interviews(ctx)
            .dispute_feedback(&request(ctx, command_id), slot_id, reason)
            .await;
        done(changed)
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
        let changed = interviews(ctx)
            .contest_no_show(&request(ctx, command_id), slot_id, reason)
            .await;
        done(changed)
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
        let changed = interviews(ctx)
            .resolve_no_show(&request(ctx, command_id), slot_id, absent.map(Role::from))
            .await;
        done(changed)
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
        let changed = interviews(ctx)
            .report_no_show(&request(ctx, command_id), slot_id)
            .await;
        done(changed)
    }
}

fn interviews<'a>(ctx: &Context<'a>) -> &'a Interviews {
    &services(ctx).app.interviews
}

fn done(changed: InterviewResult<SlotChanged>) -> async_graphql::Result<MutationResult> {
    let changed = changed.map_err(ApiError::from)?;
    Ok(MutationResult {
        position: changed.position,
    })
}

#[cfg(test)]
mod tests {
    use async_graphql::EnumType;

    use super::{InterviewRole, PointsEntryKind, SlotStatus};

    /// A mirror converts exhaustively both ways, so it has exactly the domain enum's variants: as many items as
    /// the domain's `ALL` lists means `ALL` (and so `parse`) misses none.
    #[test]
    fn the_domain_lists_every_variant_the_schema_shows() {
        assert_eq!(
            <SlotStatus as EnumType>::items().len(),
            domain::interviews::SlotStatus::ALL.len()
        );
        assert_eq!(
            <PointsEntryKind as EnumType>::items().len(),
            domain::interviews::PointsEntryKind::ALL.len()
        );
        assert_eq!(
            <InterviewRole as EnumType>::items().len(),
            domain::interviews::Role::ALL.len()
        );
    }
}
