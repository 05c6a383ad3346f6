//! Who is calling: `Authorization: Bearer <api key>` for programs, the session
//! cookie for browsers. Keys and session tokens are looked up by their SHA-256
//! hash; neither is stored or logged. Cookie-authenticated writes must come from
//! the platform's own origin (CSRF).

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE, ORIGIN, REFERER};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method};
use uuid::Uuid;

use super::client::Client;
use super::error::ApiError;
use crate::domain::Role;
use crate::http::AppState;
use crate::store::sessions;
use crate::store::tenants::Tenant;
use crate::store::users::{self, User};

pub const SESSION_COOKIE: &str = "fp_session";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    ApiKey,
    Session(Uuid),
}

pub struct Caller {
    pub user: User,
    pub via: Via,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }

    /// Owners see their own tenants, admins see all; anything else is reported
    /// exactly as a missing tenant.
    pub fn may_see(&self, tenant: &Tenant) -> bool {
        self.is_admin() || tenant.user_id == self.user.id
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "this endpoint is for platform admins".into(),
            ))
        }
    }

    pub fn session_id(&self) -> Option<Uuid> {
        match self.via {
            Via::Session(id) => Some(id),
            Via::ApiKey => None,
        }
    }
}

/// The session token from the Cookie header, if any.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 200)
}

/// Set-Cookie for a new session (HttpOnly, SameSite=Lax, Secure on https).
pub fn session_cookie(state: &AppState, token: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if state.config.accounts.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    let value = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}"
    );
    HeaderValue::from_str(&value)
        .unwrap_or_else(|_| HeaderValue::from_static("fp_session=; Path=/; Max-Age=0"))
}

pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("fp_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
}

/// A cookie-authenticated write must name the platform's own origin in
/// `Origin`, or failing that in `Referer`.
pub fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let own = state.config.accounts.platform_origin();
    if let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) {
        return origin == own;
    }
    headers
        .get(REFERER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|r| r == own || r.starts_with(&format!("{own}/")))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(header) = parts.headers.get(AUTHORIZATION).cloned() {
            let key = header
                .to_str()
                .ok()
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(str::trim)
                .filter(|k| !k.is_empty() && k.len() <= 200)
                .ok_or(ApiError::Unauthorized)?;
            let Client(origin) = Client::from_request_parts(parts, state)
                .await
                .unwrap_or_else(|e| match e {});
            let user = users::user_for_api_key(&state.pool, key, origin.ip.as_deref())
                .await?
                .ok_or(ApiError::Unauthorized)?;
            state.limits.verified(&parts.headers, user.id);
            return Ok(Self {
                user,
                via: Via::ApiKey,
            });
        }
        let token = session_token(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let accounts = &state.config.accounts;
        let found = sessions::user_for_token(
            &state.pool,
            &token,
            chrono::Duration::hours(accounts.session_ttl_hours),
            chrono::Duration::days(accounts.session_remember_days),
        )
        .await?
        .ok_or(ApiError::Unauthorized)?;
        state.limits.verified(&parts.headers, found.user.id);
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe && !same_origin(state, &parts.headers) {
            return Err(ApiError::Csrf);
        }
        Ok(Self {
            user: found.user,
            via: Via::Session(found.session_id),
        })
    }
}

/// What a caller presented, kept so a long-lived stream can check it again:
/// the session's id, or the API key's SHA-256 hash (never the key).
#[derive(Clone)]
pub enum Credential {
    Session(Uuid),
    ApiKey(Vec<u8>),
}

impl Caller {
    /// The credential this caller was resolved from, read again from the request
    /// the same way the extractor read it.
    pub fn credential(&self, headers: &HeaderMap) -> Option<Credential> {
        match self.via {
            Via::Session(id) => Some(Credential::Session(id)),
            Via::ApiKey => bearer_key(headers).map(|k| Credential::ApiKey(users::hash_key(k))),
        }
    }

    /// `may_see` for a tenant known only by its owner's id (a stream's re-check).
    pub fn may_see_owned_by(&self, owner: Uuid) -> bool {
        self.is_admin() || owner == self.user.id
    }
}

/// The API key in `Authorization: Bearer <key>`, by the extractor's rules.
pub fn bearer_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 200)
}
