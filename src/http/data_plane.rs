//! Admin-only: the Postgres servers tenant data lives on, their load and
//! draining, and moves of a tenant's data between them. A move is recorded
//! here (one transaction: the move row, the tenant's `move` action, its
//! `initiated` log row, a NOTIFY); the reconciler carries it out.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::caller::Caller;
use super::client::Client;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, TenantPath};
use super::ApiRouter;
use crate::domain::redacted_dsn;
use crate::http::AppState;
use crate::store::audit::{self, Entry};
use crate::store::db_servers::{self, DbServer, Loaded};
use crate::store::moves::{self, MoveRefused, MoveRow};
use crate::store::{tenants, StoreError};
use utoipa_axum::routes;

pub fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(list_servers))
        .routes(routes!(update_server))
        .routes(routes!(move_tenant))
        .routes(routes!(tenant_moves))
}

/// A database server as admins see it: never its admin URL's password.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DbServerView {
    pub id: Uuid,
    pub name: String,
    /// `user@host:port/database` of the platform's connection there; `null`
    /// for the platform's own server (it uses DATABASE_URL).
    pub admin: Option<String>,
    /// Where tenants reach it directly (`null`: TENANT_DB_HOST).
    pub tenant_host: Option<String>,
    /// Where tenants reach its PgBouncer (`null`: TENANT_DB_POOLER_PORT, or none).
    pub pooler_host: Option<String>,
    pub capacity: i32,
    /// Live tenants placed on it, moves to it under way included.
    pub tenants: i64,
    /// A draining server takes no new tenants; its tenants are moved away.
    pub draining: bool,
    pub created_at: DateTime<Utc>,
}

impl From<Loaded> for DbServerView {
    fn from(l: Loaded) -> Self {
        let s = l.server;
        Self {
            id: s.id,
            admin: s.admin_url.as_deref().map(redacted_dsn),
            name: s.name,
            tenant_host: s.tenant_host,
            pooler_host: s.pooler_host,
            capacity: s.capacity,
            tenants: l.tenants,
            draining: s.draining,
            created_at: s.created_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DbServerList {
    pub data: Vec<DbServerView>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DbServerChange {
    /// Most live tenants placed on it (1–100000).
    pub capacity: Option<i32>,
    /// `true` drains it: no new tenants, and every tenant on it is moved to
    /// the least-loaded other server, a few at a time. `false` ends a drain.
    pub draining: Option<bool>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MoveRequest {
    /// The name of the database server to move the tenant's data to.
    pub server: String,
}

/// One move of a tenant's data.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MoveView {
    pub id: i64,
    pub tenant_id: Uuid,
    pub from_server: String,
    pub from_database: String,
    pub to_server: String,
    pub to_database: String,
    /// pending, stopped, copied, switched (the target is authoritative from
    /// here), done, rolled_back or abandoned.
    pub phase: String,
    pub reason: String,
    /// Rows per table, as counted on both sides when the copy was verified.
    pub row_counts: Option<serde_json::Value>,
    pub dump_bytes: Option<i64>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MoveList {
    pub data: Vec<MoveView>,
}

async fn move_view(state: &AppState, m: MoveRow) -> Result<MoveView, ApiError> {
    let name = |id: Uuid| async move {
        db_servers::get(&state.pool, id)
            .await
            .map(|s| s.name)
            .unwrap_or_else(|_| id.to_string())
    };
    Ok(MoveView {
        id: m.id,
        tenant_id: m.tenant_id,
        from_server: name(m.from_server_id).await,
        from_database: m.from_db.clone(),
        to_server: name(m.to_server_id).await,
        to_database: m.to_db.clone(),
        phase: m.phase().as_str().to_owned(),
        reason: m.reason,
        row_counts: m.row_counts,
        dump_bytes: m.dump_bytes,
        error: m.error,
        created_at: m.created_at,
        finished_at: m.finished_at,
    })
}

/// The database servers, with their load.
#[utoipa::path(get, path = "/api/v1/admin/db-servers", operation_id = "admin.listDbServers", tag = "admin",
    responses((status = 200, body = DbServerList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_servers(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<DbServerList>, ApiError> {
    caller.require_admin()?;
    let servers = db_servers::list(&state.pool).await?;
    Ok(Json(DbServerList {
        data: servers.into_iter().map(DbServerView::from).collect(),
    }))
}

async fn server_named(state: &AppState, name: &str) -> Result<DbServer, ApiError> {
    db_servers::by_name(&state.pool, name)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => {
                ApiError::NotFound(format!("no database server named {name:?}"))
            }
            e => e.into(),
        })
}

/// Changes a server's capacity, or drains it (its tenants are moved away).
#[utoipa::path(patch, path = "/api/v1/admin/db-servers/{name}", operation_id = "admin.updateDbServer", tag = "admin",
    params(("name" = String, Path, description = "server name")), request_body = DbServerChange,
    responses((status = 200, body = DbServerView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn update_server(
    State(state): State<AppState>,
    caller: Caller,
    Client(origin): Client,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<DbServerChange>,
) -> Result<Json<DbServerView>, ApiError> {
    caller.require_admin()?;
    if let Some(c) = body.capacity {
        if !(1..=100_000).contains(&c) {
            return Err(ApiError::validation(
                "capacity",
                "range",
                "capacity must be between 1 and 100000",
            ));
        }
    }
    let server = server_named(&state, &name).await?;
    let updated = db_servers::update(&state.pool, server.id, body.capacity, body.draining).await?;
    audit::record(
        &state.pool,
        &origin,
        Entry::new(Some(caller.user.id), "db_server.updated").with(
            json!({ "server": updated.name, "capacity": body.capacity, "draining": body.draining }),
        ),
    )
    .await?;
    if body.draining == Some(true) {
        tracing::info!(server = %updated.name, "database server draining");
        // The resync starts the moves; wake it now rather than at its next turn.
        state.reconciler.resync_soon();
    }
    let loaded = db_servers::list(&state.pool)
        .await?
        .into_iter()
        .find(|l| l.server.id == updated.id)
        .ok_or_else(|| ApiError::NotFound(format!("no database server named {name:?}")))?;
    Ok(Json(loaded.into()))
}

/// Moves a tenant's data to another database server: the container is stopped,
/// the data copied and verified, the tenant restarted there, the old copy
/// dropped once it is healthy. Follow it in the tenant's deployment log.
#[utoipa::path(post, path = "/api/v1/admin/tenants/{id}/move", operation_id = "admin.moveTenant", tag = "admin",
    params(("id" = Uuid, Path, description = "tenant id")), request_body = MoveRequest,
    responses((status = 202, body = MoveView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn move_tenant(
    State(state): State<AppState>,
    caller: Caller,
    Client(origin): Client,
    path: TenantPath,
    ApiJson(body): ApiJson<MoveRequest>,
) -> Result<(StatusCode, Json<MoveView>), ApiError> {
    caller.require_admin()?;
    let target = match db_servers::by_name(&state.pool, &body.server).await {
        Ok(s) => s,
        Err(StoreError::NotFound) => {
            return Err(ApiError::validation(
                "server",
                "exists",
                format!("no database server named {:?}", body.server),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    if target.draining {
        return Err(ApiError::conflict(
            "server_draining",
            format!("database server {} is draining; pick another", target.name),
        ));
    }
    let mut tx = state.pool.begin().await?;
    db_servers::lock_placement(&mut tx).await?;
    let tenant = tenants::get_for_update(&mut tx, path.0)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::tenant_not_found(),
            e => e.into(),
        })?;
    let from = tenant
        .location()
        .ok_or_else(|| ApiError::conflict("invalid_state", MoveRefused::Unplaced.to_string()))?;
    let to = state
        .reconciler
        .target_location(&from, tenant.tenant_id(), target.id);
    if from != to && !db_servers::has_room(&mut tx, target.id).await? {
        return Err(ApiError::conflict(
            "server_full",
            format!(
                "database server {} is at its capacity of {} tenants",
                target.name, target.capacity
            ),
        ));
    }
    let reason = format!("asked by {}", caller.user.email);
    let row = moves::begin(&mut tx, &tenant, &to, &reason)
        .await
        .map_err(|e| match e {
            MoveRefused::Store(e) => e.into(),
            MoveRefused::InProgress(_) => ApiError::conflict("in_progress", e.to_string()),
            MoveRefused::AlreadyThere => ApiError::conflict("already_there", e.to_string()),
            MoveRefused::State(_) | MoveRefused::Unplaced => {
                ApiError::conflict("invalid_state", e.to_string())
            }
        })?;
    tx.commit().await?;
    audit::record(
        &state.pool,
        &origin,
        Entry::new(Some(caller.user.id), "tenant.move")
            .on("tenant", tenant.id)
            .with(json!({ "to": target.name, "moveId": row.id })),
    )
    .await?;
    tracing::info!(tenant_id = %tenant.id, to = %target.name, "tenant move requested");
    Ok((StatusCode::ACCEPTED, Json(move_view(&state, row).await?)))
}

/// A tenant's moves, newest first.
#[utoipa::path(get, path = "/api/v1/admin/tenants/{id}/moves", operation_id = "admin.tenantMoves", tag = "admin",
    params(("id" = Uuid, Path, description = "tenant id")),
    responses((status = 200, body = MoveList), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn tenant_moves(
    State(state): State<AppState>,
    caller: Caller,
    path: TenantPath,
) -> Result<Json<MoveList>, ApiError> {
    caller.require_admin()?;
    tenants::get(&state.pool, path.0)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::tenant_not_found(),
            e => e.into(),
        })?;
    let mut data = Vec::new();
    for m in moves::of_tenant(&state.pool, path.0).await? {
        data.push(move_view(&state, m).await?);
    }
    Ok(Json(MoveList { data }))
}
