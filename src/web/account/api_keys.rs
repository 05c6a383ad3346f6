//! Settings, API keys: the list (name, prefix, created, last used, expiry;
//! never the key), creating one (the full key shown once, on the answer to
//! the form, stored only as a hash), and revoking one. The operations are the
//! API's (`http::api_keys::{create_key, revoke_key}`).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{Duration, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::{when, SettingsTab};
use crate::http::api_keys::{create_key, revoke_key, CreateKey, CreatedKey};
use crate::http::caller::Caller;
use crate::http::client::Client;
use crate::http::AppState;
use crate::store::users::{self, ApiKeyInfo};
use crate::web::error::WebError;
use crate::web::form::{FieldErrors, PageForm};
use crate::web::layout::{Layout, Notice, Section};
use crate::web::session::Member;

/// How long a new key may live, as the form offers it.
const LIFETIMES: [(&str, &str, Option<i64>); 4] = [
    ("never", "Never", None),
    ("30", "In 30 days", Some(30)),
    ("90", "In 90 days", Some(90)),
    ("365", "In a year", Some(365)),
];

/// One key as the list shows it.
pub struct KeyRow {
    id: Uuid,
    name: String,
    prefix: String,
    created: String,
    created_iso: String,
    last_used: Option<String>,
    expires: Option<String>,
    /// "active", "expired" or "revoked"; only active keys can be revoked.
    status: &'static str,
}

impl From<ApiKeyInfo> for KeyRow {
    fn from(k: ApiKeyInfo) -> Self {
        let status = if k.revoked_at.is_some() {
            "revoked"
        } else if k.expires_at.is_some_and(|e| e <= Utc::now()) {
            "expired"
        } else {
            "active"
        };
        Self {
            id: k.id,
            created: when(&k.created_at),
            created_iso: k.created_at.to_rfc3339(),
            last_used: k.last_used_at.as_ref().map(when),
            expires: k.expires_at.as_ref().map(when),
            name: k.name,
            prefix: k.prefix,
            status,
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "account/settings_api_keys.html")]
pub struct KeysPage {
    layout: Layout,
    tab: SettingsTab,
    keys: Vec<KeyRow>,
    /// Not `name`: the field macro's own parameter is called that.
    key_name: String,
    expires: String,
    lifetimes: &'static [(&'static str, &'static str, Option<i64>)],
    errors: FieldErrors,
}

impl KeysPage {
    async fn new(state: &AppState, caller: &Caller, errors: FieldErrors) -> Result<Self, WebError> {
        let keys = users::list_api_keys(&state.pool, caller.user.id).await?;
        Ok(Self {
            layout: Layout::member("API keys · Settings", Section::Settings, caller),
            tab: SettingsTab::ApiKeys,
            keys: keys.into_iter().map(KeyRow::from).collect(),
            key_name: String::new(),
            expires: "never".to_owned(),
            lifetimes: &LIFETIMES,
            errors,
        })
    }
}

/// The answer to the create form: the only page that ever holds the key.
#[derive(Template, WebTemplate)]
#[template(path = "account/api_key_created.html")]
pub struct CreatedPage {
    layout: Layout,
    tab: SettingsTab,
    key: CreatedKey,
    expires: Option<String>,
    platform_url: String,
}

async fn page(
    State(state): State<AppState>,
    Member(caller): Member,
    headers: HeaderMap,
) -> Result<KeysPage, WebError> {
    let mut page = KeysPage::new(&state, &caller, FieldErrors::new()).await?;
    page.layout = page.layout.with_notice(&headers);
    Ok(page)
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    expires: String,
}

async fn create(
    State(state): State<AppState>,
    Client(origin): Client,
    Member(caller): Member,
    PageForm(form): PageForm<CreateForm>,
) -> Result<Response, WebError> {
    let mut errors = FieldErrors::new();
    let lifetime = LIFETIMES
        .iter()
        .find(|(value, _, _)| *value == form.expires);
    match lifetime {
        None => errors.add("expires", "Choose when the key stops working."),
        Some((_, _, days)) => {
            let body = CreateKey {
                name: form.name.clone(),
                expires_at: days.map(|d| Utc::now() + Duration::days(d)),
            };
            match create_key(&state, &caller, &origin, body).await {
                Ok(key) => {
                    let page = CreatedPage {
                        layout: Layout::member(
                            "New API key · Settings",
                            Section::Settings,
                            &caller,
                        ),
                        tab: SettingsTab::ApiKeys,
                        expires: key.expires_at.as_ref().map(when),
                        key,
                        platform_url: state
                            .config
                            .accounts
                            .platform_url
                            .trim_end_matches('/')
                            .to_owned(),
                    };
                    return Ok((StatusCode::CREATED, page).into_response());
                }
                Err(e) => errors.absorb(e)?,
            }
        }
    }
    let mut page = KeysPage::new(&state, &caller, errors).await?;
    page.key_name = form.name;
    page.expires = form.expires;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

async fn revoke(
    State(state): State<AppState>,
    Client(origin): Client,
    Member(caller): Member,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    revoke_key(&state, &caller, &origin, &id).await?;
    Ok((
        [Notice::KeyRevoked.cookie()],
        Redirect::to("/settings/api-keys"),
    )
        .into_response())
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/settings/api-keys", get(page).post(create))
        .route("/settings/api-keys/{id}/revoke", post(revoke))
}
