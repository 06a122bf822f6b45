//! `academy scrape --once` against a local fake carsensor.net serving the real listing page.

use axum::Router;
use axum::http::header;
use axum::routing::get;
use migrations::testing::TestDb;

use crate::{academy, data_folder, run};

async fn fake_site() -> String {
    let listing = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/workers/tests/fixtures/carsensor/listing_prius_truncated.html"
    ))
    .expect("the fixture is in the workers crate");
    let app = Router::new()
        .route(
            "/robots.txt",
            get(|| async { "User-agent: *\nDisallow: /usedcar/search.php\n" }),
        )
        .route(
            "/usedcar/index.html",
            get(move || {
                let listing = listing.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                        listing,
                    )
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

#[tokio::test]
async fn scrape_once_records_a_run_and_its_listings() {
    let site = fake_site().await;
    let db = TestDb::new().await;
    let dir = data_folder();
    let mut command = academy(dir.path());
    command
        .env("DATABASE_URL", db.url())
        .env("ACADEMY_CARSENSOR_BASE_URL", &site)
        .env("ACADEMY_CARSENSOR_DELAY_MS", "10")
        .args(["scrape", "--once"]);
    let out = tokio::task::spawn_blocking(move || run(&mut command))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("complete; 1 pages, 2 listings seen: 2 new, 0 changed (0 relisted), 0 delisted, 0 errors"),
        "{stdout}"
    );
    let types: Vec<String> = sqlx::query_scalar("select event_type from events order by position")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        types,
        [
            "ScrapeRunStarted",
            "CarListed",
            "CarListed",
            "ScrapePageScraped",
            "ScrapeRunCompleted"
        ]
    );
    let sources: Vec<String> =
        sqlx::query_scalar("select distinct source || '/' || actor_id from events")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(sources, ["worker/carsensor-scraper"]);
}

#[test]
fn a_bad_schedule_or_base_url_stops_start_up_with_a_reason() {
    let dir = data_folder();
    let out = run(academy(dir.path())
        // the schedule is checked when the server runs the scraper
        .env("ACADEMY_CARSENSOR_ENABLED", "true")
        .env("ACADEMY_CARSENSOR_SCHEDULE", "every hour")
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("ACADEMY_JWT_SECRET", "x".repeat(40))
        .arg("serve"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not a cron expression"), "{stderr}");

    let out = run(academy(dir.path())
        .env("ACADEMY_CARSENSOR_BASE_URL", "carsensor.net")
        .args(["scrape", "--once"]));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ACADEMY_CARSENSOR_BASE_URL must be an absolute URL"),
        "{stderr}"
    );
}
