//! Car listings in GraphQL: browsing and filtering (`cars`, `car`, `carMakes`) for signed-in users, and the
//! scraper's runs (`scrapeRuns`, `scrapeRun`) for admins auditing what each run saw.

use async_graphql::connection::{Connection, Edge, OpaqueCursor};
use async_graphql::{ComplexObject, Context, Enum, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use projections::cars::{self as model, CarFilter, CarOrder, CarRow, PriceKind, RunRow};
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

use super::{AdminOnly, SignedIn, admin, page_size, read_after, services};
use crate::error::ApiError;

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[graphql(name = "PriceKind")]
pub enum PriceKindValue {
    /// 支払総額: what the buyer pays, fees included.
    #[default]
    Total,
    /// 車両本体価格: the car alone.
    Body,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[graphql(name = "CarOrder")]
pub enum CarOrderValue {
    /// Most recently listed first.
    #[default]
    Newest,
    PriceAsc,
    PriceDesc,
    YearDesc,
    MileageAsc,
}

impl CarOrderValue {
    pub(crate) fn model(self) -> CarOrder {
        match self {
            CarOrderValue::Newest => CarOrder::Newest,
            CarOrderValue::PriceAsc => CarOrder::PriceAsc,
            CarOrderValue::PriceDesc => CarOrder::PriceDesc,
            CarOrderValue::YearDesc => CarOrder::YearDesc,
            CarOrderValue::MileageAsc => CarOrder::MileageAsc,
        }
    }

    pub(crate) fn parse(raw: &str) -> Option<Self> {
        Some(match raw.trim().to_lowercase().as_str() {
            "" | "newest" => CarOrderValue::Newest,
            "price_asc" => CarOrderValue::PriceAsc,
            "price_desc" => CarOrderValue::PriceDesc,
            "year_desc" => CarOrderValue::YearDesc,
            "mileage_asc" => CarOrderValue::MileageAsc,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            CarOrderValue::Newest => "newest",
            CarOrderValue::PriceAsc => "price_asc",
            CarOrderValue::PriceDesc => "price_desc",
            CarOrderValue::YearDesc => "year_desc",
            CarOrderValue::MileageAsc => "mileage_asc",
        }
    }

    /// What a list in this order over `price` is sorted by, as its cursors record it: the order, and for the
    /// price orders which price (a total-price key means nothing in a list sorted by body price).
    fn sorted_by(self, price: PriceKind) -> String {
        match self {
            CarOrderValue::PriceAsc | CarOrderValue::PriceDesc => {
                let price = match price {
                    PriceKind::Total => "total",
                    PriceKind::Body => "body",
                };
                format!("{}/{price}", self.name())
            }
            _ => self.name().to_owned(),
        }
    }
}

/// Which cars to list. Text values compare case-insensitively after NFKC normalisation (`ﾄﾖﾀ` finds `トヨタ`);
/// `text` words must all appear in the make, model, grade, body type, colour, transmission, place, dealer or
/// listing id.
#[derive(InputObject, Debug, Clone, Default)]
pub struct CarFilterInput {
    pub make: Option<String>,
    pub model: Option<String>,
    /// Inclusive bounds in yen, on the price `price` names.
    pub min_price_yen: Option<i64>,
    pub max_price_yen: Option<i64>,
    #[graphql(default)]
    pub price: PriceKindValue,
    pub min_year: Option<i32>,
    pub max_year: Option<i32>,
    pub max_mileage_km: Option<i64>,
    pub prefecture: Option<String>,
    pub body_type: Option<String>,
    pub transmission: Option<String>,
    pub color: Option<String>,
    /// true: only cars with a repair history (修復歴あり); false: only cars without.
    pub repair_history: Option<bool>,
    pub text: Option<String>,
    /// Delisted cars too (they are left out by default).
    #[graphql(default)]
    pub include_delisted: bool,
}

/// NFKC, trimmed; empty is no value.
fn clean(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.nfkc().collect::<String>().trim().to_owned())
        .filter(|v| !v.is_empty())
}

impl CarFilterInput {
    /// The read model's filter, validated.
    pub(crate) fn into_filter(self) -> Result<CarFilter, ApiError> {
        let non_negative = |value: Option<i64>, name: &str| match value {
            Some(v) if v < 0 => Err(ApiError::validation(format!("{name} cannot be negative"))),
            _ => Ok(value),
        };
        let min_price = non_negative(self.min_price_yen, "minPriceYen")?;
        let max_price = non_negative(self.max_price_yen, "maxPriceYen")?;
        let max_mileage_km = non_negative(self.max_mileage_km, "maxMileageKm")?;
        if let (Some(min), Some(max)) = (min_price, max_price)
            && min > max
        {
            return Err(ApiError::validation("minPriceYen is above maxPriceYen"));
        }
        if let (Some(min), Some(max)) = (self.min_year, self.max_year)
            && min > max
        {
            return Err(ApiError::validation("minYear is above maxYear"));
        }
        let text = clean(self.text).unwrap_or_default().to_lowercase();
        let words: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
        if words.len() > 10 || words.iter().any(|w| w.chars().count() > 64) {
            return Err(ApiError::validation(
                "text takes at most 10 words of at most 64 characters",
            ));
        }
        Ok(CarFilter {
            make: clean(self.make),
            model: clean(self.model),
            min_price,
            max_price,
            price_kind: match self.price {
                PriceKindValue::Total => PriceKind::Total,
                PriceKindValue::Body => PriceKind::Body,
            },
            min_year: self.min_year,
            max_year: self.max_year,
            max_mileage_km,
            prefecture: clean(self.prefecture),
            body_type: clean(self.body_type),
            transmission: clean(self.transmission),
            color: clean(self.color),
            repair_history: self.repair_history,
            words,
            include_delisted: self.include_delisted,
        })
    }
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "domain::cars::CarStatus")]
pub enum CarStatus {
    Active,
    Delisted,
}

/// A listing as it stands now.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(complex)]
pub struct Car {
    pub id: Uuid,
    /// carsensor's id, `AU…`.
    pub listing_id: String,
    pub make: Option<String>,
    pub model: Option<String>,
    pub grade: Option<String>,
    pub year: Option<i32>,
    /// Null when the listing says 不明 (unknown).
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
    /// Whole days from listing to delisting, or to now while listed.
    pub days_on_market: i64,
    /// Read with the rest of a list's page when the query asks for them (one query for the page, not one per car).
    #[graphql(skip)]
    pub prefetched_prices: Option<Vec<model::PricePoint>>,
    #[graphql(skip)]
    pub prefetched_timeline: Option<Vec<model::TimelineEntry>>,
}

impl Car {
    pub(crate) fn from_row(row: CarRow, now: DateTime<Utc>) -> Self {
        Self {
            days_on_market: row.days_on_market(now),
            id: row.id,
            listing_id: row.listing_id,
            make: row.make,
            model: row.model,
            grade: row.grade,
            year: row.year,
            mileage_km: row.mileage_km,
            inspection: row.inspection,
            repair_history: row.repair_history,
            warranty: row.warranty,
            maintenance: row.maintenance,
            displacement_cc: row.displacement_cc,
            transmission: row.transmission,
            body_type: row.body_type,
            color: row.color,
            prefecture: row.prefecture,
            city: row.city,
            shop_name: row.shop_name,
            shop_url: row.shop_url,
            photo_url: row.photo_url,
            detail_url: row.detail_url,
            body_price_yen: row.body_price_yen,
            total_price_yen: row.total_price_yen,
            status: row.status.into(),
            listed_at: row.listed_at,
            updated_at: row.updated_at,
            delisted_at: row.delisted_at,
            prefetched_prices: None,
            prefetched_timeline: None,
        }
    }
}

#[derive(SimpleObject, Debug)]
pub struct PricePoint {
    pub at: DateTime<Utc>,
    pub body_price_yen: Option<i64>,
    pub total_price_yen: Option<i64>,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "domain::cars::CarChange")]
pub enum CarChange {
    Listed,
    PriceChanged,
    DetailsChanged,
    Delisted,
    Relisted,
}

/// One thing that happened to a listing.
#[derive(SimpleObject, Debug)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    pub kind: CarChange,
    /// Listed: `{prices, details}`; price changed: `{old, new}`; details changed: the changed fields with their
    /// new values (null: now unknown); delisted: `{missed_runs}`.
    pub changes: Json<serde_json::Value>,
    /// The scraper run that saw it.
    pub run_id: Option<Uuid>,
}

#[ComplexObject]
impl Car {
    /// Prices over time, oldest first (one point when listed, one per change).
    async fn price_history(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<PricePoint>> {
        let points = match &self.prefetched_prices {
            Some(points) => points.clone(),
            None => model::price_history(&services(ctx).pool, self.id)
                .await
                .map_err(ApiError::from)?,
        };
        Ok(points
            .into_iter()
            .map(|p| PricePoint {
                at: p.at,
                body_price_yen: p.body_price_yen,
                total_price_yen: p.total_price_yen,
            })
            .collect())
    }

    /// What happened to the listing, oldest first.
    async fn timeline(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TimelineEntry>> {
        let entries = match &self.prefetched_timeline {
            Some(entries) => entries.clone(),
            None => model::timeline_of(&services(ctx).pool, self.id)
                .await
                .map_err(ApiError::from)?,
        };
        Ok(entries
            .into_iter()
            .map(|e| TimelineEntry {
                at: e.at,
                kind: e.kind.into(),
                changes: Json(e.changes.0),
                run_id: e.run_id,
            })
            .collect())
    }
}

#[derive(SimpleObject, Debug)]
pub struct MakeCount {
    pub make: String,
    pub count: i64,
}

/// A scraper run, for auditing.
#[derive(SimpleObject, Debug)]
#[graphql(complex)]
pub struct ScrapeRun {
    pub id: Uuid,
    pub started_at: DateTime<Utc>,
    pub start_urls: Vec<String>,
    /// Null while the run is in progress (or was interrupted).
    pub completed_at: Option<DateTime<Utc>>,
    /// Every start page followed to its end without failures or layout changes; only complete runs count
    /// towards delisting.
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

impl From<RunRow> for ScrapeRun {
    fn from(row: RunRow) -> Self {
        Self {
            id: row.run_id,
            started_at: row.started_at,
            start_urls: row.start_urls.0,
            completed_at: row.completed_at,
            complete: row.complete,
            pages: row.pages,
            listings_seen: row.listings_seen,
            new: row.new,
            changed: row.changed,
            relisted: row.relisted,
            delisted: row.delisted,
            errors: row.errors,
            failures: row.failures,
            layout_changes: row.layout_changes,
        }
    }
}

#[derive(SimpleObject, Debug)]
pub struct ScrapedPage {
    pub url: String,
    pub page: i32,
    pub listing_ids: Vec<String>,
    pub at: DateTime<Utc>,
}

/// What went wrong with a page of a run.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "domain::cars::ScrapeProblemKind")]
pub enum ScrapeProblemKind {
    /// The page was not fetched, or robots.txt forbids it.
    Failure,
    /// The page changed shape.
    Layout,
}

#[derive(SimpleObject, Debug)]
pub struct ScrapeProblem {
    pub kind: ScrapeProblemKind,
    pub url: String,
    pub detail: String,
    pub attempts: Option<i32>,
    pub at: DateTime<Utc>,
}

#[ComplexObject]
impl ScrapeRun {
    /// The list pages the run read, in order, with the listing ids each showed.
    async fn scraped_pages(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ScrapedPage>> {
        let pages = model::run_pages(&services(ctx).pool, self.id)
            .await
            .map_err(ApiError::from)?;
        Ok(pages
            .into_iter()
            .map(|p| ScrapedPage {
                url: p.url,
                page: p.page,
                listing_ids: p.listing_ids,
                at: p.at,
            })
            .collect())
    }

    /// Pages that failed and layout changes, in order.
    async fn problems(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ScrapeProblem>> {
        let problems = model::run_problems(&services(ctx).pool, self.id)
            .await
            .map_err(ApiError::from)?;
        Ok(problems
            .into_iter()
            .map(|p| ScrapeProblem {
                kind: p.kind.into(),
                url: p.url,
                detail: p.detail,
                attempts: p.attempts,
                at: p.at,
            })
            .collect())
    }
}

/// A car list's cursor: what the list is sorted by ([`CarOrderValue::sorted_by`]), the sort key of the last
/// car, and its id.
pub(crate) type CarCursor = OpaqueCursor<(String, i64, Uuid)>;

/// One page of cars: the rows (at most `limit`), whether more follow, and the cursor after each row.
pub(crate) async fn car_page(
    pool: &sqlx::PgPool,
    filter: &CarFilter,
    order: CarOrderValue,
    after: Option<String>,
    limit: i64,
) -> Result<(Vec<(String, CarRow)>, bool), ApiError> {
    use async_graphql::connection::CursorType;
    let after = match after.filter(|a| !a.is_empty()) {
        None => None,
        Some(raw) => {
            let cursor = CarCursor::decode_cursor(&raw)
                .map_err(|_| ApiError::validation("after is not a cursor of this list"))?;
            let (sorted_by, key, id) = cursor.0;
            if sorted_by != order.sorted_by(filter.price_kind) {
                return Err(ApiError::validation(
                    "after is a cursor of another order or price; start again without it",
                ));
            }
            Some((key, id))
        }
    };
    let mut rows = model::cars(pool, filter, order.model(), after, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let page = rows
        .into_iter()
        .map(|row| {
            let key = order.model().key_of(&row, filter.price_kind);
            let cursor =
                OpaqueCursor((order.sorted_by(filter.price_kind), key, row.id)).encode_cursor();
            (cursor, row)
        })
        .collect();
    Ok((page, more))
}

/// Rows of several cars, by car, in their order.
fn group_by_car<T>(
    rows: Vec<T>,
    car: impl Fn(&T) -> Uuid,
) -> std::collections::HashMap<Uuid, Vec<T>> {
    let mut grouped: std::collections::HashMap<Uuid, Vec<T>> = std::collections::HashMap::new();
    for row in rows {
        grouped.entry(car(&row)).or_default().push(row);
    }
    grouped
}

#[derive(Default)]
pub struct CarsQuery;

#[Object]
impl CarsQuery {
    /// Cars matching `filter`, in `orderBy` order (default NEWEST; ties broken by id), `first` (1 to 100,
    /// default 20) at a time.
    #[graphql(guard = "SignedIn")]
    async fn cars(
        &self,
        ctx: &Context<'_>,
        filter: Option<CarFilterInput>,
        order_by: Option<CarOrderValue>,
        first: Option<i32>,
        after: Option<String>,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Connection<String, Car>> {
        let limit = page_size("first", first.unwrap_or(20))?;
        let order_by = order_by.unwrap_or_default();
        let filter = filter.unwrap_or_default().into_filter()?;
        let has_previous = after.as_deref().is_some_and(|a| !a.is_empty());
        read_after(ctx, min_position, &[model::NAME]).await?;
        let pool = &services(ctx).pool;
        let (rows, more) = car_page(pool, &filter, order_by, after, limit).await?;
        let now = Utc::now();
        let mut cars: Vec<(String, Car)> = rows
            .into_iter()
            .map(|(cursor, row)| (cursor, Car::from_row(row, now)))
            .collect();
        // what the query asks of each car is read for the whole page at once
        let node = ctx.look_ahead().field("edges").field("node");
        let ids: Vec<Uuid> = cars.iter().map(|(_, car)| car.id).collect();
        if node.field("priceHistory").exists() {
            let points = model::price_histories(pool, &ids)
                .await
                .map_err(ApiError::from)?;
            let mut by_car = group_by_car(points, |p| p.car_id);
            for (_, car) in &mut cars {
                car.prefetched_prices = Some(by_car.remove(&car.id).unwrap_or_default());
            }
        }
        if node.field("timeline").exists() {
            let entries = model::timelines(pool, &ids).await.map_err(ApiError::from)?;
            let mut by_car = group_by_car(entries, |e| e.car_id);
            for (_, car) in &mut cars {
                car.prefetched_timeline = Some(by_car.remove(&car.id).unwrap_or_default());
            }
        }
        let mut connection = Connection::new(has_previous, more);
        connection
            .edges
            .extend(cars.into_iter().map(|(cursor, car)| Edge::new(cursor, car)));
        Ok(connection)
    }

    /// One car (also a delisted one), with its price history and timeline.
    #[graphql(guard = "SignedIn")]
    async fn car(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Option<Car>> {
        read_after(ctx, min_position, &[model::NAME]).await?;
        let row = model::car(&services(ctx).pool, id)
            .await
            .map_err(ApiError::from)?;
        Ok(row.map(|row| Car::from_row(row, Utc::now())))
    }

    /// Makes of the cars matching `filter` (its own `make` ignored), with how many cars each has, most first.
    #[graphql(guard = "SignedIn")]
    async fn car_makes(
        &self,
        ctx: &Context<'_>,
        filter: Option<CarFilterInput>,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Vec<MakeCount>> {
        let filter = filter.unwrap_or_default().into_filter()?;
        read_after(ctx, min_position, &[model::NAME]).await?;
        let facets = model::make_facets(&services(ctx).pool, &filter)
            .await
            .map_err(ApiError::from)?;
        Ok(facets
            .into_iter()
            .map(|(make, count)| MakeCount { make, count })
            .collect())
    }

    /// The scraper's runs, newest first.
    #[graphql(guard = "AdminOnly", directive = admin::apply())]
    async fn scrape_runs(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
        after: Option<String>,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Connection<OpaqueCursor<i64>, ScrapeRun>> {
        use async_graphql::connection::CursorType;
        let limit = page_size("first", first)?;
        let before = after
            .map(|c| {
                OpaqueCursor::<i64>::decode_cursor(&c)
                    .map(|c| c.0)
                    .map_err(|_| ApiError::validation("after is not a cursor of this list"))
            })
            .transpose()?;
        read_after(ctx, min_position, &[model::NAME]).await?;
        let mut rows = model::runs(&services(ctx).pool, before, limit + 1)
            .await
            .map_err(ApiError::from)?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let mut connection = Connection::new(before.is_some(), more);
        connection.edges.extend(
            rows.into_iter()
                .map(|row| Edge::new(OpaqueCursor(row.started_position), ScrapeRun::from(row))),
        );
        Ok(connection)
    }

    /// One scraper run with the pages it read and its problems.
    #[graphql(guard = "AdminOnly", directive = admin::apply())]
    async fn scrape_run(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        min_position: Option<i64>,
    ) -> async_graphql::Result<Option<ScrapeRun>> {
        read_after(ctx, min_position, &[model::NAME]).await?;
        let row = model::run(&services(ctx).pool, id)
            .await
            .map_err(ApiError::from)?;
        Ok(row.map(ScrapeRun::from))
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Schema};

    use super::*;

    /// Serves one car whose price history and timeline were read with its list's page.
    struct Prefetched;

    #[Object]
    impl Prefetched {
        async fn car(&self) -> Car {
            let at = DateTime::parse_from_rfc3339("2026-11-01T09:00:00Z")
                .unwrap()
                .with_timezone(&Utc);
            let id = Uuid::nil();
            let row = CarRow {
                id,
                listing_id: "AU6877255381".to_owned(),
                make: None,
                model: None,
                grade: None,
                year: None,
                mileage_km: None,
                inspection: None,
                repair_history: None,
                warranty: None,
                maintenance: None,
                displacement_cc: None,
                transmission: None,
                body_type: None,
                color: None,
                prefecture: None,
                city: None,
                shop_name: None,
                shop_url: None,
                photo_url: None,
                detail_url: None,
                body_price_yen: Some(3_122_000),
                total_price_yen: Some(3_239_000),
                status: domain::cars::CarStatus::Active,
                listed_at: at,
                updated_at: at,
                delisted_at: None,
                listed_position: 1,
            };
            let mut car = Car::from_row(row, at);
            car.prefetched_prices = Some(vec![model::PricePoint {
                car_id: id,
                at,
                body_price_yen: Some(3_122_000),
                total_price_yen: Some(3_239_000),
                position: 1,
            }]);
            car.prefetched_timeline = Some(vec![]);
            car
        }
    }

    #[tokio::test]
    async fn a_prefetched_price_history_and_timeline_are_served_without_a_query() {
        // no database in the schema's data: a resolver that queried per car would find none
        let schema = Schema::new(Prefetched, EmptyMutation, EmptySubscription);
        let response = schema
            .execute("{ car { priceHistory { totalPriceYen bodyPriceYen } timeline { kind } } }")
            .await;
        assert!(response.errors.is_empty(), "{:?}", response.errors);
        assert_eq!(
            response.data.into_json().unwrap(),
            serde_json::json!({ "car": {
                "priceHistory": [{ "totalPriceYen": 3_239_000, "bodyPriceYen": 3_122_000 }],
                "timeline": []
            } })
        );
    }
}
