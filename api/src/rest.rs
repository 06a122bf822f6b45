//! REST routes: `POST /api/login` and `GET /api/cars` (the car-service spec) and `GET /admin/users/export`
//! (trainer statistics as CSV).

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

/// Refuses a REST request whose query string holds a NUL character (`%00`; PostgreSQL cannot take one in text)
/// with 422 `VALIDATION`, as GraphQL does, before any handler reads it.
pub async fn refuse_nul(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let query = request.uri().query().unwrap_or_default();
    if query.to_ascii_lowercase().contains("%00") {
        return nul_refused().into_response();
    }
    next.run(request).await
}

fn nul_refused() -> ApiError {
    ApiError::refusal(domain::interviews::InterviewError::NulCharacter)
}

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
    if body.username.contains('\0') || body.password.contains('\0') {
        return Err(nul_refused());
    }
    let now = chrono::Utc::now();
    let token = state
        .services
        .tokens
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
    let viewer = crate::graphql::viewer_of(&state.services.tokens, &headers).await?;
    viewer.require_admin()?;
    let Query(query) = query.map_err(|rejection| {
        ApiError::validation(rejection.body_text()).with_status(StatusCode::BAD_REQUEST)
    })?;
    let level = query
        .level
        .filter(|l| !l.trim().is_empty())
        .map(|l| Level::parse(&l))
        .transpose()
        .map_err(ApiError::refusal)?;
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

/// `GET /api/cars` query parameters: the GraphQL `cars` filter in snake case, plus paging.
#[derive(Debug, Default, Deserialize)]
pub struct CarsParams {
    pub make: Option<String>,
    pub model: Option<String>,
    /// Inclusive bounds in yen on the price `price` names (`total`, the default, or `body`).
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub price: Option<String>,
    pub min_year: Option<i32>,
    pub max_year: Option<i32>,
    pub max_mileage: Option<i64>,
    pub prefecture: Option<String>,
    pub body_type: Option<String>,
    pub transmission: Option<String>,
    pub color: Option<String>,
    pub repair_history: Option<bool>,
    /// Free text: every word must match.
    pub q: Option<String>,
    pub include_delisted: Option<bool>,
    /// `newest` (default), `price_asc`, `price_desc`, `year_desc`, `mileage_asc`.
    pub order: Option<String>,
    /// 1 to 100 (default 20).
    pub limit: Option<i32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CarsPage {
    pub items: Vec<serde_json::Value>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /api/cars` with a bearer token (401 without): cars matching the query parameters, a page at a time,
/// as JSON `{items, next_cursor}`. Honours `X-Academy-Min-Position` like GraphQL queries.
pub async fn cars(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<CarsParams>, QueryRejection>,
) -> Result<Json<CarsPage>, ApiError> {
    use crate::graphql::cars::{CarFilterInput, CarOrderValue, PriceKindValue, car_page};
    use crate::graphql::page_size;
    let viewer = crate::graphql::viewer_of(&state.services.tokens, &headers).await?;
    viewer.require_user()?;
    let Query(params) = query.map_err(|rejection| {
        ApiError::validation(rejection.body_text()).with_status(StatusCode::BAD_REQUEST)
    })?;
    let price = match params.price.as_deref().map(str::trim) {
        None | Some("" | "total") => PriceKindValue::Total,
        Some("body") => PriceKindValue::Body,
        Some(other) => {
            return Err(ApiError::validation(format!(
                "price must be total or body; got {other:?}"
            )));
        }
    };
    let order =
        CarOrderValue::parse(params.order.as_deref().unwrap_or_default()).ok_or_else(|| {
            ApiError::validation(
                "order must be newest, price_asc, price_desc, year_desc or mileage_asc",
            )
        })?;
    let limit = page_size("limit", params.limit.unwrap_or(20))?;
    let filter = CarFilterInput {
        make: params.make,
        model: params.model,
        min_price_yen: params.min_price,
        max_price_yen: params.max_price,
        price,
        min_year: params.min_year,
        max_year: params.max_year,
        max_mileage_km: params.max_mileage,
        prefecture: params.prefecture,
        body_type: params.body_type,
        transmission: params.transmission,
        color: params.color,
        repair_history: params.repair_history,
        text: params.q,
        include_delisted: params.include_delisted.unwrap_or(false),
    }
    .into_filter()?;
    if let Some(position) = crate::graphql::min_position_header(&headers)?.filter(|p| *p > 0) {
        state
            .services
            .projections
            .wait_for_some(
                &[projections::cars::NAME],
                position,
                state.services.read_timeout,
            )
            .await?;
    }
    let (rows, more) = car_page(&state.services.pool, &filter, order, params.cursor, limit).await?;
    let now = chrono::Utc::now();
    let next_cursor = if more {
        rows.last().map(|(cursor, _)| cursor.clone())
    } else {
        None
    };
    let items = rows
        .into_iter()
        .map(|(_, row)| {
            let days = row.days_on_market(now);
            let mut item = serde_json::to_value(&row).map_err(ApiError::internal)?;
            if let Some(object) = item.as_object_mut() {
                object.remove("listed_position");
                object.insert("days_on_market".to_owned(), days.into());
            }
            Ok(item)
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Json(CarsPage { items, next_cursor }))
}
