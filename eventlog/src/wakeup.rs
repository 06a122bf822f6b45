//! Waking subscribers when events are committed.
//!
//! In-process appends bump a counter that subscribers watch. Other processes learn of appends through
//! LISTEN/NOTIFY, but a NOTIFY inside every append transaction would serialise commits on the notification queue
//! lock, so a background task sends one `pg_notify` for all local commits of a short interval instead.
//! Subscribers also poll, so a lost notification only delays.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tokio::task::AbortHandle;

pub(crate) const CHANNEL: &str = "academy_events";

#[derive(Debug)]
pub(crate) struct Wakeup {
    /// Bumped on every commit made by this process; drives the coalesced NOTIFY.
    local: Arc<watch::Sender<u64>>,
    /// Bumped on every commit anyone made (local, or NOTIFY received); what subscribers wait on.
    any: Arc<watch::Sender<u64>>,
    tasks: [AbortHandle; 2],
}

impl Wakeup {
    pub(crate) fn start(pool: PgPool) -> Self {
        let local = Arc::new(watch::Sender::new(0_u64));
        let any = Arc::new(watch::Sender::new(0_u64));
        let notifier = tokio::spawn(notify_others(pool.clone(), local.subscribe()));
        let listener = tokio::spawn(listen_to_others(pool, any.clone()));
        Self {
            local,
            any,
            tasks: [notifier.abort_handle(), listener.abort_handle()],
        }
    }

    pub(crate) fn local_commit(&self) {
        self.local.send_modify(|n| *n = n.wrapping_add(1));
        self.any.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.any.subscribe()
    }
}

impl Drop for Wakeup {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// At most one NOTIFY per this interval: under load a notification per commit burst would still be thousands of
/// extra transactions a second; other processes see new events at most this much later (local subscribers are
/// woken at once).
const NOTIFY_EVERY: Duration = Duration::from_millis(10);

async fn notify_others(pool: PgPool, mut commits: watch::Receiver<u64>) {
    while commits.changed().await.is_ok() {
        commits.borrow_and_update();
        if let Err(error) = sqlx::query("select pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(&pool)
            .await
        {
            tracing::warn!(%error, "could not notify other processes of new events; they will poll");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // commits during this pause are announced by the next NOTIFY
        tokio::time::sleep(NOTIFY_EVERY).await;
    }
}

async fn listen_to_others(pool: PgPool, any: Arc<watch::Sender<u64>>) {
    loop {
        // a closed pool is an orderly stop, not a lost connection
        if pool.is_closed() {
            return;
        }
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(_) if pool.is_closed() => return,
            Err(error) => {
                tracing::warn!(%error, "cannot LISTEN for other processes' events; polling until it can");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        if let Err(error) = listener.listen(CHANNEL).await {
            tracing::warn!(%error, "LISTEN failed; polling until it works");
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        loop {
            match listener.recv().await {
                Ok(_) => any.send_modify(|n| *n = n.wrapping_add(1)),
                Err(_) if pool.is_closed() => return,
                Err(error) => {
                    // recv reconnects on its next call; wake everyone in case we missed something meanwhile
                    tracing::warn!(%error, "lost the LISTEN connection; reconnecting");
                    any.send_modify(|n| *n = n.wrapping_add(1));
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    break;
                }
            }
        }
    }
}
