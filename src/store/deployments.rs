//! The append-only deployment log: a tenant's lifecycle history.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::StoreError;
use crate::domain::{Action, DeploymentStatus, TenantId};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentLog {
    pub id: i64,
    pub tenant_id: Uuid,
    pub action: String,
    pub status: String,
    pub error_message: Option<String>,
    #[schema(value_type = Object)]
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

#[derive(Debug, Default)]
pub struct LogFilter {
    pub action: Option<String>,
    pub status: Option<String>,
}

/// Newest first.
pub async fn list(
    pool: &PgPool,
    tenant: TenantId,
    filter: &LogFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<DeploymentLog>, i64), StoreError> {
    const WHERE: &str = "tenant_id = $1 AND ($2::text IS NULL OR action = $2) AND ($3::text IS NULL OR status = $3)";
    let rows = sqlx::query_as::<_, DeploymentLog>(&format!(
        "SELECT id, tenant_id, action, status, error_message, metadata, created_at
           FROM deployment_logs WHERE {WHERE} ORDER BY id DESC LIMIT $4 OFFSET $5"
    ))
    .bind(tenant.0)
    .bind(&filter.action)
    .bind(&filter.status)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let total: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM deployment_logs WHERE {WHERE}"
    ))
    .bind(tenant.0)
    .bind(&filter.action)
    .bind(&filter.status)
    .fetch_one(pool)
    .await?;
    Ok((rows, total))
}

/// Median duration of the last 20 successful creates, for progress estimates.
pub async fn typical_create_ms(pool: &PgPool) -> Result<Option<i64>, StoreError> {
    let ms: Option<f64> = sqlx::query_scalar(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d) FROM (
            SELECT (metadata->>'durationMs')::float8 AS d FROM deployment_logs
             WHERE action = 'create' AND status = 'success' AND metadata ? 'durationMs'
             ORDER BY id DESC LIMIT 20) recent",
    )
    .fetch_one(pool)
    .await?;
    Ok(ms.map(|m| m as i64))
}

/// Rows after `after`, oldest first (to replay a stream after a reconnect).
pub async fn after(
    pool: &PgPool,
    tenant: TenantId,
    after: i64,
) -> Result<Vec<DeploymentLog>, StoreError> {
    Ok(sqlx::query_as::<_, DeploymentLog>(
        "SELECT id, tenant_id, action, status, error_message, metadata, created_at
           FROM deployment_logs WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT 1000",
    )
    .bind(tenant.0)
    .bind(after)
    .fetch_all(pool)
    .await?)
}
