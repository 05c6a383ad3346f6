//! `GET /dashboard`: the signed-in user's instances as a grid or a table, with
//! search, a status filter, live badges, current usage and quick actions.

use std::time::Duration;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;

use super::{human_bytes, Badge, STATUS_CHOICES};
use crate::domain::TenantStatus;
use crate::http::caller::Caller;
use crate::http::AppState;
use crate::store::tenants::{self, ListFilter, Tenant};
use crate::web::error::WebError;
use crate::web::layout::{Layout, Section};
use crate::web::session::Member;

/// More than anyone's quota allows; a bound, not a page size.
const MAX_SHOWN: i64 = 500;

#[derive(Debug, Default, Deserialize)]
pub struct DashboardQuery {
    view: Option<String>,
    q: Option<String>,
    status: Option<String>,
}

/// One instance as a dashboard card or table row.
pub struct Row {
    pub id: String,
    pub subdomain: String,
    pub url: String,
    pub badge: Badge,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub live: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "instances/dashboard.html")]
pub struct DashboardPage {
    pub layout: Layout,
    pub grid: bool,
    pub q: String,
    pub status: String,
    pub statuses: [(&'static str, &'static str); 6],
    pub rows: Vec<Row>,
    /// The user has instances at all (an empty search is not an empty account).
    pub has_any: bool,
    pub total_cpu: String,
    pub total_memory: String,
    pub running: usize,
    /// A refused action, when the page is shown again after one (no JS).
    pub alert: Option<String>,
    /// When the tenants were read (Unix ms), for the live stream.
    pub seen: i64,
}

impl DashboardPage {
    /// The current filters as a query string, with the view switched.
    pub fn view_link(&self, grid: bool) -> String {
        let mut link = format!("/dashboard?view={}", if grid { "grid" } else { "list" });
        if !self.q.is_empty() {
            link.push_str(&format!("&q={}", crate::web::error::urlencode(&self.q)));
        }
        if !self.status.is_empty() {
            link.push_str(&format!("&status={}", self.status));
        }
        link
    }
}

pub async fn dashboard(
    State(state): State<AppState>,
    Member(caller): Member,
    headers: HeaderMap,
    Query(q): Query<DashboardQuery>,
) -> Result<DashboardPage, WebError> {
    let page = build(&state, &caller, q, None).await?;
    Ok(DashboardPage {
        layout: page.layout.with_notice(&headers),
        ..page
    })
}

/// The dashboard for `caller`, also shown again (with `alert`) after a
/// refused action from a form without JavaScript.
pub async fn build(
    state: &AppState,
    caller: &Caller,
    q: DashboardQuery,
    alert: Option<String>,
) -> Result<DashboardPage, WebError> {
    let grid = q.view.as_deref() != Some("list");
    let search = q.q.unwrap_or_default().trim().to_lowercase();
    // An unknown status is no filter (a hand-edited link), not an error page.
    let status = q
        .status
        .filter(|s| s.parse::<TenantStatus>().is_ok())
        .unwrap_or_default();
    let filter = ListFilter {
        owner: Some(caller.user.id),
        status: Some(status.as_str()).filter(|s| !s.is_empty()),
        search: Some(search.as_str()).filter(|s| !s.is_empty()),
        after: None,
    };
    let seen = chrono::Utc::now().timestamp_millis();
    let (found, _) = tenants::list(&state.pool, &filter, MAX_SHOWN, 0).await?;
    // Destroyed instances only when asked for by the filter.
    let found: Vec<Tenant> = found
        .into_iter()
        .filter(|t| !status.is_empty() || t.status != TenantStatus::Destroyed)
        .collect();
    // Filtered to nothing is not an empty account: only the unfiltered,
    // empty list shows the way to a first instance.
    let has_any = !found.is_empty() || filter.status.is_some() || filter.search.is_some();
    let max_age = Duration::from_secs(state.usage.config().metrics_interval_secs.max(1));
    let (mut total_cpu, mut total_memory, mut running) = (0.0, 0.0, 0);
    let mut rows = Vec::with_capacity(found.len());
    for t in &found {
        let usage = if t.status == TenantStatus::Active {
            state.usage.recent(t, max_age).await
        } else {
            None
        };
        if let Some(u) = &usage {
            running += 1;
            total_cpu += u.cpu_percent.unwrap_or(0.0);
            total_memory += u.memory_bytes as f64;
        }
        rows.push(Row {
            id: t.id.to_string(),
            subdomain: t.subdomain.clone(),
            url: state.config.tenants.tenant_url(&t.subdomain),
            badge: Badge::of(t),
            cpu: usage
                .as_ref()
                .map(|u| u.cpu_percent.map_or("–".into(), |c| format!("{c:.1}%"))),
            memory: usage.as_ref().map(|u| {
                format!(
                    "{} of {}",
                    human_bytes(u.memory_bytes as f64),
                    human_bytes(u.memory_limit_bytes as f64)
                )
            }),
            live: t.status != TenantStatus::Destroyed,
        });
    }
    Ok(DashboardPage {
        layout: Layout::member("Your instances", Section::Dashboard, caller),
        grid,
        q: search,
        status,
        statuses: STATUS_CHOICES,
        rows,
        has_any,
        total_cpu: format!("{total_cpu:.1}%"),
        total_memory: human_bytes(total_memory),
        running,
        alert,
        seen,
    })
}
