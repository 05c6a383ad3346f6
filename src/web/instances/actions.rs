//! The quick actions (start, stop, restart) and the destroy confirmation. Each
//! goes through the API's own operation (`http::tenants::actions`): the same
//! lifecycle rules, rate limit, row lock and audit entry.
//!
//! A form posted by htmx gets the result fragment (200, so htmx swaps it,
//! refusals included); without JavaScript a success redirects back with a
//! notice and a refusal shows the page again with the refusal as an alert.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::dashboard::{self, DashboardQuery};
use super::{instance, visible};
use crate::domain::OwnerAction;
use crate::http::client::Client;
use crate::http::error::ApiError;
use crate::http::extract::TenantPath;
use crate::http::tenants::actions::{act, destroy_confirmed};
use crate::http::AppState;
use crate::store::audit::Origin;
use crate::web::error::WebError;
use crate::web::form::{FieldErrors, PageForm};
use crate::web::layout::{Layout, Notice, Section};
use crate::web::session::Member;

#[derive(Deserialize)]
pub struct ActionForm {
    /// Which page the form was on: `dashboard` or `instance`.
    back: Option<String>,
}

#[derive(Template)]
#[template(path = "instances/_result.html")]
struct ActionResult {
    ok: bool,
    message: String,
}

pub(super) fn is_htmx(headers: &HeaderMap) -> bool {
    headers.get("hx-request").is_some_and(|v| v == "true")
}

async fn run(
    state: AppState,
    caller: crate::http::caller::Caller,
    origin: Origin,
    id: String,
    headers: HeaderMap,
    form: ActionForm,
    action: OwnerAction,
) -> Result<Response, WebError> {
    let tenant = visible(&state, &caller, &id).await?;
    let outcome = act(
        &state,
        &caller,
        &origin,
        &TenantPath(tenant.tenant_id()),
        action,
    )
    .await;
    let refusal = match outcome {
        Ok(_) => None,
        Err(e @ (ApiError::Conflict { .. } | ApiError::RateLimited { .. })) => Some(e.to_string()),
        Err(e) => return Err(e.into()),
    };
    let on_instance = form.back.as_deref() == Some("instance");
    if is_htmx(&headers) {
        let result = match refusal {
            None => ActionResult {
                ok: true,
                message: format!(
                    "{} requested for {}. The status updates as it happens.",
                    capitalised(action.as_str()),
                    tenant.subdomain
                ),
            },
            Some(message) => ActionResult { ok: false, message },
        };
        return Ok(axum::response::Html(result.render()?).into_response());
    }
    let back = if on_instance {
        format!("/instances/{}", tenant.id)
    } else {
        "/dashboard".to_owned()
    };
    match refusal {
        None => Ok(([Notice::ActionRequested.cookie()], Redirect::to(&back)).into_response()),
        Some(message) if on_instance => {
            let page = instance::build(&state, &caller, tenant, None, Some(message)).await?;
            Ok((StatusCode::CONFLICT, page).into_response())
        }
        Some(message) => {
            let page =
                dashboard::build(&state, &caller, DashboardQuery::default(), Some(message)).await?;
            Ok((StatusCode::CONFLICT, page).into_response())
        }
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

macro_rules! action_handler {
    ($name:ident, $action:expr) => {
        pub async fn $name(
            State(state): State<AppState>,
            Member(caller): Member,
            Client(origin): Client,
            Path(id): Path<String>,
            headers: HeaderMap,
            PageForm(form): PageForm<ActionForm>,
        ) -> Result<Response, WebError> {
            run(state, caller, origin, id, headers, form, $action).await
        }
    };
}

action_handler!(start, OwnerAction::Start);
action_handler!(stop, OwnerAction::Stop);
action_handler!(restart, OwnerAction::Restart);

#[derive(Template, WebTemplate)]
#[template(path = "instances/destroy.html")]
pub struct DestroyPage {
    layout: Layout,
    id: String,
    subdomain: String,
    url: String,
    confirm: String,
    hint: String,
    /// How long the backups outlive the instance, when backups are on.
    backups_kept: Option<String>,
    errors: FieldErrors,
}

/// "Its backups are kept for 30 days, until …", from BACKUP_DESTROYED_GRACE
/// (the date `destroy_confirmed` sets if it is confirmed now).
fn backups_kept(state: &AppState) -> Option<String> {
    state.backups.as_ref()?;
    let grace = state.config.backups.backup_destroyed_grace;
    let until = chrono::Utc::now() + chrono::Duration::from_std(grace).ok()?;
    Some(format!(
        "Its backups are kept for {}, until {}; you can bring it back from them until then.",
        super::backups::duration_words(grace),
        super::backups::when(&until)
    ))
}

pub async fn destroy_page(
    State(state): State<AppState>,
    Member(caller): Member,
    Path(id): Path<String>,
) -> Result<DestroyPage, WebError> {
    let tenant = visible(&state, &caller, &id).await?;
    Ok(DestroyPage {
        layout: Layout::member(
            format!("Destroy {}", tenant.subdomain),
            Section::Dashboard,
            &caller,
        ),
        id: tenant.id.to_string(),
        url: state.config.tenants.tenant_url(&tenant.subdomain),
        hint: format!("Type {} exactly.", tenant.subdomain),
        subdomain: tenant.subdomain,
        confirm: String::new(),
        backups_kept: backups_kept(&state),
        errors: FieldErrors::new(),
    })
}

#[derive(Deserialize)]
pub struct DestroyForm {
    confirm: String,
}

pub async fn destroy(
    State(state): State<AppState>,
    Member(caller): Member,
    Client(origin): Client,
    Path(id): Path<String>,
    PageForm(form): PageForm<DestroyForm>,
) -> Result<Response, WebError> {
    let tenant = visible(&state, &caller, &id).await?;
    let path = TenantPath(tenant.tenant_id());
    let mut errors = FieldErrors::new();
    match destroy_confirmed(&state, &caller, &origin, &path, form.confirm.trim()).await {
        Ok(_) => {
            return Ok((
                [Notice::InstanceDestroying.cookie()],
                Redirect::to("/dashboard"),
            )
                .into_response())
        }
        // The API's check, said for a person typing.
        Err(ApiError::Validation { .. }) => errors.add(
            "confirm",
            format!(
                "That is not this instance's subdomain. Type {} exactly to destroy it.",
                tenant.subdomain
            ),
        ),
        Err(e) => errors.absorb(e)?,
    }
    let page = DestroyPage {
        layout: Layout::member(
            format!("Destroy {}", tenant.subdomain),
            Section::Dashboard,
            &caller,
        ),
        id: tenant.id.to_string(),
        url: state.config.tenants.tenant_url(&tenant.subdomain),
        hint: format!("Type {} exactly.", tenant.subdomain),
        subdomain: tenant.subdomain,
        confirm: form.confirm,
        backups_kept: backups_kept(&state),
        errors,
    };
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}
