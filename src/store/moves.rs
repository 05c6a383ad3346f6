//! Moves of a tenant's data between databases (`tenant_moves`): each phase is
//! saved before the next begins, so a crash resumes the move where it was. The
//! tenant row's location is the one authoritative copy; `switch` moves it.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::notify::TENANT_CHANNEL;
use super::tenants::Tenant;
use super::{deployments, StoreError};
use crate::domain::{Action, DbLocation, DeploymentStatus, Isolation, TenantId, TenantStatus};

/// Where a move stands. The open ones are `Pending`, `Stopped`, `Copied` and
/// `Switched`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Stopped,
    Copied,
    Switched,
    Done,
    RolledBack,
    Abandoned,
}

impl Phase {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Stopped => "stopped",
            Self::Copied => "copied",
            Self::Switched => "switched",
            Self::Done => "done",
            Self::RolledBack => "rolled_back",
            Self::Abandoned => "abandoned",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "stopped" => Self::Stopped,
            "copied" => Self::Copied,
            "switched" => Self::Switched,
            "done" => Self::Done,
            "rolled_back" => Self::RolledBack,
            "abandoned" => Self::Abandoned,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MoveRow {
    pub id: i64,
    pub tenant_id: Uuid,
    pub from_server_id: Uuid,
    pub from_db: String,
    pub from_isolation: Isolation,
    pub to_server_id: Uuid,
    pub to_db: String,
    pub to_isolation: Isolation,
    phase: String,
    pub reason: String,
    pub row_counts: Option<Value>,
    pub dump_bytes: Option<i64>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl MoveRow {
    pub fn phase(&self) -> Phase {
        // The column's CHECK admits only these values.
        Phase::parse(&self.phase).unwrap_or(Phase::Abandoned)
    }
    pub fn from(&self) -> DbLocation {
        DbLocation {
            server: self.from_server_id,
            database: self.from_db.clone(),
            isolation: self.from_isolation,
        }
    }
    pub fn to(&self) -> DbLocation {
        DbLocation {
            server: self.to_server_id,
            database: self.to_db.clone(),
            isolation: self.to_isolation,
        }
    }
}

const COLUMNS: &str = "id, tenant_id, from_server_id, from_db, from_isolation, to_server_id, to_db,
    to_isolation, phase, reason, row_counts, dump_bytes, error, created_at, updated_at, finished_at";

/// The tenant's move under way, if any.
pub async fn open_for(pool: &PgPool, tenant: TenantId) -> Result<Option<MoveRow>, StoreError> {
    Ok(sqlx::query_as::<_, MoveRow>(&format!(
        "SELECT {COLUMNS} FROM tenant_moves
          WHERE tenant_id = $1 AND phase IN ('pending', 'stopped', 'copied', 'switched')"
    ))
    .bind(tenant.0)
    .fetch_optional(pool)
    .await?)
}

/// The tenant's moves, newest first.
pub async fn of_tenant(pool: &PgPool, tenant: TenantId) -> Result<Vec<MoveRow>, StoreError> {
    Ok(sqlx::query_as::<_, MoveRow>(&format!(
        "SELECT {COLUMNS} FROM tenant_moves WHERE tenant_id = $1 ORDER BY id DESC LIMIT 50"
    ))
    .bind(tenant.0)
    .fetch_all(pool)
    .await?)
}

/// Why a move cannot begin.
#[derive(Debug, thiserror::Error)]
pub enum MoveRefused {
    #[error("the instance is {0}; only an active or stopped instance can be moved")]
    State(TenantStatus),
    #[error("another action ({0}) is in progress; wait for it to finish")]
    InProgress(Action),
    #[error("the instance has no database yet")]
    Unplaced,
    #[error("its data is already there")]
    AlreadyThere,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Records a move of the tenant (locked by the caller's `get_for_update`) to
/// `to`: the tenant's `move` action begins, with its `initiated` log row, and
/// the reconciler is woken. All in the caller's transaction.
pub async fn begin(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &Tenant,
    to: &DbLocation,
    reason: &str,
) -> Result<MoveRow, MoveRefused> {
    if let Some(action) = tenant.current_action {
        return Err(MoveRefused::InProgress(action));
    }
    if !matches!(tenant.status, TenantStatus::Active | TenantStatus::Stopped)
        || tenant.desired_state == crate::domain::DesiredState::Destroyed
    {
        return Err(MoveRefused::State(tenant.status));
    }
    let from = tenant.location().ok_or(MoveRefused::Unplaced)?;
    if &from == to {
        return Err(MoveRefused::AlreadyThere);
    }
    let row = sqlx::query_as::<_, MoveRow>(&format!(
        "INSERT INTO tenant_moves (tenant_id, from_server_id, from_db, from_isolation,
                                   to_server_id, to_db, to_isolation, reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
    ))
    .bind(tenant.id)
    .bind(from.server)
    .bind(&from.database)
    .bind(from.isolation)
    .bind(to.server)
    .bind(&to.database)
    .bind(to.isolation)
    .bind(reason)
    .fetch_one(&mut **tx)
    .await
    .map_err(StoreError::from_sqlx)?;
    sqlx::query(
        "UPDATE tenants SET current_action = 'move', action_started_at = now(), attempts = 0,
                last_error = NULL, next_attempt_at = now(), status = 'provisioning', updated_at = now()
          WHERE id = $1",
    )
    .bind(tenant.id)
    .execute(&mut **tx)
    .await
    .map_err(StoreError::from)?;
    deployments::append(
        &mut **tx,
        tenant.tenant_id(),
        Action::Move,
        DeploymentStatus::Initiated,
        None,
        json!({
            "moveId": row.id, "reason": reason,
            "from": { "server": from.server, "database": from.database },
            "to": { "server": to.server, "database": to.database },
        }),
    )
    .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(TENANT_CHANNEL)
        .bind(tenant.id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from)?;
    Ok(row)
}

/// Saves the move's next phase (and what the copy measured).
pub async fn advance(
    pool: &PgPool,
    id: i64,
    phase: Phase,
    row_counts: Option<&Value>,
    dump_bytes: Option<i64>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tenant_moves SET phase = $2, row_counts = COALESCE($3, row_counts),
                dump_bytes = COALESCE($4, dump_bytes), updated_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(phase.as_str())
    .bind(row_counts)
    .bind(dump_bytes)
    .execute(pool)
    .await?;
    Ok(())
}

/// The commit point: in one transaction the tenant's location becomes the
/// target and the move `switched`. From here the target copy is authoritative.
pub async fn switch(pool: &PgPool, m: &MoveRow) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE tenants SET db_server_id = $2, db_name = $3, db_isolation = $4, updated_at = now()
          WHERE id = $1",
    )
    .bind(m.tenant_id)
    .bind(m.to_server_id)
    .bind(&m.to_db)
    .bind(m.to_isolation)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE tenant_moves SET phase = 'switched', updated_at = now() WHERE id = $1")
        .bind(m.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Ends the move (`Done`, `RolledBack` or `Abandoned`), with why when it did
/// not happen.
pub async fn finish(
    pool: &PgPool,
    id: i64,
    phase: Phase,
    error: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tenant_moves SET phase = $2, error = $3, finished_at = now(), updated_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(phase.as_str())
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// Live tenants on a draining server that are settled (nothing in flight) and
/// not moving: the drain's next candidates.
pub async fn drain_candidates(pool: &PgPool) -> Result<Vec<TenantId>, StoreError> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT t.id FROM tenants t JOIN db_servers s ON s.id = t.db_server_id
          WHERE s.draining AND t.status IN ('active', 'stopped') AND t.current_action IS NULL
            AND t.desired_state <> 'destroyed'
            AND NOT EXISTS (SELECT 1 FROM tenant_moves m WHERE m.tenant_id = t.id
                              AND m.phase IN ('pending', 'stopped', 'copied', 'switched'))
          ORDER BY t.created_at",
    )
    .fetch_all(pool)
    .await?;
    Ok(ids.into_iter().map(TenantId).collect())
}
