//! The audit trail: who did what, on what, from where. Append-only.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::StoreError;

/// Where a request came from.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// One line of the trail: `user_id` did `action` (e.g. `tenant.stop`) to the target.
pub struct Entry<'a> {
    pub user_id: Option<Uuid>,
    pub action: &'a str,
    pub target_type: Option<&'a str>,
    pub target_id: Option<String>,
    pub metadata: Value,
}

impl<'a> Entry<'a> {
    pub fn new(user_id: Option<Uuid>, action: &'a str) -> Self {
        Self {
            user_id,
            action,
            target_type: None,
            target_id: None,
            metadata: Value::Object(Default::default()),
        }
    }

    /// What the action was done to, e.g. `("tenant", id)`.
    pub fn on(self, target_type: &'a str, target_id: impl ToString) -> Self {
        Self {
            target_type: Some(target_type),
            target_id: Some(target_id.to_string()),
            ..self
        }
    }

    pub fn with(self, metadata: Value) -> Self {
        Self { metadata, ..self }
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditRow {
    pub id: i64,
    pub user_id: Option<Uuid>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
}

pub async fn record<'e>(
    db: impl PgExecutor<'e>,
    origin: &Origin,
    entry: Entry<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (user_id, action, target_type, target_id, ip, user_agent, metadata)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(entry.user_id)
    .bind(entry.action)
    .bind(entry.target_type)
    .bind(entry.target_id)
    .bind(origin.ip.as_deref())
    .bind(
        origin
            .user_agent
            .as_deref()
            .map(|u| u.chars().take(300).collect::<String>()),
    )
    .bind(entry.metadata)
    .execute(db)
    .await?;
    Ok(())
}

/// Which entries a listing shows; every part is optional.
#[derive(Debug, Default)]
pub struct AuditFilter<'a> {
    pub user_id: Option<Uuid>,
    pub action: Option<&'a str>,
    /// Entries about one tenant, named by its id or its subdomain (every
    /// tenant that ever had it, destroyed ones too).
    pub tenant: Option<&'a str>,
    /// At or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Before this time.
    pub before: Option<DateTime<Utc>>,
}

/// Newest first, optionally for one user and/or one action.
pub async fn list(
    pool: &PgPool,
    user_id: Option<Uuid>,
    action: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<AuditRow>, i64), StoreError> {
    let filter = AuditFilter {
        user_id,
        action,
        ..Default::default()
    };
    list_filtered(pool, &filter, limit, offset).await
}

/// Newest first, the entries the filter keeps, and how many there are.
pub async fn list_filtered(
    pool: &PgPool,
    filter: &AuditFilter<'_>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<AuditRow>, i64), StoreError> {
    const FILTER: &str = "($1::uuid IS NULL OR user_id = $1) AND ($2::text IS NULL OR action = $2)
        AND ($3::text IS NULL OR (target_type = 'tenant' AND target_id IN
            (SELECT id::text FROM tenants WHERE id::text = lower($3) OR subdomain = lower($3))))
        AND ($4::timestamptz IS NULL OR created_at >= $4)
        AND ($5::timestamptz IS NULL OR created_at < $5)";
    let rows = sqlx::query_as::<_, AuditRow>(&format!(
        "SELECT id, user_id, action, target_type, target_id, ip, user_agent, metadata, created_at
           FROM audit_log WHERE {FILTER} ORDER BY id DESC LIMIT $6 OFFSET $7"
    ))
    .bind(filter.user_id)
    .bind(filter.action)
    .bind(filter.tenant)
    .bind(filter.from)
    .bind(filter.before)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar(&format!("SELECT count(*) FROM audit_log WHERE {FILTER}"))
        .bind(filter.user_id)
        .bind(filter.action)
        .bind(filter.tenant)
        .bind(filter.from)
        .bind(filter.before)
        .fetch_one(pool)
        .await?;
    Ok((rows, total))
}
