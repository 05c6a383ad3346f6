//! The owner's lifecycle actions: start, stop, restart, retry and destroy. Which
//! action is allowed in which state is decided in `domain::lifecycle`; here the
//! handler loads the row, asks, and records the intent for the reconciler.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::{load_visible, view, TenantView};
use crate::domain::lifecycle::{self, OwnerAction};
use crate::http::caller::Caller;
use crate::http::client::Client;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{ApiJson, TenantPath};
use crate::http::AppState;
use crate::store::audit::{self, Entry, Origin};
use crate::store::tenants;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestroyTenant {
    /// Must equal the tenant's subdomain.
    pub confirm: String,
}

pub(crate) type Accepted = Result<(StatusCode, Json<TenantView>), ApiError>;

/// Records an owner's action if the lifecycle rules allow it in the tenant's
/// current state (read under a row lock, so two actions cannot both pass).
/// The API's endpoints and the dashboard's buttons both come through here, so
/// they share the rules, the rate limit and the audit entry.
pub(crate) async fn act(
    state: &AppState,
    caller: &Caller,
    origin: &Origin,
    path: &TenantPath,
    action: OwnerAction,
) -> Accepted {
    load_visible(state, caller, path).await?;
    state
        .limits
        .user_action(caller.user.id, "deployments and lifecycle actions")?;
    let mut tx = state.pool.begin().await?;
    let current = tenants::get_for_update(&mut tx, path.0).await?;
    let intent = lifecycle::plan(&current.lifecycle(), action)
        .map_err(|refusal| ApiError::conflict(refusal.code(), refusal.to_string()))?;
    let tenant = tenants::record_intent(&mut tx, &current, intent).await?;
    tx.commit().await?;
    let entry = Entry::new(Some(caller.user.id), action.audit_name()).on("tenant", tenant.id);
    audit::record(&state.pool, origin, entry).await?;
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
    act(&state, &caller, &origin, &path, OwnerAction::Start).await
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
    act(&state, &caller, &origin, &path, OwnerAction::Stop).await
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
    act(&state, &caller, &origin, &path, OwnerAction::Restart).await
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
    act(&state, &caller, &origin, &path, OwnerAction::Retry).await
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
    destroy_confirmed(&state, &caller, &origin, &path, &body.confirm).await
}

/// Destroys the tenant if `confirm` is its subdomain exactly (the API's body
/// and the destroy page's typed field alike); otherwise a validation error on
/// the `confirm` field.
pub(crate) async fn destroy_confirmed(
    state: &AppState,
    caller: &Caller,
    origin: &Origin,
    path: &TenantPath,
    confirm: &str,
) -> Accepted {
    let tenant = load_visible(state, caller, path).await?;
    if confirm != tenant.subdomain {
        return Err(ApiError::validation(
            "confirm",
            "confirmation",
            "to destroy this tenant, set confirm to its subdomain exactly",
        ));
    }
    let (status, Json(mut view)) = act(state, caller, origin, path, OwnerAction::Destroy).await?;
    // Its backups are kept for the grace period (whether or not backups are on
    // now, so the date is known); the owner is told until when.
    let grace = chrono::Duration::from_std(state.config.backups.backup_destroyed_grace)
        .unwrap_or(chrono::Duration::days(30));
    let until = chrono::Utc::now() + grace;
    crate::store::backups::keep_until(&state.pool, path.0, until).await?;
    view.backups_kept_until = Some(until);
    Ok((status, Json(view)))
}
