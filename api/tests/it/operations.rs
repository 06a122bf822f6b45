//! Health, readiness, metrics, limits, request ids, GraphiQL and the committed SDL.

use serde_json::{Value, json};

use crate::{Setup, TestApp, code, reason};

#[tokio::test]
async fn readyz_is_ok_once_the_projections_caught_up_and_healthz_needs_nothing() {
    let app = TestApp::start().await;
    let mut ready = false;
    for _ in 0..100 {
        let response = app.http.get(app.url("/readyz")).send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        if status == 200 {
            assert_eq!(body["database"], "ok");
            assert_eq!(body["ready"], true);
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "/readyz turned ready");
    app.db.pool.close().await;
    let response = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["database"], "unreachable");
    let response = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn metrics_count_requests_commands_and_projection_lag() {
    let app = TestApp::start().await;
    // the recorder is shared by the tests of this process: compare before and after
    let count = |text: &str, series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let accepted = "academy_commands_total{command=\"RegisterAccount\",outcome=\"accepted\"}";
    let not_found =
        "academy_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}";
    let before = app.text("/metrics").await;
    app.register("ada@example.org", "ada", "long enough").await;
    app.text("/no/such/route").await;
    let text = app.text("/metrics").await;
    assert!(
        count(&text, accepted) >= count(&before, accepted) + 1.0,
        "{text}"
    );
    assert!(
        count(&text, not_found) >= count(&before, not_found) + 1.0,
        "{text}"
    );
    for expected in [
        "academy_http_requests_total{method=\"POST\",route=\"/graphql\",status=\"200\"}",
        "academy_http_request_duration_seconds_bucket{method=\"POST\",route=\"/graphql\"",
        "academy_commands_total{command=\"RegisterAccount\",outcome=\"accepted\"}",
        "academy_events_appended_total{command=\"RegisterAccount\"}",
        "academy_projection_lag_seconds{projection=\"accounts\"}",
        "academy_projection_checkpoint_position{projection=\"accounts\"}",
        "academy_log_head_position",
    ] {
        assert!(
            text.contains(expected),
            "/metrics lacks {expected}:\n{text}"
        );
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_the_clients() {
    let app = TestApp::start().await;
    let response = app.http.get(app.url("/healthz")).send().await.unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a generated UUID: {id}");
    let response = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "client-chosen-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "client-chosen-1");
    // too long to log and echo: replaced by a generated one
    let long = "x".repeat(129);
    let response = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", &long)
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a generated UUID: {id}");
    let longest = "x".repeat(128);
    let response = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", &longest)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], longest.as_str());
}

#[tokio::test]
async fn oversized_bodies_deep_queries_and_syntax_errors_are_refused_with_codes() {
    let mut setup = Setup::default();
    setup.http.body_limit = 4096;
    let app = TestApp::with(setup).await;
    let huge = "x".repeat(10_000);
    let response = app
        .http
        .post(app.url("/graphql"))
        .json(&json!({ "query": format!("{{ me {{ id }} }} # {huge}") }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert_eq!(body["error"]["code"], "VALIDATION");
    assert_eq!(reason(&body), "body_too_large");
    assert_eq!(body["error"]["reason"], "body_too_large");

    let response = app
        .http
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body("{\"query\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert_eq!(reason(&body), "invalid_input", "{body}");
    let response = app
        .http
        .get(app.url("/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "NOT_FOUND");
    assert_eq!(reason(&body), "no_such_route");
    assert_eq!(body["error"]["reason"], "no_such_route");

    let body = app.gql("{ me { id ", json!({}), None).await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert_eq!(reason(&body), "invalid_query", "{body}");
    let body = app.gql("{ nothingHere }", json!({}), None).await;
    assert_eq!(code(&body), "VALIDATION");
    assert_eq!(reason(&body), "invalid_query");
    // 20 levels, beyond the limit of 12 (introspection is not counted: see http.rs)
    let deep = format!("{{ me {{ {}id{} }} }}", "x { ".repeat(18), " }".repeat(18));
    let body = app.gql(&deep, json!({}), None).await;
    assert_eq!(code(&body), "VALIDATION", "{body}");
    assert_eq!(reason(&body), "invalid_query");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("deep"),
        "{body}"
    );
}

#[tokio::test]
async fn graphiql_is_served_on_get() {
    let app = TestApp::start().await;
    let response = app.http.get(app.url("/graphql")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("graphiql"), "{html}");
    assert!(html.contains("/graphql/ws"));
}

#[test]
fn the_committed_sdl_matches_the_schema() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("api/schema.graphql exists");
    assert!(
        committed == api::graphql::sdl(),
        "api/schema.graphql is stale: run `cargo run -- schema > api/schema.graphql` and commit it"
    );
}

#[tokio::test]
async fn admins_see_each_projection_with_positions_within_the_log() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin().await;
    let (_, position) = app.register("ada@example.org", "ada", "long enough").await;
    app.state
        .services
        .projections
        .wait_for(position, std::time::Duration::from_secs(10))
        .await
        .unwrap();
    let body = app
        .gql(
            "{ projections { name status checkpointPosition caughtUp error } }",
            json!({}),
            Some(&admin),
        )
        .await;
    let rows = body["data"]["projections"].as_array().unwrap();
    let accounts = rows.iter().find(|p| p["name"] == "accounts").unwrap();
    assert_eq!(accounts["status"], "RUNNING", "{body}");
    assert!(accounts["error"].is_null());
    let checkpoint = accounts["checkpointPosition"].as_i64().unwrap();
    assert!(
        (position..=position + 5).contains(&checkpoint),
        "{checkpoint} vs {position}"
    );

    let text = app.text("/metrics").await;
    let head: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("academy_log_head_position "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(head, position);
}

#[tokio::test]
async fn a_database_outage_is_internal_and_names_only_an_incident() {
    let app = TestApp::start().await;
    app.db.pool.close().await;
    let body = app
        .gql(
            "mutation { login(username: \"ada\", password: \"long enough\") { accessToken } }",
            json!({}),
            None,
        )
        .await;
    assert_eq!(code(&body), "INTERNAL", "{body}");
    assert_eq!(reason(&body), "internal");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("incident"),
        "{body}"
    );
}

#[tokio::test]
async fn a_request_beyond_the_timeout_is_stopped_with_408() {
    let mut setup = Setup::default();
    setup.http.request_timeout = std::time::Duration::from_millis(1);
    let app = TestApp::with(setup).await;
    // a login hashes a password: far longer than a millisecond
    let response = app
        .http
        .post(app.url("/api/login"))
        .json(&json!({ "username": "ada", "password": "long enough" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 408);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "INTERNAL", "{body}");
    assert_eq!(body["error"]["reason"], "request_timeout");
    assert_eq!(reason(&body), "request_timeout");
}

#[tokio::test]
async fn a_background_task_that_stopped_makes_the_server_unready_and_is_named() {
    let app = TestApp::start().await;
    let ready = async {
        for _ in 0..100 {
            let response = app.http.get(app.url("/readyz")).send().await.unwrap();
            if response.status() == 200 {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        false
    };
    assert!(ready.await, "/readyz turned ready");
    app.state
        .tasks
        .stopped("deadline worker", "creating the scheduler: no");
    let response = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["ready"], false);
    assert_eq!(body["database"], "ok");
    assert_eq!(body["stopped_tasks"][0]["name"], "deadline worker");
    assert_eq!(
        body["stopped_tasks"][0]["error"],
        "creating the scheduler: no"
    );
}

#[tokio::test]
async fn events_held_back_by_an_open_transaction_make_the_server_unready_and_name_the_backend() {
    let mut setup = Setup::default();
    setup.http.ready_max_lag = std::time::Duration::from_secs(1);
    let app = TestApp::with(setup).await;
    let readyz = || async {
        let response = app.http.get(app.url("/readyz")).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };
    let mut ready = false;
    for _ in 0..100 {
        if readyz().await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "/readyz turned ready");
    // an open transaction holding an id keeps every event committed after it from every projection
    let mut holder = app.db.pool.begin().await.unwrap();
    let pid: i32 = sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(&mut *holder)
        .await
        .unwrap();
    sqlx::query("select pg_current_xact_id()")
        .execute(&mut *holder)
        .await
        .unwrap();
    app.register("ada@example.org", "ada", "correct horse")
        .await;
    let (status, body) = readyz().await;
    // the registration's events (account, claims, signup points)
    assert!(
        body["held_back"]["events"].as_i64().is_some_and(|n| n >= 1),
        "{body}"
    );
    assert_eq!(body["held_back"]["blocker"]["pid"], pid, "{body}");
    assert!(
        body["projections"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["caught_up"] == false),
        "{body}"
    );
    // once the hold outlasts the bound, the instance is not ready
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let (status_later, body) = readyz().await;
    assert_eq!((status, status_later), (200, 503), "{body}");
    assert_eq!(body["held_back"]["blocking"], true);
    assert!(body["held_back"]["seconds"].as_f64().unwrap() >= 1.0);
    // the metrics say the same
    let metrics = app.text("/metrics").await;
    let value = |series: &str| -> f64 {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(series))
            .unwrap_or_else(|| panic!("{series} in {metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(value("academy_log_held_back_events ") >= 1.0);
    assert!(value("academy_log_held_back_seconds ") >= 1.0);
    assert!(value("academy_projection_lag_seconds{projection=\"accounts\"}") >= 1.0);
    holder.rollback().await.unwrap();
    let mut ready_again = false;
    for _ in 0..100 {
        let (status, body) = readyz().await;
        if status == 200 && body["held_back"].is_null() {
            ready_again = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready_again, "ready again once the transaction ended");
}
