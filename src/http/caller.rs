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

/// The session cookie on plain http (development).
pub const SESSION_COOKIE: &str = "fp_session";
/// The session cookie on https. Browsers accept a `__Host-` cookie only with
/// `Secure`, `Path=/` and no `Domain`, so a tenant's subdomain cannot plant one
/// for the platform's host (session fixation); a plain `fp_session` is then
/// ignored.
pub const HOST_SESSION_COOKIE: &str = "__Host-fp_session";

/// The session cookie's name for this platform: `__Host-` when it is on https.
pub fn session_cookie_name(state: &AppState) -> &'static str {
    if state.config.accounts.secure_cookies() {
        HOST_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

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

/// The value of the cookie `name` in the Cookie header, if any.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 200)
}

/// A session token under either cookie name, unchecked: for keying the rate
/// limiter only. Authentication reads the one name `session_cookie_name` gives.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    cookie(headers, HOST_SESSION_COOKIE).or_else(|| cookie(headers, SESSION_COOKIE))
}

/// Set-Cookie for a new session (HttpOnly, SameSite=Lax; `__Host-` and Secure
/// on https).
pub fn session_cookie(state: &AppState, token: &str, max_age_secs: i64) -> HeaderValue {
    let name = session_cookie_name(state);
    let secure = if state.config.accounts.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    let value =
        format!("{name}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}");
    HeaderValue::from_str(&value).unwrap_or_else(|_| clear_cookie(state))
}

/// Set-Cookie that ends the session cookie in the browser.
pub fn clear_cookie(state: &AppState) -> HeaderValue {
    if state.config.accounts.secure_cookies() {
        HeaderValue::from_static(
            "__Host-fp_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure",
        )
    } else {
        HeaderValue::from_static("fp_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
    }
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
        if parts.headers.contains_key(AUTHORIZATION) {
            let key = bearer_key(&parts.headers)
                .ok_or(ApiError::Unauthorized)?
                .to_owned();
            let Client(origin) = Client::from_request_parts(parts, state)
                .await
                .unwrap_or_else(|e| match e {});
            let user = users::user_for_api_key(&state.pool, &key, origin.ip.as_deref())
                .await?
                .ok_or(ApiError::Unauthorized)?;
            state.limits.verified(&parts.headers, user.id);
            return Ok(Self {
                user,
                via: Via::ApiKey,
            });
        }
        session_caller(parts, state).await
    }
}

/// The caller behind the session cookie (the pages know no other credential);
/// a cookie-authenticated change must come from the platform's own origin.
pub async fn session_caller(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    let token = cookie(&parts.headers, session_cookie_name(state)).ok_or(ApiError::Unauthorized)?;
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
    Ok(Caller {
        user: found.user,
        via: Via::Session(found.session_id),
    })
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

/// The API key in `Authorization: Bearer <key>`: the one parser of that header.
pub fn bearer_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 200)
}
