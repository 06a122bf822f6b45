//! Timers: what the deadline worker fires when the `deadlines` read model says a product's timer is due. The
//! worker knows no product: it hands each due timer (the stream it is on, and the product's own timer value as
//! stored) to [`App::fire_timer`], which routes it by the stream's category to the product that fires timers on
//! that category ([`FiresTimers`], listed in [`App::new`]).

use async_trait::async_trait;
use domain::StreamId;
use uuid::Uuid;

use crate::{App, Request};

/// What firing a due timer came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fired {
    /// It wrote events.
    Done,
    /// It had nothing to do (already done, or no longer due: the read model was behind).
    Skipped,
}

/// A fired timer: what it did (the product's name for the action, for counts and logs) and how it came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FiredTimer {
    pub action: &'static str,
    pub fired: Fired,
}

#[derive(Debug, thiserror::Error)]
pub enum TimerError {
    #[error("no product fires timers on stream {0}")]
    UnknownStream(String),
    #[error("timer {timer} on stream {stream} is not one its product knows: {error}")]
    Unknown {
        stream: String,
        timer: serde_json::Value,
        error: serde_json::Error,
    },
    #[error("{action} on stream {stream} failed: {error}")]
    Failed {
        stream: String,
        action: &'static str,
        error: String,
    },
}

/// A product's service that fires the timers it sets on its streams.
#[async_trait]
pub trait FiresTimers: Send + Sync + std::fmt::Debug {
    /// The category of the streams its timers are on.
    fn category(&self) -> &'static str;

    /// Fires `timer` (as the product stored it) on the stream of aggregate `id`.
    async fn fire(
        &self,
        request: &Request,
        id: Uuid,
        timer: &serde_json::Value,
        seed: u64,
    ) -> Result<FiredTimer, TimerError>;
}

impl App {
    /// Fires `timer`, stored by a product for `stream`, with the time of `request`; `seed` is for a timer whose
    /// command draws at random (an assignment's close allocates reviews).
    pub async fn fire_timer(
        &self,
        request: &Request,
        stream: &str,
        timer: &serde_json::Value,
        seed: u64,
    ) -> Result<FiredTimer, TimerError> {
        let unknown = || TimerError::UnknownStream(stream.to_owned());
        let parsed = StreamId::parse(stream).map_err(|_| unknown())?;
        let category = parsed.category();
        let id = stream[category.len() + 1..]
            .parse::<Uuid>()
            .map_err(|_| unknown())?;
        let product = self.timers.iter().find(|p| p.category() == category);
        product
            .ok_or_else(unknown)?
            .fire(request, id, timer, seed)
            .await
    }
}

/// A stored timer as the product's type.
pub fn decode<T: serde::de::DeserializeOwned>(
    stream: impl std::fmt::Display,
    timer: &serde_json::Value,
) -> Result<T, TimerError> {
    serde_json::from_value(timer.clone()).map_err(|error| TimerError::Unknown {
        stream: stream.to_string(),
        timer: timer.clone(),
        error,
    })
}

/// A product's outcome of firing, with what the action was.
pub fn outcome<E: std::fmt::Display>(
    stream: impl std::fmt::Display,
    action: &'static str,
    fired: Result<Fired, E>,
) -> Result<FiredTimer, TimerError> {
    match fired {
        Ok(fired) => Ok(FiredTimer { action, fired }),
        Err(error) => Err(TimerError::Failed {
            stream: stream.to_string(),
            action,
            error: error.to_string(),
        }),
    }
}
