//! The router answered through tower, against a real database.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use eventlog::EventLog;
use migrations::testing::TestDb;
use projections::{Projections, RunnerConfig};
use tower::ServiceExt;

async fn app(db: &TestDb) -> axum::Router {
    let log = EventLog::new(db.pool.clone());
    let projections = Arc::new(Projections::new(log, vec![], RunnerConfig::default()).unwrap());
    api::router(api::AppState {
        pool: db.pool.clone(),
        projections,
    })
}

async fn get(app: axum::Router, path: &str) -> (StatusCode, serde_json::Value) {
    let response = app
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn readyz_is_ok_while_the_database_answers() {
    let db = TestDb::new().await;
    let (status, body) = get(app(&db).await, "/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["database"], "ok");
}

#[tokio::test]
async fn readyz_is_unavailable_when_the_database_is_gone() {
    let db = TestDb::new().await;
    let app = app(&db).await;
    db.pool.close().await;
    let (status, body) = get(app, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["database"], "unreachable");
}

#[tokio::test]
async fn healthz_answers_without_the_database() {
    let db = TestDb::new().await;
    let app = app(&db).await;
    db.pool.close().await;
    let response = app
        .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
