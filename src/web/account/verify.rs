//! The email-verification landing: the emailed link (`/verify-email#token=…`,
//! the token in the fragment the browser never sends) opens this page, whose
//! script posts the token in the page's form; without JavaScript the person
//! pastes the code. A used or expired link says so, with a button for a new
//! one when signed in. The operations are the API's
//! (`http::auth::verification::{confirm_email, resend_verification}`).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use crate::http::auth::verification::{confirm_email, resend_verification};
use crate::http::caller::Caller;
use crate::http::client::Client;
use crate::http::AppState;
use crate::store::users;
use crate::web::error::WebError;
use crate::web::form::{FieldErrors, PageForm};
use crate::web::layout::{Layout, Notice, Section};
use crate::web::session::Member;

#[derive(Template, WebTemplate)]
#[template(path = "account/verify_email.html")]
pub struct VerifyPage {
    layout: Layout,
    errors: FieldErrors,
    /// Signed in with an address still to verify: a new link is a click away.
    can_resend: bool,
    /// Signed in and waiting for a new address: a new link comes from settings.
    pending_email: Option<String>,
    /// Signed in and nothing left to verify.
    verified: bool,
}

impl VerifyPage {
    async fn new(
        state: &AppState,
        caller: Option<&Caller>,
        errors: FieldErrors,
    ) -> Result<Self, WebError> {
        let account = match caller {
            Some(c) => Some(users::account(&state.pool, c.user.id).await?),
            None => None,
        };
        let unverified = account
            .as_ref()
            .is_some_and(|a| a.email_verified_at.is_none());
        let pending_email = account.as_ref().and_then(|a| a.pending_email.clone());
        Ok(Self {
            layout: Layout::new("Confirm your email address", Section::Account).signed_in(caller),
            errors,
            can_resend: unverified,
            verified: account.is_some() && !unverified && pending_email.is_none(),
            pending_email,
        })
    }
}

async fn page(
    State(state): State<AppState>,
    member: Option<Member>,
    headers: HeaderMap,
) -> Result<VerifyPage, WebError> {
    let caller = member.map(|Member(c)| c);
    let mut page = VerifyPage::new(&state, caller.as_ref(), FieldErrors::new()).await?;
    page.layout = page.layout.with_notice(&headers);
    Ok(page)
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    token: String,
}

async fn confirm(
    State(state): State<AppState>,
    Client(origin): Client,
    member: Option<Member>,
    PageForm(form): PageForm<ConfirmForm>,
) -> Result<Response, WebError> {
    let caller = member.map(|Member(c)| c);
    let mut errors = FieldErrors::new();
    let token = form.token.trim();
    if token.is_empty() {
        errors.add(
            "token",
            "Paste the verification code from the mail, or open the link in it.",
        );
    } else {
        match confirm_email(&state, &origin, token).await {
            Ok(()) => {
                // Signed in, the profile shows the verified address; otherwise
                // the next step is signing in.
                let next = if caller.is_some() {
                    "/settings"
                } else {
                    "/login"
                };
                return Ok(([Notice::EmailVerified.cookie()], Redirect::to(next)).into_response());
            }
            Err(e) => errors.absorb(e)?,
        }
    }
    let page = VerifyPage::new(&state, caller.as_ref(), errors).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

async fn resend(
    State(state): State<AppState>,
    Member(caller): Member,
) -> Result<Response, WebError> {
    resend_verification(&state, &caller).await?;
    Ok((
        [Notice::VerificationSent.cookie()],
        Redirect::to("/settings"),
    )
        .into_response())
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/verify-email", get(page).post(confirm))
        .route("/verify-email/resend", post(resend))
}
