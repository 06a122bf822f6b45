//! The `cars` read model folds a batch in memory and writes each table once: whatever the batch size, the rows
//! are the same as applying one event at a time.

use std::sync::Arc;

use domain::cars::{
    CarDetails, CarEvent, DetailsPatch, ListingId, Prices, RunTally, ScrapeRunEvent, car_id,
    car_stream, scrape_run_stream,
};
use domain::testing::at;
use eventlog::EventLog;
use projections::RunnerConfig;
use projections::cars::{self, Cars};
use uuid::Uuid;

use crate::{config, log, write};

fn prices(total: i64) -> Prices {
    Prices {
        body_yen: Some(total - 100_000),
        total_yen: Some(total),
    }
}

fn listed(id: &ListingId, total: i64, make: &str, run: Uuid, seconds: i64) -> CarEvent {
    CarEvent::CarListed {
        listing_id: id.clone(),
        prices: prices(total),
        details: CarDetails {
            make: Some(make.into()),
            year: Some(2020),
            mileage_km: Some(10_000),
            repair_history: Some(false),
            ..CarDetails::default()
        },
        run_id: run,
        at: at(seconds),
    }
}

fn page(url: &str, listings: &[&ListingId], seconds: i64) -> ScrapeRunEvent {
    ScrapeRunEvent::ScrapePageScraped {
        url: url.into(),
        page: 1,
        listings: listings.iter().map(|l| (*l).clone()).collect(),
        at: at(seconds),
    }
}

/// Every row of every table of the live `cars` schema, in a stable order.
async fn snapshot(log: &EventLog) -> Vec<Vec<serde_json::Value>> {
    let mut tables = Vec::new();
    for table in [
        "cars",
        "price_history",
        "timeline",
        "scrape_runs",
        "scrape_run_pages",
        "scrape_run_problems",
    ] {
        let rows: Vec<serde_json::Value> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "select to_jsonb(t) from cars.{table} t order by to_jsonb(t)::text"
        )))
        .fetch_all(log.pool())
        .await
        .unwrap();
        tables.push(rows);
    }
    tables
}

async fn rebuild(log: &EventLog, batch_size: i64) {
    let config = RunnerConfig {
        batch_size,
        build_batch_size: batch_size,
        ..config()
    };
    projections::rebuild(log.clone(), Arc::new(Cars), config)
        .await
        .unwrap();
}

#[tokio::test]
async fn one_batch_of_mixed_car_and_run_events_gives_the_rows_of_one_event_per_batch() {
    let (_db, log) = log().await;
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    let prius = ListingId::parse("AU1000000001").unwrap();
    let fit = ListingId::parse("AU1000000002").unwrap();
    let note = ListingId::parse("AU1000000003").unwrap();
    let never_listed = ListingId::parse("AU1000000009").unwrap();
    let first_start = write(
        &log,
        scrape_run_stream(first),
        &[ScrapeRunEvent::ScrapeRunStarted {
            start_urls: vec!["https://example.test/list".into()],
            at: at(1_000),
        }],
    )
    .await;
    // listed and repriced in one append (so in one batch), then repriced again
    write(
        &log,
        car_stream(&prius),
        &[
            listed(&prius, 2_000_000, "トヨタ", first, 1_010),
            CarEvent::CarPriceChanged {
                old: prices(2_000_000),
                new: prices(1_900_000),
                run_id: first,
                at: at(1_011),
            },
            CarEvent::CarDetailsChanged {
                changes: DetailsPatch {
                    mileage_km: Some(Some(12_000)),
                    color: Some(Some("白".into())),
                    year: Some(None),
                    ..DetailsPatch::default()
                },
                run_id: first,
                at: at(1_012),
            },
        ],
    )
    .await;
    write(
        &log,
        car_stream(&fit),
        &[listed(&fit, 900_000, "ホンダ", first, 1_020)],
    )
    .await;
    write(
        &log,
        scrape_run_stream(first),
        &[
            page("https://example.test/list", &[&prius, &fit, &note], 1_030),
            ScrapeRunEvent::ScrapePageFailed {
                url: "https://example.test/list?page=2".into(),
                error: "timed out".into(),
                attempts: 3,
                at: at(1_031),
            },
            ScrapeRunEvent::ScrapeLayoutChanged {
                url: "https://example.test/list?page=3".into(),
                reason: "no listings".into(),
                at: at(1_032),
            },
        ],
    )
    .await;
    // listed after the page that named it: its sighting comes from its own run
    write(
        &log,
        car_stream(&note),
        &[listed(&note, 1_200_000, "日産", first, 1_040)],
    )
    .await;
    write(
        &log,
        scrape_run_stream(first),
        &[ScrapeRunEvent::ScrapeRunCompleted {
            tally: RunTally {
                pages: 1,
                listings_seen: 3,
                new: 3,
                errors: 2,
                ..RunTally::default()
            },
            complete: false,
            at: at(1_050),
        }],
    )
    .await;
    write(
        &log,
        scrape_run_stream(second),
        &[
            ScrapeRunEvent::ScrapeRunStarted {
                start_urls: vec!["https://example.test/list".into()],
                at: at(2_000),
            },
            page("https://example.test/list", &[&prius], 2_010),
        ],
    )
    .await;
    write(
        &log,
        car_stream(&fit),
        &[
            CarEvent::CarDelisted {
                missed_runs: 1,
                run_id: second,
                at: at(2_020),
            },
            CarEvent::CarRelisted {
                run_id: second,
                at: at(2_030),
            },
            CarEvent::CarPriceChanged {
                old: prices(900_000),
                new: Prices {
                    body_yen: None,
                    total_yen: Some(850_000),
                },
                run_id: second,
                at: at(2_031),
            },
        ],
    )
    .await;
    write(
        &log,
        car_stream(&note),
        &[CarEvent::CarDelisted {
            missed_runs: 2,
            run_id: second,
            at: at(2_040),
        }],
    )
    .await;
    // about a car never listed: its history rows are kept, no car row appears
    write(
        &log,
        car_stream(&never_listed),
        &[CarEvent::CarPriceChanged {
            old: prices(1),
            new: prices(2),
            run_id: second,
            at: at(2_050),
        }],
    )
    .await;

    rebuild(&log, 1).await;
    let one_by_one = snapshot(&log).await;
    rebuild(&log, 10_000).await;
    assert_eq!(
        snapshot(&log).await,
        one_by_one,
        "one batch gives the rows of one event at a time"
    );
    rebuild(&log, 4).await;
    assert_eq!(snapshot(&log).await, one_by_one, "so do batches of 4");

    let pool = log.pool();
    let prius_row = cars::car(pool, car_id(&prius)).await.unwrap().unwrap();
    assert_eq!(
        (
            prius_row.total_price_yen,
            prius_row.mileage_km,
            prius_row.year,
            prius_row.color.as_deref(),
            prius_row.make.as_deref()
        ),
        (
            Some(1_900_000),
            Some(12_000),
            None,
            Some("白"),
            Some("トヨタ")
        )
    );
    let points = cars::price_history(pool, car_id(&prius)).await.unwrap();
    assert_eq!(
        points.iter().map(|p| p.total_price_yen).collect::<Vec<_>>(),
        [Some(2_000_000), Some(1_900_000)]
    );
    let fit_row = cars::car(pool, car_id(&fit)).await.unwrap().unwrap();
    assert_eq!(
        (
            fit_row.status.as_str(),
            fit_row.delisted_at,
            fit_row.body_price_yen,
            fit_row.total_price_yen
        ),
        ("active", None, None, Some(850_000))
    );
    let kinds: Vec<String> = cars::timeline_of(pool, car_id(&fit))
        .await
        .unwrap()
        .iter()
        .map(|t| t.kind.as_str().to_owned())
        .collect();
    assert_eq!(kinds, ["listed", "delisted", "relisted", "price_changed"]);
    assert!(
        cars::car(pool, car_id(&never_listed))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        cars::price_history(pool, car_id(&never_listed))
            .await
            .unwrap()
            .len(),
        1
    );
    let second_start = cars::run(pool, second)
        .await
        .unwrap()
        .unwrap()
        .started_position;
    let seen: Vec<(String, Option<Uuid>, i64)> = sqlx::query_as(
        "select listing_id, last_seen_run, last_seen_position from cars.cars order by listing_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        seen,
        [
            (prius.to_string(), Some(second), second_start),
            (fit.to_string(), Some(second), second_start),
            (note.to_string(), Some(first), first_start),
        ]
    );
    let run = cars::run(pool, first).await.unwrap().unwrap();
    assert_eq!(
        (
            run.pages,
            run.failures,
            run.layout_changes,
            run.complete,
            run.listings_seen
        ),
        (1, 1, 1, Some(false), Some(3))
    );
    assert_eq!(cars::run(pool, second).await.unwrap().unwrap().pages, 1);
    assert_eq!(cars::run_problems(pool, first).await.unwrap().len(), 2);
    assert_eq!(
        cars::run_pages(pool, first).await.unwrap()[0].listing_ids,
        [prius.to_string(), fit.to_string(), note.to_string()]
    );
}
