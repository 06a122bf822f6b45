//! The first admin, the token secret and the schema, as operators meet them through the binary.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use serde_json::{Value, json};

use crate::{Server, academy, data_folder, run};

async fn login(server: &Server, username: &str, password: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/api/login", server.address))
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .unwrap()
}

async fn me(server: &Server, token: &str) -> Value {
    reqwest::Client::new()
        .post(format!("{}/graphql", server.address))
        .bearer_auth(token)
        .json(&json!({ "query": "{ me { username role } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_first_admin_comes_from_the_environment_and_tokens_survive_a_restart() {
    let dir = data_folder();
    let start = || {
        let mut command = academy(dir.path());
        command
            .env("ACADEMY_ADMIN_EMAIL", "boss@example.org")
            .env("ACADEMY_ADMIN_PASSWORD", "a long admin password");
        Server::start(command)
    };
    let server = start();
    let response = login(&server, "boss@example.org", "a long admin password").await;
    assert_eq!(response.status(), 200);
    let token = response.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    server.wait_projections_live().await;
    let body = me(&server, &token).await;
    assert_eq!(
        body["data"]["me"],
        json!({ "username": "admin", "role": "ADMIN" }),
        "{body}"
    );

    // the generated secret is kept in the data folder, private, and never printed
    let secret = dir.path().join("pg").join(academy::config::JWT_SECRET_FILE);
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    assert!(server.terminate().success());

    // a second start keeps the secret (old tokens still work) and does not register the admin twice
    let server = start();
    server.wait_projections_live().await;
    let body = me(&server, &token).await;
    assert_eq!(body["data"]["me"]["role"], "ADMIN", "{body}");
    assert!(server.terminate().success());
}

#[tokio::test]
async fn a_short_token_secret_is_refused_at_start() {
    let db = migrations::testing::TestDb::new().await;
    let dir = data_folder();
    let out = run(academy(dir.path())
        .env("DATABASE_URL", db.url())
        .env("ACADEMY_JWT_SECRET", "tiny-secret-xyz"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at least 32 bytes"), "{stderr}");
    assert!(
        !stderr.contains("tiny-secret-xyz"),
        "the secret is not echoed: {stderr}"
    );

    let out = run(academy(dir.path()).env("DATABASE_URL", db.url()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("ACADEMY_JWT_SECRET is required with DATABASE_URL"),
        "{stderr}"
    );
}

#[tokio::test]
async fn users_create_admin_makes_an_admin_once() {
    let db = migrations::testing::TestDb::new().await;
    let dir = data_folder();
    let create = || {
        let mut child = academy(dir.path())
            .env("DATABASE_URL", db.url())
            .args([
                "users",
                "create-admin",
                "--email",
                "Ops@Example.org",
                "--username",
                "ops",
                "--password-stdin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"an ops password\n")
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let first = create();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("created admin ops <Ops@Example.org>"));
    let second = create();
    assert!(second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stdout).contains("is an admin"),
        "{}",
        String::from_utf8_lossy(&second.stdout)
    );
    let accounts: i64 =
        sqlx::query_scalar("select count(*) from events where event_type = 'AccountRegistered'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(accounts, 1);

    let out = run(academy(dir.path()).env("DATABASE_URL", db.url()).args([
        "users",
        "create-admin",
        "--email",
        "x@example.org",
    ]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--password-stdin"));
}

#[test]
fn academy_schema_prints_the_committed_sdl() {
    let dir = data_folder();
    let out = run(academy(dir.path()).arg("schema"));
    assert!(out.status.success());
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/api/schema.graphql"))
            .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), committed);
}

#[tokio::test]
async fn sigterm_drains_a_request_in_flight_while_the_projections_keep_running() {
    let db = migrations::testing::TestDb::new().await;
    let dir = data_folder();
    let server = Server::start({
        let mut command = academy(dir.path());
        command
            .env("DATABASE_URL", db.url())
            .env(
                "ACADEMY_JWT_SECRET",
                "a-shared-secret-of-at-least-32-bytes!",
            )
            .env("ACADEMY_ADMIN_EMAIL", "boss@example.org")
            .env("ACADEMY_ADMIN_PASSWORD", "a long admin password")
            .env("ACADEMY_READ_TIMEOUT_MS", "30000");
        command
    });
    server.wait_projections_live().await;
    let token = login(&server, "boss@example.org", "a long admin password")
        .await
        .json::<Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = reqwest::Client::new();
    let graphql = format!("{}/graphql", server.address);

    // an open transaction holding an earlier position keeps every projection from passing it
    let mut holding = db.pool.begin().await.unwrap();
    let stream = domain::StreamId::new("hold", uuid::Uuid::now_v7()).unwrap();
    eventlog::append_in(
        &mut holding,
        eventlog::AppendRequest::single(
            stream,
            eventlog::ExpectedVersion::NoStream,
            vec![eventlog::NewEvent::new("HeldBack", json!({}))],
            eventlog::Metadata::new(eventlog::Source::Cli),
        ),
    )
    .await
    .unwrap();
    let registered: Value = client
        .post(&graphql)
        .json(&json!({ "query": "mutation { register(input: {email: \"late@example.org\", username: \"late\", password: \"long enough\"}) { userId position } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user = registered["data"]["register"]["userId"]
        .as_str()
        .unwrap()
        .to_owned();
    let position = registered["data"]["register"]["position"].as_i64().unwrap();

    // a query waiting for that position is in flight when SIGTERM arrives
    let in_flight = tokio::spawn({
        let (client, graphql, token) = (client.clone(), graphql.clone(), token.clone());
        async move {
            client
                .post(&graphql)
                .bearer_auth(token)
                .json(&json!({
                    "query": "query($u: UUID!, $p: Int) { user(id: $u, minPosition: $p) { username } }",
                    "variables": { "u": user, "p": position }
                }))
                .send()
                .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !in_flight.is_finished(),
        "the query waits for the projections"
    );
    let pid = server.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // the projections still run during the drain: releasing the log lets them reach the position
    holding.commit().await.unwrap();
    let response = in_flight
        .await
        .unwrap()
        .expect("the request in flight got its answer");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["user"]["username"], "late", "{body}");
    assert!(server.terminate().success());
}
