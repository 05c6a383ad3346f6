//! The caller's profile: read it, change name or email.

use serde::Deserialize;

use axum::extract::State;
use axum::Json;

use crate::domain::Email;
use crate::http::admin::UserView;
use crate::http::caller::Caller;
use crate::http::client::Client;
use crate::http::error::OnConflict;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::ApiJson;
use crate::http::AppState;
use crate::store::audit::{self, Entry};
use crate::store::users;

use super::verification::send_verification;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileUpdate {
    pub name: Option<String>,
    /// A new address must be verified again.
    pub email: Option<String>,
}

/// The caller's profile.
#[utoipa::path(get, path = "/api/v1/auth/me", operation_id = "auth.me", tag = "auth",
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody)))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<UserView>, ApiError> {
    Ok(Json(
        users::account(&state.pool, caller.user.id).await?.into(),
    ))
}

/// Changes the caller's name or email; a new email must be verified again.
#[utoipa::path(patch, path = "/api/v1/auth/me", operation_id = "auth.updateMe", tag = "auth", request_body = ProfileUpdate,
    responses((status = 200, body = UserView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_me(
    State(state): State<AppState>,
    caller: Caller,
    Client(origin): Client,
    ApiJson(body): ApiJson<ProfileUpdate>,
) -> Result<Json<UserView>, ApiError> {
    let name = body.name.as_deref().map(str::trim);
    if name.is_some_and(|n| n.is_empty() || n.chars().count() > 100) {
        return Err(ApiError::validation(
            "name",
            "length",
            "name must be 1 to 100 characters",
        ));
    }
    let email = body
        .email
        .as_deref()
        .map(|e| {
            Email::parse(e).map_err(|_| {
                ApiError::validation("email", "format", "email must be an email address")
            })
        })
        .transpose()?;
    let before = users::account(&state.pool, caller.user.id).await?;
    users::update_profile(
        &state.pool,
        caller.user.id,
        name,
        email.as_ref().map(Email::as_str),
    )
    .await
    .on_conflict(|| ApiError::conflict("email_taken", "that email belongs to another account"))?;
    let after = users::account(&state.pool, caller.user.id).await?;
    if !after.email.eq_ignore_ascii_case(&before.email) {
        send_verification(&state, &after).await?;
    }
    audit::record(
        &state.pool,
        &origin,
        Entry::new(Some(caller.user.id), "auth.profile_updated"),
    )
    .await?;
    Ok(Json(after.into()))
}
