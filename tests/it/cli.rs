use domain::StreamId;
use eventlog::{AppendRequest, EventLog, ExpectedVersion, Metadata, NewEvent, Source};
use migrations::testing::TestDb;
use serde_json::json;
use uuid::Uuid;

use crate::{academy, data_folder, run};

/// A test database holding one stream of three events; returns it with the stream id.
async fn with_events() -> (TestDb, StreamId) {
    let db = TestDb::new().await;
    let log = EventLog::new(db.pool.clone());
    let stream = StreamId::new("track", Uuid::now_v7()).unwrap();
    let events = ["TrackCreated", "LearnerEnrolled", "TrackStarted"]
        .iter()
        .enumerate()
        .map(|(n, t)| NewEvent::new(*t, json!({ "n": n })))
        .collect();
    log.append(AppendRequest::single(
        stream.clone(),
        ExpectedVersion::NoStream,
        events,
        Metadata::new(Source::Cli),
    ))
    .await
    .unwrap();
    (db, stream)
}

fn academy_on(db: &TestDb) -> (tempfile::TempDir, std::process::Command) {
    let dir = data_folder();
    let mut command = academy(dir.path());
    command.env("DATABASE_URL", db.url());
    (dir, command)
}

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn events_stream_prints_a_stream_forward_and_backward() {
    let (db, stream) = with_events().await;
    let (_dir, mut command) = academy_on(&db);
    let text = stdout(&run(command.args(["events", "stream", stream.as_str()])));
    let types: Vec<&str> = text
        .lines()
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(types, ["TrackCreated", "LearnerEnrolled", "TrackStarted"]);
    assert!(text.contains(&format!("{stream}@2")));

    let (_dir, mut command) = academy_on(&db);
    let json = stdout(&run(command.args([
        "events",
        "stream",
        stream.as_str(),
        "--backward",
        "--limit",
        "1",
        "--json",
    ])));
    let event: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(
        (event["event_type"].as_str(), event["version"].as_i64()),
        (Some("TrackStarted"), Some(3))
    );
}

#[tokio::test]
async fn a_malformed_stream_id_is_a_clear_error() {
    let (db, _) = with_events().await;
    let (_dir, mut command) = academy_on(&db);
    let out = run(command.args(["events", "stream", "Not A Stream"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("<category>-<id>"));
}

#[tokio::test]
async fn events_tail_from_the_start_follows_the_log_in_order() {
    let (db, stream) = with_events().await;
    let (_dir, mut command) = academy_on(&db);
    let out = stdout(&run(command.args([
        "events",
        "tail",
        "--from-start",
        "--limit",
        "3",
        "--json",
    ])));
    let versions: Vec<i64> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .inspect(|e| assert_eq!(e["stream_id"], stream.as_str()))
        .map(|e| e["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 3]);
}

#[tokio::test]
async fn projections_rebuild_swaps_in_a_fresh_build_and_status_shows_it() {
    let (db, _) = with_events().await;
    let (_dir, mut command) = academy_on(&db);
    let out = stdout(&run(command.args(["projections", "rebuild", "log_stats"])));
    assert!(out.contains("rebuilt log_stats: 3 events"), "{out}");
    let counted: i64 = sqlx::query_scalar("select sum(events)::bigint from log_stats.event_types")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(counted, 3);

    let (_dir, mut command) = academy_on(&db);
    let table = stdout(&run(command.args(["projections", "status"])));
    let row = table.lines().find(|l| l.starts_with("log_stats")).unwrap();
    assert!(row.contains("live") && row.contains("running"), "{row}");

    let (_dir, mut command) = academy_on(&db);
    let out = run(command.args(["projections", "rebuild", "no_such"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("known projections: log_stats"));
}

#[tokio::test]
async fn the_benchmark_prints_every_figure_next_to_its_baseline() {
    let db = TestDb::new().await;
    let (_dir, mut command) = academy_on(&db);
    let out = stdout(&run(command.args([
        "bench",
        "--json",
        "--single-commands",
        "64",
        "--batch-commands",
        "16",
        "--replay-events",
        "3000",
        "--listings",
        "200",
    ])));
    let figures: serde_json::Value = serde_json::from_str(&out).unwrap();
    for key in [
        "append_single_per_s",
        "ungrouped_single_per_s",
        "baseline_single_per_s",
        "append_batch_events_per_s",
        "ungrouped_batch_events_per_s",
        "lone_append_p50_ms",
        "lone_ungrouped_p50_ms",
        "baseline_batch_events_per_s",
        "replay_events_per_s",
        "upsert_listings_per_s",
        "baseline_upsert_per_s",
    ] {
        assert!(figures[key].as_f64().unwrap() > 0.0, "{key} in {figures}");
    }
    assert_eq!(figures["replay_events"], 3000);
    assert_eq!(
        (
            figures["upsert_listings"].as_i64(),
            figures["upsert_changed"].as_i64()
        ),
        (Some(200), Some(2)),
        "200 listings observed again, 1 % repriced: {figures}"
    );
    // the scratch database is gone again, and nothing was written to the one DATABASE_URL names
    let scratch: bool = sqlx::query_scalar(
        "select exists(select 1 from pg_database where datname like 'academy_bench_' || current_database() || '_%')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(!scratch);
    let events: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(events, 0);
}

#[tokio::test]
async fn the_read_your_writes_benchmark_checks_every_answer_is_visible_and_prints_its_latency() {
    let db = TestDb::new().await;
    let (_dir, mut command) = academy_on(&db);
    let out = stdout(&run(command.args([
        "bench",
        "--json",
        "--ryw",
        "--ryw-rate",
        "20",
        "--ryw-seconds",
        "1",
    ])));
    let figures: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(figures["ryw_commands"], 20, "{figures}");
    let (p50, p99) = (
        figures["ryw_p50_ms"].as_f64().unwrap(),
        figures["ryw_p99_ms"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99, "{figures}");
}

#[tokio::test]
async fn the_snapshot_and_index_benchmarks_print_both_sides() {
    let db = TestDb::new().await;
    let bench = |args: &[&str]| {
        let (_dir, mut command) = academy_on(&db);
        let out = stdout(&run(command.args(["bench", "--json"]).args(args)));
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    let snapshots = bench(&["--snapshots", "--snapshot-events", "500"]);
    assert!(
        snapshots["snapshot_stream_events"].as_i64().unwrap() >= 500,
        "{snapshots}"
    );
    for key in ["with_snapshots_ms", "without_snapshots_ms"] {
        assert!(
            snapshots[key].as_f64().unwrap() > 0.0,
            "{key} in {snapshots}"
        );
    }
    let indexes = bench(&["--indexes", "--single-commands", "80"]);
    let variants = indexes["index_inserts_per_s"].as_array().unwrap();
    assert_eq!(
        variants.len(),
        8,
        "every index, without each of six, none: {indexes}"
    );
    assert!(
        variants.iter().all(|v| v[1].as_f64().unwrap() > 0.0),
        "{indexes}"
    );
}

#[tokio::test]
async fn questions_import_reports_bad_rows_and_a_second_import_changes_nothing() {
    let db = TestDb::new().await;
    let (dir, _) = academy_on(&db);
    let file = dir.path().join("bank.csv");
    std::fs::write(
        &file,
        "external_id,level,topic,question,reference_answer,key_points\n\
         q1,junior,rust,What is ownership?,\"One owner, dropped at scope end.\",single owner | one owner ; scope\n\
         q2,guru,rust,What?,Because.,owner\n\
         q3,senior,sql,What is MVCC?,Row versions and snapshots.,versions ; snapshot\n",
    )
    .unwrap();
    let import = || {
        let (_here, mut command) = academy_on(&db);
        command.args(["questions", "import"]).arg(&file);
        run(&mut command)
    };
    let first = import();
    assert!(!first.status.success(), "a bad row fails the command");
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(
        out.contains("2 added, 0 edited, 0 unchanged, 1 not imported"),
        "{out}"
    );
    assert!(
        out.contains("line 3: level must be junior, middle or senior"),
        "{out}"
    );
    assert!(String::from_utf8_lossy(&first.stderr).contains("1 rows were not imported"));

    let second = import();
    assert!(String::from_utf8_lossy(&second.stdout).contains("0 added, 0 edited, 2 unchanged"));

    let (_here, mut starter) = academy_on(&db);
    let out = stdout(&run(starter.args(["questions", "import", "--starter"])));
    assert!(
        out.contains("64 added, 0 edited, 0 unchanged, 0 not imported"),
        "{out}"
    );
    let added: i64 =
        sqlx::query_scalar("select count(*) from events where event_type = 'QuestionAdded'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(added, 66);

    // a stray quote swallowing the next rows, and a line that is not UTF-8: both reported with their lines,
    // the good rows imported
    let mut bytes = b"external_id,level,topic,question,reference_answer,key_points\n".to_vec();
    bytes.extend_from_slice(b"s1,junior,rust,\"What?,Because.,owner\n");
    bytes.extend_from_slice(b"s2,junior,rust,Why?,\"Because.\",owner\n");
    bytes.extend_from_slice(b"s3,junior,rust,Wh\xff?,Because.,owner\n");
    bytes.extend_from_slice(b"s4,junior,rust,How?,Because.,owner\n");
    let broken = dir.path().join("broken.csv");
    std::fs::write(&broken, bytes).unwrap();
    let (_here, mut command) = academy_on(&db);
    let out = run(command.args(["questions", "import"]).arg(&broken));
    assert!(!out.status.success());
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.contains("1 added, 0 edited, 0 unchanged, 2 not imported"),
        "{out}"
    );
    assert!(
        out.contains("line 2: a quoted field runs on into line 3"),
        "{out}"
    );
    assert!(out.contains("line 4: not UTF-8"), "{out}");

    let (_here, mut unknown) = academy_on(&db);
    let out = run(unknown.args(["questions", "import", "bank.txt"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--format"));
}
