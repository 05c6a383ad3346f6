//! The append-only deployment log: a tenant's lifecycle history.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::StoreError;
use crate::domain::{Action, DeploymentStatus, TenantId};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentLog {
    pub id: i64,
    pub tenant_id: Uuid,
    pub action: String,
    pub status: String,
    pub error_message: Option<String>,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
}

pub async fn append<'e>(
    db: impl PgExecutor<'e>,
    tenant: TenantId,
    action: Action,
    status: DeploymentStatus,
    error_message: Option<&str>,
    metadata: Value,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO deployment_logs (tenant_id, action, status, error_message, metadata)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tenant.0)
    .bind(action.as_str())
    .bind(status.as_str())
    .bind(error_message)
    .bind(metadata)
    .execute(db)
    .await?;
    Ok(())
}

/// Newest first.
pub async fn list(
    pool: &PgPool,
    tenant: TenantId,
    limit: i64,
    offset: i64,
) -> Result<(Vec<DeploymentLog>, i64), StoreError> {
    let rows = sqlx::query_as::<_, DeploymentLog>(
        "SELECT id, tenant_id, action, status, error_message, metadata, created_at
           FROM deployment_logs WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
    )
    .bind(tenant.0)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let total: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deployment_logs WHERE tenant_id = $1")
            .bind(tenant.0)
            .fetch_one(pool)
            .await?;
    Ok((rows, total))
}
