//! `GET /admin/backups`: the backup health of every live instance (its last
//! good backup, failures since, the last error, whether it is overdue, the last
//! recovery test), the count of unhealthy ones first, and where backups go on
//! what schedule. The same report as the admin API's `admin.backupHealth`.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;

use crate::http::backups::{backup_health, BackupHealthView};
use crate::http::AppState;
use crate::web::error::WebError;
use crate::web::layout::{Layout, Section};
use crate::web::session::Admin;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/backups", get(page))
}

pub struct HealthRow {
    pub id: String,
    pub subdomain: String,
    pub last_success: Option<String>,
    pub failures: i64,
    pub last_error: Option<String>,
    pub overdue: bool,
    pub healthy: bool,
    pub last_verified: Option<String>,
    pub last_verify_error: Option<String>,
}

impl From<BackupHealthView> for HealthRow {
    fn from(h: BackupHealthView) -> Self {
        let when = |at: chrono::DateTime<chrono::Utc>| at.format("%Y-%m-%d %H:%M UTC").to_string();
        Self {
            id: h.tenant_id.to_string(),
            subdomain: h.subdomain,
            last_success: h.last_success_at.map(when),
            failures: h.failures,
            last_error: h.last_error,
            overdue: h.overdue,
            healthy: !h.overdue && h.failures == 0,
            last_verified: h.last_verified_at.map(when),
            last_verify_error: h.last_verify_error,
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/backups.html")]
pub struct BackupsPage {
    layout: Layout,
    enabled: bool,
    storage: Option<String>,
    schedule: String,
    unhealthy: usize,
    rows: Vec<HealthRow>,
}

async fn page(
    State(state): State<AppState>,
    Admin(caller): Admin,
    headers: HeaderMap,
) -> Result<BackupsPage, WebError> {
    let health = backup_health(&state).await?;
    Ok(BackupsPage {
        layout: Layout::member("Backups", Section::Admin, &caller).with_notice(&headers),
        enabled: health.enabled,
        storage: health.storage,
        schedule: health.schedule,
        unhealthy: health.unhealthy,
        rows: health.data.into_iter().map(HealthRow::from).collect(),
    })
}
