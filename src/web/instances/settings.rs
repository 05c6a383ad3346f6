//! `/instances/{id}/settings`: the Fresco options an owner may change (a fixed
//! allow-list, `provision::spec::FrescoSettings`), each explained in a
//! sentence. Saving stores them and wakes the reconciler, which sees the
//! container's spec hash differ and recreates it with the new env, keeping the
//! data (an `update` in the deployment history; the badge shows "Updating").

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{visible, Badge};
use crate::http::caller::Caller;
use crate::http::client::Client;
use crate::http::AppState;
use crate::provision::spec::FrescoSettings;
use crate::store::audit::{self, Entry};
use crate::store::tenants::{self, SettingsRefused, Tenant};
use crate::web::error::WebError;
use crate::web::form::{FieldErrors, PageForm};
use crate::web::layout::{Layout, Notice, Section};
use crate::web::session::Member;

#[derive(Template, WebTemplate)]
#[template(path = "instances/settings.html")]
pub struct SettingsPage {
    layout: Layout,
    id: String,
    subdomain: String,
    badge: Badge,
    disable_analytics: bool,
    sandbox_mode: bool,
    errors: FieldErrors,
}

fn page(state: &AppState, caller: &Caller, t: &Tenant, errors: FieldErrors) -> SettingsPage {
    let settings = t.settings();
    SettingsPage {
        layout: Layout::member(
            format!("Settings of {}", t.subdomain),
            Section::Dashboard,
            caller,
        ),
        id: t.id.to_string(),
        subdomain: t.subdomain.clone(),
        badge: Badge::of(t),
        disable_analytics: settings.analytics_disabled(&state.config.tenants),
        sandbox_mode: settings.sandbox(),
        errors,
    }
}

pub async fn settings_page(
    State(state): State<AppState>,
    Member(caller): Member,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<SettingsPage, WebError> {
    let tenant = visible(&state, &caller, &id).await?;
    let mut page = page(&state, &caller, &tenant, FieldErrors::new());
    page.layout = page.layout.with_notice(&headers);
    Ok(page)
}

/// Checkboxes: present when ticked.
#[derive(Deserialize)]
pub struct SettingsForm {
    disable_analytics: Option<String>,
    sandbox_mode: Option<String>,
}

pub async fn save(
    State(state): State<AppState>,
    Member(caller): Member,
    Client(origin): Client,
    Path(id): Path<String>,
    PageForm(form): PageForm<SettingsForm>,
) -> Result<Response, WebError> {
    let tenant = visible(&state, &caller, &id).await?;
    // A change recreates the container: the same budget as lifecycle actions.
    if let Err(e) = state
        .limits
        .user_action(caller.user.id, "deployments and lifecycle actions")
    {
        let mut errors = FieldErrors::new();
        errors.absorb(e)?;
        let page = page(&state, &caller, &tenant, errors);
        return Ok((StatusCode::TOO_MANY_REQUESTS, page).into_response());
    }
    let wanted = FrescoSettings {
        disable_analytics: Some(form.disable_analytics.is_some()),
        sandbox_mode: Some(form.sandbox_mode.is_some()),
    };
    let saved = match tenants::save_settings(&state.pool, tenant.tenant_id(), wanted).await {
        Ok(t) => t,
        Err(SettingsRefused::Store(e)) => return Err(e.into()),
        Err(refused @ SettingsRefused::Gone(_)) => {
            let mut errors = FieldErrors::new();
            errors.form = Some(refused.to_string());
            let page = page(&state, &caller, &tenant, errors);
            return Ok((StatusCode::CONFLICT, page).into_response());
        }
    };
    let entry = Entry::new(Some(caller.user.id), "tenant.settings")
        .on("tenant", saved.id)
        .with(serde_json::to_value(wanted).unwrap_or_default());
    audit::record(&state.pool, &origin, entry).await?;
    tracing::info!(tenant_id = %saved.id, "tenant settings changed");
    Ok((
        [Notice::SettingsSaved.cookie()],
        Redirect::to(&format!("/instances/{}", saved.id)),
    )
        .into_response())
}
