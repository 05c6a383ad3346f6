//! The tenants table: what owners asked for (desired state, generation) and what
//! the reconciler observed (status, observed generation, errors, retries).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::deployments;
use super::notify::TENANT_CHANNEL;
use super::StoreError;
use crate::domain::lifecycle::Intent;
use crate::domain::{Action, DeploymentStatus, DesiredState, Subdomain, TenantId, TenantStatus};
use crate::provision::spec::FrescoSettings;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Tenant {
    pub id: Uuid,
    pub user_id: Uuid,
    pub tenant_identifier: String,
    pub subdomain: String,
    pub status: TenantStatus,
    pub desired_state: DesiredState,
    pub generation: i64,
    pub observed_generation: i64,
    /// The lifecycle action the reconciler is working on, if any.
    pub current_action: Option<Action>,
    pub action_started_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub image: Option<String>,
    pub container_id: Option<String>,
    pub first_started_at: Option<DateTime<Utc>>,
    /// Fresco's own `initializedAt`, once read from its database.
    pub fresco_initialized_at: Option<DateTime<Utc>>,
    pub last_deployed_at: Option<DateTime<Utc>>,
    pub metadata: Value,
    pub resource_limits: Value,
    pub progress: Option<String>,
    pub resource_alert: Option<Value>,
    /// The owner's Fresco settings (`FrescoSettings`); None keeps the default.
    pub setting_disable_analytics: Option<bool>,
    pub setting_sandbox_mode: Option<bool>,
    /// Where its data lives (None until the reconciler places it).
    pub db_server_id: Option<Uuid>,
    pub db_name: Option<String>,
    pub db_isolation: Option<crate::domain::Isolation>,
    /// A destroyed tenant's backups are kept until then.
    pub backups_kept_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, user_id, tenant_identifier, subdomain, status, desired_state, generation,
    observed_generation, current_action, action_started_at, last_error, attempts, next_attempt_at,
    image, container_id, first_started_at, fresco_initialized_at, last_deployed_at, metadata, resource_limits, progress, resource_alert,
    setting_disable_analytics, setting_sandbox_mode, db_server_id, db_name, db_isolation,
    backups_kept_until, created_at, updated_at";

impl Tenant {
    pub fn tenant_id(&self) -> TenantId {
        TenantId(self.id)
    }
    /// What the lifecycle rules (`domain::lifecycle`) look at.
    pub fn lifecycle(&self) -> crate::domain::lifecycle::Current {
        crate::domain::lifecycle::Current {
            desired: self.desired_state,
            status: self.status,
            in_flight: self.current_action,
            ever_started: self.first_started_at.is_some(),
        }
    }
    /// The Fresco options the owner chose for this instance.
    pub fn settings(&self) -> FrescoSettings {
        FrescoSettings {
            disable_analytics: self.setting_disable_analytics,
            sandbox_mode: self.setting_sandbox_mode,
        }
    }
    /// Where its data lives, once placed.
    pub fn location(&self) -> Option<crate::domain::DbLocation> {
        Some(crate::domain::DbLocation {
            server: self.db_server_id?,
            database: self.db_name.clone()?,
            isolation: self.db_isolation?,
        })
    }
    /// Until when a destroyed (or destroying) tenant's backups are kept; None
    /// while it is live.
    pub fn backups_kept_until(&self) -> Option<DateTime<Utc>> {
        (self.desired_state == DesiredState::Destroyed)
            .then_some(self.backups_kept_until)
            .flatten()
    }
    /// The owner's intent has been fully applied and nothing is in flight.
    pub fn converged(&self) -> bool {
        self.observed_generation >= self.generation && self.current_action.is_none()
    }
}

pub struct NewTenant<'a> {
    pub user_id: Uuid,
    pub subdomain: &'a Subdomain,
    pub image: Option<&'a str>,
    pub resource_limits: Value,
}

async fn notify(tx: &mut Transaction<'_, Postgres>, id: TenantId) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(TENANT_CHANNEL)
        .bind(id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Records a new tenant wanting to run, its `create/initiated` log row, and wakes
/// the reconciler, all in the caller's transaction.
pub async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    new: NewTenant<'_>,
) -> Result<Tenant, StoreError> {
    let id = TenantId::new();
    let tenant = sqlx::query_as::<_, Tenant>(&format!(
        "INSERT INTO tenants (id, user_id, tenant_identifier, subdomain, image, resource_limits,
                              current_action, action_started_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'create', now())
         RETURNING {COLUMNS}"
    ))
    .bind(id.0)
    .bind(new.user_id)
    .bind(id.simple())
    .bind(new.subdomain.as_str())
    .bind(new.image)
    .bind(new.resource_limits)
    .fetch_one(&mut **tx)
    .await
    .map_err(StoreError::from_sqlx)?;
    deployments::append(
        &mut **tx,
        id,
        Action::Create,
        DeploymentStatus::Initiated,
        None,
        json!({ "generation": tenant.generation, "subdomain": tenant.subdomain }),
    )
    .await?;
    notify(tx, id).await?;
    Ok(tenant)
}

pub async fn get(pool: &PgPool, id: TenantId) -> Result<Tenant, StoreError> {
    sqlx::query_as::<_, Tenant>(&format!("SELECT {COLUMNS} FROM tenants WHERE id = $1"))
        .bind(id.0)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound)
}

pub async fn get_for_update(
    tx: &mut Transaction<'_, Postgres>,
    id: TenantId,
) -> Result<Tenant, StoreError> {
    sqlx::query_as::<_, Tenant>(&format!(
        "SELECT {COLUMNS} FROM tenants WHERE id = $1 FOR UPDATE"
    ))
    .bind(id.0)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound)
}

/// Which tenants a list shows.
#[derive(Debug, Default)]
pub struct ListFilter<'a> {
    /// Only this owner's (members); None for all (admins).
    pub owner: Option<Uuid>,
    pub status: Option<&'a str>,
    /// Substring of the subdomain.
    pub search: Option<&'a str>,
    /// Keyset pagination: only tenants after this one in the list's order
    /// (newest first): its `created_at` and id.
    pub after: Option<(DateTime<Utc>, Uuid)>,
}

/// A page of the tenants `filter` selects, newest first (ties by id), and,
/// unless the page is after a cursor (the caller has it from the first), how
/// many there are in all.
pub async fn list(
    pool: &PgPool,
    filter: &ListFilter<'_>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Tenant>, Option<i64>), StoreError> {
    const WHERE: &str = "($1::uuid IS NULL OR user_id = $1) AND ($2::text IS NULL OR status = $2)
        AND ($3::text IS NULL OR strpos(subdomain, lower($3)) > 0)";
    // Read off the newest-first index: after a cursor, as a range of it
    // (a row comparison the index serves), not by counting past rows.
    let keyset = if filter.after.is_some() {
        "AND (created_at, id) < ($6, $7)"
    } else {
        "AND $6::timestamptz IS NULL AND $7::uuid IS NULL"
    };
    let rows = sqlx::query_as::<_, Tenant>(&format!(
        "SELECT {COLUMNS} FROM tenants WHERE {WHERE} {keyset}
          ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5"
    ))
    .bind(filter.owner)
    .bind(filter.status)
    .bind(filter.search)
    .bind(limit)
    .bind(offset)
    .bind(filter.after.map(|a| a.0))
    .bind(filter.after.map(|a| a.1))
    .fetch_all(pool)
    .await?;
    if filter.after.is_some() {
        return Ok((rows, None));
    }
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM tenants WHERE {WHERE}"))
        .bind(filter.owner)
        .bind(filter.status)
        .bind(filter.search)
        .fetch_one(pool)
        .await?;
    Ok((rows, Some(total)))
}

/// Tenants the user owns that are not destroyed (nor being destroyed). Takes a
/// per-owner transaction lock first, so two creates at once cannot both count
/// themselves under the quota.
pub async fn lock_and_count_live_for(
    tx: &mut Transaction<'_, Postgres>,
    user_id: Uuid,
) -> Result<i64, StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7))")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM tenants WHERE user_id = $1 AND status <> 'destroyed' AND desired_state <> 'destroyed'",
    )
    .bind(user_id)
    .fetch_one(&mut **tx)
    .await?)
}

/// Records Fresco's `initializedAt` (its setup window starts there).
pub async fn set_fresco_initialized_at(
    pool: &PgPool,
    id: TenantId,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE tenants SET fresco_initialized_at = $2 WHERE id = $1")
        .bind(id.0)
        .bind(at)
        .execute(pool)
        .await?;
    Ok(())
}

/// Where the reconciler is in a deployment (for the progress step).
pub async fn set_progress(pool: &PgPool, id: TenantId, step: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE tenants SET progress = $2 WHERE id = $1 AND progress IS DISTINCT FROM $2")
        .bind(id.0)
        .bind(step)
        .execute(pool)
        .await?;
    Ok(())
}

/// Records an owner's intent: new desired state, a generation bump, the action in
/// flight and its `initiated` log row, then wakes the reconciler. A destroy that
/// supersedes an unfinished action closes that action's log entry as failed.
pub async fn record_intent(
    tx: &mut Transaction<'_, Postgres>,
    current: &Tenant,
    intent: Intent,
) -> Result<Tenant, StoreError> {
    let Intent {
        desired,
        status,
        logged_as: action,
    } = intent;
    let id = current.tenant_id();
    if let Some(previous) = current.current_action {
        deployments::append(
            &mut **tx,
            id,
            previous,
            DeploymentStatus::Failed,
            Some(&format!("superseded by {action}")),
            json!({ "generation": current.generation }),
        )
        .await?;
    }
    let tenant = sqlx::query_as::<_, Tenant>(&format!(
        "UPDATE tenants SET desired_state = $2, generation = generation + 1, current_action = $3,
                action_started_at = now(), attempts = 0, next_attempt_at = now(), last_error = NULL,
                status = COALESCE($4, status), updated_at = now()
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id.0)
    .bind(desired.as_str())
    .bind(action.as_str())
    .bind(status.map(|s| s.as_str()))
    .fetch_one(&mut **tx)
    .await?;
    deployments::append(
        &mut **tx,
        id,
        action,
        DeploymentStatus::Initiated,
        None,
        json!({ "generation": tenant.generation }),
    )
    .await?;
    notify(tx, id).await?;
    Ok(tenant)
}

/// Tenants with unfinished work whose retry time has come.
pub async fn due(pool: &PgPool) -> Result<Vec<TenantId>, StoreError> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM tenants
          WHERE (observed_generation < generation OR current_action IS NOT NULL)
            AND next_attempt_at <= now()
          ORDER BY next_attempt_at LIMIT 500",
    )
    .fetch_all(pool)
    .await?;
    Ok(ids.into_iter().map(TenantId).collect())
}

/// Every tenant that still has, or should have, something in Docker or Postgres.
pub async fn live(pool: &PgPool) -> Result<Vec<TenantId>, StoreError> {
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM tenants WHERE status <> 'destroyed'")
        .fetch_all(pool)
        .await?;
    Ok(ids.into_iter().map(TenantId).collect())
}

pub async fn set_status(
    pool: &PgPool,
    id: TenantId,
    status: TenantStatus,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tenants SET status = $2, updated_at = now() WHERE id = $1 AND status <> $2",
    )
    .bind(id.0)
    .bind(status.as_str())
    .execute(pool)
    .await?;
    Ok(())
}

/// Asks for another look soon, without counting a failed attempt (e.g. while a
/// container is still starting).
pub async fn recheck_at(pool: &PgPool, id: TenantId, at: DateTime<Utc>) -> Result<(), StoreError> {
    sqlx::query("UPDATE tenants SET next_attempt_at = $2 WHERE id = $1")
        .bind(id.0)
        .bind(at)
        .execute(pool)
        .await?;
    Ok(())
}

/// Starts an action the reconciler decided on itself (recover, update) for a
/// converged tenant that drifted.
pub async fn begin_own_action(
    pool: &PgPool,
    id: TenantId,
    action: Action,
    reason: &str,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE tenants SET current_action = $2, action_started_at = now(), attempts = 0,
                status = 'provisioning', updated_at = now()
          WHERE id = $1",
    )
    .bind(id.0)
    .bind(action.as_str())
    .execute(&mut *tx)
    .await?;
    deployments::append(
        &mut *tx,
        id,
        action,
        DeploymentStatus::Initiated,
        None,
        json!({ "reason": reason }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub struct Completion<'a> {
    pub generation: i64,
    pub status: TenantStatus,
    pub container_id: Option<&'a str>,
    pub deployed: bool,
    pub metadata: Value,
}

/// The tenant reached what generation `generation` asked for. Writes the
/// action's `success` row with its duration.
pub async fn complete(
    pool: &PgPool,
    tenant: &Tenant,
    done: Completion<'_>,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let current = get_for_update(&mut tx, tenant.tenant_id()).await?;
    if current.generation != done.generation {
        // A newer intent arrived; it will be converged on its own.
        return Ok(());
    }
    sqlx::query(
        "UPDATE tenants SET status = $2, observed_generation = generation, current_action = NULL,
                action_started_at = NULL, attempts = 0, last_error = NULL,
                container_id = CASE WHEN $2 = 'destroyed' THEN NULL ELSE COALESCE($3, container_id) END,
                last_deployed_at = CASE WHEN $4 THEN now() ELSE last_deployed_at END,
                first_started_at = CASE WHEN $4 THEN COALESCE(first_started_at, now())
                                        ELSE first_started_at END,
                updated_at = now()
          WHERE id = $1",
    )
    .bind(current.id)
    .bind(done.status.as_str())
    .bind(done.container_id)
    .bind(done.deployed)
    .execute(&mut *tx)
    .await?;
    if let Some(action) = current.current_action {
        let mut metadata = done.metadata;
        if let Value::Object(map) = &mut metadata {
            if let Some(started) = current.action_started_at {
                map.insert(
                    "durationMs".into(),
                    json!((Utc::now() - started).num_milliseconds()),
                );
            }
            map.insert("generation".into(), json!(done.generation));
        }
        deployments::append(
            &mut *tx,
            current.tenant_id(),
            action,
            DeploymentStatus::Success,
            None,
            metadata,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A step failed. Below the attempt limit the tenant is retried at `retry_at`;
/// at the limit it goes to `error` and the action's `failed` row is written.
pub async fn fail(
    pool: &PgPool,
    tenant: &Tenant,
    message: &str,
    max_attempts: i32,
    retry_at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let current = get_for_update(&mut tx, tenant.tenant_id()).await?;
    if current.generation != tenant.generation {
        // The owner changed their mind meanwhile; the new intent gets a fresh start.
        return Ok(false);
    }
    let attempts = current.attempts + 1;
    let final_failure = attempts >= max_attempts;
    if final_failure {
        sqlx::query(
            "UPDATE tenants SET status = 'error', last_error = $2, attempts = $3,
                    observed_generation = generation, current_action = NULL, action_started_at = NULL,
                    updated_at = now()
              WHERE id = $1",
        )
        .bind(current.id)
        .bind(message)
        .bind(attempts)
        .execute(&mut *tx)
        .await?;
        if let Some(action) = current.current_action {
            let duration = current
                .action_started_at
                .map(|s| (Utc::now() - s).num_milliseconds());
            deployments::append(
                &mut *tx,
                current.tenant_id(),
                action,
                DeploymentStatus::Failed,
                Some(message),
                json!({ "attempts": attempts, "durationMs": duration, "generation": current.generation }),
            )
            .await?;
        }
    } else {
        sqlx::query(
            "UPDATE tenants SET last_error = $2, attempts = $3, next_attempt_at = $4, updated_at = now()
              WHERE id = $1",
        )
        .bind(current.id)
        .bind(message)
        .bind(attempts)
        .bind(retry_at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(final_failure)
}

/// A move or restore that was rolled back: its action ends with a `failed`
/// row saying why; a tenant that should run is started again as it was (a
/// `start` action of its own), a stopped one is settled.
pub async fn rolled_back(
    pool: &PgPool,
    tenant: &Tenant,
    action: Action,
    message: &str,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let current = get_for_update(&mut tx, tenant.tenant_id()).await?;
    if current.current_action != Some(action) {
        return Ok(());
    }
    let duration = current
        .action_started_at
        .map(|s| (Utc::now() - s).num_milliseconds());
    deployments::append(
        &mut *tx,
        current.tenant_id(),
        action,
        DeploymentStatus::Failed,
        Some(message),
        json!({ "durationMs": duration, "rolledBack": true }),
    )
    .await?;
    if current.desired_state == DesiredState::Running {
        sqlx::query(
            "UPDATE tenants SET current_action = 'start', action_started_at = now(), attempts = 0,
                    next_attempt_at = now(), last_error = $2, status = 'provisioning', updated_at = now()
              WHERE id = $1",
        )
        .bind(current.id)
        .bind(message)
        .execute(&mut *tx)
        .await?;
        deployments::append(
            &mut *tx,
            current.tenant_id(),
            Action::Start,
            DeploymentStatus::Initiated,
            None,
            json!({ "reason": format!("the {action} was rolled back; starting it as it was") }),
        )
        .await?;
    } else {
        sqlx::query(
            "UPDATE tenants SET status = 'stopped', last_error = $2, attempts = 0, current_action = NULL,
                    action_started_at = NULL, observed_generation = generation, updated_at = now()
              WHERE id = $1",
        )
        .bind(current.id)
        .bind(message)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Active tenants, for the metrics sampler.
pub async fn active(pool: &PgPool) -> Result<Vec<Tenant>, StoreError> {
    Ok(sqlx::query_as::<_, Tenant>(&format!(
        "SELECT {COLUMNS} FROM tenants WHERE status = 'active'"
    ))
    .fetch_all(pool)
    .await?)
}

/// Tenants per status, for the platform metrics.
pub async fn count_by_status(pool: &PgPool) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT status, count(*) FROM tenants GROUP BY status")
            .fetch_all(pool)
            .await?,
    )
}

/// The live (not destroyed) tenant served at `subdomain`, if any.
pub async fn live_by_subdomain(
    pool: &PgPool,
    subdomain: &Subdomain,
) -> Result<Option<Tenant>, StoreError> {
    Ok(sqlx::query_as::<_, Tenant>(&format!(
        "SELECT {COLUMNS} FROM tenants WHERE subdomain = $1 AND status <> 'destroyed'"
    ))
    .bind(subdomain.as_str())
    .fetch_optional(pool)
    .await?)
}

/// Which of `subdomains` live tenants already use.
pub async fn taken_subdomains(
    pool: &PgPool,
    subdomains: &[String],
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT subdomain FROM tenants WHERE status <> 'destroyed' AND subdomain = ANY($1)",
    )
    .bind(subdomains)
    .fetch_all(pool)
    .await?)
}

/// Keeps what the signup wizard collected with the tenant it created.
pub async fn set_signup_metadata(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    configuration: &Value,
    intended_use: Option<&str>,
    terms_version: Option<&str>,
    terms_accepted_at: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tenants SET metadata = jsonb_build_object('configuration', $2::jsonb, 'intendedUse', $3::text,
                'termsVersion', $4::text, 'termsAcceptedAt', $5::timestamptz) WHERE id = $1",
    )
    .bind(id)
    .bind(configuration)
    .bind(intended_use)
    .bind(terms_version)
    .bind(terms_accepted_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Why a tenant's settings cannot be changed now.
#[derive(Debug, thiserror::Error)]
pub enum SettingsRefused {
    #[error("the instance is {0}; its settings can no longer be changed")]
    Gone(TenantStatus),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Saves the owner's Fresco settings under the row lock and wakes the
/// reconciler: a running instance whose spec hash changed is recreated with
/// the new env (an `update` in its deployment log); a stopped one gets it at its
/// next start. A tenant being destroyed is refused.
pub async fn save_settings(
    pool: &PgPool,
    id: TenantId,
    settings: FrescoSettings,
) -> Result<Tenant, SettingsRefused> {
    let mut tx = pool.begin().await.map_err(StoreError::from)?;
    let current = get_for_update(&mut tx, id).await?;
    if current.desired_state == DesiredState::Destroyed
        || matches!(
            current.status,
            TenantStatus::Destroying | TenantStatus::Destroyed
        )
    {
        return Err(SettingsRefused::Gone(current.status));
    }
    let tenant = sqlx::query_as::<_, Tenant>(&format!(
        "UPDATE tenants SET setting_disable_analytics = $2, setting_sandbox_mode = $3, updated_at = now()
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id.0)
    .bind(settings.disable_analytics)
    .bind(settings.sandbox_mode)
    .fetch_one(&mut *tx)
    .await
    .map_err(StoreError::from)?;
    notify(&mut tx, id).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(tenant)
}
