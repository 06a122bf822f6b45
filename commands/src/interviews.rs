//! Mock interviews' use cases: publishing, booking, cancelling, feedback, no-shows, and the timers the deadline
//! worker fires.
//!
//! Every slot command is one [`SlotDecision`]: it reads the slot, then the calendars and ledgers of the slot's
//! sides and of whoever acts, decides the slot command on facts read from them, lets the calendar and ledger
//! deciders decide each slot event's effects, and appends everything at once (each stream at the version it was
//! read at).

use async_trait::async_trait;
use domain::interviews::{
    Calendar, CalendarState, Effect, InterviewError, Ledger, LedgerCommand, LedgerState, Policy,
    Role, Slot, SlotCommand, SlotEvent, SlotSpec, SlotState, SlotTimer, calendar_stream, effects,
    points_stream, slot_stream,
};
use domain::trainer::Level;
use domain::{Decider, StreamId, Timestamp};
use uuid::Uuid;

use crate::timers::{self, Fired, FiredTimer, FiresTimers, TimerError};
use crate::{
    CommandError, CommandExecutor, Decided, Decision, Loaded, NewEvent, Request, new_events,
};

/// Namespace of the ids of commands the service derives itself (the deadline worker's timers, signup grants).
const TIMER_NAMESPACE: Uuid = Uuid::from_u128(0x3f9a_0c61_d2b4_4e57_8c1d_a96e_24f0_b718);

pub type InterviewResult<T> = Result<T, CommandError<InterviewError>>;

/// The mock-interview service.
#[derive(Debug, Clone)]
pub struct Interviews {
    executor: CommandExecutor,
    policy: Policy,
    /// Points every new account starts with.
    signup_points: i64,
}

/// A slot to publish, as a client sends it.
#[derive(Debug, Clone)]
pub struct PublishSlot {
    /// The role the publisher takes.
    pub role: Role,
    pub start: Timestamp,
    pub minutes: u32,
    pub meeting_link: String,
    pub topic: String,
    pub level: Level,
}

/// A published slot.
#[derive(Debug, Clone, Copy)]
pub struct Published {
    pub slot_id: Uuid,
    pub position: Option<i64>,
}

/// What a slot command did.
#[derive(Debug, Clone)]
pub struct SlotChanged {
    /// The log position to wait for (`None`: nothing was written).
    pub position: Option<i64>,
    /// The slot events this execution appended (empty when it changed nothing, or repeated a command id).
    pub events: Vec<SlotEvent>,
}

impl Interviews {
    pub fn new(executor: CommandExecutor, policy: Policy) -> Self {
        Self {
            executor,
            policy,
            signup_points: 0,
        }
    }

    /// Points every new account starts with (none by default).
    pub fn signup_points(mut self, points: i64) -> Self {
        self.signup_points = points;
        self
    }

    /// Grants a newly registered `account` the signup points, once: the command id derives from the account.
    pub async fn grant_signup_points(
        &self,
        request: &Request,
        account: Uuid,
    ) -> InterviewResult<Option<i64>> {
        if self.signup_points <= 0 {
            return Ok(None);
        }
        let command = LedgerCommand::Grant {
            amount: self.signup_points,
            reason: "signup".to_owned(),
            at: request.at,
        };
        let id = Uuid::new_v5(&TIMER_NAMESPACE, format!("signup\u{0}{account}").as_bytes());
        let executed = self
            .executor
            .execute::<Ledger>(
                &points_stream(account),
                &command,
                &request.metadata_with_id(id),
            )
            .await
            .map_err(|error| error.map_rule(InterviewError::from))?;
        Ok(executed.position())
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Publishes a slot on the board. The slot id derives from the command id, so a retry names the same slot.
    pub async fn publish_slot(
        &self,
        request: &Request,
        input: PublishSlot,
    ) -> InterviewResult<Published> {
        let owner = request.user()?;
        let spec = SlotSpec::parse(
            input.role,
            input.start,
            input.minutes,
            &input.meeting_link,
            &input.topic,
            input.level,
        )
        .map_err(CommandError::Rejected)?;
        // the start as Unix seconds, as command ids (and so slot ids) have always named it
        let command_id = request.command_id(
            "publishSlot",
            &[
                &spec.start.unix_seconds().to_string(),
                spec.link.as_str(),
                &spec.topic,
            ],
        );
        let slot = Uuid::new_v5(&Uuid::NAMESPACE_OID, command_id.as_bytes());
        let at = request.at;
        let decision = SlotDecision::new("PublishSlot", slot, Some(owner), |facts| {
            Ok(SlotCommand::Publish {
                owner,
                owner_free: facts.calendar(owner).is_free(slot, spec.start, spec.end()),
                owner_balance: facts.ledger(owner).balance,
                spec: spec.clone(),
                at,
            })
        });
        let metadata = request.metadata_with_id(command_id);
        let decided = self.executor.decide(&decision, &metadata).await?;
        Ok(Published {
            slot_id: slot,
            position: decided.position(),
        })
    }

    /// Books a slot: the booker takes the role the publisher did not; an interviewee's points are held.
    pub async fn book_slot(&self, request: &Request, slot: Uuid) -> InterviewResult<SlotChanged> {
        let booker = request.user()?;
        let at = request.at;
        let decision = SlotDecision::new("BookSlot", slot, Some(booker), |facts| {
            facts.book(slot, booker, at)
        });
        self.run(request, "bookSlot", slot, decision).await
    }

    /// Withdraws an open slot, or cancels a booked interview until the cut-off before its start.
    pub async fn cancel_slot(&self, request: &Request, slot: Uuid) -> InterviewResult<SlotChanged> {
        let command = SlotCommand::Cancel {
            by: request.user()?,
            cutoff: self.policy.cancel_cutoff,
            at: request.at,
        };
        self.command(request, "cancelSlot", slot, command).await
    }

    /// The interviewer's feedback after the end: a score from 1 to 5 and a text.
    pub async fn give_feedback(
        &self,
        request: &Request,
        slot: Uuid,
        score: i32,
        text: String,
    ) -> InterviewResult<SlotChanged> {
        let command = SlotCommand::GiveFeedback {
            by: request.user()?,
            score: u8::try_from(score).unwrap_or(0),
            text,
            feedback_within: self.policy.feedback_within,
            accept_within: self.policy.accept_within,
            at: request.at,
        };
        self.command(request, "giveFeedback", slot, command).await
    }

    /// The interviewee accepts the feedback.
    pub async fn accept_feedback(
        &self,
        request: &Request,
        slot: Uuid,
    ) -> InterviewResult<SlotChanged> {
        let command = SlotCommand::Accept {
            by: request.user()?,
            at: request.at,
        };
        self.command(request, "acceptFeedback", slot, command).await
    }

    /// The interviewee disputes the feedback (recorded for admins; the points settle as on acceptance).
    pub async fn dispute_feedback(
        &self,
        request: &Request,
        slot: Uuid,
        reason: String,
    ) -> InterviewResult<SlotChanged> {
        let command = SlotCommand::Dispute {
            by: request.user()?,
            reason,
            at: request.at,
        };
        self.command(request, "disputeFeedback", slot, command)
            .await
    }

    /// Reports that the other side did not show up.
    pub async fn report_no_show(
        &self,
        request: &Request,
        slot: Uuid,
    ) -> InterviewResult<SlotChanged> {
        let command = SlotCommand::ReportNoShow {
            by: request.user()?,
            at: request.at,
        };
        self.command(request, "reportNoShow", slot, command).await
    }

    /// The side reported absent contests the report; an admin then decides.
    pub async fn contest_no_show(
        &self,
        request: &Request,
        slot: Uuid,
        reason: String,
    ) -> InterviewResult<SlotChanged> {
        let command = SlotCommand::ContestNoShow {
            by: request.user()?,
            reason,
            at: request.at,
        };
        self.command(request, "contestNoShow", slot, command).await
    }

    /// An admin decides a contested no-show: who was absent (`None`: the interview took place).
    pub async fn resolve_no_show(
        &self,
        request: &Request,
        slot: Uuid,
        absent: Option<Role>,
    ) -> InterviewResult<SlotChanged> {
        let command = SlotCommand::ResolveNoShow {
            by: request.admin()?,
            absent,
            at: request.at,
        };
        self.command(request, "resolveNoShow", slot, command).await
    }

    /// Fires `timer` of slot `slot` for the booking the slot is at (the deadline worker). Its command id names
    /// the slot, the booking and the timer, so a retry, a restart or a second worker never fires it twice; a
    /// timer no longer due (the read model was behind) or already done is [`Fired::Skipped`].
    pub async fn fire_timer(
        &self,
        request: &Request,
        slot: Uuid,
        SlotTimer { booking, timer }: SlotTimer,
    ) -> InterviewResult<Fired> {
        let at = request.at;
        let command = timer.command(&self.policy, at);
        let decision = SlotDecision::new("SlotTimer", slot, None, move |facts| {
            facts.slot.as_ref().ok_or(InterviewError::NotFound)?;
            Ok(command.clone())
        });
        // the booking is part of the id: a slot re-booked after a cancellation has timers of its own
        let id = Uuid::new_v5(
            &TIMER_NAMESPACE,
            format!("interview\u{0}{slot}\u{0}{booking}\u{0}{}", timer.as_str()).as_bytes(),
        );
        match self
            .executor
            .decide(&decision, &request.metadata_with_id(id))
            .await
        {
            Ok(decided) if decided.written.events > 0 => Ok(Fired::Done),
            Ok(_)
            | Err(CommandError::Rejected(InterviewError::NotYetDue | InterviewError::NotFound)) => {
                Ok(Fired::Skipped)
            }
            Err(error) => Err(error),
        }
    }

    async fn command(
        &self,
        request: &Request,
        operation: &str,
        slot: Uuid,
        command: SlotCommand,
    ) -> InterviewResult<SlotChanged> {
        let actor = request.actor.user();
        let decision = SlotDecision::new("SlotCommand", slot, actor, move |facts| {
            facts.slot.as_ref().ok_or(InterviewError::NotFound)?;
            Ok(command.clone())
        });
        self.run(request, operation, slot, decision).await
    }

    async fn run<F>(
        &self,
        request: &Request,
        operation: &str,
        slot: Uuid,
        decision: SlotDecision<F>,
    ) -> InterviewResult<SlotChanged>
    where
        F: Fn(&Facts<'_>) -> Result<SlotCommand, InterviewError>,
    {
        let metadata = request.metadata(operation, &[&slot.to_string()]);
        let decided = self.executor.decide(&decision, &metadata).await?;
        Ok(changed(decided))
    }
}

#[async_trait]
impl FiresTimers for Interviews {
    fn category(&self) -> &'static str {
        "slot"
    }

    async fn fire(
        &self,
        request: &Request,
        slot: Uuid,
        timer: &serde_json::Value,
        _seed: u64,
    ) -> Result<FiredTimer, TimerError> {
        let stream = slot_stream(slot);
        let timer: SlotTimer = timers::decode(&stream, timer)?;
        let fired = self.fire_timer(request, slot, timer).await;
        timers::outcome(&stream, timer.timer.as_str(), fired)
    }
}

fn changed(decided: Decided<Vec<SlotEvent>>) -> SlotChanged {
    SlotChanged {
        position: decided.position(),
        events: if decided.written.events > 0 {
            decided.output.unwrap_or_default()
        } else {
            vec![]
        },
    }
}

/// What a slot command is decided on: the slot, and the calendars and ledgers read for it.
pub struct Facts<'a> {
    pub slot: Option<SlotState>,
    loaded: &'a Loaded,
}

impl Facts<'_> {
    pub fn calendar(&self, user: Uuid) -> CalendarState {
        self.loaded.state::<Calendar>(&calendar_stream(user))
    }

    pub fn ledger(&self, user: Uuid) -> LedgerState {
        self.loaded.state::<Ledger>(&points_stream(user))
    }

    /// `booker`'s booking of slot `slot` at `at`, with the facts it is judged on: both calendars around the
    /// slot's time and the balance of whoever would be the interviewee.
    pub fn book(
        &self,
        slot: Uuid,
        booker: Uuid,
        at: Timestamp,
    ) -> Result<SlotCommand, InterviewError> {
        let state = self.slot.as_ref().ok_or(InterviewError::NotFound)?;
        let (start, end) = (state.spec.start, state.spec.end());
        let (_, interviewee) = state.sides_if_booked_by(booker);
        Ok(SlotCommand::Book {
            booker,
            booker_free: self.calendar(booker).is_free(slot, start, end),
            owner_free: self.calendar(state.owner).is_free(slot, start, end),
            interviewee_balance: self.ledger(interviewee).balance,
            at,
        })
    }
}

/// A slot command with its effects on calendars and ledgers. It reads the slot first, then the calendar and
/// ledger of each of the slot's sides and of the actor.
pub struct SlotDecision<F> {
    label: &'static str,
    slot: Uuid,
    actor: Option<Uuid>,
    command: F,
}

impl<F> SlotDecision<F>
where
    F: Fn(&Facts<'_>) -> Result<SlotCommand, InterviewError>,
{
    pub fn new(label: &'static str, slot: Uuid, actor: Option<Uuid>, command: F) -> Self {
        Self {
            label,
            slot,
            actor,
            command,
        }
    }

    /// The slot's sides and the actor, whose calendars and ledgers the decision reads.
    fn people(&self, slot: Option<&SlotState>) -> Vec<Uuid> {
        let mut people = slot.map(SlotState::parties).unwrap_or_default();
        people.extend(self.actor);
        people.sort_unstable();
        people.dedup();
        people
    }
}

impl<F> Decision for SlotDecision<F>
where
    F: Fn(&Facts<'_>) -> Result<SlotCommand, InterviewError>,
{
    type Error = InterviewError;
    type Output = Vec<SlotEvent>;

    fn label(&self) -> &'static str {
        self.label
    }

    fn reads(&self, loaded: &Loaded) -> Vec<StreamId> {
        let slot_stream = slot_stream(self.slot);
        if !loaded.has(&slot_stream) {
            return vec![slot_stream];
        }
        let slot = loaded.state::<Slot>(&slot_stream);
        self.people(slot.as_ref())
            .into_iter()
            .flat_map(|p| [calendar_stream(p), points_stream(p)])
            .collect()
    }

    fn decide(
        &self,
        loaded: &Loaded,
    ) -> Result<(Vec<(StreamId, Vec<NewEvent>)>, Vec<SlotEvent>), InterviewError> {
        let facts = Facts {
            slot: loaded.state::<Slot>(&slot_stream(self.slot)),
            loaded,
        };
        let command = (self.command)(&facts)?;
        let slot_events = Slot::decide(&command, &facts.slot)?;
        let mut calendars = Effects::<Calendar>::default();
        let mut ledgers = Effects::<Ledger>::default();
        let mut state = facts.slot.clone();
        for event in &slot_events {
            for effect in effects(self.slot, state.as_ref(), event) {
                match effect {
                    Effect::Calendar(user, command) => {
                        calendars.apply(user, &command, || facts.calendar(user))?
                    }
                    Effect::Ledger(user, command) => {
                        ledgers.apply(user, &command, || facts.ledger(user))?
                    }
                }
            }
            state = Slot::evolve(state, event);
        }
        let mut writes = vec![(slot_stream(self.slot), new_events(&slot_events))];
        writes.extend(calendars.writes(calendar_stream));
        writes.extend(ledgers.writes(points_stream));
        Ok((writes, slot_events))
    }
}

/// The events a slot command's effects decide on one kind of stream (calendars or ledgers), per user.
struct Effects<D: Decider> {
    per_user: Vec<(Uuid, D::State, Vec<D::Event>)>,
}

impl<D: Decider> Default for Effects<D> {
    fn default() -> Self {
        Self { per_user: vec![] }
    }
}

impl<D> Effects<D>
where
    D: Decider,
    D::Error: Into<InterviewError>,
    D::State: Clone,
    D::Event: domain::DomainEvent,
{
    /// Decides `command` on `user`'s stream (loaded by `load` the first time), folding what it decides.
    fn apply(
        &mut self,
        user: Uuid,
        command: &D::Command,
        load: impl FnOnce() -> D::State,
    ) -> Result<(), InterviewError> {
        let index = match self.per_user.iter().position(|(u, _, _)| *u == user) {
            Some(index) => index,
            None => {
                self.per_user.push((user, load(), vec![]));
                self.per_user.len() - 1
            }
        };
        let (_, state, events) = &mut self.per_user[index];
        for event in D::decide(command, state).map_err(Into::into)? {
            *state = D::evolve(state.clone(), &event);
            events.push(event);
        }
        Ok(())
    }

    fn writes(&self, stream: fn(Uuid) -> StreamId) -> Vec<(StreamId, Vec<NewEvent>)> {
        self.per_user
            .iter()
            .map(|(user, _, events)| (stream(*user), new_events(events)))
            .collect()
    }
}
