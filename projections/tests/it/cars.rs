use std::sync::Arc;

use domain::Timestamp;
use domain::cars::{
    CarDetails, CarEvent, DetailsPatch, ListingId, Prices, RunTally, ScrapeRunEvent, car_id,
    car_stream, scrape_run_stream,
};
use domain::testing::at;
use eventlog::{AppendRequest, EventLog, ExpectedVersion, Metadata, NewEvent, Source};
use projections::RunnerConfig;
use projections::cars::{self, CarFilter, CarOrder, Cars, PriceKind};
use uuid::Uuid;

use crate::{WAIT, log, start};

async fn write<E: domain::DomainEvent>(
    log: &EventLog,
    stream: domain::StreamId,
    events: &[E],
) -> i64 {
    log.append(AppendRequest::single(
        stream,
        ExpectedVersion::Any,
        events.iter().map(NewEvent::from_domain).collect(),
        Metadata::new(Source::Worker),
    ))
    .await
    .unwrap()
    .position()
    .unwrap()
}

fn details(make: &str, model: &str, year: i32, mileage: i64, city: &str) -> CarDetails {
    CarDetails {
        make: Some(make.into()),
        model: Some(model.into()),
        year: Some(year),
        mileage_km: Some(mileage),
        prefecture: Some("兵庫県".into()),
        city: Some(city.into()),
        body_type: Some("ハッチバック".into()),
        repair_history: Some(false),
        ..CarDetails::default()
    }
}

fn listed(id: &ListingId, total: i64, details: CarDetails, run: Uuid, at: Timestamp) -> CarEvent {
    CarEvent::CarListed {
        listing_id: id.clone(),
        prices: Prices {
            body_yen: Some(total - 100_000),
            total_yen: Some(total),
        },
        details,
        run_id: run,
        at,
    }
}

#[tokio::test]
async fn the_cars_read_model_follows_listings_and_runs_and_rebuilds_to_the_same_rows() {
    let (_db, log) = log().await;
    let (projections, _stop, _task) = start(&log, vec![Arc::new(Cars)]);
    let run = Uuid::now_v7();
    write(
        &log,
        scrape_run_stream(run),
        &[ScrapeRunEvent::ScrapeRunStarted {
            start_urls: vec!["https://www.carsensor.net/usedcar/index.html".into()],
            at: at(1_700_000_000),
        }],
    )
    .await;
    let prius = ListingId::parse("AU6877255381").unwrap();
    let aqua = ListingId::parse("AU1000000001").unwrap();
    let fit = ListingId::parse("AU1000000002").unwrap();
    write(
        &log,
        car_stream(&prius),
        &[listed(
            &prius,
            3_239_000,
            details("トヨタ", "プリウス", 2023, 20_000, "神戸市長田区"),
            run,
            at(1_700_000_010),
        )],
    )
    .await;
    write(
        &log,
        car_stream(&aqua),
        &[listed(
            &aqua,
            1_500_000,
            details("トヨタ", "アクア", 2018, 54_000, "前橋市"),
            run,
            at(1_700_000_020),
        )],
    )
    .await;
    write(
        &log,
        car_stream(&fit),
        &[listed(
            &fit,
            900_000,
            details("ホンダ", "フィット", 2015, 81_000, "神戸市中央区"),
            run,
            at(1_700_000_030),
        )],
    )
    .await;
    write(
        &log,
        scrape_run_stream(run),
        &[
            ScrapeRunEvent::ScrapePageScraped {
                url: "https://www.carsensor.net/usedcar/index.html".into(),
                page: 1,
                listings: vec![prius.clone(), aqua.clone(), fit.clone()],
                at: at(1_700_000_040),
            },
            ScrapeRunEvent::ScrapeLayoutChanged {
                url: "https://www.carsensor.net/usedcar/index2.html".into(),
                reason: "most listings on the page lack make".into(),
                at: at(1_700_000_041),
            },
            ScrapeRunEvent::ScrapeRunCompleted {
                tally: RunTally {
                    pages: 1,
                    listings_seen: 3,
                    new: 3,
                    errors: 1,
                    ..RunTally::default()
                },
                complete: false,
                at: at(1_700_000_050),
            },
        ],
    )
    .await;
    let second = Uuid::now_v7();
    write(
        &log,
        car_stream(&prius),
        &[
            CarEvent::CarPriceChanged {
                old: Prices {
                    body_yen: Some(3_139_000),
                    total_yen: Some(3_239_000),
                },
                new: Prices {
                    body_yen: Some(3_139_000),
                    total_yen: Some(3_100_000),
                },
                run_id: second,
                at: at(1_700_100_000),
            },
            CarEvent::CarDetailsChanged {
                changes: DetailsPatch {
                    mileage_km: Some(Some(21_000)),
                    color: Some(Some("白".into())),
                    ..DetailsPatch::default()
                },
                run_id: second,
                at: at(1_700_100_000),
            },
        ],
    )
    .await;
    write(
        &log,
        car_stream(&fit),
        &[CarEvent::CarDelisted {
            missed_runs: 3,
            run_id: second,
            at: at(1_700_200_000),
        }],
    )
    .await;
    let last = write(
        &log,
        car_stream(&aqua),
        &[
            CarEvent::CarDelisted {
                missed_runs: 3,
                run_id: second,
                at: at(1_700_200_000),
            },
            CarEvent::CarRelisted {
                run_id: second,
                at: at(1_700_300_000),
            },
        ],
    )
    .await;
    projections.wait_for(last, WAIT).await.unwrap();

    let pool = log.pool();
    let row = cars::car(pool, car_id(&prius)).await.unwrap().unwrap();
    assert_eq!(row.total_price_yen, Some(3_100_000));
    assert_eq!(row.mileage_km, Some(21_000));
    assert_eq!(row.color.as_deref(), Some("白"));
    assert_eq!(
        row.city.as_deref(),
        Some("神戸市長田区"),
        "unchanged fields stay"
    );
    let timeline = cars::timeline_of(pool, row.id).await.unwrap();
    let kinds: Vec<&str> = timeline.iter().map(|t| t.kind.as_str()).collect();
    assert_eq!(kinds, ["listed", "price_changed", "details_changed"]);
    assert_eq!(
        timeline[2].changes.0,
        serde_json::json!({ "mileage_km": 21_000, "color": "白" })
    );

    // filters, orders, facets
    let list = |filter: CarFilter, order: CarOrder| async move {
        cars::cars(pool, &filter, order, None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.listing_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        list(CarFilter::default(), CarOrder::PriceAsc).await,
        ["AU1000000001", "AU6877255381"]
    );
    let with_delisted = CarFilter {
        include_delisted: true,
        ..CarFilter::default()
    };
    assert_eq!(
        list(with_delisted.clone(), CarOrder::PriceDesc).await,
        ["AU6877255381", "AU1000000001", "AU1000000002"]
    );
    assert_eq!(
        list(
            CarFilter {
                make: Some("ホンダ".into()),
                ..with_delisted.clone()
            },
            CarOrder::Newest
        )
        .await,
        ["AU1000000002"]
    );
    assert_eq!(
        list(
            CarFilter {
                words: vec!["神戸".into()],
                ..with_delisted.clone()
            },
            CarOrder::YearDesc
        )
        .await,
        ["AU6877255381", "AU1000000002"]
    );
    assert_eq!(
        list(
            CarFilter {
                max_price: Some(3_050_000),
                price_kind: PriceKind::Body,
                max_mileage_km: Some(60_000),
                ..CarFilter::default()
            },
            CarOrder::MileageAsc
        )
        .await,
        ["AU1000000001"]
    );
    let facets = cars::make_facets(
        pool,
        &CarFilter {
            make: Some("ホンダ".into()),
            ..with_delisted.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(facets, [("トヨタ".to_owned(), 2), ("ホンダ".to_owned(), 1)]);
    let run_row = cars::run(pool, run).await.unwrap().unwrap();
    assert_eq!(
        (run_row.pages, run_row.layout_changes, run_row.complete),
        (1, 1, Some(false))
    );

    // rebuild: the same rows in every table
    let snapshot = || async {
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
            .fetch_all(pool)
            .await
            .unwrap();
            assert!(!rows.is_empty(), "{table} has rows");
            tables.push(rows);
        }
        tables
    };
    let live = snapshot().await;
    projections::rebuild(log.clone(), Arc::new(Cars), RunnerConfig::default())
        .await
        .unwrap();
    assert_eq!(snapshot().await, live);
}
