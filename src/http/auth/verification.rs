//! Email verification: send a link, confirm it.

use axum::http::StatusCode;
use serde::Deserialize;

use axum::extract::State;
use axum::Json;

use crate::http::caller::Caller;
use crate::http::client::Client;
use crate::http::error::{ApiError, ErrorBody, OnConflict};
use crate::http::extract::ApiJson;
use crate::http::AppState;
use crate::mail::OutgoingMail;
use crate::store::audit::{self, Entry, Origin};
use crate::store::sessions::{self, TokenPurpose};
use crate::store::users::{self, Verified};

use super::{link, send_later, Accepted};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenConfirm {
    pub token: String,
}

/// Mails a confirmation link for `email` (the account's address, or the one it
/// asked to change to), off the request path.
pub(crate) async fn send_verification_to(
    state: &AppState,
    user_id: uuid::Uuid,
    email: &str,
) -> Result<(), ApiError> {
    let ttl = chrono::Duration::hours(state.config.accounts.email_verify_ttl_hours);
    let token =
        sessions::issue_email_token(&state.pool, user_id, email, TokenPurpose::VerifyEmail, ttl)
            .await?;
    let mail = OutgoingMail {
        to: email.to_owned(),
        subject: "Confirm your email address".into(),
        body: format!(
            "Confirm the email address of your Fresco Platform account by opening this link within {} hours:\n{}\n\n\
             Token: {token}\n",
            ttl.num_hours(),
            link(state, "verify-email", &token)
        ),
    };
    send_later(state, mail);
    Ok(())
}

/// Emails the caller a verification link.
#[utoipa::path(post, path = "/api/v1/auth/verify-email", operation_id = "auth.requestEmailVerification", tag = "auth",
    responses((status = 202, body = Accepted), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn request_verification(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let email = resend_verification(&state, &caller).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            message: format!("a verification link was sent to {email}"),
        }),
    ))
}

/// Mails the caller a new link for the account's own address, unless it is
/// verified already; the address it went to. Shared by the API and the pages.
pub(crate) async fn resend_verification(
    state: &AppState,
    caller: &Caller,
) -> Result<String, ApiError> {
    state.limits.user_action(caller.user.id, "requests")?;
    let account = users::account(&state.pool, caller.user.id).await?;
    if account.email_verified_at.is_some() {
        return Err(ApiError::conflict(
            "already_verified",
            "this email address is already verified",
        ));
    }
    send_verification_to(state, account.id, &account.email).await?;
    Ok(account.email)
}

/// Confirms an email address from an emailed token: the account's address, or
/// the pending one it asked to change to, which then replaces the old one.
#[utoipa::path(post, path = "/api/v1/auth/verify-email/confirm", operation_id = "auth.confirmEmailVerification",
    tag = "auth", request_body = TokenConfirm, responses((status = 204), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the new address was taken by another account meanwhile")))]
pub async fn confirm_verification(
    State(state): State<AppState>,
    Client(origin): Client,
    ApiJson(body): ApiJson<TokenConfirm>,
) -> Result<StatusCode, ApiError> {
    confirm_email(&state, &origin, &body.token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Uses an emailed verification token: marks the address verified, or
/// switches the account to the pending address it proves. Shared by the API
/// and the verification page.
pub(crate) async fn confirm_email(
    state: &AppState,
    origin: &Origin,
    token: &str,
) -> Result<(), ApiError> {
    let invalid = || {
        ApiError::BadRequest(
            "this verification link is invalid, used or expired; ask for a new one".into(),
        )
    };
    let (user_id, email) =
        sessions::consume_email_token(&state.pool, token, TokenPurpose::VerifyEmail)
            .await?
            .ok_or_else(invalid)?;
    let action = match users::mark_email_verified(&state.pool, user_id, &email)
        .await
        .on_conflict(|| {
            ApiError::conflict(
                "email_taken",
                "that address now belongs to another account; the email was not changed",
            )
        })? {
        Verified::Current => "auth.email_verified",
        Verified::Switched { .. } => "auth.email_changed",
        Verified::Stale => return Err(invalid()),
    };
    audit::record(&state.pool, origin, Entry::new(Some(user_id), action)).await?;
    Ok(())
}
