//! Backups of tenant data (`tenant_backups`): the queue the scheduler and the
//! backup workers share, and each backup's manifest once taken.
//!
//! Exactly once per slot: a scheduled backup is the one row of its (tenant,
//! slot), however often and from however many processes the scheduler looks.
//! A worker claims a row (FOR UPDATE SKIP LOCKED) with a lease and an attempt
//! number, renews the lease while it works, and completes the row only while
//! the attempt is still its own. A worker that died leaves its lease to run
//! out; the next claim takes the row over as a new attempt.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::StoreError;
use crate::domain::{Isolation, TenantId};

/// What a backup is for.
pub mod kind {
    /// One slot of the schedule.
    pub const SCHEDULED: &str = "scheduled";
    /// Asked for by an owner or an admin.
    pub const MANUAL: &str = "manual";
    /// The state a restore replaced (so the restore can be undone).
    pub const PRE_RESTORE: &str = "pre_restore";
    /// The state at destroy.
    pub const FINAL: &str = "final";
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BackupRow {
    pub id: i64,
    pub tenant_id: Uuid,
    pub kind: String,
    pub slot: Option<DateTime<Utc>>,
    /// pending, running, complete, failed or deleted.
    pub status: String,
    pub requested_by: Option<Uuid>,
    pub attempts: i32,
    pub next_try_at: DateTime<Utc>,
    pub lease_until: Option<DateTime<Utc>>,
    pub storage: Option<String>,
    pub object_key: Option<String>,
    pub server_name: Option<String>,
    pub db_name: Option<String>,
    pub db_isolation: Option<Isolation>,
    pub fresco_image: Option<String>,
    pub schema_version: Option<String>,
    pub dump_bytes: Option<i64>,
    pub stored_bytes: Option<i64>,
    pub sha256: Option<String>,
    pub key_id: Option<String>,
    pub row_counts: Option<Value>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub deleted_why: Option<String>,
    pub verified_at: Option<DateTime<Utc>>,
    pub verify_error: Option<String>,
}

impl BackupRow {
    pub fn tenant(&self) -> TenantId {
        TenantId(self.tenant_id)
    }
    pub fn complete(&self) -> bool {
        self.status == "complete"
    }
    /// The manifest's row counts, by table.
    pub fn counts(&self) -> std::collections::BTreeMap<String, i64> {
        self.row_counts
            .clone()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default()
    }
}

const COLUMNS: &str = "id, tenant_id, kind, slot, status, requested_by, attempts, next_try_at,
    lease_until, storage, object_key, server_name, db_name, db_isolation, fresco_image,
    schema_version, dump_bytes, stored_bytes, sha256, key_id, row_counts, error, created_at,
    started_at, completed_at, deleted_at, deleted_why, verified_at, verify_error";

/// The object key of attempt `attempt` of backup `id`: one per attempt, so an
/// attempt that died mid-upload never shares a name with the one that ends.
pub fn object_key(tenant: Uuid, id: i64, attempt: i32) -> String {
    format!("{}/{id}-{attempt}.fpbk", TenantId(tenant).simple())
}

/// Live tenants with data (placed, started once, not being destroyed): the
/// scheduler's candidates.
pub async fn schedulable(pool: &PgPool) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM tenants
          WHERE status <> 'destroyed' AND desired_state <> 'destroyed'
            AND db_server_id IS NOT NULL AND first_started_at IS NOT NULL",
    )
    .fetch_all(pool)
    .await?)
}

/// Queues the scheduled backup of each (tenant, slot) that has none yet; one
/// statement. Returns how many were new.
pub async fn enqueue_scheduled(
    pool: &PgPool,
    slots: &[(Uuid, DateTime<Utc>)],
) -> Result<u64, StoreError> {
    if slots.is_empty() {
        return Ok(0);
    }
    let (ids, at): (Vec<Uuid>, Vec<DateTime<Utc>>) = slots.iter().cloned().unzip();
    let done = sqlx::query(
        "INSERT INTO tenant_backups (tenant_id, kind, slot)
         SELECT t, 'scheduled', s FROM UNNEST($1::uuid[], $2::timestamptz[]) AS u (t, s)
         ON CONFLICT (tenant_id, slot) DO NOTHING",
    )
    .bind(&ids)
    .bind(&at)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Queues a backup asked for by hand (or by the platform: `kind`).
pub async fn request<'e>(
    db: impl PgExecutor<'e>,
    tenant: TenantId,
    kind: &str,
    requested_by: Option<Uuid>,
) -> Result<BackupRow, StoreError> {
    Ok(sqlx::query_as::<_, BackupRow>(&format!(
        "INSERT INTO tenant_backups (tenant_id, kind, requested_by) VALUES ($1, $2, $3)
         RETURNING {COLUMNS}"
    ))
    .bind(tenant.0)
    .bind(kind)
    .bind(requested_by)
    .fetch_one(db)
    .await?)
}

/// Takes a queued backup for the caller to run now (the reconciler's own,
/// during a restore or a destroy): its next attempt, with a lease.
pub async fn take_over(
    pool: &PgPool,
    id: i64,
    lease_secs: u64,
) -> Result<Option<BackupRow>, StoreError> {
    Ok(sqlx::query_as::<_, BackupRow>(&format!(
        "UPDATE tenant_backups SET status = 'running', attempts = attempts + 1,
                lease_until = now() + make_interval(secs => $2), started_at = now(), error = NULL
          WHERE id = $1 AND status IN ('pending', 'running', 'failed')
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(lease_secs as f64)
    .fetch_optional(pool)
    .await?)
}

/// Claims up to `n` backups due now: pending ones whose time has come, and
/// running ones whose worker's lease ran out. Each claim is a new attempt.
pub async fn claim(pool: &PgPool, n: i64, lease_secs: u64) -> Result<Vec<BackupRow>, StoreError> {
    if n <= 0 {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as::<_, BackupRow>(&format!(
        "UPDATE tenant_backups SET status = 'running', attempts = attempts + 1,
                lease_until = now() + make_interval(secs => $2), started_at = now()
          WHERE id IN (SELECT id FROM tenant_backups
                        WHERE (status = 'pending' AND next_try_at <= now())
                           OR (status = 'running' AND lease_until < now())
                        ORDER BY next_try_at, id
                        LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING {COLUMNS}"
    ))
    .bind(n)
    .bind(lease_secs as f64)
    .fetch_all(pool)
    .await?)
}

/// Renews the lease of attempt `attempt`; false once it is not this worker's.
pub async fn renew(
    pool: &PgPool,
    id: i64,
    attempt: i32,
    lease_secs: u64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE tenant_backups SET lease_until = now() + make_interval(secs => $3)
          WHERE id = $1 AND attempts = $2 AND status = 'running'",
    )
    .bind(id)
    .bind(attempt)
    .bind(lease_secs as f64)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A backup's manifest, as written when it is complete.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub backup_id: i64,
    pub tenant_id: Uuid,
    pub kind: String,
    pub storage: String,
    pub object_key: String,
    pub server: String,
    pub database: String,
    pub isolation: Isolation,
    pub fresco_image: String,
    pub schema_version: Option<String>,
    pub dump_bytes: i64,
    pub stored_bytes: i64,
    pub sha256: String,
    pub key_id: String,
    pub row_counts: std::collections::BTreeMap<String, i64>,
    pub taken_at: DateTime<Utc>,
}

/// Attempt `attempt` finished: the row takes its manifest, if the attempt is
/// still the row's own (false: another worker took it over; its object goes).
pub async fn complete(
    pool: &PgPool,
    id: i64,
    attempt: i32,
    m: &Manifest,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE tenant_backups SET status = 'complete', lease_until = NULL, completed_at = $3,
                storage = $4, object_key = $5, server_name = $6, db_name = $7, db_isolation = $8,
                fresco_image = $9, schema_version = $10, dump_bytes = $11, stored_bytes = $12,
                sha256 = $13, key_id = $14, row_counts = $15, error = NULL
          WHERE id = $1 AND attempts = $2 AND status = 'running'",
    )
    .bind(id)
    .bind(attempt)
    .bind(m.taken_at)
    .bind(&m.storage)
    .bind(&m.object_key)
    .bind(&m.server)
    .bind(&m.database)
    .bind(m.isolation)
    .bind(&m.fresco_image)
    .bind(&m.schema_version)
    .bind(m.dump_bytes)
    .bind(m.stored_bytes)
    .bind(&m.sha256)
    .bind(&m.key_id)
    .bind(serde_json::to_value(&m.row_counts).unwrap_or_default())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Attempt `attempt` failed: tried again at `retry_at`, or, at `max_attempts`,
/// recorded as failed with the reason. Returns whether that was the last try.
pub async fn attempt_failed(
    pool: &PgPool,
    id: i64,
    attempt: i32,
    error: &str,
    max_attempts: i32,
    retry_at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let last = attempt >= max_attempts;
    sqlx::query(
        "UPDATE tenant_backups SET status = CASE WHEN $4 THEN 'failed' ELSE 'pending' END,
                error = $3, lease_until = NULL, next_try_at = $5,
                completed_at = CASE WHEN $4 THEN now() END
          WHERE id = $1 AND attempts = $2 AND status = 'running'",
    )
    .bind(id)
    .bind(attempt)
    .bind(error)
    .bind(last)
    .bind(retry_at)
    .execute(pool)
    .await?;
    Ok(last)
}

/// A backup that cannot be taken at all (its tenant is gone): failed now.
pub async fn give_up(pool: &PgPool, id: i64, error: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tenant_backups SET status = 'failed', error = $2, lease_until = NULL,
                completed_at = now()
          WHERE id = $1 AND status IN ('pending', 'running')",
    )
    .bind(id)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn get(pool: &PgPool, id: i64) -> Result<BackupRow, StoreError> {
    sqlx::query_as::<_, BackupRow>(&format!(
        "SELECT {COLUMNS} FROM tenant_backups WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound)
}

/// The tenant's backups, newest first (deleted ones too: the record stays).
pub async fn of_tenant(
    pool: &PgPool,
    tenant: TenantId,
    limit: i64,
) -> Result<Vec<BackupRow>, StoreError> {
    Ok(sqlx::query_as::<_, BackupRow>(&format!(
        "SELECT {COLUMNS} FROM tenant_backups WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2"
    ))
    .bind(tenant.0)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Every tenant's backups, newest first, optionally of one status.
pub async fn list(
    pool: &PgPool,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<BackupRow>, StoreError> {
    Ok(sqlx::query_as::<_, BackupRow>(&format!(
        "SELECT {COLUMNS} FROM tenant_backups WHERE ($1::text IS NULL OR status = $1)
          ORDER BY id DESC LIMIT $2"
    ))
    .bind(status)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// The newest complete backup of each tenant that has one (or of `tenant`),
/// for `backups verify`.
pub async fn latest_complete(
    pool: &PgPool,
    tenant: Option<TenantId>,
) -> Result<Vec<BackupRow>, StoreError> {
    Ok(sqlx::query_as::<_, BackupRow>(&format!(
        "SELECT DISTINCT ON (tenant_id) {COLUMNS} FROM tenant_backups
          WHERE status = 'complete' AND ($1::uuid IS NULL OR tenant_id = $1)
          ORDER BY tenant_id, completed_at DESC, id DESC"
    ))
    .bind(tenant.map(|t| t.0))
    .fetch_all(pool)
    .await?)
}

/// When the tenant's newest backup by hand was asked for, and whether one is
/// still queued or running (the owner's rate limit).
pub async fn manual_state(
    pool: &PgPool,
    tenant: TenantId,
) -> Result<(Option<DateTime<Utc>>, bool), StoreError> {
    Ok(sqlx::query_as(
        "SELECT max(created_at), coalesce(bool_or(status IN ('pending', 'running')), false)
           FROM tenant_backups WHERE tenant_id = $1 AND kind = 'manual'",
    )
    .bind(tenant.0)
    .fetch_one(pool)
    .await?)
}

/// The tenant's complete scheduled backups, by slot (retention's input).
pub async fn scheduled_complete(
    pool: &PgPool,
    tenant: TenantId,
) -> Result<Vec<BackupRow>, StoreError> {
    Ok(sqlx::query_as::<_, BackupRow>(&format!(
        "SELECT {COLUMNS} FROM tenant_backups
          WHERE tenant_id = $1 AND kind = 'scheduled' AND status = 'complete' ORDER BY slot"
    ))
    .bind(tenant.0)
    .fetch_all(pool)
    .await?)
}

/// Backups whose time is up, with why: by-hand and pre-restore ones older than
/// `manual_keep_secs`, and every backup of a destroyed tenant past its grace
/// period (or whose owner asked for them to go).
pub async fn expired(
    pool: &PgPool,
    manual_keep_secs: u64,
    limit: i64,
) -> Result<Vec<(BackupRow, String)>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Expired {
        #[sqlx(flatten)]
        row: BackupRow,
        why: String,
    }
    let columns = COLUMNS
        .split(',')
        .map(|c| format!("b.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = sqlx::query_as::<_, Expired>(&format!(
        "SELECT {columns},
                CASE WHEN t.desired_state = 'destroyed'
                     THEN 'the destroyed instance''s grace period ended'
                     ELSE 'past BACKUP_MANUAL_RETENTION' END AS why
           FROM tenant_backups b JOIN tenants t ON t.id = b.tenant_id
          WHERE b.status IN ('complete', 'failed')
            AND ((t.desired_state = 'destroyed' AND t.backups_kept_until <= now())
              OR (t.desired_state <> 'destroyed' AND b.status = 'complete'
                  AND b.kind IN ('manual', 'pre_restore')
                  AND b.completed_at < now() - make_interval(secs => $1)))
          ORDER BY b.id LIMIT $2"
    ))
    .bind(manual_keep_secs as f64)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|e| (e.row, e.why)).collect())
}

/// The backup's object is gone from the storage; the row stays, saying why.
pub async fn mark_deleted(pool: &PgPool, id: i64, why: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tenant_backups SET status = 'deleted', deleted_at = now(), deleted_why = $2,
                lease_until = NULL
          WHERE id = $1",
    )
    .bind(id)
    .bind(why)
    .execute(pool)
    .await?;
    Ok(())
}

/// What `backups verify` found of backup `id` (None: it restored and matched).
pub async fn set_verified(pool: &PgPool, id: i64, error: Option<&str>) -> Result<(), StoreError> {
    sqlx::query("UPDATE tenant_backups SET verified_at = now(), verify_error = $2 WHERE id = $1")
        .bind(id)
        .bind(error)
        .execute(pool)
        .await?;
    Ok(())
}

/// One live tenant's backup health.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Health {
    pub tenant_id: Uuid,
    pub subdomain: String,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_success_id: Option<i64>,
    /// Failed backups since the last success.
    pub failures: i64,
    pub last_error: Option<String>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_verified_at: Option<DateTime<Utc>>,
    pub last_verify_error: Option<String>,
    pub first_started_at: Option<DateTime<Utc>>,
}

/// Backup health of every live tenant: the last success, failures since.
pub async fn health(pool: &PgPool) -> Result<Vec<Health>, StoreError> {
    Ok(sqlx::query_as::<_, Health>(
        "SELECT t.id AS tenant_id, t.subdomain, ok.completed_at AS last_success_at,
                ok.id AS last_success_id,
                (SELECT count(*) FROM tenant_backups f
                  WHERE f.tenant_id = t.id AND f.status = 'failed'
                    AND f.completed_at > coalesce(ok.completed_at, '-infinity')) AS failures,
                bad.error AS last_error, bad.completed_at AS last_failure_at,
                v.verified_at AS last_verified_at, v.verify_error AS last_verify_error,
                t.first_started_at
           FROM tenants t
           LEFT JOIN LATERAL (SELECT id, completed_at FROM tenant_backups
                               WHERE tenant_id = t.id AND status IN ('complete', 'deleted')
                                 AND completed_at IS NOT NULL AND sha256 IS NOT NULL
                               ORDER BY completed_at DESC LIMIT 1) ok ON true
           LEFT JOIN LATERAL (SELECT error, completed_at FROM tenant_backups
                               WHERE tenant_id = t.id AND status = 'failed'
                               ORDER BY completed_at DESC LIMIT 1) bad ON true
           LEFT JOIN LATERAL (SELECT verified_at, verify_error FROM tenant_backups
                               WHERE tenant_id = t.id AND verified_at IS NOT NULL
                               ORDER BY verified_at DESC LIMIT 1) v ON true
          WHERE t.status <> 'destroyed' AND t.desired_state <> 'destroyed'
            AND t.first_started_at IS NOT NULL
          ORDER BY ok.completed_at NULLS FIRST, t.subdomain",
    )
    .fetch_all(pool)
    .await?)
}

/// Keeps a destroyed tenant's backups until `until` (now: the owner asked for
/// them to go at once).
pub async fn keep_until<'e>(
    db: impl PgExecutor<'e>,
    tenant: TenantId,
    until: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE tenants SET backups_kept_until = $2 WHERE id = $1")
        .bind(tenant.0)
        .bind(until)
        .execute(db)
        .await?;
    Ok(())
}
