use eventlog::{Checkpoint, Direction, ExpectedVersion};

use crate::{event, log, request, stream};

#[tokio::test]
async fn a_stream_reads_forward_and_backward_from_a_version() {
    let (_db, log) = log().await;
    let s = stream("thing");
    log.append(request(
        &s,
        ExpectedVersion::NoStream,
        (1..=5).map(event).collect(),
    ))
    .await
    .unwrap();
    let versions =
        |events: Vec<eventlog::RecordedEvent>| events.iter().map(|e| e.version).collect::<Vec<_>>();
    assert_eq!(
        versions(
            log.read_stream(s.as_str(), 2, Direction::Forward, 2)
                .await
                .unwrap()
        ),
        [2, 3]
    );
    assert_eq!(
        versions(
            log.read_stream(s.as_str(), 4, Direction::Backward, 10)
                .await
                .unwrap()
        ),
        [4, 3, 2, 1]
    );
    assert_eq!(
        versions(
            log.read_stream(s.as_str(), i64::MAX, Direction::Backward, 1)
                .await
                .unwrap()
        ),
        [5]
    );
    assert!(
        log.read_whole_stream("thing-missing")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_global_read_pages_through_everything_and_filters_by_type() {
    let (_db, log) = log().await;
    for n in 0..25 {
        let mut events = vec![event(n)];
        if n % 5 == 0 {
            events.push(eventlog::NewEvent::new(
                "Milestone",
                serde_json::json!({ "n": n }),
            ));
        }
        log.append(request(&stream("thing"), ExpectedVersion::NoStream, events))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut at = Checkpoint::START;
    // an empty page is "nothing below the horizon yet", not the end: a transaction still running below the
    // last append (the wake-up's NOTIFY, say) holds the horizon back for a moment
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while seen.len() < 30 && std::time::Instant::now() < deadline {
        let batch = log.read_all(at, 7, None).await.unwrap();
        assert!(batch.checkpoint >= at);
        at = batch.checkpoint;
        if batch.events.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        seen.extend(batch.events);
    }
    assert_eq!(seen.len(), 30);
    assert!(
        log.read_all(at, 7, None).await.unwrap().events.is_empty(),
        "nothing more"
    );
    assert!(
        seen.windows(2)
            .all(|w| w[0].checkpoint() < w[1].checkpoint())
    );

    let milestones = vec!["Milestone".to_owned()];
    let batch = log
        .read_all(Checkpoint::START, 100, Some(&milestones))
        .await
        .unwrap();
    assert_eq!(batch.events.len(), 5);
    assert!(
        batch.checkpoint >= seen.last().unwrap().checkpoint(),
        "a short read covers the whole horizon"
    );
    assert_eq!(
        log.count_after(Checkpoint::START, Some(&milestones))
            .await
            .unwrap(),
        5
    );
    assert_eq!(log.count_after(at, None).await.unwrap(), 0);
}

#[tokio::test]
async fn an_open_transaction_holds_back_later_commits_until_it_ends() {
    let (_db, log) = log().await;
    let early = stream("thing");
    let late = stream("thing");
    // a transaction takes a smaller position, and stays open
    let mut slow = log.pool().begin().await.unwrap();
    eventlog::append_in(
        &mut slow,
        request(&early, ExpectedVersion::NoStream, vec![event(1)]),
    )
    .await
    .unwrap();
    // meanwhile a later append commits with a larger position
    let committed = log
        .append(request(&late, ExpectedVersion::NoStream, vec![event(2)]))
        .await
        .unwrap();
    let batch = log.read_all(Checkpoint::START, 100, None).await.unwrap();
    assert!(
        batch.events.is_empty(),
        "nothing may be read past a transaction that is still open"
    );
    assert!(batch.checkpoint < committed.checkpoint().unwrap());

    slow.commit().await.unwrap();
    // other tests share the cluster, and their open transactions hold the horizon back too: read until both
    // arrived, however the reads split them
    let mut events = Vec::new();
    let mut checkpoint = batch.checkpoint;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while events.len() < 2 && std::time::Instant::now() < deadline {
        let batch = log.read_all(checkpoint, 100, None).await.unwrap();
        checkpoint = batch.checkpoint;
        events.extend(batch.events);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let streams: Vec<&str> = events.iter().map(|e| e.stream_id.as_str()).collect();
    assert_eq!(
        streams,
        [early.as_str(), late.as_str()],
        "both, the early transaction first"
    );
}

#[tokio::test]
async fn a_subscription_catches_up_then_follows_live_appends() {
    let (_db, log) = log().await;
    for n in 0..3 {
        crate::append_one(&log, n).await;
    }
    let mut subscription = log.subscribe(Checkpoint::START, None).batch_size(2);
    let mut caught_up = 0;
    while caught_up < 3 {
        let batch = subscription.next_batch().await.unwrap();
        assert!(batch.len() <= 2, "batches respect the batch size");
        caught_up += batch.len();
    }
    assert_eq!(caught_up, 3);

    let writer = log.clone();
    let live = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        crate::append_one(&writer, 9).await
    });
    // a long poll interval: only the in-process wake-up can deliver within the timeout
    let mut subscription = log
        .subscribe(subscription.checkpoint(), None)
        .poll_interval(std::time::Duration::from_secs(60));
    let events = tokio::time::timeout(std::time::Duration::from_secs(5), subscription.next_batch())
        .await
        .expect("woken by the append")
        .unwrap();
    assert_eq!(events[0].data["n"], 9);
    live.await.unwrap();
}

#[tokio::test]
async fn another_process_appends_wake_subscribers_through_notify() {
    let (db, log) = log().await;
    // a second EventLog on its own pool stands for another academy process
    let other = eventlog::EventLog::new(
        sqlx::postgres::PgPoolOptions::new()
            .connect_with(db.connect_options())
            .await
            .unwrap(),
    );
    let mut subscription = log
        .subscribe(Checkpoint::START, None)
        .poll_interval(std::time::Duration::from_secs(60));
    assert!(subscription.try_next_batch().await.unwrap().is_none());
    // give the LISTEN connection of `log` time to be established
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    crate::append_one(&other, 1).await;
    let events = tokio::time::timeout(std::time::Duration::from_secs(5), subscription.next_batch())
        .await
        .expect("woken by NOTIFY from the other process")
        .unwrap();
    assert_eq!(events.len(), 1);
}

#[tokio::test]
async fn the_position_of_an_event_maps_to_its_commit_safe_checkpoint() {
    let (_db, log) = log().await;
    let appended = crate::append_one(&log, 1).await;
    let position = appended.position().unwrap();
    assert_eq!(
        log.checkpoint_of(position).await.unwrap(),
        appended.checkpoint()
    );
    assert_eq!(log.checkpoint_of(position + 1000).await.unwrap(), None);
}
