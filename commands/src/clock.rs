//! Time as a dependency: reading it ([`Clock`]) and waiting for it ([`Sleeper`]).

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use futures_util::future::BoxFuture;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The real time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Waiting. Workers that pause (between requests, before a retry) wait through a sleeper, so tests record the
/// pauses and move a [`ManualClock`] instead of waiting for real.
pub trait Sleeper: Send + Sync + 'static {
    fn sleep(&self, duration: std::time::Duration) -> BoxFuture<'static, ()>;
}

/// Real waiting, on tokio's timer.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioSleeper;

impl Sleeper for TokioSleeper {
    fn sleep(&self, duration: std::time::Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Waits no real time: records each pause and advances its clock by it.
#[derive(Debug)]
pub struct ManualSleeper {
    clock: Arc<ManualClock>,
    slept: Mutex<Vec<std::time::Duration>>,
}

impl ManualSleeper {
    pub fn new(clock: Arc<ManualClock>) -> Self {
        Self {
            clock,
            slept: Mutex::new(Vec::new()),
        }
    }

    /// Every pause asked for so far, in order.
    pub fn pauses(&self) -> Vec<std::time::Duration> {
        self.slept.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Sleeper for ManualSleeper {
    fn sleep(&self, duration: std::time::Duration) -> BoxFuture<'static, ()> {
        self.slept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(duration);
        self.clock
            .advance(Duration::from_std(duration).unwrap_or(Duration::MAX));
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let start = DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::hours(80));
        assert_eq!(clock.now(), start + Duration::hours(80));
        clock.set(start);
        assert_eq!(clock.now(), start);
    }

    #[test]
    fn a_manual_sleeper_records_pauses_and_moves_its_clock() {
        let start = Utc::now();
        let clock = Arc::new(ManualClock::new(start));
        let sleeper = ManualSleeper::new(clock.clone());
        futures_util::FutureExt::now_or_never(sleeper.sleep(std::time::Duration::from_secs(7)))
            .expect("a manual pause is over at once");
        assert_eq!(sleeper.pauses(), [std::time::Duration::from_secs(7)]);
        assert_eq!(clock.now(), start + Duration::seconds(7));
    }

    #[test]
    fn the_system_clock_follows_real_time() {
        let before = Utc::now();
        let now = SystemClock.now();
        assert!(now >= before && now <= Utc::now());
    }
}
