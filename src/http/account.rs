//! `/api/v1/auth`: login and logout, the caller's profile, password change and
//! reset, email verification, and the password strength score.

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::admin::UserView;
use super::auth::{clear_cookie, session_cookie, Caller};
use super::client::Client;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use super::ApiRouter;
use crate::app::AppState;
use crate::domain::password::{self, Strength};
use crate::mail::OutgoingMail;
use crate::store::audit::{self, Entry, Origin};
use crate::store::sessions::{self, TokenPurpose};
use crate::store::users;

pub fn router() -> ApiRouter {
    ApiRouter::new()
        .post("/api/v1/auth/login", login)
        .post("/api/v1/auth/logout", logout)
        .get("/api/v1/auth/me", me)
        .patch("/api/v1/auth/me", update_me)
        .post("/api/v1/auth/password", change_password)
        .post("/api/v1/auth/password-strength", password_strength)
        .post("/api/v1/auth/password-reset", request_reset)
        .post("/api/v1/auth/password-reset/confirm", confirm_reset)
        .post("/api/v1/auth/verify-email", request_verification)
        .post("/api/v1/auth/verify-email/confirm", confirm_verification)
}

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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileUpdate {
    pub name: Option<String>,
    /// A new address must be verified again.
    pub email: Option<String>,
}

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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenConfirm {
    pub token: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub message: String,
}

pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(ApiError::Internal)
}

async fn verify_password(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        // Without a user, verify against a dummy hash: same cost, same answer time.
        let hash = hash.unwrap_or_else(|| password::dummy_hash().to_owned());
        password::verify(&password, &hash)
    })
    .await
    .unwrap_or(false)
}

/// Checks the password rules, naming the broken one.
pub fn check_password(password: &str, email: &str, field: &str) -> Result<(), ApiError> {
    password::check(password, email)
        .map_err(|e| ApiError::validation(field, e.rule(), e.to_string()))
}

pub async fn record(state: &AppState, origin: &Origin, entry: Entry<'_>) -> Result<(), ApiError> {
    audit::record(&state.pool, origin, entry)
        .await
        .map_err(ApiError::from)
}

pub fn entry<'a>(
    user: Option<uuid::Uuid>,
    action: &'a str,
    target: Option<(&'a str, String)>,
) -> Entry<'a> {
    let (target_type, target_id) = match target {
        Some((t, id)) => (Some(t), Some(id)),
        None => (None, None),
    };
    Entry {
        user_id: user,
        action,
        target_type,
        target_id,
        metadata: json!({}),
    }
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

fn limit_login(state: &AppState, origin: &Origin, email: &str) -> Result<(), ApiError> {
    state.limits.login.check(
        &format!("ip:{}", origin.ip.as_deref().unwrap_or("-")),
        "attempts from this address",
    )?;
    state.limits.login.check(
        &format!("email:{}", email.trim().to_lowercase()),
        "attempts for this account",
    )
}

/// Signs in with email and password; sets the session cookie.
#[utoipa::path(post, path = "/api/v1/auth/login", operation_id = "auth.login", tag = "auth", request_body = Login,
    responses((status = 200, body = LoginView, description = "signed in; `Set-Cookie: fp_session=…; HttpOnly`"),
        (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    Client(origin): Client,
    ApiJson(body): ApiJson<Login>,
) -> Result<Response, ApiError> {
    limit_login(&state, &origin, &body.email)?;
    let account = users::account_by_email(&state.pool, body.email.trim()).await?;
    let hash = account.as_ref().and_then(|a| a.password_hash.clone());
    let ok = verify_password(body.password, hash).await && account.is_some();
    let Some(account) = account.filter(|_| ok) else {
        let mut e = entry(None, "auth.login_failed", None);
        e.metadata = json!({ "email": body.email.trim().to_lowercase() });
        record(&state, &origin, e).await?;
        return Err(ApiError::BadCredentials);
    };
    let (headers, expires) = open_session(&state, account.id, body.remember_me, &origin).await?;
    record(&state, &origin, entry(Some(account.id), "auth.login", None)).await?;
    let view = LoginView {
        user: account.into(),
        session_expires_at: expires,
    };
    Ok((headers, Json(view)).into_response())
}

/// Ends the current session (server-side) and clears the cookie.
#[utoipa::path(post, path = "/api/v1/auth/logout", operation_id = "auth.logout", tag = "auth",
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    Client(origin): Client,
) -> Result<Response, ApiError> {
    if let Some(session) = caller.session_id() {
        sessions::revoke(&state.pool, session).await?;
    }
    record(
        &state,
        &origin,
        entry(Some(caller.user.id), "auth.logout", None),
    )
    .await?;
    Ok(([(SET_COOKIE, clear_cookie())], StatusCode::NO_CONTENT).into_response())
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
    let email = body.email.as_deref().map(str::trim);
    if let Some(e) = email {
        if !super::tenants::valid_email(e) {
            return Err(ApiError::validation(
                "email",
                "format",
                "email must be an email address",
            ));
        }
    }
    let before = users::account(&state.pool, caller.user.id).await?;
    users::update_profile(&state.pool, caller.user.id, name, email)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Conflict(_) => {
                ApiError::conflict("email_taken", "that email belongs to another account")
            }
            other => other.into(),
        })?;
    let after = users::account(&state.pool, caller.user.id).await?;
    if !after.email.eq_ignore_ascii_case(&before.email) {
        send_verification(&state, &after).await?;
    }
    record(
        &state,
        &origin,
        entry(Some(caller.user.id), "auth.profile_updated", None),
    )
    .await?;
    Ok(Json(after.into()))
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
    let account = users::account(&state.pool, caller.user.id).await?;
    if !verify_password(body.current_password, account.password_hash.clone()).await {
        return Err(ApiError::validation(
            "currentPassword",
            "matches",
            "the current password is not correct",
        ));
    }
    check_password(&body.new_password, &account.email, "newPassword")?;
    let hash = hash_password(body.new_password).await?;
    users::set_password(&state.pool, account.id, &hash).await?;
    sessions::revoke_all(&state.pool, account.id, caller.session_id()).await?;
    record(
        &state,
        &origin,
        entry(Some(account.id), "auth.password_changed", None),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
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

fn link(state: &AppState, path: &str, token: &str) -> String {
    format!(
        "{}/{path}?token={token}",
        state.config.accounts.platform_url.trim_end_matches('/')
    )
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
    limit_login(&state, &origin, &body.email)?;
    if let Some(account) = users::account_by_email(&state.pool, body.email.trim()).await? {
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
                link(&state, "reset-password", &token)
            ),
        };
        state
            .mailer
            .send(mail)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        record(
            &state,
            &origin,
            entry(Some(account.id), "auth.password_reset_requested", None),
        )
        .await?;
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            message: "if an account exists for that email, a reset link is on its way".into(),
        }),
    ))
}

/// Sets a new password from an emailed token; every session of the user ends.
#[utoipa::path(post, path = "/api/v1/auth/password-reset/confirm", operation_id = "auth.confirmPasswordReset",
    tag = "auth", request_body = ResetConfirm,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn confirm_reset(
    State(state): State<AppState>,
    Client(origin): Client,
    ApiJson(body): ApiJson<ResetConfirm>,
) -> Result<StatusCode, ApiError> {
    state.limits.login.check(
        &format!("ip:{}", origin.ip.as_deref().unwrap_or("-")),
        "attempts from this address",
    )?;
    // Check the password first, so a bad one does not burn the token.
    let Some(account) = peek_reset_account(&state, &body.token).await? else {
        return Err(ApiError::BadRequest(
            "this reset link is invalid, used or expired; ask for a new one".into(),
        ));
    };
    check_password(&body.new_password, &account.email, "newPassword")?;
    let Some((user_id, _)) =
        sessions::consume_email_token(&state.pool, &body.token, TokenPurpose::PasswordReset)
            .await?
    else {
        return Err(ApiError::BadRequest(
            "this reset link is invalid, used or expired; ask for a new one".into(),
        ));
    };
    let hash = hash_password(body.new_password).await?;
    users::set_password(&state.pool, user_id, &hash).await?;
    sessions::revoke_all(&state.pool, user_id, None).await?;
    record(
        &state,
        &origin,
        entry(Some(user_id), "auth.password_reset", None),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
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

async fn send_verification(state: &AppState, account: &users::Account) -> Result<(), ApiError> {
    let ttl = chrono::Duration::hours(state.config.accounts.email_verify_ttl_hours);
    let token = sessions::issue_email_token(
        &state.pool,
        account.id,
        &account.email,
        TokenPurpose::VerifyEmail,
        ttl,
    )
    .await?;
    let mail = OutgoingMail {
        to: account.email.clone(),
        subject: "Confirm your email address".into(),
        body: format!(
            "Confirm the email address of your Fresco Platform account by opening this link within {} hours:\n{}\n\n\
             Token: {token}\n",
            ttl.num_hours(),
            link(state, "verify-email", &token)
        ),
    };
    state
        .mailer
        .send(mail)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Emails the caller a verification link.
#[utoipa::path(post, path = "/api/v1/auth/verify-email", operation_id = "auth.requestEmailVerification", tag = "auth",
    responses((status = 202, body = Accepted), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn request_verification(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    state
        .limits
        .actions
        .check(&format!("user:{}", caller.user.id), "requests")?;
    let account = users::account(&state.pool, caller.user.id).await?;
    if account.email_verified_at.is_some() {
        return Err(ApiError::conflict(
            "already_verified",
            "this email address is already verified",
        ));
    }
    send_verification(&state, &account).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            message: format!("a verification link was sent to {}", account.email),
        }),
    ))
}

/// Confirms an email address from an emailed token.
#[utoipa::path(post, path = "/api/v1/auth/verify-email/confirm", operation_id = "auth.confirmEmailVerification",
    tag = "auth", request_body = TokenConfirm, responses((status = 204), (status = 400, body = ErrorBody)))]
pub async fn confirm_verification(
    State(state): State<AppState>,
    Client(origin): Client,
    ApiJson(body): ApiJson<TokenConfirm>,
) -> Result<StatusCode, ApiError> {
    let invalid = || {
        ApiError::BadRequest(
            "this verification link is invalid, used or expired; ask for a new one".into(),
        )
    };
    let (user_id, email) =
        sessions::consume_email_token(&state.pool, &body.token, TokenPurpose::VerifyEmail)
            .await?
            .ok_or_else(invalid)?;
    if !users::mark_email_verified(&state.pool, user_id, &email).await? {
        return Err(invalid());
    }
    record(
        &state,
        &origin,
        entry(Some(user_id), "auth.email_verified", None),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
