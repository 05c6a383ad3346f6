//! Signing in (a session cookie) and out.

use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use axum::extract::State;
use axum::Json;

use crate::http::admin::UserView;
use crate::http::caller::clear_cookie;
use crate::http::caller::Caller;
use crate::http::client::Client;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::ApiJson;
use crate::http::AppState;
use crate::store::audit::{self, Entry, Origin};
use crate::store::{sessions, users};

use super::{open_session, verify_password};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Login {
    pub email: String,
    pub password: String,
    /// A longer-lived session.
    #[serde(default)]
    pub remember_me: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginView {
    pub user: UserView,
    pub session_expires_at: chrono::DateTime<chrono::Utc>,
}

/// Signs in with email and password; sets the session cookie.
#[utoipa::path(post, path = "/api/v1/auth/login", operation_id = "auth.login", tag = "auth", request_body = Login,
    responses((status = 200, body = LoginView, description = "signed in; `Set-Cookie: fp_session=…; HttpOnly` (`__Host-fp_session=…; Secure` when PLATFORM_URL is https)"),
        (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    Client(origin): Client,
    ApiJson(body): ApiJson<Login>,
) -> Result<Response, ApiError> {
    let (headers, account, expires) = sign_in(
        &state,
        &origin,
        &body.email,
        body.password,
        body.remember_me,
    )
    .await?;
    let view = LoginView {
        user: account.into(),
        session_expires_at: expires,
    };
    Ok((headers, Json(view)).into_response())
}

/// Checks an email and password (rate-limited per address and account, the
/// same answer time whether or not the account exists) and opens a session:
/// the `Set-Cookie` headers, the account and when the session ends. Shared by
/// the API and the login page.
pub async fn sign_in(
    state: &AppState,
    origin: &Origin,
    email: &str,
    password: String,
    remember_me: bool,
) -> Result<(HeaderMap, users::Account, chrono::DateTime<chrono::Utc>), ApiError> {
    state.limits.login_attempt(origin, email)?;
    let account = users::account_by_email(&state.pool, email.trim()).await?;
    let hash = account.as_ref().and_then(|a| a.password_hash.clone());
    let ok = verify_password(password, hash).await? && account.is_some();
    let Some(account) = account.filter(|_| ok) else {
        let failed = Entry::new(None, "auth.login_failed")
            .with(json!({ "email": email.trim().to_lowercase() }));
        audit::record(&state.pool, origin, failed).await?;
        return Err(ApiError::BadCredentials);
    };
    let (headers, expires) = open_session(state, account.id, remember_me, origin).await?;
    audit::record(
        &state.pool,
        origin,
        Entry::new(Some(account.id), "auth.login"),
    )
    .await?;
    Ok((headers, account, expires))
}

/// Ends the current session (server-side) and clears the cookie.
#[utoipa::path(post, path = "/api/v1/auth/logout", operation_id = "auth.logout", tag = "auth",
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    Client(origin): Client,
) -> Result<Response, ApiError> {
    sign_out(&state, &caller, &origin).await?;
    Ok(([(SET_COOKIE, clear_cookie(&state))], StatusCode::NO_CONTENT).into_response())
}

/// Ends the caller's session server-side (an API key has none) and records it.
pub async fn sign_out(state: &AppState, caller: &Caller, origin: &Origin) -> Result<(), ApiError> {
    if let Some(session) = caller.session_id() {
        sessions::revoke(&state.pool, session).await?;
    }
    audit::record(
        &state.pool,
        origin,
        Entry::new(Some(caller.user.id), "auth.logout"),
    )
    .await?;
    Ok(())
}
