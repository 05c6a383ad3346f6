//! A tenant's deployment log (its lifecycle history) and the progress of the
//! deployment under way, for the wizard's progress step.

use axum::extract::State;
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{add_claim_link, load_visible, setup_info, SetupInfo};
use crate::domain::{Action, DesiredState, TenantStatus};
use crate::http::caller::Caller;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{ApiQuery, Page, PageMeta, TenantPath};
use crate::http::AppState;
use crate::store::deployments::{self, DeploymentLog};
use crate::store::tenants::Tenant;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    #[param(minimum = 1)]
    pub page: Option<u32>,
    #[param(rename = "perPage", minimum = 1, maximum = 100)]
    pub per_page: Option<u32>,
    /// Only this action (create, start, stop, restart, destroy, update, recover).
    pub action: Option<String>,
    /// Only this outcome (initiated, success, failed).
    pub status: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeploymentList {
    pub data: Vec<DeploymentLog>,
    pub meta: PageMeta,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProgressStep {
    pub name: String,
    pub label: String,
    pub done: bool,
}

/// What the wizard's progress step shows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    pub tenant_id: Uuid,
    /// queued, database, image, container, health, active, stopped, failed, destroying, destroyed.
    pub phase: String,
    pub percentage: u8,
    pub steps: Vec<ProgressStep>,
    /// Estimate from recent deployments; null when done.
    pub estimated_seconds_left: Option<i64>,
    pub error: Option<String>,
    /// `POST …/retry` can re-queue a failed deployment.
    pub retry_possible: bool,
    pub url: String,
    /// Present once the instance is active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup: Option<SetupInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quick_start: Option<Vec<String>>,
}

/// The tenant's deployment log (its lifecycle history), newest first.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/deployments", operation_id = "tenants.getLogs", tag = "tenants",
    params(("id" = Uuid, Path, description = "tenant id"), LogQuery),
    responses((status = 200, body = DeploymentList), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn deployments_list(
    State(state): State<AppState>,
    caller: Caller,
    path: TenantPath,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> Result<Json<DeploymentList>, ApiError> {
    let tenant = load_visible(&state, &caller, &path).await?;
    let (page, per_page, offset) = Page {
        page: q.page,
        per_page: q.per_page,
    }
    .resolve()?;
    if let Some(a) = q.action.as_deref() {
        a.parse::<Action>().map_err(|_| {
            ApiError::validation(
                "action",
                "one_of",
                "action must be one of create, start, stop, restart, destroy, update, recover",
            )
        })?;
    }
    if let Some(s) = q.status.as_deref() {
        s.parse::<crate::domain::DeploymentStatus>().map_err(|_| {
            ApiError::validation(
                "status",
                "one_of",
                "status must be one of initiated, success, failed",
            )
        })?;
    }
    let filter = deployments::LogFilter {
        action: q.action,
        status: q.status,
    };
    let (rows, total) =
        deployments::list(&state.pool, tenant.tenant_id(), &filter, per_page, offset).await?;
    Ok(Json(DeploymentList {
        data: rows,
        meta: PageMeta {
            page,
            per_page,
            total: Some(total),
            next_cursor: None,
        },
    }))
}

const PHASES: [(&str, &str); 5] = [
    ("queued", "Request received"),
    ("database", "Creating your database"),
    ("image", "Preparing Fresco"),
    ("container", "Starting your instance"),
    ("health", "Waiting for Fresco to finish its first start"),
];

/// The deployment's progress, for the wizard's progress step.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/deployment", operation_id = "tenants.getDeploymentStatus",
    tag = "tenants", params(("id" = Uuid, Path, description = "tenant id")),
    responses((status = 200, body = DeploymentStatus), (status = 404, body = ErrorBody)))]
pub async fn deployment_status(
    State(state): State<AppState>,
    caller: Caller,
    path: TenantPath,
) -> Result<Json<DeploymentStatus>, ApiError> {
    let t = load_visible(&state, &caller, &path).await?;
    Ok(Json(progress(&state, &caller, &t).await?))
}

/// Where the tenant's deployment stands (shared with the wizard's progress
/// page); for its owner, once active, with a fresh setup claim link.
pub(crate) async fn progress(
    state: &AppState,
    caller: &Caller,
    t: &Tenant,
) -> Result<DeploymentStatus, ApiError> {
    let status = t.status;
    let phase = match status {
        TenantStatus::Pending => "queued".to_owned(),
        TenantStatus::Provisioning => t.progress.clone().unwrap_or_else(|| "queued".into()),
        TenantStatus::Active => "active".into(),
        TenantStatus::Stopped => "stopped".into(),
        TenantStatus::Error => "failed".into(),
        TenantStatus::Destroying => "destroying".into(),
        TenantStatus::Destroyed => "destroyed".into(),
    };
    let reached = PHASES.iter().position(|(p, _)| *p == phase).unwrap_or(0);
    let done_all = status == TenantStatus::Active;
    let steps = PHASES
        .iter()
        .enumerate()
        .map(|(i, (name, label))| ProgressStep {
            name: (*name).into(),
            label: (*label).into(),
            done: done_all || i < reached,
        })
        .collect();
    let percentage = if done_all {
        100
    } else {
        (reached * 100 / PHASES.len()) as u8
    };
    let estimated = if matches!(status, TenantStatus::Pending | TenantStatus::Provisioning) {
        let typical = deployments::typical_create_ms(&state.pool)
            .await?
            .unwrap_or(30_000);
        let elapsed = t
            .action_started_at
            .map(|s| (Utc::now() - s).num_milliseconds())
            .unwrap_or(0);
        Some(((typical - elapsed).max(1000) + 999) / 1000)
    } else {
        None
    };
    let url = state.config.tenants.tenant_url(&t.subdomain);
    let mut setup = setup_info(state, t);
    add_claim_link(state, caller, t, &mut setup).await?;
    let quick_start = setup.as_ref().map(|s| {
        vec![
            format!(
                "Open {} and create your Fresco admin account before {}.",
                s.claim_url.as_deref().unwrap_or(&s.url),
                s.deadline.format("%Y-%m-%d %H:%M UTC")
            ),
            "Upload a protocol (.netcanvas file) from the Fresco dashboard.".to_owned(),
            "Create participants or enable anonymous recruitment, then share the interview links.".to_owned(),
            format!("Your instance lives at {url}; manage it (stop, restart, destroy) from the platform."),
        ]
    });
    Ok(DeploymentStatus {
        tenant_id: t.id,
        phase,
        percentage,
        steps,
        estimated_seconds_left: estimated,
        error: t
            .last_error
            .clone()
            .filter(|_| status == TenantStatus::Error),
        retry_possible: status == TenantStatus::Error && t.desired_state != DesiredState::Destroyed,
        url,
        setup,
        quick_start,
    })
}
