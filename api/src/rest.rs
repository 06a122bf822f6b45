//! REST routes: `POST /api/login` (the car-service spec) and `GET /admin/users/export` (trainer statistics as CSV).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::trainer::Level;
use projections::trainer as model;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::{AppState, ClientAddress};

#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    /// Username or email.
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize)]
pub struct LoginResponse {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: i64,
}

/// `POST /api/login` `{username, password}` → `{access_token, token_type: "bearer", expires_in}`; the same
/// logic, throttling included, as the GraphQL `login` mutation.
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Json<LoginResponse>, ApiError> {
    let Json(body) = body.map_err(|rejection| {
        ApiError::validation(format!(
            "expected a JSON body {{\"username\": ..., \"password\": ...}}: {}",
            rejection.body_text()
        ))
        .with_status(StatusCode::BAD_REQUEST)
    })?;
    let now = chrono::Utc::now();
    let token = state
        .services
        .identity
        .login(&body.username, &body.password, client, now)
        .await?;
    Ok(Json(LoginResponse {
        access_token: token.access_token,
        token_type: "bearer",
        expires_in: (token.expires_at - now).num_seconds(),
    }))
}

#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    /// junior, middle or senior; every level when absent or empty.
    pub level: Option<String>,
    /// `comma` (the default) or `semicolon` (what spreadsheets in locales with a decimal comma expect).
    pub delimiter: Option<String>,
}

/// `GET /admin/users/export?level=junior` with an admin's bearer token: every user's trainer statistics as CSV,
/// UTF-8 with a byte-order mark (so spreadsheets detect the encoding), comma-separated (`delimiter=semicolon`
/// for locales with a decimal comma), quoted where needed, text cells guarded against formula injection.
/// Honours `X-Academy-Min-Position` like GraphQL queries.
pub async fn export_users(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let viewer = crate::graphql::viewer_of(&state.services.identity, &headers).await?;
    viewer.require_admin()?;
    let Query(query) = query.map_err(|rejection| {
        ApiError::validation(rejection.body_text()).with_status(StatusCode::BAD_REQUEST)
    })?;
    let level = query
        .level
        .filter(|l| !l.trim().is_empty())
        .map(|l| Level::parse(&l))
        .transpose()
        .map_err(|e| ApiError::validation(e.to_string()))?;
    if let Some(position) = crate::graphql::min_position_header(&headers)?.filter(|p| *p > 0) {
        let names = [model::NAME, projections::accounts::NAME];
        state
            .services
            .projections
            .wait_for_some(&names, position, state.services.read_timeout)
            .await?;
    }
    let delimiter = match query.delimiter.as_deref().map(str::trim) {
        None | Some("" | "comma") => b',',
        Some("semicolon") => b';',
        Some(other) => {
            return Err(ApiError::validation(format!(
                "delimiter must be comma or semicolon; got {other:?}"
            )));
        }
    };
    let mut writer = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .from_writer(Vec::from(*b"\xEF\xBB\xBF"));
    writer
        .write_record([
            "user_id",
            "username",
            "email",
            "level",
            "answered",
            "correct",
            "correct_share",
            "streak",
            "last_activity",
        ])
        .map_err(ApiError::internal)?;
    let mut after = None;
    loop {
        let rows = model::users_stats(
            &state.services.pool,
            level.map(Level::as_str),
            after.clone(),
            EXPORT_PAGE,
        )
        .await?;
        for row in &rows {
            let stats = &row.stats;
            writer
                .write_record([
                    stats.user_id.to_string(),
                    cell(row.username.as_deref().unwrap_or_default()),
                    cell(row.email.as_deref().unwrap_or_default()),
                    stats.level.clone(),
                    stats.answered.to_string(),
                    stats.correct.to_string(),
                    format!("{:.2}", stats.correct_share()),
                    stats.streak.to_string(),
                    // a form spreadsheets read as a date and time (UTC)
                    stats.last_activity.format("%Y-%m-%d %H:%M:%S").to_string(),
                ])
                .map_err(ApiError::internal)?;
        }
        match rows.last() {
            Some(last) if rows.len() as i64 == EXPORT_PAGE => {
                after = Some((last.stats.user_id, last.stats.level.clone()));
            }
            _ => break,
        }
    }
    let body = writer.into_inner().map_err(ApiError::internal)?;
    let name = format!("users-{}.csv", level.map_or("all", Level::as_str));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// A text cell that a spreadsheet will not run as a formula: one starting with `=`, `+`, `-`, `@`, a tab or a
/// carriage return gets a leading apostrophe (OWASP's advice on CSV injection).
fn cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// Rows read from the database at a time while exporting.
const EXPORT_PAGE: i64 = 1000;
