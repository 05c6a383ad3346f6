//! Signup sessions: open one for an email, read where it stands.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{load, session_view, SessionView};
use crate::domain::Email;
use crate::http::client::Client;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::ApiJson;
use crate::http::AppState;
use crate::store::audit::Origin;
use crate::store::signup::{self, SignupSession};
use crate::store::users;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSignup {
    pub email: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignupView {
    pub session_id: Uuid,
    pub expires_at: DateTime<Utc>,
    /// `account` to go on with step 1, or `login` when the email already has an account.
    pub next: String,
    pub message: String,
}

/// Opens a signup session (valid for an hour). An email that already has an
/// account gets the same answer shape, telling the person to log in.
#[utoipa::path(post, path = "/api/v1/wizard/sessions", operation_id = "wizard.createSignupSession", tag = "wizard",
    request_body = CreateSignup,
    responses((status = 201, body = SignupView), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn create_session(
    State(state): State<AppState>,
    Client(origin): Client,
    ApiJson(body): ApiJson<CreateSignup>,
) -> Result<(StatusCode, Json<SignupView>), ApiError> {
    let session = open(&state, &origin, &body.email).await?;
    let (next, message) = if session.login_required {
        (
            "login",
            "an account already exists for this email: log in instead",
        )
    } else {
        ("account", "continue with step 1: choose a password")
    };
    let view = SignupView {
        session_id: session.id,
        expires_at: session.expires_at,
        next: next.into(),
        message: message.into(),
    };
    Ok((StatusCode::CREATED, Json(view)))
}

/// Opens a signup session for `email` (rate-limited per address); the session
/// says `login_required` when the email already has an account. Shared by the
/// API and the wizard's pages.
pub(crate) async fn open(
    state: &AppState,
    origin: &Origin,
    email: &str,
) -> Result<SignupSession, ApiError> {
    state.limits.signup(origin)?;
    let email = Email::parse(email)
        .map_err(|_| ApiError::validation("email", "format", "email must be an email address"))?;
    let email = email.as_str();
    // The same work on both paths (a lookup and an insert), so the answer time
    // does not tell a stranger more than the answer does.
    let exists = users::account_by_email(&state.pool, email).await?.is_some();
    let ttl = chrono::Duration::minutes(state.config.accounts.signup_ttl_minutes);
    Ok(signup::create(&state.pool, email, exists, ttl).await?)
}

/// Where a signup session stands.
#[utoipa::path(get, path = "/api/v1/wizard/sessions/{id}", operation_id = "wizard.getSession", tag = "wizard",
    params(("id" = Uuid, Path, description = "signup session id")),
    responses((status = 200, body = SessionView), (status = 404, body = ErrorBody)))]
pub async fn get_session(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SessionView>, ApiError> {
    let session = load(&state, &id).await?;
    Ok(Json(session_view(&session)))
}
