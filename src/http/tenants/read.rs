//! `GET /api/v1/tenants` and `GET /api/v1/tenants/{id}`: what the caller may see.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use super::{add_claim_link, load_visible, view, ContainerView, TenantList, TenantView};
use crate::domain::TenantStatus;
use crate::http::caller::Caller;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{ApiQuery, Page, PageMeta, TenantPath};
use crate::http::AppState;
use crate::provision::{Health, RunState};
use crate::store::deployments;
use crate::store::tenants::{self, ListFilter};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TenantQuery {
    #[param(minimum = 1)]
    pub page: Option<u32>,
    #[param(rename = "perPage", minimum = 1, maximum = 100)]
    pub per_page: Option<u32>,
    /// Only tenants in this status.
    pub status: Option<String>,
    /// Only tenants whose subdomain contains this text.
    pub search: Option<String>,
    /// The next page after `meta.nextCursor` of the previous one (keyset
    /// pagination: stable while tenants are added, and as fast on the hundredth
    /// page as on the first). Not with `page`.
    pub after: Option<String>,
}

/// A cursor names the last tenant of a page: its creation time (microseconds)
/// and id.
fn cursor(t: &crate::store::tenants::Tenant) -> String {
    format!("{}_{}", t.created_at.timestamp_micros(), t.id.simple())
}

fn parse_cursor(raw: &str) -> Result<(chrono::DateTime<chrono::Utc>, uuid::Uuid), ApiError> {
    let bad = || {
        ApiError::validation(
            "after",
            "format",
            "after must be a meta.nextCursor from an earlier page",
        )
    };
    let (micros, id) = raw.split_once('_').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let at = chrono::DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok((at, id.parse().map_err(|_| bad())?))
}

/// The caller's tenants (all of them for admins), newest first.
#[utoipa::path(get, path = "/api/v1/tenants", operation_id = "tenants.list", tag = "tenants", params(TenantQuery),
    responses((status = 200, body = TenantList), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<TenantQuery>,
) -> Result<Json<TenantList>, ApiError> {
    let (page, per_page, offset) = Page {
        page: q.page,
        per_page: q.per_page,
    }
    .resolve()?;
    if let Some(status) = q.status.as_deref() {
        status.parse::<TenantStatus>().map_err(|_| {
            ApiError::validation(
                "status",
                "one_of",
                "status must be one of pending, provisioning, active, stopped, error, destroying, destroyed",
            )
        })?;
    }
    if q.after.is_some() && q.page.is_some() {
        return Err(ApiError::validation(
            "after",
            "exclusive",
            "give either page or after, not both",
        ));
    }
    let after = q.after.as_deref().map(parse_cursor).transpose()?;
    let filter = ListFilter {
        owner: (!caller.is_admin()).then_some(caller.user.id),
        status: q.status.as_deref(),
        search: q.search.as_deref().map(str::trim).filter(|s| !s.is_empty()),
        after,
    };
    let offset = if after.is_some() { 0 } else { offset };
    // One row more than the page says whether another page follows.
    let (mut rows, total) = tenants::list(&state.pool, &filter, per_page + 1, offset).await?;
    let more = rows.len() as i64 > per_page;
    rows.truncate(per_page as usize);
    let next_cursor = more.then(|| rows.last().map(cursor)).flatten();
    let data = rows.iter().map(|t| view(&state, t)).collect();
    Ok(Json(TenantList {
        data,
        meta: PageMeta {
            page,
            per_page,
            total,
            next_cursor,
        },
    }))
}

/// One tenant: status, URL, limits, container, recent deployment log.
#[utoipa::path(get, path = "/api/v1/tenants/{id}", operation_id = "tenants.get", tag = "tenants",
    params(("id" = Uuid, Path, description = "tenant id")),
    responses((status = 200, body = TenantView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    path: TenantPath,
) -> Result<Json<TenantView>, ApiError> {
    let tenant = load_visible(&state, &caller, &path).await?;
    let mut v = view(&state, &tenant);
    add_claim_link(&state, &caller, &tenant, &mut v.setup).await?;
    v.container = Some(match state.runtime.inspect(tenant.tenant_id()).await {
        Ok(Some(c)) => ContainerView {
            id: Some(c.id),
            state: run_state_name(c.state).into(),
            health: Some(health_name(c.health).into()),
            started_at: c.started_at,
        },
        Ok(None) => ContainerView {
            id: None,
            state: "absent".into(),
            health: None,
            started_at: None,
        },
        Err(e) => {
            tracing::warn!(error = %e, "container inspect failed");
            ContainerView {
                id: None,
                state: "unknown".into(),
                health: None,
                started_at: None,
            }
        }
    });
    let (logs, _) =
        deployments::list(&state.pool, tenant.tenant_id(), &Default::default(), 10, 0).await?;
    v.recent_deployments = Some(logs);
    // Within one sampler interval a cached sample is current enough here;
    // GET …/metrics always asks Docker.
    let max_age = std::time::Duration::from_secs(state.usage.config().metrics_interval_secs.max(1));
    v.metrics = Some(state.usage.recent(&tenant, max_age).await);
    Ok(Json(v))
}

fn run_state_name(s: RunState) -> &'static str {
    match s {
        RunState::Created => "created",
        RunState::Running => "running",
        RunState::Restarting => "restarting",
        RunState::Paused => "paused",
        RunState::Exited => "exited",
        RunState::Dead => "dead",
        RunState::Other => "other",
    }
}

fn health_name(h: Health) -> &'static str {
    match h {
        Health::None => "none",
        Health::Starting => "starting",
        Health::Healthy => "healthy",
        Health::Unhealthy => "unhealthy",
    }
}
