//! `GET /admin/instances`: every instance with its owner's email, filtered by
//! status and subdomain like the API's tenant list (the same store query).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{badge, page_number, Pager, PER_PAGE};
use crate::domain::TenantStatus;
use crate::http::AppState;
use crate::store::tenants::{self, ListFilter};
use crate::store::users;
use crate::web::error::WebError;
use crate::web::layout::{Layout, Section};
use crate::web::session::Admin;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/instances", get(instances))
}

#[derive(Debug, Default, Deserialize)]
pub struct InstanceQuery {
    status: Option<String>,
    search: Option<String>,
    page: Option<String>,
}

pub struct InstanceRow {
    pub id: String,
    pub subdomain: String,
    pub url: String,
    pub owner: String,
    pub status: String,
    pub badge: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/instances.html")]
pub struct InstancesPage {
    layout: Layout,
    rows: Vec<InstanceRow>,
    status: String,
    search: String,
    statuses: Vec<&'static str>,
    pager: Pager,
}

const STATUSES: [TenantStatus; 7] = [
    TenantStatus::Pending,
    TenantStatus::Provisioning,
    TenantStatus::Active,
    TenantStatus::Stopped,
    TenantStatus::Error,
    TenantStatus::Destroying,
    TenantStatus::Destroyed,
];

async fn instances(
    State(state): State<AppState>,
    Admin(caller): Admin,
    headers: HeaderMap,
    Query(q): Query<InstanceQuery>,
) -> Result<InstancesPage, WebError> {
    // An unknown status shows every instance rather than an error: the form
    // only offers known ones.
    let status = q
        .status
        .as_deref()
        .and_then(|s| s.parse::<TenantStatus>().ok())
        .map(|s| s.as_str())
        .unwrap_or("");
    let search = q.search.as_deref().unwrap_or("").trim().to_owned();
    let page = page_number(q.page.as_deref());
    let filter = ListFilter {
        owner: None,
        status: (!status.is_empty()).then_some(status),
        search: (!search.is_empty()).then_some(search.as_str()),
        after: None,
    };
    let (tenants, total) =
        tenants::list(&state.pool, &filter, PER_PAGE, (page - 1) * PER_PAGE).await?;
    let owners: Vec<uuid::Uuid> = tenants.iter().map(|t| t.user_id).collect();
    let emails = users::emails_of(&state.pool, &owners).await?;
    let rows = tenants
        .into_iter()
        .map(|t| InstanceRow {
            id: t.id.to_string(),
            url: state.config.tenants.tenant_url(&t.subdomain),
            owner: emails.get(&t.user_id).cloned().unwrap_or_default(),
            badge: badge(t.status.as_str()).to_owned(),
            status: t.status.to_string(),
            subdomain: t.subdomain,
            created_at: t.created_at,
        })
        .collect();
    Ok(InstancesPage {
        layout: Layout::member("All instances", Section::Admin, &caller).with_notice(&headers),
        rows,
        pager: Pager::new(
            "/admin/instances",
            &[("status", status), ("search", &search)],
            page,
            total.unwrap_or_default(),
        ),
        status: status.to_owned(),
        search,
        statuses: STATUSES.iter().map(|s| s.as_str()).collect(),
    })
}
