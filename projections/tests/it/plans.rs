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

/// Every variant of one list: `(what, statement)`, each to be served as `served` says.
async fn assert_all_served(
    pool: &PgPool,
    served: Served,
    variants: Vec<(&str, sqlx::QueryBuilder<Postgres>)>,
) {
    for (what, mut statement) in variants {
        let plan = explain(pool, statement.build()).await;
        assert_served(what, &plan, served);
    }
}

#[tokio::test]
async fn the_track_list_is_an_index_range_scan_at_100k_tracks() {
    use projections::tracks::{self, TrackFilter, Tracks};
    let (db, _log) = log().await;
    let pool = &db.pool;
    set_up(pool, "tracks", &Tracks).await;
    fill(
        pool,
        "insert into tracks.tracks (id, title, description, min_participants, max_participants, criteria,
                                    assignment_count, participants, status, created_at, created_position)
         select gen_random_uuid(), 'Track ' || n, 'Rust, week ' || n % 52, 2, 30, '[]', 8, 10,
                (array['enrolling', 'running', 'completed'])[1 + n % 3], timestamptz '2026-01-01', n
           from generate_series(1, 100000) n;
         insert into tracks.participants (track_id, user_id, enrolled_at)
         select t.id, ('00000000-0000-0000-0000-' || lpad((t.created_position % 5000)::text, 12, '0'))::uuid,
                t.created_at
           from tracks.tracks t",
        &["tracks.tracks", "tracks.participants"],
    )
    .await;
    let participant = Uuid::parse_str("00000000-0000-0000-0000-000000000042").unwrap();
    let variants = vec![
        (
            "tracks",
            tracks::tracks_statement(&TrackFilter::default(), None, 21),
        ),
        (
            "tracks, page 2",
            tracks::tracks_statement(&TrackFilter::default(), Some(50_000), 21),
        ),
        (
            "running tracks",
            tracks::tracks_statement(
                &TrackFilter {
                    status: Some(domain::tracks::TrackStatus::Running),
                    ..TrackFilter::default()
                },
                None,
                21,
            ),
        ),
        (
            "tracks about week 7",
            tracks::tracks_statement(
                &TrackFilter {
                    search: Some("week 7".into()),
                    ..TrackFilter::default()
                },
                None,
                21,
            ),
        ),
        (
            "a participant's tracks",
            tracks::tracks_statement(
                &TrackFilter {
                    participant: Some(participant),
                    ..TrackFilter::default()
                },
                None,
                21,
            ),
        ),
    ];
    assert_all_served(pool, Served::ByIndex, variants).await;
    let mut statement = tracks::tracks_statement(&TrackFilter::default(), Some(50_000), 21);
    let plan = explain(pool, statement.build()).await;
    assert_served(
        "tracks, page 2",
        &plan,
        Served::InOrderBy("tracks_created_position_key"),
    );
}

#[tokio::test]
async fn the_interview_board_is_an_index_range_scan_at_100k_slots() {
    use domain::interviews::Role;
    use domain::trainer::Level;
    use projections::interviews::{self, BoardFilter, Interviews};
    let (db, _log) = log().await;
    let pool = &db.pool;
    set_up(pool, "interviews", &Interviews).await;
    // a slot every 5 minutes from 2026-01-01; half of them open, the rest booked or withdrawn
    fill(
        pool,
        "insert into interviews.slots (id, owner, owner_role, starts_at, ends_at, minutes, meeting_link, topic,
                                       level, status, published_at, published_position)
         select gen_random_uuid(), ('00000000-0000-0000-0000-' || lpad((n % 3000)::text, 12, '0'))::uuid,
                (array['interviewer', 'interviewee'])[1 + n % 2],
                timestamptz '2026-01-01' + n * interval '5 minutes',
                timestamptz '2026-01-01' + n * interval '5 minutes' + interval '1 hour', 60,
                'https://meet.example.org/' || n, (array['rust', 'sql', 'system design', 'algorithms'])[1 + n % 4],
                (array['junior', 'middle', 'senior'])[1 + n % 3],
                (array['open', 'booked', 'open', 'withdrawn'])[1 + (n / 7) % 4],
                timestamptz '2025-12-01', n
           from generate_series(1, 100000) n",
        &["interviews.slots"],
    )
    .await;
    let now = "2026-03-01T00:00:00Z".parse().unwrap();
    let after = Some(("2026-04-01T00:00:00Z".parse().unwrap(), 30_000));
    let owner = Uuid::parse_str("00000000-0000-0000-0000-000000000042").unwrap();
    let everything = BoardFilter::default();
    let narrow = BoardFilter {
        owner_role: Some(Role::Interviewer),
        level: Some(Level::Senior),
        topic: Some("Rust".into()),
        exclude_owner: Some(owner),
        ..BoardFilter::default()
    };
    let window = BoardFilter {
        from: Some("2026-05-01T00:00:00Z".parse().unwrap()),
        to: Some("2026-05-08T00:00:00Z".parse().unwrap()),
        ..BoardFilter::default()
    };
    let variants = vec![
        (
            "board",
            interviews::board_statement(&everything, now, None, 21),
        ),
        (
            "board, page 2",
            interviews::board_statement(&everything, now, after, 21),
        ),
        (
            "board, filtered",
            interviews::board_statement(&narrow, now, None, 21),
        ),
        (
            "board, filtered, page 2",
            interviews::board_statement(&narrow, now, after, 21),
        ),
        (
            "board of a week",
            interviews::board_statement(&window, now, None, 21),
        ),
    ];
    assert_all_served(pool, Served::InOrderBy("slots_board"), variants).await;
}

#[tokio::test]
async fn the_question_list_is_an_index_range_scan_at_100k_questions() {
    use projections::trainer::{self, QuestionFilter, Trainer};
    let (db, _log) = log().await;
    let pool = &db.pool;
    set_up(pool, "trainer", &Trainer).await;
    fill(
        pool,
        "insert into trainer.questions (id, level, topic, text, reference_answer, key_points, retired, revision,
                                        added_at, updated_at, added_position)
         select gen_random_uuid(), (array['junior', 'middle', 'senior'])[1 + n % 3],
                'topic ' || n % 40, 'Question ' || n, 'Answer ' || n, '[]', n % 20 = 0, 1,
                timestamptz '2026-01-01', timestamptz '2026-01-01', n
           from generate_series(1, 100000) n",
        &["trainer.questions"],
    )
    .await;
    let filter = |level: Option<&str>, topic: Option<&str>, include_retired| QuestionFilter {
        level: level.map(str::to_owned),
        topic: topic.map(str::to_owned),
        include_retired,
    };
    let variants = vec![
        (
            "questions",
            trainer::questions_statement(&filter(None, None, false), None, 21),
        ),
        (
            "questions, page 2",
            trainer::questions_statement(&filter(None, None, false), Some(60_000), 21),
        ),
        (
            "questions, retired too",
            trainer::questions_statement(&filter(None, None, true), Some(60_000), 21),
        ),
        (
            "senior questions",
            trainer::questions_statement(&filter(Some("senior"), None, false), None, 21),
        ),
        (
            "senior questions on topic 7",
            trainer::questions_statement(&filter(Some("senior"), Some("Topic 7"), false), None, 21),
        ),
    ];
    assert_all_served(pool, Served::ByIndex, variants).await;
}

#[tokio::test]
async fn users_stats_are_an_index_range_scan_at_100k_rows() {
    use projections::accounts::Accounts;
    use projections::trainer::{self, Trainer};
    let (db, _log) = log().await;
    let pool = &db.pool;
    set_up(pool, "trainer", &Trainer).await;
    set_up(pool, "accounts", &Accounts).await;
    fill(
        pool,
        "insert into accounts.users (id, email, username, role, registered_at, password_changed_at,
                                     registered_position)
         select ('00000000-0000-0000-0000-' || lpad(n::text, 12, '0'))::uuid, 'user' || n || '@example.org',
                'user' || n, 'user', timestamptz '2026-01-01', timestamptz '2026-01-01', n
           from generate_series(1, 50000) n;
         insert into trainer.user_stats (user_id, level, answered, correct, streak, last_activity)
         select u.id, l.level, 10, 5, 1, timestamptz '2026-01-01'
           from accounts.users u cross join (values ('junior'), ('middle')) l(level)",
        &["accounts.users", "trainer.user_stats"],
    )
    .await;
    let after = Some((
        Uuid::parse_str("00000000-0000-0000-0000-000000025000").unwrap(),
        "junior".to_owned(),
    ));
    let variants = vec![
        (
            "users' stats",
            trainer::users_stats_statement(None, None, 21),
        ),
        (
            "users' stats, page 2",
            trainer::users_stats_statement(None, after.clone(), 21),
        ),
        (
            "users' junior stats",
            trainer::users_stats_statement(Some("junior"), None, 21),
        ),
        (
            "users' junior stats, page 2",
            trainer::users_stats_statement(Some("junior"), after, 21),
        ),
    ];
    assert_all_served(pool, Served::InOrderBy("user_stats_pkey"), variants).await;
}

#[tokio::test]
async fn a_users_notifications_are_an_index_range_scan_at_100k_notifications() {
    use projections::notifications::{self, Notifications};
    let (db, _log) = log().await;
    let pool = &db.pool;
    set_up(
        pool,
        "notifications",
        &Notifications::new(&projections::products()),
    )
    .await;
    // one very busy user (half of them), the rest spread over 1,000 users; a tenth unread
    fill(
        pool,
        "insert into notifications.notifications (id, user_id, kind, stream_id, title, body, created_at,
                                                  position, read_at)
         select gen_random_uuid(),
                ('00000000-0000-0000-0000-' || lpad((case when n % 2 = 0 then 0 else n % 1000 + 1 end)::text,
                                                    12, '0'))::uuid,
                'review_received', 'track-' || gen_random_uuid(), 'Title', 'Body', timestamptz '2026-01-01', n,
                case when n % 10 <> 0 then timestamptz '2026-01-02' end
           from generate_series(1, 100000) n",
        &["notifications.notifications"],
    )
    .await;
    let busy = Uuid::nil();
    let quiet = Uuid::parse_str("00000000-0000-0000-0000-000000000007").unwrap();
    let before = Some((50_000, Uuid::max()));
    let variants = vec![
        (
            "busy user",
            notifications::list_statement(busy, false, None, 21),
        ),
        (
            "busy user, page 2",
            notifications::list_statement(busy, false, before, 21),
        ),
        (
            "busy user, unread",
            notifications::list_statement(busy, true, None, 21),
        ),
        (
            "busy user, unread, page 2",
            notifications::list_statement(busy, true, before, 21),
        ),
        (
            "quiet user",
            notifications::list_statement(quiet, false, None, 21),
        ),
    ];
    assert_all_served(pool, Served::ByIndex, variants).await;
    let mut busy_page = notifications::list_statement(busy, false, before, 21);
    let plan = explain(pool, busy_page.build()).await;
    assert_served(
        "busy user, page 2",
        &plan,
        Served::InOrderBy("notifications_user"),
    );
}

#[tokio::test]
async fn the_user_list_is_an_index_range_scan_at_100k_users() {
    use projections::accounts::{self, Accounts, UserFilter};
    let (db, _log) = log().await;
    let pool = &db.pool;
    set_up(pool, "accounts", &Accounts).await;
    fill(
        pool,
        "insert into accounts.users (id, email, username, role, registered_at, password_changed_at,
                                     registered_position)
         select gen_random_uuid(), 'user' || n || '@example.org', 'user' || n,
                case when n % 100 = 0 then 'admin' else 'user' end, timestamptz '2026-01-01',
                timestamptz '2026-01-01', n
           from generate_series(1, 100000) n",
        &["accounts.users"],
    )
    .await;
    let filter = |role: Option<&str>, search: Option<&str>| UserFilter {
        role: role.map(str::to_owned),
        search: search.map(str::to_owned),
    };
    let variants = vec![
        (
            "users",
            accounts::list_statement(&filter(None, None), None, 21),
        ),
        (
            "users, page 2",
            accounts::list_statement(&filter(None, None), Some(70_000), 21),
        ),
        (
            "admins",
            accounts::list_statement(&filter(Some("admin"), None), None, 21),
        ),
        (
            "users named 123",
            accounts::list_statement(&filter(None, Some("123")), None, 21),
        ),
    ];
    assert_all_served(
        pool,
        Served::InOrderBy("users_registered_position_key"),
        variants,
    )
    .await;
}
