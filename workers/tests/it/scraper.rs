//! Runs of the scraper against the fake site: what each run records in the log and in the `cars` read model.

use std::collections::HashSet;
use std::time::Duration;

use domain::cars::{ListingId, car_id};
use projections::cars as model;
use serde_json::json;

use crate::fake::{Behaviour, FakeCarsensor, listing_page, page_three, replace_nth};
use crate::{World, fixture, scraper_config};

fn listing(id: &str) -> ListingId {
    ListingId::parse(id).unwrap()
}

async fn car(world: &World, id: &str) -> model::CarRow {
    model::car(&world.db.pool, car_id(&listing(id)))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{id} is in the read model"))
}

/// The types of the car events in the log, in order, with the listing they concern.
async fn car_events(world: &World) -> Vec<(String, String)> {
    let streams: Vec<(String, String)> = [
        "AU6877255381",
        "AU6869806001",
        "AU1000000201",
        "AU1000000202",
        "AU1000000301",
        "AU1000000302",
    ]
    .iter()
    .map(|id| {
        (
            domain::cars::car_stream(&listing(id)).to_string(),
            (*id).to_owned(),
        )
    })
    .collect();
    world
        .events(domain::cars::CarEvent::TYPES)
        .await
        .into_iter()
        .map(|(stream, kind, _)| {
            let id = streams
                .iter()
                .find(|(s, _)| *s == stream)
                .map_or_else(|| stream.clone(), |(_, id)| id.clone());
            (id, kind)
        })
        .collect()
}

#[tokio::test]
async fn runs_list_new_cars_record_price_changes_delist_missing_ones_and_relist_returning_ones() {
    let site = FakeCarsensor::start().await;
    site.three_pages();
    let world = World::new(scraper_config(&site.url)).await;

    // first run: three pages, six new cars; the one whose list entry lacks year and mileage gets its detail page
    let first = world.run().await;
    assert!(first.complete, "{first:?}");
    assert_eq!(
        (
            first.tally.pages,
            first.tally.listings_seen,
            first.tally.new,
            first.tally.changed
        ),
        (3, 6, 6, 0)
    );
    assert_eq!(first.tally.errors, 0);
    let events = car_events(&world).await;
    assert_eq!(events.len(), 6);
    assert!(
        events.iter().all(|(_, kind)| kind == "CarListed"),
        "{events:?}"
    );
    assert_eq!(site.hits("/usedcar/detail/AU1000000302/index.html"), 1);
    assert_eq!(site.hits("/usedcar/detail/AU1000000301/index.html"), 0);
    let filled = car(&world, "AU1000000302").await;
    assert_eq!((filled.year, filled.mileage_km), (Some(2023), Some(20_000)));
    let prius = car(&world, "AU6877255381").await;
    assert_eq!(prius.total_price_yen, Some(3_239_000));
    assert_eq!(prius.body_price_yen, Some(3_122_000));
    assert_eq!(prius.city.as_deref(), Some("神戸市長田区"));
    assert_eq!(prius.status.as_str(), "active");
    assert!(
        prius
            .detail_url
            .as_deref()
            .unwrap()
            .starts_with(site.url.as_str())
    );
    // polite: a clear User-Agent, robots.txt read first, and at least 1 s between any two requests
    assert!(
        site.user_agents()
            .iter()
            .all(|ua| ua.starts_with("AcademyCarsBot/"))
    );
    assert_eq!(site.hits("/robots.txt"), 1);
    let pauses = world.sleeper.pauses();
    assert_eq!(pauses.len() as u32, site.total_hits() - 1, "{pauses:?}");
    assert!(
        pauses.iter().all(|p| *p >= Duration::from_secs(1)),
        "{pauses:?}"
    );

    // second run: the first car is cheaper; nothing else changed, so one event, and no detail page fetched again
    site.page(
        "/usedcar/index.html",
        listing_page(&[], Some("/usedcar/index2.html")).replace(
            "<span class=\"totalPrice__mainPriceNum\">323</span><span class=\"totalPrice__subPriceNum\">.9</span>",
            "<span class=\"totalPrice__mainPriceNum\">310</span><span class=\"totalPrice__subPriceNum\">.0</span>",
        ),
    );
    let second = world.run().await;
    assert!(second.complete);
    assert_eq!((second.tally.new, second.tally.changed), (0, 1));
    let events = world
        .events(&["CarPriceChanged", "CarDetailsChanged"])
        .await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].1, "CarPriceChanged");
    assert_eq!(
        events[0].2["old"],
        json!({ "body_yen": 3_122_000, "total_yen": 3_239_000 })
    );
    assert_eq!(
        events[0].2["new"],
        json!({ "body_yen": 3_122_000, "total_yen": 3_100_000 })
    );
    assert_eq!(site.hits("/usedcar/detail/AU1000000302/index.html"), 1);
    let prius = car(&world, "AU6877255381").await;
    assert_eq!(prius.total_price_yen, Some(3_100_000));
    let history = model::price_history(&world.db.pool, prius.id)
        .await
        .unwrap();
    let totals: Vec<Option<i64>> = history.iter().map(|p| p.total_price_yen).collect();
    assert_eq!(totals, [Some(3_239_000), Some(3_100_000)]);

    // page three leaves the pagination: delisted after two complete runs without its cars, not after one
    site.page(
        "/usedcar/index2.html",
        listing_page(
            &[
                ("AU6877255381", "AU1000000201"),
                ("AU6869806001", "AU1000000202"),
            ],
            None,
        ),
    );
    let third = world.run().await;
    assert!(third.complete);
    assert_eq!((third.tally.listings_seen, third.tally.delisted), (4, 0));
    assert_eq!(car(&world, "AU1000000301").await.status.as_str(), "active");
    world.clock.advance(chrono::Duration::days(3));
    let fourth = world.run().await;
    assert_eq!(fourth.tally.delisted, 2, "{fourth:?}");
    let gone = car(&world, "AU1000000301").await;
    assert_eq!(gone.status.as_str(), "delisted");
    assert!(gone.delisted_at.is_some());
    assert_eq!(gone.days_on_market(chrono::Utc::now()), 3);
    let delisted = world.events(&["CarDelisted"]).await;
    assert_eq!(delisted.len(), 2);
    assert!(delisted.iter().all(|(_, _, data)| data["missed_runs"] == 2));
    let active = model::cars(
        &world.db.pool,
        &model::CarFilter::default(),
        model::CarOrder::Newest,
        None,
        100,
    )
    .await
    .unwrap();
    assert_eq!(active.len(), 4);

    // page three is back: its cars are relisted, and nothing else happens to them
    site.page(
        "/usedcar/index2.html",
        listing_page(
            &[
                ("AU6877255381", "AU1000000201"),
                ("AU6869806001", "AU1000000202"),
            ],
            Some("/usedcar/index3.html"),
        ),
    );
    site.page("/usedcar/index3.html", page_three());
    let fifth = world.run().await;
    assert_eq!(
        (
            fifth.tally.relisted,
            fifth.tally.changed,
            fifth.tally.delisted
        ),
        (2, 2, 0)
    );
    assert_eq!(car(&world, "AU1000000301").await.status.as_str(), "active");
    let events = car_events(&world).await;
    let back: Vec<&(String, String)> = events
        .iter()
        .filter(|(id, _)| id == "AU1000000301")
        .collect();
    let kinds: Vec<&str> = back.iter().map(|(_, kind)| kind.as_str()).collect();
    assert_eq!(kinds, ["CarListed", "CarDelisted", "CarRelisted"]);
    let timeline = model::timeline_of(&world.db.pool, car_id(&listing("AU1000000301")))
        .await
        .unwrap();
    let kinds: Vec<&str> = timeline.iter().map(|t| t.kind.as_str()).collect();
    assert_eq!(kinds, ["listed", "delisted", "relisted"]);

    // every run is recorded with its tally, and what each page showed
    let runs = model::runs(&world.db.pool, None, 10).await.unwrap();
    assert_eq!(runs.len(), 5);
    assert!(runs.iter().all(|r| r.complete == Some(true)));
    let pages = model::run_pages(&world.db.pool, first.run_id)
        .await
        .unwrap();
    let shown: Vec<Vec<String>> = pages.iter().map(|p| p.listing_ids.clone()).collect();
    assert_eq!(
        shown,
        [
            vec!["AU6877255381", "AU6869806001"],
            vec!["AU1000000201", "AU1000000202"],
            vec!["AU1000000301", "AU1000000302"]
        ]
    );

    // the read model these five runs built live is the one a rebuild from the log builds
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
            .fetch_all(&world.db.pool)
            .await
            .unwrap();
            tables.push(rows);
        }
        tables
    };
    let live = snapshot().await;
    projections::rebuild(
        world.log.clone(),
        std::sync::Arc::new(model::Cars),
        projections::RunnerConfig::default(),
    )
    .await
    .unwrap();
    assert_eq!(snapshot().await, live);
}

#[tokio::test]
async fn a_503_is_retried_and_a_429_waits_as_long_as_retry_after_says() {
    let site = FakeCarsensor::start().await;
    site.three_pages();
    site.set(
        "/usedcar/index2.html",
        Behaviour::FailFirst {
            status: 503,
            retry_after: None,
            times: 1,
            then: listing_page(
                &[
                    ("AU6877255381", "AU1000000201"),
                    ("AU6869806001", "AU1000000202"),
                ],
                Some("/usedcar/index3.html"),
            ),
        },
    );
    site.set(
        "/usedcar/index3.html",
        Behaviour::FailFirst {
            status: 429,
            retry_after: Some("7".to_owned()),
            times: 1,
            then: page_three(),
        },
    );
    let world = World::new(scraper_config(&site.url)).await;
    let report = world.run().await;
    assert!(
        report.complete,
        "retried pages do not make a run incomplete: {report:?}"
    );
    assert_eq!(report.tally.new, 6);
    assert_eq!(site.hits("/usedcar/index2.html"), 2);
    assert_eq!(site.hits("/usedcar/index3.html"), 2);
    let pauses = world.sleeper.pauses();
    assert!(
        pauses.contains(&Duration::from_secs(7)),
        "the retry after the 429 waited Retry-After: {pauses:?}"
    );
}

#[tokio::test]
async fn a_page_that_times_out_fails_after_bounded_retries_and_nothing_is_delisted() {
    let site = FakeCarsensor::start().await;
    site.three_pages();
    let world = World::new(scraper_config(&site.url)).await;
    assert!(world.run().await.complete);

    site.set("/usedcar/index2.html", Behaviour::Hang);
    for _ in 0..2 {
        let report = world.run().await;
        assert!(!report.complete);
        assert_eq!(report.tally.delisted, 0);
        assert_eq!(report.tally.errors, 1);
    }
    // 1 + 2 retries per run
    assert_eq!(site.hits("/usedcar/index2.html"), 1 + 3 + 3);
    let failures = world.events(&["ScrapePageFailed"]).await;
    assert_eq!(failures.len(), 2);
    assert_eq!(failures[0].2["attempts"], 3);
    assert_eq!(failures[0].2["error"], "network: timed out");
    let runs = model::runs(&world.db.pool, None, 10).await.unwrap();
    let problems = model::run_problems(&world.db.pool, runs[0].run_id)
        .await
        .unwrap();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].kind.as_str(), "failure");
    // cars behind the failing page were not seen for two runs, but those runs were incomplete
    assert_eq!(car(&world, "AU1000000301").await.status.as_str(), "active");
}

#[tokio::test]
async fn garbage_html_and_a_changed_layout_are_reported_never_a_panic() {
    let site = FakeCarsensor::start().await;
    site.three_pages();
    site.page(
        "/usedcar/index2.html",
        "\u{0}\u{1}<<>>garbage<html<<body".repeat(50),
    );
    let world = World::new(scraper_config(&site.url)).await;
    let report = world.run().await;
    assert!(!report.complete);
    assert_eq!((report.tally.pages, report.tally.new), (1, 2));
    let changes = world.events(&["ScrapeLayoutChanged"]).await;
    assert_eq!(changes.len(), 1);
    assert!(
        changes[0].2["url"]
            .as_str()
            .unwrap()
            .ends_with("/usedcar/index2.html")
    );

    // cassettes renamed: markup without listings
    site.page(
        "/usedcar/index2.html",
        listing_page(&[], None).replace("js_listTableCassette", "js_listTableCassetteV2"),
    );
    let report = world.run().await;
    assert!(!report.complete);
    let changes = world.events(&["ScrapeLayoutChanged"]).await;
    assert_eq!(changes.len(), 2);
    assert_eq!(
        changes[1].2["reason"],
        "the page shows listing markup, but no listing could be read from it"
    );

    // the maker moved: listings still recorded, the layout change reported
    site.page(
        "/usedcar/index2.html",
        listing_page(
            &[
                ("AU6877255381", "AU1000000201"),
                ("AU6869806001", "AU1000000202"),
            ],
            None,
        )
        .replace("<p>トヨタ</p>", "<p class=\"maker\">トヨタ</p>"),
    );
    let report = world.run().await;
    assert!(!report.complete);
    assert_eq!(report.tally.new, 2);
    let changes = world.events(&["ScrapeLayoutChanged"]).await;
    assert_eq!(
        changes[2].2["reason"],
        "most listings on the page lack make"
    );
}

#[tokio::test]
async fn a_path_robots_txt_disallows_is_never_requested() {
    let site = FakeCarsensor::start().await;
    site.page(
        "/usedcar/index.html",
        listing_page(&[], Some("/usedcar/search.php?STID=CS210610&page=2")),
    );
    site.page("/usedcar/search.php", listing_page(&[], None));
    let world = World::new(scraper_config(&site.url)).await;
    let report = world.run().await;
    assert!(!report.complete);
    assert_eq!(site.hits("/usedcar/search.php"), 0);
    let failures = world.events(&["ScrapePageFailed"]).await;
    assert_eq!(failures.len(), 1);
    assert_eq!(
        failures[0].2["error"],
        "robots.txt disallows /usedcar/search.php"
    );
    assert_eq!(failures[0].2["attempts"], 0);

    // an unreachable robots.txt means nothing is fetched at all
    site.set(
        "/robots.txt",
        Behaviour::FailFirst {
            status: 500,
            retry_after: None,
            times: 100,
            then: String::new(),
        },
    );
    let before = site.hits("/usedcar/index.html");
    let report = world.run().await;
    assert!(!report.complete);
    assert_eq!(site.hits("/usedcar/index.html"), before);
}

#[tokio::test]
async fn a_run_while_another_is_in_progress_is_skipped_not_queued() {
    let site = FakeCarsensor::start().await;
    site.three_pages();
    site.set("/usedcar/index2.html", Behaviour::Hang);
    let world = World::new(scraper_config(&site.url)).await;
    let (_keep, never) = tokio::sync::watch::channel(false);
    let first = world.scraper.run_once(never.clone());
    let second = async {
        // once the first run is waiting on its hanging page, a second one is asked for
        while site.hits("/usedcar/index2.html") == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let skipped = world.scraper.run_once(never.clone()).await.unwrap();
        let still_hanging = site.hits("/usedcar/index2.html") < 3;
        (skipped, still_hanging)
    };
    let (first, (second, still_hanging)) = tokio::join!(first, second);
    assert!(first.unwrap().is_some());
    assert!(second.is_none(), "the second run is skipped: {second:?}");
    assert!(still_hanging, "and it did not wait for the first one");
    let runs = model::runs(&world.db.pool, None, 10).await.unwrap();
    assert_eq!(runs.len(), 1);
}

#[tokio::test]
async fn two_kinds_of_layout_change_on_one_page_are_two_events() {
    let site = FakeCarsensor::start().await;
    site.three_pages();
    // the maker moved on both cars, and three more cassettes have no listing id at all
    site.page(
        "/usedcar/index2.html",
        listing_page(
            &[
                ("AU6877255381", "AU1000000201"),
                ("AU6869806001", "AU1000000202"),
            ],
            None,
        )
        .replace("<p>トヨタ</p>", "<p class=\"maker\">トヨタ</p>")
        .replacen(
            "<body>",
            &format!(
                "<body>{}",
                "<div class=\"cassette js_listTableCassette\"><p>?</p></div>".repeat(3)
            ),
            1,
        ),
    );
    let mut config = scraper_config(&site.url);
    // (the cars without a maker would send for their detail pages, which the fake site has not)
    config.fetch_details = false;
    let world = World::new(config).await;
    let report = world.run().await;
    assert!(!report.complete);
    assert_eq!(report.tally.errors, 2);
    let changes = world.events(&["ScrapeLayoutChanged"]).await;
    let reasons: Vec<&str> = changes
        .iter()
        .map(|(_, _, data)| data["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "most listings on the page lack make",
            "3 listings have no readable listing id"
        ]
    );
    let problems = model::run_problems(&world.db.pool, report.run_id)
        .await
        .unwrap();
    assert_eq!(problems.len(), 2);
}

#[tokio::test]
async fn a_detail_page_that_fails_is_recorded_and_the_run_stays_complete() {
    let site = FakeCarsensor::start().await;
    site.three_pages();
    site.set(
        "/usedcar/detail/AU1000000302/index.html",
        Behaviour::FailFirst {
            status: 404,
            retry_after: None,
            times: 100,
            then: String::new(),
        },
    );
    let world = World::new(scraper_config(&site.url)).await;
    let report = world.run().await;
    assert!(
        report.complete,
        "the list page showed the listing: {report:?}"
    );
    assert_eq!((report.tally.new, report.tally.errors), (6, 1));
    let failures = world.events(&["ScrapePageFailed"]).await;
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].2["url"]
            .as_str()
            .unwrap()
            .ends_with("/usedcar/detail/AU1000000302/index.html")
    );
    assert_eq!(failures[0].2["error"], "HTTP 404");
    assert_eq!(failures[0].2["attempts"], 1);
    let problems = model::run_problems(&world.db.pool, report.run_id)
        .await
        .unwrap();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].kind.as_str(), "failure");
    assert_eq!(car(&world, "AU1000000302").await.year, None);
}

#[tokio::test]
async fn redirects_are_followed_only_on_the_site_to_paths_robots_txt_allows() {
    let site = FakeCarsensor::start().await;
    site.three_pages();
    let page_two = listing_page(
        &[
            ("AU6877255381", "AU1000000201"),
            ("AU6869806001", "AU1000000202"),
        ],
        Some("/usedcar/index3.html"),
    );
    // an allowed redirect is followed, and the page's links resolve against where it ended up
    site.redirect("/usedcar/index2.html", "/usedcar/moved/index2.html");
    site.page("/usedcar/moved/index2.html", page_two.clone());
    let world = World::new(scraper_config(&site.url)).await;
    let report = world.run().await;
    assert!(report.complete, "{report:?}");
    assert_eq!(report.tally.new, 6);
    assert_eq!(site.hits("/usedcar/moved/index2.html"), 1);

    // a redirect to a path robots.txt disallows is never requested
    site.redirect(
        "/usedcar/index2.html",
        "/usedcar/search.php?STID=CS210610&page=2",
    );
    site.page("/usedcar/search.php", page_two);
    let report = world.run().await;
    assert!(!report.complete);
    assert_eq!(report.tally.errors, 1);
    assert_eq!(site.hits("/usedcar/search.php"), 0);
    let failures = world.events(&["ScrapePageFailed"]).await;
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].2["url"]
            .as_str()
            .unwrap()
            .ends_with("/usedcar/index2.html")
    );
    assert_eq!(
        failures[0].2["error"],
        "robots.txt disallows /usedcar/search.php"
    );
    assert_eq!(failures[0].2["attempts"], 1, "the redirect was requested");

    // nor is a redirect off the site
    let elsewhere = site.elsewhere().join("/usedcar/elsewhere.html").unwrap();
    site.redirect("/usedcar/index2.html", elsewhere.as_str());
    site.page("/usedcar/elsewhere.html", listing_page(&[], None));
    let report = world.run().await;
    assert!(!report.complete);
    assert_eq!(site.hits("/usedcar/elsewhere.html"), 0);
    let failures = world.events(&["ScrapePageFailed"]).await;
    assert_eq!(
        failures[1].2["error"],
        format!(
            "{elsewhere} is not on the scraped site {}",
            site.url.origin().ascii_serialization()
        )
    );

    // and a loop of redirects ends after five hops
    site.redirect("/usedcar/index2.html", "/usedcar/loop.html");
    site.redirect("/usedcar/loop.html", "/usedcar/index2.html");
    let before = site.hits("/usedcar/index2.html") + site.hits("/usedcar/loop.html");
    let report = world.run().await;
    assert!(!report.complete);
    let failures = world.events(&["ScrapePageFailed"]).await;
    assert_eq!(failures[2].2["error"], "more than 5 redirects");
    assert_eq!(failures[2].2["attempts"], 6);
    assert_eq!(
        site.hits("/usedcar/index2.html") + site.hits("/usedcar/loop.html") - before,
        6
    );
}

#[tokio::test]
async fn start_next_and_detail_urls_off_the_site_are_refused_and_recorded() {
    let site = FakeCarsensor::start().await;
    let elsewhere = site.elsewhere();
    let off = |path: &str| elsewhere.join(path).unwrap().to_string();
    // the second car's list entry lacks year and mileage, and its detail page is on another host
    let page = listing_page(&[], Some(&off("/usedcar/index2.html")));
    let page = replace_nth(&page, ">年式</dt>", ">-</dt>", 2);
    let page = replace_nth(&page, ">走行距離</dt>", ">-</dt>", 2);
    let page = page.replace(
        "/usedcar/detail/AU6869806001/",
        &off("/usedcar/detail/AU6869806001/"),
    );
    site.page("/usedcar/index.html", page);
    site.page("/usedcar/index2.html", listing_page(&[], None));
    site.page(
        "/usedcar/detail/AU6869806001/index.html",
        fixture("detail_AU6877255381_truncated.html").replace("AU6877255381", "AU6869806001"),
    );
    let mut config = scraper_config(&site.url);
    config.start_pages = vec![off("/usedcar/other.html"), "/usedcar/index.html".to_owned()];
    site.page("/usedcar/other.html", listing_page(&[], None));
    let world = World::new(config).await;
    let report = world.run().await;

    assert!(!report.complete, "{report:?}");
    assert_eq!((report.tally.new, report.tally.errors), (2, 3));
    assert_eq!(site.hits("/usedcar/other.html"), 0);
    assert_eq!(site.hits("/usedcar/index2.html"), 0);
    assert_eq!(site.hits("/usedcar/detail/AU6869806001/index.html"), 0);
    let failures = world.events(&["ScrapePageFailed"]).await;
    let refused: Vec<(&str, &str)> = failures
        .iter()
        .map(|(_, _, data)| {
            (
                data["url"].as_str().unwrap(),
                data["error"].as_str().unwrap(),
            )
        })
        .collect();
    let site_origin = site.url.origin().ascii_serialization();
    let expected: Vec<(String, String)> = [
        "/usedcar/other.html",
        "/usedcar/detail/AU6869806001/index.html",
        "/usedcar/index2.html",
    ]
    .iter()
    .map(|path| {
        (
            off(path),
            format!("{} is not on the scraped site {site_origin}", off(path)),
        )
    })
    .collect();
    let expected: Vec<(&str, &str)> = expected
        .iter()
        .map(|(u, e)| (u.as_str(), e.as_str()))
        .collect();
    assert_eq!(refused, expected);
    let lacking = car(&world, "AU6869806001").await;
    assert_eq!(lacking.year, None, "the detail page was not read");
}

#[tokio::test]
async fn a_results_page_without_results_is_a_page_of_no_listings_and_delisting_goes_on() {
    let site = FakeCarsensor::start().await;
    site.three_pages();
    let world = World::new(scraper_config(&site.url)).await;
    assert!(world.run().await.complete);

    // page two now says there is nothing more to show: no listings, no listing markup, no next page
    let empty = "<!doctype html><html><head><title>中古車一覧</title></head><body><div class=\"resultBar\"><p>該当する物件がありません</p></div></body></html>";
    site.page("/usedcar/index2.html", empty.to_owned());
    let second = world.run().await;
    assert!(second.complete, "{second:?}");
    assert_eq!(
        (
            second.tally.pages,
            second.tally.listings_seen,
            second.tally.errors
        ),
        (2, 2, 0)
    );
    assert!(world.events(&["ScrapeLayoutChanged"]).await.is_empty());
    let pages = model::run_pages(&world.db.pool, second.run_id)
        .await
        .unwrap();
    let shown: Vec<usize> = pages.iter().map(|p| p.listing_ids.len()).collect();
    assert_eq!(shown, [2, 0]);

    // so the cars no page shows any more are delisted after two such runs
    let third = world.run().await;
    assert!(third.complete);
    assert_eq!(third.tally.delisted, 4, "{third:?}");
    assert_eq!(
        car(&world, "AU1000000201").await.status.as_str(),
        "delisted"
    );
    assert_eq!(car(&world, "AU6877255381").await.status.as_str(), "active");
}

#[tokio::test]
async fn the_scrapers_commands_refuse_what_a_run_never_sends_with_their_reasons() {
    use commands::{CommandError, CommandExecutor, Metadata, Source};
    use domain::cars::{
        Car, CarCommand, Listing, ScrapeRun, ScrapeRunCommand, car_stream, scrape_run_stream,
    };
    use domain::refusal::Refusal;
    use domain::testing::at;
    use eventlog::EventLog;

    fn reason<E: Refusal>(result: Result<impl Sized, CommandError<E>>) -> &'static str {
        match result {
            Err(CommandError::Rejected(rule)) => rule.reason(),
            Err(other) => panic!("not a refusal: {other}"),
            Ok(_) => panic!("accepted"),
        }
    }

    let db = migrations::testing::TestDb::new().await;
    let executor = CommandExecutor::new(EventLog::new(db.pool.clone()));
    let metadata = || Metadata::new(Source::Worker);
    assert_eq!(
        ListingId::parse("XX123").unwrap_err().reason(),
        "invalid_listing_id"
    );
    let (first, second) = (listing("AU1000000201"), listing("AU1000000202"));
    let run = uuid::Uuid::now_v7();
    let delist = CarCommand::Delist {
        run_id: run,
        missed_runs: 3,
        at: at(1),
    };
    let never_listed = executor
        .execute::<Car>(&car_stream(&first), &delist, &metadata())
        .await;
    assert_eq!(reason(never_listed), "car_not_listed");
    let observe = |id: &ListingId| CarCommand::Observe {
        listing: Listing {
            id: id.clone(),
            prices: Default::default(),
            details: Default::default(),
        },
        run_id: run,
        at: at(1),
    };
    executor
        .execute::<Car>(&car_stream(&first), &observe(&first), &metadata())
        .await
        .unwrap();
    let elsewhere = executor
        .execute::<Car>(&car_stream(&first), &observe(&second), &metadata())
        .await;
    assert_eq!(reason(elsewhere), "listing_mismatch");

    let stream = scrape_run_stream(run);
    let page = ScrapeRunCommand::RecordPage {
        url: "https://www.carsensor.net/usedcar/index.html".to_owned(),
        page: 1,
        listings: vec![first.clone()],
        at: at(2),
    };
    let unstarted = executor
        .execute::<ScrapeRun>(&stream, &page, &metadata())
        .await;
    assert_eq!(reason(unstarted), "scrape_run_not_started");
    for command in [
        ScrapeRunCommand::Start {
            start_urls: vec![],
            at: at(1),
        },
        ScrapeRunCommand::Complete {
            tally: Default::default(),
            complete: true,
            at: at(3),
        },
    ] {
        executor
            .execute::<ScrapeRun>(&stream, &command, &metadata())
            .await
            .unwrap();
    }
    let completed = executor
        .execute::<ScrapeRun>(&stream, &page, &metadata())
        .await;
    assert_eq!(reason(completed), "scrape_run_completed");
}

/// A list page of the recorded cassettes repeated: `ids` in page order (each id takes the place of one of the
/// recording's two cars, alternately), with `link[rel=next]` to `next`.
fn page_of(ids: &[String], next: Option<&str>) -> String {
    let html = listing_page(&[], next);
    let start = html
        .find("<div class=\"cassette js_listTableCassette\"")
        .unwrap();
    let end = html.find("<div class=\"recommendCar\">").unwrap();
    let cassettes = &html[start..end];
    let mut page = html[..start].to_owned();
    for pair in ids.chunks(2) {
        let mut both = cassettes.replace("AU6877255381", &pair[0]);
        match pair.get(1) {
            Some(second) => both = both.replace("AU6869806001", second),
            // one car only: the second cassette is cut off
            None => {
                let second = both
                    .find("<div class=\"cassetteWrap js-mainCassette\">")
                    .unwrap();
                both.truncate(second);
            }
        }
        page.push_str(&both);
    }
    page.push_str(&html[end..]);
    page
}

/// The log from the start: (position, stream id, type, data).
async fn log_of(world: &World) -> Vec<(i64, String, String, serde_json::Value)> {
    world
        .log
        .read_all(projections::Checkpoint::START, 100_000, None)
        .await
        .unwrap()
        .events
        .into_iter()
        .map(|e| (e.position, e.stream_id, e.event_type, e.data))
        .collect()
}

#[tokio::test]
async fn listings_observed_concurrently_while_the_next_page_is_read_are_each_listed_once_and_pages_recorded_in_order_after_their_listings()
 {
    let site = FakeCarsensor::start().await;
    let pages: Vec<Vec<String>> = (0..3)
        .map(|page| (0..11).map(|n| format!("AU10000{page}{n:04}")).collect())
        .collect();
    site.page(
        "/usedcar/index.html",
        page_of(&pages[0], Some("/usedcar/index2.html")),
    );
    site.page(
        "/usedcar/index2.html",
        page_of(&pages[1], Some("/usedcar/index3.html")),
    );
    site.page("/usedcar/index3.html", page_of(&pages[2], None));
    let mut config = scraper_config(&site.url);
    config.concurrency = 4;
    let world = World::new(config).await;

    let report = world.run().await;
    assert!(report.complete, "{report:?}");
    assert_eq!(
        (
            report.tally.pages,
            report.tally.listings_seen,
            report.tally.new,
            report.tally.errors
        ),
        (3, 33, 33, 0)
    );
    let log = log_of(&world).await;
    let listed: Vec<&(i64, String, String, serde_json::Value)> = log
        .iter()
        .filter(|(_, stream, _, _)| stream.starts_with("car-"))
        .collect();
    // one event per car, each the first of its stream
    assert_eq!(listed.len(), 33);
    assert!(listed.iter().all(|(_, _, kind, _)| kind == "CarListed"));
    let streams: HashSet<&str> = listed.iter().map(|(_, s, _, _)| s.as_str()).collect();
    assert_eq!(streams.len(), 33);
    // the pages in order, each with the ids it showed in page order, each recorded after all its listings
    let recorded: Vec<&(i64, String, String, serde_json::Value)> = log
        .iter()
        .filter(|(_, _, kind, _)| kind == "ScrapePageScraped")
        .collect();
    assert_eq!(recorded.len(), 3);
    for (n, ((position, _, _, data), ids)) in recorded.iter().zip(&pages).enumerate() {
        assert_eq!(data["page"], json!(n + 1));
        assert_eq!(data["listings"], json!(ids));
        for id in ids {
            let stream = domain::cars::car_stream(&listing(id)).to_string();
            let listed_at = listed
                .iter()
                .find(|(_, s, _, _)| *s == stream)
                .map(|(p, _, _, _)| *p)
                .unwrap();
            assert!(
                listed_at < *position,
                "{id} listed at {listed_at}, its page recorded at {position}"
            );
        }
    }
    // polite still: one request at a time, at least 1 s apart
    let pauses = world.sleeper.pauses();
    assert_eq!(pauses.len() as u32, site.total_hits() - 1, "{pauses:?}");
    assert!(
        pauses.iter().all(|p| *p >= Duration::from_secs(1)),
        "{pauses:?}"
    );
    let active = model::cars(
        &world.db.pool,
        &model::CarFilter::default(),
        model::CarOrder::Newest,
        None,
        100,
    )
    .await
    .unwrap();
    assert_eq!(active.len(), 33);
}

#[tokio::test]
async fn a_second_run_over_unchanged_pages_writes_nothing_but_its_own_record() {
    let site = FakeCarsensor::start().await;
    let ids: Vec<String> = (0..9).map(|n| format!("AU200000{n:04}")).collect();
    site.page(
        "/usedcar/index.html",
        page_of(&ids[..5], Some("/usedcar/index2.html")),
    );
    site.page("/usedcar/index2.html", page_of(&ids[5..], None));
    let world = World::new(scraper_config(&site.url)).await;

    let first = world.run().await;
    assert_eq!((first.tally.new, first.tally.listings_seen), (9, 9));
    let before = log_of(&world).await;
    let second = world.run().await;
    assert!(second.complete, "{second:?}");
    assert_eq!(
        (
            second.tally.listings_seen,
            second.tally.new,
            second.tally.changed,
            second.tally.delisted,
            second.tally.errors
        ),
        (9, 0, 0, 0, 0)
    );
    let after = log_of(&world).await;
    let run_stream = format!("scraperun-{}", second.run_id);
    let written: Vec<(&str, &str)> = after[before.len()..]
        .iter()
        .map(|(_, stream, kind, _)| (stream.as_str(), kind.as_str()))
        .collect();
    assert_eq!(
        written,
        [
            (run_stream.as_str(), "ScrapeRunStarted"),
            (run_stream.as_str(), "ScrapePageScraped"),
            (run_stream.as_str(), "ScrapePageScraped"),
            (run_stream.as_str(), "ScrapeRunCompleted"),
        ]
    );
}
