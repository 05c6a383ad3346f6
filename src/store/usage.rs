//! Tenant resource usage: the samples (with retention and downsampled reads) in
//! `tenant_metrics`, and the tenant event history that usage alerts write to.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::StoreError;
use crate::domain::TenantId;

/// One stored sample, or one bucket of a downsampled series.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = MetricPoint)]
pub struct UsagePoint {
    pub at: DateTime<Utc>,
    pub cpu_percent: Option<f64>,
    pub memory_bytes: i64,
    pub memory_limit_bytes: i64,
    pub network_rx_bytes: i64,
    pub network_tx_bytes: i64,
    pub block_read_bytes: i64,
    pub block_write_bytes: i64,
    pub pids: i64,
}

pub struct NewPoint {
    pub tenant: TenantId,
    pub point: UsagePoint,
}

/// Stores one sampler pass in a single statement.
pub async fn insert(pool: &PgPool, points: &[NewPoint]) -> Result<(), StoreError> {
    if points.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&UsagePoint) -> i64| points.iter().map(|p| f(&p.point)).collect::<Vec<i64>>();
    sqlx::query(
        "INSERT INTO tenant_metrics (tenant_id, sampled_at, cpu_percent, memory_bytes, memory_limit_bytes,
                network_rx_bytes, network_tx_bytes, block_read_bytes, block_write_bytes, pids)
         SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::float8[], $4::int8[], $5::int8[], $6::int8[],
                              $7::int8[], $8::int8[], $9::int8[], $10::int8[])
         ON CONFLICT DO NOTHING",
    )
    .bind(points.iter().map(|p| p.tenant.0).collect::<Vec<Uuid>>())
    .bind(points.iter().map(|p| p.point.at).collect::<Vec<DateTime<Utc>>>())
    .bind(points.iter().map(|p| p.point.cpu_percent).collect::<Vec<Option<f64>>>())
    .bind(col(|p| p.memory_bytes))
    .bind(col(|p| p.memory_limit_bytes))
    .bind(col(|p| p.network_rx_bytes))
    .bind(col(|p| p.network_tx_bytes))
    .bind(col(|p| p.block_read_bytes))
    .bind(col(|p| p.block_write_bytes))
    .bind(col(|p| p.pids))
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes samples older than `before`; returns how many.
pub async fn prune(pool: &PgPool, before: DateTime<Utc>) -> Result<u64, StoreError> {
    Ok(
        sqlx::query("DELETE FROM tenant_metrics WHERE sampled_at < $1")
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

/// The series between `from` and `to` in buckets of `step` seconds: CPU
/// averaged, memory and pids at their peak, counters at their last value.
pub async fn series(
    pool: &PgPool,
    tenant: TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step_secs: i64,
) -> Result<Vec<UsagePoint>, StoreError> {
    Ok(sqlx::query_as::<_, UsagePoint>(
        "SELECT date_bin(make_interval(secs => $4), sampled_at, $2) AS at,
                avg(cpu_percent) AS cpu_percent,
                max(memory_bytes) AS memory_bytes,
                max(memory_limit_bytes) AS memory_limit_bytes,
                max(network_rx_bytes) AS network_rx_bytes,
                max(network_tx_bytes) AS network_tx_bytes,
                max(block_read_bytes) AS block_read_bytes,
                max(block_write_bytes) AS block_write_bytes,
                max(pids) AS pids
           FROM tenant_metrics
          WHERE tenant_id = $1 AND sampled_at >= $2 AND sampled_at <= $3
          GROUP BY 1 ORDER BY 1",
    )
    .bind(tenant.0)
    .bind(from)
    .bind(to)
    .bind(step_secs as f64)
    .fetch_all(pool)
    .await?)
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantEvent {
    pub id: i64,
    pub tenant_id: Uuid,
    pub kind: String,
    pub message: String,
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
}

/// Raises or clears a tenant's resource alert, with an event in its history.
pub async fn set_alert(
    pool: &PgPool,
    tenant: TenantId,
    alert: Option<Value>,
    kind: &str,
    message: &str,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE tenants SET resource_alert = $2 WHERE id = $1")
        .bind(tenant.0)
        .bind(&alert)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO tenant_events (tenant_id, kind, message, metadata) VALUES ($1, $2, $3, $4)",
    )
    .bind(tenant.0)
    .bind(kind)
    .bind(message)
    .bind(alert.unwrap_or(Value::Null))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn events_after(
    pool: &PgPool,
    tenant: TenantId,
    after: i64,
) -> Result<Vec<TenantEvent>, StoreError> {
    Ok(sqlx::query_as::<_, TenantEvent>(
        "SELECT id, tenant_id, kind, message, metadata, created_at FROM tenant_events
          WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT 1000",
    )
    .bind(tenant.0)
    .bind(after)
    .fetch_all(pool)
    .await?)
}
