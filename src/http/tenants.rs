//! `/api/v1/tenants`: create, list, get, start, stop, restart, destroy, retry,
//! the deployment log and the deployment progress. Handlers only record intent;
//! the reconciler acts. Members see and act on their own tenants only; another
//! member's tenant answers exactly as a missing one (404). Admins see all.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::account::{entry, record};
use super::auth::Caller;
use super::client::Client;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery, Page, PageMeta, TenantPath};
use super::ApiRouter;
use crate::app::AppState;
use crate::domain::{Action, DesiredState, Role, Subdomain, TenantStatus};
use crate::provision::spec::ResourceLimits;
use crate::provision::{Health, RunState};
use crate::store::deployments::{self, DeploymentLog};
use crate::store::tenants::{self, ListFilter, NewTenant, Tenant};
use crate::store::{users, StoreError};

/// How long after its first start a Fresco instance accepts its admin account.
const SETUP_WINDOW_HOURS: i64 = 2;

pub fn router() -> ApiRouter {
    ApiRouter::new()
        .post("/api/v1/tenants", create)
        .get("/api/v1/tenants", list)
        .get("/api/v1/tenants/{id}", show)
        .delete("/api/v1/tenants/{id}", destroy)
        .post("/api/v1/tenants/{id}/start", start)
        .post("/api/v1/tenants/{id}/stop", stop)
        .post("/api/v1/tenants/{id}/restart", restart)
        .post("/api/v1/tenants/{id}/retry", retry)
        .get("/api/v1/tenants/{id}/deployments", deployments_list)
        .get("/api/v1/tenants/{id}/deployment", deployment_status)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTenant {
    pub subdomain: String,
    /// Admins only: the owner (created as a member if new). Members own what they create.
    pub owner_email: Option<String>,
    /// Admins only: pins this tenant to an image other than FRESCO_IMAGE.
    pub image: Option<String>,
    /// Admins only: overrides of the configured limits.
    #[schema(value_type = Object)]
    pub resource_limits: Option<ResourceLimits>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TenantQuery {
    pub page: Option<u32>,
    #[param(rename = "perPage")]
    pub per_page: Option<u32>,
    /// Only tenants in this status.
    pub status: Option<String>,
    /// Only tenants whose subdomain contains this text.
    pub search: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    pub page: Option<u32>,
    #[param(rename = "perPage")]
    pub per_page: Option<u32>,
    /// Only this action (create, start, stop, restart, destroy, update, recover).
    pub action: Option<String>,
    /// Only this outcome (initiated, success, failed).
    pub status: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestroyTenant {
    /// Must equal the tenant's subdomain.
    pub confirm: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetupInfo {
    /// Where Fresco's admin account is created.
    pub url: String,
    /// After this the instance shows /expired.
    pub deadline: DateTime<Utc>,
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
    pub metrics: Option<Option<crate::metrics::CurrentMetrics>>,
    /// Set while the tenant has used over the alert threshold of a limit for a
    /// sustained window.
    #[schema(value_type = Object, nullable)]
    pub resource_alert: Option<Value>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantList {
    pub data: Vec<TenantView>,
    pub meta: PageMeta,
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

fn setup_info(state: &AppState, t: &Tenant) -> Option<SetupInfo> {
    let url = state.config.tenants.tenant_url(&t.subdomain);
    t.first_started_at.and_then(|first| {
        let deadline = first + chrono::Duration::hours(SETUP_WINDOW_HOURS);
        (t.status() == TenantStatus::Active && deadline > Utc::now()).then(|| SetupInfo {
            url: format!("{url}/setup"),
            deadline,
        })
    })
}

fn view(state: &AppState, t: &Tenant) -> TenantView {
    TenantView {
        id: t.id.to_string(),
        subdomain: t.subdomain.clone(),
        url: state.config.tenants.tenant_url(&t.subdomain),
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
        setup: setup_info(state, t),
        container: None,
        recent_deployments: None,
        metrics: None,
        resource_alert: t.resource_alert.clone(),
    }
}

pub fn valid_email(email: &str) -> bool {
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

fn limit_actions(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    state.limits.actions.check(
        &format!("user:{}", caller.user.id),
        "deployments and lifecycle actions",
    )
}

/// Requests a new tenant. Members own what they create, up to their quota.
#[utoipa::path(post, path = "/api/v1/tenants", operation_id = "tenants.create", tag = "tenants", request_body = CreateTenant,
    responses((status = 202, body = TenantView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Client(origin): Client,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    limit_actions(&state, &caller)?;
    let subdomain = Subdomain::parse(&body.subdomain)
        .map_err(|e| ApiError::validation("subdomain", e.rule(), e.to_string()))?;
    if !caller.is_admin()
        && (body.owner_email.is_some() || body.image.is_some() || body.resource_limits.is_some())
    {
        return Err(ApiError::Forbidden(
            "ownerEmail, image and resourceLimits are for platform admins".into(),
        ));
    }
    let email = match body.owner_email.as_deref().map(str::trim) {
        Some(e) if !valid_email(e) => {
            return Err(ApiError::validation(
                "ownerEmail",
                "format",
                "ownerEmail must be an email address",
            ))
        }
        Some(e) => Some(e.to_owned()),
        None => None,
    };
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
    let owner_id = match email {
        Some(e) => {
            users::find_or_create_by_email(&mut tx, &e, Role::Member)
                .await?
                .id
        }
        None => caller.user.id,
    };
    if !caller.is_admin() {
        let live = tenants::lock_and_count_live_for(&mut tx, owner_id).await?;
        let quota = state.config.accounts.tenant_quota;
        if live >= quota {
            return Err(ApiError::Forbidden(format!(
                "tenant quota reached: you may have {quota} instances; destroy one to create another"
            )));
        }
    }
    let new = NewTenant {
        user_id: owner_id,
        subdomain: &subdomain,
        image: body.image.as_deref(),
        resource_limits: limits,
    };
    let taken = || {
        ApiError::conflict(
            "subdomain_taken",
            format!("subdomain \"{subdomain}\" is already taken"),
        )
    };
    let tenant = match tenants::insert(&mut tx, new).await {
        Ok(t) => t,
        Err(StoreError::Conflict(_)) => return Err(taken()),
        Err(e) => return Err(e.into()),
    };
    tx.commit()
        .await
        .map_err(|e| match StoreError::from_sqlx(e) {
            // A racing insert can also lose at commit time.
            StoreError::Conflict(_) => taken(),
            other => other.into(),
        })?;
    record(
        &state,
        &origin,
        entry(
            Some(caller.user.id),
            "tenant.create",
            Some(("tenant", tenant.id.to_string())),
        ),
    )
    .await?;
    tracing::info!(tenant_id = %tenant.id, subdomain = %tenant.subdomain, "tenant requested");
    Ok((StatusCode::ACCEPTED, Json(view(&state, &tenant))))
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
    let filter = ListFilter {
        owner: (!caller.is_admin()).then_some(caller.user.id),
        status: q.status.as_deref(),
        search: q.search.as_deref().map(str::trim).filter(|s| !s.is_empty()),
    };
    let (rows, total) = tenants::list(&state.pool, &filter, per_page, offset).await?;
    let data = rows.iter().map(|t| view(&state, t)).collect();
    Ok(Json(TenantList {
        data,
        meta: PageMeta {
            page,
            per_page,
            total,
        },
    }))
}

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
    let max_age =
        std::time::Duration::from_secs(state.metrics.config().metrics_interval_secs.max(1));
    v.metrics = Some(state.metrics.recent(&tenant, max_age).await);
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

type Accepted = Result<(StatusCode, Json<TenantView>), ApiError>;

/// Records an owner's action after checking it makes sense in the tenant's state.
async fn act(
    state: &AppState,
    caller: &Caller,
    origin: &crate::store::audit::Origin,
    path: &TenantPath,
    action: Action,
) -> Accepted {
    load_visible(state, caller, path).await?;
    limit_actions(state, caller)?;
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
    let (new_desired, new_status, logged_as) = match action {
        Action::Start if desired == DesiredState::Running && status == TenantStatus::Active => {
            return Err(ApiError::conflict(
                "invalid_state",
                "tenant is already running",
            ))
        }
        Action::Start => (
            DesiredState::Running,
            Some(TenantStatus::Provisioning),
            Action::Start,
        ),
        Action::Stop if desired == DesiredState::Stopped && status == TenantStatus::Stopped => {
            return Err(ApiError::conflict(
                "invalid_state",
                "tenant is already stopped",
            ))
        }
        Action::Stop => (DesiredState::Stopped, None, Action::Stop),
        Action::Restart if desired == DesiredState::Stopped => {
            return Err(ApiError::conflict(
                "invalid_state",
                "tenant is stopped; start it instead",
            ))
        }
        Action::Restart => (
            DesiredState::Running,
            Some(TenantStatus::Provisioning),
            Action::Restart,
        ),
        Action::Destroy => (
            DesiredState::Destroyed,
            Some(TenantStatus::Destroying),
            Action::Destroy,
        ),
        // Retry re-queues a failed deployment as the action it failed at.
        Action::Create if status == TenantStatus::Error => {
            let failed_as = if current.first_started_at.is_none() {
                Action::Create
            } else {
                Action::Start
            };
            (desired, Some(TenantStatus::Provisioning), failed_as)
        }
        Action::Create => {
            return Err(ApiError::conflict(
                "invalid_state",
                format!("tenant is {status}; only a failed deployment can be retried"),
            ))
        }
        Action::Update | Action::Recover => {
            return Err(ApiError::Internal(format!(
                "{action} is not an owner action"
            )))
        }
    };
    let tenant =
        tenants::record_intent(&mut tx, &current, logged_as, new_desired, new_status).await?;
    tx.commit().await?;
    let what = if action == Action::Create {
        "tenant.retry".to_owned()
    } else {
        format!("tenant.{action}")
    };
    record(
        state,
        origin,
        entry(
            Some(caller.user.id),
            &what,
            Some(("tenant", tenant.id.to_string())),
        ),
    )
    .await?;
    tracing::info!(tenant_id = %tenant.id, %action, "tenant action requested");
    Ok((StatusCode::ACCEPTED, Json(view(state, &tenant))))
}

/// Starts a stopped (or failed) tenant.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/start", operation_id = "tenants.start", tag = "tenants",
    params(("id" = Uuid, Path, description = "tenant id")),
    responses((status = 202, body = TenantView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn start(
    State(state): State<AppState>,
    caller: Caller,
    Client(origin): Client,
    path: TenantPath,
) -> Accepted {
    act(&state, &caller, &origin, &path, Action::Start).await
}

/// Stops a tenant (its data stays).
#[utoipa::path(post, path = "/api/v1/tenants/{id}/stop", operation_id = "tenants.stop", tag = "tenants",
    params(("id" = Uuid, Path, description = "tenant id")),
    responses((status = 202, body = TenantView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn stop(
    State(state): State<AppState>,
    caller: Caller,
    Client(origin): Client,
    path: TenantPath,
) -> Accepted {
    act(&state, &caller, &origin, &path, Action::Stop).await
}

/// Restarts a running tenant.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/restart", operation_id = "tenants.restart", tag = "tenants",
    params(("id" = Uuid, Path, description = "tenant id")),
    responses((status = 202, body = TenantView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn restart(
    State(state): State<AppState>,
    caller: Caller,
    Client(origin): Client,
    path: TenantPath,
) -> Accepted {
    act(&state, &caller, &origin, &path, Action::Restart).await
}

/// Re-queues a deployment that ended in `error`.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/retry", operation_id = "tenants.retry", tag = "tenants",
    params(("id" = Uuid, Path, description = "tenant id")),
    responses((status = 202, body = TenantView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Client(origin): Client,
    path: TenantPath,
) -> Accepted {
    act(&state, &caller, &origin, &path, Action::Create).await
}

/// Destroys a tenant: container, data and role. Confirm by sending its subdomain.
#[utoipa::path(delete, path = "/api/v1/tenants/{id}", operation_id = "tenants.destroy", tag = "tenants",
    params(("id" = Uuid, Path, description = "tenant id")), request_body = DestroyTenant,
    responses((status = 202, body = TenantView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn destroy(
    State(state): State<AppState>,
    caller: Caller,
    Client(origin): Client,
    path: TenantPath,
    ApiJson(body): ApiJson<DestroyTenant>,
) -> Accepted {
    let tenant = load_visible(&state, &caller, &path).await?;
    if body.confirm != tenant.subdomain {
        return Err(ApiError::validation(
            "confirm",
            "confirmation",
            "to destroy this tenant, set confirm to its subdomain exactly",
        ));
    }
    act(&state, &caller, &origin, &path, Action::Destroy).await
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
            total,
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
    let status = t.status();
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
    let setup = setup_info(&state, &t);
    let quick_start = setup.as_ref().map(|s| {
        vec![
            format!("Open {} and create your Fresco admin account before {}.", s.url, s.deadline.format("%Y-%m-%d %H:%M UTC")),
            "Upload a protocol (.netcanvas file) from the Fresco dashboard.".to_owned(),
            "Create participants or enable anonymous recruitment, then share the interview links.".to_owned(),
            format!("Your instance lives at {url}; manage it (stop, restart, destroy) from the platform."),
        ]
    });
    Ok(Json(DeploymentStatus {
        tenant_id: t.id,
        phase,
        percentage,
        steps,
        estimated_seconds_left: estimated,
        error: t
            .last_error
            .clone()
            .filter(|_| status == TenantStatus::Error),
        retry_possible: status == TenantStatus::Error && t.desired() != DesiredState::Destroyed,
        url,
        setup,
        quick_start,
    }))
}
