//! Restores of a tenant to a backup (`tenant_restores`): each phase saved
//! before the next begins, so a crash resumes the restore where it was.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::notify::TENANT_CHANNEL;
use super::tenants::Tenant;
use super::{deployments, StoreError};
use crate::domain::{Action, DeploymentStatus, TenantId};

/// Where a restore stands; the open ones are `Pending` to `Restored`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Verified,
    Stopped,
    BackedUp,
    Restored,
    Done,
    Failed,
    Abandoned,
}

impl Phase {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Verified => "verified",
            Self::Stopped => "stopped",
            Self::BackedUp => "backed_up",
            Self::Restored => "restored",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Abandoned => "abandoned",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "pending" => Self::Pending,
            "verified" => Self::Verified,
            "stopped" => Self::Stopped,
            "backed_up" => Self::BackedUp,
            "restored" => Self::Restored,
            "done" => Self::Done,
            "failed" => Self::Failed,
            _ => Self::Abandoned,
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RestoreRow {
    pub id: i64,
    pub tenant_id: Uuid,
    pub backup_id: i64,
    pub into_new: bool,
    phase: String,
    pub safety_backup_id: Option<i64>,
    pub requested_by: Option<Uuid>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl RestoreRow {
    pub fn phase(&self) -> Phase {
        Phase::parse(&self.phase)
    }
}

const COLUMNS: &str = "id, tenant_id, backup_id, into_new, phase, safety_backup_id, requested_by,
    error, created_at, updated_at, finished_at";

const OPEN: &str = "('pending', 'verified', 'stopped', 'backed_up', 'restored')";

pub async fn open_for(pool: &PgPool, tenant: TenantId) -> Result<Option<RestoreRow>, StoreError> {
    Ok(sqlx::query_as::<_, RestoreRow>(&format!(
        "SELECT {COLUMNS} FROM tenant_restores WHERE tenant_id = $1 AND phase IN {OPEN}"
    ))
    .bind(tenant.0)
    .fetch_optional(pool)
    .await?)
}

pub async fn get(pool: &PgPool, id: i64) -> Result<RestoreRow, StoreError> {
    sqlx::query_as::<_, RestoreRow>(&format!(
        "SELECT {COLUMNS} FROM tenant_restores WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound)
}

/// The tenant's restores, newest first.
pub async fn of_tenant(pool: &PgPool, tenant: TenantId) -> Result<Vec<RestoreRow>, StoreError> {
    Ok(sqlx::query_as::<_, RestoreRow>(&format!(
        "SELECT {COLUMNS} FROM tenant_restores WHERE tenant_id = $1 ORDER BY id DESC LIMIT 50"
    ))
    .bind(tenant.0)
    .fetch_all(pool)
    .await?)
}

/// Records a restore of `tenant` (locked by the caller) to backup `backup_id`,
/// in the caller's transaction: the tenant's `restore` action begins with its
/// `initiated` log row, and the reconciler is woken. A restore into a new
/// tenant is recorded on the new tenant, whose `create` is already logged.
pub async fn begin(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &Tenant,
    backup_id: i64,
    into_new: bool,
    requested_by: Option<Uuid>,
) -> Result<RestoreRow, StoreError> {
    let row = sqlx::query_as::<_, RestoreRow>(&format!(
        "INSERT INTO tenant_restores (tenant_id, backup_id, into_new, requested_by)
         VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
    ))
    .bind(tenant.id)
    .bind(backup_id)
    .bind(into_new)
    .bind(requested_by)
    .fetch_one(&mut **tx)
    .await
    .map_err(StoreError::from_sqlx)?;
    if !into_new {
        sqlx::query(
            "UPDATE tenants SET current_action = 'restore', action_started_at = now(), attempts = 0,
                    last_error = NULL, next_attempt_at = now(), status = 'provisioning',
                    updated_at = now()
              WHERE id = $1",
        )
        .bind(tenant.id)
        .execute(&mut **tx)
        .await?;
    }
    deployments::append(
        &mut **tx,
        tenant.tenant_id(),
        if into_new {
            Action::Create
        } else {
            Action::Restore
        },
        DeploymentStatus::Initiated,
        None,
        json!({ "restoreId": row.id, "backupId": backup_id, "intoNew": into_new }),
    )
    .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(TENANT_CHANNEL)
        .bind(tenant.id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(row)
}

pub async fn advance(pool: &PgPool, id: i64, phase: Phase) -> Result<(), StoreError> {
    sqlx::query("UPDATE tenant_restores SET phase = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(phase.as_str())
        .execute(pool)
        .await?;
    Ok(())
}

/// The backup of the state the restore replaces.
pub async fn set_safety(pool: &PgPool, id: i64, backup: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tenant_restores SET safety_backup_id = $2, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(backup)
    .execute(pool)
    .await?;
    Ok(())
}

/// Ends the restore (`Done`, `Failed` or `Abandoned`), with why when it did
/// not happen.
pub async fn finish(
    pool: &PgPool,
    id: i64,
    phase: Phase,
    error: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tenant_restores SET phase = $2, error = $3, finished_at = now(), updated_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(phase.as_str())
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}
