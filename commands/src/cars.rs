//! Car listings' use cases: observing a listing (listed, repriced, changed, relisted are the `Car` decider's
//! answer), delisting one that runs stopped seeing, and recording a scraper run's steps.
//!
//! Every command of a run has an id derived from the run and the step, and the run as its correlation id, so a
//! step repeated (a retry, a restart mid-run) records nothing twice.

use domain::cars::{
    Car, CarCommand, CarError, CarEvent, Listing, ListingId, ScrapeRun, ScrapeRunCommand,
    ScrapeRunError, car_stream, scrape_run_stream,
};
use domain::{Decider, Timestamp};
use futures_util::StreamExt;
use uuid::Uuid;

use crate::{CommandError, CommandExecutor, InternalError, Metadata, Source};

/// Namespace of the scraper's command ids.
const COMMAND_NAMESPACE: Uuid = Uuid::from_u128(0x2e8b_61d4_0f3a_4c97_b1e5_7a90_d3c4_58f2);

/// The actor id the scraper's events carry.
pub const SCRAPER: &str = "carsensor-scraper";

/// The car-listings service.
#[derive(Debug, Clone)]
pub struct Cars {
    executor: CommandExecutor,
}

/// What one observation did to its car.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    New,
    Changed { relisted: bool },
    Unchanged,
}

/// A recorded step of a run.
#[derive(Debug, Clone, Copy)]
pub struct Recorded {
    pub position: Option<i64>,
    /// The step had been recorded before (a repeat changes nothing).
    pub repeat: bool,
}

impl Cars {
    pub fn new(executor: CommandExecutor) -> Self {
        Self { executor }
    }

    /// One observation of `listing` by run `run` at `at`: one `Observe` command on its car.
    pub async fn observe_listing(
        &self,
        run: Uuid,
        listing: Listing,
        at: Timestamp,
    ) -> Result<Observed, CommandError<CarError>> {
        let stream = car_stream(&listing.id);
        let metadata = metadata(run, &format!("observe {}", listing.id));
        let command = CarCommand::Observe {
            listing,
            run_id: run,
            at,
        };
        let executed = self
            .executor
            .execute::<Car>(&stream, &command, &metadata)
            .await?;
        let any = |f: fn(&CarEvent) -> bool| executed.events.iter().any(f);
        Ok(if any(|e| matches!(e, CarEvent::CarListed { .. })) {
            Observed::New
        } else if executed.events.is_empty() {
            Observed::Unchanged
        } else {
            Observed::Changed {
                relisted: any(|e| matches!(e, CarEvent::CarRelisted { .. })),
            }
        })
    }

    /// Observes `listings`, `concurrency` at a time; the outcomes in the listings' order.
    pub async fn observe_all(
        &self,
        run: Uuid,
        listings: Vec<Listing>,
        at: Timestamp,
        concurrency: usize,
    ) -> Vec<Result<Observed, CommandError<CarError>>> {
        // no stream combinator with a closure here: a closure's future held across an await makes the compiler
        // unable to prove the scheduled run's future `Send`
        let mut in_flight = futures_util::stream::FuturesOrdered::new();
        let mut outcomes = Vec::with_capacity(listings.len());
        for listing in listings {
            if in_flight.len() >= concurrency.max(1)
                && let Some(outcome) = in_flight.next().await
            {
                outcomes.push(outcome);
            }
            in_flight.push_back(self.observe_listing(run, listing, at));
        }
        while let Some(outcome) = in_flight.next().await {
            outcomes.push(outcome);
        }
        outcomes
    }

    /// Whether observing `listing` now would change its car (a new car, or one whose stored facts differ):
    /// only then is a detail page worth fetching.
    pub async fn would_change(
        &self,
        run: Uuid,
        listing: &Listing,
        at: Timestamp,
    ) -> Result<bool, InternalError> {
        let (state, _) = self.executor.load::<Car>(&car_stream(&listing.id)).await?;
        let observe = CarCommand::Observe {
            listing: listing.clone(),
            run_id: run,
            at,
        };
        Ok(state.is_none() || Car::decide(&observe, &state).is_ok_and(|e| !e.is_empty()))
    }

    /// Delists `listing`, missing from `missed_runs` complete runs in a row; `true` when it was listed.
    pub async fn delist(
        &self,
        run: Uuid,
        listing: &ListingId,
        missed_runs: u32,
        at: Timestamp,
    ) -> Result<bool, CommandError<CarError>> {
        let command = CarCommand::Delist {
            run_id: run,
            missed_runs,
            at,
        };
        let metadata = metadata(run, &format!("delist {listing}"));
        let executed = self
            .executor
            .execute::<Car>(&car_stream(listing), &command, &metadata)
            .await?;
        Ok(!executed.events.is_empty())
    }

    /// Records `step` of run `run` (started, a page read, a problem, completed).
    pub async fn record_run(
        &self,
        run: Uuid,
        step: &str,
        command: &ScrapeRunCommand,
    ) -> Result<Recorded, CommandError<ScrapeRunError>> {
        let executed = self
            .executor
            .execute::<ScrapeRun>(&scrape_run_stream(run), command, &metadata(run, step))
            .await?;
        Ok(Recorded {
            position: executed.position(),
            repeat: executed.is_repeat(),
        })
    }
}

/// The scraper's metadata for one step of run `run`: actor, source, a command id derived from both, and the
/// run as correlation id.
fn metadata(run: Uuid, step: &str) -> Metadata {
    let id = Uuid::new_v5(&COMMAND_NAMESPACE, format!("{run}\u{0}{step}").as_bytes());
    Metadata::new(Source::Worker)
        .actor(SCRAPER, crate::request::ActorRole::Worker.as_str())
        .command_id(id)
        .correlation_id(run)
}
