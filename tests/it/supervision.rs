//! The embedded PostgreSQL dying under a running server: noticed at once, restarted by the process that started
//! it (waited for by one that attached), and no obstacle to a prompt shutdown.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{Server, academy, alive, data_folder, postmaster_pid};

fn kill_postmaster(pg: &std::path::Path) -> u32 {
    let pid = postmaster_pid(pg).expect("a postmaster runs");
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    pid
}

/// Probes `/readyz` every 20 ms, each probe on its own (one waiting for the pool must not hide the others),
/// until one answers `status` with `database`; how long that took.
async fn readyz_says(server: &Server, status: u16, database: &str, within: Duration) -> Duration {
    let started = Instant::now();
    let url = format!("{}/readyz", server.address);
    let client = reqwest::Client::new();
    let mut probes = tokio::task::JoinSet::new();
    let mut last = None;
    loop {
        let (client, url) = (client.clone(), url.clone());
        probes.spawn(async move {
            let response = client.get(url).send().await.ok()?;
            let status = response.status().as_u16();
            let body: Value = response.json().await.ok()?;
            Some((status, body))
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        while let Some(done) = probes.try_join_next() {
            if let Ok(Some((got, body))) = done {
                if got == status && body["database"] == database {
                    return started.elapsed();
                }
                last = Some((got, body));
            }
        }
        assert!(
            started.elapsed() < within,
            "/readyz did not answer {status} with database {database:?} within {within:?}; last: {last:?}"
        );
    }
}

async fn restarts(server: &Server) -> String {
    let text = server.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with("academy_database_restarts_total "))
        .unwrap_or_else(|| panic!("no academy_database_restarts_total sample:\n{text}"))
        .to_owned()
}

#[tokio::test]
async fn a_killed_embedded_postgres_fails_readiness_at_once_is_restarted_and_the_server_serves_again()
 {
    let dir = data_folder();
    let pg = dir.path().join("pg");
    let server = Server::start(academy(dir.path()));
    server.wait_projections_live().await;
    assert_eq!(restarts(&server).await, "academy_database_restarts_total 0");

    let killed = kill_postmaster(&pg);
    let noticed = readyz_says(&server, 503, "restarting", Duration::from_secs(2)).await;
    let back = readyz_says(&server, 200, "ok", Duration::from_secs(30)).await;
    eprintln!("unready after {noticed:?}, ready again {back:?} later");
    let restarted = postmaster_pid(&pg).expect("a postmaster runs again");
    assert_ne!(restarted, killed);
    assert!(alive(restarted));

    // writes work again, and the projections resumed (the runners and the LISTEN wake-up reconnected)
    let registered: Value = reqwest::Client::new()
        .post(format!("{}/graphql", server.address))
        .json(&json!({ "query": "mutation { register(input: {email: \"after@example.org\", username: \"after\", password: \"long enough\"}) { userId position } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        registered["data"]["register"]["userId"].is_string(),
        "{registered}"
    );
    server.wait_projections_live().await;
    assert_eq!(restarts(&server).await, "academy_database_restarts_total 1");

    let status = server.terminate();
    assert!(status.success(), "{status}");
    assert!(
        !alive(restarted),
        "the restarted PostgreSQL stopped with the server"
    );
}

#[tokio::test]
async fn sigterm_while_the_embedded_postgres_is_gone_exits_within_5_seconds() {
    let dir = data_folder();
    let pg = dir.path().join("pg");
    let server = Server::start(academy(dir.path()));
    server.wait_projections_live().await;
    let mut server = server;

    let killed = kill_postmaster(&pg);
    let started = Instant::now();
    Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the server did not exit within 5 s of SIGTERM with its database gone"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("exited in {:?} ({status})", started.elapsed());
    assert!(!alive(killed));
    // no PostgreSQL left behind, whether or not a restart had begun
    if let Some(pid) = postmaster_pid(&pg) {
        assert!(!alive(pid), "a restarted PostgreSQL was left running");
    }
}

#[tokio::test]
async fn a_server_that_attached_does_not_restart_the_cluster_but_waits_for_it() {
    let dir = data_folder();
    let pg = dir.path().join("pg");
    let starter = Server::start(academy(dir.path()));
    starter.wait_projections_live().await;
    let attached = Server::start(academy(dir.path()));
    readyz_says(&attached, 200, "ok", Duration::from_secs(30)).await;

    // the process that started the cluster dies first, so nobody restarts it
    let mut starter = starter;
    starter.child.kill().unwrap();
    starter.child.wait().unwrap();
    let killed = kill_postmaster(&pg);
    readyz_says(&attached, 503, "unavailable", Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still: Value = attached.get("/readyz").await.json().await.unwrap();
    assert_eq!(still["database"], "unavailable", "{still}");
    assert!(
        postmaster_pid(&pg).is_none_or(|pid| pid == killed || !alive(pid)),
        "the attached server started no PostgreSQL"
    );

    // another academy starts the cluster again; the attached server serves again without having restarted it
    let next = Server::start(academy(dir.path()));
    readyz_says(&attached, 200, "ok", Duration::from_secs(30)).await;
    assert_eq!(
        restarts(&attached).await,
        "academy_database_restarts_total 0"
    );

    assert!(next.terminate().success());
    assert!(attached.terminate().success());
    drop(starter);
}
