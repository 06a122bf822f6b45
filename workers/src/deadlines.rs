//! The deadline worker: fires every product's timers when they come due: the 80 % reminders and the closes of
//! cohort tracks' assignments, the reminders, ends, feedback windows and no-show windows of mock interviews.
//!
//! It knows no product. It reads what is due from the `deadlines` read model (each product's timers, set and
//! cleared by the product from its events) and hands each to the application layer ([`App::fire_timer`]),
//! which routes it to the product, with the time from the worker's [`Clock`]. Each timer's command has an id
//! derived from what it is about, so a retry, a restart, a second instance or a stale read model never acts
//! twice: a repeated command id returns the first result, and the deciders ignore what is already done.
//! Replaying the log rebuilds the read model without what was fired, so it fires nothing again either.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use commands::timers::Fired;
use commands::{Actor, App, Clock, Request, Source};
use projections::deadlines;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio_cron_scheduler::{Job, JobScheduler};

/// Timers read from the read model at a time; a pass pages through everything due, so timers that keep failing
/// never starve the rest.
const PAGE: i64 = 500;

pub const ACTIONS_TOTAL: &str = "academy_worker_actions_total";

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    /// Timers that wrote events, by their product's name for the action (`remind_deadline`,
    /// `close_assignment`, `end`, ...).
    pub done: BTreeMap<&'static str, usize>,
    /// Timers that wrote nothing (already done, or no longer due).
    pub skipped: usize,
    pub failed: usize,
}

impl Pass {
    /// How many timers of `actions` wrote events.
    pub fn done_of(&self, actions: &[&str]) -> usize {
        actions.iter().filter_map(|a| self.done.get(a)).sum()
    }
}

/// Who the worker's commands are recorded as.
const WORKER: Actor = Actor::Worker {
    name: "deadline-worker",
};

pub struct DeadlineWorker {
    app: App,
    pool: PgPool,
    clock: Arc<dyn Clock>,
    /// One pass at a time, even if the schedule fires again during a long pass.
    running: tokio::sync::Mutex<()>,
}

impl DeadlineWorker {
    pub fn new(app: &App, pool: PgPool, clock: Arc<dyn Clock>) -> Self {
        Self {
            app: app.clone(),
            pool,
            clock,
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// One pass over what is due now, in the order it came due (so an assignment's reminders go before its
    /// close; a reminder whose deadline has come lapses).
    #[tracing::instrument(skip_all)]
    pub async fn pass(&self) -> anyhow::Result<Pass> {
        let _one_at_a_time = self.running.lock().await;
        let now = self.clock.now();
        let request = Request::new(WORKER, Source::Worker, now);
        let mut pass = Pass::default();
        let mut after = None;
        loop {
            let due = deadlines::due(&self.pool, now, after.as_ref(), PAGE)
                .await
                .context("reading due timers")?;
            for timer in &due {
                let fired = self
                    .app
                    .fire_timer(&request, &timer.stream_id, &timer.timer, rand::random())
                    .await;
                match fired {
                    Ok(fired) => pass.count(fired.action, fired.fired),
                    Err(error) => {
                        tracing::error!(%error, "deadline worker command failed");
                        pass.failed += 1;
                        metrics::counter!(ACTIONS_TOTAL, "worker" => "deadlines", "outcome" => "failed")
                            .increment(1);
                    }
                }
            }
            let full = due.len() as i64 == PAGE;
            after = due.into_iter().last();
            if !full {
                break;
            }
        }
        if pass != Pass::default() {
            tracing::info!(?pass, "deadline pass");
        }
        Ok(pass)
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

impl Pass {
    fn count(&mut self, action: &'static str, fired: Fired) {
        let outcome = match fired {
            Fired::Done => {
                *self.done.entry(action).or_default() += 1;
                "done"
            }
            Fired::Skipped => {
                self.skipped += 1;
                "skipped"
            }
        };
        metrics::counter!(ACTIONS_TOTAL, "worker" => "deadlines", "action" => action, "outcome" => outcome)
            .increment(1);
    }
}
