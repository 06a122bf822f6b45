//! Command handling: the one way anything (GraphQL, the Telegram bot, workers, the CLI) changes state.
//!
//! [`CommandExecutor::execute`] loads an aggregate's stream, folds it with the Decider's `evolve`, asks `decide`,
//! and appends the resulting events expecting the version it loaded. When another writer got there first
//! (a version conflict) it reloads and decides again, with jittered exponential backoff, a bounded number of times.
//!
//! A command id that was already executed returns that first result and runs nothing: a retried mutation or a
//! worker restarted mid-way is harmless.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use domain::{Decider, DecodeError, StreamId};
use eventlog::{
    AppendError, AppendRequest, Appended, EventLog, ExpectedVersion, Metadata, NewEvent,
};

/// Why a command did not produce its events.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error + 'static> {
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

#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Append(AppendError),
    #[error("stream {stream} holds an event that does not decode: {source}")]
    Decode {
        stream: String,
        #[source]
        source: DecodeError,
    },
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
}

impl CommandExecutor {
    pub fn new(log: EventLog) -> Self {
        Self {
            log,
            max_attempts: 8,
            min_backoff: Duration::from_millis(2),
            max_backoff: Duration::from_millis(200),
        }
    }

    /// How many times a command is attempted before a conflict is reported (at least 1).
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
        if let Some(command_id) = metadata.command_id
            && let Some(first) = self
                .log
                .find_command(command_id)
                .await
                .map_err(InternalError::from)?
        {
            let version = first.version_of(stream.as_str()).unwrap_or(0);
            return Ok(Executed {
                events: vec![],
                appended: Some(first),
                version,
            });
        }

        let attempt = || self.attempt::<D>(stream, command, metadata);
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
                    stream: stream.to_string(),
                    attempts: self.max_attempts,
                },
                Attempt::Failed(e) => e,
            })
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
            Err(AppendError::Conflict { .. }) => Err(Attempt::Conflict),
            Err(e) => Err(Attempt::Failed(InternalError::Append(e).into())),
        }
    }

    /// The aggregate's current state and version.
    pub async fn load<D: Decider>(
        &self,
        stream: &StreamId,
    ) -> Result<(D::State, i64), InternalError> {
        let recorded = self.log.read_whole_stream(stream.as_str()).await?;
        let version = recorded.last().map_or(0, |e| e.version);
        let mut state = D::initial_state();
        for record in &recorded {
            let event: D::Event = record.decode().map_err(|source| InternalError::Decode {
                stream: stream.to_string(),
                source,
            })?;
            state = D::evolve(state, &event);
        }
        Ok((state, version))
    }
}

/// One attempt's failure: worth retrying, or final.
enum Attempt<E: std::error::Error + 'static> {
    Conflict,
    Failed(CommandError<E>),
}
