//! The signup wizard's pages, six steps at `/signup`: account, intended use
//! and terms (`steps`, with the live password-strength fragment), the
//! subdomain (`subdomain`, with the live availability fragment), then the
//! deployment's live progress and the success page (`progress`). Every rule is the API's own
//! (`http::wizard::{session, steps, deploy, subdomain}`, `http::tenants`): the
//! pages only turn forms into those calls and errors into fields.
//!
//! Between requests the page keeps the signup session's id in a short cookie,
//! `fp_signup` (`__Host-fp_signup` on https, so a tenant's subdomain cannot
//! plant one): HttpOnly, SameSite=Lax, as long as the session lives. The id is
//! a random UUID (v4) and never appears in a URL. Deploying clears it; from then
//! on the person is signed in and the pages name the tenant instead.

mod progress;
mod steps;
mod subdomain;

use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Router;
use uuid::Uuid;

use super::error::WebError;
use super::layout::{Layout, Section};
use super::session::Member;
use crate::http::caller::{cookie, same_origin};
use crate::http::error::ApiError;
use crate::http::wizard::{self, usable};
use crate::http::AppState;
use crate::store::signup::SignupSession;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(steps::router())
        .merge(subdomain::router())
        .merge(progress::router())
}

const COOKIE: &str = "fp_signup";
const HOST_COOKIE: &str = "__Host-fp_signup";

fn cookie_name(state: &AppState) -> &'static str {
    if state.config.accounts.secure_cookies() {
        HOST_COOKIE
    } else {
        COOKIE
    }
}

/// Set-Cookie that keeps the signup session `id` for as long as it lives.
fn keep_session(state: &AppState, id: Uuid) -> (HeaderName, HeaderValue) {
    let secure = if state.config.accounts.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    let max_age = state.config.accounts.signup_ttl_minutes * 60;
    let value = format!(
        "{}={id}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        cookie_name(state)
    );
    (
        SET_COOKIE,
        HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("")),
    )
}

/// Set-Cookie that forgets the signup session (after deploying).
fn forget_session(state: &AppState) -> (HeaderName, HeaderValue) {
    let secure = if state.config.accounts.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    let value = format!(
        "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}",
        cookie_name(state)
    );
    (
        SET_COOKIE,
        HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("")),
    )
}

/// The signup session this browser is filling in, if any (a missing, unknown
/// or malformed id is simply no session).
async fn current(state: &AppState, headers: &HeaderMap) -> Result<Option<SignupSession>, WebError> {
    let Some(id) = cookie(headers, cookie_name(state)) else {
        return Ok(None);
    };
    match wizard::load(state, &id).await {
        Ok(session) => Ok(Some(session)),
        Err(ApiError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The wizard's forms change state without a signed-in user, so they hold
/// themselves to the rule signed-in forms follow: posted from this platform's
/// own pages (Origin, or failing that Referer). Deploying signs a person in; a
/// form on another site must not be able to do that to a visitor.
fn from_our_pages(state: &AppState, headers: &HeaderMap) -> Result<(), WebError> {
    if same_origin(state, headers) {
        Ok(())
    } else {
        Err(ApiError::Csrf.into())
    }
}

/// The page of the step a session should fill in next (1–4), or where it
/// stands once deployed.
fn next_page(session: &SignupSession) -> String {
    if let Some(tenant) = session.tenant_id {
        return format!("/signup/progress/{tenant}");
    }
    match session.steps_done {
        0 => "/signup".into(),
        1 => "/signup/use".into(),
        2 => "/signup/subdomain".into(),
        _ => "/signup/terms".into(),
    }
}

/// The frame of a wizard page; a signed-in visitor keeps their navigation.
pub(super) fn frame(title: &str, member: Option<Member>, headers: &HeaderMap) -> Layout {
    let caller = member.map(|Member(c)| c);
    Layout::new(title, Section::Home)
        .signed_in(caller.as_ref())
        .with_notice(headers)
}

pub(super) fn refused(page: impl IntoResponse) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
}

/// The session a step page needs: one that has done the steps before `step`.
/// Anyone else goes to the step they are at (or to step 1).
pub(super) async fn session_for(
    state: &AppState,
    headers: &HeaderMap,
    step: i32,
) -> Result<Result<SignupSession, Redirect>, WebError> {
    let Some(session) = current(state, headers).await? else {
        return Ok(Err(Redirect::to("/signup")));
    };
    if session.tenant_id.is_some() || session.steps_done < step - 1 {
        return Ok(Err(Redirect::to(&next_page(&session))));
    }
    if usable(&session).is_err() {
        return Ok(Err(Redirect::to("/signup")));
    }
    Ok(Ok(session))
}

/// API messages start in lower case; a sentence on a page does not.
pub(super) fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(steps_done: i32, tenant: Option<Uuid>) -> SignupSession {
        let now = chrono::Utc::now();
        SignupSession {
            id: Uuid::new_v4(),
            email: "a@b.c".into(),
            login_required: false,
            name: None,
            password_hash: None,
            intended_use: None,
            intended_use_other: None,
            subdomain: None,
            terms_version: None,
            terms_accepted_at: None,
            steps_done,
            user_id: None,
            tenant_id: tenant,
            deployed_at: None,
            created_at: now,
            expires_at: now,
        }
    }

    #[test]
    fn a_session_resumes_at_its_next_step() {
        assert_eq!(next_page(&session(0, None)), "/signup");
        assert_eq!(next_page(&session(2, None)), "/signup/subdomain");
        assert_eq!(next_page(&session(4, None)), "/signup/terms");
        let t = Uuid::new_v4();
        assert_eq!(
            next_page(&session(4, Some(t))),
            format!("/signup/progress/{t}")
        );
    }
}
