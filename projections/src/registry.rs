//! The set of projections a process runs, and the read-your-writes wait.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventlog::{Checkpoint, EventLog, Hold, Subscription};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::Projection;
use crate::runner::{Progress, Runner, RunnerConfig, RunnerError, Status};

#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("no event at position {0}")]
    UnknownPosition(i64),
    #[error("projection {name} has not reached position {position} within {timeout:?}")]
    Timeout {
        name: String,
        position: i64,
        timeout: Duration,
    },
    #[error("projection {name} is stopped by a failing event: {error}")]
    Failed { name: String, error: String },
    #[error("unknown projection {0}")]
    UnknownProjection(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

struct Entry {
    projection: Arc<dyn Projection>,
    progress: watch::Receiver<Progress>,
}

/// The projections of this process: runs them, and waits for them.
pub struct Projections {
    log: EventLog,
    entries: Vec<Entry>,
    /// Taken by `run`.
    runners: Mutex<Vec<Runner>>,
}

impl Projections {
    pub fn new(
        log: EventLog,
        projections: Vec<Arc<dyn Projection>>,
        config: RunnerConfig,
    ) -> Result<Self, RunnerError> {
        let mut runners = Vec::with_capacity(projections.len());
        let mut entries = Vec::with_capacity(projections.len());
        for projection in projections {
            let runner = Runner::new(log.clone(), projection.clone(), config.clone())?;
            entries.push(Entry {
                projection,
                progress: runner.progress(),
            });
            runners.push(runner);
        }
        Ok(Self {
            log,
            entries,
            runners: Mutex::new(runners),
        })
    }

    /// A live feed of the log for readers that are not projections (the admin event subscription): every event
    /// after `after` (0: from the start; `None`: from now), of `types` when given, in commit-safe order.
    pub async fn feed(
        &self,
        after: Option<i64>,
        types: Option<Vec<String>>,
    ) -> Result<Subscription, WaitError> {
        let from = match after {
            None => self.log.horizon().await?,
            Some(0) => Checkpoint::START,
            Some(position) => self
                .log
                .checkpoint_of(position)
                .await?
                .ok_or(WaitError::UnknownPosition(position))?,
        };
        Ok(self.log.subscribe(from, types))
    }

    /// The highest position in the log: what projections are measured against.
    pub async fn head(&self) -> Result<i64, sqlx::Error> {
        self.log.last_position().await
    }

    /// The committed events the commit-safe order holds back from every projection, if any: how many, since
    /// when, and the backend holding them.
    pub async fn hold(&self) -> Result<Option<Hold>, sqlx::Error> {
        self.log.hold().await
    }

    /// Runs every projection until `shutdown` fires, each in its own task so one failing projection never stops
    /// the others, and names in the log each backend that holds events back for long. Call once.
    pub async fn run(&self, shutdown: watch::Receiver<bool>) {
        let runners = std::mem::take(&mut *self.runners.lock().unwrap_or_else(|e| e.into_inner()));
        let mut tasks = JoinSet::new();
        tasks.spawn(watch_holds(self.log.clone(), shutdown.clone()));
        for runner in runners {
            let mut shutdown = shutdown.clone();
            tasks.spawn(async move {
                runner
                    .run(async move {
                        let _ = shutdown.wait_for(|stop| *stop).await;
                    })
                    .await
            });
        }
        while let Some(joined) = tasks.join_next().await {
            if let Err(error) = joined {
                tracing::error!(%error, "a projection runner panicked");
            }
        }
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|e| e.projection.name()).collect()
    }

    pub fn projections(&self) -> Vec<Arc<dyn Projection>> {
        self.entries.iter().map(|e| e.projection.clone()).collect()
    }

    /// The event types the projection `name` reads (`None`: every event, or no such projection here).
    pub fn event_types(&self, name: &str) -> Option<Vec<String>> {
        let entry = self.entries.iter().find(|e| e.projection.name() == name)?;
        entry.projection.event_types()
    }

    /// The latest progress of each projection run here.
    pub fn progress(&self) -> Vec<(&'static str, Progress)> {
        self.entries
            .iter()
            .map(|e| (e.projection.name(), e.progress.borrow().clone()))
            .collect()
    }

    /// Waits until every projection has applied the event at `position` (and everything before it in commit
    /// order), so a query right after sees the write. Fails fast on a projection that failed in this process; one
    /// run by another process is judged by its stored checkpoint, so a failure there shows as a timeout.
    pub async fn wait_for(&self, position: i64, timeout: Duration) -> Result<(), WaitError> {
        let names: Vec<&str> = self.names();
        self.wait_for_some(&names, position, timeout).await
    }

    /// [`Projections::wait_for`], for the named projections only (those a query reads).
    pub async fn wait_for_some(
        &self,
        names: &[&str],
        position: i64,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        let target = self
            .log
            .checkpoint_of(position)
            .await?
            .ok_or(WaitError::UnknownPosition(position))?;
        let deadline = tokio::time::Instant::now() + timeout;
        for name in names {
            let entry = self
                .entries
                .iter()
                .find(|e| e.projection.name() == *name)
                .ok_or_else(|| WaitError::UnknownProjection((*name).to_owned()))?;
            let timed_out = || WaitError::Timeout {
                name: (*name).to_owned(),
                position,
                timeout,
            };
            let mut progress = entry.progress.clone();
            loop {
                let now = progress.borrow_and_update().clone();
                match now.status {
                    Status::Failed => {
                        return Err(WaitError::Failed {
                            name: (*name).to_owned(),
                            error: now.error.unwrap_or_default(),
                        });
                    }
                    Status::Running if now.checkpoint >= target => break,
                    // another process runs it: ask the database instead
                    Status::Waiting | Status::Stopped => {
                        if self.caught_up_elsewhere(&*entry.projection, target).await? {
                            break;
                        }
                        if tokio::time::Instant::now() >= deadline {
                            return Err(timed_out());
                        }
                        let pause = tokio::time::sleep(Duration::from_millis(20));
                        let _ = tokio::time::timeout_at(deadline, async {
                            tokio::select! { _ = pause => {}, _ = progress.changed() => {} }
                        })
                        .await;
                        continue;
                    }
                    _ => {}
                }
                if tokio::time::timeout_at(deadline, progress.changed())
                    .await
                    .is_err()
                {
                    return Err(timed_out());
                }
            }
        }
        Ok(())
    }

    /// Whether the projection's live tables (maintained by some process) cover `target`: no event it handles
    /// lies between its stored checkpoint and the target.
    async fn caught_up_elsewhere(
        &self,
        projection: &dyn Projection,
        target: Checkpoint,
    ) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar(
            "select exists (select 1 from public.projections p where p.name = $1 and p.slot = 'live' and p.version = $2)
                and not exists (
                    select 1 from public.projections p join public.events e
                      on (e.transaction_id, e.position) > (p.checkpoint_xid::text::xid8, p.checkpoint_position)
                     and (e.transaction_id, e.position) <= ($3::text::xid8, $4::bigint)
                     and ($5::text[] is null or e.event_type = any($5))
                     where p.name = $1 and p.slot = 'live')",
        )
        .bind(projection.name())
        .bind(projection.version())
        .bind(target.xid.to_string())
        .bind(target.position)
        .bind(projection.event_types())
        .fetch_one(self.log.pool())
        .await
    }
}

/// How old a hold gets before the log names the backend behind it.
const HOLD_LOGGED_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(5);
/// How often holds are looked for.
const HOLD_CHECK_EVERY: Duration = Duration::from_secs(2);

/// Until `shutdown`: warns once per hold (per blocking backend and transaction) that has lasted
/// [`HOLD_LOGGED_AFTER`], naming the backend, and says when it is over.
async fn watch_holds(log: EventLog, mut shutdown: watch::Receiver<bool>) {
    let mut logged: Option<(i32, Option<chrono::DateTime<chrono::Utc>>)> = None;
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(HOLD_CHECK_EVERY) => {}
        }
        let hold = match log.hold().await {
            Ok(hold) => hold,
            Err(error) => {
                tracing::debug!(%error, "cannot look for held-back events");
                continue;
            }
        };
        let now = chrono::Utc::now();
        match hold {
            Some(hold) if hold.age(now) >= HOLD_LOGGED_AFTER => {
                let Some(blocker) = &hold.blocker else {
                    continue;
                };
                let key = (blocker.pid, blocker.transaction_start);
                if logged != Some(key) {
                    tracing::warn!(
                        events = hold.events,
                        held_seconds = hold.age(now).num_seconds(),
                        pid = blocker.pid,
                        transaction_start = ?blocker.transaction_start,
                        query_start = ?blocker.query_start,
                        state = blocker.state.as_deref().unwrap_or(""),
                        application = blocker.application_name.as_deref().unwrap_or(""),
                        query = blocker.query.as_deref().unwrap_or(""),
                        "an open transaction holds committed events back from every projection"
                    );
                    logged = Some(key);
                }
            }
            Some(_) => {}
            None => {
                if logged.take().is_some() {
                    tracing::info!("held-back events are released");
                }
            }
        }
    }
}
