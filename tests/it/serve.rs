use std::process::Command;
use std::time::Duration;

use crate::{Server, academy, alive, data_folder, is_root, postmaster_pid, run};

#[tokio::test]
async fn serve_creates_its_cluster_answers_readyz_and_stops_postgres_on_sigterm() {
    let dir = data_folder();
    let server = Server::start(academy(dir.path()));
    let ready = server.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["database"], "ok");
    assert_eq!(server.get("/healthz").await.text().await.unwrap(), "ok");
    let pg = dir.path().join("pg");
    assert!(
        pg.join("PG_VERSION").exists(),
        "initdb ran in ACADEMY_DATA_DIR"
    );
    let postmaster = postmaster_pid(&pg).expect("a postmaster runs");

    let status = server.terminate();
    assert!(status.success(), "{status}");
    assert!(!alive(postmaster), "PostgreSQL stopped with the server");
    assert!(
        !pg.join("postmaster.pid").exists(),
        "a clean shutdown leaves no pid file"
    );
}

#[tokio::test]
async fn the_next_run_reuses_the_data_even_after_a_crash_left_a_stale_pid_file() {
    let dir = data_folder();
    let first = Server::start(academy(dir.path()));
    first.wait_projections_live().await;
    let pg = dir.path().join("pg");
    let postmaster = postmaster_pid(&pg).unwrap();
    // an event written while the first run is up, through its private socket
    let options = sqlx::postgres::PgConnectOptions::new()
        .host(&pg.to_string_lossy())
        .username("postgres")
        .database("academy");
    let pool = sqlx::PgPool::connect_with(options).await.unwrap();
    let log = eventlog::EventLog::new(pool.clone());
    let marker = domain::StreamId::new("marker", uuid::Uuid::now_v7()).unwrap();
    log.append(eventlog::AppendRequest::single(
        marker.clone(),
        eventlog::ExpectedVersion::NoStream,
        vec![eventlog::NewEvent::new(
            "MarkerWritten",
            serde_json::json!({}),
        )],
        eventlog::Metadata::new(eventlog::Source::Cli),
    ))
    .await
    .unwrap();
    drop(log);
    pool.close().await;
    // a crash of both: academy dies without cleaning up, and so does its PostgreSQL
    let mut first = first;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    Command::new("kill")
        .args(["-KILL", &postmaster.to_string()])
        .status()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while alive(postmaster) {
        assert!(
            std::time::Instant::now() < deadline,
            "PostgreSQL did not die"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // its backends notice the postmaster's death and leave too; wait until nothing uses the data folder
    std::thread::sleep(Duration::from_millis(500));
    // whatever PostgreSQL managed to clean, leave a stale pid file naming a process that is not a postmaster
    std::fs::write(
        pg.join("postmaster.pid"),
        format!(
            "{}\n{}\n0\n5432\n{}\n\n0 0\nready\n",
            std::process::id(),
            pg.display(),
            pg.display()
        ),
    )
    .unwrap();

    let second = Server::start(academy(dir.path()));
    assert_eq!(second.get("/readyz").await.status(), 200);
    second.wait_projections_live().await;
    // the event written during the first run is still there: same data
    let out = run(academy(dir.path()).args(["events", "stream", marker.as_str(), "--json"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let event: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(event["event_type"], "MarkerWritten");
    let status = run(academy(dir.path()).args(["projections", "status", "--json"]));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&status.stdout).unwrap();
    let log_stats = rows.iter().find(|r| r["name"] == "log_stats").unwrap();
    assert_eq!(log_stats["status"], "running");
    assert!(second.terminate().success());
}

#[tokio::test]
async fn a_second_academy_on_the_same_data_folder_reuses_the_running_cluster() {
    let dir = data_folder();
    let first = Server::start(academy(dir.path()));
    let postmaster = postmaster_pid(&dir.path().join("pg")).unwrap();
    let second = Server::start(academy(dir.path()));
    assert_eq!(second.get("/readyz").await.status(), 200);
    assert_eq!(
        postmaster_pid(&dir.path().join("pg")),
        Some(postmaster),
        "one cluster"
    );
    // the second one leaves the cluster it merely reused running
    assert!(second.terminate().success());
    assert!(alive(postmaster));
    assert_eq!(first.get("/readyz").await.status(), 200);
    assert!(first.terminate().success());
    assert!(!alive(postmaster));
}

#[tokio::test]
async fn with_database_url_it_starts_no_cluster() {
    let db = migrations::testing::TestDb::new().await;
    let dir = data_folder();
    let server = Server::start({
        let mut command = academy(dir.path());
        command.env("DATABASE_URL", db.url()).env(
            "ACADEMY_JWT_SECRET",
            "a-shared-secret-of-at-least-32-bytes!",
        );
        command
    });
    assert_eq!(server.get("/readyz").await.status(), 200);
    assert!(
        !dir.path().join("pg").exists(),
        "no data folder was created"
    );
    assert!(server.terminate().success());
}

#[test]
fn missing_postgresql_binaries_say_what_to_install() {
    let dir = data_folder();
    let out = run(academy(dir.path())
        .arg("migrate")
        .env("ACADEMY_PG_BIN", "/nonexistent/bin"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("apt-get install -y postgresql"), "{stderr}");
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
}

#[test]
fn a_data_folder_the_server_user_cannot_reach_is_explained() {
    if !is_root() {
        eprintln!("skipped: only root hands PostgreSQL to another user");
        return;
    }
    let dir = data_folder();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let out = run(academy(dir.path())
        .arg("migrate")
        .env("ACADEMY_DATA_DIR", locked.join("pg")));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot be reached by the `postgres` user"),
        "{stderr}"
    );
    assert!(stderr.contains("ACADEMY_DATA_DIR"), "{stderr}");
}

#[tokio::test]
async fn after_a_crash_the_next_run_attaches_to_the_surviving_cluster_and_stops_it_when_done() {
    let dir = data_folder();
    let mut first = Server::start(academy(dir.path()));
    let postmaster = postmaster_pid(&dir.path().join("pg")).unwrap();
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert!(
        alive(postmaster),
        "a durable cluster outlives a crash of the process that started it"
    );

    let second = Server::start(academy(dir.path()));
    assert_eq!(second.get("/readyz").await.status(), 200);
    assert_eq!(
        postmaster_pid(&dir.path().join("pg")),
        Some(postmaster),
        "attached, not restarted"
    );
    assert!(second.terminate().success());
    assert!(!alive(postmaster), "the last academy out stops it");
}

#[tokio::test]
async fn a_server_that_attached_keeps_its_database_when_the_process_that_started_the_cluster_exits()
{
    let dir = data_folder();
    let starter = Server::start(academy(dir.path()));
    let postmaster = postmaster_pid(&dir.path().join("pg")).unwrap();
    let attached = Server::start(academy(dir.path()));
    assert!(starter.terminate().success());
    assert!(alive(postmaster), "left running for the other server");
    assert_eq!(attached.get("/readyz").await.status(), 200);
    let body: serde_json::Value = attached.get("/readyz").await.json().await.unwrap();
    assert_eq!(body["database"], "ok");
    assert!(attached.terminate().success());
    assert!(!alive(postmaster), "the last academy out stops it");
}

/// Every series the README's "Operations" note lists is in `/metrics` on the first scrape, before anything
/// happened, with the scraper disabled (as `academy()` starts the server). Series with finite label sets are at
/// zero; the open-ended ones show at least their `# TYPE` line.
#[tokio::test]
async fn metrics_list_every_documented_series_right_after_start() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("- **Operations.**")
        .expect("README has an Operations note");
    let note = &readme[start + 2..];
    let note = &note[..note.find("\n- **").unwrap_or(note.len())];
    let mut documented: Vec<&str> = note
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("academy_"))
        .collect();
    documented.sort_unstable();
    documented.dedup();
    for name in [
        "academy_http_requests_total",
        "academy_commands_total",
        "academy_scraper_requests_total",
        "academy_worker_actions_total",
    ] {
        assert!(documented.contains(&name), "README lists {name}");
    }

    let dir = data_folder();
    let server = Server::start(academy(dir.path()));
    let response = server.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for name in &documented {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} is in the first scrape:\n{text}"
        );
    }
    for zero in [
        "academy_scraper_requests_total{outcome=\"ok\"} 0",
        "academy_scraper_runs_total{outcome=\"complete\"} 0",
        "academy_scraper_listings_total{outcome=\"new\"} 0",
        "academy_scraper_page_failures_total 0",
        "academy_scraper_layout_changes_total 0",
        "academy_worker_actions_total{worker=\"deadlines\",outcome=\"failed\"} 0",
    ] {
        assert!(text.contains(zero), "{zero} in the first scrape:\n{text}");
    }
    let status = server.terminate();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn a_held_horizon_is_named_in_the_log_and_an_orderly_stop_logs_no_errors() {
    let dir = data_folder();
    let log_path = dir.path().join("academy.log");
    let server = Server::start_logging_to(
        academy(dir.path()),
        std::fs::File::create(&log_path).unwrap(),
    );
    server.wait_projections_live().await;
    let options = sqlx::postgres::PgConnectOptions::new()
        .host(&dir.path().join("pg").to_string_lossy())
        .username("postgres")
        .database("academy");
    let pool = sqlx::PgPool::connect_with(options).await.unwrap();
    // a transaction holding an id, and an event committed after it
    let mut holder = pool.begin().await.unwrap();
    let pid: i32 = sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(&mut *holder)
        .await
        .unwrap();
    sqlx::query("select pg_current_xact_id()")
        .execute(&mut *holder)
        .await
        .unwrap();
    let log = eventlog::EventLog::new(pool.clone());
    let marker = domain::StreamId::new("marker", uuid::Uuid::now_v7()).unwrap();
    log.append(eventlog::AppendRequest::single(
        marker,
        eventlog::ExpectedVersion::NoStream,
        vec![eventlog::NewEvent::new(
            "MarkerWritten",
            serde_json::json!({}),
        )],
        eventlog::Metadata::new(eventlog::Source::Cli),
    ))
    .await
    .unwrap();
    // the server names the backend once the hold has lasted a few seconds
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let named = loop {
        let text = std::fs::read_to_string(&log_path).unwrap();
        if text.contains("an open transaction holds committed events back") {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "never named: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(named.contains(&pid.to_string()), "{named}");
    // and the operators' status says the same
    let out = run(academy(dir.path()).args(["projections", "status"]));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("held back"), "{table}");
    assert!(table.contains(&format!("backend pid {pid}")), "{table}");
    holder.rollback().await.unwrap();
    pool.close().await;
    server.wait_projections_live().await;
    let status = server.terminate();
    assert!(status.success(), "{status}");
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(
        text.matches("an open transaction holds committed events back")
            .count(),
        1,
        "named once per hold: {text}"
    );
    for noise in ["closed pool", "PoolClosed", "LISTEN", "ERROR"] {
        assert!(
            !text.contains(noise),
            "an orderly stop logged {noise:?}: {text}"
        );
    }
}
