//! Admin-only platform endpoints: users and their roles, the audit trail, orphans.

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::caller::Caller;
use super::client::Client;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery, Page, PageMeta};
use super::ApiRouter;
use crate::domain::Role;
use crate::http::AppState;
use crate::reconcile::OrphanReport;
use crate::store::audit::{self, AuditRow, Entry, Origin};
use crate::store::users::{self, Account};
use utoipa_axum::routes;

pub fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(orphans))
        .routes(routes!(list_users))
        .routes(routes!(change_role))
        .routes(routes!(audit_log))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub role: String,
    pub email_verified: bool,
    /// An address the account asked to change to, until its link is used.
    pub pending_email: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<Account> for UserView {
    fn from(a: Account) -> Self {
        Self {
            id: a.id,
            email: a.email,
            name: a.name,
            role: a.role.to_string(),
            email_verified: a.email_verified_at.is_some(),
            pending_email: a.pending_email,
            created_at: a.created_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserList {
    pub data: Vec<UserView>,
    pub meta: PageMeta,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditList {
    pub data: Vec<AuditRow>,
    pub meta: PageMeta,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    /// `admin` or `member`.
    pub role: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    #[param(minimum = 1)]
    pub page: Option<u32>,
    #[param(rename = "perPage", minimum = 1, maximum = 100)]
    pub per_page: Option<u32>,
    /// Only this user's entries.
    #[param(rename = "userId")]
    pub user_id: Option<Uuid>,
    /// Only this action, e.g. `auth.login_failed`.
    pub action: Option<String>,
}

/// Runs an orphan sweep now: removes managed containers without a live tenant
/// (a POST: it changes things, so no GET may trigger it)
/// and lists tenant-looking Postgres objects without one (never dropped).
#[utoipa::path(post, path = "/api/v1/admin/orphans", operation_id = "admin.orphans", tag = "admin",
    responses((status = 200, body = OrphanReport), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn orphans(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<OrphanReport>, ApiError> {
    caller.require_admin()?;
    Ok(Json(sweep_orphans(&state).await?))
}

/// One orphan sweep now (the API's and the admin page's): removes managed
/// containers without a live tenant, reports Postgres objects without one.
/// The caller must be an admin.
pub(crate) async fn sweep_orphans(state: &AppState) -> Result<OrphanReport, ApiError> {
    state
        .reconciler
        .sweep_orphans()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Every user, oldest first.
#[utoipa::path(get, path = "/api/v1/admin/users", operation_id = "admin.listUsers", tag = "admin", params(Page),
    responses((status = 200, body = UserList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<UserList>, ApiError> {
    caller.require_admin()?;
    let (page, per_page, offset) = page.resolve()?;
    let (rows, total) = users::list_accounts(&state.pool, per_page, offset).await?;
    Ok(Json(UserList {
        data: rows.into_iter().map(UserView::from).collect(),
        meta: PageMeta {
            page,
            per_page,
            total: Some(total),
            next_cursor: None,
        },
    }))
}

/// Makes a user an admin or a member.
#[utoipa::path(patch, path = "/api/v1/admin/users/{id}", operation_id = "admin.changeRole", tag = "admin",
    params(("id" = Uuid, Path, description = "user id")), request_body = RoleChange,
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn change_role(
    State(state): State<AppState>,
    caller: Caller,
    Client(origin): Client,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RoleChange>,
) -> Result<Json<UserView>, ApiError> {
    caller.require_admin()?;
    let id: Uuid = id
        .parse()
        .map_err(|_| ApiError::NotFound("no such user".into()))?;
    let account = set_user_role(&state, &caller, &origin, id, &body.role).await?;
    Ok(Json(account.into()))
}

/// Makes user `id` an admin or a member (`role`), with its audit entry: the
/// API's and the admin page's operation. An admin cannot demote themselves, so
/// the platform always keeps one. The caller must be an admin.
pub(crate) async fn set_user_role(
    state: &AppState,
    caller: &Caller,
    origin: &Origin,
    id: Uuid,
    role: &str,
) -> Result<Account, ApiError> {
    let role: Role = role.parse().map_err(|_| {
        ApiError::validation("role", "one_of", "role must be \"admin\" or \"member\"")
    })?;
    if id == caller.user.id && role != Role::Admin {
        return Err(ApiError::conflict(
            "last_admin_guard",
            "admins cannot demote themselves; ask another admin",
        ));
    }
    if !users::set_role(&state.pool, id, role).await? {
        return Err(ApiError::NotFound("no such user".into()));
    }
    audit::record(
        &state.pool,
        origin,
        Entry::new(Some(caller.user.id), "user.role_changed")
            .on("user", id)
            .with(json!({ "role": role.as_str() })),
    )
    .await?;
    Ok(users::account(&state.pool, id).await?)
}

/// The audit trail, newest first.
#[utoipa::path(get, path = "/api/v1/admin/audit-log", operation_id = "admin.auditLog", tag = "admin", params(AuditQuery),
    responses((status = 200, body = AuditList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn audit_log(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditList>, ApiError> {
    caller.require_admin()?;
    let (page, per_page, offset) = Page {
        page: q.page,
        per_page: q.per_page,
    }
    .resolve()?;
    let (rows, total) = audit::list(
        &state.pool,
        q.user_id,
        q.action.as_deref(),
        per_page,
        offset,
    )
    .await?;
    Ok(Json(AuditList {
        data: rows,
        meta: PageMeta {
            page,
            per_page,
            total: Some(total),
            next_cursor: None,
        },
    }))
}
