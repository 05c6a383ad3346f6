//! Backups, restores and data export. Owners list their instance's backups,
//! take one by hand (rate-limited), download one (the decrypted dump, or plain
//! SQL), restore their instance to one (the current data backed up first) or
//! into a new instance, and, once an instance is destroyed, ask for its
//! backups to be deleted now rather than at the end of the grace period.
//! Admins see every backup and the backup health of every tenant.
//!
//! A download or restore checks the stored file first (its SHA-256 against
//! the manifest, then every chunk's seal): a damaged or altered backup is
//! refused with 422 before a byte of it is used.
//!
//! Taking, restoring and deleting are `pub(crate)` operations
//! (`request_backup`, `restore_backup`, `delete_backups_now`) that the
//! handlers here and the backup pages (`web::instances`) both call, so the
//! rules, rate limits and audit entries are the same either way.

use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::routes;
use uuid::Uuid;

use super::caller::Caller;
use super::client::Client;
use super::error::{ApiError, ErrorBody, OnConflict};
use super::extract::{ApiJson, ApiQuery, TenantPath};
use super::tenants::load_visible;
use super::{ApiRouter, AppState};
use crate::domain::{DesiredState, TenantId, TenantStatus};
use crate::provision::backup::BackupError;
use crate::reconcile::backups::BackupService;
use crate::store::audit::{self, Entry, Origin};
use crate::store::backups::{self, kind, BackupRow};
use crate::store::restores::{self, RestoreRow};
use crate::store::tenants::{self, NewTenant, Tenant};
use crate::store::StoreError;

pub fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(list, create, delete_all))
        .routes(routes!(download))
        .routes(routes!(restore))
        .routes(routes!(restores_list))
        .routes(routes!(admin_list))
        .routes(routes!(admin_health))
}

/// One backup and its manifest (never the key, never a password).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupView {
    pub id: i64,
    pub tenant_id: Uuid,
    /// scheduled, manual, pre_restore (the data a restore replaced) or final
    /// (the data at destroy).
    pub kind: String,
    /// pending, running, complete, failed or deleted.
    pub status: String,
    /// The schedule's slot, for a scheduled backup.
    pub slot: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub attempts: i32,
    pub error: Option<String>,
    /// The database server and database it was taken from.
    pub server: Option<String>,
    pub database: Option<String>,
    pub fresco_image: Option<String>,
    /// Fresco's newest applied migration at the time.
    pub schema_version: Option<String>,
    /// Size of the dump, and of the sealed file kept.
    pub dump_bytes: Option<i64>,
    pub stored_bytes: Option<i64>,
    /// SHA-256 of the sealed file.
    pub sha256: Option<String>,
    /// Rows per table at the time of the backup.
    #[schema(value_type = Object, nullable)]
    pub row_counts: Option<serde_json::Value>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub deleted_why: Option<String>,
    /// When `fresco-platform backups verify` last restored it, and what it found.
    pub verified_at: Option<DateTime<Utc>>,
    pub verify_error: Option<String>,
}

impl From<BackupRow> for BackupView {
    fn from(b: BackupRow) -> Self {
        Self {
            id: b.id,
            tenant_id: b.tenant_id,
            kind: b.kind,
            status: b.status,
            slot: b.slot,
            created_at: b.created_at,
            completed_at: b.completed_at,
            attempts: b.attempts,
            error: b.error,
            server: b.server_name,
            database: b.db_name,
            fresco_image: b.fresco_image,
            schema_version: b.schema_version,
            dump_bytes: b.dump_bytes,
            stored_bytes: b.stored_bytes,
            sha256: b.sha256,
            row_counts: b.row_counts,
            deleted_at: b.deleted_at,
            deleted_why: b.deleted_why,
            verified_at: b.verified_at,
            verify_error: b.verify_error,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupList {
    pub data: Vec<BackupView>,
    /// A destroyed instance's backups are kept until then.
    pub kept_until: Option<DateTime<Utc>>,
}

/// One restore of a tenant to a backup.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreView {
    pub id: i64,
    /// The tenant restored into (a new one for a copy).
    pub tenant_id: Uuid,
    pub backup_id: i64,
    pub into_new: bool,
    /// pending, verified, stopped, backed_up, restored, done, failed or abandoned.
    pub phase: String,
    /// The backup of the data this restore replaced: restore it to undo.
    pub safety_backup_id: Option<i64>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<RestoreRow> for RestoreView {
    fn from(r: RestoreRow) -> Self {
        Self {
            id: r.id,
            tenant_id: r.tenant_id,
            backup_id: r.backup_id,
            into_new: r.into_new,
            phase: r.phase().as_str().to_owned(),
            safety_backup_id: r.safety_backup_id,
            error: r.error,
            created_at: r.created_at,
            finished_at: r.finished_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RestoreList {
    pub data: Vec<RestoreView>,
}

pub(crate) fn service(state: &AppState) -> Result<&BackupService, ApiError> {
    state.backups.as_ref().ok_or_else(|| {
        ApiError::conflict(
            "backups_off",
            "backups are off on this platform (no BACKUP_KEY_FILE); ask its operator",
        )
    })
}

/// `/tenants/{id}/backups/{backupId}`: a backup of that tenant, else 404.
pub struct BackupPath {
    pub tenant: TenantId,
    pub backup: i64,
}

impl<S: Send + Sync> FromRequestParts<S> for BackupPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path((tenant, backup)) =
            axum::extract::Path::<(String, String)>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let tenant = tenant.parse().map_err(|_| ApiError::tenant_not_found())?;
        let backup = backup.parse().map_err(|_| no_backup())?;
        Ok(Self { tenant, backup })
    }
}

fn no_backup() -> ApiError {
    ApiError::NotFound("no such backup".into())
}

pub(crate) async fn load_backup(
    state: &AppState,
    caller: &Caller,
    path: &BackupPath,
) -> Result<(Tenant, BackupRow), ApiError> {
    let tenant = load_visible(state, caller, &TenantPath(path.tenant)).await?;
    match backups::get(&state.pool, path.backup).await {
        Ok(b) if b.tenant_id == tenant.id => Ok((tenant, b)),
        Ok(_) | Err(StoreError::NotFound) => Err(no_backup()),
        Err(e) => Err(e.into()),
    }
}

/// A backup that can be read: complete, with its object.
pub(crate) fn readable(b: &BackupRow) -> Result<(String, String), ApiError> {
    match (&b.object_key, &b.sha256) {
        (Some(key), Some(sha)) if b.complete() => Ok((key.clone(), sha.clone())),
        _ => Err(ApiError::conflict(
            "backup_unavailable",
            format!(
                "backup {} is {}; only a complete backup can be used",
                b.id, b.status
            ),
        )),
    }
}

/// The stored file's check failed: damaged or altered.
fn refused(e: BackupError) -> ApiError {
    match e {
        e @ (BackupError::Seal(_) | BackupError::Checksum { .. }) => ApiError::Validation {
            message: e.to_string(),
            details: json!({ "field": "backup", "rule": "integrity" }),
        },
        BackupError::Storage(crate::provision::storage::StorageError::Missing(m)) => {
            ApiError::Gone(format!(
                "the backup object {m} is no longer in the backup storage"
            ))
        }
        other => ApiError::Internal(other.to_string()),
    }
}

/// The instance's backups, newest first (deleted ones stay listed, saying why).
#[utoipa::path(get, path = "/api/v1/tenants/{id}/backups", operation_id = "backups.list", tag = "backups",
    params(("id" = Uuid, Path, description = "tenant id")),
    responses((status = 200, body = BackupList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    path: TenantPath,
) -> Result<Json<BackupList>, ApiError> {
    let tenant = load_visible(&state, &caller, &path).await?;
    let rows = backups::of_tenant(&state.pool, path.0, 200).await?;
    Ok(Json(BackupList {
        data: rows.into_iter().map(BackupView::from).collect(),
        kept_until: tenant.backups_kept_until(),
    }))
}

/// Takes a backup of the instance now (at most one per BACKUP_MANUAL_INTERVAL).
/// It is queued and taken in the background: follow it in the list.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/backups", operation_id = "backups.create", tag = "backups",
    params(("id" = Uuid, Path, description = "tenant id")),
    responses((status = 202, body = BackupView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the instance is destroyed or has no data yet, or backups are off on this platform (`backups_off`)"),
        (status = 429, body = ErrorBody, description = "a backup by hand was asked for too recently, or is still running")))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Client(origin): Client,
    path: TenantPath,
) -> Result<(StatusCode, Json<BackupView>), ApiError> {
    let row = request_backup(&state, &caller, &origin, &path).await?;
    Ok((StatusCode::ACCEPTED, Json(row.into())))
}

/// Queues a backup by hand of the instance, if it has data and the owner's
/// rate limit allows (admins are exempt from the interval): the API's
/// `create` and the backups page's button both come through here.
pub(crate) async fn request_backup(
    state: &AppState,
    caller: &Caller,
    origin: &Origin,
    path: &TenantPath,
) -> Result<BackupRow, ApiError> {
    let svc = service(state)?;
    let tenant = load_visible(state, caller, path).await?;
    if tenant.desired_state == DesiredState::Destroyed || tenant.status == TenantStatus::Destroyed {
        return Err(ApiError::conflict(
            "tenant_destroyed",
            "the instance is destroyed; its data is gone (its earlier backups are listed)",
        ));
    }
    if tenant.location().is_none() || tenant.first_started_at.is_none() {
        return Err(ApiError::conflict(
            "no_data_yet",
            "the instance has not started yet, so it has no data to back up",
        ));
    }
    let interval = svc.config().backup_manual_interval;
    let (last, open) = backups::manual_state(&state.pool, path.0).await?;
    if open {
        return Err(ApiError::RateLimited {
            message: "a backup by hand of this instance is still being taken; wait for it".into(),
            retry_after_secs: 30,
        });
    }
    if let Some(last) = last {
        let next = last + chrono::Duration::from_std(interval).unwrap_or_default();
        if next > Utc::now() && !caller.is_admin() {
            return Err(ApiError::RateLimited {
                message: format!(
                    "one backup by hand per {} per instance; the next one at {}",
                    humantime::format_duration(interval),
                    next.format("%H:%M:%S UTC")
                ),
                retry_after_secs: (next - Utc::now()).num_seconds().max(1) as u64,
            });
        }
    }
    let row = backups::request(&state.pool, path.0, kind::MANUAL, Some(caller.user.id)).await?;
    svc.wake();
    let entry = Entry::new(Some(caller.user.id), "backup.create").on("tenant", tenant.id);
    audit::record(
        &state.pool,
        origin,
        entry.with(json!({ "backupId": row.id })),
    )
    .await?;
    Ok(row)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupsDeleted {
    /// Backups whose deletion is under way (they go within BACKUP_TICK_SECS).
    pub deleting: usize,
}

/// For a destroyed instance: deletes its backups now instead of at the end of
/// the grace period. Cannot be undone.
#[utoipa::path(delete, path = "/api/v1/tenants/{id}/backups", operation_id = "backups.deleteAll", tag = "backups",
    params(("id" = Uuid, Path, description = "tenant id")),
    responses((status = 202, body = BackupsDeleted), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the instance is not destroyed (destroy it first)")))]
pub async fn delete_all(
    State(state): State<AppState>,
    caller: Caller,
    Client(origin): Client,
    path: TenantPath,
) -> Result<(StatusCode, Json<BackupsDeleted>), ApiError> {
    let deleting = delete_backups_now(&state, &caller, &origin, &path).await?;
    Ok((StatusCode::ACCEPTED, Json(BackupsDeleted { deleting })))
}

/// Ends a destroyed instance's grace period now, so the backup service
/// deletes its backups at its next turn; returns how many are going. The
/// API's `deleteAll` and the backups page's button both come through here.
pub(crate) async fn delete_backups_now(
    state: &AppState,
    caller: &Caller,
    origin: &Origin,
    path: &TenantPath,
) -> Result<usize, ApiError> {
    let tenant = load_visible(state, caller, path).await?;
    if tenant.desired_state != DesiredState::Destroyed {
        return Err(ApiError::conflict(
            "tenant_live",
            "only a destroyed instance's backups can be deleted all at once; destroy it first",
        ));
    }
    backups::keep_until(&state.pool, path.0, Utc::now()).await?;
    let deleting = backups::of_tenant(&state.pool, path.0, 10_000)
        .await?
        .iter()
        .filter(|b| b.status != "deleted")
        .count();
    if let Some(svc) = &state.backups {
        svc.wake();
    }
    let entry = Entry::new(Some(caller.user.id), "backup.delete_all").on("tenant", tenant.id);
    audit::record(&state.pool, origin, entry).await?;
    tracing::info!(tenant_id = %tenant.id, deleting, "owner asked for the backups to be deleted now");
    Ok(deleting)
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// `dump` (the default): the decrypted `pg_dump` custom-format file, for
    /// `pg_restore`; `sql`: plain SQL.
    pub format: Option<String>,
}

/// Downloads a backup, decrypted: the `pg_dump` archive or plain SQL. Streamed;
/// the stored file is checked whole before the first byte is sent.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/backups/{backupId}/download", operation_id = "backups.download", tag = "backups",
    params(("id" = Uuid, Path, description = "tenant id"), ("backupId" = i64, Path, description = "backup id"), DownloadQuery),
    responses((status = 200, content_type = "application/octet-stream", description = "the dump (`format=dump`) or SQL (`format=sql`)"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the backup is not complete (pending, failed or deleted), or backups are off on this platform (`backups_off`)"),
        (status = 410, body = ErrorBody, description = "the backup's file is gone from the storage"),
        (status = 422, body = ErrorBody, description = "unknown format, or the stored file is damaged or altered (checksum or seal)")))]
pub async fn download(
    State(state): State<AppState>,
    caller: Caller,
    Client(origin): Client,
    path: BackupPath,
    ApiQuery(q): ApiQuery<DownloadQuery>,
) -> Result<Response, ApiError> {
    let svc = service(&state)?;
    let sql = match q.format.as_deref().unwrap_or("dump") {
        "dump" => false,
        "sql" => true,
        _ => {
            return Err(ApiError::validation(
                "format",
                "enum",
                "format must be dump or sql",
            ))
        }
    };
    let (tenant, backup) = load_backup(&state, &caller, &path).await?;
    let (key, sha) = readable(&backup)?;
    let b = svc.backups();
    b.check(&key, &sha, None).await.map_err(refused)?;
    let plain = b.open(b.object_stream(&key).await.map_err(refused)?);
    let (body, ext, mime) = if sql {
        let out = b
            .sql(plain)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        (Body::from_stream(out), "sql", "application/sql")
    } else {
        (Body::from_stream(plain), "dump", "application/octet-stream")
    };
    let entry = Entry::new(Some(caller.user.id), "backup.download").on("tenant", tenant.id);
    audit::record(
        &state.pool,
        &origin,
        entry.with(json!({ "backupId": backup.id, "format": ext })),
    )
    .await?;
    let name = format!(
        "{}-backup-{}-{}.{ext}",
        tenant.subdomain,
        backup.id,
        backup
            .completed_at
            .unwrap_or(backup.created_at)
            .format("%Y%m%dT%H%M%SZ")
    );
    Ok((
        [
            (header::CONTENT_TYPE, mime.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response())
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreRequest {
    /// `same` (the default for a live instance): this instance's data is
    /// replaced by the backup's (it is stopped, its current data backed up
    /// first, then started). `new` (the only choice for a destroyed
    /// instance): a new instance is made with the backup's data.
    pub into: Option<String>,
    /// For `new`: the new instance's subdomain (default for a destroyed
    /// instance: its own, if still free).
    pub subdomain: Option<String>,
}

/// Restores a backup: into this instance, or into a new one. Follow it in the
/// instance's deployment log (`restore`) and `GET …/restores`.
#[utoipa::path(post, path = "/api/v1/tenants/{id}/backups/{backupId}/restore", operation_id = "backups.restore", tag = "backups",
    params(("id" = Uuid, Path, description = "tenant id"), ("backupId" = i64, Path, description = "backup id")),
    request_body = RestoreRequest,
    responses((status = 202, body = RestoreView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "tenant quota reached (a restore into a new instance)"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the backup is not complete, another action is in progress, the subdomain is taken, or backups are off on this platform (`backups_off`)"),
        (status = 422, body = ErrorBody, description = "invalid `into` or `subdomain`"),
        (status = 429, body = ErrorBody)))]
pub async fn restore(
    State(state): State<AppState>,
    caller: Caller,
    Client(origin): Client,
    path: BackupPath,
    ApiJson(body): ApiJson<RestoreRequest>,
) -> Result<(StatusCode, Json<RestoreView>), ApiError> {
    let row = restore_backup(&state, &caller, &origin, &path, body).await?;
    Ok((StatusCode::ACCEPTED, Json(row.into())))
}

/// Records a restore of a complete backup: into the instance itself (active
/// or stopped, nothing else in progress) or into a new instance (the owner's
/// quota, a free subdomain). The reconciler does the work. The API's
/// `restore` and the restore page both come through here.
pub(crate) async fn restore_backup(
    state: &AppState,
    caller: &Caller,
    origin: &Origin,
    path: &BackupPath,
    body: RestoreRequest,
) -> Result<RestoreRow, ApiError> {
    service(state)?;
    let (tenant, backup) = load_backup(state, caller, path).await?;
    readable(&backup)?;
    state
        .limits
        .user_action(caller.user.id, "deployments and lifecycle actions")?;
    let destroyed = tenant.desired_state == DesiredState::Destroyed;
    let into_new = match body.into.as_deref() {
        None => destroyed,
        Some("new") => true,
        Some("same") if destroyed => {
            return Err(ApiError::validation(
                "into",
                "destroyed",
                "the instance is destroyed: restore into a new instance (into: \"new\")",
            ))
        }
        Some("same") => false,
        Some(_) => {
            return Err(ApiError::validation(
                "into",
                "enum",
                "into must be same or new",
            ))
        }
    };
    if !into_new && body.subdomain.is_some() {
        return Err(ApiError::validation(
            "subdomain",
            "unused",
            "subdomain is only for into: \"new\"",
        ));
    }
    let mut tx = state.pool.begin().await?;
    let row = if into_new {
        let wanted = match (&body.subdomain, destroyed) {
            (Some(s), _) => s.clone(),
            (None, true) => tenant.subdomain.clone(),
            (None, false) => {
                return Err(ApiError::validation(
                    "subdomain",
                    "required",
                    "give the new instance a subdomain",
                ))
            }
        };
        let subdomain = state
            .config
            .subdomain(&wanted)
            .map_err(|e| ApiError::validation("subdomain", e.rule(), e.to_string()))?;
        if !caller.is_admin() {
            let live = tenants::lock_and_count_live_for(&mut tx, tenant.user_id).await?;
            let quota = state.config.accounts.tenant_quota;
            if live >= quota {
                return Err(ApiError::Forbidden(format!(
                    "tenant quota reached: you may have {quota} instances; destroy one to restore into a new one"
                )));
            }
        }
        let taken = || {
            ApiError::conflict(
                "subdomain_taken",
                format!("subdomain \"{subdomain}\" is already taken"),
            )
        };
        let new = NewTenant {
            user_id: tenant.user_id,
            subdomain: &subdomain,
            image: tenant.image.as_deref(),
            resource_limits: tenant.resource_limits.clone(),
        };
        let created = tenants::insert(&mut tx, new).await.on_conflict(taken)?;
        let row = restores::begin(&mut tx, &created, backup.id, true, Some(caller.user.id)).await?;
        tx.commit().await.on_conflict(taken)?;
        row
    } else {
        let current = tenants::get_for_update(&mut tx, path.tenant).await?;
        if let Some(action) = current.current_action {
            return Err(ApiError::conflict(
                "action_in_progress",
                format!("another action ({action}) is in progress; wait for it to finish"),
            ));
        }
        // An instance in error (its data broke it, say) is one a restore may mend.
        if !matches!(
            current.status,
            TenantStatus::Active | TenantStatus::Stopped | TenantStatus::Error
        ) {
            return Err(ApiError::conflict(
                "invalid_state",
                format!(
                    "the instance is {}; only an active, stopped or failed instance can be restored",
                    current.status
                ),
            ));
        }
        let row = restores::begin(&mut tx, &current, backup.id, false, Some(caller.user.id))
            .await
            .on_conflict(|| {
                ApiError::conflict("restore_in_progress", "a restore is already in progress")
            })?;
        tx.commit().await?;
        row
    };
    let entry = Entry::new(Some(caller.user.id), "backup.restore").on("tenant", row.tenant_id);
    audit::record(
        &state.pool,
        origin,
        entry.with(json!({ "backupId": backup.id, "from": tenant.id, "intoNew": into_new })),
    )
    .await?;
    tracing::info!(tenant_id = %row.tenant_id, backup_id = backup.id, into_new, "restore requested");
    Ok(row)
}

/// The instance's restores, newest first.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/restores", operation_id = "backups.restores", tag = "backups",
    params(("id" = Uuid, Path, description = "tenant id")),
    responses((status = 200, body = RestoreList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn restores_list(
    State(state): State<AppState>,
    caller: Caller,
    path: TenantPath,
) -> Result<Json<RestoreList>, ApiError> {
    load_visible(&state, &caller, &path).await?;
    let rows = restores::of_tenant(&state.pool, path.0).await?;
    Ok(Json(RestoreList {
        data: rows.into_iter().map(RestoreView::from).collect(),
    }))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AdminBackupQuery {
    /// Only backups with this status (pending, running, complete, failed, deleted).
    pub status: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdminBackupList {
    pub data: Vec<BackupView>,
}

/// Every tenant's backups, newest first (the latest 500).
#[utoipa::path(get, path = "/api/v1/admin/backups", operation_id = "admin.listBackups", tag = "admin",
    params(AdminBackupQuery),
    responses((status = 200, body = AdminBackupList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn admin_list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AdminBackupQuery>,
) -> Result<Json<AdminBackupList>, ApiError> {
    caller.require_admin()?;
    if let Some(s) = &q.status {
        if !["pending", "running", "complete", "failed", "deleted"].contains(&s.as_str()) {
            return Err(ApiError::validation(
                "status",
                "enum",
                "status must be pending, running, complete, failed or deleted",
            ));
        }
    }
    let rows = backups::list(&state.pool, q.status.as_deref(), 500).await?;
    Ok(Json(AdminBackupList {
        data: rows.into_iter().map(BackupView::from).collect(),
    }))
}

/// One live tenant's backup health.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupHealthView {
    pub tenant_id: Uuid,
    pub subdomain: String,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_success_id: Option<i64>,
    /// Failed backups since the last success.
    pub failures: i64,
    pub last_error: Option<String>,
    pub last_failure_at: Option<DateTime<Utc>>,
    /// No success within twice the schedule's interval (and spread) since the
    /// last one, or since the instance first started.
    pub overdue: bool,
    pub last_verified_at: Option<DateTime<Utc>>,
    pub last_verify_error: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupHealth {
    /// Whether backups are on (BACKUP_KEY_FILE set).
    pub enabled: bool,
    /// `local:/dir` or `s3://bucket/prefix`.
    pub storage: Option<String>,
    pub schedule: String,
    /// Live tenants whose last backup is overdue or failed since.
    pub unhealthy: usize,
    pub data: Vec<BackupHealthView>,
}

/// Backup health of every live tenant: its last success, failures since,
/// whether it is overdue, and the last recovery test.
#[utoipa::path(get, path = "/api/v1/admin/backups/health", operation_id = "admin.backupHealth", tag = "admin",
    responses((status = 200, body = BackupHealth), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn admin_health(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<BackupHealth>, ApiError> {
    caller.require_admin()?;
    Ok(Json(backup_health(&state).await?))
}

/// The backup health report: the admin API's and the admin backups page's.
pub(crate) async fn backup_health(state: &AppState) -> Result<BackupHealth, ApiError> {
    let cfg = &state.config.backups;
    let interval = cfg.schedule().ok().flatten().map(|s| s.interval + s.spread);
    let now = Utc::now();
    let data: Vec<BackupHealthView> = backups::health(&state.pool)
        .await?
        .into_iter()
        .map(|h| {
            // Counted from its last success, or from its first start.
            let since = h.last_success_at.or(h.first_started_at);
            let overdue = match (interval, since) {
                (Some(i), Some(at)) => {
                    now - at > chrono::Duration::from_std(i * 2).unwrap_or(chrono::Duration::MAX)
                }
                _ => false,
            };
            BackupHealthView {
                tenant_id: h.tenant_id,
                subdomain: h.subdomain,
                last_success_at: h.last_success_at,
                last_success_id: h.last_success_id,
                failures: h.failures,
                last_error: h.last_error,
                last_failure_at: h.last_failure_at,
                overdue,
                last_verified_at: h.last_verified_at,
                last_verify_error: h.last_verify_error,
            }
        })
        .collect();
    Ok(BackupHealth {
        enabled: state.backups.is_some(),
        storage: state
            .backups
            .as_ref()
            .map(|s| s.backups().storage().name().to_owned()),
        schedule: cfg.backup_schedule.clone(),
        unhealthy: data.iter().filter(|h| h.overdue || h.failures > 0).count(),
        data,
    })
}
