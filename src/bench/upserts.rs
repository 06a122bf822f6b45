//! Listing upserts through the `Car` decider against a plain-table upsert.

use std::time::{Duration, Instant};

use eventlog::EventLog;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::thousands as n;

/// The listing-upsert benchmark: observations per second through the `Car` decider, and the plain-table
/// upsert baseline.
#[derive(Debug, Serialize)]
pub struct UpsertFigures {
    pub upsert_listings: usize,
    pub upsert_changed: usize,
    pub upsert_listings_per_s: f64,
    pub baseline_upsert_per_s: f64,
    pub upsert_ratio: f64,
}

impl UpsertFigures {
    pub(super) fn print(&self) {
        println!(
            "  listing upserts, {} observed ({} repriced)  {:>10} listings/s   plain-table upsert baseline {:>10} rows/s   ratio {:.2}",
            n(self.upsert_listings as f64),
            n(self.upsert_changed as f64),
            n(self.upsert_listings_per_s),
            n(self.baseline_upsert_per_s),
            self.upsert_ratio
        );
    }
}

/// A listing as the scraper would observe it, the `n`th of a catalogue.
fn bench_listing(n: usize, repriced: bool) -> domain::cars::Listing {
    use domain::cars::{Listing, ListingId, Prices};
    let total = 1_000_000 + (n as i64 % 400) * 10_000 - if repriced { 50_000 } else { 0 };
    Listing {
        id: ListingId::parse(&format!("AU{:010}", 6_000_000_000 + n)).expect("a valid listing id"),
        prices: Prices {
            body_yen: Some(total - 110_000),
            total_yen: Some(total),
        },
        details: bench_details(n),
    }
}

/// The details of the `n`th car of a generated catalogue.
pub(super) fn bench_details(n: usize) -> domain::cars::CarDetails {
    use domain::cars::CarDetails;
    const MAKES: [(&str, &str); 5] = [
        ("トヨタ", "プリウス"),
        ("ホンダ", "フィット"),
        ("マツダ", "CX-5"),
        ("日産", "ノート"),
        ("スバル", "レヴォーグ"),
    ];
    let (make, model) = MAKES[n % MAKES.len()];
    CarDetails {
        make: Some(make.to_owned()),
        model: Some(model.to_owned()),
        grade: Some("2.0 Z".to_owned()),
        year: Some(2010 + (n % 15) as i32),
        mileage_km: Some((n as i64 * 37) % 150_000),
        inspection: Some("2026(R08)年07月".to_owned()),
        repair_history: Some(n.is_multiple_of(11)),
        warranty: Some("保証付".to_owned()),
        maintenance: Some("法定整備付".to_owned()),
        displacement_cc: Some(2000),
        transmission: Some("フロアCVT".to_owned()),
        body_type: Some("ハッチバック".to_owned()),
        color: Some("灰".to_owned()),
        prefecture: Some("兵庫県".to_owned()),
        city: Some("神戸市長田区".to_owned()),
        shop_name: Some("リバティ ドリーム長田店".to_owned()),
        shop_url: Some("https://www.carsensor.net/shop/hyogo/081189064/".to_owned()),
        photo_url: Some(format!(
            "https://ccsrpcma.carsensor.net/CSphoto/bkkn/{n}_001L.JPG"
        )),
        detail_url: Some(format!(
            "https://www.carsensor.net/usedcar/detail/AU{:010}/index.html",
            6_000_000_000 + n
        )),
    }
}

/// The baseline: what a CRUD scraper would do per listing, one autocommit upsert that writes only when
/// something differs.
async fn plain_upsert(pool: &PgPool, listing: &domain::cars::Listing) -> anyhow::Result<()> {
    sqlx::query(
        "insert into bench_cars (listing_id, body_yen, total_yen, details, updated_at)
         values ($1, $2, $3, $4, now())
         on conflict (listing_id) do update
            set body_yen = excluded.body_yen, total_yen = excluded.total_yen, details = excluded.details,
                updated_at = excluded.updated_at
          where (bench_cars.body_yen, bench_cars.total_yen, bench_cars.details)
                is distinct from (excluded.body_yen, excluded.total_yen, excluded.details)",
    )
    .bind(listing.id.as_str())
    .bind(listing.prices.body_yen)
    .bind(listing.prices.total_yen)
    .bind(sqlx::types::Json(&listing.details))
    .execute(pool)
    .await?;
    Ok(())
}

/// Upserts `listings` into the plain table, `concurrency` at a time; returns the wall time.
async fn plain_upserts(
    pool: &PgPool,
    listings: &[domain::cars::Listing],
    concurrency: usize,
) -> anyhow::Result<Duration> {
    use futures_util::StreamExt;
    let started = Instant::now();
    let mut in_flight = futures_util::stream::FuturesUnordered::new();
    for listing in listings {
        if in_flight.len() >= concurrency
            && let Some(done) = in_flight.next().await
        {
            done?;
        }
        in_flight.push(plain_upsert(pool, listing));
    }
    while let Some(done) = in_flight.next().await {
        done?;
    }
    Ok(started.elapsed())
}

/// Observes `listings` through the `Car` decider, as the scraper does; returns the wall time and how many
/// changed.
async fn observed(
    executor: &commands::CommandExecutor,
    listings: Vec<domain::cars::Listing>,
    concurrency: usize,
) -> anyhow::Result<(Duration, usize)> {
    use workers::carsensor::Observed;
    let run = Uuid::now_v7();
    let at = domain::Timestamp::from(chrono::Utc::now());
    let started = Instant::now();
    let cars = commands::cars::Cars::new(executor.clone());
    let outcomes = cars.observe_all(run, listings, at, concurrency).await;
    let took = started.elapsed();
    let mut changed = 0;
    for outcome in outcomes {
        if outcome? != Observed::Unchanged {
            changed += 1;
        }
    }
    Ok((took, changed))
}

/// 10,000 listings already known, observed again with 1 % repriced: listings/s through one command each,
/// against the plain-table upsert of the same rows. The two sides alternate over halves of the catalogue.
pub(super) async fn measure(
    pool: &PgPool,
    writers: usize,
    count: usize,
) -> anyhow::Result<UpsertFigures> {
    sqlx::raw_sql(
        "create table bench_cars (listing_id text primary key, body_yen bigint, total_yen bigint,
                                  details jsonb not null, updated_at timestamptz not null)",
    )
    .execute(pool)
    .await?;
    let executor = commands::CommandExecutor::new(EventLog::new(pool.clone()));
    let first: Vec<_> = (0..count).map(|n| bench_listing(n, false)).collect();
    // the catalogue as the previous run left it
    let (_, listed) = observed(&executor, first.clone(), writers).await?;
    anyhow::ensure!(listed == count, "listed {listed} of {count} listings");
    plain_upserts(pool, &first, writers).await?;
    sqlx::raw_sql("vacuum analyze").execute(pool).await?;

    let again: Vec<_> = (0..count)
        .map(|n| bench_listing(n, n.is_multiple_of(100)))
        .collect();
    let half = count / 2;
    let (mut baseline_took, mut measured_took, mut changed) = (Duration::ZERO, Duration::ZERO, 0);
    for part in [&again[..half], &again[half..]] {
        baseline_took += plain_upserts(pool, part, writers).await?;
        let (took, part_changed) = observed(&executor, part.to_vec(), writers).await?;
        measured_took += took;
        changed += part_changed;
    }
    let expected = (0..count).filter(|n| n.is_multiple_of(100)).count();
    anyhow::ensure!(
        changed == expected,
        "{changed} listings changed where {expected} were repriced"
    );
    let per_s = |took: Duration| count as f64 / took.as_secs_f64();
    Ok(UpsertFigures {
        upsert_listings: count,
        upsert_changed: changed,
        upsert_listings_per_s: per_s(measured_took),
        baseline_upsert_per_s: per_s(baseline_took),
        upsert_ratio: per_s(measured_took) / per_s(baseline_took),
    })
}
