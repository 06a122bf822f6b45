use std::sync::Arc;

use projections::{Projection, WaitError, status};

use crate::{Ledger, WAIT, append, ledger_rows, log, start};

#[tokio::test]
async fn a_failing_event_stops_only_its_projection_with_the_position_and_error_recorded() {
    let (_db, log) = log().await;
    append(&log, "ThingHappened", 5).await;
    let poison = append(&log, "Poison", 1).await;
    let last = append(&log, "ThingHappened", 5).await;

    let mut fragile = Ledger::new("fragile");
    fragile.poison = Some("Poison");
    let (projections, _stop, _task) = start(
        &log,
        vec![Arc::new(fragile), Arc::new(Ledger::new("sturdy"))],
    );

    projections
        .wait_for_some(&["sturdy"], last, WAIT)
        .await
        .unwrap();
    assert_eq!(
        ledger_rows(&log, "sturdy").await.0,
        11,
        "the other projection kept going"
    );

    let error = projections
        .wait_for_some(&["fragile"], last, WAIT)
        .await
        .unwrap_err();
    assert!(
        matches!(error, WaitError::Failed { ref error, .. } if error.contains("cannot digest Poison")),
        "{error}"
    );
    // a new projection failing during its first build never serves half-built tables: they stay aside
    assert_eq!(
        ledger_rows(&log, "fragile__build").await.0,
        5,
        "everything before the culprit was applied, once"
    );

    let known: Vec<Arc<dyn Projection>> = projections.projections();
    let rows = status::status(&log, &known).await.unwrap();
    let fragile = rows.iter().find(|r| r.name == "fragile").unwrap();
    assert_eq!(fragile.status, "failed");
    assert_eq!(fragile.error_position, Some(poison));
    assert!(
        fragile
            .error
            .as_deref()
            .unwrap()
            .contains("cannot digest Poison")
    );
    assert_eq!(fragile.lag, 6, "the culprit and the five after it");
}

#[tokio::test]
async fn a_failed_projection_retries_from_its_checkpoint_after_a_restart() {
    let (_db, log) = log().await;
    append(&log, "ThingHappened", 2).await;
    append(&log, "Poison", 1).await;
    let last = append(&log, "ThingHappened", 3).await;
    let mut fragile = Ledger::new("ledger");
    fragile.poison = Some("Poison");
    let (projections, stop, task) = start(&log, vec![Arc::new(fragile)]);
    assert!(projections.wait_for(last, WAIT).await.is_err());
    stop.send(true).unwrap();
    task.await.unwrap();

    // the fixed code (no poison) picks up where the failure stopped it: it resumes, it does not start over
    let mut fixed = Ledger::new("ledger");
    fixed.tag = "fixed".to_owned();
    let (projections, _stop, _task) = start(&log, vec![Arc::new(fixed)]);
    projections.wait_for(last, WAIT).await.unwrap();
    let (rows, repeated, _) = ledger_rows(&log, "ledger").await;
    assert_eq!((rows, repeated), (6, 0));
    let early: Vec<String> =
        sqlx::query_scalar("select tag from ledger.applied order by position limit 2")
            .fetch_all(log.pool())
            .await
            .unwrap();
    assert_eq!(
        early,
        ["v1", "v1"],
        "the rows applied before the failure were kept"
    );
}

#[tokio::test]
async fn an_operators_rebuild_repairs_a_failed_projection_and_its_runner_resumes() {
    let (_db, log) = log().await;
    append(&log, "ThingHappened", 3).await;
    let poison = append(&log, "Poison", 1).await;
    let mut fragile = Ledger::new("ledger");
    fragile.poison = Some("Poison");
    let (server, _stop, _task) = start(&log, vec![Arc::new(fragile)]);
    assert!(matches!(
        server.wait_for(poison, WAIT).await,
        Err(WaitError::Failed { .. })
    ));

    // the operator rebuilds with code that can digest it (retrying while the failed build still holds its lease)
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match projections::rebuild(
            log.clone(),
            Arc::new(Ledger::new("ledger")),
            crate::config(),
        )
        .await
        {
            Ok(()) => break,
            Err(projections::RebuildError::Busy { .. })
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(other) => panic!("{other}"),
        }
    }
    // the server's runner notices (it looks once a second), and goes on after the rebuilt checkpoint
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.progress()[0].1.status == projections::Status::Failed {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the runner never noticed the repair"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let last = append(&log, "ThingHappened", 2).await;
    server.wait_for(last, WAIT).await.unwrap();
    assert_eq!(ledger_rows(&log, "ledger").await.0, 6);
}

#[tokio::test]
async fn a_failing_setup_is_recorded_and_stays_failed_until_repaired() {
    let (_db, log) = log().await;
    let last = append(&log, "ThingHappened", 3).await;
    let mut broken = Ledger::new("ledger");
    broken.broken_setup = true;
    let (server, _stop, _task) = start(&log, vec![Arc::new(broken)]);
    let error = server.wait_for(last, WAIT).await.unwrap_err();
    assert!(
        matches!(error, WaitError::Failed { ref error, .. } if error.contains("cannot be created")),
        "{error}"
    );
    // it does not flap between failing and retrying
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let known: Vec<Arc<dyn Projection>> = server.projections();
    let rows = status::status(&log, &known).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].slot.as_str(), rows[0].status.as_str()),
        ("build", "failed")
    );
    assert!(rows[0].error.as_deref().unwrap().contains("setup failed"));
    assert_eq!(server.progress()[0].1.status, projections::Status::Failed);
}
