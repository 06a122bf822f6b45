//! Group commit: concurrent appends of one process share a transaction, so one WAL flush serves many commands.
//!
//! An append joins a queue, then waits for its outcome or for a free committer slot, whichever comes first.
//! Whoever takes a slot takes the queue (up to `max_batch` appends) and commits it in a task of its own, so a
//! cancelled caller never abandons the others' appends half-way. A lone append finds a free slot at once and
//! is committed alone, exactly as before (no timer, no delay); appends that arrive while the slots are busy
//! gather in the queue and go together when a slot frees. The batch size is bounded by `max_batch` and the
//! wait by the commit in flight.
//!
//! Each append of a group keeps its own version checks, idempotency and result: `append_batch` runs
//! `append_events` for each in a subtransaction, so a conflicting append is rolled back and reported alone while
//! the others commit; a group the database refuses as a whole (a parameter it cannot take) is appended again one
//! by one. Appends of a group are sorted by their first stream, so two groups in flight lock the
//! stream rows of single-stream appends in one order; a rarer deadlock between multi-stream appends fails only
//! the appends caught in it, as [`AppendError::Contended`], which the executor retries like a conflict.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Semaphore, oneshot};

use crate::EventLog;
use crate::append::{AppendError, Prepared};
use crate::types::Appended;

/// How appends are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommit {
    /// Transactions in flight at once (each on its own connection).
    pub committers: usize,
    /// Appends in one transaction at most (each is a subtransaction; PostgreSQL caches 64 per transaction).
    pub max_batch: usize,
}

impl Default for GroupCommit {
    fn default() -> Self {
        Self {
            committers: 2,
            max_batch: 32,
        }
    }
}

impl GroupCommit {
    /// No grouping: every append in its own transaction, `concurrency` at once.
    pub fn off(concurrency: usize) -> Self {
        Self {
            committers: concurrency.max(1),
            max_batch: 1,
        }
    }
}

type Outcome = Result<Appended, AppendError>;

struct Pending {
    /// Which call queued it (to take it back if that call is dropped before a committer took it).
    ticket: u64,
    prepared: Prepared,
    reply: oneshot::Sender<Outcome>,
}

/// Takes a queued append back out of the queue when its caller is dropped (a cancelled request) before a
/// committer took it, so it is never committed later, behind its caller's back. Once taken, it is committed
/// like a statement already sent.
struct Withdraw<'a> {
    group: &'a Group,
    ticket: u64,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        self.group.lock().retain(|p| p.ticket != self.ticket);
    }
}

/// The queue and the committer slots of one [`EventLog`] (shared by its clones).
pub(crate) struct Group {
    config: GroupCommit,
    queue: Mutex<VecDeque<Pending>>,
    slots: Arc<Semaphore>,
    next_ticket: AtomicU64,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("config", &self.config)
            .finish()
    }
}

impl Group {
    pub(crate) fn new(config: GroupCommit) -> Self {
        let config = GroupCommit {
            committers: config.committers.max(1),
            max_batch: config.max_batch.clamp(1, 64),
        };
        Self {
            config,
            queue: Mutex::new(VecDeque::new()),
            slots: Arc::new(Semaphore::new(config.committers)),
            next_ticket: AtomicU64::new(0),
        }
    }

    pub(crate) async fn append(&self, log: &EventLog, prepared: Prepared) -> Outcome {
        let (reply, mut outcome) = oneshot::channel();
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        self.lock().push_back(Pending {
            ticket,
            prepared,
            reply,
        });
        let _withdraw = Withdraw {
            group: self,
            ticket,
        };
        loop {
            tokio::select! {
                biased;
                result = &mut outcome => return result.unwrap_or_else(|_| Err(lost())),
                slot = self.slots.clone().acquire_owned() => {
                    let Ok(slot) = slot else { return Err(lost()) };
                    let batch = self.take();
                    if batch.is_empty() {
                        // another committer took ours: it is in flight
                        drop(slot);
                        return outcome.await.unwrap_or_else(|_| Err(lost()));
                    }
                    let log = log.clone();
                    tokio::spawn(async move {
                        commit(&log, batch).await;
                        drop(slot);
                    });
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Pending>> {
        // a panic while holding the lock leaves a consistent queue (push and drain only)
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Up to `max_batch` appends from the front of the queue, sorted by their first stream.
    fn take(&self) -> Vec<Pending> {
        let mut queue = self.lock();
        let n = queue.len().min(self.config.max_batch);
        let mut batch: Vec<Pending> = queue.drain(..n).collect();
        drop(queue);
        batch.sort_by(|a, b| a.prepared.first_stream().cmp(b.prepared.first_stream()));
        batch
    }
}

/// Commits `batch` (alone through `append_events`, together through `append_batch`) and answers each append.
async fn commit(log: &EventLog, batch: Vec<Pending>) {
    let outcomes = match log.pool.acquire().await {
        Err(error) => Err(error),
        Ok(mut conn) if batch.len() == 1 => Ok(vec![batch[0].prepared.append_on(&mut conn).await]),
        Ok(mut conn) => {
            let prepared: Vec<&Prepared> = batch.iter().map(|p| &p.prepared).collect();
            match Prepared::append_all_on(&prepared, &mut conn).await {
                // the statement as a whole was refused (a parameter the database cannot take, such as a NUL in
                // JSON, fails before any append runs) and wrote nothing: each append alone, with its own outcome
                Err(sqlx::Error::Database(error)) => {
                    tracing::debug!(%error, "a group commit was refused; appending its appends one by one");
                    let mut outcomes = Vec::with_capacity(prepared.len());
                    for append in prepared {
                        outcomes.push(append.append_on(&mut conn).await);
                    }
                    Ok(outcomes)
                }
                outcomes => outcomes,
            }
        }
    };
    match outcomes {
        Ok(outcomes) => {
            if outcomes.iter().any(|o| matches!(o, Ok(a) if !a.duplicate)) {
                log.wakeup.local_commit();
            }
            for (pending, outcome) in batch.into_iter().zip(outcomes) {
                let _ = pending.reply.send(outcome);
            }
        }
        Err(error) => {
            let error = Arc::new(error);
            for pending in batch {
                let _ = pending
                    .reply
                    .send(Err(AppendError::Database(error.clone())));
            }
        }
    }
}

/// The outcome of an append whose committer vanished (its task panicked): unknown, so reported as a failure
/// the caller may retry with the same command id.
fn lost() -> AppendError {
    AppendError::Database(Arc::new(sqlx::Error::WorkerCrashed))
}
