//! The signup wizard: check a subdomain (`subdomain`), open a signup session
//! (`session`), fill in its four steps in order (`steps`: account, intended use,
//! subdomain, terms), then deploy (`deploy`), which creates the user and the
//! tenant in one transaction and signs the user in.

pub(crate) mod deploy;
pub(crate) mod session;
pub(crate) mod steps;
pub(crate) mod subdomain;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::ApiError;
use super::{ApiRouter, AppState};
use crate::domain::password::Strength;
use crate::store::signup::{self, SignupSession};
use crate::store::StoreError;

pub const STEPS: i32 = 4;

pub fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(subdomain::check_subdomain))
        .routes(routes!(session::create_session))
        .routes(routes!(session::get_session))
        .routes(routes!(steps::update_session))
        .routes(routes!(deploy::deploy))
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub session_id: Uuid,
    pub email: String,
    pub steps_done: i32,
    /// The next step to fill in; null once all four are done.
    pub next_step: Option<i32>,
    pub expires_at: DateTime<Utc>,
    pub intended_use: Option<String>,
    pub subdomain: Option<String>,
    pub terms_version: Option<String>,
    pub tenant_id: Option<Uuid>,
    /// Step 1: the password's strength.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strength: Option<Strength>,
    /// Step 2: testing or learning? The sandbox may suit better.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<Suggestion>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Suggestion {
    pub message: String,
    pub sandbox_url: String,
}

fn session_view(s: &SignupSession) -> SessionView {
    SessionView {
        session_id: s.id,
        email: s.email.clone(),
        steps_done: s.steps_done,
        next_step: (s.steps_done < STEPS).then_some(s.steps_done + 1),
        expires_at: s.expires_at,
        intended_use: s.intended_use.clone(),
        subdomain: s.subdomain.clone(),
        terms_version: s.terms_version.clone(),
        tenant_id: s.tenant_id,
        strength: None,
        suggestion: None,
    }
}

pub(crate) async fn load(state: &AppState, id: &str) -> Result<SignupSession, ApiError> {
    let missing = || ApiError::NotFound("no such signup session".into());
    let id: Uuid = id.parse().map_err(|_| missing())?;
    match signup::get(&state.pool, id).await {
        Ok(s) => Ok(s),
        Err(StoreError::NotFound) => Err(missing()),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn usable(s: &SignupSession) -> Result<(), ApiError> {
    if s.login_required {
        return Err(ApiError::conflict(
            "account_exists",
            "an account already exists for this email: log in instead",
        ));
    }
    if s.tenant_id.is_some() {
        return Err(ApiError::conflict(
            "session_deployed",
            "this signup is complete; sign in to manage your instance",
        ));
    }
    if s.expires_at <= Utc::now() {
        return Err(ApiError::Gone(
            "this signup session has expired; start again".into(),
        ));
    }
    Ok(())
}
