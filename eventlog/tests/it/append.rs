use eventlog::{AppendError, AppendRequest, ExpectedVersion, Metadata, Source, StreamAppend};
use uuid::Uuid;

use crate::{event, log, request, stream};

#[tokio::test]
async fn appends_number_events_from_one_in_each_stream() {
    let (_db, log) = log().await;
    let s = stream("thing");
    let first = log
        .append(request(
            &s,
            ExpectedVersion::NoStream,
            vec![event(1), event(2)],
        ))
        .await
        .unwrap();
    assert_eq!(first.version_of(s.as_str()), Some(2));
    let second = log
        .append(request(&s, ExpectedVersion::Exactly(2), vec![event(3)]))
        .await
        .unwrap();
    assert_eq!(second.version_of(s.as_str()), Some(3));
    assert!(second.position() > first.position());
    let stored = log.read_whole_stream(s.as_str()).await.unwrap();
    assert_eq!(
        stored.iter().map(|e| e.version).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        stored
            .iter()
            .map(|e| e.data["n"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(
        stored
            .iter()
            .all(|e| e.stream_category == "thing" && e.source == "cli")
    );
    assert_eq!(log.stream_version(s.as_str()).await.unwrap(), 3);
}

#[tokio::test]
async fn a_wrong_expected_version_is_a_conflict_with_the_actual_version() {
    let (_db, log) = log().await;
    let s = stream("thing");
    log.append(request(
        &s,
        ExpectedVersion::NoStream,
        vec![event(1), event(2)],
    ))
    .await
    .unwrap();

    let stale = log
        .append(request(&s, ExpectedVersion::Exactly(1), vec![event(3)]))
        .await;
    assert!(
        matches!(stale, Err(AppendError::Conflict { ref stream, expected: ExpectedVersion::Exactly(1), actual: 2 }) if stream == s.as_str()),
        "{stale:?}"
    );
    let exists = log
        .append(request(&s, ExpectedVersion::NoStream, vec![event(3)]))
        .await;
    assert!(matches!(
        exists,
        Err(AppendError::Conflict {
            actual: 2,
            expected: ExpectedVersion::NoStream,
            ..
        })
    ));
    let missing = log
        .append(request(
            &stream("thing"),
            ExpectedVersion::Exactly(4),
            vec![event(1)],
        ))
        .await;
    assert!(
        matches!(missing, Err(AppendError::Conflict { actual: 0, .. })),
        "{missing:?}"
    );
    // nothing of the refused appends was written
    assert_eq!(log.read_whole_stream(s.as_str()).await.unwrap().len(), 2);
}

#[tokio::test]
async fn any_version_appends_after_whatever_is_there() {
    let (_db, log) = log().await;
    let s = stream("thing");
    for n in 1..=3 {
        let appended = log
            .append(request(&s, ExpectedVersion::Any, vec![event(n)]))
            .await
            .unwrap();
        assert_eq!(appended.version_of(s.as_str()), Some(n));
    }
}

#[tokio::test]
async fn a_repeated_command_id_returns_the_first_result_and_writes_nothing() {
    let (_db, log) = log().await;
    let s = stream("thing");
    let command = Uuid::now_v7();
    let metadata = Metadata::new(Source::Graphql).command_id(command);
    let req = AppendRequest::single(
        s.clone(),
        ExpectedVersion::NoStream,
        vec![event(1), event(2)],
        metadata,
    );
    let first = log.append(req.clone()).await.unwrap();
    assert!(!first.duplicate);
    // the retry would conflict (the stream now exists) if it were not recognised as the same command
    let again = log.append(req).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.events, first.events);
    assert_eq!(log.read_whole_stream(s.as_str()).await.unwrap().len(), 2);
    assert_eq!(
        log.find_command(command).await.unwrap().unwrap().events,
        first.events
    );
}

#[tokio::test]
async fn concurrent_appends_with_one_command_id_write_once() {
    let (_db, log) = log().await;
    let command = Uuid::now_v7();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let log = log.clone();
            // different streams: without the command id, every one of them would succeed
            let req = AppendRequest::single(
                stream("thing"),
                ExpectedVersion::Any,
                vec![event(1)],
                Metadata::new(Source::Worker).command_id(command),
            );
            tokio::spawn(async move { log.append(req).await.unwrap() })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    assert_eq!(results.iter().filter(|r| !r.duplicate).count(), 1);
    assert!(results.iter().all(|r| r.events == results[0].events));
    let count: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(log.pool())
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn a_failed_append_does_not_burn_its_command_id() {
    let (_db, log) = log().await;
    let s = stream("thing");
    log.append(request(&s, ExpectedVersion::NoStream, vec![event(1)]))
        .await
        .unwrap();
    let metadata = Metadata::new(Source::Cli);
    let conflicting = AppendRequest::single(
        s.clone(),
        ExpectedVersion::NoStream,
        vec![event(2)],
        metadata.clone(),
    );
    assert!(matches!(
        log.append(conflicting).await,
        Err(AppendError::Conflict { .. })
    ));
    let retried = AppendRequest::single(
        s.clone(),
        ExpectedVersion::Exactly(1),
        vec![event(2)],
        metadata,
    );
    let appended = log.append(retried).await.unwrap();
    assert!(!appended.duplicate);
    assert_eq!(appended.version_of(s.as_str()), Some(2));
}

#[tokio::test]
async fn a_multi_stream_append_is_all_or_nothing() {
    let (_db, log) = log().await;
    let (a, b) = (stream("account"), stream("email"));
    log.append(request(&b, ExpectedVersion::NoStream, vec![event(0)]))
        .await
        .unwrap();

    let both = |expected_b| AppendRequest {
        streams: vec![
            StreamAppend {
                stream: a.clone(),
                expected: ExpectedVersion::NoStream,
                events: vec![event(1), event(2)],
            },
            StreamAppend {
                stream: b.clone(),
                expected: expected_b,
                events: vec![event(3)],
            },
        ],
        metadata: Metadata::new(Source::Graphql),
    };
    let refused = log.append(both(ExpectedVersion::NoStream)).await;
    assert!(
        matches!(refused, Err(AppendError::Conflict { ref stream, .. }) if stream == b.as_str())
    );
    assert_eq!(
        log.stream_version(a.as_str()).await.unwrap(),
        0,
        "stream a must not have been written"
    );

    let appended = log.append(both(ExpectedVersion::Exactly(1))).await.unwrap();
    assert_eq!(appended.version_of(a.as_str()), Some(2));
    assert_eq!(appended.version_of(b.as_str()), Some(2));
    let xids: std::collections::HashSet<i64> = appended.events.iter().map(|(_, e)| e.xid).collect();
    assert_eq!(xids.len(), 1, "one transaction");
}

#[tokio::test]
async fn concurrent_writers_to_one_stream_never_share_a_version() {
    let (_db, log) = log().await;
    let s = stream("thing");
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let (log, s) = (log.clone(), s.clone());
            tokio::spawn(async move {
                loop {
                    let version = log.stream_version(s.as_str()).await.unwrap();
                    match log
                        .append(request(
                            &s,
                            ExpectedVersion::Exactly(version),
                            vec![event(n)],
                        ))
                        .await
                    {
                        Ok(_) => return,
                        Err(AppendError::Conflict { .. }) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let versions: Vec<i64> = log
        .read_whole_stream(s.as_str())
        .await
        .unwrap()
        .iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(versions, (1..=20).collect::<Vec<_>>());
}

#[tokio::test]
async fn malformed_appends_are_refused_before_reaching_the_database() {
    let (_db, log) = log().await;
    let s = stream("thing");
    let empty = request(&s, ExpectedVersion::Any, vec![]);
    assert!(matches!(
        log.append(empty).await,
        Err(AppendError::Invalid(_))
    ));
    let mut twice = request(&s, ExpectedVersion::Any, vec![event(1)]);
    twice.streams.push(twice.streams[0].clone());
    assert!(matches!(
        log.append(twice).await,
        Err(AppendError::Invalid(_))
    ));
    let negative = request(&s, ExpectedVersion::Exactly(-1), vec![event(1)]);
    assert!(matches!(
        log.append(negative).await,
        Err(AppendError::Invalid(_))
    ));
}

#[tokio::test]
async fn the_database_refuses_to_change_or_delete_events() {
    let (_db, log) = log().await;
    let s = stream("thing");
    log.append(request(&s, ExpectedVersion::NoStream, vec![event(1)]))
        .await
        .unwrap();
    for sql in [
        "update events set data = '{}'",
        "delete from events",
        "truncate events",
    ] {
        let error = sqlx::query(sql).execute(log.pool()).await.unwrap_err();
        assert!(error.to_string().contains("append-only"), "{sql}: {error}");
    }
    assert_eq!(
        log.read_whole_stream(s.as_str()).await.unwrap()[0].data["n"],
        1
    );
}

#[tokio::test]
async fn metadata_is_stored_whole_and_in_columns() {
    let (_db, log) = log().await;
    let s = stream("thing");
    let correlation = Uuid::now_v7();
    let cause = Uuid::now_v7();
    let metadata = Metadata::new(Source::Telegram)
        .actor("user-42", "user")
        .correlation_id(correlation)
        .causation_id(cause);
    let command = metadata.command_id.unwrap();
    log.append(AppendRequest::single(
        s.clone(),
        ExpectedVersion::Any,
        vec![event(1)],
        metadata,
    ))
    .await
    .unwrap();
    let stored = &log.read_whole_stream(s.as_str()).await.unwrap()[0];
    assert_eq!(stored.actor_id.as_deref(), Some("user-42"));
    assert_eq!(stored.actor_role.as_deref(), Some("user"));
    assert_eq!(stored.source, "telegram");
    assert_eq!(stored.command_id, Some(command));
    assert_eq!(stored.correlation_id, Some(correlation));
    assert_eq!(stored.causation_id, Some(cause));
    assert_eq!(stored.metadata["actor_id"], "user-42");
    assert_eq!(stored.metadata["source"], "telegram");
}
