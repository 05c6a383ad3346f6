//! Passwords: change (signed in), strength score, and reset by emailed token.

use axum::http::StatusCode;
use serde::Deserialize;

use axum::extract::State;
use axum::Json;

use crate::domain::password::{self, Strength};
use crate::http::caller::Caller;
use crate::http::client::Client;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::ApiJson;
use crate::http::AppState;
use crate::mail::OutgoingMail;
use crate::store::audit::{self, Entry, Origin};
use crate::store::sessions::{self, TokenPurpose};
use crate::store::users;

use super::{check_password, hash_password, link, send_later, verify_password, Accepted};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StrengthRequest {
    pub password: String,
    pub email: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResetRequest {
    pub email: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResetConfirm {
    pub token: String,
    pub new_password: String,
}

/// Changes the password; every other session of the user ends.
#[utoipa::path(post, path = "/api/v1/auth/password", operation_id = "auth.changePassword", tag = "auth",
    request_body = PasswordChange,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    Client(origin): Client,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    change(
        &state,
        &caller,
        &origin,
        body.current_password,
        body.new_password,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Checks the current password, sets the new one and ends the user's other
/// sessions. Shared by the API and the settings page.
pub(crate) async fn change(
    state: &AppState,
    caller: &Caller,
    origin: &Origin,
    current_password: String,
    new_password: String,
) -> Result<(), ApiError> {
    state.limits.password_change(caller.user.id)?;
    let account = users::account(&state.pool, caller.user.id).await?;
    if !verify_password(current_password, account.password_hash.clone()).await? {
        return Err(ApiError::validation(
            "currentPassword",
            "matches",
            "the current password is not correct",
        ));
    }
    check_password(&new_password, &account.email, "newPassword")?;
    let hash = hash_password(new_password).await?;
    users::set_password(&state.pool, account.id, &hash).await?;
    sessions::revoke_all(&state.pool, account.id, caller.session_id()).await?;
    audit::record(
        &state.pool,
        origin,
        Entry::new(Some(account.id), "auth.password_changed"),
    )
    .await?;
    Ok(())
}

/// Scores a candidate password (0–4) for a strength indicator; stores nothing.
#[utoipa::path(post, path = "/api/v1/auth/password-strength", operation_id = "auth.passwordStrength", tag = "auth",
    request_body = StrengthRequest, responses((status = 200, body = Strength)))]
pub async fn password_strength(ApiJson(body): ApiJson<StrengthRequest>) -> Json<Strength> {
    Json(password::strength(
        &body.password,
        body.email.as_deref().unwrap_or_default(),
    ))
}

/// Emails a single-use reset link if an account exists; the answer is the same
/// either way.
#[utoipa::path(post, path = "/api/v1/auth/password-reset", operation_id = "auth.requestPasswordReset", tag = "auth",
    request_body = ResetRequest, responses((status = 202, body = Accepted), (status = 429, body = ErrorBody)))]
pub async fn request_reset(
    State(state): State<AppState>,
    Client(origin): Client,
    ApiJson(body): ApiJson<ResetRequest>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    send_reset(&state, &origin, &body.email).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            message: "if an account exists for that email, a reset link is on its way".into(),
        }),
    ))
}

/// Mails a reset link when an account uses `email`; does the same work and
/// answers the same either way (only the rate limit can refuse). Shared by the
/// API and the reset page.
pub(crate) async fn send_reset(
    state: &AppState,
    origin: &Origin,
    email: &str,
) -> Result<(), ApiError> {
    state.limits.reset_request(origin, email)?;
    if let Some(account) = users::account_by_email(&state.pool, email.trim()).await? {
        let ttl = chrono::Duration::minutes(state.config.accounts.password_reset_ttl_minutes);
        let token = sessions::issue_email_token(
            &state.pool,
            account.id,
            &account.email,
            TokenPurpose::PasswordReset,
            ttl,
        )
        .await?;
        let mail = OutgoingMail {
            to: account.email.clone(),
            subject: "Reset your Fresco Platform password".into(),
            body: format!(
                "Someone asked to reset the password of your Fresco Platform account.\n\n\
                 Open this link within {} minutes to choose a new one:\n{}\n\nToken: {token}\n\n\
                 If it was not you, ignore this message; your password stays as it is.\n",
                ttl.num_minutes(),
                link(state, "reset-password", &token)
            ),
        };
        send_later(state, mail);
        audit::record(
            &state.pool,
            origin,
            Entry::new(Some(account.id), "auth.password_reset_requested"),
        )
        .await?;
    }
    Ok(())
}

/// Sets a new password from an emailed token; every session and API key of the
/// user ends (a reset means the old secrets may be known to someone else). A
/// mail to the account lists the keys revoked. Using the emailed link also
/// proves the address, so it counts as verified.
#[utoipa::path(post, path = "/api/v1/auth/password-reset/confirm", operation_id = "auth.confirmPasswordReset",
    tag = "auth", request_body = ResetConfirm,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn confirm_reset(
    State(state): State<AppState>,
    Client(origin): Client,
    ApiJson(body): ApiJson<ResetConfirm>,
) -> Result<StatusCode, ApiError> {
    reset(&state, &origin, &body.token, body.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets a new password from an emailed token and ends every session and API
/// key of the user. Shared by the API and the reset page.
pub(crate) async fn reset(
    state: &AppState,
    origin: &Origin,
    token: &str,
    new_password: String,
) -> Result<(), ApiError> {
    state.limits.reset_confirm(origin)?;
    // Check the password first, so a bad one does not burn the token.
    let Some(account) = peek_reset_account(state, token).await? else {
        return Err(ApiError::BadRequest(
            "this reset link is invalid, used or expired; ask for a new one".into(),
        ));
    };
    check_password(&new_password, &account.email, "newPassword")?;
    // Hashed before the token is used: a busy refusal (503) leaves the link valid.
    let hash = hash_password(new_password).await?;
    let Some((user_id, sent_to)) =
        sessions::consume_email_token(&state.pool, token, TokenPurpose::PasswordReset).await?
    else {
        return Err(ApiError::BadRequest(
            "this reset link is invalid, used or expired; ask for a new one".into(),
        ));
    };
    users::set_password(&state.pool, user_id, &hash).await?;
    sessions::revoke_all(&state.pool, user_id, None).await?;
    let revoked = users::revoke_all_api_keys(&state.pool, user_id).await?;
    users::mark_email_verified(&state.pool, user_id, &sent_to).await?;
    send_later(state, reset_done_mail(&sent_to, &revoked));
    let keys: Vec<&str> = revoked.iter().map(|(_, prefix)| prefix.as_str()).collect();
    audit::record(
        &state.pool,
        origin,
        Entry::new(Some(user_id), "auth.password_reset")
            .with(serde_json::json!({ "revokedKeys": keys })),
    )
    .await?;
    Ok(())
}

/// Tells the owner the reset happened and which API keys it revoked.
fn reset_done_mail(to: &str, revoked: &[(String, String)]) -> OutgoingMail {
    let keys = if revoked.is_empty() {
        "You had no API keys to revoke.\n".to_owned()
    } else {
        let lines: Vec<String> = revoked
            .iter()
            .map(|(name, prefix)| format!("  - {name} ({prefix}…)\n"))
            .collect();
        format!(
            "These API keys were revoked; create new ones for the programs that used them:\n{}",
            lines.concat()
        )
    };
    OutgoingMail {
        to: to.to_owned(),
        subject: "Your Fresco Platform password was reset".into(),
        body: format!(
            "The password of your Fresco Platform account was reset and every session \
             was signed out.\n\n{keys}\nIf it was not you, reset it again at once and \
             tell the platform's administrators.\n"
        ),
    }
}

async fn peek_reset_account(
    state: &AppState,
    token: &str,
) -> Result<Option<users::Account>, ApiError> {
    match sessions::peek_email_token(&state.pool, token, TokenPurpose::PasswordReset).await? {
        Some(id) => Ok(Some(users::account(&state.pool, id).await?)),
        None => Ok(None),
    }
}
