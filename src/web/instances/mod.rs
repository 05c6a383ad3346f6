//! The owner's instance pages: the dashboard (every instance of the signed-in
//! user, with live status badges, usage and quick actions), one instance's page
//! (status, setup link, usage charts, alerts, deployment history), its
//! settings, the destroy confirmation, its backups and the restore
//! confirmation, and the SSE stream that keeps the badges live. The rules are
//! the API's: actions go through `http::tenants::actions`, backups and
//! restores through `http::backups`, visibility through
//! `http::tenants::load_visible`.

mod actions;
mod backups;
mod chart;
mod dashboard;
mod instance;
mod restore;
mod settings;
mod stream;

use askama::Template;
use axum::routing::{get, post};
use axum::Router;

use super::error::WebError;
use crate::domain::{Action, TenantStatus};
use crate::http::caller::Caller;
use crate::http::error::ApiError;
use crate::http::extract::TenantPath;
use crate::http::tenants::load_visible;
use crate::http::AppState;
use crate::store::tenants::Tenant;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(dashboard::dashboard))
        .route("/dashboard/stream", get(stream::stream))
        .route("/instances/{id}", get(instance::instance))
        .route("/instances/{id}/start", post(actions::start))
        .route("/instances/{id}/stop", post(actions::stop))
        .route("/instances/{id}/restart", post(actions::restart))
        .route(
            "/instances/{id}/destroy",
            get(actions::destroy_page).post(actions::destroy),
        )
        .route(
            "/instances/{id}/settings",
            get(settings::settings_page).post(settings::save),
        )
        .route(
            "/instances/{id}/backups",
            get(backups::backups_page).post(backups::back_up_now),
        )
        .route("/instances/{id}/backups/live", get(backups::live))
        .route("/instances/{id}/backups/delete", post(backups::delete_now))
        .route(
            "/instances/{id}/backups/{backup}/restore",
            get(restore::restore_page).post(restore::restore),
        )
}

/// The tenant behind `/instances/{id}`, if the caller may see it; anything else
/// (someone else's, a malformed or unknown id) is the same 404 page.
async fn visible(state: &AppState, caller: &Caller, id: &str) -> Result<Tenant, WebError> {
    let Ok(tenant_id) = id.parse() else {
        return Err(WebError::NotFound);
    };
    match load_visible(state, caller, &TenantPath(tenant_id)).await {
        Ok(t) => Ok(t),
        Err(ApiError::NotFound(_)) => Err(WebError::NotFound),
        Err(e) => Err(e.into()),
    }
}

/// A status badge: what a person reads, and the CSS class that colours it.
pub struct Badge {
    pub id: String,
    pub class: &'static str,
    pub label: &'static str,
}

impl Badge {
    /// The status as an owner thinks of it: the action in flight says more
    /// than "provisioning".
    pub fn of(t: &Tenant) -> Self {
        let (class, label) = match (t.status, t.current_action) {
            (TenantStatus::Destroyed, _) => ("destroyed", "Destroyed"),
            (TenantStatus::Destroying, _) | (_, Some(Action::Destroy)) => {
                ("destroying", "Destroying")
            }
            (_, Some(Action::Stop)) => ("stopping", "Stopping"),
            (_, Some(Action::Restart)) => ("starting", "Restarting"),
            (_, Some(Action::Update)) => ("updating", "Updating"),
            (_, Some(Action::Recover)) => ("starting", "Recovering"),
            (_, Some(Action::Move)) => ("updating", "Moving its data"),
            (_, Some(Action::Restore)) => ("updating", "Restoring a backup"),
            (TenantStatus::Pending, _) => ("pending", "Queued"),
            (_, Some(Action::Create)) => ("provisioning", "Deploying"),
            (_, Some(Action::Start)) => ("starting", "Starting"),
            (TenantStatus::Provisioning, None) => ("provisioning", "Deploying"),
            (TenantStatus::Active, None) => ("running", "Running"),
            (TenantStatus::Stopped, None) => ("stopped", "Stopped"),
            (TenantStatus::Error, None) => ("error", "Failed"),
        };
        Self {
            id: t.id.to_string(),
            class,
            label,
        }
    }
}

/// The badge alone, as the live stream sends it (the pages include the same
/// partial).
#[derive(Template)]
#[template(path = "instances/_badge.html")]
pub struct BadgeFragment<'a> {
    pub badge: &'a Badge,
}

/// The status filter's choices: (value, label).
pub const STATUS_CHOICES: [(&str, &str); 6] = [
    ("active", "Running"),
    ("stopped", "Stopped"),
    ("provisioning", "Deploying"),
    ("pending", "Queued"),
    ("error", "Failed"),
    ("destroyed", "Destroyed"),
];

/// Bytes as a person reads them (MiB / GiB).
pub fn human_bytes(bytes: f64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if bytes >= 1024.0 * MIB {
        format!("{:.2} GiB", bytes / (1024.0 * MIB))
    } else {
        format!("{:.0} MiB", bytes / MIB)
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn bytes_read_as_mib_or_gib() {
        assert_eq!(human_bytes(512.0 * 1024.0 * 1024.0), "512 MiB");
        assert_eq!(human_bytes(1.5 * 1024.0 * 1024.0 * 1024.0), "1.50 GiB");
    }
}
