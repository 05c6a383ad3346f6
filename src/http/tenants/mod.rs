//! `/api/v1/tenants`: create (`create`), list and show (`read`), the owner's
//! lifecycle actions (`actions`), and the deployment log and progress
//! (`deployments`). Handlers only record intent; the reconciler acts. Members
//! see and act on their own tenants only; another member's tenant answers
//! exactly as a missing one (404). Admins see all.

pub(crate) mod actions;
mod create;
pub(crate) mod deployments;
mod read;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa_axum::routes;

use super::caller::Caller;
use super::error::ApiError;
use super::extract::{PageMeta, TenantPath};
use super::setup_guard::CLAIM_PARAM;
use super::{ApiRouter, AppState};
use crate::domain::TenantStatus;
use crate::store::deployments::DeploymentLog;
use crate::store::setup_claims;
use crate::store::tenants::{self, Tenant};
use crate::store::StoreError;

pub use crate::domain::SETUP_WINDOW_HOURS;
/// How long a setup claim link works.
const CLAIM_LINK_MINUTES: i64 = 30;

pub fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(create::create, read::list))
        .routes(routes!(read::show, actions::destroy))
        .routes(routes!(actions::start))
        .routes(routes!(actions::stop))
        .routes(routes!(actions::restart))
        .routes(routes!(actions::retry))
        .routes(routes!(deployments::deployments_list))
        .routes(routes!(deployments::deployment_status))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetupInfo {
    /// Where Fresco's admin account is created.
    pub url: String,
    /// After this the instance shows /expired.
    pub deadline: DateTime<Utc>,
    /// For the owner only: a one-time link that opens `url` and lets this browser
    /// past the platform's setup guard (anyone else is refused there). It works
    /// once, for 30 minutes; each read of the tenant gives a fresh one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim_url: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerView {
    pub id: Option<String>,
    /// running, exited, absent, …
    pub state: String,
    /// healthy, starting, unhealthy, none.
    pub health: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantView {
    pub id: String,
    pub subdomain: String,
    pub url: String,
    pub status: String,
    pub desired_state: String,
    pub owner_id: String,
    pub image: String,
    pub current_action: Option<String>,
    pub last_error: Option<String>,
    pub attempts: i32,
    pub generation: i64,
    pub observed_generation: i64,
    #[schema(value_type = Object)]
    pub resource_limits: Value,
    pub created_at: DateTime<Utc>,
    pub last_deployed_at: Option<DateTime<Utc>>,
    /// For a fresh instance: where to create Fresco's admin account, and until when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup: Option<SetupInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recent_deployments: Option<Vec<DeploymentLog>>,
    /// Current resource use (only on a single tenant; null when not running).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Option<crate::usage::CurrentUsage>>,
    /// Set while the tenant has used over the alert threshold of a limit for a
    /// sustained window.
    #[schema(value_type = Object, nullable)]
    pub resource_alert: Option<Value>,
    /// A destroyed (or destroying) instance's backups are kept until then, so a
    /// mistaken destroy can be undone by a restore (`DELETE …/backups` deletes
    /// them now).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backups_kept_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantList {
    pub data: Vec<TenantView>,
    pub meta: PageMeta,
}

/// The tenant, if the caller may see it; otherwise exactly the answer for a
/// tenant that does not exist.
pub async fn load_visible(
    state: &AppState,
    caller: &Caller,
    path: &TenantPath,
) -> Result<Tenant, ApiError> {
    match tenants::get(&state.pool, path.0).await {
        Ok(t) if caller.may_see(&t) => Ok(t),
        Ok(_) | Err(StoreError::NotFound) => Err(ApiError::tenant_not_found()),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn setup_info(state: &AppState, t: &Tenant) -> Option<SetupInfo> {
    let url = state.config.tenants.tenant_url(&t.subdomain);
    // Fresco counts its window from its own initializedAt; until the platform
    // has read it, from the first time the platform saw the instance healthy.
    t.fresco_initialized_at
        .or(t.first_started_at)
        .and_then(|first| {
            let deadline = first + chrono::Duration::hours(SETUP_WINDOW_HOURS);
            (t.status == TenantStatus::Active && deadline > Utc::now()).then(|| SetupInfo {
                url: format!("{url}/setup"),
                deadline,
                claim_url: None,
            })
        })
}

fn view(state: &AppState, t: &Tenant) -> TenantView {
    TenantView {
        id: t.id.to_string(),
        subdomain: t.subdomain.clone(),
        url: state.config.tenants.tenant_url(&t.subdomain),
        status: t.status.to_string(),
        desired_state: t.desired_state.to_string(),
        owner_id: t.user_id.to_string(),
        image: t
            .image
            .clone()
            .unwrap_or_else(|| state.config.tenants.fresco_image.clone()),
        current_action: t.current_action.map(|a| a.to_string()),
        last_error: t.last_error.clone(),
        attempts: t.attempts,
        generation: t.generation,
        observed_generation: t.observed_generation,
        resource_limits: t.resource_limits.clone(),
        created_at: t.created_at,
        last_deployed_at: t.last_deployed_at,
        setup: setup_info(state, t),
        container: None,
        recent_deployments: None,
        metrics: None,
        resource_alert: t.resource_alert.clone(),
        backups_kept_until: t.backups_kept_until(),
    }
}

/// Adds the owner's one-time claim link to the setup information, when there is
/// a setup to claim and the caller owns the tenant.
pub(crate) async fn add_claim_link(
    state: &AppState,
    caller: &Caller,
    tenant: &Tenant,
    setup: &mut Option<SetupInfo>,
) -> Result<(), ApiError> {
    let Some(setup) = setup.as_mut().filter(|_| caller.user.id == tenant.user_id) else {
        return Ok(());
    };
    let expires = (Utc::now() + chrono::Duration::minutes(CLAIM_LINK_MINUTES)).min(setup.deadline);
    let token = setup_claims::issue_link(&state.pool, tenant.tenant_id(), expires).await?;
    setup.claim_url = Some(format!("{}?{}={token}", setup.url, CLAIM_PARAM));
    Ok(())
}
