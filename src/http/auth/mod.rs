//! `/api/v1/auth`: sign-in sessions (`session`), the caller's profile
//! (`profile`), password change, strength and reset (`password`), and email
//! verification (`verification`). The helpers here (password hashing off the
//! async runtime, opening a session, emailed links) are shared with the wizard.

mod password;
mod profile;
mod session;
mod verification;

use axum::http::header::SET_COOKIE;
use axum::http::HeaderMap;
use serde::Serialize;
use utoipa_axum::routes;

use super::caller::session_cookie;
use super::error::ApiError;
use super::{ApiRouter, AppState};
use crate::domain::password as rules;
use crate::store::audit::Origin;
use crate::store::sessions;

pub fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(session::login))
        .routes(routes!(session::logout))
        .routes(routes!(profile::me, profile::update_me))
        .routes(routes!(password::change_password))
        .routes(routes!(password::password_strength))
        .routes(routes!(password::request_reset))
        .routes(routes!(password::confirm_reset))
        .routes(routes!(verification::request_verification))
        .routes(routes!(verification::confirm_verification))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub message: String,
}

pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || rules::hash(&password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(ApiError::Internal)
}

pub(super) async fn verify_password(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        // Without a user, verify against a dummy hash: same cost, same answer time.
        let hash = hash.unwrap_or_else(|| rules::dummy_hash().to_owned());
        rules::verify(&password, &hash)
    })
    .await
    .unwrap_or(false)
}

/// Checks the password rules, naming the broken one.
pub fn check_password(password: &str, email: &str, field: &str) -> Result<(), ApiError> {
    rules::check(password, email).map_err(|e| ApiError::validation(field, e.rule(), e.to_string()))
}

/// Opens a session for the user: the cookie header to set and its expiry.
pub async fn open_session(
    state: &AppState,
    user_id: uuid::Uuid,
    remember: bool,
    origin: &Origin,
) -> Result<(HeaderMap, chrono::DateTime<chrono::Utc>), ApiError> {
    let accounts = &state.config.accounts;
    let ttl = if remember {
        chrono::Duration::days(accounts.session_remember_days)
    } else {
        chrono::Duration::hours(accounts.session_ttl_hours)
    };
    let session = sessions::create(
        &state.pool,
        user_id,
        remember,
        ttl,
        origin.ip.as_deref(),
        origin.user_agent.as_deref(),
    )
    .await?;
    let mut headers = HeaderMap::new();
    headers.insert(
        SET_COOKIE,
        session_cookie(state, &session.token, ttl.num_seconds()),
    );
    Ok((headers, session.expires_at))
}

pub(super) fn link(state: &AppState, path: &str, token: &str) -> String {
    format!(
        "{}/{path}?token={token}",
        state.config.accounts.platform_url.trim_end_matches('/')
    )
}
