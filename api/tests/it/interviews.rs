//! Mock interviews through GraphQL with a manual clock and the deadline worker's passes: the board, race-free
//! booking, the points escrow, feedback and its automatic acceptance, notifications, and rebuilt read models.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use commands::ManualClock;
use serde_json::{Value, json};
use workers::deadlines::DeadlineWorker;

use crate::{Setup, TestApp, code, data, reason};

const HOUR: i64 = 3600;
const NOW: i64 = 1_800_000_000;

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap()
}

const PUBLISH: &str =
    "mutation($input: PublishSlotInput!) { publishSlot(input: $input) { slotId position } }";
const BOOK: &str = "mutation($s: UUID!) { bookSlot(slotId: $s) { position } }";
const POINTS: &str =
    "query($p: Int) { myPoints(minPosition: $p) { balance held earned history { kind amount } } }";

fn slot_input(role: &str, start: i64, topic: &str) -> Value {
    json!({ "input": {
        "role": role,
        "start": at(start).to_rfc3339(),
        "minutes": 60,
        "meetingLink": "https://meet.google.com/abc-defg-hij",
        "topic": topic,
        "level": "MIDDLE"
    } })
}

/// An app whose new accounts start with `points` and whose clock the test moves.
async fn app(points: i64) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(at(NOW)));
    let mut setup = Setup {
        clock: clock.clone(),
        ..Setup::default()
    };
    setup.app.signup_points = points;
    (TestApp::with(setup).await, clock)
}

async fn publish(app: &TestApp, token: &str, role: &str, start: i64, topic: &str) -> (String, i64) {
    let published = data(
        app.gql(PUBLISH, slot_input(role, start, topic), Some(token))
            .await,
    );
    (
        published["publishSlot"]["slotId"]
            .as_str()
            .unwrap()
            .to_owned(),
        published["publishSlot"]["position"].as_i64().unwrap(),
    )
}

/// One pass of the deadline worker, once the read models have everything.
/// How many interview timers a pass fired that wrote events.
fn interview_actions(pass: &workers::deadlines::Pass) -> usize {
    pass.done_of(&domain::interviews::InterviewTimer::ALL.map(|t| t.as_str()))
}

async fn worker_pass(app: &TestApp, clock: &Arc<ManualClock>) -> workers::deadlines::Pass {
    let services = &app.state.services;
    let head = services.projections.head().await.unwrap();
    services
        .projections
        .wait_for(head, Duration::from_secs(30))
        .await
        .unwrap();
    DeadlineWorker::new(&services.app, services.pool.clone(), clock.clone())
        .pass()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_interview_goes_from_the_board_to_a_paid_point() {
    let (app, clock) = app(3).await;
    let (_, ann) = app.user("ann").await;
    let (_, bob) = app.user("bob").await;
    let start = NOW + 48 * HOUR;

    // a bad meeting link is a clear validation error
    let mut bad = slot_input("INTERVIEWER", start, "rust");
    bad["input"]["meetingLink"] = json!("https://example.com/room");
    let refused = app.gql(PUBLISH, bad, Some(&ann)).await;
    assert_eq!(code(&refused), "VALIDATION");
    assert_eq!(reason(&refused), "invalid_meeting_link");
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Google Meet")
    );

    let (slot, published) = publish(&app, &ann, "INTERVIEWER", start, "Rust").await;
    // the board shows it to bob (who wants to be interviewed), not to ann, and hides the link
    let board = "query($p: Int, $r: InterviewRole) { board(roleWanted: $r, minPosition: $p) { edges { node { id topic meetingLink ownerRole } } } }";
    let seen = data(
        app.gql(
            board,
            json!({ "p": published, "r": "INTERVIEWEE" }),
            Some(&bob),
        )
        .await,
    );
    assert_eq!(seen["board"]["edges"][0]["node"]["id"], slot);
    assert_eq!(
        seen["board"]["edges"][0]["node"]["meetingLink"],
        Value::Null
    );
    let other_role = data(
        app.gql(
            board,
            json!({ "p": published, "r": "INTERVIEWER" }),
            Some(&bob),
        )
        .await,
    );
    assert_eq!(other_role["board"]["edges"], json!([]));
    let own = data(app.gql(board, json!({ "p": published }), Some(&ann)).await);
    assert_eq!(own["board"]["edges"], json!([]));

    // ann cannot book her own slot; bob books it and 3 of his points are held
    let own_slot = app.gql(BOOK, json!({ "s": slot }), Some(&ann)).await;
    assert_eq!(code(&own_slot), "FORBIDDEN");
    assert_eq!(reason(&own_slot), "own_slot");
    let booked = data(app.gql(BOOK, json!({ "s": slot }), Some(&bob)).await);
    let position = booked["bookSlot"]["position"].as_i64().unwrap();
    let points = data(app.gql(POINTS, json!({ "p": position }), Some(&bob)).await);
    assert_eq!(
        (
            points["myPoints"]["balance"].as_i64(),
            points["myPoints"]["held"].as_i64()
        ),
        (Some(0), Some(3))
    );
    let mine = data(
        app.gql(
            "query($p: Int) { mySlots(minPosition: $p) { status myRole meetingLink } }",
            json!({ "p": position }),
            Some(&bob),
        )
        .await,
    );
    assert_eq!(mine["mySlots"][0]["status"], "BOOKED");
    assert_eq!(mine["mySlots"][0]["myRole"], "INTERVIEWEE");
    assert_eq!(
        mine["mySlots"][0]["meetingLink"],
        "https://meet.google.com/abc-defg-hij"
    );

    // reminders 24 h and 1 h before, once each; then the end moves it to awaiting feedback
    clock.set(at(start - 24 * HOUR));
    assert_eq!(interview_actions(&worker_pass(&app, &clock).await), 1);
    assert_eq!(interview_actions(&worker_pass(&app, &clock).await), 0);
    clock.set(at(start - HOUR));
    assert_eq!(interview_actions(&worker_pass(&app, &clock).await), 1);
    let feedback = "mutation($s: UUID!) { giveFeedback(slotId: $s, score: 4, text: \"Clear thinking.\") { position } }";
    let early = app.gql(feedback, json!({ "s": slot }), Some(&ann)).await;
    assert_eq!(code(&early), "CONFLICT", "not ended yet");
    assert_eq!(reason(&early), "interview_not_ended");
    clock.set(at(start + HOUR));
    assert_eq!(interview_actions(&worker_pass(&app, &clock).await), 1);

    // the interviewer's feedback, bob's acceptance: his points are paid, ann earns one
    let by_interviewee = app.gql(feedback, json!({ "s": slot }), Some(&bob)).await;
    assert_eq!(code(&by_interviewee), "FORBIDDEN");
    assert_eq!(reason(&by_interviewee), "not_interviewer");
    data(app.gql(feedback, json!({ "s": slot }), Some(&ann)).await);
    let accepted = data(
        app.gql(
            "mutation($s: UUID!) { acceptFeedback(slotId: $s) { position } }",
            json!({ "s": slot }),
            Some(&bob),
        )
        .await,
    );
    let position = accepted["acceptFeedback"]["position"].as_i64().unwrap();
    let bob_points = data(app.gql(POINTS, json!({ "p": position }), Some(&bob)).await);
    assert_eq!(bob_points["myPoints"]["balance"], 0);
    assert_eq!(bob_points["myPoints"]["held"], 0);
    // a bad page size names the argument the client sent
    let too_long = app
        .gql(
            "{ myPoints(history: 0) { balance } }",
            json!({}),
            Some(&bob),
        )
        .await;
    assert_eq!(code(&too_long), "VALIDATION");
    assert_eq!(
        too_long["errors"][0]["message"],
        "history must be between 1 and 100"
    );
    let kinds: Vec<&str> = bob_points["myPoints"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["CAPTURED", "HELD", "GRANTED"]);
    let ann_points = data(app.gql(POINTS, json!({ "p": position }), Some(&ann)).await);
    assert_eq!(
        (
            ann_points["myPoints"]["balance"].as_i64(),
            ann_points["myPoints"]["earned"].as_i64()
        ),
        (Some(4), Some(1))
    );

    // notifications on both sides
    let list = "query($p: Int) { notifications(minPosition: $p) { edges { node { kind } } } }";
    let kinds = |body: &Value| -> Vec<String> {
        body["notifications"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    let ann_seen = data(app.gql(list, json!({ "p": position }), Some(&ann)).await);
    assert_eq!(
        kinds(&ann_seen),
        [
            "POINT_EARNED",
            "INTERVIEW_REMINDER",
            "INTERVIEW_REMINDER",
            "SLOT_BOOKED"
        ]
    );
    let bob_seen = data(app.gql(list, json!({ "p": position }), Some(&bob)).await);
    assert_eq!(
        kinds(&bob_seen),
        [
            "FEEDBACK_RECEIVED",
            "INTERVIEW_REMINDER",
            "INTERVIEW_REMINDER"
        ]
    );

    // rebuilding the interview read models gives the same rows
    for name in ["interviews", "deadlines", "notifications"] {
        let before = snapshot(&app, name).await;
        let projection = app
            .state
            .services
            .projections
            .projections()
            .into_iter()
            .find(|p| p.name() == name)
            .unwrap();
        let log = eventlog::EventLog::new(app.state.services.pool.clone());
        projections::rebuild(log, projection, projections::RunnerConfig::default())
            .await
            .unwrap();
        assert_eq!(snapshot(&app, name).await, before, "{name} rebuilt differs");
    }
}

#[tokio::test]
async fn a_stored_status_or_kind_the_domain_does_not_know_is_an_error_never_a_default() {
    let (app, _clock) = app(3).await;
    let (_, ann) = app.user("ann").await;
    let (slot, position) = publish(&app, &ann, "INTERVIEWER", NOW + 48 * HOUR, "Rust").await;
    let status = "query($s: UUID!, $p: Int) { slot(id: $s, minPosition: $p) { status } }";
    let vars = json!({ "s": slot, "p": position });
    let seen = data(app.gql(status, vars.clone(), Some(&ann)).await);
    assert_eq!(seen["slot"]["status"], "OPEN");
    let points = data(app.gql(POINTS, json!({ "p": position }), Some(&ann)).await);
    assert_eq!(points["myPoints"]["history"][0]["kind"], "GRANTED");

    let pool = &app.state.services.pool;
    sqlx::query("update interviews.slots set status = 'lost'")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("update interviews.entries set kind = 'gifted'")
        .execute(pool)
        .await
        .unwrap();
    let unknown = app.gql(status, vars, Some(&ann)).await;
    assert_eq!(code(&unknown), "INTERNAL", "{unknown}");
    let unknown = app.gql(POINTS, json!({ "p": position }), Some(&ann)).await;
    assert_eq!(code(&unknown), "INTERNAL", "{unknown}");
}

/// Every row of every table in `schema`, as JSON, in a stable order.
async fn snapshot(app: &TestApp, schema: &str) -> Vec<(String, Vec<Value>)> {
    let pool = &app.state.services.pool;
    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables where table_schema = $1 order by 1",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .unwrap();
    let mut rows = vec![];
    for table in tables {
        let sql = format!("select to_jsonb(t) from {schema}.{table} t order by t::text");
        let values: Vec<Value> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await
            .unwrap();
        rows.push((table, values));
    }
    rows
}

#[tokio::test]
async fn unanswered_feedback_is_accepted_for_the_interviewee_and_a_missing_one_refunds_them() {
    let (app, clock) = app(6).await;
    let (_, ann) = app.user("ann").await;
    let (_, bob) = app.user("bob").await;
    let start = NOW + 10 * HOUR;
    let (answered, _) = publish(&app, &ann, "INTERVIEWER", start, "sql").await;
    let (silent, _) = publish(&app, &ann, "INTERVIEWER", start + 2 * HOUR, "sql").await;
    for slot in [&answered, &silent] {
        data(app.gql(BOOK, json!({ "s": slot }), Some(&bob)).await);
    }
    clock.set(at(start + 4 * HOUR));
    worker_pass(&app, &clock).await;
    let feedback =
        "mutation($s: UUID!) { giveFeedback(slotId: $s, score: 5, text: \"Great.\") { position } }";
    data(
        app.gql(feedback, json!({ "s": answered }), Some(&ann))
            .await,
    );
    // 72 h later: the feedback nobody answered is accepted, the interview without feedback refunds bob
    clock.set(at(start + 4 * HOUR + 72 * HOUR));
    let pass = worker_pass(&app, &clock).await;
    assert_eq!((interview_actions(&pass), pass.failed), (2, 0));
    let head = app.state.services.projections.head().await.unwrap();
    let bob_points = data(app.gql(POINTS, json!({ "p": head }), Some(&bob)).await);
    assert_eq!(
        (
            bob_points["myPoints"]["balance"].as_i64(),
            bob_points["myPoints"]["held"].as_i64()
        ),
        (Some(3), Some(0))
    );
    let ann_points = data(app.gql(POINTS, json!({ "p": head }), Some(&ann)).await);
    assert_eq!(ann_points["myPoints"]["earned"], 1);
    let statuses = data(
        app.gql(
            "query($p: Int) { mySlots(minPosition: $p) { status } }",
            json!({ "p": head }),
            Some(&bob),
        )
        .await,
    );
    assert_eq!(
        statuses["mySlots"],
        json!([{ "status": "ACCEPTED" }, { "status": "FEEDBACK_EXPIRED" }])
    );
}

#[tokio::test]
async fn twenty_concurrent_bookings_of_one_slot_give_exactly_one_booking() {
    let (app, _clock) = app(3).await;
    let (_, owner) = app.user("owner").await;
    let (slot, _) = publish(&app, &owner, "INTERVIEWER", NOW + 48 * HOUR, "go").await;
    let mut tokens = vec![];
    for n in 0..20 {
        tokens.push(app.user(&format!("booker{n}")).await.1);
    }
    let app = Arc::new(app);
    let tasks: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            let (app, slot) = (app.clone(), slot.clone());
            tokio::spawn(async move { app.gql(BOOK, json!({ "s": slot }), Some(&token)).await })
        })
        .collect();
    let mut booked = 0;
    for task in tasks {
        let body = task.await.unwrap();
        if body["errors"].is_null() {
            booked += 1;
        } else {
            assert_eq!(code(&body), "CONFLICT", "{body}");
            assert_eq!(reason(&body), "slot_already_booked", "{body}");
        }
    }
    assert_eq!(booked, 1);
    let held: i64 =
        sqlx::query_scalar("select count(*) from events where event_type = 'PointsHeld'")
            .fetch_one(&app.state.services.pool)
            .await
            .unwrap();
    assert_eq!(held, 1);
}

#[tokio::test]
async fn overlapping_bookings_and_overdrawn_points_are_refused_even_at_once() {
    let (app, _clock) = app(3).await;
    let mut token = std::collections::HashMap::new();
    for name in ["ann", "cat", "bob", "dan", "fay", "eve"] {
        token.insert(name, app.user(name).await.1);
    }
    let start = NOW + 48 * HOUR;

    // bob has exactly 3 points: two bookings as interviewee at once give exactly one
    let (first, _) = publish(&app, &token["ann"], "INTERVIEWER", start, "rust").await;
    let (later, _) = publish(&app, &token["cat"], "INTERVIEWER", start + 5 * HOUR, "rust").await;
    let app = Arc::new(app);
    let attempts: Vec<_> = [first, later]
        .into_iter()
        .map(|slot| {
            let (app, bob) = (app.clone(), token["bob"].clone());
            tokio::spawn(async move { app.gql(BOOK, json!({ "s": slot }), Some(&bob)).await })
        })
        .collect();
    let mut outcomes = vec![];
    for attempt in attempts {
        outcomes.push(attempt.await.unwrap());
    }
    assert_eq!(
        outcomes.iter().filter(|b| b["errors"].is_null()).count(),
        1,
        "{outcomes:?}"
    );
    let refused = outcomes.iter().find(|b| !b["errors"].is_null()).unwrap();
    assert_eq!(code(refused), "CONFLICT");
    assert_eq!(reason(refused), "insufficient_points");
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("needs 3 points and has 0"),
        "{refused}"
    );
    let head = app.state.services.projections.head().await.unwrap();
    let points = data(
        app.gql(POINTS, json!({ "p": head }), Some(&token["bob"]))
            .await,
    );
    assert_eq!(
        (
            points["myPoints"]["balance"].as_i64(),
            points["myPoints"]["held"].as_i64()
        ),
        (Some(0), Some(3))
    );

    // eve holds an interview from start + 20 h; one starting half an hour later is refused
    let (d1, _) = publish(&app, &token["dan"], "INTERVIEWER", start + 20 * HOUR, "go").await;
    let (f1, _) = publish(
        &app,
        &token["fay"],
        "INTERVIEWEE",
        start + 20 * HOUR + 30 * 60,
        "go",
    )
    .await;
    data(app.gql(BOOK, json!({ "s": d1 }), Some(&token["eve"])).await);
    let overlap = app.gql(BOOK, json!({ "s": f1 }), Some(&token["eve"])).await;
    assert_eq!(code(&overlap), "CONFLICT", "{overlap}");
    assert_eq!(reason(&overlap), "interview_overlap");
    assert!(
        overlap["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("already have an interview"),
        "{overlap}"
    );
    // and dan, who holds the same interview as the publisher, cannot be booked over it either
    let (d2, _) = publish(&app, &token["fay"], "INTERVIEWER", start + 30 * HOUR, "go").await;
    let own_overlap = app
        .gql(
            PUBLISH,
            slot_input("INTERVIEWER", start + 20 * HOUR + 15 * 60, "go"),
            Some(&token["dan"]),
        )
        .await;
    assert_eq!(code(&own_overlap), "CONFLICT", "{own_overlap}");
    assert_eq!(reason(&own_overlap), "interview_overlap");
    data(app.gql(BOOK, json!({ "s": d2 }), Some(&token["dan"])).await);
}

#[tokio::test]
async fn cancelling_before_the_cutoff_refunds_and_a_no_show_of_the_interviewer_refunds_too() {
    let (app, clock) = app(3).await;
    let (_, ann) = app.user("ann").await;
    let (_, bob) = app.user("bob").await;
    let start = NOW + 48 * HOUR;
    let cancel = "mutation($s: UUID!) { cancelSlot(slotId: $s) { position } }";
    let (slot, _) = publish(&app, &ann, "INTERVIEWER", start, "rust").await;
    data(app.gql(BOOK, json!({ "s": slot }), Some(&bob)).await);
    // the booker cancels: refunded, and the slot is back on the board
    let cancelled = data(app.gql(cancel, json!({ "s": slot }), Some(&bob)).await);
    let position = cancelled["cancelSlot"]["position"].as_i64().unwrap();
    let points = data(app.gql(POINTS, json!({ "p": position }), Some(&bob)).await);
    assert_eq!(
        (
            points["myPoints"]["balance"].as_i64(),
            points["myPoints"]["held"].as_i64()
        ),
        (Some(3), Some(0))
    );
    let status = "query($s: UUID!, $p: Int) { slot(id: $s, minPosition: $p) { status } }";
    assert_eq!(
        data(
            app.gql(status, json!({ "s": slot, "p": position }), Some(&ann))
                .await
        )["slot"]["status"],
        "OPEN"
    );
    // booked again; past the cut-off nobody cancels
    data(app.gql(BOOK, json!({ "s": slot }), Some(&bob)).await);
    clock.set(at(start - HOUR));
    let too_late = app.gql(cancel, json!({ "s": slot }), Some(&ann)).await;
    assert_eq!(code(&too_late), "CONFLICT");
    assert_eq!(reason(&too_late), "cancel_cutoff_passed");
    // the interviewer does not show up: bob reports it; uncontested for 24 h, it settles and refunds him
    clock.set(at(start + 2 * HOUR));
    let report = "mutation($s: UUID!) { reportNoShow(slotId: $s) { position } }";
    data(app.gql(report, json!({ "s": slot }), Some(&bob)).await);
    let counter = app.gql(report, json!({ "s": slot }), Some(&ann)).await;
    assert_eq!(code(&counter), "CONFLICT", "no counter-report");
    assert_eq!(reason(&counter), "no_show_already_reported");
    clock.set(at(start + 26 * HOUR));
    assert_eq!(interview_actions(&worker_pass(&app, &clock).await), 1);
    let head = app.state.services.projections.head().await.unwrap();
    let points = data(app.gql(POINTS, json!({ "p": head }), Some(&bob)).await);
    assert_eq!(
        (
            points["myPoints"]["balance"].as_i64(),
            points["myPoints"]["held"].as_i64()
        ),
        (Some(3), Some(0))
    );
    assert_eq!(
        data(
            app.gql(status, json!({ "s": slot, "p": head }), Some(&ann))
                .await
        )["slot"]["status"],
        "NO_SHOW"
    );
    // nothing is due for it any more: the worker does nothing
    let pass = worker_pass(&app, &clock).await;
    assert_eq!((interview_actions(&pass), pass.failed), (0, 0));
}

#[tokio::test]
async fn bookings_from_several_instances_meet_at_the_append() {
    use commands::interviews::Interviews;
    use commands::{Actor, CommandError, CommandExecutor, Request, Source};
    use domain::interviews::{InterviewError, Policy};

    let (app, _clock) = app(3).await;
    let (_, token) = app.user("owner").await;
    // the publisher is the interviewee: their 3 points are held by whichever booking wins
    let (slot, _) = publish(&app, &token, "INTERVIEWEE", NOW + 48 * HOUR, "go").await;
    let slot: uuid::Uuid = slot.parse().unwrap();
    let pool = app.state.services.pool.clone();
    // four executors, as four server instances: no in-process queue between them
    let instances: Vec<Interviews> = (0..4)
        .map(|_| {
            let executor =
                CommandExecutor::new(eventlog::EventLog::new(pool.clone())).max_attempts(30);
            Interviews::new(executor, Policy::default())
        })
        .collect();
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let interviews = instances[n % 4].clone();
            tokio::spawn(async move {
                let booker = Actor::User {
                    id: uuid::Uuid::now_v7(),
                    role: domain::identity::Role::User,
                };
                let at = chrono::DateTime::from_timestamp(NOW + HOUR, 0).unwrap();
                let request = Request::new(booker, Source::Graphql, at);
                interviews.book_slot(&request, slot).await
            })
        })
        .collect();
    let mut booked = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(done) if !done.events.is_empty() => booked += 1,
            Err(CommandError::Rejected(InterviewError::AlreadyBooked)) => {}
            other => panic!("unexpected {:?}", other.map(|d| d.events)),
        }
    }
    assert_eq!(booked, 1);
    let held: i64 =
        sqlx::query_scalar("select count(*) from events where event_type = 'PointsHeld'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(held, 1);
}

#[tokio::test]
async fn text_with_a_nul_character_is_refused_as_invalid() {
    let (app, _clock) = app(3).await;
    let (_, ann) = app.user("ann").await;
    let refused = app
        .gql(
            PUBLISH,
            slot_input("INTERVIEWER", NOW + 48 * HOUR, "ru\u{0}st"),
            Some(&ann),
        )
        .await;
    assert_eq!(code(&refused), "VALIDATION", "{refused}");
    assert_eq!(reason(&refused), "nul_character");
    let literal = app
        .gql("mutation { writeDiaryEntry(trackId: \"00000000-0000-0000-0000-000000000000\", assignment: 1, text: \"a\\u0000b\") { entryId } }", json!({}), Some(&ann))
        .await;
    assert_eq!(code(&literal), "VALIDATION", "{literal}");
    assert_eq!(reason(&literal), "nul_character");
}

#[tokio::test]
async fn a_contested_no_show_waits_for_an_admin_who_settles_it() {
    let (app, clock) = app(3).await;
    let (_, admin) = app.admin().await;
    let (_, ann) = app.user("ann").await;
    let (_, bob) = app.user("bob").await;
    let start = NOW + 48 * HOUR;
    let (slot, _) = publish(&app, &ann, "INTERVIEWER", start, "rust").await;
    data(app.gql(BOOK, json!({ "s": slot }), Some(&bob)).await);
    // the interviewer claims bob never came; bob says he was there
    clock.set(at(start + 30 * 60));
    data(
        app.gql(
            "mutation($s: UUID!) { reportNoShow(slotId: $s) { position } }",
            json!({ "s": slot }),
            Some(&ann),
        )
        .await,
    );
    let contest =
        "mutation($s: UUID!, $r: String!) { contestNoShow(slotId: $s, reason: $r) { position } }";
    let by_reporter = app
        .gql(contest, json!({ "s": slot, "r": "x" }), Some(&ann))
        .await;
    assert_eq!(code(&by_reporter), "FORBIDDEN");
    assert_eq!(reason(&by_reporter), "not_accused");
    let contested = data(
        app.gql(
            contest,
            json!({ "s": slot, "r": "I waited in the room" }),
            Some(&bob),
        )
        .await,
    );
    let position = contested["contestNoShow"]["position"].as_i64().unwrap();
    // nothing settles by itself now, and bob's points stay held
    clock.set(at(start + 30 * HOUR));
    assert_eq!(interview_actions(&worker_pass(&app, &clock).await), 0);
    let list =
        "query($p: Int) { contestedNoShows(minPosition: $p) { id noShowAbsent noShowContest } }";
    let waiting = data(app.gql(list, json!({ "p": position }), Some(&admin)).await);
    assert_eq!(
        waiting["contestedNoShows"],
        json!([{ "id": slot, "noShowAbsent": "INTERVIEWEE", "noShowContest": "I waited in the room" }])
    );
    let by_user = app.gql(list, json!({}), Some(&bob)).await;
    assert_eq!(code(&by_user), "FORBIDDEN");
    assert_eq!(reason(&by_user), "admin_only");
    // the admin finds the interviewer was the one missing: bob is refunded
    let resolve =
        "mutation($s: UUID!) { resolveNoShow(slotId: $s, absent: INTERVIEWER) { position } }";
    let resolved = data(app.gql(resolve, json!({ "s": slot }), Some(&admin)).await);
    let position = resolved["resolveNoShow"]["position"].as_i64().unwrap();
    let points = data(app.gql(POINTS, json!({ "p": position }), Some(&bob)).await);
    assert_eq!(
        (
            points["myPoints"]["balance"].as_i64(),
            points["myPoints"]["held"].as_i64()
        ),
        (Some(3), Some(0))
    );
    let ann_points = data(app.gql(POINTS, json!({ "p": position }), Some(&ann)).await);
    assert_eq!(ann_points["myPoints"]["earned"], 0);
    let after = data(app.gql(list, json!({ "p": position }), Some(&admin)).await);
    assert_eq!(after["contestedNoShows"], json!([]));
}

/// Asserts that `body` is a refusal with this code and reason.
fn refused(body: &Value, expected: (&str, &str)) {
    assert_eq!((code(body), reason(body)), expected, "{body}");
}

#[tokio::test]
async fn publishing_and_booking_refusals_carry_their_reasons() {
    let (app, clock) = app(3).await;
    let mut token = std::collections::HashMap::new();
    for name in ["ann", "bob", "cat", "dan", "eve", "fay", "hal"] {
        token.insert(name, app.user(name).await.1);
    }
    let start = NOW + 48 * HOUR;
    for (field, value, why) in [
        ("minutes", json!(5), "interview_duration"),
        ("topic", json!(" "), "topic_length"),
        (
            "start",
            json!(at(NOW - HOUR).to_rfc3339()),
            "start_not_ahead",
        ),
    ] {
        let mut input = slot_input("INTERVIEWER", start, "rust");
        input["input"][field] = value;
        refused(
            &app.gql(PUBLISH, input, Some(&token["ann"])).await,
            ("VALIDATION", why),
        );
    }
    let nowhere = json!({ "s": "00000000-0000-0000-0000-0000000000ef" });
    refused(
        &app.gql(BOOK, nowhere.clone(), Some(&token["bob"])).await,
        ("NOT_FOUND", "slot_not_found"),
    );
    refused(
        &app.gql(
            "mutation($s: UUID!) { cancelSlot(slotId: $s) { position } }",
            nowhere,
            Some(&token["bob"]),
        )
        .await,
        ("NOT_FOUND", "slot_not_found"),
    );

    // ann publishes, then books cat's interview half an hour later: bob cannot book her over it
    let (busy, _) = publish(&app, &token["ann"], "INTERVIEWER", start, "rust").await;
    let (cat_slot, _) = publish(&app, &token["cat"], "INTERVIEWER", start + 30 * 60, "rust").await;
    data(
        app.gql(BOOK, json!({ "s": cat_slot }), Some(&token["ann"]))
            .await,
    );
    refused(
        &app.gql(BOOK, json!({ "s": busy }), Some(&token["bob"]))
            .await,
        ("CONFLICT", "publisher_busy"),
    );
    refused(
        &app.gql(
            "mutation($s: UUID!) { cancelSlot(slotId: $s) { position } }",
            json!({ "s": busy }),
            Some(&token["cat"]),
        )
        .await,
        ("FORBIDDEN", "not_a_party"),
    );

    // dan publishes as interviewee, then spends his points on eve's interview: his slot cannot be booked
    let (broke, _) = publish(&app, &token["dan"], "INTERVIEWEE", start + 10 * HOUR, "go").await;
    let (eve_slot, _) = publish(&app, &token["eve"], "INTERVIEWER", start + 20 * HOUR, "go").await;
    data(
        app.gql(BOOK, json!({ "s": eve_slot }), Some(&token["dan"]))
            .await,
    );
    refused(
        &app.gql(BOOK, json!({ "s": broke }), Some(&token["bob"]))
            .await,
        ("CONFLICT", "publisher_cannot_pay"),
    );

    // a withdrawn slot is not open; a slot whose start has passed is not booked any more
    let (withdrawn, _) =
        publish(&app, &token["fay"], "INTERVIEWER", start + 30 * HOUR, "sql").await;
    data(
        app.gql(
            "mutation($s: UUID!) { cancelSlot(slotId: $s) { position } }",
            json!({ "s": withdrawn }),
            Some(&token["fay"]),
        )
        .await,
    );
    refused(
        &app.gql(BOOK, json!({ "s": withdrawn }), Some(&token["bob"]))
            .await,
        ("CONFLICT", "slot_not_open"),
    );
    let (soon, _) = publish(&app, &token["hal"], "INTERVIEWER", NOW + 2 * HOUR, "sql").await;
    clock.set(at(NOW + 3 * HOUR));
    refused(
        &app.gql(BOOK, json!({ "s": soon }), Some(&token["bob"]))
            .await,
        ("CONFLICT", "interview_started"),
    );
}

#[tokio::test]
async fn feedback_and_no_show_refusals_carry_their_reasons() {
    let (app, clock) = app(9).await;
    let (_, admin) = app.admin().await;
    let (_, ann) = app.user("ann").await;
    let (_, bob) = app.user("bob").await;
    let start = NOW + 48 * HOUR;
    let mut slots = vec![];
    for offset in [0, 5, 10] {
        let (slot, _) = publish(&app, &ann, "INTERVIEWER", start + offset * HOUR, "rust").await;
        data(app.gql(BOOK, json!({ "s": slot }), Some(&bob)).await);
        slots.push(slot);
    }
    let (first, second, third) = (&slots[0], &slots[1], &slots[2]);
    let mutation = |name: &str, arguments: &str| {
        format!("mutation($s: UUID!) {{ {name}(slotId: $s{arguments}) {{ position }} }}")
    };

    // before the start: no no-show report, nothing to contest, no feedback to answer
    refused(
        &app.gql(
            &mutation("reportNoShow", ""),
            json!({ "s": first }),
            Some(&bob),
        )
        .await,
        ("CONFLICT", "no_show_window"),
    );
    refused(
        &app.gql(
            &mutation("contestNoShow", ", reason: \"I was there\""),
            json!({ "s": first }),
            Some(&bob),
        )
        .await,
        ("NOT_FOUND", "no_show_not_reported"),
    );
    refused(
        &app.gql(
            &mutation("acceptFeedback", ""),
            json!({ "s": first }),
            Some(&bob),
        )
        .await,
        ("CONFLICT", "no_feedback"),
    );
    refused(
        &app.gql(
            &mutation("acceptFeedback", ""),
            json!({ "s": first }),
            Some(&ann),
        )
        .await,
        ("FORBIDDEN", "not_interviewee"),
    );

    // after the first interview: feedback within its bounds, once
    clock.set(at(start + 2 * HOUR));
    refused(
        &app.gql(
            &mutation("giveFeedback", ", score: 9, text: \"Great.\""),
            json!({ "s": first }),
            Some(&ann),
        )
        .await,
        ("VALIDATION", "invalid_feedback"),
    );
    data(
        app.gql(
            &mutation("giveFeedback", ", score: 4, text: \"Great.\""),
            json!({ "s": first }),
            Some(&ann),
        )
        .await,
    );
    refused(
        &app.gql(
            &mutation("giveFeedback", ", score: 3, text: \"On second thought.\""),
            json!({ "s": first }),
            Some(&ann),
        )
        .await,
        ("CONFLICT", "feedback_already_given"),
    );
    refused(
        &app.gql(
            &mutation("disputeFeedback", ", reason: \"  \""),
            json!({ "s": first }),
            Some(&bob),
        )
        .await,
        ("VALIDATION", "reason_length"),
    );
    refused(
        &app.gql(
            &mutation("cancelSlot", ""),
            json!({ "s": first }),
            Some(&bob),
        )
        .await,
        ("CONFLICT", "not_cancellable"),
    );

    // the third: bob reports ann absent; nobody contested, so there is nothing to resolve, and after 24 h the
    // report can no longer be contested
    clock.set(at(start + 10 * HOUR + 30 * 60));
    data(
        app.gql(
            &mutation("reportNoShow", ""),
            json!({ "s": third }),
            Some(&bob),
        )
        .await,
    );
    refused(
        &app.gql(
            &mutation("resolveNoShow", ", absent: INTERVIEWER"),
            json!({ "s": third }),
            Some(&admin),
        )
        .await,
        ("CONFLICT", "no_show_not_contested"),
    );
    clock.set(at(start + 10 * HOUR + 30 * 60 + 25 * HOUR));
    refused(
        &app.gql(
            &mutation("contestNoShow", ", reason: \"I was there\""),
            json!({ "s": third }),
            Some(&ann),
        )
        .await,
        ("CONFLICT", "no_show_contest_closed"),
    );

    // the second: feedback comes too late once the feedback window has passed
    clock.set(at(start + 6 * HOUR + 73 * HOUR));
    refused(
        &app.gql(
            &mutation("giveFeedback", ", score: 4, text: \"Late.\""),
            json!({ "s": second }),
            Some(&ann),
        )
        .await,
        ("CONFLICT", "feedback_window_closed"),
    );
}
