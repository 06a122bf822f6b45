//! Car listings through the API: GraphQL `cars`, `car`, `carMakes`, the admins' `scrapeRuns`, and REST
//! `GET /api/cars`.

use chrono::TimeDelta;
use commands::{Metadata, Source};
use domain::Timestamp;
use domain::cars::{
    Car, CarCommand, CarDetails, Listing, ListingId, Prices, RunTally, ScrapeRun, ScrapeRunCommand,
    car_id, car_stream, scrape_run_stream,
};
use domain::testing::at;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{TestApp, code};

struct Spec {
    id: &'static str,
    make: &'static str,
    model: &'static str,
    total: i64,
    year: i32,
    mileage: i64,
    prefecture: &'static str,
    repair: bool,
}

const SPECS: &[Spec] = &[
    Spec {
        id: "AU6877255381",
        make: "トヨタ",
        model: "プリウス",
        total: 3_239_000,
        year: 2023,
        mileage: 20_000,
        prefecture: "兵庫県",
        repair: false,
    },
    Spec {
        id: "AU6869806001",
        make: "トヨタ",
        model: "プリウス",
        total: 3_328_000,
        year: 2023,
        mileage: 14_000,
        prefecture: "群馬県",
        repair: false,
    },
    Spec {
        id: "AU1000000001",
        make: "トヨタ",
        model: "アクア",
        total: 1_500_000,
        year: 2018,
        mileage: 54_000,
        prefecture: "兵庫県",
        repair: true,
    },
    Spec {
        id: "AU1000000002",
        make: "ホンダ",
        model: "フィット",
        total: 1_500_000,
        year: 2015,
        mileage: 81_000,
        prefecture: "大阪府",
        repair: false,
    },
    Spec {
        id: "AU1000000003",
        make: "マツダ",
        model: "CX-5",
        total: 2_450_000,
        year: 2020,
        mileage: 33_000,
        prefecture: "兵庫県",
        repair: false,
    },
];

fn listing(spec: &Spec, total: i64) -> Listing {
    Listing {
        id: ListingId::parse(spec.id).unwrap(),
        prices: Prices {
            body_yen: Some(total - 120_000),
            total_yen: Some(total),
        },
        details: CarDetails {
            make: Some(spec.make.into()),
            model: Some(spec.model.into()),
            grade: Some("G".into()),
            year: Some(spec.year),
            mileage_km: Some(spec.mileage),
            repair_history: Some(spec.repair),
            transmission: Some("フロアCVT".into()),
            body_type: Some("ハッチバック".into()),
            color: Some("白".into()),
            prefecture: Some(spec.prefecture.into()),
            city: Some("市".into()),
            shop_name: Some("ガリバー 前橋南インター店".into()),
            detail_url: Some(format!(
                "https://www.carsensor.net/usedcar/detail/{}/index.html",
                spec.id
            )),
            ..CarDetails::default()
        },
    }
}

/// Observes `listing` as the scraper would; returns the position written.
async fn observe(app: &TestApp, listing: Listing, at: Timestamp) -> i64 {
    let executed = app
        .executor
        .execute::<Car>(
            &car_stream(&listing.id),
            &CarCommand::Observe {
                listing,
                run_id: Uuid::nil(),
                at,
            },
            &Metadata::new(Source::Worker),
        )
        .await
        .unwrap();
    executed.position().unwrap()
}

/// Every spec listed 10 days ago, the first one repriced since, the last one delisted. Returns the last position.
async fn catalogue(app: &TestApp) -> i64 {
    let listed_at = Timestamp::from(chrono::Utc::now()) - TimeDelta::days(10);
    for spec in SPECS {
        observe(app, listing(spec, spec.total), listed_at).await;
    }
    observe(
        app,
        listing(&SPECS[0], 3_100_000),
        listed_at + TimeDelta::days(1),
    )
    .await;
    let executed = app
        .executor
        .execute::<Car>(
            &car_stream(&ListingId::parse(SPECS[4].id).unwrap()),
            &CarCommand::Delist {
                run_id: Uuid::nil(),
                missed_runs: 3,
                at: listed_at + TimeDelta::days(4),
            },
            &Metadata::new(Source::Worker),
        )
        .await
        .unwrap();
    executed.position().unwrap()
}

const CARS: &str = "query($f: CarFilterInput, $o: CarOrder, $first: Int, $after: String, $p: Int) {
    cars(filter: $f, orderBy: $o, first: $first, after: $after, minPosition: $p) {
        edges { cursor node { listingId totalPriceYen year status } }
        pageInfo { hasNextPage hasPreviousPage endCursor }
    } }";

fn ids(body: &Value) -> Vec<String> {
    body["data"]["cars"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("no edges in {body}"))
        .iter()
        .map(|e| e["node"]["listingId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn signed_in_users_filter_order_and_page_through_cars() {
    let app = TestApp::start().await;
    let position = catalogue(&app).await;
    let (_, token) = app.user("driver").await;

    let anonymous = app.gql(CARS, json!({ "p": position }), None).await;
    assert_eq!(code(&anonymous), "UNAUTHENTICATED");

    let all = app
        .gql(
            CARS,
            json!({ "p": position, "o": "PRICE_ASC" }),
            Some(&token),
        )
        .await;
    // equal prices are ordered by id; the delisted car is left out
    let mut cheap = [
        car_id(&ListingId::parse("AU1000000001").unwrap()),
        car_id(&ListingId::parse("AU1000000002").unwrap()),
    ];
    cheap.sort();
    let cheap: Vec<String> = cheap
        .iter()
        .map(|id| {
            SPECS
                .iter()
                .find(|s| car_id(&ListingId::parse(s.id).unwrap()) == *id)
                .unwrap()
                .id
                .to_owned()
        })
        .collect();
    assert_eq!(
        ids(&all),
        [
            cheap[0].as_str(),
            cheap[1].as_str(),
            "AU6877255381",
            "AU6869806001"
        ]
    );

    // a page at a time, with the same order and no overlap
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = app
            .gql(
                CARS,
                json!({ "p": position, "o": "PRICE_ASC", "first": 1, "after": after }),
                Some(&token),
            )
            .await;
        seen.extend(ids(&page));
        let info = &page["data"]["cars"]["pageInfo"];
        if info["hasNextPage"] != true {
            break;
        }
        after = info["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, ids(&all));
    let other_order = app
        .gql(CARS, json!({ "o": "NEWEST", "after": after }), Some(&token))
        .await;
    assert_eq!(code(&other_order), "VALIDATION", "{other_order}");

    let filtered = |filter: Value| {
        let app = &app;
        let token = &token;
        async move {
            ids(&app
                .gql(
                    CARS,
                    json!({ "p": position, "f": filter, "o": "YEAR_DESC" }),
                    Some(token),
                )
                .await)
        }
    };
    assert_eq!(
        filtered(json!({ "make": "ﾄﾖﾀ", "prefecture": "兵庫県" })).await,
        ["AU6877255381", "AU1000000001"],
        "half-width katakana is NFKC-normalised"
    );
    assert_eq!(
        filtered(json!({ "minPriceYen": 1_000_000, "maxPriceYen": 3_000_000, "price": "BODY" }))
            .await,
        ["AU6877255381", "AU1000000001", "AU1000000002"]
    );
    assert_eq!(
        filtered(json!({ "minYear": 2016, "maxYear": 2020, "maxMileageKm": 60000 })).await,
        ["AU1000000001"]
    );
    assert_eq!(
        filtered(json!({ "repairHistory": true })).await,
        ["AU1000000001"]
    );
    assert_eq!(
        filtered(json!({ "text": "プリウス 群馬" })).await,
        ["AU6869806001"]
    );
    assert_eq!(
        filtered(json!({ "bodyType": "ハッチバック", "transmission": "フロアCVT", "color": "白", "model": "フィット" })).await,
        ["AU1000000002"]
    );
    assert_eq!(
        filtered(json!({ "includeDelisted": true, "make": "マツダ" })).await,
        ["AU1000000003"]
    );
    let bad = app
        .gql(
            CARS,
            json!({ "f": { "minYear": 2020, "maxYear": 2010 } }),
            Some(&token),
        )
        .await;
    assert_eq!(code(&bad), "VALIDATION");

    let makes = app
        .gql(
            "query($p: Int) { carMakes(filter: { make: \"ホンダ\" }, minPosition: $p) { make count } }",
            json!({ "p": position }),
            Some(&token),
        )
        .await;
    assert_eq!(
        makes["data"]["carMakes"],
        json!([{ "make": "トヨタ", "count": 3 }, { "make": "ホンダ", "count": 1 }])
    );
}

#[tokio::test]
async fn a_car_shows_its_price_history_timeline_and_days_on_market() {
    let app = TestApp::start().await;
    let position = catalogue(&app).await;
    let (_, token) = app.user("driver").await;
    let query = "query($id: UUID!, $p: Int) { car(id: $id, minPosition: $p) {
        listingId make model totalPriceYen bodyPriceYen status daysOnMarket delistedAt
        priceHistory { totalPriceYen bodyPriceYen }
        timeline { kind changes }
    } }";
    let prius = car_id(&ListingId::parse("AU6877255381").unwrap());
    let body = app
        .gql(query, json!({ "id": prius, "p": position }), Some(&token))
        .await;
    let car = &body["data"]["car"];
    assert_eq!(car["totalPriceYen"], 3_100_000, "{body}");
    assert_eq!(car["daysOnMarket"], 10);
    assert_eq!(car["status"], "ACTIVE");
    assert_eq!(
        car["priceHistory"],
        json!([
            { "totalPriceYen": 3_239_000, "bodyPriceYen": 3_119_000 },
            { "totalPriceYen": 3_100_000, "bodyPriceYen": 2_980_000 }
        ])
    );
    assert_eq!(car["timeline"][0]["kind"], "LISTED");
    assert_eq!(car["timeline"][1]["kind"], "PRICE_CHANGED");
    assert_eq!(car["timeline"][1]["changes"]["old"]["total_yen"], 3_239_000);

    let mazda = car_id(&ListingId::parse("AU1000000003").unwrap());
    let body = app.gql(query, json!({ "id": mazda }), Some(&token)).await;
    let car = &body["data"]["car"];
    assert_eq!(car["status"], "DELISTED");
    assert_eq!(
        car["daysOnMarket"], 4,
        "listed for the 4 days before delisting"
    );
    assert_eq!(
        car["timeline"][1],
        json!({ "kind": "DELISTED", "changes": { "missed_runs": 3 } })
    );

    let missing = app
        .gql(query, json!({ "id": Uuid::nil() }), Some(&token))
        .await;
    assert_eq!(missing["data"]["car"], Value::Null);

    // in a list, every car's history and timeline (read for the whole page at once)
    let list = app
        .gql(
            "{ cars(orderBy: PRICE_DESC, filter: { includeDelisted: true }) { edges { node {
                listingId priceHistory { totalPriceYen } timeline { kind }
            } } } }",
            json!({}),
            Some(&token),
        )
        .await;
    let nodes: Vec<&Value> = list["data"]["cars"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|e| &e["node"])
        .collect();
    assert_eq!(nodes.len(), 5);
    for node in nodes {
        let (prices, kinds) = match node["listingId"].as_str().unwrap() {
            "AU6877255381" => (
                json!([{ "totalPriceYen": 3_239_000 }, { "totalPriceYen": 3_100_000 }]),
                json!([{ "kind": "LISTED" }, { "kind": "PRICE_CHANGED" }]),
            ),
            "AU1000000003" => (
                json!([{ "totalPriceYen": 2_450_000 }]),
                json!([{ "kind": "LISTED" }, { "kind": "DELISTED" }]),
            ),
            _ => (node["priceHistory"].clone(), json!([{ "kind": "LISTED" }])),
        };
        assert_eq!(node["priceHistory"], prices, "{node}");
        assert_eq!(node["timeline"], kinds, "{node}");
        assert!(!node["priceHistory"].as_array().unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_price_order_cursor_is_refused_in_a_list_sorted_by_the_other_price() {
    let app = TestApp::start().await;
    let position = catalogue(&app).await;
    let (_, token) = app.user("driver").await;
    let page = |price: &str, after: Option<String>| {
        let app = &app;
        let token = &token;
        let price = price.to_owned();
        async move {
            app.gql(
                CARS,
                json!({ "p": position, "o": "PRICE_ASC", "first": 1, "f": { "price": price }, "after": after }),
                Some(token),
            )
            .await
        }
    };
    let first = page("TOTAL", None).await;
    let cursor = first["data"]["cars"]["pageInfo"]["endCursor"]
        .as_str()
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    let same = page("TOTAL", Some(cursor.clone())).await;
    assert_eq!(ids(&same).len(), 1, "{same}");
    let other = page("BODY", Some(cursor.clone())).await;
    assert_eq!(code(&other), "VALIDATION", "{other}");

    // the same through REST
    let response = app
        .http
        .get(app.url(&format!(
            "/api/cars?order=price_asc&price=body&cursor={cursor}"
        )))
        .bearer_auth(&token)
        .header("x-academy-min-position", position.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "VALIDATION");
}

#[tokio::test]
async fn rest_cars_needs_a_token_and_takes_the_same_filters_as_query_parameters() {
    let app = TestApp::start().await;
    let position = catalogue(&app).await;
    let (_, token) = app.user("driver").await;

    let anonymous = app.http.get(app.url("/api/cars")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UNAUTHENTICATED");

    let get = |query: String| {
        let app = &app;
        let token = &token;
        async move {
            let response = app
                .http
                .get(app.url(&format!("/api/cars?{query}")))
                .bearer_auth(token)
                .header("x-academy-min-position", position.to_string())
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, page) =
        get("make=%E3%83%88%E3%83%A8%E3%82%BF&order=price_desc&limit=2".into()).await;
    assert_eq!(status, 200, "{page}");
    let listing_ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["listing_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(listing_ids(&page), ["AU6869806001", "AU6877255381"]);
    assert_eq!(page["items"][0]["total_price_yen"], 3_328_000);
    assert_eq!(page["items"][0]["days_on_market"], 10);
    assert!(page["items"][0].get("listed_position").is_none());
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, rest) = get(format!(
        "make=%E3%83%88%E3%83%A8%E3%82%BF&order=price_desc&limit=2&cursor={cursor}"
    ))
    .await;
    assert_eq!(listing_ids(&rest), ["AU1000000001"]);
    assert_eq!(rest["next_cursor"], Value::Null);

    let (_, filtered) =
        get("max_mileage=60000&repair_history=false&min_year=2019&q=%E5%85%B5%E5%BA%AB".into())
            .await;
    assert_eq!(listing_ids(&filtered), ["AU6877255381"]);
    let (_, body) =
        get("min_price=2000000&price=body&include_delisted=true&order=newest".into()).await;
    assert_eq!(
        listing_ids(&body),
        ["AU1000000003", "AU6869806001", "AU6877255381"]
    );

    let (status, bad) = get("order=cheapest".into()).await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (422, Some("VALIDATION"))
    );
    let (status, _) = get("min_year=soon".into()).await;
    assert_eq!(status, 400);
    let (status, _) = get("limit=1000".into()).await;
    assert_eq!(status, 422);
    // a NUL in any parameter is refused like in GraphQL, never sent to PostgreSQL
    for query in [
        "make=a%00b",
        "q=%00",
        "cursor=x%00",
        "prefecture=%00&order=newest",
    ] {
        let (status, body) = get(query.into()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("VALIDATION")),
            "{query}: {body}"
        );
        assert_eq!(body["error"]["reason"], "nul_character", "{query}");
    }
}

#[tokio::test]
async fn admins_audit_what_each_scraper_run_saw() {
    let app = TestApp::start().await;
    let run = Uuid::now_v7();
    let stream = scrape_run_stream(run);
    let executor = &app.executor;
    let commands = [
        ScrapeRunCommand::Start {
            start_urls: vec!["https://www.carsensor.net/usedcar/index.html".into()],
            at: at(1_800_000_000),
        },
        ScrapeRunCommand::RecordPage {
            url: "https://www.carsensor.net/usedcar/index.html".into(),
            page: 1,
            listings: vec![ListingId::parse("AU6877255381").unwrap()],
            at: at(1_800_000_001),
        },
        ScrapeRunCommand::RecordFailure {
            url: "https://www.carsensor.net/usedcar/index2.html".into(),
            error: "HTTP 503".into(),
            attempts: 5,
            at: at(1_800_000_002),
        },
        ScrapeRunCommand::Complete {
            tally: RunTally {
                pages: 1,
                listings_seen: 1,
                new: 1,
                errors: 1,
                ..RunTally::default()
            },
            complete: false,
            at: at(1_800_000_003),
        },
    ];
    let mut position = 0;
    for command in &commands {
        position = executor
            .execute::<ScrapeRun>(&stream, command, &Metadata::new(Source::Worker))
            .await
            .unwrap()
            .position()
            .unwrap();
    }
    let (_, admin) = app.admin().await;
    let body = app
        .gql(
            "query($p: Int) { scrapeRuns(minPosition: $p) { edges { node {
                id complete pages listingsSeen new errors failures
                scrapedPages { page listingIds } problems { kind detail attempts }
            } } } }",
            json!({ "p": position }),
            Some(&admin),
        )
        .await;
    let node = &body["data"]["scrapeRuns"]["edges"][0]["node"];
    assert_eq!(node["id"], run.to_string(), "{body}");
    assert_eq!(node["complete"], false);
    assert_eq!(
        (
            node["pages"].clone(),
            node["new"].clone(),
            node["failures"].clone()
        ),
        (json!(1), json!(1), json!(1))
    );
    assert_eq!(
        node["scrapedPages"],
        json!([{ "page": 1, "listingIds": ["AU6877255381"] }])
    );
    assert_eq!(
        node["problems"],
        json!([{ "kind": "FAILURE", "detail": "HTTP 503", "attempts": 5 }])
    );
}
