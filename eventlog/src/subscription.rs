//! Catch-up, then live: a subscriber reads batches after its checkpoint until it reaches the horizon, then waits
//! for a wake-up (a local commit or another process's NOTIFY), or the polling interval, and reads again.

use std::time::Duration;

use tokio::sync::watch;

use crate::EventLog;
use crate::types::{Checkpoint, RecordedEvent};

/// How often a quiet subscriber looks anyway. Covers the cases no notification announces: a transaction that held
/// the horizon back ends by rolling back, or a NOTIFY was lost while the LISTEN connection reconnected.
pub const DEFAULT_POLL: Duration = Duration::from_millis(250);
/// How soon to look again when committed events wait behind an open transaction (whose end nobody announces
/// when it rolls back or belongs to another database of the cluster); doubled on every further held-back read,
/// up to the polling interval, so an idle-in-transaction session does not make every subscriber spin.
const HELD_BACK_RETRY: Duration = Duration::from_millis(5);

#[derive(Debug)]
pub struct Subscription {
    log: EventLog,
    checkpoint: Checkpoint,
    types: Option<Vec<String>>,
    batch_size: i64,
    poll: Duration,
    wake: watch::Receiver<u64>,
    /// Consecutive reads that found committed events beyond the horizon.
    held_back: u32,
}

impl EventLog {
    /// Every event after `from` (of `types` when given), exactly once and in commit-safe order: first what is
    /// already there, then live.
    pub fn subscribe(&self, from: Checkpoint, types: Option<Vec<String>>) -> Subscription {
        Subscription {
            log: self.clone(),
            checkpoint: from,
            types,
            batch_size: 1000,
            poll: DEFAULT_POLL,
            wake: self.wakeup.subscribe(),
            held_back: 0,
        }
    }
}

impl Subscription {
    pub fn batch_size(mut self, batch_size: i64) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Everything up to here has been delivered.
    pub fn checkpoint(&self) -> Checkpoint {
        self.checkpoint
    }

    /// Whether the last read found committed events waiting behind an open transaction.
    pub fn held_back(&self) -> bool {
        self.held_back > 0
    }

    /// The next non-empty batch, waiting as long as it takes.
    pub async fn next_batch(&mut self) -> Result<Vec<RecordedEvent>, sqlx::Error> {
        loop {
            if let Some(events) = self.try_next_batch().await? {
                return Ok(events);
            }
            self.wait().await;
        }
    }

    /// The next batch if one is there now (`None` when caught up). Advances the checkpoint either way.
    pub async fn try_next_batch(&mut self) -> Result<Option<Vec<RecordedEvent>>, sqlx::Error> {
        // mark wake-ups seen *before* reading, so a commit landing during the read still wakes the next wait
        self.wake.borrow_and_update();
        let batch = self
            .log
            .read_all(self.checkpoint, self.batch_size, self.types.as_deref())
            .await?;
        self.checkpoint = batch.checkpoint;
        self.held_back = if batch.held_back {
            self.held_back.saturating_add(1)
        } else {
            0
        };
        Ok((!batch.events.is_empty()).then_some(batch.events))
    }

    /// Waits for a wake-up or the polling interval, whichever comes first.
    pub async fn wait(&mut self) {
        let patience = match self.held_back {
            0 => self.poll,
            n => HELD_BACK_RETRY
                .saturating_mul(1 << (n - 1).min(10))
                .min(self.poll),
        };
        let _ = tokio::time::timeout(patience, self.wake.changed()).await;
    }
}
