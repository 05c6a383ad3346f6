//! The caller's profile: read it, change name or email.
//!
//! An email change needs the current password and goes through the new
//! address: it is kept as pending, a confirmation link goes to it, and the
//! account switches only when that link is used. The old address is told at
//! once. Whether the new address belongs to another account does not change
//! the answer (the other account's owner gets a note instead of a link).

use serde::Deserialize;

use axum::extract::State;
use axum::Json;

use crate::domain::Email;
use crate::http::admin::UserView;
use crate::http::caller::Caller;
use crate::http::client::Client;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::ApiJson;
use crate::http::AppState;
use crate::mail::OutgoingMail;
use crate::store::audit::{self, Entry, Origin};
use crate::store::users;

use super::send_later;
use super::verification::send_verification_to;
use super::verify_password;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileUpdate {
    pub name: Option<String>,
    /// A new address: it replaces the current one once the link mailed to it is
    /// used. Needs `currentPassword`.
    pub email: Option<String>,
    /// Required to change the email.
    pub current_password: Option<String>,
}

/// The caller's profile.
#[utoipa::path(get, path = "/api/v1/auth/me", operation_id = "auth.me", tag = "auth",
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody)))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<UserView>, ApiError> {
    Ok(Json(
        users::account(&state.pool, caller.user.id).await?.into(),
    ))
}

/// Changes the caller's name, or asks to change the email: the new address gets
/// a confirmation link (`pendingEmail` until then), the old one a notice. The
/// answer is the same whether or not another account uses the new address.
#[utoipa::path(patch, path = "/api/v1/auth/me", operation_id = "auth.updateMe", tag = "auth", request_body = ProfileUpdate,
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "invalid name or email, or `currentPassword` missing or wrong for an email change")))]
pub async fn update_me(
    State(state): State<AppState>,
    caller: Caller,
    Client(origin): Client,
    ApiJson(body): ApiJson<ProfileUpdate>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(
        update_profile(&state, &caller, &origin, body).await?.into(),
    ))
}

/// Changes the name and/or asks for an email change (checked against the
/// current password); the account as it is afterwards. Shared by the API and
/// the settings page.
pub(crate) async fn update_profile(
    state: &AppState,
    caller: &Caller,
    origin: &Origin,
    body: ProfileUpdate,
) -> Result<users::Account, ApiError> {
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
    let account = users::account(&state.pool, caller.user.id).await?;
    let new_email = email.filter(|e| !e.as_str().eq_ignore_ascii_case(&account.email));
    if let Some(new_email) = &new_email {
        let Some(current) = body.current_password.clone() else {
            return Err(ApiError::validation(
                "currentPassword",
                "required",
                "currentPassword is required to change the email",
            ));
        };
        state.limits.password_change(caller.user.id)?;
        if !verify_password(current, account.password_hash.clone()).await? {
            return Err(ApiError::validation(
                "currentPassword",
                "matches",
                "the current password is not correct",
            ));
        }
        request_email_change(state, &account, new_email.as_str()).await?;
    }
    if let Some(name) = name {
        users::set_name(&state.pool, account.id, name).await?;
    }
    audit::record(
        &state.pool,
        origin,
        Entry::new(Some(caller.user.id), "auth.profile_updated"),
    )
    .await?;
    Ok(users::account(&state.pool, caller.user.id).await?)
}

/// Keeps the new address as pending and mails both addresses (off the request
/// path). An address another account uses gets a note instead of a link, so the
/// caller cannot tell the two cases apart.
async fn request_email_change(
    state: &AppState,
    account: &users::Account,
    new_email: &str,
) -> Result<(), ApiError> {
    users::set_pending_email(&state.pool, account.id, new_email).await?;
    if users::email_in_use(&state.pool, new_email).await? {
        send_later(
            state,
            OutgoingMail {
                to: new_email.to_owned(),
                subject: "Someone tried to use your address on Fresco Platform".into(),
                body: "Someone asked to move another Fresco Platform account to this address, \
                       which already has an account. Nothing was changed.\n"
                    .into(),
            },
        );
    } else {
        send_verification_to(state, account.id, new_email).await?;
    }
    send_later(
        state,
        OutgoingMail {
            to: account.email.clone(),
            subject: "Your Fresco Platform email address is changing".into(),
            body: format!(
                "Someone signed in to your Fresco Platform account asked to change its email \
                 address to {new_email}. The account keeps this address until the new one is \
                 confirmed.\n\nIf it was not you, change your password now.\n"
            ),
        },
    );
    Ok(())
}
