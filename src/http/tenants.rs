//! `/api/v1/tenants`: create, list, get, start, stop, restart, destroy, and the
//! deployment history. Handlers only record intent; the reconciler acts.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, TenantPath};
use crate::app::AppState;
use crate::domain::{Action, DesiredState, Role, Subdomain, TenantStatus};
use crate::provision::spec::ResourceLimits;
use crate::provision::{Health, RunState};
use crate::store::deployments::{self, DeploymentLog};
use crate::store::tenants::{self, NewTenant, Tenant};
use crate::store::{users, StoreError};

/// How long after its first start a Fresco instance accepts its admin account.
const SETUP_WINDOW_HOURS: i64 = 2;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tenants", post(create).get(list))
        .route("/api/v1/tenants/{id}", get(show).delete(destroy))
        .route("/api/v1/tenants/{id}/start", post(start))
        .route("/api/v1/tenants/{id}/stop", post(stop))
        .route("/api/v1/tenants/{id}/restart", post(restart))
        .route("/api/v1/tenants/{id}/deployments", get(deployments_list))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTenant {
    pub subdomain: String,
    pub owner_email: String,
    /// Pins this tenant to an image other than FRESCO_IMAGE.
    pub image: Option<String>,
    pub resource_limits: Option<ResourceLimits>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PageQuery {
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

impl PageQuery {
    fn resolve(&self) -> Result<(i64, i64, i64), ApiError> {
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(20);
        if page == 0 {
            return Err(ApiError::validation("page", "minimum", "page starts at 1"));
        }
        if !(1..=100).contains(&per_page) {
            return Err(ApiError::validation(
                "perPage",
                "range",
                "perPage must be between 1 and 100",
            ));
        }
        let (page, per_page) = (page as i64, per_page as i64);
        Ok((page, per_page, (page - 1) * per_page))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestroyTenant {
    /// Must equal the tenant's subdomain.
    pub confirm: String,
}

#[derive(Debug, Serialize)]
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
    pub resource_limits: Value,
    pub created_at: DateTime<Utc>,
    pub last_deployed_at: Option<DateTime<Utc>>,
    /// For a fresh instance: where to create Fresco's admin account, and until when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recent_deployments: Option<Vec<DeploymentLog>>,
}

fn view(state: &AppState, t: &Tenant) -> TenantView {
    let url = state.config.tenants.tenant_url(&t.subdomain);
    let setup = t.first_started_at.and_then(|first| {
        let deadline = first + chrono::Duration::hours(SETUP_WINDOW_HOURS);
        let live = t.status() == TenantStatus::Active && deadline > Utc::now();
        live.then(|| json!({ "url": format!("{url}/setup"), "deadline": deadline }))
    });
    TenantView {
        id: t.id.to_string(),
        subdomain: t.subdomain.clone(),
        url,
        status: t.status.clone(),
        desired_state: t.desired_state.clone(),
        owner_id: t.user_id.to_string(),
        image: t
            .image
            .clone()
            .unwrap_or_else(|| state.config.tenants.fresco_image.clone()),
        current_action: t.current_action.clone(),
        last_error: t.last_error.clone(),
        attempts: t.attempts,
        generation: t.generation,
        observed_generation: t.observed_generation,
        resource_limits: t.resource_limits.clone(),
        created_at: t.created_at,
        last_deployed_at: t.last_deployed_at,
        setup,
        container: None,
        recent_deployments: None,
    }
}

fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    (3..=254).contains(&email.len())
        && !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn valid_image(image: &str) -> bool {
    (1..=255).contains(&image.len())
        && image
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"./:_@-".contains(&b))
        && image.as_bytes()[0].is_ascii_alphanumeric()
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    caller.require_admin()?;
    let subdomain = Subdomain::parse(&body.subdomain)
        .map_err(|e| ApiError::validation("subdomain", e.rule(), e.to_string()))?;
    let email = body.owner_email.trim();
    if !valid_email(email) {
        return Err(ApiError::validation(
            "ownerEmail",
            "format",
            "ownerEmail must be an email address",
        ));
    }
    if let Some(image) = body.image.as_deref() {
        if !valid_image(image) {
            return Err(ApiError::validation(
                "image",
                "format",
                "image must be a Docker image reference such as registry/name:tag",
            ));
        }
    }
    let limits = body.resource_limits.unwrap_or_default();
    if let Some(problem) = limits.problem() {
        return Err(ApiError::validation("resourceLimits", "range", problem));
    }
    let limits = serde_json::to_value(&limits).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut tx = state.pool.begin().await?;
    let owner = users::find_or_create_by_email(&mut tx, email, Role::Member).await?;
    let new = NewTenant {
        user_id: owner.id,
        subdomain: &subdomain,
        image: body.image.as_deref(),
        resource_limits: limits,
    };
    let tenant = match tenants::insert(&mut tx, new).await {
        Ok(t) => t,
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::conflict(
                "subdomain_taken",
                format!("subdomain \"{subdomain}\" is already taken"),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    tx.commit().await.map_err(|e| {
        // A racing insert can also lose at commit time.
        match StoreError::from_sqlx(e) {
            StoreError::Conflict(_) => ApiError::conflict(
                "subdomain_taken",
                format!("subdomain \"{subdomain}\" is already taken"),
            ),
            other => other.into(),
        }
    })?;
    tracing::info!(tenant_id = %tenant.id, subdomain = %tenant.subdomain, "tenant requested");
    Ok((StatusCode::ACCEPTED, Json(view(&state, &tenant))))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin()?;
    let (page, per_page, offset) = q.resolve()?;
    let (rows, total) = tenants::list(&state.pool, per_page, offset).await?;
    let data: Vec<TenantView> = rows.iter().map(|t| view(&state, t)).collect();
    Ok(Json(
        json!({ "data": data, "meta": { "page": page, "perPage": per_page, "total": total } }),
    ))
}

async fn load_visible(
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

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    path: TenantPath,
) -> Result<Json<TenantView>, ApiError> {
    let tenant = load_visible(&state, &caller, &path).await?;
    let mut v = view(&state, &tenant);
    v.container = Some(match state.runtime.inspect(tenant.tenant_id()).await {
        Ok(Some(c)) => json!({
            "id": c.id,
            "state": run_state_name(c.state),
            "health": health_name(c.health),
            "startedAt": c.started_at,
        }),
        Ok(None) => json!({ "state": "absent" }),
        Err(e) => {
            tracing::warn!(error = %e, "container inspect failed");
            json!({ "state": "unknown" })
        }
    });
    let (logs, _) = deployments::list(&state.pool, tenant.tenant_id(), 10, 0).await?;
    v.recent_deployments = Some(logs);
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

/// Records an owner's action after checking it makes sense in the tenant's state.
type Accepted = Result<(StatusCode, Json<TenantView>), ApiError>;

async fn act(state: &AppState, caller: &Caller, path: &TenantPath, action: Action) -> Accepted {
    load_visible(state, caller, path).await?;
    let mut tx = state.pool.begin().await?;
    let current = tenants::get_for_update(&mut tx, path.0).await?;
    let desired = current.desired();
    let status = current.status();
    if desired == DesiredState::Destroyed || status == TenantStatus::Destroyed {
        return Err(ApiError::conflict(
            "invalid_state",
            format!("tenant is {status}; it cannot be {action}ed"),
        ));
    }
    if let Some(in_flight) = current.action() {
        if action != Action::Destroy {
            return Err(ApiError::conflict(
                "action_in_progress",
                format!("{in_flight} is in progress; wait for it to finish before {action}"),
            ));
        }
    }
    let (new_desired, new_status) = match action {
        Action::Start if desired == DesiredState::Running && status == TenantStatus::Active => {
            return Err(ApiError::conflict(
                "invalid_state",
                "tenant is already running",
            ))
        }
        Action::Start => (DesiredState::Running, Some(TenantStatus::Provisioning)),
        Action::Stop if desired == DesiredState::Stopped && status == TenantStatus::Stopped => {
            return Err(ApiError::conflict(
                "invalid_state",
                "tenant is already stopped",
            ))
        }
        Action::Stop => (DesiredState::Stopped, None),
        Action::Restart if desired == DesiredState::Stopped => {
            return Err(ApiError::conflict(
                "invalid_state",
                "tenant is stopped; start it instead",
            ))
        }
        Action::Restart => (DesiredState::Running, Some(TenantStatus::Provisioning)),
        Action::Destroy => (DesiredState::Destroyed, Some(TenantStatus::Destroying)),
        Action::Create | Action::Update | Action::Recover => {
            return Err(ApiError::Internal(format!(
                "{action} is not an owner action"
            )))
        }
    };
    let tenant = tenants::record_intent(&mut tx, &current, action, new_desired, new_status).await?;
    tx.commit().await?;
    tracing::info!(tenant_id = %tenant.id, %action, "tenant action requested");
    Ok((StatusCode::ACCEPTED, Json(view(state, &tenant))))
}

async fn start(State(state): State<AppState>, caller: Caller, path: TenantPath) -> Accepted {
    act(&state, &caller, &path, Action::Start).await
}

async fn stop(State(state): State<AppState>, caller: Caller, path: TenantPath) -> Accepted {
    act(&state, &caller, &path, Action::Stop).await
}

async fn restart(State(state): State<AppState>, caller: Caller, path: TenantPath) -> Accepted {
    act(&state, &caller, &path, Action::Restart).await
}

async fn destroy(
    State(state): State<AppState>,
    caller: Caller,
    path: TenantPath,
    ApiJson(body): ApiJson<DestroyTenant>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    let tenant = load_visible(&state, &caller, &path).await?;
    if body.confirm != tenant.subdomain {
        return Err(ApiError::validation(
            "confirm",
            "confirmation",
            "to destroy this tenant, set confirm to its subdomain exactly",
        ));
    }
    act(&state, &caller, &path, Action::Destroy).await
}

async fn deployments_list(
    State(state): State<AppState>,
    caller: Caller,
    path: TenantPath,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let tenant = load_visible(&state, &caller, &path).await?;
    let (page, per_page, offset) = q.resolve()?;
    let (rows, total) =
        deployments::list(&state.pool, tenant.tenant_id(), per_page, offset).await?;
    Ok(Json(
        json!({ "data": rows, "meta": { "page": page, "perPage": per_page, "total": total } }),
    ))
}
