//! `/instances/{id}/backups/{backupId}/restore`: the confirmation before a
//! restore. A live instance offers two forms: replace its data (behind its
//! typed subdomain, as destroy is) or restore into a new instance; a destroyed
//! one only "Bring it back" into a new instance, at its old subdomain by
//! default. Both go through the API's `restore_backup`: the same checks,
//! quota, rate limit and audit entry.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::Value;

use super::backups::{refused_words, BackupLine};
use super::visible;
use crate::domain::DesiredState;
use crate::http::backups::{
    load_backup, readable, restore_backup, service, BackupPath, RestoreRequest,
};
use crate::http::caller::Caller;
use crate::http::client::Client;
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::store::backups::BackupRow;
use crate::store::tenants::Tenant;
use crate::web::error::WebError;
use crate::web::form::{FieldErrors, PageForm};
use crate::web::layout::{Layout, Notice, Section};
use crate::web::session::Member;

#[derive(Template, WebTemplate)]
#[template(path = "instances/restore.html")]
pub struct RestorePage {
    layout: Layout,
    id: String,
    subdomain: String,
    backup: BackupLine,
    destroyed: bool,
    action: String,
    confirm: String,
    confirm_hint: String,
    new_subdomain: String,
    subdomain_hint: String,
    errors: FieldErrors,
}

fn page(
    state: &AppState,
    caller: &Caller,
    t: &Tenant,
    b: &BackupRow,
    form: RestoreForm,
    errors: FieldErrors,
) -> RestorePage {
    let destroyed = t.desired_state == DesiredState::Destroyed;
    let title = if destroyed {
        format!("Bring {} back", t.subdomain)
    } else {
        format!("Restore a backup of {}", t.subdomain)
    };
    RestorePage {
        layout: Layout::member(title, Section::Dashboard, caller),
        id: t.id.to_string(),
        subdomain: t.subdomain.clone(),
        backup: BackupLine::of(t, b),
        destroyed,
        action: format!("/instances/{}/backups/{}/restore", t.id, b.id),
        confirm: form.confirm,
        confirm_hint: format!("Type {} exactly.", t.subdomain),
        new_subdomain: form.subdomain,
        subdomain_hint: format!(
            "Lowercase letters, digits and hyphens, 3 to 63 of them. The new instance's address is {}.",
            state.config.tenants.tenant_url("subdomain")
        ),
        errors,
    }
}

/// The tenant and its backup behind the path, if the caller may see them,
/// and a backup that can be restored (complete) on a platform with backups.
async fn load(
    state: &AppState,
    caller: &Caller,
    id: &str,
    backup: &str,
) -> Result<(Tenant, BackupRow), WebError> {
    service(state)?;
    let tenant = visible(state, caller, id).await?;
    let backup = backup.parse().map_err(|_| WebError::NotFound)?;
    let path = BackupPath {
        tenant: tenant.tenant_id(),
        backup,
    };
    let (tenant, backup) = load_backup(state, caller, &path).await?;
    readable(&backup)?;
    Ok((tenant, backup))
}

pub async fn restore_page(
    State(state): State<AppState>,
    Member(caller): Member,
    Path((id, backup)): Path<(String, String)>,
) -> Result<RestorePage, WebError> {
    let (tenant, backup) = load(&state, &caller, &id, &backup).await?;
    // A destroyed instance comes back at its own subdomain unless told otherwise.
    let form = RestoreForm {
        into: String::new(),
        confirm: String::new(),
        subdomain: if tenant.desired_state == DesiredState::Destroyed {
            tenant.subdomain.clone()
        } else {
            String::new()
        },
    };
    Ok(page(
        &state,
        &caller,
        &tenant,
        &backup,
        form,
        FieldErrors::new(),
    ))
}

#[derive(Deserialize)]
pub struct RestoreForm {
    /// `same` or `new`, from the form's hidden field.
    into: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    subdomain: String,
}

pub async fn restore(
    State(state): State<AppState>,
    Member(caller): Member,
    Client(origin): Client,
    Path((id, backup)): Path<(String, String)>,
    PageForm(form): PageForm<RestoreForm>,
) -> Result<Response, WebError> {
    let (tenant, backup) = load(&state, &caller, &id, &backup).await?;
    let mut errors = FieldErrors::new();
    // Replacing the data is confirmed like destroy: the subdomain typed.
    if form.into == "same" && form.confirm.trim() != tenant.subdomain {
        errors.add(
            "confirm",
            format!(
                "That is not this instance's subdomain. Type {} exactly to replace its data.",
                tenant.subdomain
            ),
        );
        let page = page(&state, &caller, &tenant, &backup, form, errors);
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    let wanted = form.subdomain.trim();
    let request = RestoreRequest {
        into: Some(form.into.clone()),
        subdomain: (form.into == "new" && !wanted.is_empty()).then(|| wanted.to_lowercase()),
    };
    let path = BackupPath {
        tenant: tenant.tenant_id(),
        backup: backup.id,
    };
    let e = match restore_backup(&state, &caller, &origin, &path, request).await {
        Ok(row) => {
            let notice = if row.into_new {
                Notice::RestoreIntoNew
            } else {
                Notice::RestoreStarted
            };
            return Ok((
                [notice.cookie()],
                Redirect::to(&format!("/instances/{}", row.tenant_id)),
            )
                .into_response());
        }
        Err(e) => e,
    };
    let status = e.status();
    match e {
        // A field error sits beside its field; one about a field the form
        // does not have (the backup's integrity) goes above the forms.
        ApiError::Validation { message, details } => {
            let message = refused_words(&ApiError::BadRequest(message));
            match details.get("field").and_then(Value::as_str) {
                Some(f @ ("subdomain" | "confirm")) => errors.add(f, message),
                _ => errors.form = Some(message),
            }
        }
        // The quota: something the owner can act on.
        e @ ApiError::Forbidden(_) => errors.form = Some(refused_words(&e)),
        e @ (ApiError::Conflict { .. } | ApiError::RateLimited { .. } | ApiError::Gone(_)) => {
            errors.form = Some(refused_words(&e))
        }
        other => return Err(other.into()),
    }
    let page = page(&state, &caller, &tenant, &backup, form, errors);
    Ok((status, page).into_response())
}
