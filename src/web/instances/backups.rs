//! `/instances/{id}/backups`: the instance's backups (kind, status, size,
//! rows, downloads, a restore link for each complete one) and its restores;
//! "Back up now" for a live instance; for a destroyed one, until when its
//! backups are kept and "Delete backups now". The rules are the API's
//! (`http::backups`): the same rate limit, state checks and audit entries.
//!
//! The list is one partial, `_backups_live.html`: the page includes it, and
//! while a backup, a restore or a deletion is under way it polls itself
//! (`/backups/live`) through htmx until nothing is. "Back up now" posted by
//! htmx answers with the result and the fresh list (an out-of-band swap);
//! without JavaScript it redirects back with a notice, or shows the page
//! again with the refusal as an alert.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::actions::is_htmx;
use super::{visible, Badge};
use crate::domain::TenantStatus;
use crate::http::backups::{delete_backups_now, request_backup};
use crate::http::caller::Caller;
use crate::http::client::Client;
use crate::http::error::ApiError;
use crate::http::extract::TenantPath;
use crate::http::AppState;
use crate::store::backups::{self, kind, BackupRow};
use crate::store::restores::{self, Phase, RestoreRow};
use crate::store::tenants::Tenant;
use crate::web::error::WebError;
use crate::web::form::{FieldErrors, PageForm};
use crate::web::layout::{Layout, Notice, Section};
use crate::web::session::Member;

/// One backup as the list shows it.
pub struct BackupLine {
    pub id: i64,
    pub kind: &'static str,
    pub status: &'static str,
    /// The badge class of its status.
    pub badge: &'static str,
    pub taken: String,
    pub taken_iso: String,
    pub size: Option<String>,
    pub rows: Option<i64>,
    /// Why it failed, or why it was deleted.
    pub problem: Option<String>,
    pub complete: bool,
    pub dump_url: String,
    pub sql_url: String,
    pub restore_url: String,
}

impl BackupLine {
    pub fn of(tenant: &Tenant, b: &BackupRow) -> Self {
        let (status, badge) = status_words(&b.status);
        let at = b.completed_at.unwrap_or(b.created_at);
        let api = format!("/api/v1/tenants/{}/backups/{}", tenant.id, b.id);
        Self {
            id: b.id,
            kind: kind_words(&b.kind),
            status,
            badge,
            taken: when(&at),
            taken_iso: at.to_rfc3339(),
            size: b.dump_bytes.map(size_words),
            rows: b
                .row_counts
                .as_ref()
                .map(|_| b.counts().values().sum::<i64>()),
            problem: match b.status.as_str() {
                "failed" => b.error.clone(),
                "deleted" => b.deleted_why.clone(),
                _ => None,
            },
            complete: b.complete(),
            dump_url: format!("{api}/download?format=dump"),
            sql_url: format!("{api}/download?format=sql"),
            restore_url: format!("/instances/{}/backups/{}/restore", tenant.id, b.id),
        }
    }
}

/// One restore as the list shows it.
pub struct RestoreLine {
    pub id: i64,
    pub backup_id: i64,
    pub into_new: bool,
    pub phase: &'static str,
    pub badge: &'static str,
    pub started: String,
    pub started_iso: String,
    pub error: Option<String>,
    pub safety_backup_id: Option<i64>,
}

impl RestoreLine {
    fn of(r: &RestoreRow) -> Self {
        let (phase, badge) = phase_words(r.phase());
        Self {
            id: r.id,
            backup_id: r.backup_id,
            into_new: r.into_new,
            phase,
            badge,
            started: when(&r.created_at),
            started_iso: r.created_at.to_rfc3339(),
            error: r.error.clone(),
            safety_backup_id: r.safety_backup_id,
        }
    }
}

/// What the live partial shows: the backups and restores, and whether
/// anything is still under way (then it polls).
pub struct BackupsRegion {
    pub id: String,
    pub destroyed: bool,
    pub busy: bool,
    pub backups: Vec<BackupLine>,
    pub restores: Vec<RestoreLine>,
}

impl BackupsRegion {
    async fn load(state: &AppState, t: &Tenant) -> Result<Self, WebError> {
        let rows = backups::of_tenant(&state.pool, t.tenant_id(), 200).await?;
        let restores = restores::of_tenant(&state.pool, t.tenant_id()).await?;
        let destroyed = t.desired_state == crate::domain::DesiredState::Destroyed;
        // A destroyed instance whose grace period is over: its backups are
        // being deleted.
        let expiring = t.backups_kept_until().is_some_and(|k| k <= Utc::now());
        let busy = rows.iter().any(|b| match b.status.as_str() {
            "pending" | "running" => true,
            "complete" | "failed" => expiring,
            _ => false,
        }) || restores
            .iter()
            .any(|r| !matches!(r.phase(), Phase::Done | Phase::Failed | Phase::Abandoned))
            || (destroyed && t.status != TenantStatus::Destroyed);
        Ok(Self {
            id: t.id.to_string(),
            destroyed,
            busy,
            backups: rows.iter().map(|b| BackupLine::of(t, b)).collect(),
            restores: restores.iter().map(RestoreLine::of).collect(),
        })
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "instances/backups.html")]
pub struct BackupsPage {
    layout: Layout,
    id: String,
    subdomain: String,
    badge: Badge,
    /// Backups are on (BACKUP_KEY_FILE set).
    enabled: bool,
    destroyed: bool,
    /// For a destroyed instance: until when its backups are kept.
    kept_until: Option<String>,
    /// "daily", "every 6h", or None when only backups by hand are taken.
    schedule: Option<String>,
    manual_interval: String,
    /// Backups still kept (not deleted), for "Delete backups now".
    kept: usize,
    region: BackupsRegion,
    /// A refused "Back up now" or "Delete backups now" (no JS).
    alert: Option<String>,
    confirm: String,
    hint: String,
    errors: FieldErrors,
}

async fn page(
    state: &AppState,
    caller: &Caller,
    t: &Tenant,
    alert: Option<String>,
    confirm: String,
    errors: FieldErrors,
) -> Result<BackupsPage, WebError> {
    let region = BackupsRegion::load(state, t).await?;
    let cfg = &state.config.backups;
    Ok(BackupsPage {
        layout: Layout::member(
            format!("Backups of {}", t.subdomain),
            Section::Dashboard,
            caller,
        ),
        id: t.id.to_string(),
        subdomain: t.subdomain.clone(),
        badge: Badge::of(t),
        enabled: state.backups.is_some(),
        destroyed: region.destroyed,
        kept_until: t.backups_kept_until().map(|k| when(&k)),
        schedule: cfg
            .schedule()
            .ok()
            .flatten()
            .map(|_| schedule_words(&cfg.backup_schedule)),
        manual_interval: duration_words(cfg.backup_manual_interval),
        kept: region
            .backups
            .iter()
            .filter(|b| b.status != "Deleted")
            .count(),
        region,
        alert,
        confirm,
        hint: format!("Type {} exactly.", t.subdomain),
        errors,
    })
}

pub async fn backups_page(
    State(state): State<AppState>,
    Member(caller): Member,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<BackupsPage, WebError> {
    let tenant = visible(&state, &caller, &id).await?;
    let mut page = page(
        &state,
        &caller,
        &tenant,
        None,
        String::new(),
        FieldErrors::new(),
    )
    .await?;
    page.layout = page.layout.with_notice(&headers);
    Ok(page)
}

/// The live list alone, as the page polls it.
#[derive(Template)]
#[template(path = "instances/_backups_live.html")]
struct RegionFragment<'a> {
    region: &'a BackupsRegion,
    oob: bool,
}

pub async fn live(
    State(state): State<AppState>,
    Member(caller): Member,
    Path(id): Path<String>,
) -> Result<Html<String>, WebError> {
    let tenant = visible(&state, &caller, &id).await?;
    let region = BackupsRegion::load(&state, &tenant).await?;
    Ok(Html(
        RegionFragment {
            region: &region,
            oob: false,
        }
        .render()?,
    ))
}

/// htmx's answer to "Back up now": the result, and the list swapped out of
/// band so the new backup shows at once.
#[derive(Template)]
#[template(path = "instances/_backup_answer.html")]
struct BackupAnswer<'a> {
    ok: bool,
    message: String,
    region: &'a BackupsRegion,
    oob: bool,
}

/// Forms with nothing to send but the button.
#[derive(Deserialize)]
pub struct EmptyForm {}

pub async fn back_up_now(
    State(state): State<AppState>,
    Member(caller): Member,
    Client(origin): Client,
    Path(id): Path<String>,
    headers: HeaderMap,
    PageForm(EmptyForm {}): PageForm<EmptyForm>,
) -> Result<Response, WebError> {
    let tenant = visible(&state, &caller, &id).await?;
    let path = TenantPath(tenant.tenant_id());
    let refusal = match request_backup(&state, &caller, &origin, &path).await {
        Ok(_) => None,
        Err(e @ (ApiError::Conflict { .. } | ApiError::RateLimited { .. })) => Some(e),
        Err(e) => return Err(e.into()),
    };
    if is_htmx(&headers) {
        let region = BackupsRegion::load(&state, &tenant).await?;
        let (ok, message) = match refusal {
            None => (
                true,
                "Backup requested. It shows below as it is taken.".to_owned(),
            ),
            Some(e) => (false, refused_words(&e)),
        };
        let answer = BackupAnswer {
            ok,
            message,
            region: &region,
            oob: true,
        };
        return Ok(Html(answer.render()?).into_response());
    }
    match refusal {
        None => Ok((
            [Notice::BackupRequested.cookie()],
            Redirect::to(&format!("/instances/{}/backups", tenant.id)),
        )
            .into_response()),
        Some(e) => {
            let status = e.status();
            let alert = Some(refused_words(&e));
            let page = page(
                &state,
                &caller,
                &tenant,
                alert,
                String::new(),
                FieldErrors::new(),
            )
            .await?;
            Ok((status, page).into_response())
        }
    }
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    confirm: String,
}

/// "Delete backups now" for a destroyed instance, behind its typed subdomain.
pub async fn delete_now(
    State(state): State<AppState>,
    Member(caller): Member,
    Client(origin): Client,
    Path(id): Path<String>,
    PageForm(form): PageForm<DeleteForm>,
) -> Result<Response, WebError> {
    let tenant = visible(&state, &caller, &id).await?;
    let mut errors = FieldErrors::new();
    if form.confirm.trim() != tenant.subdomain {
        errors.add(
            "confirm",
            format!(
                "That is not this instance's subdomain. Type {} exactly to delete its backups.",
                tenant.subdomain
            ),
        );
        let page = page(&state, &caller, &tenant, None, form.confirm, errors).await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    let path = TenantPath(tenant.tenant_id());
    match delete_backups_now(&state, &caller, &origin, &path).await {
        Ok(_) => Ok((
            [Notice::BackupsDeleting.cookie()],
            Redirect::to(&format!("/instances/{}/backups", tenant.id)),
        )
            .into_response()),
        Err(e @ ApiError::Conflict { .. }) => {
            let status = e.status();
            let page = page(
                &state,
                &caller,
                &tenant,
                Some(refused_words(&e)),
                form.confirm,
                errors,
            )
            .await?;
            Ok((status, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// An API refusal as a sentence on a page.
pub fn refused_words(e: &ApiError) -> String {
    let text = e.to_string();
    let mut chars = text.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default();
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// A time as the backup pages show it.
pub fn when(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub fn kind_words(k: &str) -> &'static str {
    match k {
        kind::SCHEDULED => "Scheduled",
        kind::MANUAL => "By hand",
        kind::PRE_RESTORE => "Before a restore",
        kind::FINAL => "At destroy",
        _ => "Other",
    }
}

/// A backup's status in words, and its badge class.
fn status_words(status: &str) -> (&'static str, &'static str) {
    match status {
        "pending" => ("Queued", "pending"),
        "running" => ("Being taken", "provisioning"),
        "complete" => ("Complete", "running"),
        "failed" => ("Failed", "failed"),
        _ => ("Deleted", "destroyed"),
    }
}

fn phase_words(phase: Phase) -> (&'static str, &'static str) {
    match phase {
        Phase::Pending => ("Queued", "pending"),
        Phase::Verified => ("Backup checked", "provisioning"),
        Phase::Stopped => ("Instance stopped", "provisioning"),
        Phase::BackedUp => ("Current data backed up", "provisioning"),
        Phase::Restored => ("Data restored, starting", "provisioning"),
        Phase::Done => ("Done", "running"),
        Phase::Failed => ("Failed", "failed"),
        Phase::Abandoned => ("Abandoned", "stopped"),
    }
}

/// The schedule setting as a phrase: "daily", "every 6h".
fn schedule_words(setting: &str) -> String {
    match setting.trim() {
        s @ ("daily" | "hourly" | "weekly") => s.to_owned(),
        s => format!("every {s}"),
    }
}

/// A duration in the largest whole unit that fits it ("30 days", "10
/// minutes"), else as humantime writes it.
pub fn duration_words(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match secs {
        s if s >= 86_400 && s % 86_400 == 0 => plural(s / 86_400, "day"),
        s if s >= 3_600 && s % 3_600 == 0 => plural(s / 3_600, "hour"),
        s if s >= 60 && s % 60 == 0 => plural(s / 60, "minute"),
        _ => humantime::format_duration(d).to_string(),
    }
}

/// A size in bytes, KiB, MiB or GiB (dumps are often small).
pub fn size_words(bytes: i64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KIB {
        format!("{bytes} B")
    } else if b < KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else if b < KIB * KIB * KIB {
        format!("{:.1} MiB", b / (KIB * KIB))
    } else {
        format!("{:.2} GiB", b / (KIB * KIB * KIB))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_the_unit_that_fits() {
        assert_eq!(size_words(512), "512 B");
        assert_eq!(size_words(1536), "1.5 KiB");
        assert_eq!(size_words(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(size_words(3 * 1024 * 1024 * 1024), "3.00 GiB");
    }

    #[test]
    fn durations_read_in_the_largest_whole_unit() {
        use std::time::Duration;
        assert_eq!(duration_words(Duration::from_secs(30 * 86_400)), "30 days");
        assert_eq!(duration_words(Duration::from_secs(86_400)), "1 day");
        assert_eq!(duration_words(Duration::from_secs(36 * 3_600)), "36 hours");
        assert_eq!(duration_words(Duration::from_secs(600)), "10 minutes");
        assert_eq!(duration_words(Duration::from_secs(90)), "1m 30s");
    }

    #[test]
    fn refusals_read_as_sentences() {
        let e = ApiError::conflict("x", "the instance is destroyed");
        assert_eq!(refused_words(&e), "The instance is destroyed.");
        assert_eq!(schedule_words("6h"), "every 6h");
        assert_eq!(schedule_words("daily"), "daily");
    }
}
