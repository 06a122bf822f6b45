//! `cars`: every listing as it stands now, its price history and timeline, and the scraper's runs.
//!
//! - `cars`: one row per listing (active or delisted) with its normalised fields, both prices, when it was
//!   listed, updated and delisted, and the last run that saw it (by the log position where that run started),
//!   which is what delisting counts missed runs from. `search` is the lowercase text free-text queries match.
//! - `price_history`: one row when listed and one per price change.
//! - `timeline`: one row per event of the listing (listed, price changed, details changed, delisted, relisted)
//!   with what it changed.
//! - `scrape_runs`, `scrape_run_pages`, `scrape_run_problems`: each run's tally and completeness, the listing
//!   ids each page showed, and the pages that failed or looked different (for admins auditing runs).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::cars::{
    CarChange, CarDetails, CarEvent, CarStatus, DetailsPatch, ScrapeProblemKind, ScrapeRunEvent,
};
use eventlog::RecordedEvent;
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, FromRow, PgConnection, PgPool, Postgres, QueryBuilder, Row};
use uuid::Uuid;

use crate::{Projection, ProjectionError, named};

mod apply;

pub const NAME: &str = "cars";

#[derive(Debug, Default)]
pub struct Cars;

/// The cars product's part of the read side: this read model, no notices, no timers.
pub fn product() -> crate::Product {
    crate::Product {
        name: "cars",
        read_models: vec![std::sync::Arc::new(Cars)],
        notices: None,
        timers: None,
    }
}

/// The columns holding a listing's details, with their SQL types, in [`CarDetails::FIELDS`] order.
const DETAIL_COLUMNS: &[(&str, &str)] = &[
    ("make", "text"),
    ("model", "text"),
    ("grade", "text"),
    ("year", "integer"),
    ("mileage_km", "bigint"),
    ("inspection", "text"),
    ("repair_history", "boolean"),
    ("warranty", "text"),
    ("maintenance", "text"),
    ("displacement_cc", "integer"),
    ("transmission", "text"),
    ("body_type", "text"),
    ("color", "text"),
    ("prefecture", "text"),
    ("city", "text"),
    ("shop_name", "text"),
    ("shop_url", "text"),
    ("photo_url", "text"),
    ("detail_url", "text"),
];

/// What free text is matched against: names, places, the dealer and the listing id.
const SEARCH_EXPRESSION: &str = "lower(coalesce(make, '') || ' ' || coalesce(model, '') || ' ' || \
     coalesce(grade, '') || ' ' || coalesce(body_type, '') || ' ' || coalesce(color, '') || ' ' || \
     coalesce(transmission, '') || ' ' || coalesce(prefecture, '') || ' ' || coalesce(city, '') || ' ' || \
     coalesce(shop_name, '') || ' ' || listing_id)";

/// The tags of a car's values that list filters compare for equality (case-insensitively), unknowns left out:
/// `model:<lower(model)>`, … and `repair:true|false`. A filter on several of them is one containment (`@>`).
const TAG_EXPRESSION: &str = "array_remove(array['model:' || lower(model), \
     'prefecture:' || lower(prefecture), 'body_type:' || lower(body_type), \
     'transmission:' || lower(transmission), 'color:' || lower(color), 'repair:' || repair_history::text], null)";

/// The stored sort keys of the car lists: each order's key with unknowns mapped to the end of that order
/// (what [`CarOrder::key_of`] computes for a cursor).
const SORT_KEYS: &[(&str, &str)] = &[
    (
        "sort_total_asc",
        "coalesce(total_price_yen, 9223372036854775807)",
    ),
    ("sort_total_desc", "coalesce(total_price_yen, -1)"),
    (
        "sort_body_asc",
        "coalesce(body_price_yen, 9223372036854775807)",
    ),
    ("sort_body_desc", "coalesce(body_price_yen, -1)"),
    ("sort_year_desc", "coalesce(year, -1)"),
    (
        "sort_mileage_asc",
        "coalesce(mileage_km, 9223372036854775807)",
    ),
];

crate::read_model!(Cars {
    name: NAME,
    // 2: stored keys (`make_key`, `model_key`, `sort_*`) and one index per order's keyset; 3: pages 70 % full
    version: 3,
    events: [CarEvent::TYPES, ScrapeRunEvent::TYPES]
});

#[async_trait]
impl Projection for Cars {
    async fn setup(&self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        debug_assert_eq!(
            DETAIL_COLUMNS.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
            CarDetails::FIELDS
        );
        let details: String = DETAIL_COLUMNS
            .iter()
            .map(|(column, ty)| format!("{column} {ty},\n"))
            .collect();
        let sort_keys: String = SORT_KEYS
            .iter()
            .map(|(column, expression)| {
                format!("{column} bigint not null generated always as ({expression}) stored")
            })
            .collect::<Vec<_>>()
            .join(",\n");
        let sql = format!(
            "create table cars (
                 -- uuid v5 of the listing id, as in the car's stream id
                 id               uuid primary key,
                 listing_id       text not null unique,
                 {details}
                 body_price_yen   bigint,
                 total_price_yen  bigint,
                 -- domain::cars::CarStatus::as_str: active or delisted
                 status           text not null,
                 listed_at        timestamptz not null,
                 updated_at       timestamptz not null,
                 delisted_at      timestamptz,
                 -- log position of CarListed: the order of 'newest first'
                 listed_position  bigint not null unique,
                 -- the last run that saw the listing, and the log position where that run started (runs are
                 -- compared by it when counting the complete runs that missed a listing)
                 last_seen_run    uuid,
                 last_seen_position bigint not null,
                 search           text generated always as ({SEARCH_EXPRESSION}) stored,
                 -- what the list queries compare and sort by, stored (and so indexed) instead of computed
                 -- per row; generated, so writers never set them
                 make_key         text generated always as (lower(make)) stored,
                 -- the other equality filters' values as 'field:value' tags: one GIN index serves any
                 -- combination of them
                 filter_tags      text[] generated always as ({TAG_EXPRESSION}) stored,
                 {sort_keys}
             )
             -- every scraper run rewrites each car it saw (last_seen_*): room on the page lets most of those
             -- updates stay on it and skip the many indexes (heap-only tuples)
             with (fillfactor = 70);
             -- one index per order's keyset (key, id), and for the orders a make is mostly browsed in, one
             -- behind the make: a page is a range scan that stops after `limit` rows. Newest first is served
             -- by listed_position's unique index. The status is a filter, not a leading column, so that
             -- lists with delisted cars use the same indexes (most rows are active).
             create index cars_make_newest on cars (make_key, listed_position desc);
             create index cars_total_asc on cars (sort_total_asc, id);
             create index cars_make_total_asc on cars (make_key, sort_total_asc, id);
             create index cars_total_desc on cars (sort_total_desc desc, id);
             create index cars_make_total_desc on cars (make_key, sort_total_desc desc, id);
             create index cars_body_asc on cars (sort_body_asc, id);
             create index cars_body_desc on cars (sort_body_desc desc, id);
             create index cars_year_desc on cars (sort_year_desc desc, id);
             create index cars_mileage_asc on cars (sort_mileage_asc, id);
             create index cars_filter_tags on cars using gin (filter_tags);
             create table price_history (
                 car_id          uuid not null,
                 -- log position of the event that set this price
                 position        bigint primary key,
                 at              timestamptz not null,
                 body_price_yen  bigint,
                 total_price_yen bigint
             );
             create index price_history_car on price_history (car_id, position);
             create table timeline (
                 car_id   uuid not null,
                 position bigint primary key,
                 at       timestamptz not null,
                 -- domain::cars::CarChange::as_str: listed, price_changed, details_changed, delisted, relisted
                 kind     text not null,
                 -- what the event changed (the new values; old and new for prices)
                 changes  jsonb not null,
                 run_id   uuid
             );
             create index timeline_car on timeline (car_id, position);
             create table scrape_runs (
                 run_id           uuid primary key,
                 started_position bigint not null unique,
                 started_at       timestamptz not null,
                 start_urls       jsonb not null,
                 completed_at     timestamptz,
                 -- every start page followed to its end without a failure or a layout change
                 complete         boolean,
                 pages            integer not null default 0,
                 listings_seen    integer,
                 new              integer,
                 changed          integer,
                 relisted         integer,
                 delisted         integer,
                 errors           integer,
                 failures         integer not null default 0,
                 layout_changes   integer not null default 0
             );
             create index scrape_runs_complete on scrape_runs (started_position) where complete;
             create table scrape_run_pages (
                 run_id      uuid not null,
                 position    bigint primary key,
                 url         text not null,
                 page        integer not null,
                 listing_ids text[] not null,
                 at          timestamptz not null
             );
             create index scrape_run_pages_run on scrape_run_pages (run_id, position);
             create table scrape_run_problems (
                 run_id   uuid not null,
                 position bigint primary key,
                 -- domain::cars::ScrapeProblemKind::as_str: failure (a page not fetched, or forbidden by
                 -- robots.txt) or layout (the page changed shape)
                 kind     text not null,
                 url      text not null,
                 detail   text not null,
                 attempts integer,
                 at       timestamptz not null
             );
             create index scrape_run_problems_run on scrape_run_problems (run_id, position);"
        );
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        apply::apply(conn, events).await
    }
}

/// A patch as a JSON object of the changed columns (null: now unknown).
fn patch_json(patch: &DetailsPatch) -> Result<serde_json::Value, serde_json::Error> {
    serde_json::to_value(patch)
}

// ---------------------------------------------------------------------------------------------------------------
// Queries

/// A listing as it stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CarRow {
    pub id: Uuid,
    pub listing_id: String,
    pub make: Option<String>,
    pub model: Option<String>,
    pub grade: Option<String>,
    pub year: Option<i32>,
    pub mileage_km: Option<i64>,
    pub inspection: Option<String>,
    pub repair_history: Option<bool>,
    pub warranty: Option<String>,
    pub maintenance: Option<String>,
    pub displacement_cc: Option<i32>,
    pub transmission: Option<String>,
    pub body_type: Option<String>,
    pub color: Option<String>,
    pub prefecture: Option<String>,
    pub city: Option<String>,
    pub shop_name: Option<String>,
    pub shop_url: Option<String>,
    pub photo_url: Option<String>,
    pub detail_url: Option<String>,
    pub body_price_yen: Option<i64>,
    pub total_price_yen: Option<i64>,
    pub status: CarStatus,
    pub listed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub delisted_at: Option<DateTime<Utc>>,
    pub listed_position: i64,
}

impl FromRow<'_, PgRow> for CarRow {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            listing_id: row.try_get("listing_id")?,
            make: row.try_get("make")?,
            model: row.try_get("model")?,
            grade: row.try_get("grade")?,
            year: row.try_get("year")?,
            mileage_km: row.try_get("mileage_km")?,
            inspection: row.try_get("inspection")?,
            repair_history: row.try_get("repair_history")?,
            warranty: row.try_get("warranty")?,
            maintenance: row.try_get("maintenance")?,
            displacement_cc: row.try_get("displacement_cc")?,
            transmission: row.try_get("transmission")?,
            body_type: row.try_get("body_type")?,
            color: row.try_get("color")?,
            prefecture: row.try_get("prefecture")?,
            city: row.try_get("city")?,
            shop_name: row.try_get("shop_name")?,
            shop_url: row.try_get("shop_url")?,
            photo_url: row.try_get("photo_url")?,
            detail_url: row.try_get("detail_url")?,
            body_price_yen: row.try_get("body_price_yen")?,
            total_price_yen: row.try_get("total_price_yen")?,
            status: named(row, "status", CarStatus::parse)?,
            listed_at: row.try_get("listed_at")?,
            updated_at: row.try_get("updated_at")?,
            delisted_at: row.try_get("delisted_at")?,
            listed_position: row.try_get("listed_position")?,
        })
    }
}

impl CarRow {
    /// Whole days from listing to delisting, or to `now` while listed.
    pub fn days_on_market(&self, now: DateTime<Utc>) -> i64 {
        let end = self.delisted_at.unwrap_or(now);
        (end - self.listed_at).num_days().max(0)
    }
}

fn car_columns() -> String {
    let details: Vec<&str> = DETAIL_COLUMNS.iter().map(|(c, _)| *c).collect();
    format!(
        "c.id, c.listing_id, {}, c.body_price_yen, c.total_price_yen, c.status, c.listed_at, c.updated_at, \
         c.delisted_at, c.listed_position",
        details
            .iter()
            .map(|c| format!("c.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Which price a price filter or order looks at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PriceKind {
    /// 支払総額.
    #[default]
    Total,
    /// 車両本体価格.
    Body,
}

impl PriceKind {
    fn column(self) -> &'static str {
        match self {
            PriceKind::Total => "c.total_price_yen",
            PriceKind::Body => "c.body_price_yen",
        }
    }
}

/// Which cars to list. Text values match case-insensitively and exactly (after the caller's NFKC
/// normalisation); `words` must each appear in the listing's searchable text.
#[derive(Debug, Clone, Default)]
pub struct CarFilter {
    pub make: Option<String>,
    pub model: Option<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub price_kind: PriceKind,
    pub min_year: Option<i32>,
    pub max_year: Option<i32>,
    pub max_mileage_km: Option<i64>,
    pub prefecture: Option<String>,
    pub body_type: Option<String>,
    pub transmission: Option<String>,
    pub color: Option<String>,
    pub repair_history: Option<bool>,
    /// Lowercase words, all of which must match.
    pub words: Vec<String>,
    pub include_delisted: bool,
}

/// The order of a car list; ties are broken by id, ascending, so pages never overlap or skip.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CarOrder {
    /// Most recently listed first.
    #[default]
    Newest,
    PriceAsc,
    PriceDesc,
    YearDesc,
    MileageAsc,
}

impl CarOrder {
    /// The stored column this order sorts by (unknowns last, see [`SORT_KEYS`]), whether it descends, and
    /// whether it is unique (then ties cannot happen and the id is no part of the order).
    fn key(self, price: PriceKind) -> (&'static str, bool, bool) {
        match (self, price) {
            (CarOrder::Newest, _) => ("c.listed_position", true, true),
            (CarOrder::PriceAsc, PriceKind::Total) => ("c.sort_total_asc", false, false),
            (CarOrder::PriceAsc, PriceKind::Body) => ("c.sort_body_asc", false, false),
            (CarOrder::PriceDesc, PriceKind::Total) => ("c.sort_total_desc", true, false),
            (CarOrder::PriceDesc, PriceKind::Body) => ("c.sort_body_desc", true, false),
            (CarOrder::YearDesc, _) => ("c.sort_year_desc", true, false),
            (CarOrder::MileageAsc, _) => ("c.sort_mileage_asc", false, false),
        }
    }

    /// Whether this order sorts by a price (then a price range is a range of its key).
    fn by_price(self) -> bool {
        matches!(self, CarOrder::PriceAsc | CarOrder::PriceDesc)
    }

    /// The key of `row` under this order: what a cursor after it holds.
    pub fn key_of(self, row: &CarRow, price: PriceKind) -> i64 {
        let price = match price {
            PriceKind::Total => row.total_price_yen,
            PriceKind::Body => row.body_price_yen,
        };
        match self {
            CarOrder::Newest => row.listed_position,
            CarOrder::PriceAsc => price.unwrap_or(i64::MAX),
            CarOrder::PriceDesc => price.unwrap_or(-1),
            CarOrder::YearDesc => row.year.map_or(-1, i64::from),
            CarOrder::MileageAsc => row.mileage_km.unwrap_or(i64::MAX),
        }
    }
}

/// Appends the conditions of the filters present on `c`, each value bound. With `with_make` false the make
/// filter is left out (for make facets). `price_key` is the stored key of the list's order when it sorts by the
/// filtered price: the bounds then go on it, so that its index range serves them.
fn push_filter(
    q: &mut QueryBuilder<Postgres>,
    filter: &CarFilter,
    with_make: bool,
    price_key: Option<&str>,
) {
    // the status is written into the statement, not bound: the planner then knows the share of rows it keeps
    if filter.include_delisted {
        q.push("true");
    } else {
        q.push(format_args!("c.status = '{}'", CarStatus::Active.as_str()));
    }
    if with_make && let Some(make) = &filter.make {
        q.push(" and c.make_key = lower(")
            .push_bind(make.clone())
            .push(")");
    }
    let tags: Vec<(&str, &String)> = [
        ("model", &filter.model),
        ("prefecture", &filter.prefecture),
        ("body_type", &filter.body_type),
        ("transmission", &filter.transmission),
        ("color", &filter.color),
    ]
    .into_iter()
    .filter_map(|(field, value)| value.as_ref().map(|v| (field, v)))
    .collect();
    if !tags.is_empty() || filter.repair_history.is_some() {
        // as TAG_EXPRESSION builds them
        let mut wanted = q.separated(", ");
        wanted.push_unseparated(" and c.filter_tags @> array[");
        for (field, value) in tags {
            wanted
                .push(format_args!("'{field}:' || lower("))
                .push_bind_unseparated(value.clone())
                .push_unseparated(")");
        }
        if let Some(repaired) = filter.repair_history {
            wanted
                .push("'repair:' || ")
                .push_bind_unseparated(repaired)
                .push_unseparated("::text");
        }
        wanted.push_unseparated("]::text[]");
    }
    if filter.min_price.is_some() || filter.max_price.is_some() {
        let price = filter.price_kind.column();
        // a stored key holds an unknown price as a sentinel; `is not null` leaves it out as the bounds did
        let bounded = price_key.unwrap_or(price);
        q.push(format_args!(" and {price} is not null"));
        if let Some(min) = filter.min_price {
            q.push(format_args!(" and {bounded} >= ")).push_bind(min);
        }
        if let Some(max) = filter.max_price {
            q.push(format_args!(" and {bounded} <= ")).push_bind(max);
        }
    }
    if let Some(year) = filter.min_year {
        q.push(" and c.year >= ").push_bind(year);
    }
    if let Some(year) = filter.max_year {
        q.push(" and c.year <= ").push_bind(year);
    }
    if let Some(mileage) = filter.max_mileage_km {
        q.push(" and c.mileage_km <= ").push_bind(mileage);
    }
    for word in &filter.words {
        q.push(" and strpos(c.search, ")
            .push_bind(word.clone())
            .push(") > 0");
    }
}

/// The statement of [`cars`]: the filters present, the keyset after the cursor on the order's stored key, and
/// the order of that key's index.
pub fn cars_statement(
    filter: &CarFilter,
    order: CarOrder,
    after: Option<(i64, Uuid)>,
    limit: i64,
) -> QueryBuilder<Postgres> {
    let (key, descending, unique) = order.key(filter.price_kind);
    let mut q = QueryBuilder::new(format!("select {} from cars.cars c where ", car_columns()));
    let price_key = order.by_price().then_some(key);
    push_filter(&mut q, filter, true, price_key);
    let (direction, beyond, from) = if descending {
        ("desc", "<", "<=")
    } else {
        ("asc", ">", ">=")
    };
    if let Some((after_key, after_id)) = after {
        if unique {
            q.push(format_args!(" and {key} {beyond} "))
                .push_bind(after_key);
        } else {
            // the first condition is the index range; the second skips the cursor's ties up to its id
            q.push(format_args!(" and {key} {from} "))
                .push_bind(after_key)
                .push(format_args!(" and ({key} {beyond} "))
                .push_bind(after_key)
                .push(" or c.id > ")
                .push_bind(after_id)
                .push(")");
        }
    }
    q.push(format_args!(" order by {key} {direction}"));
    if !unique {
        q.push(", c.id");
    }
    q.push(" limit ").push_bind(limit);
    q
}

/// Up to `limit` cars matching `filter` in `order`, after the `(key, id)` of a cursor.
#[tracing::instrument(skip_all)]
pub async fn cars(
    pool: &PgPool,
    filter: &CarFilter,
    order: CarOrder,
    after: Option<(i64, Uuid)>,
    limit: i64,
) -> Result<Vec<CarRow>, sqlx::Error> {
    cars_statement(filter, order, after, limit)
        .build_query_as()
        .fetch_all(pool)
        .await
}

/// One car, active or delisted.
#[tracing::instrument(skip_all)]
pub async fn car(pool: &PgPool, id: Uuid) -> Result<Option<CarRow>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "select {} from cars.cars c where c.id = $1",
        car_columns()
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct PricePoint {
    pub car_id: Uuid,
    pub at: DateTime<Utc>,
    pub body_price_yen: Option<i64>,
    pub total_price_yen: Option<i64>,
    pub position: i64,
}

/// A car's prices, oldest first.
#[tracing::instrument(skip_all)]
pub async fn price_history(pool: &PgPool, car: Uuid) -> Result<Vec<PricePoint>, sqlx::Error> {
    price_histories(pool, &[car]).await
}

/// The prices of several cars (a page of a list, in one query), each car's oldest first.
#[tracing::instrument(skip_all)]
pub async fn price_histories(pool: &PgPool, cars: &[Uuid]) -> Result<Vec<PricePoint>, sqlx::Error> {
    sqlx::query_as(
        "select car_id, at, body_price_yen, total_price_yen, position from cars.price_history
          where car_id = any($1) order by car_id, position",
    )
    .bind(cars)
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEntry {
    pub car_id: Uuid,
    pub at: DateTime<Utc>,
    pub kind: CarChange,
    pub changes: Json<serde_json::Value>,
    pub run_id: Option<Uuid>,
    pub position: i64,
}

impl FromRow<'_, PgRow> for TimelineEntry {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            car_id: row.try_get("car_id")?,
            at: row.try_get("at")?,
            kind: named(row, "kind", CarChange::parse)?,
            changes: row.try_get("changes")?,
            run_id: row.try_get("run_id")?,
            position: row.try_get("position")?,
        })
    }
}

/// What happened to a car, oldest first.
#[tracing::instrument(skip_all)]
pub async fn timeline_of(pool: &PgPool, car: Uuid) -> Result<Vec<TimelineEntry>, sqlx::Error> {
    timelines(pool, &[car]).await
}

/// The timelines of several cars (a page of a list, in one query), each car's oldest first.
#[tracing::instrument(skip_all)]
pub async fn timelines(pool: &PgPool, cars: &[Uuid]) -> Result<Vec<TimelineEntry>, sqlx::Error> {
    sqlx::query_as(
        "select car_id, at, kind, changes, run_id, position from cars.timeline
          where car_id = any($1) order by car_id, position",
    )
    .bind(cars)
    .fetch_all(pool)
    .await
}

/// The statement of [`make_facets`].
pub fn make_facets_statement(filter: &CarFilter) -> QueryBuilder<Postgres> {
    let mut q = QueryBuilder::new(
        "select coalesce(c.make, '') as make, count(*) as count from cars.cars c where ",
    );
    push_filter(&mut q, filter, false, None);
    q.push(" group by 1 order by 2 desc, 1");
    q
}

/// Makes of the cars matching `filter` (its make ignored), with their counts, most common first.
#[tracing::instrument(skip_all)]
pub async fn make_facets(
    pool: &PgPool,
    filter: &CarFilter,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    make_facets_statement(filter)
        .build_query_as()
        .fetch_all(pool)
        .await
}

/// Active listings that the complete runs since their last sighting missed at least `after_runs` times,
/// counting the run that started at `current_run_started` as complete (it is about to be). Listing id and the
/// number of runs that missed it.
#[tracing::instrument(skip_all)]
pub async fn delisting_candidates(
    pool: &PgPool,
    current_run_started: i64,
    after_runs: u32,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "select listing_id, missed from (
             select c.listing_id,
                    (select count(*) from cars.scrape_runs r
                      where r.complete and r.started_position > c.last_seen_position
                        and r.started_position <> $1)
                    + case when $1 > c.last_seen_position then 1 else 0 end as missed
               from cars.cars c where c.status = $3) m
          where missed >= $2
          order by listing_id",
    )
    .bind(current_run_started)
    .bind(i64::from(after_runs))
    .bind(CarStatus::Active.as_str())
    .fetch_all(pool)
    .await
}

/// A scraper run, as admins audit it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct RunRow {
    pub run_id: Uuid,
    pub started_position: i64,
    pub started_at: DateTime<Utc>,
    pub start_urls: Json<Vec<String>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub complete: Option<bool>,
    pub pages: i32,
    pub listings_seen: Option<i32>,
    pub new: Option<i32>,
    pub changed: Option<i32>,
    pub relisted: Option<i32>,
    pub delisted: Option<i32>,
    pub errors: Option<i32>,
    pub failures: i32,
    pub layout_changes: i32,
}

const RUN_COLUMNS: &str = "run_id, started_position, started_at, start_urls, completed_at, complete, pages, \
                           listings_seen, new, changed, relisted, delisted, errors, failures, layout_changes";

/// Runs, newest first, before the one that started at `before` (a `started_position`).
#[tracing::instrument(skip_all)]
pub async fn runs(
    pool: &PgPool,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<RunRow>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "select {RUN_COLUMNS} from cars.scrape_runs
          where $1::bigint is null or started_position < $1
          order by started_position desc limit $2"
    )))
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await
}

#[tracing::instrument(skip_all)]
pub async fn run(pool: &PgPool, id: Uuid) -> Result<Option<RunRow>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "select {RUN_COLUMNS} from cars.scrape_runs where run_id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct RunPage {
    pub url: String,
    pub page: i32,
    pub listing_ids: Vec<String>,
    pub at: DateTime<Utc>,
}

/// The pages a run read, in order, with the listing ids each showed.
#[tracing::instrument(skip_all)]
pub async fn run_pages(pool: &PgPool, id: Uuid) -> Result<Vec<RunPage>, sqlx::Error> {
    sqlx::query_as(
        "select url, page, listing_ids, at from cars.scrape_run_pages where run_id = $1 order by position",
    )
    .bind(id)
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunProblem {
    pub kind: ScrapeProblemKind,
    pub url: String,
    pub detail: String,
    pub attempts: Option<i32>,
    pub at: DateTime<Utc>,
}

impl FromRow<'_, PgRow> for RunProblem {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            kind: named(row, "kind", ScrapeProblemKind::parse)?,
            url: row.try_get("url")?,
            detail: row.try_get("detail")?,
            attempts: row.try_get("attempts")?,
            at: row.try_get("at")?,
        })
    }
}

/// The pages a run could not read or found changed, in order.
#[tracing::instrument(skip_all)]
pub async fn run_problems(pool: &PgPool, id: Uuid) -> Result<Vec<RunProblem>, sqlx::Error> {
    sqlx::query_as(
        "select kind, url, detail, attempts, at from cars.scrape_run_problems where run_id = $1 order by position",
    )
    .bind(id)
    .fetch_all(pool)
    .await
}
