//! Settings, password: change it with the current one. The API's operation
//! (`http::auth::password::change`) checks, hashes, writes, audits and signs
//! out every other session; this page keeps the one it is on.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::reset::check_new_password;
use super::SettingsTab;
use crate::http::auth::password::change;
use crate::http::caller::Caller;
use crate::http::client::Client;
use crate::http::AppState;
use crate::web::error::WebError;
use crate::web::form::{FieldErrors, PageForm};
use crate::web::layout::{Layout, Notice, Section};
use crate::web::session::Member;

#[derive(Template, WebTemplate)]
#[template(path = "account/settings_password.html")]
pub struct PasswordPage {
    layout: Layout,
    tab: SettingsTab,
    errors: FieldErrors,
}

impl PasswordPage {
    fn new(caller: &Caller, errors: FieldErrors) -> Self {
        Self {
            layout: Layout::member("Password · Settings", Section::Settings, caller),
            tab: SettingsTab::Password,
            errors,
        }
    }
}

async fn page(Member(caller): Member, headers: HeaderMap) -> PasswordPage {
    let mut page = PasswordPage::new(&caller, FieldErrors::new());
    page.layout = page.layout.with_notice(&headers);
    page
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

async fn save(
    State(state): State<AppState>,
    Client(origin): Client,
    Member(caller): Member,
    PageForm(form): PageForm<PasswordForm>,
) -> Result<Response, WebError> {
    let mut errors = FieldErrors::new();
    if form.current_password.is_empty() {
        errors.add("currentPassword", "Enter your current password.");
    }
    check_new_password(&mut errors, &form.new_password, &form.confirm_password);
    if errors.is_empty() {
        match change(
            &state,
            &caller,
            &origin,
            form.current_password,
            form.new_password,
        )
        .await
        {
            Ok(()) => {
                return Ok((
                    [Notice::PasswordChanged.cookie()],
                    Redirect::to("/settings/password"),
                )
                    .into_response())
            }
            Err(e) => errors.absorb(e)?,
        }
    }
    let page = PasswordPage::new(&caller, errors);
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

pub fn router() -> Router<AppState> {
    Router::new().route("/settings/password", get(page).post(save))
}
