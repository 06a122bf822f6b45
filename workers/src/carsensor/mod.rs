//! The carsensor.net scraper: walks the listing pages, turns each listing into one [`CarCommand::Observe`], and
//! records the run page by page in its own stream so admins can audit it.
//!
//! One run ([`Scraper::run_once`]):
//! 1. takes a PostgreSQL advisory lock, so several instances never scrape at once, and records
//!    `ScrapeRunStarted`;
//! 2. reads robots.txt (nothing is fetched when it cannot be read);
//! 3. for each start page, follows `link[rel=next]` up to the page limit: fetches ([`fetch`]: only URLs on
//!    the base URL's origin, redirects included, each allowed by robots.txt), parses ([`parse`]), reports a
//!    layout change when the page has listing markup but no listing could be read, is no HTML page at all, or
//!    most listings lack a field the parser always found before (a results page without results is a page of
//!    zero listings, not a layout change), fetches a detail page for a listing that is new or changed while its
//!    list entry lacks a field, executes one command per listing (`concurrency` at a time), and records the
//!    page with the listing ids it showed. The pages form a pipeline: while the listings of one page are
//!    observed, the next page is fetched and parsed (parsing off the tasks' threads) and the page before is
//!    recorded; requests to the site stay one at a time with the pause between them, and pages are recorded
//!    in order, each after its listings;
//! 4. when the run was complete (every start page followed to its end, no list page failed, no layout
//!    change), waits for the `cars` read model to take in the run, then delists every active listing that the
//!    last `delist_after_runs` complete runs all missed;
//! 5. records `ScrapeRunCompleted` with its tally.
//!
//! Failures never panic and never stop the run early except where going on would be wrong: a list page that
//! cannot be fetched ends its start page's walk (the rest of the pagination cannot be reached) and makes the
//! run incomplete, so no listing is delisted on the strength of a run that did not see everything. A detail
//! page that cannot be fetched is recorded as a failure too, but the run stays complete: the list page showed
//! the listing, and its detail fills in on a later run.

pub mod fetch;
pub mod parse;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use commands::CommandError;
use commands::cars::{Cars, Recorded};
use domain::Timestamp;
use domain::cars::{Listing, ListingId, RunTally, ScrapeRunCommand, ScrapeRunError};
use projections::Projections;
use reqwest::Url;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

use crate::clock::{Clock, Sleeper};
use fetch::{Failure, FetchConfig, Fetcher};

/// Metric names, in one place.
pub const RUNS_TOTAL: &str = "academy_scraper_runs_total";
pub const LISTINGS_TOTAL: &str = "academy_scraper_listings_total";
pub const LAYOUT_CHANGES_TOTAL: &str = "academy_scraper_layout_changes_total";
pub const PAGE_FAILURES_TOTAL: &str = "academy_scraper_page_failures_total";

/// The actor id the scraper's events carry.
pub use commands::cars::SCRAPER as ACTOR;

/// Advisory lock key held during a run (`hashtext('academy/carsensor-scraper')` would do as well; fixed here).
const RUN_LOCK: i64 = 0x5ca1_ab1e_ca75;

#[derive(Debug, Clone)]
pub struct ScraperConfig {
    /// The site, e.g. `https://www.carsensor.net`.
    pub base_url: Url,
    /// Where each walk starts: paths on the site, or absolute URLs.
    pub start_pages: Vec<String>,
    /// Most list pages fetched in one run (detail pages not counted). Reaching it makes the run incomplete.
    pub page_limit: u32,
    /// A listing missing from this many consecutive complete runs is delisted.
    pub delist_after_runs: u32,
    /// Fetch a detail page for a new or changed listing whose list entry lacks a field.
    pub fetch_details: bool,
    /// Listings of one page executed at once.
    pub concurrency: usize,
    /// How long to wait for the `cars` read model before delisting.
    pub read_model_timeout: Duration,
    pub fetch: FetchConfig,
}

impl ScraperConfig {
    pub fn new(base_url: Url) -> Self {
        Self {
            base_url,
            start_pages: vec!["/usedcar/index.html".to_owned()],
            page_limit: 50,
            delist_after_runs: 3,
            fetch_details: true,
            concurrency: 8,
            read_model_timeout: Duration::from_secs(60),
            fetch: FetchConfig::default(),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub run_id: Uuid,
    pub tally: RunTally,
    pub complete: bool,
    /// The log position of `ScrapeRunCompleted`.
    pub position: Option<i64>,
}

pub use commands::cars::Observed;

pub struct Scraper {
    config: ScraperConfig,
    cars: Cars,
    projections: Arc<Projections>,
    pool: PgPool,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    /// Held while a run is in progress; shutting down waits for it.
    running: tokio::sync::Mutex<()>,
}

impl Scraper {
    pub fn new(
        config: ScraperConfig,
        cars: Cars,
        projections: Arc<Projections>,
        pool: PgPool,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
    ) -> Self {
        Self {
            config,
            cars,
            projections,
            pool,
            clock,
            sleeper,
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// Waits until no run is in progress.
    pub async fn idle(&self) {
        let _ = self.running.lock().await;
    }

    /// One run. `None` when another process (or task) is already running one: the run is skipped, not queued
    /// behind it. `stop` turning true ends the run after the page in hand, recorded as incomplete.
    #[tracing::instrument(skip_all)]
    pub async fn run_once(&self, stop: watch::Receiver<bool>) -> anyhow::Result<Option<RunReport>> {
        let Ok(_running) = self.running.try_lock() else {
            tracing::info!("a scraper run of this process is in progress; skipping this one");
            return Ok(None);
        };
        let mut lock = self.pool.acquire().await?;
        let locked: bool = sqlx::query_scalar("select pg_try_advisory_lock($1)")
            .bind(RUN_LOCK)
            .fetch_one(&mut *lock)
            .await?;
        if !locked {
            tracing::info!("another scraper run is in progress; skipping this one");
            return Ok(None);
        }
        let result = self.run_locked(stop).await;
        let unlocked = sqlx::query("select pg_advisory_unlock($1)")
            .bind(RUN_LOCK)
            .execute(&mut *lock)
            .await;
        if let Err(error) = unlocked {
            // closing the connection releases it too
            tracing::warn!(%error, "could not release the scraper's lock; dropping its connection");
            let _ = lock.detach();
        }
        let outcome = match &result {
            Ok(report) if report.complete => "complete",
            Ok(_) => "incomplete",
            Err(_) => "error",
        };
        metrics::counter!(RUNS_TOTAL, "outcome" => outcome).increment(1);
        result.map(Some)
    }

    async fn run_locked(&self, stop: watch::Receiver<bool>) -> anyhow::Result<RunReport> {
        let run_id = Uuid::now_v7();
        let run = RunIds { id: run_id };
        let start_urls: Vec<Url> = self
            .config
            .start_pages
            .iter()
            .map(|page| self.config.base_url.join(page))
            .collect::<Result<_, _>>()?;
        let started = self
            .record(
                &run,
                "start",
                ScrapeRunCommand::Start {
                    start_urls: start_urls.iter().map(Url::to_string).collect(),
                    at: self.now(),
                },
            )
            .await?;
        let started_position = started.unwrap_or_default();
        tracing::info!(%run_id, "scraper run started");

        let mut tally = RunTally::default();
        let mut complete = true;
        let mut seen: HashSet<ListingId> = HashSet::new();
        let mut fetcher = Fetcher::new(
            self.config.base_url.clone(),
            self.config.fetch.clone(),
            self.clock.clone(),
            self.sleeper.clone(),
        )?;
        if let Err(failure) = fetcher.load_robots().await {
            let robots = fetcher.robots_url()?;
            self.failure(&run, &robots, &failure, &mut tally).await?;
            complete = false;
        } else {
            let mut pages_left = self.config.page_limit;
            let mut visited: HashSet<Url> = HashSet::new();
            // the listings of the page in hand are observed while the next page is fetched and read (the site
            // still sees one request at a time, with the pause between them) and the page before is recorded
            let mut in_hand: Option<ReadPage> = None;
            let mut to_record: Option<SeenPage> = None;
            let mut read_tally = RunTally::default();
            'walks: for start in &start_urls {
                let mut next = Some(start.clone());
                let mut page_number = 0;
                loop {
                    let mut to_read = None;
                    let mut end_run = false;
                    if let Some(url) = next.take() {
                        if *stop.borrow() {
                            tracing::info!(%run_id, "stopping the run early: shutting down");
                            complete = false;
                            end_run = true;
                        } else if !visited.insert(url.clone()) {
                            // a walk that comes back to a page it read has ended
                        } else if pages_left == 0 {
                            tracing::warn!(%run_id, limit = self.config.page_limit, "page limit reached; the run is incomplete");
                            complete = false;
                            end_run = true;
                        } else {
                            pages_left -= 1;
                            page_number += 1;
                            to_read = Some(url);
                        }
                    }
                    let recording = async {
                        match to_record.take() {
                            Some(page) => self.record_page(&run, page).await,
                            None => Ok(()),
                        }
                    };
                    let taking_in = async {
                        match in_hand.take() {
                            Some(page) => self
                                .take_in(&run, page, &mut tally, &mut seen)
                                .await
                                .map(Some),
                            None => Ok(None),
                        }
                    };
                    let reading = async {
                        match &to_read {
                            Some(url) => self
                                .read_page(&run, &fetcher, url, page_number, &mut read_tally)
                                .await
                                .map(Some),
                            None => Ok(None),
                        }
                    };
                    let (recorded, taken, read) = tokio::join!(recording, taking_in, reading);
                    recorded?;
                    to_record = taken?;
                    match read? {
                        Some(PageOutcome::Read {
                            page,
                            next: following,
                        }) => {
                            complete &= !page.layout_changed;
                            in_hand = Some(*page);
                            next = following;
                        }
                        Some(PageOutcome::Unusable) => complete = false,
                        Some(PageOutcome::Failed) => complete = false,
                        None => {}
                    }
                    // nothing was read: the page in hand was the walk's last, and it is taken in
                    if to_read.is_none() {
                        if end_run {
                            break 'walks;
                        }
                        break;
                    }
                }
            }
            if let Some(page) = to_record.take() {
                self.record_page(&run, page).await?;
            }
            tally.pages += read_tally.pages;
            tally.errors += read_tally.errors;
        }
        tally.listings_seen = seen.len() as u32;

        if complete {
            tally.delisted = self.delist(&run, started_position, &mut tally).await?;
        }
        let completed = self
            .record(
                &run,
                "complete",
                ScrapeRunCommand::Complete {
                    tally,
                    complete,
                    at: self.now(),
                },
            )
            .await?;
        tracing::info!(%run_id, complete, ?tally, "scraper run completed");
        Ok(RunReport {
            run_id,
            tally,
            complete,
            position: completed,
        })
    }

    fn now(&self) -> Timestamp {
        self.clock.now().into()
    }
}

/// What reading one list page came to.
enum PageOutcome {
    /// Read (perhaps with a layout change that still left listings to take in); `next` is where the walk goes on.
    Read {
        page: Box<ReadPage>,
        next: Option<Url>,
    },
    /// Fetched, but no listing could be read from it and it is no page of results: a layout change; the walk
    /// cannot go on.
    Unusable,
    /// Not fetched (or forbidden); the walk cannot go on.
    Failed,
}

/// A list page fetched and read, its listings completed from their detail pages where needed, not yet taken in.
struct ReadPage {
    url: Url,
    number: u32,
    listings: Vec<Listing>,
    /// The page no longer looks as expected (reported already); the run is incomplete.
    layout_changed: bool,
}

/// A page whose listings were observed, to record.
struct SeenPage {
    url: Url,
    number: u32,
    ids: Vec<ListingId>,
}

/// The kinds of layout change a list page can show, each reported once per page.
#[derive(Debug, Clone, Copy)]
enum LayoutChange {
    /// No listing read: listing markup that does not parse, or no HTML at all.
    Empty,
    /// Most listings lack a field the parser always found before.
    Fields,
    /// Most cassettes have no readable listing id.
    Ids,
}

impl LayoutChange {
    fn step(self) -> &'static str {
        match self {
            LayoutChange::Empty => "empty",
            LayoutChange::Fields => "fields",
            LayoutChange::Ids => "ids",
        }
    }
}

/// One run in progress.
struct RunIds {
    id: Uuid,
}

impl Scraper {
    /// Records a step of the run under a command id derived from the run and `step`, so a retried step is
    /// recorded once. Returns the position written.
    async fn record(
        &self,
        run: &RunIds,
        step: &str,
        command: ScrapeRunCommand,
    ) -> Result<Option<i64>, CommandError<ScrapeRunError>> {
        Ok(self.record_step(run, step, command).await?.position)
    }

    /// Records a problem of the run (see [`Scraper::record`]) and counts it in `tally.errors` when it was
    /// recorded now: the tally's errors and the problems recorded stay one for one even if a step repeats.
    async fn record_problem(
        &self,
        run: &RunIds,
        step: &str,
        command: ScrapeRunCommand,
        tally: &mut RunTally,
    ) -> Result<(), CommandError<ScrapeRunError>> {
        let recorded = self.record_step(run, step, command).await?;
        if !recorded.repeat {
            tally.errors += 1;
        }
        Ok(())
    }

    async fn record_step(
        &self,
        run: &RunIds,
        step: &str,
        command: ScrapeRunCommand,
    ) -> Result<Recorded, CommandError<ScrapeRunError>> {
        self.cars.record_run(run.id, step, &command).await
    }

    async fn failure(
        &self,
        run: &RunIds,
        url: &Url,
        failure: &Failure,
        tally: &mut RunTally,
    ) -> Result<(), CommandError<ScrapeRunError>> {
        tracing::warn!(run_id = %run.id, %url, error = %failure.error, attempts = failure.attempts, "page failed");
        metrics::counter!(PAGE_FAILURES_TOTAL).increment(1);
        self.record_problem(
            run,
            &format!("failure {url}"),
            ScrapeRunCommand::RecordFailure {
                url: url.to_string(),
                error: failure.error.to_string(),
                attempts: failure.attempts,
                at: self.now(),
            },
            tally,
        )
        .await
    }

    /// Reports a layout change of `kind` on the page at `url`. Each kind has its own step, so two kinds found
    /// on one page are two events, not one event and a silent repeat.
    async fn layout_change(
        &self,
        run: &RunIds,
        url: &Url,
        kind: LayoutChange,
        reason: String,
        tally: &mut RunTally,
    ) -> Result<(), CommandError<ScrapeRunError>> {
        tracing::error!(run_id = %run.id, %url, %reason, "carsensor's layout changed");
        metrics::counter!(LAYOUT_CHANGES_TOTAL).increment(1);
        self.record_problem(
            run,
            &format!("layout {} {url}", kind.step()),
            ScrapeRunCommand::ReportLayoutChange {
                url: url.to_string(),
                reason,
                at: self.now(),
            },
            tally,
        )
        .await
    }

    /// Fetches and reads the list page at `url` (the `number`th of its walk) and completes its listings from their
    /// detail pages where needed; reports what went wrong with it in `tally`. Its listings are not observed
    /// here ([`Scraper::take_in`]), so the next page can be read while they are.
    #[tracing::instrument(skip_all, fields(%url))]
    async fn read_page(
        &self,
        run: &RunIds,
        fetcher: &Fetcher,
        url: &Url,
        number: u32,
        tally: &mut RunTally,
    ) -> anyhow::Result<PageOutcome> {
        let fetched = match fetcher.get(url).await {
            Ok(fetched) => fetched,
            Err(failure) => {
                self.failure(run, url, &failure, tally).await?;
                return Ok(PageOutcome::Failed);
            }
        };
        // parsing a page of 30 listings takes tens of milliseconds of CPU: off the tasks' threads, so that the
        // listings of the page in hand are observed meanwhile
        let page = tokio::task::spawn_blocking(move || {
            let _span = tracing::debug_span!("parse").entered();
            parse::list_page(&fetched.body, &fetched.url)
        })
        .await?;
        let next = page.next.clone();
        // a page without listings is a results page without results, unless it shows listing markup that
        // could not be read, or is no HTML page at all
        let unusable = if page.has_listing_markup {
            Some("the page shows listing markup, but no listing could be read from it")
        } else if !page.is_html {
            Some("the page is not an HTML page: it holds no listings and no page structure")
        } else {
            None
        };
        if page.listings.is_empty()
            && let Some(reason) = unusable
        {
            self.layout_change(run, url, LayoutChange::Empty, reason.to_owned(), tally)
                .await?;
            return Ok(PageOutcome::Unusable);
        }
        let mut layout_changed = false;
        let failing = parse::failing_fields(&page);
        if !failing.is_empty() {
            let reason = format!("most listings on the page lack {}", failing.join(", "));
            self.layout_change(run, url, LayoutChange::Fields, reason, tally)
                .await?;
            layout_changed = true;
        }
        if page.unreadable * 2 > page.unreadable + page.listings.len() {
            let reason = format!("{} listings have no readable listing id", page.unreadable);
            self.layout_change(run, url, LayoutChange::Ids, reason, tally)
                .await?;
            layout_changed = true;
        }
        tally.pages += 1;

        let mut listings = Vec::with_capacity(page.listings.len());
        for listing in page.listings {
            listings.push(self.complete_listing(run, fetcher, listing, tally).await?);
        }
        Ok(PageOutcome::Read {
            page: Box::new(ReadPage {
                url: url.clone(),
                number,
                listings,
                layout_changed,
            }),
            next,
        })
    }

    /// Observes the listings of a page read, `concurrency` at a time, and counts what they did in `tally` and
    /// `seen`. The page is recorded after ([`Scraper::record_page`]).
    #[tracing::instrument(skip_all, fields(url = %page.url, listings = page.listings.len()))]
    async fn take_in(
        &self,
        run: &RunIds,
        page: ReadPage,
        tally: &mut RunTally,
        seen: &mut HashSet<ListingId>,
    ) -> anyhow::Result<SeenPage> {
        let ReadPage {
            url,
            number,
            listings,
            ..
        } = page;
        let ids: Vec<ListingId> = listings.iter().map(|l| l.id.clone()).collect();
        let outcomes = self
            .cars
            .observe_all(run.id, listings, self.now(), self.config.concurrency)
            .await;
        for (id, outcome) in ids.iter().zip(outcomes) {
            seen.insert(id.clone());
            if let Ok(observed) = &outcome {
                let label = match observed {
                    Observed::New => "new",
                    Observed::Changed { .. } => "changed",
                    Observed::Unchanged => "unchanged",
                };
                metrics::counter!(LISTINGS_TOTAL, "outcome" => label).increment(1);
            }
            match outcome {
                Ok(Observed::New) => tally.new += 1,
                Ok(Observed::Changed { relisted }) => {
                    tally.changed += 1;
                    tally.relisted += u32::from(relisted);
                }
                Ok(Observed::Unchanged) => {}
                Err(error) => {
                    tracing::error!(run_id = %run.id, listing = %id, %error, "could not record a listing");
                    tally.errors += 1;
                }
            }
        }
        Ok(SeenPage { url, number, ids })
    }

    /// Records a page whose listings were observed, with the listing ids it showed.
    async fn record_page(&self, run: &RunIds, page: SeenPage) -> anyhow::Result<()> {
        self.record(
            run,
            &format!("page {}", page.url),
            ScrapeRunCommand::RecordPage {
                url: page.url.to_string(),
                page: page.number,
                listings: page.ids,
                at: self.now(),
            },
        )
        .await?;
        Ok(())
    }

    /// A listing whose list entry lacks something a detail page shows gets its detail page fetched, when it
    /// is new or changed (an unchanged one keeps what is known, so its detail page is not fetched again).
    /// A detail page that cannot be fetched is recorded as a failure of the run, which stays complete: the list
    /// page still showed the listing.
    async fn complete_listing(
        &self,
        run: &RunIds,
        fetcher: &Fetcher,
        mut listing: Listing,
        tally: &mut RunTally,
    ) -> Result<Listing, CommandError<ScrapeRunError>> {
        let config = &self.config;
        let lacking = listing
            .details
            .missing()
            .iter()
            .any(|field| DETAIL_FIELDS.contains(field))
            || listing.prices.total_yen.is_none();
        if !config.fetch_details || !lacking {
            return Ok(listing);
        }
        let Some(detail_url) = listing
            .details
            .detail_url
            .as_deref()
            .and_then(|u| Url::parse(u).ok())
        else {
            return Ok(listing);
        };
        let worth_it = match self.cars.would_change(run.id, &listing, self.now()).await {
            Ok(worth_it) => worth_it,
            Err(error) => {
                tracing::warn!(listing = %listing.id, %error, "could not read the car's stream");
                return Ok(listing);
            }
        };
        if !worth_it {
            return Ok(listing);
        }
        match fetcher.get(&detail_url).await {
            Ok(fetched) => {
                let detail = parse::detail_page(&fetched.body, &fetched.url);
                if detail.id.as_ref().is_some_and(|id| *id != listing.id) {
                    tracing::warn!(listing = %listing.id, "the detail page is of another listing; ignored");
                    return Ok(listing);
                }
                listing.details.fill_from(&detail.details);
                listing.prices.total_yen = listing.prices.total_yen.or(detail.prices.total_yen);
                listing.prices.body_yen = listing.prices.body_yen.or(detail.prices.body_yen);
            }
            Err(failure) => {
                // the list entry still holds the listing; the detail fills in on a later run
                self.failure(run, &detail_url, &failure, tally).await?;
            }
        }
        Ok(listing)
    }

    /// Delists the active listings that the last `delist_after_runs` complete runs (this one included) all
    /// missed, once the `cars` read model has taken in this run.
    async fn delist(
        &self,
        run: &RunIds,
        started_position: i64,
        tally: &mut RunTally,
    ) -> anyhow::Result<u32> {
        let scraper = self;
        let head = scraper.projections.head().await?;
        let waited = if head > 0 {
            scraper
                .projections
                .wait_for_some(
                    &[projections::cars::NAME],
                    head,
                    scraper.config.read_model_timeout,
                )
                .await
        } else {
            Ok(())
        };
        if let Err(error) = waited {
            tracing::error!(run_id = %run.id, %error, "the cars read model is behind; not delisting in this run");
            tally.errors += 1;
            return Ok(0);
        }
        let candidates = projections::cars::delisting_candidates(
            &scraper.pool,
            started_position,
            scraper.config.delist_after_runs,
        )
        .await?;
        let mut delisted = 0;
        for (listing, missed) in candidates {
            let Ok(listing) = ListingId::parse(&listing) else {
                continue;
            };
            let missed = missed.try_into().unwrap_or(u32::MAX);
            match scraper
                .cars
                .delist(run.id, &listing, missed, scraper.now())
                .await
            {
                Ok(true) => {
                    delisted += 1;
                    metrics::counter!(LISTINGS_TOTAL, "outcome" => "delisted").increment(1);
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::error!(%listing, %error, "could not delist");
                    tally.errors += 1;
                }
            }
        }
        Ok(delisted)
    }
}

/// Fields a detail page shows (a list entry lacking one of them is worth a detail page).
const DETAIL_FIELDS: &[&str] = &[
    "make",
    "model",
    "grade",
    "year",
    "mileage_km",
    "inspection",
    "repair_history",
    "warranty",
    "color",
    "prefecture",
];

/// Runs the scraper on `schedule` (a cron expression with seconds, e.g. `0 0 * * * *`: hourly) until
/// `shutdown` turns true. A run in progress then stops after the page in hand, recorded as incomplete, and is
/// waited for.
pub async fn run_scheduled(
    scraper: Arc<Scraper>,
    schedule: &str,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use tokio_cron_scheduler::{Job, JobScheduler};

    let mut scheduler = JobScheduler::new()
        .await
        .context("starting the scraper's scheduler")?;
    let job_scraper = scraper.clone();
    let job_stop = shutdown.clone();
    let job = Job::new_async(schedule, move |_id, _scheduler| {
        scheduled_run(job_scraper.clone(), job_stop.clone())
    })
    .with_context(|| format!("the scraper's schedule {schedule:?} is not a cron expression"))?;
    scheduler.add(job).await.context("scheduling the scraper")?;
    scheduler
        .start()
        .await
        .context("starting the scraper's scheduler")?;
    tracing::info!(schedule, "carsensor scraper scheduled");
    let mut shutdown = shutdown;
    let _ = shutdown.wait_for(|stop| *stop).await;
    scheduler
        .shutdown()
        .await
        .context("stopping the scraper's scheduler")?;
    scraper.idle().await;
    Ok(())
}

/// One scheduled run, logged. A plain function rather than a closure's body: coercing the run's future to a
/// boxed `Send` future inside the job's higher-ranked closure trips the compiler's `Send` inference.
fn scheduled_run(
    scraper: Arc<Scraper>,
    stop: watch::Receiver<bool>,
) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        match scraper.run_once(stop).await {
            Ok(Some(report)) => tracing::info!(
                run_id = %report.run_id,
                complete = report.complete,
                "scheduled scraper run done"
            ),
            Ok(None) => {}
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "scheduled scraper run failed")
            }
        }
    })
}

/// Whether `schedule` is a cron expression the scheduler takes (with seconds: `0 0 * * * *`).
pub fn check_schedule(schedule: &str) -> anyhow::Result<()> {
    tokio_cron_scheduler::Job::new_async(schedule, |_, _| Box::pin(async {}))
        .map(|_| ())
        .map_err(|e| {
            anyhow::anyhow!("the scraper's schedule {schedule:?} is not a cron expression: {e}")
        })
}
