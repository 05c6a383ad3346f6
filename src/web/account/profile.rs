//! Settings, profile: the name and the email address. An email change is the
//! API's (`http::auth::profile::update_profile`): it needs the current
//! password, mails a confirmation link to the new address and waits for it,
//! so the page shows the pending address until then.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::SettingsTab;
use crate::http::auth::profile::{update_profile, ProfileUpdate};
use crate::http::caller::Caller;
use crate::http::client::Client;
use crate::http::AppState;
use crate::store::users::{self, Account};
use crate::web::error::WebError;
use crate::web::form::{FieldErrors, PageForm};
use crate::web::layout::{Layout, Notice, Section};
use crate::web::session::Member;

#[derive(Template, WebTemplate)]
#[template(path = "account/settings_profile.html")]
pub struct ProfilePage {
    layout: Layout,
    tab: SettingsTab,
    /// Not `name`: the field macro's own parameter is called that.
    full_name: String,
    email: String,
    /// The address the account is confirmed as (the form may hold another).
    current_email: String,
    verified: bool,
    pending_email: Option<String>,
    errors: FieldErrors,
}

impl ProfilePage {
    fn new(caller: &Caller, account: &Account, errors: FieldErrors) -> Self {
        Self {
            layout: Layout::member("Profile · Settings", Section::Settings, caller),
            tab: SettingsTab::Profile,
            full_name: account.name.clone().unwrap_or_default(),
            email: account.email.clone(),
            current_email: account.email.clone(),
            verified: account.email_verified_at.is_some(),
            pending_email: account.pending_email.clone(),
            errors,
        }
    }
}

async fn page(
    State(state): State<AppState>,
    Member(caller): Member,
    headers: HeaderMap,
) -> Result<ProfilePage, WebError> {
    let account = users::account(&state.pool, caller.user.id).await?;
    let mut page = ProfilePage::new(&caller, &account, FieldErrors::new());
    page.layout = page.layout.with_notice(&headers);
    Ok(page)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    current_password: String,
}

async fn save(
    State(state): State<AppState>,
    Client(origin): Client,
    Member(caller): Member,
    PageForm(form): PageForm<ProfileForm>,
) -> Result<Response, WebError> {
    let account = users::account(&state.pool, caller.user.id).await?;
    let changes_email = !form.email.trim().eq_ignore_ascii_case(&account.email);
    let mut errors = FieldErrors::new();
    if changes_email && form.current_password.is_empty() {
        errors.add(
            "currentPassword",
            "Enter your current password to change your email address.",
        );
    }
    if errors.is_empty() {
        let update = ProfileUpdate {
            // A blank name on an account that never had one is no change.
            name: if form.name.trim().is_empty() && account.name.is_none() {
                None
            } else {
                Some(form.name.clone())
            },
            email: changes_email.then(|| form.email.trim().to_owned()),
            current_password: changes_email.then(|| form.current_password.clone()),
        };
        match update_profile(&state, &caller, &origin, update).await {
            Ok(_) => {
                let notice = if changes_email {
                    Notice::EmailChangeSent
                } else {
                    Notice::ProfileSaved
                };
                return Ok(([notice.cookie()], Redirect::to("/settings")).into_response());
            }
            Err(e) => errors.absorb(e)?,
        }
    }
    let mut page = ProfilePage::new(&caller, &account, errors);
    page.full_name = form.name;
    page.email = form.email;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/settings", get(page))
        .route("/settings/profile", post(save))
}
