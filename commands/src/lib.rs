//! Command handling: the one way anything (GraphQL, the Telegram bot, workers, the CLI) changes state.
//!
//! [`CommandExecutor::execute`] loads an aggregate's stream, folds it with the Decider's `evolve`, asks `decide`,
//! and appends the resulting events expecting the version it loaded. When another writer got there first
//! (a version conflict) it reloads and decides again, with jittered exponential backoff, a bounded number of times.
//!
//! [`CommandExecutor::execute_across`] does the same for a decision spanning several streams (a registration and
//! the claims on its email and username; a booking and both calendars), committing all of them atomically.
//!
//! A command id that was already executed returns that first result and runs nothing: a retried mutation or a
//! worker restarted mid-way is harmless.
//!
//! Within one process, commands touching the same stream queue behind a lock (striped by stream) instead of
//! racing into version conflicts, so a burst on one hot stream (fifty enrollments into one track) costs no
//! retries; between processes the expected version still decides, with retries as above.
//!
//! [`clock`]: time as a dependency. Whoever issues commands reads the time from a [`Clock`] and puts it in the
//! command, so tests move time instead of sleeping.

pub mod cars;
pub mod checker;
pub mod clock;
pub mod identity;
pub mod inbox;
pub mod interviews;
pub mod request;
pub mod timers;
pub mod tracks;
pub mod trainer;

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use domain::{Decider, DecodeError, DomainEvent, Snapshots, StreamId};
use eventlog::{
    AppendError, AppendRequest, Direction, ExpectedVersion, RecordedEvent, StreamAppend,
};

pub use clock::{Clock, ManualClock, SystemClock};
pub use eventlog::{Appended, Metadata, Source};
use eventlog::{EventLog, NewEvent};
pub use request::{Actor, Request};

/// Every product's application service, over one executor: what adapters (GraphQL, REST, the CLI, workers, the
/// Telegram bot) call to change state.
#[derive(Debug, Clone)]
pub struct App {
    pub identity: identity::Identity,
    pub cars: cars::Cars,
    pub trainer: trainer::Trainer,
    pub tracks: tracks::Tracks,
    pub interviews: interviews::Interviews,
    pub inbox: inbox::Inbox,
    /// The services that fire timers, one per stream category ([`App::fire_timer`]).
    timers: Vec<Arc<dyn timers::FiresTimers>>,
}

/// What the application services are configured with.
#[derive(Debug, Clone, Default)]
pub struct AppConfig {
    pub identity: identity::IdentityConfig,
    /// The times of the mock-interview rules.
    pub interviews: domain::interviews::Policy,
    /// Mock-interview points every new account starts with.
    pub signup_points: i64,
}

impl App {
    /// The services over `executor`; `read_models` is where the read models are (the inbox reads which
    /// notifications are the user's).
    pub fn new(
        executor: CommandExecutor,
        read_models: sqlx::PgPool,
        config: AppConfig,
    ) -> Result<Self, InternalError> {
        let tracks = tracks::Tracks::new(executor.clone());
        let interviews = interviews::Interviews::new(executor.clone(), config.interviews)
            .signup_points(config.signup_points);
        Ok(Self {
            inbox: inbox::Inbox::new(executor.clone(), read_models),
            identity: identity::Identity::new(executor.clone(), &config.identity)?,
            cars: cars::Cars::new(executor.clone()),
            trainer: trainer::Trainer::new(executor),
            timers: vec![Arc::new(tracks.clone()), Arc::new(interviews.clone())],
            tracks,
            interviews,
        })
    }

    /// Registers an account, then grants it the mock-interview points every new account starts with. The grant
    /// is its own command, derived from the account, so retrying a registration whose grant failed grants once.
    pub async fn register(
        &self,
        request: &Request,
        registration: identity::Registration,
        client: Option<std::net::IpAddr>,
    ) -> Result<identity::Registered, CommandError<identity::IdentityError>> {
        let registered = self
            .identity
            .register(request, registration, client)
            .await?;
        if let Err(error) = self
            .interviews
            .grant_signup_points(request, registered.id)
            .await
        {
            let failure = format!(
                "the signup grant of account {} failed: {error}",
                registered.id
            );
            return Err(CommandError::Internal(InternalError::Other(failure)));
        }
        Ok(registered)
    }
}

/// Why a command did not produce its events.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error + 'static> {
    /// The actor may not ask for this at all (not signed in, or not an admin).
    #[error("{0}")]
    Denied(Denied),
    /// A business rule refused the command; `E` names the rule.
    #[error("{0}")]
    Rejected(#[source] E),
    /// The stream kept changing under us through every attempt.
    #[error("stream {stream} kept changing; gave up after {attempts} attempts")]
    Conflict { stream: String, attempts: usize },
    /// Storage failed, or stored history did not decode. Details for the log, not for clients.
    #[error("internal error: {0}")]
    Internal(#[from] InternalError),
}

/// Why an actor may not ask for a use case, whatever the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("sign in first (Authorization: Bearer <token>)")]
    SignInRequired,
    #[error("only admins may do this")]
    AdminOnly,
}

impl<E: std::error::Error + 'static> From<Denied> for CommandError<E> {
    fn from(denied: Denied) -> Self {
        CommandError::Denied(denied)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Append(AppendError),
    /// A decision wrote to a stream it had not read (so its expected version is unknown): a bug in the decision.
    #[error("a decision wrote to {0}, a stream it did not read")]
    UnreadStream(String),
    /// Anything else that failed underneath (hashing, a blocking task).
    #[error("{0}")]
    Other(String),
    #[error("stream {stream} holds an event that does not decode: {source}")]
    Decode {
        stream: String,
        #[source]
        source: DecodeError,
    },
}

impl InternalError {
    pub fn other(error: impl std::fmt::Display) -> Self {
        InternalError::Other(error.to_string())
    }
}

impl<E: std::error::Error + 'static> CommandError<E> {
    /// The same failure, with a refusal's rule mapped by `f` (into a use case's wider error type).
    pub fn map_rule<F: std::error::Error + 'static>(
        self,
        f: impl FnOnce(E) -> F,
    ) -> CommandError<F> {
        match self {
            CommandError::Denied(denied) => CommandError::Denied(denied),
            CommandError::Rejected(rule) => CommandError::Rejected(f(rule)),
            CommandError::Conflict { stream, attempts } => {
                CommandError::Conflict { stream, attempts }
            }
            CommandError::Internal(error) => CommandError::Internal(error),
        }
    }
}

/// What a command did.
#[derive(Debug, Clone)]
pub struct Executed<E> {
    /// The events this execution appended (empty when the command was already satisfied, or a repeat).
    pub events: Vec<E>,
    /// Where they went; for a repeated command id, where the first execution's events went.
    pub appended: Option<Appended>,
    /// The stream's version after the command.
    pub version: i64,
}

impl<E> Executed<E> {
    /// The log position to wait for to read this command's effects (`None`: nothing was written).
    pub fn position(&self) -> Option<i64> {
        self.appended.as_ref().and_then(Appended::position)
    }

    /// Whether this was a repeat of an already executed command id.
    pub fn is_repeat(&self) -> bool {
        self.appended.as_ref().is_some_and(|a| a.duplicate)
    }
}

/// Executes commands against the log, retrying on version conflicts.
#[derive(Debug, Clone)]
pub struct CommandExecutor {
    log: EventLog,
    /// Attempts in all, the first included.
    max_attempts: usize,
    min_backoff: Duration,
    max_backoff: Duration,
    /// Shared by clones: one queue per stripe of streams in this process.
    locks: Arc<StreamLocks>,
    /// Whether aggregates that keep snapshots load from and store them.
    snapshots: bool,
}

impl CommandExecutor {
    pub fn new(log: EventLog) -> Self {
        Self {
            log,
            max_attempts: 8,
            min_backoff: Duration::from_millis(2),
            max_backoff: Duration::from_millis(200),
            locks: Arc::new(StreamLocks::new()),
            snapshots: true,
        }
    }

    /// How many times a command is attempted before a conflict is reported (at least 1).
    /// Folds every stream from its first event, ignoring and storing no snapshots (to measure what they save).
    pub fn without_snapshots(mut self) -> Self {
        self.snapshots = false;
        self
    }

    pub fn max_attempts(mut self, attempts: usize) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Runs `command` against aggregate `D` in `stream`.
    #[tracing::instrument(skip_all, fields(stream_id = %stream, command_id = ?metadata.command_id))]
    pub async fn execute<D: Decider>(
        &self,
        stream: &StreamId,
        command: &D::Command,
        metadata: &Metadata,
    ) -> Result<Executed<D::Event>, CommandError<D::Error>> {
        let label = aggregate_label::<D>();
        let _queued = self.locks.lock(std::slice::from_ref(stream)).await;
        let result = self
            .retrying(stream.to_string(), || async {
                // asked on every attempt: a twin with the same command id (queued before us here, or racing
                // us from another process) may have appended since
                if let Some(first) = self.first_result(metadata).await? {
                    let version = first.version_of(stream.as_str()).unwrap_or(0);
                    return Ok(Executed {
                        events: vec![],
                        appended: Some(first),
                        version,
                    });
                }
                self.attempt::<D>(stream, command, metadata).await
            })
            .await;
        record_outcome(label, &result, |executed| {
            (executed.appended.as_ref(), executed.events.len())
        });
        result
    }

    /// Runs a decision spanning several streams and commits it atomically: the streams it [`Decision::reads`]
    /// are loaded (in rounds, while what was read names more), [`Decision::decide`] returns the events per
    /// stream, and everything is appended in one transaction, each written stream expecting the version that
    /// was loaded. On a conflict in any of them, all are loaded again and the decision runs again, so a rule
    /// such as "this email is not yet claimed" is always judged on current state.
    ///
    /// Streams that are read but not written are not re-checked at commit; a rule that must hold at commit time
    /// writes to every stream it depends on. A refusal is re-checked instead: the streams are read one after
    /// another, so if any changed since, the decision runs again on fresh state.
    #[tracing::instrument(skip_all, fields(command = decision.label(), command_id = ?metadata.command_id))]
    pub async fn decide<D: Decision>(
        &self,
        decision: &D,
        metadata: &Metadata,
    ) -> Result<Decided<D::Output>, CommandError<D::Error>> {
        let label = decision.label();
        // queue behind commands on the streams named before anything is read (a slot, a registration's claims)
        let first_round = decision.reads(&Loaded::default());
        let description = first_round
            .iter()
            .map(StreamId::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let _queued = self.locks.lock(&first_round).await;
        let result = self
            .retrying(description, || async {
                // asked on every attempt, as in `execute`
                if let Some(first) = self.first_result(metadata).await? {
                    return Ok(Decided::repeat(first));
                }
                self.attempt_decision(decision, metadata).await
            })
            .await;
        record_outcome(label, &result, |decided| {
            (decided.written.appended.as_ref(), decided.written.events)
        });
        result
    }

    /// [`Self::decide`] for a decision over a fixed set of streams, given as a closure.
    pub async fn execute_across<E, F>(
        &self,
        label: &'static str,
        streams: &[StreamId],
        metadata: &Metadata,
        decide: F,
    ) -> Result<Written, CommandError<E>>
    where
        E: std::error::Error + Send + Sync + 'static,
        F: Fn(&Loaded) -> Result<Vec<(StreamId, Vec<NewEvent>)>, E>,
    {
        let decision = Across {
            label,
            streams,
            decide,
        };
        Ok(self.decide(&decision, metadata).await?.written)
    }

    /// Runs the command `command` builds from the current state of aggregate `D` in `stream` (a review names
    /// a solution; the command carries its author, looked up in the same state it is decided on).
    pub async fn execute_with<D, F>(
        &self,
        stream: &StreamId,
        metadata: &Metadata,
        command: F,
    ) -> Result<Decided<Vec<D::Event>>, CommandError<D::Error>>
    where
        D: Decider,
        D::Error: Send + Sync,
        F: Fn(&D::State) -> Result<D::Command, D::Error>,
    {
        let decision = Derived::<D, F> {
            stream,
            command,
            aggregate: std::marker::PhantomData,
        };
        self.decide(&decision, metadata).await
    }

    /// The first result of a command id that was already executed.
    async fn first_result<E: std::error::Error + 'static>(
        &self,
        metadata: &Metadata,
    ) -> Result<Option<Appended>, Attempt<E>> {
        let Some(command_id) = metadata.command_id else {
            return Ok(None);
        };
        let first = self
            .log
            .find_command(command_id)
            .await
            .map_err(|e| Attempt::Failed(InternalError::from(e).into()))?;
        Ok(first)
    }

    /// Runs `attempt` until it does not hit a version conflict, with jittered exponential backoff.
    async fn retrying<T, E, Fut>(
        &self,
        streams: String,
        attempt: impl FnMut() -> Fut,
    ) -> Result<T, CommandError<E>>
    where
        E: std::error::Error + 'static,
        Fut: Future<Output = Result<T, Attempt<E>>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.min_backoff)
            .with_max_delay(self.max_backoff)
            .with_max_times(self.max_attempts - 1);
        attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e| matches!(e, Attempt::Conflict))
            .notify(|_, delay| tracing::debug!(?delay, "version conflict; deciding again"))
            .await
            .map_err(|e| match e {
                Attempt::Conflict => CommandError::Conflict {
                    stream: streams,
                    attempts: self.max_attempts,
                },
                Attempt::Failed(e) => e,
            })
    }

    /// The streams `decision` reads, in rounds while what was read names more; from their snapshots when
    /// `snapshots` is on and the decision folds them with an aggregate that keeps them.
    async fn load_decision<D: Decision>(
        &self,
        decision: &D,
        snapshots: bool,
    ) -> Result<Loaded, sqlx::Error> {
        let mut loaded = Loaded {
            snapshotting: snapshots,
            ..Loaded::default()
        };
        loop {
            let unread: Vec<StreamId> = decision
                .reads(&loaded)
                .into_iter()
                .filter(|stream| !loaded.streams.contains_key(stream))
                .collect();
            if unread.is_empty() {
                return Ok(loaded);
            }
            for stream in unread {
                let snapshot = match decision.snapshots_of(&stream).filter(|_| snapshots) {
                    Some(schema) => self
                        .log
                        .snapshot(stream.as_str(), schema)
                        .await?
                        .map(|snapshot| (schema, snapshot)),
                    None => None,
                };
                let since = snapshot.as_ref().map_or(0, |(_, s)| s.version);
                let events = self
                    .log
                    .read_stream(stream.as_str(), since + 1, Direction::Forward, i64::MAX)
                    .await?;
                if let Some(snapshot) = snapshot {
                    loaded.snapshots.insert(stream.clone(), snapshot);
                }
                loaded.streams.insert(stream, events);
            }
        }
    }

    async fn attempt_decision<D: Decision>(
        &self,
        decision: &D,
        metadata: &Metadata,
    ) -> Result<Decided<D::Output>, Attempt<D::Error>> {
        let failed = |e: sqlx::Error| Attempt::Failed(InternalError::from(e).into());
        let mut loaded = self
            .load_decision(decision, self.snapshots)
            .await
            .map_err(failed)?;
        let mut decided = decision.decide(&loaded);
        if loaded.snapshot_undecodable.load(Ordering::Relaxed) {
            // a snapshot under the aggregate's schema that does not decode: fold those streams from the start
            // (the snapshot stored then replaces it)
            tracing::warn!("a snapshot does not decode; folding from the start");
            loaded = self.load_decision(decision, false).await.map_err(failed)?;
            loaded.snapshotting = self.snapshots;
            decided = decision.decide(&loaded);
        }
        for (stream, schema, snapshot) in loaded.take_due() {
            let saved = self
                .log
                .save_snapshot(stream.as_str(), schema, &snapshot)
                .await;
            if let Err(error) = saved {
                tracing::warn!(%stream, %error, "could not store a snapshot");
            }
        }
        if let Some(failure) = loaded.take_failure() {
            return Err(Attempt::Failed(failure.into()));
        }
        let (writes, output) = match decided {
            Ok(decided) => decided,
            Err(rule) => {
                // the streams were read one after another, not in one snapshot: a refusal counts only if none of
                // them changed meanwhile (else another writer's half-seen decision could be the reason)
                for stream in loaded.streams.keys() {
                    let now = self
                        .log
                        .stream_version(stream.as_str())
                        .await
                        .map_err(failed)?;
                    if now != loaded.version(stream) {
                        return Err(Attempt::Conflict);
                    }
                }
                return Err(Attempt::Failed(CommandError::Rejected(rule)));
            }
        };
        let mut appends = Vec::new();
        for (stream, events) in writes.into_iter().filter(|(_, e)| !e.is_empty()) {
            if !loaded.streams.contains_key(&stream) {
                let error = InternalError::UnreadStream(stream.to_string());
                return Err(Attempt::Failed(error.into()));
            }
            appends.push(StreamAppend {
                expected: match loaded.version(&stream) {
                    0 => ExpectedVersion::NoStream,
                    n => ExpectedVersion::Exactly(n),
                },
                stream,
                events,
            });
        }
        if appends.is_empty() {
            return Ok(Decided {
                written: Written {
                    appended: None,
                    events: 0,
                },
                output: Some(output),
            });
        }
        let events = appends.iter().map(|w| w.events.len()).sum();
        let request = AppendRequest {
            streams: appends,
            metadata: metadata.clone(),
        };
        match self.log.append(request).await {
            // a concurrent twin with the same command id won: report its result, not ours
            Ok(appended) if appended.duplicate => Ok(Decided::repeat(appended)),
            Ok(appended) => Ok(Decided {
                written: Written {
                    events,
                    appended: Some(appended),
                },
                output: Some(output),
            }),
            Err(AppendError::Conflict { .. } | AppendError::Contended) => Err(Attempt::Conflict),
            Err(e) => Err(Attempt::Failed(InternalError::Append(e).into())),
        }
    }

    async fn attempt<D: Decider>(
        &self,
        stream: &StreamId,
        command: &D::Command,
        metadata: &Metadata,
    ) -> Result<Executed<D::Event>, Attempt<D::Error>> {
        let (state, version) = self
            .load::<D>(stream)
            .await
            .map_err(|e| Attempt::Failed(e.into()))?;
        let events =
            D::decide(command, &state).map_err(|e| Attempt::Failed(CommandError::Rejected(e)))?;
        if events.is_empty() {
            return Ok(Executed {
                events,
                appended: None,
                version,
            });
        }
        let request = AppendRequest::single(
            stream.clone(),
            ExpectedVersion::Exactly(version),
            events.iter().map(NewEvent::from_domain).collect(),
            metadata.clone(),
        );
        match self.log.append(request).await {
            Ok(appended) => Ok(Executed {
                version: appended.version_of(stream.as_str()).unwrap_or(version),
                // a concurrent twin with the same command id won: report its result, not ours
                events: if appended.duplicate { vec![] } else { events },
                appended: Some(appended),
            }),
            Err(AppendError::Conflict { .. } | AppendError::Contended) => Err(Attempt::Conflict),
            Err(e) => Err(Attempt::Failed(InternalError::Append(e).into())),
        }
    }

    /// The events `appended` put in `stream`, decoded: for a repeated command id, what its first execution
    /// decided there.
    pub async fn appended_events<D: Decider>(
        &self,
        stream: &StreamId,
        appended: &Appended,
    ) -> Result<Vec<D::Event>, InternalError> {
        let versions: Vec<i64> = appended
            .events
            .iter()
            .filter(|(id, _)| id == stream.as_str())
            .map(|(_, event)| event.version)
            .collect();
        let Some(&from) = versions.iter().min() else {
            return Ok(vec![]);
        };
        let recorded = self
            .log
            .read_stream(
                stream.as_str(),
                from,
                eventlog::Direction::Forward,
                versions.len() as i64,
            )
            .await?;
        recorded
            .iter()
            .map(|record| {
                record.decode().map_err(|source| InternalError::Decode {
                    stream: stream.to_string(),
                    source,
                })
            })
            .collect()
    }

    /// The aggregate's current state and version: folded from its latest snapshot (when `D` keeps them) and
    /// the events after it, storing a new snapshot when enough events followed the last one.
    pub async fn load<D: Decider>(
        &self,
        stream: &StreamId,
    ) -> Result<(D::State, i64), InternalError> {
        let snapshots = D::snapshots().filter(|_| self.snapshots);
        let from = match snapshots {
            Some(snapshots) => self.snapshot(stream, &snapshots).await?,
            None => None,
        };
        let (mut state, since) = from.unwrap_or_else(|| (D::initial_state(), 0));
        let recorded = self
            .log
            .read_stream(stream.as_str(), since + 1, Direction::Forward, i64::MAX)
            .await?;
        let version = recorded.last().map_or(since, |e| e.version);
        for record in &recorded {
            let event: D::Event = record.decode().map_err(|source| InternalError::Decode {
                stream: stream.to_string(),
                source,
            })?;
            state = D::evolve(state, &event);
        }
        if let Some(snapshots) = snapshots
            && version - since >= snapshots.every
        {
            self.save_snapshot(stream, &snapshots, &state, version)
                .await;
        }
        Ok((state, version))
    }

    /// `stream`'s latest snapshot under `snapshots`' schema, decoded; none when there is none or it does not
    /// decode (then the stream is folded from its start, and the next snapshot stored replaces it).
    async fn snapshot<S>(
        &self,
        stream: &StreamId,
        snapshots: &Snapshots<S>,
    ) -> Result<Option<(S, i64)>, InternalError> {
        let Some(snapshot) = self.log.snapshot(stream.as_str(), snapshots.schema).await? else {
            return Ok(None);
        };
        let decoded = (snapshots.decode)(snapshot.state);
        if decoded.is_none() {
            tracing::warn!(%stream, schema = snapshots.schema, "a snapshot does not decode; folding from the start");
        }
        Ok(decoded.map(|state| (state, snapshot.version)))
    }

    /// Stores `state` at `version` as `stream`'s snapshot. A cache: a failure is logged, not returned.
    async fn save_snapshot<S>(
        &self,
        stream: &StreamId,
        snapshots: &Snapshots<S>,
        state: &S,
        version: i64,
    ) {
        let Some(state) = (snapshots.encode)(state) else {
            tracing::warn!(%stream, schema = snapshots.schema, "a state does not encode as a snapshot");
            return;
        };
        let snapshot = eventlog::Snapshot { version, state };
        let saved = self
            .log
            .save_snapshot(stream.as_str(), snapshots.schema, &snapshot)
            .await;
        if let Err(error) = saved {
            tracing::warn!(%stream, %error, "could not store a snapshot");
        }
    }
}

/// What a multi-stream command did.
#[derive(Debug, Clone)]
pub struct Written {
    /// Where the events went; for a repeated command id, where the first execution's events went. `None` when
    /// the decision produced no events.
    pub appended: Option<Appended>,
    /// How many events this execution appended (0 for a repeat).
    pub events: usize,
}

impl Written {
    /// The log position to wait for to read this command's effects (`None`: nothing was written).
    pub fn position(&self) -> Option<i64> {
        self.appended.as_ref().and_then(Appended::position)
    }

    /// Whether this was a repeat of an already executed command id.
    pub fn is_repeat(&self) -> bool {
        self.appended.as_ref().is_some_and(|a| a.duplicate)
    }
}

/// A decision spanning several streams, appended atomically by [`CommandExecutor::decide`].
///
/// It declares what it reads: [`Self::reads`] is asked with nothing loaded, then again with what was loaded, until
/// it names no stream that is not loaded yet, so a decision can find its streams through the ones it reads
/// first (a slot names its two sides, whose calendars and ledgers are read next). Each stream is read once per
/// attempt. It may write only streams it read.
pub trait Decision {
    type Error: std::error::Error + Send + Sync + 'static;
    /// What the decision tells its caller besides the events (the domain events it decided, an id).
    type Output;

    /// The command's name in metrics and logs.
    fn label(&self) -> &'static str;

    /// The streams to read, given those read so far.
    fn reads(&self, loaded: &Loaded) -> Vec<StreamId>;

    /// The snapshot schema `stream` is loaded under (its latest snapshot and the events after it), when the
    /// decision folds it with an aggregate that keeps snapshots ([`Decider::snapshots`]); otherwise every event
    /// of it is loaded.
    fn snapshots_of(&self, _stream: &StreamId) -> Option<&'static str> {
        None
    }

    /// The events to append per stream, and the output.
    #[allow(clippy::type_complexity)]
    fn decide(
        &self,
        loaded: &Loaded,
    ) -> Result<(Vec<(StreamId, Vec<NewEvent>)>, Self::Output), Self::Error>;
}

/// What a [`Decision`] did.
#[derive(Debug, Clone)]
pub struct Decided<O> {
    pub written: Written,
    /// The decision's output; `None` for a repeated command id (nothing was decided this time).
    pub output: Option<O>,
}

impl<O> Decided<O> {
    fn repeat(first: Appended) -> Self {
        Self {
            written: Written {
                appended: Some(first),
                events: 0,
            },
            output: None,
        }
    }

    /// The log position to wait for to read this command's effects (`None`: nothing was written).
    pub fn position(&self) -> Option<i64> {
        self.written.position()
    }
}

/// A command on one aggregate built from its current state, read once per attempt
/// ([`CommandExecutor::execute_with`]).
struct Derived<'a, D, F> {
    stream: &'a StreamId,
    command: F,
    aggregate: std::marker::PhantomData<D>,
}

impl<D, F> Decision for Derived<'_, D, F>
where
    D: Decider,
    D::Error: Send + Sync,
    F: Fn(&D::State) -> Result<D::Command, D::Error>,
{
    type Error = D::Error;
    type Output = Vec<D::Event>;

    fn label(&self) -> &'static str {
        aggregate_label::<D>()
    }

    fn reads(&self, _: &Loaded) -> Vec<StreamId> {
        vec![self.stream.clone()]
    }

    fn snapshots_of(&self, stream: &StreamId) -> Option<&'static str> {
        D::snapshots()
            .filter(|_| stream == self.stream)
            .map(|s| s.schema)
    }

    #[allow(clippy::type_complexity)]
    fn decide(
        &self,
        loaded: &Loaded,
    ) -> Result<(Vec<(StreamId, Vec<NewEvent>)>, Vec<D::Event>), D::Error> {
        let state = loaded.state::<D>(self.stream);
        let command = (self.command)(&state)?;
        let events = D::decide(&command, &state)?;
        Ok((vec![(self.stream.clone(), new_events(&events))], events))
    }
}

/// A decision over a fixed set of streams ([`CommandExecutor::execute_across`]).
struct Across<'a, F> {
    label: &'static str,
    streams: &'a [StreamId],
    decide: F,
}

impl<E, F> Decision for Across<'_, F>
where
    E: std::error::Error + Send + Sync + 'static,
    F: Fn(&Loaded) -> Result<Vec<(StreamId, Vec<NewEvent>)>, E>,
{
    type Error = E;
    type Output = ();

    fn label(&self) -> &'static str {
        self.label
    }

    fn reads(&self, _: &Loaded) -> Vec<StreamId> {
        self.streams.to_vec()
    }

    fn decide(&self, loaded: &Loaded) -> Result<(Vec<(StreamId, Vec<NewEvent>)>, ()), E> {
        (self.decide)(loaded).map(|writes| (writes, ()))
    }
}

/// The streams a multi-stream decision reads, as loaded for one attempt.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Per stream, its events (after its snapshot, when it was loaded from one).
    streams: HashMap<StreamId, Vec<RecordedEvent>>,
    /// The snapshots streams were loaded from, with their schema.
    snapshots: HashMap<StreamId, (&'static str, eventlog::Snapshot)>,
    /// Snapshots to store after the attempt: states folded over enough events since the last one.
    due: Mutex<Vec<(StreamId, &'static str, eventlog::Snapshot)>>,
    /// Whether to note snapshots due.
    snapshotting: bool,
    /// A snapshot under the aggregate's schema did not decode (the attempt loads again without snapshots).
    snapshot_undecodable: AtomicBool,
    /// The first stream that did not decode; the attempt fails with it whatever the decision returned.
    failure: Mutex<Option<InternalError>>,
}

impl Loaded {
    /// `stream`'s state under aggregate `D`. A stream that was not loaded is empty; one holding an event that
    /// does not decode yields the initial state here and fails the whole command as an internal error.
    pub fn state<D: Decider>(&self, stream: &StreamId) -> D::State {
        let snapshots = D::snapshots();
        let (mut state, since) = match self.snapshots.get(stream) {
            None => (D::initial_state(), 0),
            Some((schema, snapshot)) => {
                let decoded = snapshots
                    .filter(|s| s.schema == *schema)
                    .and_then(|s| (s.decode)(snapshot.state.clone()));
                let Some(state) = decoded else {
                    self.fail(InternalError::Other(format!(
                        "the snapshot of {stream} ({schema}) does not decode as {}",
                        aggregate_label::<D>()
                    )));
                    self.snapshot_undecodable.store(true, Ordering::Relaxed);
                    return D::initial_state();
                };
                (state, snapshot.version)
            }
        };
        let events = self.streams.get(stream).map(Vec::as_slice).unwrap_or(&[]);
        for record in events {
            match record.decode::<D::Event>() {
                Ok(event) => state = D::evolve(state, &event),
                Err(source) => {
                    self.fail(InternalError::Decode {
                        stream: stream.to_string(),
                        source,
                    });
                    return D::initial_state();
                }
            }
        }
        let version = self.version(stream);
        if let Some(snapshots) = snapshots
            && self.snapshotting
            && version - since >= snapshots.every
            && let Some(encoded) = (snapshots.encode)(&state)
        {
            let snapshot = eventlog::Snapshot {
                version,
                state: encoded,
            };
            let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
            due.push((stream.clone(), snapshots.schema, snapshot));
        }
        state
    }

    /// Records the first failure of the attempt.
    fn fail(&self, error: InternalError) {
        let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        failure.get_or_insert(error);
    }

    /// Whether `stream` was read.
    pub fn has(&self, stream: &StreamId) -> bool {
        self.streams.contains_key(stream)
    }

    /// `stream`'s version as loaded (0: no events yet).
    pub fn version(&self, stream: &StreamId) -> i64 {
        let since = self.snapshots.get(stream).map_or(0, |(_, s)| s.version);
        self.streams
            .get(stream)
            .and_then(|events| events.last())
            .map_or(since, |e| e.version)
    }

    fn take_due(&mut self) -> Vec<(StreamId, &'static str, eventlog::Snapshot)> {
        std::mem::take(self.due.get_mut().unwrap_or_else(|p| p.into_inner()))
    }

    fn take_failure(&mut self) -> Option<InternalError> {
        self.failure
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

/// Per-process queues of commands by stream: a fixed set of locks, each stream hashed to one.
#[derive(Debug)]
struct StreamLocks {
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl StreamLocks {
    // many, so that commands on different streams rarely queue behind each other (and group commit gets them
    // together)
    const STRIPES: usize = 1024;

    fn new() -> Self {
        Self {
            stripes: (0..Self::STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    /// Holds the locks of `streams`, taken in one global order so two multi-stream commands never deadlock.
    async fn lock(&self, streams: &[StreamId]) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = streams
            .iter()
            .map(|stream| {
                let mut hasher = DefaultHasher::new();
                stream.hash(&mut hasher);
                (hasher.finish() % Self::STRIPES as u64) as usize
            })
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for stripe in stripes {
            guards.push(self.stripes[stripe].lock().await);
        }
        guards
    }
}

/// The stored form of a decision's events, for [`CommandExecutor::execute_across`].
pub fn new_events<E: DomainEvent>(events: &[E]) -> Vec<NewEvent> {
    events.iter().map(NewEvent::from_domain).collect()
}

/// Metric names, in one place.
pub const COMMANDS_TOTAL: &str = "academy_commands_total";
pub const EVENTS_APPENDED_TOTAL: &str = "academy_events_appended_total";

/// Describes the commands' series, so `/metrics` lists them before the first command. Their `command` label is
/// open-ended (each decision names itself), so no label set is registered at zero.
pub fn register_metrics() {
    metrics::describe_counter!(
        COMMANDS_TOTAL,
        "commands executed, by command and outcome (accepted, repeat, unchanged, rejected, conflict, internal_error)"
    );
    metrics::describe_counter!(
        EVENTS_APPENDED_TOTAL,
        "events appended to the log, by command"
    );
}

/// `commands_total{command, outcome}` and `events_appended_total{command}`.
fn record_outcome<T, E: std::error::Error + 'static>(
    label: &'static str,
    result: &Result<T, CommandError<E>>,
    written: impl Fn(&T) -> (Option<&Appended>, usize),
) {
    let outcome = match result {
        Ok(value) => {
            let (appended, events) = written(value);
            metrics::counter!(EVENTS_APPENDED_TOTAL, "command" => label).increment(events as u64);
            match appended {
                // a command id already executed, by an earlier request or a concurrent twin
                Some(appended) if appended.duplicate => "repeat",
                Some(_) => "accepted",
                None => "unchanged",
            }
        }
        Err(CommandError::Rejected(_) | CommandError::Denied(_)) => "rejected",
        Err(CommandError::Conflict { .. }) => "conflict",
        Err(CommandError::Internal(_)) => "internal_error",
    };
    metrics::counter!(COMMANDS_TOTAL, "command" => label, "outcome" => outcome).increment(1);
}

/// `domain::identity::Account` → `Account`.
fn aggregate_label<D>() -> &'static str {
    let name = std::any::type_name::<D>();
    name.rsplit("::").next().unwrap_or(name)
}

/// One attempt's failure: worth retrying, or final.
enum Attempt<E: std::error::Error + 'static> {
    Conflict,
    Failed(CommandError<E>),
}
