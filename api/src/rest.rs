//! REST routes of the car-service spec: `POST /api/login`.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
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
