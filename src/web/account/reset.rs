//! Password reset from the pages: ask for a link (the answer is the same
//! whether or not an account uses the address), then choose a new password
//! with the emailed token. The token rides in the link's fragment
//! (`/reset-password#token=…`), which the browser never sends: `account.js`
//! moves it into the form and out of the address bar; without JavaScript the
//! person pastes the code from the mail. The operations are the API's
//! (`http::auth::password::{send_reset, reset}`).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use crate::http::auth::password::{reset, send_reset};
use crate::http::client::Client;
use crate::http::AppState;
use crate::web::error::WebError;
use crate::web::form::{FieldErrors, PageForm};
use crate::web::layout::{Layout, Notice, Section};
use crate::web::session::Member;

#[derive(Template, WebTemplate)]
#[template(path = "account/reset_password.html")]
pub struct ResetPage {
    layout: Layout,
    /// The "get a reset link" form: hidden after a confirmation fails on a
    /// password problem (the code is still good), shown otherwise.
    show_request: bool,
    email: String,
    request_errors: FieldErrors,
    /// The code, kept when the confirm form comes back with an error.
    token: String,
    errors: FieldErrors,
    ttl_minutes: i64,
}

impl ResetPage {
    fn new(state: &AppState, layout: Layout) -> Self {
        Self {
            layout,
            show_request: true,
            email: String::new(),
            request_errors: FieldErrors::new(),
            token: String::new(),
            errors: FieldErrors::new(),
            ttl_minutes: state.config.accounts.password_reset_ttl_minutes,
        }
    }
}

fn layout(member: Option<&Member>) -> Layout {
    Layout::new("Reset your password", Section::Account).signed_in(member.map(|Member(c)| c))
}

async fn page(
    State(state): State<AppState>,
    member: Option<Member>,
    headers: HeaderMap,
) -> ResetPage {
    ResetPage::new(&state, layout(member.as_ref()).with_notice(&headers))
}

#[derive(Deserialize)]
pub struct RequestForm {
    #[serde(default)]
    email: String,
}

async fn request(
    State(state): State<AppState>,
    Client(origin): Client,
    member: Option<Member>,
    PageForm(form): PageForm<RequestForm>,
) -> Result<Response, WebError> {
    let mut errors = FieldErrors::new();
    if form.email.trim().is_empty() {
        errors.add("email", "Enter the email address of your account.");
    } else {
        match send_reset(&state, &origin, &form.email).await {
            Ok(()) => {
                return Ok((
                    [Notice::PasswordResetSent.cookie()],
                    Redirect::to("/reset-password"),
                )
                    .into_response())
            }
            Err(e) => errors.absorb(e)?,
        }
    }
    let mut page = ResetPage::new(&state, layout(member.as_ref()));
    page.email = form.email;
    page.request_errors = errors;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfirmForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

async fn confirm(
    State(state): State<AppState>,
    Client(origin): Client,
    member: Option<Member>,
    PageForm(form): PageForm<ConfirmForm>,
) -> Result<Response, WebError> {
    let token = form.token.trim();
    let mut errors = FieldErrors::new();
    if token.is_empty() {
        errors.add(
            "token",
            "Paste the reset code from the mail, or open the link in it.",
        );
    }
    check_new_password(&mut errors, &form.new_password, &form.confirm_password);
    if errors.is_empty() {
        match reset(&state, &origin, token, form.new_password).await {
            Ok(()) => {
                return Ok(
                    ([Notice::PasswordReset.cookie()], Redirect::to("/login")).into_response()
                )
            }
            Err(e) => errors.absorb(e)?,
        }
    }
    let mut page = ResetPage::new(&state, layout(member.as_ref()));
    // A used or expired code (or a rate limit) needs a new link; a password
    // the rules refuse does not.
    page.show_request = errors.form.is_some();
    page.token = token.to_owned();
    page.errors = errors;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

/// The checks only a form has: a password typed at all, and typed the same
/// twice. The rules themselves are the API's.
pub(super) fn check_new_password(errors: &mut FieldErrors, new: &str, confirmation: &str) {
    if new.is_empty() {
        errors.add("newPassword", "Choose a new password.");
    } else if new != confirmation {
        errors.add(
            "confirmPassword",
            "The two passwords differ. Type the new password again.",
        );
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/reset-password", get(page).post(request))
        .route("/reset-password/confirm", post(confirm))
}
