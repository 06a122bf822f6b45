//! The deadline worker: at 80 % of an assignment's time it reminds each participant who has not submitted, and
//! at the deadline it closes the assignment (which allocates the reviews and opens the next one). For mock
//! interviews it sends the reminders 24 h and 1 h before the start, moves an interview to "awaiting feedback" at
//! its end, accepts feedback nobody answered in time, and refunds the interviewee when no feedback came.
//!
//! It reads what is due from the `deadlines` read model and issues commands through the executor like any other
//! client, with the time from its [`Clock`]. Each command has an id derived from what it is about (the reminder
//! of this participant for this assignment; the close of this assignment), so a retry, a restart, a second
//! instance or a stale read model never acts twice: a repeated command id returns the first result, and the
//! `Track` decider ignores a reminder already sent or an assignment already closed. Replaying the log rebuilds
//! the read model without those, so it fires nothing again either.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use commands::interviews::Interviews;
use commands::tracks::{TrackChanged, TrackResult, Tracks};
use commands::{Actor, App, Clock, CommandError, Request, Source};
use domain::interviews::{InterviewError, InterviewTimer};
use domain::tracks::TrackError;
use projections::deadlines;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio_cron_scheduler::{Job, JobScheduler};
use uuid::Uuid;

/// Rows read from the read model at a time; a pass pages through everything due, so rows that keep failing
/// never starve the rest.
const PAGE: i64 = 500;

pub const ACTIONS_TOTAL: &str = "academy_worker_actions_total";

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub reminders_sent: usize,
    pub assignments_closed: usize,
    /// Interview reminders, ends, automatic acceptances and expired feedback windows.
    pub interview_actions: usize,
    /// Commands that wrote nothing (already done, or no longer due).
    pub skipped: usize,
    pub failed: usize,
}

/// Who the worker's commands are recorded as.
const WORKER: Actor = Actor::Worker {
    name: "deadline-worker",
};

pub struct DeadlineWorker {
    tracks: Tracks,
    interviews: Interviews,
    pool: PgPool,
    clock: Arc<dyn Clock>,
    /// One pass at a time, even if the schedule fires again during a long pass.
    running: tokio::sync::Mutex<()>,
}

impl DeadlineWorker {
    pub fn new(app: &App, pool: PgPool, clock: Arc<dyn Clock>) -> Self {
        Self {
            tracks: app.tracks.clone(),
            interviews: app.interviews.clone(),
            pool,
            clock,
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// One pass over what is due now: reminders first, then closes (so a participant reminded in the same pass
    /// as the close is not, since a reminder is only due before the deadline).
    #[tracing::instrument(skip_all)]
    pub async fn pass(&self) -> anyhow::Result<Pass> {
        let _one_at_a_time = self.running.lock().await;
        let now = self.clock.now();
        let request = Request::new(WORKER, Source::Worker, now);
        let mut pass = Pass::default();
        let mut after = None;
        loop {
            let reminders = deadlines::due_reminders(&self.pool, now, after, PAGE)
                .await
                .context("reading due reminders")?;
            after = reminders.last().copied();
            for &(track, assignment, participant) in &reminders {
                let changed = self
                    .tracks
                    .remind_deadline(&request, track, assignment as u32, participant)
                    .await;
                let outcome = outcome(track, changed);
                pass.count(outcome, "remind", |p| &mut p.reminders_sent);
            }
            if (reminders.len() as i64) < PAGE {
                break;
            }
        }
        let mut after = None;
        loop {
            let closes = deadlines::due_to_close(&self.pool, now, after, PAGE)
                .await
                .context("reading due deadlines")?;
            after = closes.last().copied();
            for &(track, assignment) in &closes {
                let changed = self
                    .tracks
                    .close_assignment(&request, track, assignment as u32, rand::random())
                    .await;
                let outcome = outcome(track, changed);
                pass.count(outcome, "close", |p| &mut p.assignments_closed);
            }
            if (closes.len() as i64) < PAGE {
                break;
            }
        }
        let mut after = None;
        loop {
            let timers = deadlines::due_interview_timers(&self.pool, now, after.clone(), PAGE)
                .await
                .context("reading due interview timers")?;
            after = timers.last().cloned();
            for (_, slot, kind) in &timers {
                let Some(timer) = InterviewTimer::parse(kind) else {
                    tracing::error!(%slot, kind, "unknown interview timer");
                    continue;
                };
                let outcome = self.fire(&request, *slot, timer).await;
                pass.count(outcome, "interview", |p| &mut p.interview_actions);
            }
            if (timers.len() as i64) < PAGE {
                break;
            }
        }
        if pass != Pass::default() {
            tracing::info!(?pass, "deadline pass");
        }
        Ok(pass)
    }

    async fn fire(&self, request: &Request, slot: Uuid, timer: InterviewTimer) -> Outcome {
        match self.interviews.fire_timer(request, slot, timer).await {
            Ok(changed) if !changed.events.is_empty() => Outcome::Done,
            Ok(_) => Outcome::Skipped,
            // the read model was behind: the next pass sees the new time
            Err(CommandError::Rejected(InterviewError::NotYetDue | InterviewError::NotFound)) => {
                Outcome::Skipped
            }
            Err(error) => {
                tracing::error!(%slot, timer = timer.as_str(), %error, "deadline worker command failed");
                Outcome::Failed
            }
        }
    }

    /// Runs a pass every `every` on tokio-cron-scheduler until `shutdown` turns true.
    pub async fn run_scheduled(
        self: Arc<Self>,
        every: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut scheduler = JobScheduler::new()
            .await
            .context("creating the scheduler")?;
        let worker = self.clone();
        let job = Job::new_repeated_async(every, move |_, _| {
            let worker = worker.clone();
            Box::pin(async move {
                if let Err(error) = worker.pass().await {
                    tracing::error!(error = format!("{error:#}"), "deadline pass failed");
                }
            })
        })
        .context("scheduling the deadline worker")?;
        scheduler
            .add(job)
            .await
            .context("scheduling the deadline worker")?;
        scheduler.start().await.context("starting the scheduler")?;
        tracing::info!(every = ?every, "deadline worker scheduled");
        let _ = shutdown.wait_for(|stop| *stop).await;
        scheduler
            .shutdown()
            .await
            .context("stopping the scheduler")?;
        // a pass in flight finishes before we report stopped
        let _ = self.running.lock().await;
        Ok(())
    }
}

/// What a track command of the worker came to.
fn outcome(track: Uuid, changed: TrackResult<TrackChanged>) -> Outcome {
    match changed {
        Ok(changed) if changed.changed => Outcome::Done,
        Ok(_) => Outcome::Skipped,
        // the read model was behind a deadline extension: the next pass sees the new time
        Err(CommandError::Rejected(TrackError::NotYetDue)) => Outcome::Skipped,
        Err(error) => {
            tracing::error!(%track, %error, "deadline worker command failed");
            Outcome::Failed
        }
    }
}

enum Outcome {
    Done,
    Skipped,
    Failed,
}

impl Pass {
    fn count(
        &mut self,
        outcome: Outcome,
        action: &'static str,
        done: impl Fn(&mut Pass) -> &mut usize,
    ) {
        let label = match outcome {
            Outcome::Done => {
                *done(self) += 1;
                "done"
            }
            Outcome::Skipped => {
                self.skipped += 1;
                "skipped"
            }
            Outcome::Failed => {
                self.failed += 1;
                "failed"
            }
        };
        metrics::counter!(ACTIONS_TOTAL, "worker" => "deadlines", "action" => action, "outcome" => label)
            .increment(1);
    }
}
