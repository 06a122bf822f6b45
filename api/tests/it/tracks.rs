//! Cohort tracks through GraphQL, with a manual clock moved by the test and the scheduled deadline worker
//! running, and notifications arriving over a real WebSocket.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use commands::{CommandExecutor, ManualClock, Metadata, Source};
use domain::Timestamp;
use domain::tracks::{AssignmentSpec, Criterion, Track, TrackCommand, TrackSpec, track_stream};
use serde_json::{Value, json};
use tokio::sync::watch;
use uuid::Uuid;
use workers::deadlines::DeadlineWorker;

use crate::subscriptions::{Socket, connect, receive, send};
use crate::{Setup, TestApp, code, data, reason};

const HOUR: TimeDelta = TimeDelta::hours(1);
const T0: Timestamp = domain::testing::at(1_800_000_000);

/// The clock's reading at `time`.
fn at(time: Timestamp) -> DateTime<Utc> {
    time.into()
}

const CREATE: &str =
    "mutation($input: CreateTrackInput!) { createTrack(input: $input) { trackId position } }";
const ENROLL: &str = "mutation($t: UUID!) { enroll(trackId: $t) { started position } }";
const SUBMIT: &str = "mutation($t: UUID!, $n: Int!, $r: String!) {
    submitSolution(trackId: $t, assignment: $n, repository: $r) { submissionId repository position } }";
const REVIEW: &str = "mutation($t: UUID!, $s: UUID!, $scores: [ScoreInput!]!, $c: String) {
    submitReview(trackId: $t, submissionId: $s, scores: $scores, comment: $c) { position } }";
const TRACK: &str = "query($t: UUID!, $p: Int) { track(id: $t, minPosition: $p) {
    status participantCount openAssignment
    assignments { number state deadline reviewMode }
    myParticipation { currentAssignment } } }";

fn track_input(min: i32) -> Value {
    json!({
        "title": "Rust in two steps",
        "description": "Ownership, then traits.",
        "minParticipants": min,
        "criteria": [
            { "name": "Correctness", "minScore": 0, "maxScore": 5 },
            { "name": "Style", "description": "Idiomatic code", "minScore": 1, "maxScore": 3 }
        ],
        "assignments": [
            { "title": "Ownership", "hours": 10 },
            { "title": "Traits", "hours": 10 }
        ]
    })
}

/// The next notification pushed on subscription `id`.
async fn pushed(socket: &mut Socket) -> Value {
    let message = receive(socket).await;
    assert_eq!(message["type"], "next", "{message}");
    assert!(message["payload"]["errors"].is_null(), "{message}");
    message["payload"]["data"]["notifications"].clone()
}

#[tokio::test]
async fn a_cohort_goes_from_enrollment_through_reviews_to_the_next_assignment() {
    let clock = Arc::new(ManualClock::new(at(T0)));
    let app = TestApp::with(Setup {
        clock: clock.clone(),
        ..Setup::default()
    })
    .await;
    let (_, admin) = app.admin().await;
    let created = data(
        app.gql(CREATE, json!({ "input": track_input(5) }), Some(&admin))
            .await,
    );
    let track = created["createTrack"]["trackId"]
        .as_str()
        .unwrap()
        .to_owned();
    let created_at = created["createTrack"]["position"].as_i64().unwrap();

    let names = ["ann", "bob", "cat", "eve", "dan"];
    let mut people = vec![];
    for name in names {
        people.push(app.user(name).await);
    }
    let token = |name: &str| {
        people[names.iter().position(|n| *n == name).unwrap()]
            .1
            .clone()
    };

    // dan follows his notifications live, from the track's creation on
    let (mut dan_socket, ack) = connect(
        &app,
        json!({ "authorization": format!("Bearer {}", token("dan")) }),
    )
    .await;
    assert_eq!(ack["type"], "connection_ack");
    send(
        &mut dan_socket,
        json!({ "id": "n", "type": "subscribe", "payload": {
            "query": "subscription($after: Int) { notifications(after: $after) { kind title body assignment position } }",
            "variables": { "after": created_at } } }),
    )
    .await;

    // enrollment; the fifth starts the track
    for (n, name) in names.iter().enumerate() {
        let enrolled = data(
            app.gql(ENROLL, json!({ "t": track }), Some(&token(name)))
                .await,
        );
        assert_eq!(enrolled["enroll"]["started"], n == 4, "{name}");
    }
    let started = pushed(&mut dan_socket).await;
    assert_eq!(started["kind"], "TRACK_STARTED");
    assert_eq!(started["assignment"], 1);
    let view = data(
        app.gql(
            TRACK,
            json!({ "t": track, "p": started["position"] }),
            Some(&token("ann")),
        )
        .await,
    );
    assert_eq!(view["track"]["status"], "RUNNING");
    assert_eq!(view["track"]["participantCount"], 5);
    assert_eq!(view["track"]["openAssignment"], 1);
    assert_eq!(view["track"]["assignments"][0]["state"], "OPEN");
    assert_eq!(
        view["track"]["assignments"][0]["deadline"],
        "2027-01-15T18:00:00+00:00"
    );
    assert_eq!(view["track"]["assignments"][1]["state"], "NOT_OPEN");
    assert_eq!(view["track"]["myParticipation"]["currentAssignment"], 1);

    // nobody leaves a started track
    let left = app
        .gql(
            "mutation($t: UUID!) { leaveTrack(trackId: $t) { position } }",
            json!({ "t": track }),
            Some(&token("ann")),
        )
        .await;
    assert_eq!(code(&left), "CONFLICT", "{left}");
    assert_eq!(reason(&left), "track_started");

    // solutions: a link that is not a repository is refused, one on a git host is normalised
    let refused = app
        .gql(
            SUBMIT,
            json!({ "t": track, "n": 1, "r": "https://example.com/ann/list" }),
            Some(&token("ann")),
        )
        .await;
    assert_eq!(code(&refused), "VALIDATION");
    assert_eq!(reason(&refused), "repository_host");
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("git host"),
        "{refused}"
    );
    for name in ["ann", "bob", "cat", "eve"] {
        let link = format!("http://GitHub.com/{name}/linked-list.git/");
        let submitted = data(
            app.gql(
                SUBMIT,
                json!({ "t": track, "n": 1, "r": link }),
                Some(&token(name)),
            )
            .await,
        );
        assert_eq!(
            submitted["submitSolution"]["repository"],
            format!("https://github.com/{name}/linked-list")
        );
    }

    // the scheduled deadline worker runs on the same clock
    let (stop_worker, worker_stopping) = watch::channel(false);
    let services = &app.state.services;
    let worker = Arc::new(DeadlineWorker::new(
        &services.app,
        services.pool.clone(),
        clock.clone(),
    ));
    let worker = tokio::spawn(worker.run_scheduled(Duration::from_secs(1), worker_stopping));

    // 80 % of the time: dan, who has not submitted, is reminded
    clock.set(at(T0 + HOUR * 8));
    let reminder = pushed(&mut dan_socket).await;
    assert_eq!(reminder["kind"], "DEADLINE_REMINDER");
    assert!(
        reminder["body"]
            .as_str()
            .unwrap()
            .contains("2027-01-15 18:00 UTC"),
        "{reminder}"
    );

    // a late link is refused once the deadline is reached
    clock.set(at(T0 + HOUR * 10));
    let late = app
        .gql(
            SUBMIT,
            json!({ "t": track, "n": 1, "r": "https://github.com/dan/late" }),
            Some(&token("dan")),
        )
        .await;
    assert_eq!(code(&late), "CONFLICT", "{late}");
    assert_eq!(reason(&late), "submission_after_deadline");
    // the worker closes the assignment: dan had nothing to review, so the next one opens to him at once
    let unlocked = pushed(&mut dan_socket).await;
    assert_eq!(
        (unlocked["kind"].as_str(), unlocked["assignment"].as_i64()),
        (Some("ASSIGNMENT_UNLOCKED"), Some(2))
    );
    let closed_at = unlocked["position"].as_i64().unwrap();
    stop_worker.send(true).unwrap();
    worker.await.unwrap().unwrap();

    let view = data(
        app.gql(
            TRACK,
            json!({ "t": track, "p": closed_at }),
            Some(&token("ann")),
        )
        .await,
    );
    assert_eq!(view["track"]["assignments"][0]["state"], "CLOSED");
    assert_eq!(view["track"]["assignments"][0]["reviewMode"], "RING");
    assert_eq!(view["track"]["assignments"][1]["state"], "OPEN");
    assert_eq!(
        view["track"]["myParticipation"]["currentAssignment"], 1,
        "ann has reviews to do"
    );

    // ann's three reviews; the next assignment is locked until the third
    let todo = data(
        app.gql(
            "query($t: UUID!, $p: Int) { reviewsToDo(trackId: $t, minPosition: $p) { submissionId repository done assignment } }",
            json!({ "t": track, "p": closed_at }),
            Some(&token("ann")),
        )
        .await,
    );
    let tasks = todo["reviewsToDo"].as_array().unwrap().clone();
    assert_eq!(tasks.len(), 3);
    assert!(
        tasks
            .iter()
            .all(|t| t["done"] == false && t["assignment"] == 1)
    );
    assert!(
        tasks
            .iter()
            .all(|t| t["repository"] != "https://github.com/ann/linked-list")
    );
    let early = app
        .gql(
            SUBMIT,
            json!({ "t": track, "n": 2, "r": "https://github.com/ann/traits" }),
            Some(&token("ann")),
        )
        .await;
    assert_eq!(code(&early), "CONFLICT", "{early}");
    assert_eq!(reason(&early), "assignment_locked");
    let out_of_range = app
        .gql(
            REVIEW,
            json!({ "t": track, "s": tasks[0]["submissionId"], "scores": [
                { "criterion": "Correctness", "score": 9 }, { "criterion": "Style", "score": 2 }] }),
            Some(&token("ann")),
        )
        .await;
    assert_eq!(code(&out_of_range), "VALIDATION", "{out_of_range}");
    assert_eq!(reason(&out_of_range), "invalid_scores");
    let wordy = app
        .gql(
            REVIEW,
            json!({ "t": track, "s": tasks[0]["submissionId"], "c": "x".repeat(5001), "scores": [
                { "criterion": "Correctness", "score": 4 }, { "criterion": "Style", "score": 2 }] }),
            Some(&token("ann")),
        )
        .await;
    assert_eq!(code(&wordy), "VALIDATION", "{wordy}");
    assert_eq!(reason(&wordy), "review_comment_length");
    let not_mine = app
        .gql(
            REVIEW,
            json!({ "t": track, "s": Uuid::now_v7(), "scores": [] }),
            Some(&token("ann")),
        )
        .await;
    assert_eq!(code(&not_mine), "NOT_FOUND", "{not_mine}");
    assert_eq!(reason(&not_mine), "solution_not_allocated");
    let mut position = 0;
    for task in &tasks {
        let reviewed = data(
            app.gql(
                REVIEW,
                json!({ "t": track, "s": task["submissionId"], "c": "Tests would help.", "scores": [
                    { "criterion": "Correctness", "score": 4 }, { "criterion": "Style", "score": 2 }] }),
                Some(&token("ann")),
            )
            .await,
        );
        position = reviewed["submitReview"]["position"].as_i64().unwrap();
    }
    // the same review again changes nothing; another one is refused
    let second = app
        .gql(
            REVIEW,
            json!({ "t": track, "s": tasks[0]["submissionId"], "scores": [
                { "criterion": "Correctness", "score": 1 }, { "criterion": "Style", "score": 1 }] }),
            Some(&token("ann")),
        )
        .await;
    assert_eq!(code(&second), "CONFLICT", "{second}");
    assert_eq!(reason(&second), "already_reviewed");
    let view = data(
        app.gql(
            TRACK,
            json!({ "t": track, "p": position }),
            Some(&token("ann")),
        )
        .await,
    );
    assert_eq!(view["track"]["myParticipation"]["currentAssignment"], 2);
    data(
        app.gql(
            SUBMIT,
            json!({ "t": track, "n": 2, "r": "https://gitlab.com/ann/traits" }),
            Some(&token("ann")),
        )
        .await,
    );

    // authors see their reviews without the reviewer
    let mut received = 0;
    for name in ["bob", "cat", "eve"] {
        let reviews = data(
            app.gql(
                "query($t: UUID!, $p: Int) { reviewsReceived(trackId: $t, minPosition: $p) { assignment comment scores { criterion score } } }",
                json!({ "t": track, "p": position }),
                Some(&token(name)),
            )
            .await,
        );
        for review in reviews["reviewsReceived"].as_array().unwrap() {
            assert_eq!(review["comment"], "Tests would help.");
            assert_eq!(
                review["scores"][0],
                json!({ "criterion": "Correctness", "score": 4 })
            );
            received += 1;
        }
    }
    assert_eq!(received, 3);
    let schema = api::graphql::sdl();
    let received_type = schema
        .split("type ReceivedReview {")
        .nth(1)
        .unwrap()
        .split('}')
        .next()
        .unwrap();
    assert!(!received_type.contains("reviewer"), "{received_type}");

    // the diary: the author and admins read it, other participants do not
    let entry = data(
        app.gql(
            "mutation($t: UUID!) { writeDiaryEntry(trackId: $t, assignment: 1, text: \"Lifetimes clicked.\") { entryId position } }",
            json!({ "t": track }),
            Some(&token("ann")),
        )
        .await,
    );
    let written = entry["writeDiaryEntry"]["position"].as_i64().unwrap();
    let ann_id = &people[0].0;
    let diary = "query($t: UUID!, $u: UUID, $p: Int) { diary(trackId: $t, userId: $u, minPosition: $p) { text assignment } }";
    let by_admin = data(
        app.gql(
            diary,
            json!({ "t": track, "u": ann_id, "p": written }),
            Some(&admin),
        )
        .await,
    );
    assert_eq!(
        by_admin["diary"],
        json!([{ "text": "Lifetimes clicked.", "assignment": 1 }])
    );
    let own = data(
        app.gql(
            diary,
            json!({ "t": track, "p": written }),
            Some(&token("ann")),
        )
        .await,
    );
    assert_eq!(own["diary"], by_admin["diary"]);
    let snooping = app
        .gql(
            diary,
            json!({ "t": track, "u": ann_id }),
            Some(&token("bob")),
        )
        .await;
    assert_eq!(code(&snooping), "FORBIDDEN");
    assert_eq!(reason(&snooping), "admin_only");
    let future = app
        .gql(
            "mutation($t: UUID!) { writeDiaryEntry(trackId: $t, assignment: 3, text: \"x\") { entryId } }",
            json!({ "t": track }),
            Some(&token("ann")),
        )
        .await;
    assert_eq!(code(&future), "CONFLICT", "{future}");
    assert_eq!(reason(&future), "assignment_not_opened");

    // admins see every participant and where each is
    let participants = "query($t: UUID!, $p: Int) { track(id: $t, minPosition: $p) { participants { username currentAssignment } } }";
    let listed = data(
        app.gql(
            participants,
            json!({ "t": track, "p": position }),
            Some(&admin),
        )
        .await,
    );
    let places: BTreeSet<(String, i64)> = listed["track"]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["username"].as_str().unwrap().to_owned(),
                p["currentAssignment"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(places.contains(&("ann".to_owned(), 2)) && places.contains(&("dan".to_owned(), 2)));
    assert!(places.contains(&("bob".to_owned(), 1)));
    let hidden = app
        .gql(participants, json!({ "t": track }), Some(&token("bob")))
        .await;
    assert_eq!(code(&hidden), "FORBIDDEN");
    assert_eq!(reason(&hidden), "admin_only");

    // dan's notifications, then all marked read
    let list = "query($p: Int) { notifications(minPosition: $p) { edges { node { id kind read } } } unreadNotificationCount(minPosition: $p) }";
    let mine = data(
        app.gql(list, json!({ "p": position }), Some(&token("dan")))
            .await,
    );
    let kinds: Vec<&str> = mine["notifications"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["ASSIGNMENT_UNLOCKED", "DEADLINE_REMINDER", "TRACK_STARTED"]
    );
    assert_eq!(mine["unreadNotificationCount"], 3);
    let marked = data(
        app.gql(
            "mutation { markNotificationsRead(all: true) { marked position } }",
            json!({}),
            Some(&token("dan")),
        )
        .await,
    );
    assert_eq!(marked["markNotificationsRead"]["marked"], 3);
    let after = data(
        app.gql(
            list,
            json!({ "p": marked["markNotificationsRead"]["position"] }),
            Some(&token("dan")),
        )
        .await,
    );
    assert_eq!(after["unreadNotificationCount"], 0);
    let foreign = app
        .gql(
            "mutation($ids: [UUID!]) { markNotificationsRead(ids: $ids) { marked } }",
            json!({ "ids": [mine["notifications"]["edges"][0]["node"]["id"]] }),
            Some(&token("ann")),
        )
        .await;
    assert_eq!(code(&foreign), "NOT_FOUND", "{foreign}");
    assert_eq!(reason(&foreign), "notification_not_found");
}

#[tokio::test]
async fn fifty_concurrent_enrollments_start_the_track_exactly_once() {
    let app = TestApp::start().await;
    let track = Uuid::now_v7();
    let log = app.executor.clone();
    let spec = TrackSpec::parse(
        "Crowded",
        "",
        50,
        None,
        vec![Criterion {
            name: "Correctness".into(),
            description: "".into(),
            min_score: 0,
            max_score: 5,
        }],
        vec![AssignmentSpec {
            title: "One".into(),
            description: "".into(),
            hours: 10,
        }],
    )
    .unwrap();
    log.execute::<Track>(
        &track_stream(track),
        &TrackCommand::Create {
            spec,
            by: Uuid::now_v7(),
            at: T0,
        },
        &Metadata::new(Source::Cli),
    )
    .await
    .unwrap();
    // five executors, as five instances of the server: they meet at the append's expected version
    let pool = app.state.services.pool.clone();
    let executors: Vec<CommandExecutor> = (0..5)
        .map(|_| CommandExecutor::new(eventlog::EventLog::new(pool.clone())).max_attempts(30))
        .collect();
    let tasks: Vec<_> = (0..50)
        .map(|n| {
            let executor = executors[n % 5].clone();
            tokio::spawn(async move {
                executor
                    .execute::<Track>(
                        &track_stream(track),
                        &TrackCommand::Enroll {
                            participant: Uuid::now_v7(),
                            at: T0 + TimeDelta::seconds(1),
                        },
                        &Metadata::new(Source::Graphql),
                    )
                    .await
            })
        })
        .collect();
    let mut last = 0;
    for task in tasks {
        let executed = task.await.unwrap().expect("every enrollment lands");
        last = last.max(executed.position().unwrap());
    }
    let started: i64 =
        sqlx::query_scalar("select count(*) from events where event_type = 'TrackStarted'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(started, 1);
    let view = data(
        app.gql(
            "query($t: UUID!, $p: Int) { track(id: $t, minPosition: $p) { status participantCount } }",
            json!({ "t": track, "p": last }),
            None,
        )
        .await,
    );
    assert_eq!(view["track"]["participantCount"], 50);
    assert_eq!(view["track"]["status"], "RUNNING");
}

#[tokio::test]
async fn malformed_tracks_are_refused_with_their_reasons() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin().await;
    let criterion = json!({ "name": "Correctness", "minScore": 0, "maxScore": 5 });
    for (field, value, why) in [
        ("title", json!(" "), "track_title_length"),
        (
            "description",
            json!("x".repeat(10_001)),
            "track_description_length",
        ),
        ("minParticipants", json!(0), "participant_limits"),
        ("assignments", json!([]), "invalid_assignments"),
        (
            "criteria",
            json!([criterion, criterion]),
            "invalid_criteria",
        ),
    ] {
        let mut input = track_input(2);
        input[field] = value;
        let body = app
            .gql(CREATE, json!({ "input": input }), Some(&admin))
            .await;
        assert_eq!(code(&body), "VALIDATION", "{field}: {body}");
        assert_eq!(reason(&body), why, "{field}");
    }
}

#[tokio::test]
async fn enrollment_submission_and_deadline_refusals_carry_their_reasons() {
    let clock = Arc::new(ManualClock::new(at(T0)));
    let app = TestApp::with(Setup {
        clock: clock.clone(),
        ..Setup::default()
    })
    .await;
    let (_, admin) = app.admin().await;
    let (_, ann) = app.user("ann").await;
    let (_, bob) = app.user("bob").await;
    let refused = |body: &Value, expected: (&str, &str)| {
        assert_eq!((code(body), reason(body)), expected, "{body}");
    };

    let nowhere = json!({ "t": Uuid::now_v7() });
    refused(
        &app.gql(ENROLL, nowhere, Some(&ann)).await,
        ("NOT_FOUND", "track_not_found"),
    );
    let mut input = track_input(1);
    input["maxParticipants"] = json!(1);
    let created = data(
        app.gql(CREATE, json!({ "input": input }), Some(&admin))
            .await,
    );
    let track = created["createTrack"]["trackId"].clone();

    // bob is not enrolled: he cannot leave, submit or write in a diary
    refused(
        &app.gql(
            "mutation($t: UUID!) { leaveTrack(trackId: $t) { position } }",
            json!({ "t": track }),
            Some(&bob),
        )
        .await,
        ("FORBIDDEN", "not_enrolled"),
    );
    let diary = "mutation($t: UUID!, $n: Int!, $x: String!) { writeDiaryEntry(trackId: $t, assignment: $n, text: $x) { entryId } }";
    refused(
        &app.gql(
            diary,
            json!({ "t": track, "n": 1, "x": "day one" }),
            Some(&bob),
        )
        .await,
        ("FORBIDDEN", "not_enrolled"),
    );

    // ann's enrollment starts the track and fills it
    let enrolled = data(app.gql(ENROLL, json!({ "t": track }), Some(&ann)).await);
    assert_eq!(enrolled["enroll"]["started"], true);
    refused(
        &app.gql(ENROLL, json!({ "t": track }), Some(&bob)).await,
        ("CONFLICT", "track_full"),
    );
    refused(
        &app.gql(
            SUBMIT,
            json!({ "t": track, "n": 1, "r": "https://github.com/bob/list" }),
            Some(&bob),
        )
        .await,
        ("FORBIDDEN", "not_enrolled"),
    );
    refused(
        &app.gql(
            SUBMIT,
            json!({ "t": track, "n": 2, "r": "https://github.com/ann/traits" }),
            Some(&ann),
        )
        .await,
        ("CONFLICT", "assignment_not_opened"),
    );
    refused(
        &app.gql(
            SUBMIT,
            json!({ "t": track, "n": 9, "r": "https://github.com/ann/nine" }),
            Some(&ann),
        )
        .await,
        ("NOT_FOUND", "assignment_not_found"),
    );
    for (link, why) in [
        ("github.com/ann/list", "repository_not_a_url"),
        ("ftp://github.com/ann/list", "repository_scheme"),
        (
            "https://ann:secret@github.com/ann/list",
            "repository_credentials",
        ),
        ("https://github.com/ann", "repository_path"),
    ] {
        refused(
            &app.gql(SUBMIT, json!({ "t": track, "n": 1, "r": link }), Some(&ann))
                .await,
            ("VALIDATION", why),
        );
    }
    refused(
        &app.gql(diary, json!({ "t": track, "n": 1, "x": "  " }), Some(&ann))
            .await,
        ("VALIDATION", "diary_entry_length"),
    );
    let extend = "mutation($t: UUID!, $d: DateTime!) { extendDeadline(trackId: $t, assignment: 1, deadline: $d) { position } }";
    refused(
        &app.gql(
            extend,
            json!({ "t": track, "d": at(T0 + HOUR).to_rfc3339() }),
            Some(&admin),
        )
        .await,
        ("VALIDATION", "deadline_not_later"),
    );
    // a date far outside any sane range is refused by the domain, not stored
    refused(
        &app.gql(
            extend,
            json!({ "t": track, "d": "+262142-12-31T23:59:59Z" }),
            Some(&admin),
        )
        .await,
        ("VALIDATION", "deadline_too_far"),
    );

    // past the first deadline nobody enrolls; once the assignment is closed its deadline stays
    clock.set(at(T0 + HOUR * 11));
    let (_, cat) = app.user("cat").await;
    refused(
        &app.gql(ENROLL, json!({ "t": track }), Some(&cat)).await,
        ("CONFLICT", "enrollment_closed"),
    );
    let track_id: Uuid = track.as_str().unwrap().parse().unwrap();
    app.executor
        .execute::<Track>(
            &track_stream(track_id),
            &TrackCommand::CloseAssignment {
                assignment: 0,
                seed: 7,
                at: T0 + HOUR * 11,
            },
            &Metadata::new(Source::Worker),
        )
        .await
        .unwrap();
    refused(
        &app.gql(
            extend,
            json!({ "t": track, "d": at(T0 + HOUR * 30).to_rfc3339() }),
            Some(&admin),
        )
        .await,
        ("CONFLICT", "assignment_closed"),
    );

    // at most 500 notifications are marked read at once
    let ids: Vec<Uuid> = (0..501).map(|_| Uuid::now_v7()).collect();
    refused(
        &app.gql(
            "mutation($ids: [UUID!]) { markNotificationsRead(ids: $ids) { marked } }",
            json!({ "ids": ids }),
            Some(&ann),
        )
        .await,
        ("VALIDATION", "mark_read_count"),
    );
}

#[tokio::test]
async fn twins_of_one_command_id_all_get_the_first_result_with_its_position() {
    let app = TestApp::start().await;
    let (_, admin) = app.admin().await;
    let created = data(
        app.gql(CREATE, json!({ "input": track_input(1) }), Some(&admin))
            .await,
    );
    let track = created["createTrack"]["trackId"].clone();
    let (_, ada) = app.user("ada").await;
    let enroll =
        "mutation($t: UUID!, $c: UUID) { enroll(trackId: $t, commandId: $c) { started position } }";
    let key = Uuid::now_v7();
    let variables = json!({ "t": track, "c": key });
    // a client retrying while its first try is in flight: every twin gets the first try's result
    let twins: Vec<_> = (0..8)
        .map(|_| app.gql(enroll, variables.clone(), Some(&ada)))
        .collect();
    let results: Vec<Value> = futures_util::future::join_all(twins)
        .await
        .into_iter()
        .map(|body| data(body)["enroll"].clone())
        .collect();
    let first = &results[0];
    assert!(first["position"].as_i64().is_some(), "{first}");
    assert_eq!(
        first["started"], true,
        "the one enrollment reached the minimum"
    );
    for twin in &results {
        assert_eq!(twin, first);
    }
    // and a replay long after
    let replayed = data(app.gql(enroll, variables, Some(&ada)).await);
    assert_eq!(&replayed["enroll"], first);
    let enrolled: i64 =
        sqlx::query_scalar("select count(*) from events where event_type = 'LearnerEnrolled'")
            .fetch_one(&app.state.services.pool)
            .await
            .unwrap();
    assert_eq!(enrolled, 1);
}
