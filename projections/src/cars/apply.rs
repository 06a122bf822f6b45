//! How the `cars` read model applies a batch: set-based, whatever the batch's size.
//!
//! A batch is decoded, the rows it touches are loaded in two queries (the cars its events and pages name, the runs
//! they refer to), every event is folded into those rows in memory in log order, and each table is written once:
//! one upsert of the changed `cars` rows, one narrow update of the cars only a page saw, one upsert of the changed
//! `scrape_runs` rows, and one multi-row insert per append-only table (`price_history`, `timeline`,
//! `scrape_run_pages`, `scrape_run_problems`). The live runner's small batches and a rebuild's large ones run the
//! same fold, so they give the same rows.
//!
//! The fold keeps what the per-event statements did: an event about a car or run that does not exist still adds
//! its own history row (price point, timeline entry, page, problem) and changes nothing else; listing a car or
//! starting a run twice fails the event, as the primary key did.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use chrono::{DateTime, Utc};
use domain::Timestamp;
use domain::cars::{
    CarChange, CarDetails, CarEvent, CarStatus, Prices, ScrapeProblemKind, ScrapeRunEvent,
};
use eventlog::RecordedEvent;
use serde_json::json;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, Row};
use uuid::Uuid;

use super::{DETAIL_COLUMNS, NAME};
use crate::{ProjectionError, named, stream_uuid};

/// Calls `$m!(field, …)` with every field of [`CarDetails`], in [`CarDetails::FIELDS`] (and so
/// [`DETAIL_COLUMNS`]) order.
macro_rules! with_detail_fields {
    ($m:ident ! ($($args:tt)*)) => {
        $m!($($args)* make, model, grade, year, mileage_km, inspection, repair_history, warranty, maintenance,
            displacement_cc, transmission, body_type, color, prefecture, city, shop_name, shop_url, photo_url,
            detail_url)
    };
}

/// Applies `events` (any mix of car and scrape-run events) with one statement per table.
pub(super) async fn apply(
    conn: &mut PgConnection,
    events: &[RecordedEvent],
) -> Result<(), ProjectionError> {
    let decoded = decode(events)?;
    let mut fold = Fold::default();
    fold.load(conn, &decoded).await?;
    for event in decoded {
        fold.apply(event)?;
    }
    fold.write(conn).await
}

/// An event of the batch, decoded, with the aggregate it is about.
#[allow(clippy::large_enum_variant)] // one per event of a batch, consumed by the fold: boxing would buy nothing
enum Decoded<'a> {
    Car {
        car: Uuid,
        recorded: &'a RecordedEvent,
        event: CarEvent,
    },
    Run {
        run: Uuid,
        recorded: &'a RecordedEvent,
        event: ScrapeRunEvent,
    },
}

/// The one dispatch by stream category: an event of any other category fails the batch.
fn decode(events: &[RecordedEvent]) -> Result<Vec<Decoded<'_>>, ProjectionError> {
    events
        .iter()
        .map(|recorded| match recorded.stream_category.as_str() {
            "car" => Ok(Decoded::Car {
                car: stream_uuid(&recorded.stream_id, "car-")?,
                recorded,
                event: recorded.decode()?,
            }),
            "scraperun" => Ok(Decoded::Run {
                run: stream_uuid(&recorded.stream_id, "scraperun-")?,
                recorded,
                event: recorded.decode()?,
            }),
            other => Err(crate::unexpected_stream(NAME, other)),
        })
        .collect()
}

/// What the batch has done to a car's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dirty {
    Clean,
    /// Only a page's sighting (`last_seen_*`) changed.
    Seen,
    /// Anything else: the whole row is written.
    Row,
}

/// A `cars` row as the fold holds it.
struct CarState {
    listing_id: String,
    details: CarDetails,
    prices: Prices,
    status: CarStatus,
    listed_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    delisted_at: Option<DateTime<Utc>>,
    listed_position: i64,
    last_seen_run: Option<Uuid>,
    last_seen_position: i64,
    dirty: Dirty,
}

impl CarState {
    fn touch(&mut self, dirty: Dirty) {
        if dirty == Dirty::Row || self.dirty == Dirty::Clean {
            self.dirty = dirty;
        }
    }
}

/// The last sighting of a car no event of the batch is about.
struct Sighting {
    last_seen_run: Option<Uuid>,
    last_seen_position: i64,
    dirty: bool,
}

/// A page of the run that started at `started` shows a car last seen by `run` at `position`: a run that started
/// later (or the same) becomes its last sighting. True when that changed something.
fn sight(run: &mut Option<Uuid>, position: &mut i64, by: Uuid, started: i64) -> bool {
    if *position <= started {
        *run = Some(by);
        *position = started;
        true
    } else {
        false
    }
}

/// A `scrape_runs` row as the fold holds it.
struct RunState {
    started_position: i64,
    started_at: DateTime<Utc>,
    start_urls: serde_json::Value,
    completed_at: Option<DateTime<Utc>>,
    complete: Option<bool>,
    pages: i32,
    listings_seen: Option<i32>,
    new: Option<i32>,
    changed: Option<i32>,
    relisted: Option<i32>,
    delisted: Option<i32>,
    errors: Option<i32>,
    failures: i32,
    layout_changes: i32,
    dirty: bool,
}

struct PricePointRow {
    car: Uuid,
    position: i64,
    at: DateTime<Utc>,
    prices: Prices,
}

struct TimelineRow {
    car: Uuid,
    position: i64,
    at: DateTime<Utc>,
    kind: CarChange,
    changes: String,
    run: Uuid,
}

struct PageRow {
    run: Uuid,
    position: i64,
    url: String,
    page: i32,
    listing_ids: Vec<String>,
    at: DateTime<Utc>,
}

struct ProblemRow {
    run: Uuid,
    position: i64,
    kind: ScrapeProblemKind,
    url: String,
    detail: String,
    attempts: Option<i32>,
    at: DateTime<Utc>,
}

/// The batch's rows: the existing ones it touches (loaded), the new ones, and the history rows it appends.
#[derive(Default)]
struct Fold {
    /// The cars the batch's car events are about (whole rows).
    cars: HashMap<Uuid, CarState>,
    /// The other cars the batch's pages show: only what a sighting changes.
    sightings: HashMap<Uuid, Sighting>,
    /// Listing id → car id, for the cars known to the fold (what a page's listing ids are matched by).
    listings: HashMap<String, Uuid>,
    runs: HashMap<Uuid, RunState>,
    price_points: Vec<PricePointRow>,
    timeline: Vec<TimelineRow>,
    pages: Vec<PageRow>,
    problems: Vec<ProblemRow>,
}

fn time(at: Timestamp) -> DateTime<Utc> {
    DateTime::<Utc>::from(at)
}

impl Fold {
    /// Loads the rows the batch may change or read: cars by id (their events) and by listing id (pages), runs by
    /// id (their events, and the runs car events name).
    async fn load(
        &mut self,
        conn: &mut PgConnection,
        batch: &[Decoded<'_>],
    ) -> Result<(), ProjectionError> {
        let mut car_ids = Vec::new();
        let mut listing_ids: Vec<&str> = Vec::new();
        let mut run_ids = Vec::new();
        for event in batch {
            match event {
                Decoded::Car { car, event, .. } => {
                    car_ids.push(*car);
                    run_ids.push(car_event_run(event));
                }
                Decoded::Run { run, event, .. } => {
                    run_ids.push(*run);
                    if let ScrapeRunEvent::ScrapePageScraped { listings, .. } = event {
                        listing_ids.extend(listings.iter().map(|l| l.as_str()));
                    }
                }
            }
        }
        car_ids.sort_unstable();
        car_ids.dedup();
        listing_ids.sort_unstable();
        listing_ids.dedup();
        run_ids.sort_unstable();
        run_ids.dedup();
        if !car_ids.is_empty() {
            let details: Vec<&str> = DETAIL_COLUMNS.iter().map(|(c, _)| *c).collect();
            let sql = format!(
                "select id, listing_id, {}, body_price_yen, total_price_yen, status, listed_at, updated_at,
                        delisted_at, listed_position, last_seen_run, last_seen_position
                   from cars where id = any($1)",
                details.join(", ")
            );
            let rows = sqlx::query(AssertSqlSafe(sql))
                .bind(&car_ids)
                .fetch_all(&mut *conn)
                .await?;
            for row in &rows {
                let (id, car) = car_from_row(row)?;
                self.listings.insert(car.listing_id.clone(), id);
                self.cars.insert(id, car);
            }
        }
        if !listing_ids.is_empty() {
            let rows: Vec<(Uuid, String, Option<Uuid>, i64)> = sqlx::query_as(
                "select id, listing_id, last_seen_run, last_seen_position from cars where listing_id = any($1)",
            )
            .bind(&listing_ids)
            .fetch_all(&mut *conn)
            .await?;
            for (id, listing_id, last_seen_run, last_seen_position) in rows {
                if self.cars.contains_key(&id) {
                    continue;
                }
                self.listings.insert(listing_id, id);
                self.sightings.insert(
                    id,
                    Sighting {
                        last_seen_run,
                        last_seen_position,
                        dirty: false,
                    },
                );
            }
        }
        if !run_ids.is_empty() {
            let rows = sqlx::query(
                "select run_id, started_position, started_at, start_urls, completed_at, complete, pages,
                        listings_seen, new, changed, relisted, delisted, errors, failures, layout_changes
                   from scrape_runs where run_id = any($1)",
            )
            .bind(&run_ids)
            .fetch_all(&mut *conn)
            .await?;
            for row in &rows {
                let (id, run) = run_from_row(row)?;
                self.runs.insert(id, run);
            }
        }
        Ok(())
    }

    /// Where the run `run` started in the log, if it has started.
    fn run_start(&self, run: Uuid) -> Option<i64> {
        self.runs.get(&run).map(|r| r.started_position)
    }

    fn apply(&mut self, event: Decoded<'_>) -> Result<(), ProjectionError> {
        match event {
            Decoded::Car {
                car,
                recorded,
                event,
            } => self.apply_car(car, recorded.position, event),
            Decoded::Run {
                run,
                recorded,
                event,
            } => self.apply_run(run, recorded.position, event),
        }
    }

    fn history(
        &mut self,
        car: Uuid,
        position: i64,
        at: DateTime<Utc>,
        kind: CarChange,
        changes: serde_json::Value,
        run: Uuid,
    ) {
        self.timeline.push(TimelineRow {
            car,
            position,
            at,
            kind,
            changes: changes.to_string(),
            run,
        });
    }

    fn apply_car(
        &mut self,
        car: Uuid,
        position: i64,
        event: CarEvent,
    ) -> Result<(), ProjectionError> {
        match event {
            CarEvent::CarListed {
                listing_id,
                prices,
                details,
                run_id,
                at,
            } => {
                let at = time(at);
                if self.cars.contains_key(&car) {
                    return Err(format!("car {car} is listed already").into());
                }
                if let Some(other) = self.listings.get(listing_id.as_str()) {
                    return Err(
                        format!("listing {listing_id} is car {other} already, not {car}").into(),
                    );
                }
                let patch = serde_json::to_value(&details)?;
                let last_seen_position = self.run_start(run_id).unwrap_or(position);
                self.listings.insert(listing_id.as_str().to_owned(), car);
                self.cars.insert(
                    car,
                    CarState {
                        listing_id: listing_id.as_str().to_owned(),
                        details,
                        prices,
                        status: CarStatus::Active,
                        listed_at: at,
                        updated_at: at,
                        delisted_at: None,
                        listed_position: position,
                        last_seen_run: Some(run_id),
                        last_seen_position,
                        dirty: Dirty::Row,
                    },
                );
                self.price_points.push(PricePointRow {
                    car,
                    position,
                    at,
                    prices,
                });
                self.history(
                    car,
                    position,
                    at,
                    CarChange::Listed,
                    json!({ "prices": prices, "details": patch }),
                    run_id,
                );
            }
            CarEvent::CarPriceChanged {
                old,
                new,
                run_id,
                at,
            } => {
                let at = time(at);
                if let Some(row) = self.cars.get_mut(&car) {
                    row.prices = new;
                    row.updated_at = at;
                    row.touch(Dirty::Row);
                }
                self.price_points.push(PricePointRow {
                    car,
                    position,
                    at,
                    prices: new,
                });
                self.history(
                    car,
                    position,
                    at,
                    CarChange::PriceChanged,
                    json!({ "old": old, "new": new }),
                    run_id,
                );
            }
            CarEvent::CarDetailsChanged {
                changes,
                run_id,
                at,
            } => {
                let at = time(at);
                if let Some(row) = self.cars.get_mut(&car) {
                    row.details = std::mem::take(&mut row.details).patched(&changes);
                    row.updated_at = at;
                    row.touch(Dirty::Row);
                }
                let patch = super::patch_json(&changes)?;
                self.history(car, position, at, CarChange::DetailsChanged, patch, run_id);
            }
            CarEvent::CarDelisted {
                missed_runs,
                run_id,
                at,
            } => {
                let at = time(at);
                if let Some(row) = self.cars.get_mut(&car) {
                    row.status = CarStatus::Delisted;
                    row.delisted_at = Some(at);
                    row.updated_at = at;
                    row.touch(Dirty::Row);
                }
                self.history(
                    car,
                    position,
                    at,
                    CarChange::Delisted,
                    json!({ "missed_runs": missed_runs }),
                    run_id,
                );
            }
            CarEvent::CarRelisted { run_id, at } => {
                let at = time(at);
                let seen = self.run_start(run_id).unwrap_or(position);
                if let Some(row) = self.cars.get_mut(&car) {
                    row.status = CarStatus::Active;
                    row.delisted_at = None;
                    row.updated_at = at;
                    row.last_seen_run = Some(run_id);
                    row.last_seen_position = row.last_seen_position.max(seen);
                    row.touch(Dirty::Row);
                }
                self.history(car, position, at, CarChange::Relisted, json!({}), run_id);
            }
        }
        Ok(())
    }

    fn apply_run(
        &mut self,
        run: Uuid,
        position: i64,
        event: ScrapeRunEvent,
    ) -> Result<(), ProjectionError> {
        match event {
            ScrapeRunEvent::ScrapeRunStarted { start_urls, at } => match self.runs.entry(run) {
                Entry::Occupied(_) => return Err(format!("run {run} started already").into()),
                Entry::Vacant(vacant) => {
                    vacant.insert(RunState {
                        started_position: position,
                        started_at: time(at),
                        start_urls: serde_json::to_value(start_urls)?,
                        completed_at: None,
                        complete: None,
                        pages: 0,
                        listings_seen: None,
                        new: None,
                        changed: None,
                        relisted: None,
                        delisted: None,
                        errors: None,
                        failures: 0,
                        layout_changes: 0,
                        dirty: true,
                    });
                }
            },
            ScrapeRunEvent::ScrapePageScraped {
                url,
                page,
                listings,
                at,
            } => {
                if let Some(state) = self.runs.get_mut(&run) {
                    state.pages += 1;
                    state.dirty = true;
                    let started = state.started_position;
                    for listing in &listings {
                        let Some(car) = self.listings.get(listing.as_str()) else {
                            continue;
                        };
                        if let Some(row) = self.cars.get_mut(car) {
                            if sight(
                                &mut row.last_seen_run,
                                &mut row.last_seen_position,
                                run,
                                started,
                            ) {
                                row.touch(Dirty::Seen);
                            }
                        } else if let Some(seen) = self.sightings.get_mut(car) {
                            seen.dirty |= sight(
                                &mut seen.last_seen_run,
                                &mut seen.last_seen_position,
                                run,
                                started,
                            );
                        }
                    }
                }
                self.pages.push(PageRow {
                    run,
                    position,
                    url,
                    page: page as i32,
                    listing_ids: listings.iter().map(|l| l.as_str().to_owned()).collect(),
                    at: time(at),
                });
            }
            ScrapeRunEvent::ScrapePageFailed {
                url,
                error,
                attempts,
                at,
            } => {
                if let Some(state) = self.runs.get_mut(&run) {
                    state.failures += 1;
                    state.dirty = true;
                }
                self.problems.push(ProblemRow {
                    run,
                    position,
                    kind: ScrapeProblemKind::Failure,
                    url,
                    detail: error,
                    attempts: Some(attempts as i32),
                    at: time(at),
                });
            }
            ScrapeRunEvent::ScrapeLayoutChanged { url, reason, at } => {
                if let Some(state) = self.runs.get_mut(&run) {
                    state.layout_changes += 1;
                    state.dirty = true;
                }
                self.problems.push(ProblemRow {
                    run,
                    position,
                    kind: ScrapeProblemKind::Layout,
                    url,
                    detail: reason,
                    attempts: None,
                    at: time(at),
                });
            }
            ScrapeRunEvent::ScrapeRunCompleted {
                tally,
                complete,
                at,
            } => {
                if let Some(state) = self.runs.get_mut(&run) {
                    state.completed_at = Some(time(at));
                    state.complete = Some(complete);
                    state.listings_seen = Some(tally.listings_seen as i32);
                    state.new = Some(tally.new as i32);
                    state.changed = Some(tally.changed as i32);
                    state.relisted = Some(tally.relisted as i32);
                    state.delisted = Some(tally.delisted as i32);
                    state.errors = Some(tally.errors as i32);
                    state.dirty = true;
                }
            }
        }
        Ok(())
    }

    /// Writes what the batch changed: one statement per table (none for a table it did not touch).
    async fn write(self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        write_cars(conn, &self.cars, &self.sightings).await?;
        write_runs(conn, &self.runs).await?;
        write_history(conn, &self.price_points, &self.timeline).await?;
        write_pages(conn, &self.pages, &self.problems).await?;
        Ok(())
    }
}

/// The run a car event names.
fn car_event_run(event: &CarEvent) -> Uuid {
    match event {
        CarEvent::CarListed { run_id, .. }
        | CarEvent::CarPriceChanged { run_id, .. }
        | CarEvent::CarDetailsChanged { run_id, .. }
        | CarEvent::CarDelisted { run_id, .. }
        | CarEvent::CarRelisted { run_id, .. } => *run_id,
    }
}

fn car_from_row(row: &PgRow) -> Result<(Uuid, CarState), sqlx::Error> {
    macro_rules! details {
        ($($field:ident),*) => {
            CarDetails { $($field: row.try_get(stringify!($field))?,)* }
        };
    }
    let car = CarState {
        listing_id: row.try_get("listing_id")?,
        details: with_detail_fields!(details!()),
        prices: Prices {
            body_yen: row.try_get("body_price_yen")?,
            total_yen: row.try_get("total_price_yen")?,
        },
        status: named(row, "status", CarStatus::parse)?,
        listed_at: row.try_get("listed_at")?,
        updated_at: row.try_get("updated_at")?,
        delisted_at: row.try_get("delisted_at")?,
        listed_position: row.try_get("listed_position")?,
        last_seen_run: row.try_get("last_seen_run")?,
        last_seen_position: row.try_get("last_seen_position")?,
        dirty: Dirty::Clean,
    };
    Ok((row.try_get("id")?, car))
}

fn run_from_row(row: &PgRow) -> Result<(Uuid, RunState), sqlx::Error> {
    let run = RunState {
        started_position: row.try_get("started_position")?,
        started_at: row.try_get("started_at")?,
        start_urls: row.try_get("start_urls")?,
        completed_at: row.try_get("completed_at")?,
        complete: row.try_get("complete")?,
        pages: row.try_get("pages")?,
        listings_seen: row.try_get("listings_seen")?,
        new: row.try_get("new")?,
        changed: row.try_get("changed")?,
        relisted: row.try_get("relisted")?,
        delisted: row.try_get("delisted")?,
        errors: row.try_get("errors")?,
        failures: row.try_get("failures")?,
        layout_changes: row.try_get("layout_changes")?,
        dirty: false,
    };
    Ok((row.try_get("run_id")?, run))
}

/// One upsert of every car row the batch changed beyond a sighting, then one update of the sightings of the
/// others. Rows go in listed order, so inserts take index pages in the order they fill.
async fn write_cars(
    conn: &mut PgConnection,
    cars: &HashMap<Uuid, CarState>,
    sightings: &HashMap<Uuid, Sighting>,
) -> Result<(), ProjectionError> {
    let mut rows: Vec<(&Uuid, &CarState)> =
        cars.iter().filter(|(_, c)| c.dirty == Dirty::Row).collect();
    rows.sort_unstable_by_key(|(_, c)| c.listed_position);
    if !rows.is_empty() {
        let details: Vec<&str> = DETAIL_COLUMNS.iter().map(|(c, _)| *c).collect();
        let detail_params: Vec<String> = DETAIL_COLUMNS
            .iter()
            .enumerate()
            .map(|(i, (_, ty))| format!("${}::{ty}[]", i + 12))
            .collect();
        let sets: Vec<String> = details
            .iter()
            .copied()
            .chain([
                "listing_id",
                "body_price_yen",
                "total_price_yen",
                "status",
                "listed_at",
                "updated_at",
                "delisted_at",
                "listed_position",
                "last_seen_run",
                "last_seen_position",
            ])
            .map(|c| format!("{c} = excluded.{c}"))
            .collect();
        let sql = format!(
            "insert into cars (id, listing_id, body_price_yen, total_price_yen, status, listed_at, updated_at,
                               delisted_at, listed_position, last_seen_run, last_seen_position, {details})
             select * from unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[], $5::text[],
                                  $6::timestamptz[], $7::timestamptz[], $8::timestamptz[], $9::bigint[],
                                  $10::uuid[], $11::bigint[], {detail_params})
             on conflict (id) do update set {sets}",
            details = details.join(", "),
            detail_params = detail_params.join(", "),
            sets = sets.join(", "),
        );
        let query = sqlx::query(AssertSqlSafe(sql))
            .bind(rows.iter().map(|(id, _)| **id).collect::<Vec<Uuid>>())
            .bind(
                rows.iter()
                    .map(|(_, c)| c.listing_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|(_, c)| c.prices.body_yen)
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|(_, c)| c.prices.total_yen)
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|(_, c)| c.status.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|(_, c)| c.listed_at).collect::<Vec<_>>())
            .bind(rows.iter().map(|(_, c)| c.updated_at).collect::<Vec<_>>())
            .bind(rows.iter().map(|(_, c)| c.delisted_at).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|(_, c)| c.listed_position)
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|(_, c)| c.last_seen_run)
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|(_, c)| c.last_seen_position)
                    .collect::<Vec<_>>(),
            );
        macro_rules! bind_details {
            ($query:expr, $($field:ident),*) => {{
                let query = $query;
                $(let query = query.bind(
                    rows.iter().map(|(_, c)| c.details.$field.clone()).collect::<Vec<_>>(),
                );)*
                query
            }};
        }
        let query = with_detail_fields!(bind_details!(query,));
        query.execute(&mut *conn).await?;
    }
    let seen: Vec<(Uuid, Option<Uuid>, i64)> = cars
        .iter()
        .filter(|(_, c)| c.dirty == Dirty::Seen)
        .map(|(id, c)| (*id, c.last_seen_run, c.last_seen_position))
        .chain(
            sightings
                .iter()
                .filter(|(_, s)| s.dirty)
                .map(|(id, s)| (*id, s.last_seen_run, s.last_seen_position)),
        )
        .collect();
    if !seen.is_empty() {
        sqlx::query(
            "update cars c set last_seen_run = s.run, last_seen_position = s.position
               from unnest($1::uuid[], $2::uuid[], $3::bigint[]) s (id, run, position)
              where c.id = s.id",
        )
        .bind(seen.iter().map(|s| s.0).collect::<Vec<_>>())
        .bind(seen.iter().map(|s| s.1).collect::<Vec<_>>())
        .bind(seen.iter().map(|s| s.2).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// One upsert of every run row the batch changed.
async fn write_runs(
    conn: &mut PgConnection,
    runs: &HashMap<Uuid, RunState>,
) -> Result<(), ProjectionError> {
    let rows: Vec<(&Uuid, &RunState)> = runs.iter().filter(|(_, r)| r.dirty).collect();
    if rows.is_empty() {
        return Ok(());
    }
    let column =
        |f: fn(&RunState) -> Option<i32>| rows.iter().map(|(_, r)| f(r)).collect::<Vec<_>>();
    sqlx::query(
        "insert into scrape_runs as r (run_id, started_position, started_at, start_urls, completed_at, complete,
                                       pages, listings_seen, new, changed, relisted, delisted, errors, failures,
                                       layout_changes)
         select * from unnest($1::uuid[], $2::bigint[], $3::timestamptz[], $4::text[]::jsonb[],
                              $5::timestamptz[], $6::boolean[], $7::int[], $8::int[], $9::int[], $10::int[],
                              $11::int[], $12::int[], $13::int[], $14::int[], $15::int[])
         on conflict (run_id) do update
            set started_position = excluded.started_position, started_at = excluded.started_at,
                start_urls = excluded.start_urls, completed_at = excluded.completed_at,
                complete = excluded.complete, pages = excluded.pages, listings_seen = excluded.listings_seen,
                new = excluded.new, changed = excluded.changed, relisted = excluded.relisted,
                delisted = excluded.delisted, errors = excluded.errors, failures = excluded.failures,
                layout_changes = excluded.layout_changes",
    )
    .bind(rows.iter().map(|(id, _)| **id).collect::<Vec<Uuid>>())
    .bind(rows.iter().map(|(_, r)| r.started_position).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, r)| r.started_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, r)| r.start_urls.to_string()).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, r)| r.completed_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, r)| r.complete).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, r)| r.pages).collect::<Vec<_>>())
    .bind(column(|r| r.listings_seen))
    .bind(column(|r| r.new))
    .bind(column(|r| r.changed))
    .bind(column(|r| r.relisted))
    .bind(column(|r| r.delisted))
    .bind(column(|r| r.errors))
    .bind(rows.iter().map(|(_, r)| r.failures).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, r)| r.layout_changes).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// One insert of the batch's price points, one of its timeline entries.
async fn write_history(
    conn: &mut PgConnection,
    points: &[PricePointRow],
    timeline: &[TimelineRow],
) -> Result<(), ProjectionError> {
    if !points.is_empty() {
        sqlx::query(
            "insert into price_history (car_id, position, at, body_price_yen, total_price_yen)
             select * from unnest($1::uuid[], $2::bigint[], $3::timestamptz[], $4::bigint[], $5::bigint[])",
        )
        .bind(points.iter().map(|p| p.car).collect::<Vec<_>>())
        .bind(points.iter().map(|p| p.position).collect::<Vec<_>>())
        .bind(points.iter().map(|p| p.at).collect::<Vec<_>>())
        .bind(points.iter().map(|p| p.prices.body_yen).collect::<Vec<_>>())
        .bind(points.iter().map(|p| p.prices.total_yen).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    if !timeline.is_empty() {
        sqlx::query(
            "insert into timeline (car_id, position, at, kind, changes, run_id)
             select * from unnest($1::uuid[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[]::jsonb[],
                                  $6::uuid[])",
        )
        .bind(timeline.iter().map(|t| t.car).collect::<Vec<_>>())
        .bind(timeline.iter().map(|t| t.position).collect::<Vec<_>>())
        .bind(timeline.iter().map(|t| t.at).collect::<Vec<_>>())
        .bind(timeline.iter().map(|t| t.kind.as_str()).collect::<Vec<_>>())
        .bind(timeline.iter().map(|t| t.changes.as_str()).collect::<Vec<_>>())
        .bind(timeline.iter().map(|t| t.run).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// One insert of the batch's pages, one of its problems.
async fn write_pages(
    conn: &mut PgConnection,
    pages: &[PageRow],
    problems: &[ProblemRow],
) -> Result<(), ProjectionError> {
    if !pages.is_empty() {
        // a page's listing ids travel as one array literal each: PostgreSQL has no arrays of arrays of
        // different lengths
        sqlx::query(
            "insert into scrape_run_pages (run_id, position, url, page, listing_ids, at)
             select p.run_id, p.position, p.url, p.page, p.listing_ids::text[], p.at
               from unnest($1::uuid[], $2::bigint[], $3::text[], $4::int[], $5::text[], $6::timestamptz[])
                    p (run_id, position, url, page, listing_ids, at)",
        )
        .bind(pages.iter().map(|p| p.run).collect::<Vec<_>>())
        .bind(pages.iter().map(|p| p.position).collect::<Vec<_>>())
        .bind(pages.iter().map(|p| p.url.as_str()).collect::<Vec<_>>())
        .bind(pages.iter().map(|p| p.page).collect::<Vec<_>>())
        .bind(pages.iter().map(|p| text_array(&p.listing_ids)).collect::<Vec<_>>())
        .bind(pages.iter().map(|p| p.at).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    if !problems.is_empty() {
        sqlx::query(
            "insert into scrape_run_problems (run_id, position, kind, url, detail, attempts, at)
             select * from unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::int[],
                                  $7::timestamptz[])",
        )
        .bind(problems.iter().map(|p| p.run).collect::<Vec<_>>())
        .bind(problems.iter().map(|p| p.position).collect::<Vec<_>>())
        .bind(problems.iter().map(|p| p.kind.as_str()).collect::<Vec<_>>())
        .bind(problems.iter().map(|p| p.url.as_str()).collect::<Vec<_>>())
        .bind(problems.iter().map(|p| p.detail.as_str()).collect::<Vec<_>>())
        .bind(problems.iter().map(|p| p.attempts).collect::<Vec<_>>())
        .bind(problems.iter().map(|p| p.at).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// `values` as a PostgreSQL array literal (`{"a","b"}`), every element quoted.
fn text_array(values: &[String]) -> String {
    let mut literal = String::from("{");
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            literal.push(',');
        }
        literal.push('"');
        for c in value.chars() {
            if c == '"' || c == '\\' {
                literal.push('\\');
            }
            literal.push(c);
        }
        literal.push('"');
    }
    literal.push('}');
    literal
}
