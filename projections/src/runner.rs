//! Driving one projection: lease, catch-up, live tail, build-aside-and-swap, failure isolation.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use eventlog::{Checkpoint, EventLog, RecordedEvent};
use serde::Serialize;
use tokio::sync::watch;
use uuid::Uuid;

use crate::lease::Lease;
use crate::store::{self, Slot};
use crate::{Projection, ProjectionError, build_schema, live_schema, valid_name};

/// A build swaps in once a read finds nothing left, unless committed events wait behind an open transaction:
/// then it waits for them, but only this many reads in a row, so constant write load cannot hold a swap off
/// forever (the live runner applies whatever the build had not reached).
const MAX_HELD_BACK_READS_BEFORE_SWAP: u32 = 200;

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Events per transaction while serving live (small batches keep read-your-writes waits short).
    pub batch_size: i64,
    /// Events per read and transaction while building aside (a rebuild, a new version): large batches let a
    /// set-based projection write each table once per many events. Nobody waits on a build's commits.
    pub build_batch_size: i64,
    /// How long a lease lasts without renewal.
    pub lease_ttl: Duration,
    /// How often an idle runner looks at the log anyway (wake-ups make this rarely matter).
    pub poll: Duration,
    /// Pause after an infrastructure error (database unreachable...) before trying again.
    pub retry_delay: Duration,
    /// Describes this process in lease rows, e.g. `host:pid`.
    pub holder: String,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            batch_size: 2000,
            build_batch_size: 20_000,
            lease_ttl: Duration::from_secs(30),
            poll: eventlog::DEFAULT_POLL,
            retry_delay: Duration::from_secs(2),
            holder: format!("pid {}", std::process::id()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Not started yet, or another process owns it (we wait to take over).
    Waiting,
    /// Building from the start of the log beside the serving tables.
    Building,
    Running,
    /// An event failed to apply; stopped there.
    Failed,
    Stopped,
}

/// What a runner publishes after every step.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub status: Status,
    /// Everything up to here (in commit-safe order) is reflected in the tables being written.
    pub checkpoint: Checkpoint,
    /// Events applied into the tables being written (the build's, while building).
    pub events_applied: i64,
    /// The last read reached the log's horizon.
    pub caught_up: bool,
    /// When the last applied event was recorded: while catching up, `now - this` is the lag.
    pub last_event_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

impl Progress {
    /// How far behind the log this projection is: zero once caught up, else the age of the last applied event
    /// (`None` before the first).
    pub fn lag(&self, now: DateTime<Utc>) -> Option<chrono::Duration> {
        if self.caught_up {
            return Some(chrono::Duration::zero());
        }
        self.last_event_at
            .map(|at| (now - at).max(chrono::Duration::zero()))
    }
}

impl Progress {
    fn waiting() -> Self {
        Self {
            status: Status::Waiting,
            checkpoint: Checkpoint::START,
            events_applied: 0,
            caught_up: false,
            last_event_at: None,
            error: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("projection database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("transient failure while applying events: {0}")]
    Transient(#[source] ProjectionError),
    #[error(
        "{0:?} is not a valid projection name (lowercase letters, digits and single '_', at most 48)"
    )]
    InvalidName(String),
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("a rebuild of {name} is already running ({holder})")]
    Busy { name: String, holder: String },
    #[error(
        "the rebuild stopped at the event at position {position}: {error}; the old tables keep serving"
    )]
    Failed { position: i64, error: String },
    #[error("the rebuild could not set up its tables: {0}")]
    Setup(String),
    #[error("the rebuild lost its lease (another process took over); the old tables keep serving")]
    LostLease,
    #[error(
        "the live tables are version {live}, newer than this binary's {code}; rebuild with the newer binary"
    )]
    NewerLive { live: i32, code: i32 },
    #[error(transparent)]
    Runner(#[from] RunnerError),
}

/// Why a driving loop ended.
enum Stop {
    /// The slot's row changed under us (a swap, an operator's rebuild): read the state again.
    Reload,
    /// The build was swapped in.
    Swapped,
    LostLease,
    /// An event (at `position`) or the setup failed; the failure is recorded.
    Failed {
        position: Option<i64>,
        error: String,
    },
}

enum Commit {
    Done,
    Moved,
    LostLease,
    Failed(ProjectionError),
}

/// Runs one projection. See the crate docs for the guarantees.
pub struct Runner {
    log: EventLog,
    projection: Arc<dyn Projection>,
    config: RunnerConfig,
    owner: Uuid,
    progress: watch::Sender<Progress>,
}

impl Runner {
    pub fn new(
        log: EventLog,
        projection: Arc<dyn Projection>,
        config: RunnerConfig,
    ) -> Result<Self, RunnerError> {
        if !valid_name(projection.name()) {
            return Err(RunnerError::InvalidName(projection.name().to_owned()));
        }
        Ok(Self {
            log,
            projection,
            config,
            owner: Uuid::new_v4(),
            progress: watch::Sender::new(Progress::waiting()),
        })
    }

    pub fn name(&self) -> &'static str {
        self.projection.name()
    }

    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    fn pool(&self) -> &sqlx::PgPool {
        self.log.pool()
    }

    fn publish(&self, change: impl FnOnce(&mut Progress)) {
        self.progress.send_modify(change);
    }

    /// Keeps the projection up to date until `shutdown` resolves. Infrastructure errors are logged and retried;
    /// a failing event stops this projection (recorded and published) but not the caller.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let acquired = tokio::select! {
                _ = &mut shutdown => break,
                acquired = self.acquire_waiting(Slot::Live) => acquired,
            };
            let mut lease = match acquired {
                Ok(lease) => lease,
                Err(error) => {
                    tracing::warn!(projection = self.name(), %error, "cannot take the projection's lease");
                    if self.pause(&mut shutdown).await {
                        break;
                    }
                    continue;
                }
            };
            // dropping `serve` mid-transaction rolls the transaction back: nothing half-applied survives
            let outcome = tokio::select! {
                _ = &mut shutdown => None,
                outcome = self.serve(&mut lease) => Some(outcome),
            };
            match outcome {
                None => {
                    lease.release().await;
                    break;
                }
                Some(Ok(Stop::Failed { .. })) => {
                    // keep the lease (so no other instance retries in a loop) until an operator's rebuild repairs
                    // the projection, or shutdown
                    let repaired = tokio::select! {
                        _ = &mut shutdown => None,
                        repaired = self.wait_for_repair(&mut lease) => Some(repaired),
                    };
                    lease.release().await;
                    match repaired {
                        None => break,
                        Some(true) => {
                            tracing::info!(
                                projection = self.name(),
                                "repaired by a rebuild; running again"
                            );
                        }
                        // the lease was lost meanwhile: take it again and look at the state afresh
                        Some(false) => {}
                    }
                }
                Some(Ok(Stop::LostLease)) => {
                    tracing::warn!(
                        projection = self.name(),
                        "lost the projection's lease; taking it again"
                    );
                }
                Some(Ok(Stop::Reload | Stop::Swapped)) => {}
                Some(Err(error)) => {
                    tracing::warn!(projection = self.name(), %error, "projection runner error; retrying");
                    lease.release().await;
                    if self.pause(&mut shutdown).await {
                        break;
                    }
                }
            }
        }
        self.publish(|p| p.status = Status::Stopped);
    }

    /// While stopped by a failure: renews the lease and watches the rows until no slot is failed any more (an
    /// operator's rebuild swapped in good tables). True when repaired; false when the lease was lost (the
    /// caller takes it again and looks afresh).
    async fn wait_for_repair(&self, lease: &mut Lease) -> bool {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if !matches!(lease.renew_if_due().await, Ok(true)) {
                return false;
            }
            let failed: Result<bool, sqlx::Error> = sqlx::query_scalar(
                "select exists(select 1 from public.projections where name = $1 and status = 'failed')",
            )
            .bind(self.name())
            .fetch_one(self.pool())
            .await;
            if matches!(failed, Ok(false)) {
                return true;
            }
        }
    }

    /// Sleeps the retry delay; true when shutdown came first.
    async fn pause(
        &self,
        shutdown: &mut std::pin::Pin<&mut (impl Future<Output = ()> + Send)>,
    ) -> bool {
        tokio::select! {
            _ = shutdown.as_mut() => true,
            _ = tokio::time::sleep(self.config.retry_delay) => false,
        }
    }

    async fn acquire_waiting(&self, slot: Slot) -> Result<Lease, RunnerError> {
        loop {
            let name = self.name();
            if let Some(lease) = Lease::try_acquire(
                self.pool(),
                name,
                slot,
                self.owner,
                &self.config.holder,
                self.config.lease_ttl,
            )
            .await?
            {
                return Ok(lease);
            }
            self.publish(|p| p.status = Status::Waiting);
            tokio::time::sleep((self.config.lease_ttl / 4).min(Duration::from_secs(1))).await;
        }
    }

    /// With the live lease held: serve the current version, building it first when needed.
    async fn serve(&self, lease: &mut Lease) -> Result<Stop, RunnerError> {
        let version = self.projection.version();
        loop {
            let (live, _) = store::load(self.pool(), self.name()).await?;
            match live {
                Some(row) if row.version == version => {
                    self.publish(|p| {
                        p.status = Status::Running;
                        p.checkpoint = row.checkpoint();
                        p.events_applied = row.events_applied;
                        p.error = None;
                    });
                    match self
                        .drive(lease, None, Slot::Live, row.checkpoint())
                        .await?
                    {
                        Stop::Reload | Stop::Swapped => continue,
                        other => return Ok(other),
                    }
                }
                Some(row) if row.version > version => {
                    // a newer binary built these tables; rebuilding them down would undo its work
                    let error = format!(
                        "the live tables are version {}, newer than this binary's {version}; waiting for an upgrade",
                        row.version
                    );
                    tracing::warn!(projection = self.name(), "{error}");
                    self.publish(|p| {
                        p.status = Status::Waiting;
                        p.error = Some(error.clone());
                    });
                    if !lease.renew().await? {
                        return Ok(Stop::LostLease);
                    }
                    tokio::time::sleep(self.config.lease_ttl / 3).await;
                }
                _ => {
                    // new projection or new version: build aside while whatever is live keeps serving
                    let acquired = Lease::try_acquire(
                        self.pool(),
                        self.name(),
                        Slot::Build,
                        self.owner,
                        &self.config.holder,
                        self.config.lease_ttl,
                    )
                    .await?;
                    let Some(mut build_lease) = acquired else {
                        // an operator's rebuild is running; it will swap, then we serve what it built
                        self.publish(|p| p.status = Status::Waiting);
                        if !lease.renew().await? {
                            return Ok(Stop::LostLease);
                        }
                        tokio::time::sleep(self.config.poll.max(Duration::from_millis(100))).await;
                        continue;
                    };
                    let outcome = self.build(&mut build_lease, Some(&mut *lease), false).await;
                    build_lease.release().await;
                    match outcome? {
                        Stop::Reload | Stop::Swapped => continue,
                        other => return Ok(other),
                    }
                }
            }
        }
    }

    /// Rebuilds the projection from the start of the log beside the live tables, then swaps it in. Returns once
    /// swapped. Watch [`Runner::progress`] for progress. A running server keeps serving the old tables throughout.
    pub async fn rebuild(&self) -> Result<(), RebuildError> {
        let name = self.name();
        let Some(mut lease) = Lease::try_acquire(
            self.pool(),
            name,
            Slot::Build,
            self.owner,
            &self.config.holder,
            self.config.lease_ttl,
        )
        .await
        .map_err(RunnerError::from)?
        else {
            let holder = Lease::holder(self.pool(), name, Slot::Build)
                .await
                .map_err(RunnerError::from)?
                .unwrap_or_else(|| "another process".to_owned());
            return Err(RebuildError::Busy {
                name: name.to_owned(),
                holder,
            });
        };
        let (live, _) = store::load(self.pool(), name)
            .await
            .map_err(RunnerError::from)?;
        if let Some(live) = live.filter(|live| live.version > self.projection.version()) {
            lease.release().await;
            return Err(RebuildError::NewerLive {
                live: live.version,
                code: self.projection.version(),
            });
        }
        let outcome = self.build(&mut lease, None, true).await;
        lease.release().await;
        match outcome? {
            Stop::Swapped => {
                self.publish(|p| p.status = Status::Running);
                Ok(())
            }
            Stop::Failed {
                position: None,
                error,
            } => Err(RebuildError::Setup(error)),
            Stop::Failed {
                position: Some(position),
                error,
            } => Err(RebuildError::Failed { position, error }),
            Stop::LostLease | Stop::Reload => Err(RebuildError::LostLease),
        }
    }

    /// Builds this version into the build slot (whose lease is held), then swaps it in. `also` (the live lease,
    /// for a server building on start-up) is renewed meanwhile. `fresh` starts over even when a build of this
    /// version was interrupted.
    async fn build(
        &self,
        build_lease: &mut Lease,
        also: Option<&mut Lease>,
        fresh: bool,
    ) -> Result<Stop, RunnerError> {
        match self.prepare_build(fresh).await {
            Ok(start) => self.drive(build_lease, also, Slot::Build, start).await,
            Err(BuildSetup::Runner(e)) => Err(e),
            Err(BuildSetup::Projection(error)) => {
                let error = format!("setup failed: {error}");
                tracing::error!(projection = self.name(), %error, "projection stopped");
                store::record_setup_failure(
                    self.pool(),
                    self.name(),
                    self.projection.version(),
                    &build_schema(self.name()),
                    &error,
                )
                .await?;
                self.publish(|p| {
                    p.status = Status::Failed;
                    p.error = Some(error.clone());
                });
                Ok(Stop::Failed {
                    position: None,
                    error,
                })
            }
        }
    }

    /// Makes sure the build slot exists for this version and returns where to continue. `fresh` starts over even
    /// when a build of this version was interrupted.
    async fn prepare_build(&self, fresh: bool) -> Result<Checkpoint, BuildSetup> {
        let version = self.projection.version();
        let (_, build) = store::load(self.pool(), self.name()).await?;
        let schema = build_schema(self.name());
        if !fresh
            && let Some(row) = build.filter(|row| row.version == version)
            && store::schema_exists(self.pool(), &schema).await?
        {
            self.publish(|p| {
                p.status = Status::Building;
                p.checkpoint = row.checkpoint();
                p.events_applied = row.events_applied;
            });
            return Ok(row.checkpoint());
        }
        let mut tx = self.pool().begin().await?;
        store::recreate_schema(&mut tx, &schema).await?;
        store::set_search_path(&mut tx, &schema).await?;
        self.projection
            .setup(&mut tx)
            .await
            .map_err(BuildSetup::Projection)?;
        sqlx::query(
            "insert into public.projections (name, slot, version, schema_name, status)
             values ($1, 'build', $2, $3, 'building')
             on conflict (name, slot) do update
                set version = excluded.version, schema_name = excluded.schema_name, status = 'building',
                    checkpoint_xid = 0, checkpoint_position = 0, events_applied = 0, error = null,
                    error_position = null, error_event_id = null, started_at = now(), updated_at = now()",
        )
        .bind(self.name())
        .bind(version)
        .bind(&schema)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.publish(|p| {
            p.status = Status::Building;
            p.checkpoint = Checkpoint::START;
            p.events_applied = 0;
            p.error = None;
        });
        Ok(Checkpoint::START)
    }

    /// Applies the log to `slot` from `start`: batches until caught up, then (live) tails, or (build) swaps.
    async fn drive(
        &self,
        lease: &mut Lease,
        mut also: Option<&mut Lease>,
        slot: Slot,
        start: Checkpoint,
    ) -> Result<Stop, RunnerError> {
        let name = self.name();
        let schema = match slot {
            Slot::Live => live_schema(name),
            Slot::Build => build_schema(name),
        };
        // the stored checkpoint moves only with applied events: a caught-up runner writes nothing (an idle write
        // would take a transaction id, and so nudge every reader's horizon, once a second forever). Readers in
        // other processes only ask whether events this projection handles lie beyond it.
        let mut persisted = start;
        let mut held_back_reads = 0;
        // a batch read ahead while the previous one was applied
        let mut prefetched: Option<Read> = None;
        let batch_size = match slot {
            Slot::Live => self.config.batch_size,
            Slot::Build => self.config.build_batch_size,
        };
        let mut subscription = self
            .log
            .subscribe(start, self.projection.event_types())
            .batch_size(batch_size)
            .poll_interval(self.config.poll);
        loop {
            if !lease.renew_if_due().await? {
                return Ok(Stop::LostLease);
            }
            if let Some(outer) = also.as_deref_mut()
                && !outer.renew_if_due().await?
            {
                return Ok(Stop::LostLease);
            }
            let (events, reached) = match prefetched.take() {
                Some(read) => read,
                None => read_next(&mut subscription).await?,
            };
            match events {
                Some(events) => match self
                    .commit_reading_ahead(
                        lease,
                        slot,
                        &schema,
                        (persisted, reached),
                        &events,
                        batch_size,
                        &mut subscription,
                        &mut prefetched,
                    )
                    .await?
                {
                    Commit::Done => {
                        persisted = reached;
                        let last_event_at = events.last().map(|e| e.recorded_at);
                        self.publish(|p| {
                            p.checkpoint = reached;
                            p.events_applied += events.len() as i64;
                            p.caught_up = false;
                            p.last_event_at = last_event_at;
                        });
                    }
                    Commit::Moved => return Ok(Stop::Reload),
                    Commit::LostLease => return Ok(Stop::LostLease),
                    Commit::Failed(error) => {
                        match self
                            .isolate_failure(lease, slot, &schema, persisted, &events, error)
                            .await?
                        {
                            Isolated::Stop(stop) => return Ok(stop),
                            Isolated::Recovered(at) => {
                                // the batch failed as a whole but every event applied alone: carry on
                                persisted = at;
                            }
                        }
                    }
                },
                None if slot == Slot::Build => {
                    if !subscription.held_back()
                        || held_back_reads >= MAX_HELD_BACK_READS_BEFORE_SWAP
                    {
                        return self.swap(lease, persisted, reached).await;
                    }
                    held_back_reads += 1;
                    subscription.wait().await;
                }
                None => {
                    self.publish(|p| {
                        p.checkpoint = reached;
                        p.caught_up = true;
                    });
                    subscription.wait().await;
                    // an idle runner commits nothing, so it would only notice an operator's swap at the next
                    // event; the swapped-in tables may lack events applied here to the old ones meanwhile
                    if store::load_slot(self.pool(), self.name(), slot).await?
                        != Some((self.projection.version(), persisted))
                    {
                        return Ok(Stop::Reload);
                    }
                }
            }
        }
    }

    /// [`Runner::commit`], and when the batch was full (more is waiting) the read of the next batch at the same
    /// time, so reading and applying overlap (the read is independent of the apply transaction).
    #[allow(clippy::too_many_arguments)]
    async fn commit_reading_ahead(
        &self,
        lease: &Lease,
        slot: Slot,
        schema: &str,
        (expected, to): (Checkpoint, Checkpoint),
        events: &[RecordedEvent],
        batch_size: i64,
        subscription: &mut eventlog::Subscription,
        prefetched: &mut Option<Read>,
    ) -> Result<Commit, RunnerError> {
        let commit = self.commit(lease, slot, schema, expected, events, to);
        if (events.len() as i64) < batch_size {
            return commit.await;
        }
        let (committed, next) = tokio::join!(commit, read_next(subscription));
        *prefetched = Some(next?);
        committed
    }

    /// One transaction: take the projection's checkpoint lock, check the slot is still at `expected`, apply,
    /// move the checkpoint to `to` (only while our lease holds), commit.
    async fn commit(
        &self,
        lease: &Lease,
        slot: Slot,
        schema: &str,
        expected: Checkpoint,
        events: &[RecordedEvent],
        to: Checkpoint,
    ) -> Result<Commit, RunnerError> {
        let mut tx = self.pool().begin().await?;
        if store::lock_checkpoint(&mut tx, self.name(), slot).await? != Some(expected) {
            return Ok(Commit::Moved);
        }
        if !events.is_empty() {
            store::set_search_path(&mut tx, schema).await?;
            if let Err(error) = self.projection.apply(&mut tx, events).await {
                if is_transient(&error) {
                    return Err(RunnerError::Transient(error));
                }
                return Ok(Commit::Failed(error));
            }
        }
        if !store::advance(
            &mut tx,
            self.name(),
            slot,
            self.projection.version(),
            lease.owner(),
            expected,
            to,
            events.len() as i64,
        )
        .await?
        {
            // the lease is gone (the checkpoint cannot have moved: we hold the checkpoint lock)
            return Ok(Commit::LostLease);
        }
        tx.commit().await?;
        Ok(Commit::Done)
    }

    /// A batch failed: apply its events one by one, so everything before the culprit lands and the culprit is
    /// named in the record.
    async fn isolate_failure(
        &self,
        lease: &Lease,
        slot: Slot,
        schema: &str,
        mut at: Checkpoint,
        events: &[RecordedEvent],
        batch_error: ProjectionError,
    ) -> Result<Isolated, RunnerError> {
        tracing::debug!(projection = self.name(), error = %batch_error, "batch failed; isolating the event");
        for event in events {
            let to = event.checkpoint();
            match self
                .commit(lease, slot, schema, at, std::slice::from_ref(event), to)
                .await?
            {
                Commit::Done => at = to,
                Commit::Moved => return Ok(Isolated::Stop(Stop::Reload)),
                Commit::LostLease => return Ok(Isolated::Stop(Stop::LostLease)),
                Commit::Failed(error) => {
                    let error = error.to_string();
                    tracing::error!(
                        projection = self.name(),
                        position = event.position,
                        event_type = %event.event_type,
                        %error,
                        "event failed to apply; projection stopped"
                    );
                    store::record_failure(
                        self.pool(),
                        self.name(),
                        slot,
                        event.position,
                        event.event_id,
                        &error,
                    )
                    .await?;
                    self.publish(|p| {
                        p.status = Status::Failed;
                        p.checkpoint = at;
                        p.error = Some(error.clone());
                    });
                    return Ok(Isolated::Stop(Stop::Failed {
                        position: Some(event.position),
                        error,
                    }));
                }
            }
        }
        Ok(Isolated::Recovered(at))
    }

    /// Swaps the finished build in, in one transaction: no query sees half-built tables.
    ///
    /// The schema DDL waits for queries reading the live tables. It runs before anything in the transaction takes
    /// a transaction id (which would hold every reader's horizon back while it waits), and with a lock timeout:
    /// a long query makes the swap step back and try again rather than queue every newer query behind it.
    async fn swap(
        &self,
        lease: &Lease,
        expected: Checkpoint,
        to: Checkpoint,
    ) -> Result<Stop, RunnerError> {
        const ATTEMPTS: u32 = 50;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_swap(lease, expected, to).await {
                Err(RunnerError::Database(sqlx::Error::Database(db)))
                    if db.code().as_deref() == Some("55P03") && attempt < ATTEMPTS =>
                {
                    tracing::debug!(
                        projection = self.name(),
                        attempt,
                        "swap waits for queries on the live tables"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                outcome => return outcome,
            }
        }
    }

    async fn try_swap(
        &self,
        lease: &Lease,
        expected: Checkpoint,
        to: Checkpoint,
    ) -> Result<Stop, RunnerError> {
        let name = self.name();
        let mut tx = self.pool().begin().await?;
        if store::lock_checkpoint(&mut tx, name, Slot::Build).await? != Some(expected) {
            return Ok(Stop::Reload);
        }
        // the live runner stays out of its tables while they are swapped, and finds its row replaced when it gets
        // the lock back
        store::lock_checkpoint(&mut tx, name, Slot::Live).await?;
        sqlx::query("set local lock_timeout = '2s'")
            .execute(&mut *tx)
            .await?;
        store::swap_schemas(&mut tx, &live_schema(name), &build_schema(name)).await?;
        if !store::advance(
            &mut tx,
            name,
            Slot::Build,
            self.projection.version(),
            lease.owner(),
            expected,
            to,
            0,
        )
        .await?
        {
            return Ok(Stop::LostLease);
        }
        sqlx::query("delete from public.projections where name = $1 and slot = 'live'")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "update public.projections set slot = 'live', schema_name = $2, status = 'running', updated_at = now()
              where name = $1 and slot = 'build'",
        )
        .bind(name)
        .bind(live_schema(name))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(
            projection = name,
            version = self.projection.version(),
            "rebuilt and swapped in"
        );
        Ok(Stop::Swapped)
    }
}

/// One read of the subscription: the batch (`None` when caught up) and the checkpoint after it.
type Read = (Option<Vec<RecordedEvent>>, Checkpoint);

/// The subscription's next batch, with the checkpoint after it.
async fn read_next(subscription: &mut eventlog::Subscription) -> Result<Read, sqlx::Error> {
    let events = subscription.try_next_batch().await?;
    Ok((events, subscription.checkpoint()))
}

enum Isolated {
    Stop(Stop),
    Recovered(Checkpoint),
}

enum BuildSetup {
    Runner(RunnerError),
    Projection(ProjectionError),
}

impl From<sqlx::Error> for BuildSetup {
    fn from(error: sqlx::Error) -> Self {
        BuildSetup::Runner(error.into())
    }
}

/// Errors worth retrying rather than stopping the projection for: the database was unreachable or asked us to
/// try again, which says nothing about the event.
fn is_transient(error: &ProjectionError) -> bool {
    match error.downcast_ref::<sqlx::Error>() {
        Some(
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_),
        ) => true,
        Some(sqlx::Error::Database(db)) => db.code().is_some_and(|code| {
            // connection exceptions (08), insufficient resources (53), operator intervention such as a
            // shutdown (57P), serialization failure, deadlock
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || code == "40001"
                || code == "40P01"
        }),
        _ => false,
    }
}

/// Rebuilds `projection` now (see [`Runner::rebuild`]).
pub async fn rebuild(
    log: EventLog,
    projection: Arc<dyn Projection>,
    config: RunnerConfig,
) -> Result<(), RebuildError> {
    Runner::new(log, projection, config)?.rebuild().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_zero_once_caught_up_and_the_age_of_the_last_event_before() {
        let now = Utc::now();
        let mut progress = Progress::waiting();
        assert_eq!(progress.lag(now), None);
        progress.last_event_at = Some(now - chrono::Duration::seconds(90));
        assert_eq!(progress.lag(now), Some(chrono::Duration::seconds(90)));
        progress.caught_up = true;
        assert_eq!(progress.lag(now), Some(chrono::Duration::zero()));
    }
}
