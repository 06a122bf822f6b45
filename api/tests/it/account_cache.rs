//! Token checks read accounts through a cache: a role or password change still takes effect on the very next
//! request, whether this process or another one made it, and the cache stays within its bound.

use std::time::{Duration, Instant};

use api::auth::{AuthConfig, JwtSecret, Tokens, Viewer};
use commands::{Actor, App, AppConfig, CommandExecutor, Request, Source};
use domain::identity::Role;
use eventlog::EventLog;
use serde_json::json;
use tokio::sync::watch;
use uuid::Uuid;

use crate::{SECRET, TestApp, code};

const USERS: &str = "{ users(first: 1) { edges { node { id } } } }";

/// Waits until the app's account follower has started caching (it starts with the server, asynchronously).
async fn caching(app: &TestApp, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.state.services.app.identity.cached_accounts() == 0 {
        assert!(Instant::now() < deadline, "the account cache never filled");
        app.gql("{ me { id } }", json!({}), Some(token)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn grant(app: &TestApp, admin: &str, user: &str, granted: bool) {
    let mutation = if granted {
        "mutation($u: UUID!) { grantAdmin(userId: $u) { position } }"
    } else {
        "mutation($u: UUID!) { revokeAdmin(userId: $u) { position } }"
    };
    let body = app.gql(mutation, json!({ "u": user }), Some(admin)).await;
    assert!(body["errors"].is_null(), "{body}");
}

#[tokio::test]
async fn an_admin_whose_role_this_process_revokes_is_refused_on_the_next_request() {
    let app = TestApp::start().await;
    let (_, root) = app.admin().await;
    let (ada, token) = app.user("ada").await;
    grant(&app, &root, &ada, true).await;
    caching(&app, &token).await;
    for _ in 0..3 {
        let body = app.gql(USERS, json!({}), Some(&token)).await;
        assert!(body["errors"].is_null(), "an admin lists users: {body}");
    }

    grant(&app, &root, &ada, false).await;
    let body = app.gql(USERS, json!({}), Some(&token)).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    grant(&app, &root, &ada, true).await;
    let body = app.gql(USERS, json!({}), Some(&token)).await;
    assert!(body["errors"].is_null(), "admin again at once: {body}");
}

#[tokio::test]
async fn a_password_change_retires_a_cached_token_on_the_next_request() {
    let app = TestApp::start().await;
    let (_, token) = app.user("ada").await;
    caching(&app, &token).await;
    let changed = app
        .gql(
            "mutation { changePassword(currentPassword: \"correct horse battery\", newPassword: \"new password 1\") { position } }",
            json!({}),
            Some(&token),
        )
        .await;
    assert!(changed["errors"].is_null(), "{changed}");
    let (status, _) = app
        .post("{ me { id } }", json!({}), Some(&token), &[])
        .await;
    assert_eq!(status, 401, "the old token is refused at once");
}

/// Another process: its own event log (and so its own LISTEN connection) and services on the same database.
fn other_process(app: &TestApp) -> App {
    let executor = CommandExecutor::new(EventLog::new(app.db.pool.clone()));
    App::new(executor, app.db.pool.clone(), AppConfig::default()).unwrap()
}

#[tokio::test]
async fn a_role_revoked_by_another_process_reaches_this_processes_cache_within_a_notification() {
    let app = TestApp::start().await;
    let (root_id, root) = app.admin().await;
    let (ada, token) = app.user("ada").await;
    grant(&app, &root, &ada, true).await;
    caching(&app, &token).await;
    let body = app.gql(USERS, json!({}), Some(&token)).await;
    assert!(body["errors"].is_null(), "{body}");

    let other = other_process(&app);
    let root_id = Uuid::parse_str(&root_id).unwrap();
    let as_root = Request::new(
        Actor::User {
            id: root_id,
            role: Role::Admin,
        },
        Source::Cli,
        chrono::Utc::now(),
    );
    let revoked_at = Instant::now();
    other
        .identity
        .set_admin(&as_root, Uuid::parse_str(&ada).unwrap(), false)
        .await
        .unwrap();
    // the other process's commit reaches this one by its NOTIFY (sent at most 10 ms after the commit) and
    // one read of the account events; until then this process may still answer from its cache
    loop {
        let body = app.gql(USERS, json!({}), Some(&token)).await;
        if !body["errors"].is_null() {
            assert_eq!(code(&body), "FORBIDDEN", "{body}");
            break;
        }
        // generous for a loaded machine: the wait is one notification and one read, milliseconds when idle
        assert!(
            revoked_at.elapsed() < Duration::from_secs(5),
            "still an admin 5 s after another process revoked the role"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn the_account_cache_holds_at_most_its_bound() {
    let app = TestApp::start().await;
    let identity = app
        .state
        .services
        .app
        .identity
        .clone()
        .with_cached_accounts(2);
    let tokens = Tokens::new(
        identity.clone(),
        AuthConfig::new(JwtSecret::new(SECRET.to_vec()).unwrap()),
    );
    let (stop, stopping) = watch::channel(false);
    let following = identity.clone();
    tokio::spawn(async move { following.follow_accounts(stopping).await });

    let mut users = vec![];
    for name in ["ada", "grace", "edsger", "barbara"] {
        let (id, _) = app.user(name).await;
        let token = tokens
            .login(name, "correct horse battery", None, chrono::Utc::now())
            .await
            .unwrap();
        users.push((Uuid::parse_str(&id).unwrap(), token.access_token));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut most = 0;
    while most < 2 {
        assert!(Instant::now() < deadline, "the account cache never filled");
        for (id, token) in &users {
            let viewer = tokens.authenticate(token).await.unwrap();
            assert_eq!(
                viewer,
                Viewer::User {
                    id: *id,
                    role: Role::User
                }
            );
            most = most.max(identity.cached_accounts());
            assert!(
                identity.cached_accounts() <= 2,
                "the cache outgrew its bound"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);
}
