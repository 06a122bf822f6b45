//! The plans of the list queries at 100,000 rows: each is served by an index (a range scan in the list's
//! order where the order has one), never by a sequential scan or a sort of the whole table.
//!
//! Each test builds a read model's real tables with its own `setup`, fills them set-based with
//! `generate_series`, runs `vacuum analyze`, and reads `explain (format json)` of the statement the query
//! function runs, with its bound values.

use projections::Projection;
use projections::cars::{self, CarFilter, CarOrder, Cars, PriceKind};
use serde_json::Value;
use sqlx::postgres::PgArguments;
use sqlx::{AssertSqlSafe, Execute, PgPool, Postgres};
use uuid::Uuid;

use crate::log;

const ROWS: i64 = 100_000;

/// Creates `model`'s tables in `schema` (its live schema's name), as the runner's `setup` does.
async fn set_up(pool: &PgPool, schema: &str, model: &dyn Projection) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!(
        "create schema {schema}; set local search_path = {schema}"
    )))
    .execute(&mut *tx)
    .await
    .unwrap();
    model.setup(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
}

/// Runs `sql` (set-based inserts), then `vacuum analyze` of `tables`: the statistics a planner has, and the
/// visibility map an index-only scan needs, as autovacuum leaves them.
async fn fill(pool: &PgPool, sql: &str, tables: &[&str]) {
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await
        .unwrap();
    for table in tables {
        sqlx::raw_sql(AssertSqlSafe(format!("vacuum analyze {table}")))
            .execute(pool)
            .await
            .unwrap();
    }
}

/// `explain (format json)` of a statement, with its bound values.
async fn explain<'q>(pool: &PgPool, mut statement: impl Execute<'q, Postgres>) -> Value {
    let arguments: PgArguments = statement.take_arguments().unwrap().unwrap_or_default();
    let sql = format!("explain (format json) {}", statement.sql().as_str());
    let (plan,): (sqlx::types::Json<Value>,) = sqlx::query_as_with(AssertSqlSafe(sql), arguments)
        .fetch_one(pool)
        .await
        .unwrap();
    plan.0[0]["Plan"].clone()
}

/// Every node of a plan, depth first.
fn nodes(plan: &Value) -> Vec<&Value> {
    let mut all = vec![plan];
    if let Some(children) = plan["Plans"].as_array() {
        for child in children {
            all.extend(nodes(child));
        }
    }
    all
}

/// What a plan must show.
#[derive(Debug, Clone, Copy)]
enum Served {
    /// A scan of this index in the list's order: no sort at all.
    InOrderBy(&'static str),
    /// A scan of one of these indexes in the list's order (the planner picks the cheaper: a make's own index,
    /// or the order's index filtered by make when that make is common), no sort at all.
    InOrderByOneOf(&'static str, &'static str),
    /// Some index and no sequential scan; a sort only of what the index found, estimated at most a tenth of
    /// the table.
    ByIndex,
}

/// Asserts that `plan` (of the query `what`, over a table of [`ROWS`]) is served as `served` says.
fn assert_served(what: &str, plan: &Value, served: Served) {
    let all = nodes(plan);
    let shown = serde_json::to_string_pretty(plan).unwrap();
    let types: Vec<&str> = all.iter().filter_map(|n| n["Node Type"].as_str()).collect();
    assert!(
        !types.contains(&"Seq Scan"),
        "{what}: a sequential scan\n{shown}"
    );
    let indexes: Vec<&str> = all
        .iter()
        .filter_map(|n| n["Index Name"].as_str())
        .collect();
    assert!(!indexes.is_empty(), "{what}: no index used\n{shown}");
    match served {
        Served::InOrderBy(index) => {
            assert!(
                indexes.contains(&index),
                "{what}: {index} not used ({indexes:?})\n{shown}"
            );
            assert!(
                !types.iter().any(|t| t.contains("Sort")),
                "{what}: sorted after the scan\n{shown}"
            );
        }
        Served::InOrderByOneOf(one, other) => {
            assert!(
                indexes.contains(&one) || indexes.contains(&other),
                "{what}: neither {one} nor {other} used ({indexes:?})\n{shown}"
            );
            assert!(
                !types.iter().any(|t| t.contains("Sort")),
                "{what}: sorted after the scan\n{shown}"
            );
        }
        Served::ByIndex => {
            for sort in all
                .iter()
                .filter(|n| n["Node Type"].as_str().is_some_and(|t| t.contains("Sort")))
            {
                let input = sort["Plans"][0]["Plan Rows"].as_f64().unwrap();
                assert!(
                    input <= (ROWS / 10) as f64,
                    "{what}: sorts {input} rows\n{shown}"
                );
            }
        }
    }
}

/// 100,000 cars: a quarter Toyotas (the rest spread over 20 makes), one in ten delisted, one in fifty without
/// a total price, prices from 200,000 to 5,200,000 yen.
const CARS: &str = "
    insert into cars.cars (id, listing_id, make, model, year, mileage_km, prefecture, body_type, transmission,
                           color, repair_history, body_price_yen, total_price_yen, status, listed_at, updated_at,
                           delisted_at, listed_position, last_seen_position)
    select gen_random_uuid(), 'AU' || lpad(n::text, 10, '0'),
           case when n % 4 = 0 then 'トヨタ'
                else (array['ホンダ', '日産', 'マツダ', 'スバル', 'スズキ', 'ダイハツ', '三菱', 'レクサス', 'BMW',
                            'アウディ', 'ボルボ', 'ミニ', 'ポルシェ', 'ジープ', 'プジョー', 'いすゞ', '日野',
                            'フィアット', 'シトロエン', 'ルノー'])[1 + (n / 4) % 20] end,
           'model ' || (n * 31) % 60,
           case when n % 97 = 0 then null else 1995 + (n * 13) % 30 end,
           case when n % 89 = 0 then null else (n * 7907) % 200000 end,
           (array['東京都', '大阪府', '兵庫県', '愛知県', '北海道', '福岡県'])[1 + (n * 17) % 6],
           (array['ハッチバック', 'セダン', 'ミニバン', 'SUV', '軽自動車'])[1 + (n * 11) % 5],
           (array['AT', 'MT', 'CVT'])[1 + (n * 5) % 3],
           (array['白', '黒', '銀', '赤', '青'])[1 + (n * 3) % 5],
           n % 7 = 0,
           case when n % 50 = 0 then null else 100000 + (n * 7919) % 5000000 end,
           case when n % 50 = 0 then null else 200000 + (n * 7919) % 5000000 end,
           case when n % 10 = 0 then 'delisted' else 'active' end,
           timestamptz '2026-01-01' + n * interval '1 minute', timestamptz '2026-01-01' + n * interval '1 minute',
           case when n % 10 = 0 then timestamptz '2026-06-01' end,
           n, n
      from generate_series(1, 100000) n";

#[tokio::test]
async fn every_car_list_is_an_index_range_scan_at_100k_cars() {
    let (db, _log) = log().await;
    let pool = &db.pool;
    set_up(pool, "cars", &Cars).await;
    fill(pool, CARS, &["cars.cars"]).await;
    let toyota = || CarFilter {
        make: Some("トヨタ".into()),
        ..CarFilter::default()
    };

    // the benchmark: the 20 cheapest Toyotas under 1,000,000 yen
    let cheap_toyotas = CarFilter {
        max_price: Some(1_000_000),
        ..toyota()
    };
    let plan = explain(
        pool,
        cars::cars_statement(&cheap_toyotas, CarOrder::PriceAsc, None, 21).build(),
    )
    .await;
    assert_served(
        "cheapest Toyotas under 1M",
        &plan,
        Served::InOrderBy("cars_make_total_asc"),
    );
    // the price bound is part of the index range, not a filter over every Toyota
    let scan = nodes(&plan)
        .into_iter()
        .find(|n| n["Index Name"] == "cars_make_total_asc")
        .unwrap();
    let range = scan["Index Cond"].as_str().unwrap();
    assert!(
        range.contains("make_key") && range.contains("sort_total_asc"),
        "{range}"
    );
    // its next page: the cursor is a range too
    let plan = explain(
        pool,
        cars::cars_statement(
            &cheap_toyotas,
            CarOrder::PriceAsc,
            Some((500_000, Uuid::nil())),
            21,
        )
        .build(),
    )
    .await;
    assert_served(
        "cheapest Toyotas under 1M, page 2",
        &plan,
        Served::InOrderBy("cars_make_total_asc"),
    );

    // every order, without and with a make, on both prices, with and without a cursor and delisted cars
    let orders = [
        (
            CarOrder::Newest,
            PriceKind::Total,
            "cars_listed_position_key",
            "cars_make_newest",
        ),
        (
            CarOrder::PriceAsc,
            PriceKind::Total,
            "cars_total_asc",
            "cars_make_total_asc",
        ),
        (
            CarOrder::PriceDesc,
            PriceKind::Total,
            "cars_total_desc",
            "cars_make_total_desc",
        ),
        (CarOrder::PriceAsc, PriceKind::Body, "cars_body_asc", ""),
        (CarOrder::PriceDesc, PriceKind::Body, "cars_body_desc", ""),
        (CarOrder::YearDesc, PriceKind::Total, "cars_year_desc", ""),
        (
            CarOrder::MileageAsc,
            PriceKind::Total,
            "cars_mileage_asc",
            "",
        ),
    ];
    for (order, price_kind, index, make_index) in orders {
        for include_delisted in [false, true] {
            for after in [None, Some((1_000_000, Uuid::nil()))] {
                let all = CarFilter {
                    price_kind,
                    include_delisted,
                    ..CarFilter::default()
                };
                let what = format!(
                    "{order:?} by {price_kind:?}, delisted {include_delisted}, after {after:?}"
                );
                let plan =
                    explain(pool, cars::cars_statement(&all, order, after, 21).build()).await;
                assert_served(&what, &plan, Served::InOrderBy(index));
                let of_make = CarFilter {
                    make: Some("ホンダ".into()),
                    ..all
                };
                let plan = explain(
                    pool,
                    cars::cars_statement(&of_make, order, after, 21).build(),
                )
                .await;
                let served = if make_index.is_empty() {
                    // the rarer orders of one make: that make's rows from its index, then a top-N sort
                    Served::ByIndex
                } else {
                    Served::InOrderByOneOf(make_index, index)
                };
                assert_served(&format!("Honda, {what}"), &plan, served);
            }
        }
    }

    // the other filters narrow the scan of the order's index
    let others = [
        CarFilter {
            model: Some("MODEL 7".into()),
            ..toyota()
        },
        CarFilter {
            min_price: Some(1_000_000),
            max_price: Some(2_000_000),
            ..CarFilter::default()
        },
        CarFilter {
            min_year: Some(2015),
            max_year: Some(2020),
            max_mileage_km: Some(50_000),
            ..CarFilter::default()
        },
        CarFilter {
            prefecture: Some("兵庫県".into()),
            body_type: Some("SUV".into()),
            transmission: Some("at".into()),
            color: Some("白".into()),
            repair_history: Some(false),
            ..CarFilter::default()
        },
        CarFilter {
            words: vec!["プリウス".into(), "大阪".into()],
            ..CarFilter::default()
        },
    ];
    for filter in &others {
        for order in [CarOrder::Newest, CarOrder::PriceAsc] {
            let plan = explain(pool, cars::cars_statement(filter, order, None, 21).build()).await;
            assert_served(&format!("{filter:?} in {order:?}"), &plan, Served::ByIndex);
        }
    }

    // make facets count every car the filter keeps: unfiltered, that is most of the table, which a sequential
    // scan reads fastest (and no index could spare), hashed by make, the few makes sorted; a selective filter
    // reads only its cars through an index
    let plan = explain(
        pool,
        cars::make_facets_statement(&CarFilter::default()).build(),
    )
    .await;
    for node in nodes(&plan) {
        if node["Node Type"] == "Sort" {
            let input = node["Plans"][0]["Plan Rows"].as_f64().unwrap();
            assert!(input <= 100.0, "make facets sort {input} rows\n{plan:#}");
        }
    }
    let suvs_in_hyogo = CarFilter {
        prefecture: Some("兵庫県".into()),
        body_type: Some("SUV".into()),
        ..CarFilter::default()
    };
    let plan = explain(pool, cars::make_facets_statement(&suvs_in_hyogo).build()).await;
    assert_served("make facets of SUVs in Hyōgo", &plan, Served::ByIndex);
}
