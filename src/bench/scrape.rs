//! The scraper end to end against a local fake carsensor.net, next to the upsert path it feeds.
//!
//! The fake site is an axum server on a free local port of this process. It serves robots.txt and `listings`
//! listings on list pages of [`PER_PAGE`] cars each, generated from the recorded list page (the workers tests'
//! fixture `listing_prius_truncated.html`: its two cassettes, alternately, with the listing ids replaced),
//! chained by `link[rel=next]` as carsensor.net chains them. The real [`Scraper`] runs against it, through
//! [`Scraper::run_once`] as `academy scrape --once` does, with the read models running in this process as
//! `academy scrape` runs them, and with one difference from the defaults, printed with the figures: no pause
//! between requests (`min_delay` 0; the real site gets 1 s, or its Crawl-delay).
//!
//! The baseline is the upsert path: the same listings (read from the same pages beforehand, with other ids)
//! through `Cars::observe_all`, `writers` at a time, as `--upserts-only` measures it. Two rounds:
//! - first sight: every listing new (`CarListed` each), scrape and baseline on catalogues of their own;
//! - again: the same pages a second time, 1 % repriced (the scraper's steady state), against the baseline
//!   observing its own catalogue again with the same 1 % repriced.
//!
//! The baseline goes first in each round, so the scrape runs on the larger log. The run is checked: it is
//! complete, every listing served is a car in the read model, the tally counts them, and the second round
//! changed exactly the repriced ones.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use commands::CommandExecutor;
use commands::cars::{Cars, Observed};
use domain::cars::Listing;
use eventlog::EventLog;
use projections::{Projections, RunnerConfig};
use reqwest::Url;
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;
use workers::carsensor::{RunReport, Scraper, ScraperConfig, parse};
use workers::{SystemClock, TokioSleeper};

use super::thousands as n;

/// Where the recorded list page (carsensor.net, two cassettes) is in a checkout. It is read when the benchmark
/// runs, never compiled into the binary: the fixtures' README allows the page as offline test input only.
pub const RECORDED_LIST_PAGE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/workers/tests/fixtures/carsensor/listing_prius_truncated.html"
);

/// Listings on one generated list page (carsensor.net shows 30).
pub const PER_PAGE: usize = 30;

/// The two listing ids of the recorded page.
const RECORDED_IDS: [&str; 2] = ["AU6877255381", "AU6869806001"];

/// The first cassette's total price, and what a repriced listing shows instead.
const TOTAL_PRICE: &str = "<span class=\"totalPrice__mainPriceNum\">323</span>";
const REPRICED: &str = "<span class=\"totalPrice__mainPriceNum\">310</span>";

const CASSETTE_START: &str = "<div class=\"cassette js_listTableCassette\"";
const WRAP_START: &str = "<div class=\"cassetteWrap js-mainCassette\">";
const WRAP_END: &str = "</div><!-- /.cassetteWrap -->";

const ROBOTS: &str =
    "User-agent: *\nDisallow: /usedcar/search.php\nDisallow: /usedcar/inquiry_mm.php\n";

#[derive(Debug, Serialize)]
pub struct ScrapeFigures {
    pub scrape_listings: usize,
    pub scrape_pages: usize,
    /// The pause between two requests the scraper was given, in milliseconds.
    pub scrape_delay_ms: u64,
    pub scrape_concurrency: usize,
    /// First sight: every listing new.
    pub scrape_new_listings_per_s: f64,
    pub scrape_new_upsert_path_per_s: f64,
    pub scrape_new_ratio: f64,
    /// Again: the same pages, 1 % repriced.
    pub scrape_again_listings_per_s: f64,
    pub scrape_again_upsert_path_per_s: f64,
    pub scrape_again_ratio: f64,
    pub scrape_again_changed: usize,
}

impl ScrapeFigures {
    pub(super) fn print(&self) {
        println!(
            "  scrape, {} listings on {} pages (fake site, {} ms between requests, {} listings of a page at once)",
            n(self.scrape_listings as f64),
            n(self.scrape_pages as f64),
            self.scrape_delay_ms,
            self.scrape_concurrency
        );
        println!(
            "    first sight (all new)      {:>10} listings/s end to end   upsert path {:>10} listings/s   ratio {:.2} (target 0.80)",
            n(self.scrape_new_listings_per_s),
            n(self.scrape_new_upsert_path_per_s),
            self.scrape_new_ratio
        );
        println!(
            "    again ({} repriced)     {:>10} listings/s end to end   upsert path {:>10} listings/s   ratio {:.2} (target 0.80)",
            n(self.scrape_again_changed as f64),
            n(self.scrape_again_listings_per_s),
            n(self.scrape_again_upsert_path_per_s),
            self.scrape_again_ratio
        );
    }
}

/// The recorded page cut into what generated pages are made of.
struct Templates {
    /// Before the first cassette: `<!doctype html><html><body>`.
    head: String,
    /// Each cassette, split at its listing id: joined with a new id it is a listing of that id. The second of
    /// each pair is the cassette repriced.
    cassettes: [[Vec<String>; 2]; 2],
    /// After the last cassette (the lease carousel, which a parser must not count as listings).
    tail: String,
}

impl Templates {
    fn cut(page: &str) -> anyhow::Result<Self> {
        let first = page.find(CASSETTE_START).context("no cassette")?;
        let first_end =
            page[first..].find(WRAP_END).context("no wrap end")? + first + WRAP_END.len();
        let second = page[first_end..]
            .find(WRAP_START)
            .context("no second cassette")?
            + first_end;
        let second_end = page[second..]
            .find(WRAP_END)
            .context("no second wrap end")?
            + second
            + WRAP_END.len();
        // the first cassette's wrap opens before `<body>` in the recording's cut; open it here
        let one = format!("{WRAP_START}{}", &page[first..first_end]);
        let two = page[second..second_end].to_owned();
        let split = |cassette: &str, id: &str| -> anyhow::Result<[Vec<String>; 2]> {
            let repriced = cassette.replace(TOTAL_PRICE, REPRICED);
            anyhow::ensure!(
                repriced != cassette,
                "the cassette of {id} shows no total price"
            );
            Ok([
                cassette.split(id).map(str::to_owned).collect(),
                repriced.split(id).map(str::to_owned).collect(),
            ])
        };
        // the second cassette shows another total; give it the first's, so both can be repriced alike
        let two = replace_total(&two)?;
        Ok(Self {
            head: page[..first].to_owned(),
            cassettes: [split(&one, RECORDED_IDS[0])?, split(&two, RECORDED_IDS[1])?],
            tail: page[second_end..].to_owned(),
        })
    }
}

/// The second cassette with the first cassette's total price markup.
fn replace_total(cassette: &str) -> anyhow::Result<String> {
    const SECOND: &str = "<span class=\"totalPrice__mainPriceNum\">332</span>";
    anyhow::ensure!(
        cassette.contains(SECOND),
        "the second cassette's total price moved"
    );
    Ok(cassette.replace(SECOND, TOTAL_PRICE))
}

/// The fake site: `listings` listings whose ids start at `first_id`, and which round it serves (in round 1 and
/// later, every hundredth listing is repriced).
struct Site {
    templates: Templates,
    listings: usize,
    first_id: u64,
    round: AtomicU32,
}

impl Site {
    fn pages(&self) -> usize {
        self.listings.div_ceil(PER_PAGE)
    }

    fn path(page: usize) -> String {
        if page == 1 {
            "/usedcar/index.html".to_owned()
        } else {
            format!("/usedcar/index{page}.html")
        }
    }

    fn page_of(path: &str) -> Option<usize> {
        let number = path.strip_prefix("/usedcar/index")?.strip_suffix(".html")?;
        if number.is_empty() {
            return Some(1);
        }
        number.parse().ok().filter(|n| *n >= 2)
    }

    /// List page `page` (from 1), or `None` past the last.
    fn page(&self, page: usize) -> Option<String> {
        if page == 0 || page > self.pages() {
            return None;
        }
        let round = self.round.load(Ordering::Relaxed);
        let mut html = String::with_capacity(PER_PAGE * 18_000);
        let head = match page < self.pages() {
            true => self.templates.head.replacen(
                "<html><body>",
                &format!(
                    "<html><head><link rel=\"next\" href=\"{}\"></head><body>",
                    Self::path(page + 1)
                ),
                1,
            ),
            false => self.templates.head.clone(),
        };
        html.push_str(&head);
        let first = (page - 1) * PER_PAGE;
        for index in first..(first + PER_PAGE).min(self.listings) {
            let repriced = round > 0 && index.is_multiple_of(100);
            let parts = &self.templates.cassettes[index % 2][usize::from(repriced)];
            let id = listing_id(self.first_id, index);
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    html.push_str(&id);
                }
                html.push_str(part);
            }
        }
        html.push_str(&self.templates.tail);
        Some(html)
    }
}

fn listing_id(first_id: u64, index: usize) -> String {
    format!("AU{:010}", first_id + index as u64)
}

async fn serve(State(site): State<Arc<Site>>, uri: Uri) -> Response {
    let path = uri.path();
    if path == "/robots.txt" {
        return (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            ROBOTS,
        )
            .into_response();
    }
    match Site::page_of(path).and_then(|page| site.page(page)) {
        Some(html) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Starts the fake site; its URL.
async fn start(site: Arc<Site>) -> anyhow::Result<Url> {
    let app = Router::new().fallback(serve).with_state(site);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address: SocketAddr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the fake carsensor site stopped");
        }
    });
    Ok(Url::parse(&format!("http://{address}"))?)
}

/// Every listing the site serves, read from its pages with the scraper's parser (untimed).
fn listings_of(site: &Site, base: &Url) -> anyhow::Result<Vec<Listing>> {
    let mut listings = Vec::with_capacity(site.listings);
    for page in 1..=site.pages() {
        let url = base.join(&Site::path(page))?;
        let html = site.page(page).context("a page of the site")?;
        listings.extend(parse::list_page(&html, &url).listings);
    }
    anyhow::ensure!(
        listings.len() == site.listings,
        "the pages show {} listings of {}",
        listings.len(),
        site.listings
    );
    Ok(listings)
}

/// The upsert path: `listings` through `Cars::observe_all`, `concurrency` at a time; listings/s and how many
/// were not unchanged.
async fn upsert_path(
    cars: &Cars,
    listings: Vec<Listing>,
    concurrency: usize,
) -> anyhow::Result<(f64, usize)> {
    let count = listings.len();
    let at = domain::Timestamp::from(chrono::Utc::now());
    let started = Instant::now();
    let outcomes = cars
        .observe_all(Uuid::now_v7(), listings, at, concurrency)
        .await;
    let took = started.elapsed();
    let mut changed = 0;
    for outcome in outcomes {
        if outcome? != Observed::Unchanged {
            changed += 1;
        }
    }
    Ok((count as f64 / took.as_secs_f64(), changed))
}

/// Waits until the read models have taken in the whole log, so that a scrape timed next does not pay for
/// projecting the baseline's events.
async fn caught_up(projections: &Projections) -> anyhow::Result<()> {
    let head = projections.head().await?;
    projections
        .wait_for(head, Duration::from_secs(3_600))
        .await?;
    Ok(())
}

/// One scraper run; listings/s end to end and the report.
async fn scrape(scraper: &Scraper, listings: usize) -> anyhow::Result<(f64, RunReport)> {
    let (_keep, never) = watch::channel(false);
    let started = Instant::now();
    let report = scraper
        .run_once(never)
        .await?
        .context("another scraper run holds the lock")?;
    let took = started.elapsed();
    anyhow::ensure!(
        report.complete,
        "the scraper run was incomplete: {report:?}"
    );
    anyhow::ensure!(
        report.tally.errors == 0,
        "the scraper run had errors: {report:?}"
    );
    anyhow::ensure!(
        report.tally.listings_seen as usize == listings,
        "the run saw {} listings of {listings}",
        report.tally.listings_seen
    );
    Ok((listings as f64 / took.as_secs_f64(), report))
}

pub(super) async fn measure(
    pool: &PgPool,
    concurrency: usize,
    listings: usize,
    page: &std::path::Path,
) -> anyhow::Result<ScrapeFigures> {
    let recorded = std::fs::read_to_string(page).with_context(|| {
        format!(
            "reading the recorded list page {} (--scrape-page names another copy)",
            page.display()
        )
    })?;
    let templates = Templates::cut(&recorded)?;
    let scraped = Arc::new(Site {
        templates,
        listings,
        first_id: 7_000_000_000,
        round: AtomicU32::new(0),
    });
    let baseline = Site {
        templates: Templates::cut(&recorded)?,
        listings,
        first_id: 8_000_000_000,
        round: AtomicU32::new(0),
    };
    let url = start(scraped.clone()).await?;
    let log = EventLog::new(pool.clone());
    let cars = Cars::new(CommandExecutor::new(log.clone()));

    // the read models in this process, as `academy scrape` runs them (the run waits for `cars` before delisting)
    let projections = Arc::new(Projections::new(
        log.clone(),
        projections::all(),
        RunnerConfig {
            holder: "academy bench --scrape".to_owned(),
            ..RunnerConfig::default()
        },
    )?);
    let (stop_projections, projections_stopping) = watch::channel(false);
    let running = projections.clone();
    let runner = tokio::spawn(async move { running.run(projections_stopping).await });

    let mut config = ScraperConfig::new(url.clone());
    config.page_limit = u32::try_from(scraped.pages() + 1)?;
    config.concurrency = concurrency;
    config.read_model_timeout = Duration::from_secs(3_600);
    config.fetch.min_delay = Duration::ZERO;
    let delay_ms = config.fetch.min_delay.as_millis() as u64;
    let scraper = Scraper::new(
        config,
        cars.clone(),
        projections.clone(),
        pool.clone(),
        Arc::new(SystemClock),
        Arc::new(TokioSleeper),
    );

    let result = async {
        // first sight
        let baseline_listings = listings_of(&baseline, &url)?;
        let (new_upsert, listed) =
            upsert_path(&cars, baseline_listings.clone(), concurrency).await?;
        anyhow::ensure!(listed == listings, "the upsert path listed {listed} of {listings}");
        caught_up(&projections).await?;
        let (new_scrape, first) = scrape(&scraper, listings).await?;
        anyhow::ensure!(
            first.tally.new as usize == listings,
            "the first run listed {} of {listings}",
            first.tally.new
        );
        let position = first.position.context("the run recorded its completion")?;
        projections
            .wait_for(position, Duration::from_secs(3_600))
            .await?;
        let in_model: i64 = sqlx::query_scalar(
            "select count(*) from cars.cars where listing_id like 'AU7%' and status = 'active'",
        )
        .fetch_one(pool)
        .await?;
        anyhow::ensure!(
            in_model as usize == listings,
            "{in_model} cars listed of {listings} listings served"
        );

        // again, 1 % repriced
        baseline.round.store(1, Ordering::Relaxed);
        scraped.round.store(1, Ordering::Relaxed);
        let again_listings = listings_of(&baseline, &url)?;
        let (again_upsert, baseline_changed) =
            upsert_path(&cars, again_listings, concurrency).await?;
        caught_up(&projections).await?;
        let (again_scrape, second) = scrape(&scraper, listings).await?;
        let expected = (0..listings).filter(|i| i.is_multiple_of(100)).count();
        anyhow::ensure!(
            baseline_changed == expected && second.tally.changed as usize == expected,
            "{} (scrape) and {baseline_changed} (upsert path) changed where {expected} were repriced",
            second.tally.changed
        );
        anyhow::ensure!(second.tally.new == 0, "the second run listed new cars");
        Ok(ScrapeFigures {
            scrape_listings: listings,
            scrape_pages: scraped.pages(),
            scrape_delay_ms: delay_ms,
            scrape_concurrency: concurrency,
            scrape_new_listings_per_s: new_scrape,
            scrape_new_upsert_path_per_s: new_upsert,
            scrape_new_ratio: new_scrape / new_upsert,
            scrape_again_listings_per_s: again_scrape,
            scrape_again_upsert_path_per_s: again_upsert,
            scrape_again_ratio: again_scrape / again_upsert,
            scrape_again_changed: expected,
        })
    }
    .await;
    let _ = stop_projections.send(true);
    let _ = runner.await;
    result
}
