//! The signup wizard's sessions: what a prospective user has entered so far.
//! The password is kept only as its argon2id hash.

use chrono::{DateTime, Duration, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::StoreError;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SignupSession {
    pub id: Uuid,
    pub email: String,
    pub login_required: bool,
    pub name: Option<String>,
    pub password_hash: Option<String>,
    pub intended_use: Option<String>,
    pub intended_use_other: Option<String>,
    pub subdomain: Option<String>,
    pub terms_version: Option<String>,
    pub terms_accepted_at: Option<DateTime<Utc>>,
    pub steps_done: i32,
    pub user_id: Option<Uuid>,
    pub tenant_id: Option<Uuid>,
    pub deployed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, email, login_required, name, password_hash, intended_use, intended_use_other,
    subdomain, terms_version, terms_accepted_at, steps_done, user_id, tenant_id, deployed_at, created_at,
    expires_at";

pub async fn create(
    pool: &PgPool,
    email: &str,
    login_required: bool,
    ttl: Duration,
) -> Result<SignupSession, StoreError> {
    Ok(sqlx::query_as::<_, SignupSession>(&format!(
        "INSERT INTO signup_sessions (id, email, login_required, expires_at) VALUES ($1, $2, $3, $4)
         RETURNING {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(email)
    .bind(login_required)
    .bind(Utc::now() + ttl)
    .fetch_one(pool)
    .await?)
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<SignupSession, StoreError> {
    sqlx::query_as::<_, SignupSession>(&format!(
        "SELECT {COLUMNS} FROM signup_sessions WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound)
}

pub async fn get_for_update(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
) -> Result<SignupSession, StoreError> {
    sqlx::query_as::<_, SignupSession>(&format!(
        "SELECT {COLUMNS} FROM signup_sessions WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound)
}

/// The values one wizard step records.
pub enum StepData<'a> {
    Account {
        name: Option<&'a str>,
        password_hash: &'a str,
    },
    IntendedUse {
        intended_use: &'a str,
        other: Option<&'a str>,
    },
    Subdomain(&'a str),
    Terms {
        version: &'a str,
    },
}

pub async fn save_step(
    pool: &PgPool,
    id: Uuid,
    data: StepData<'_>,
) -> Result<SignupSession, StoreError> {
    let (step, sets) = match &data {
        StepData::Account { .. } => (1, "name = $3, password_hash = $4"),
        StepData::IntendedUse { .. } => (2, "intended_use = $3, intended_use_other = $4"),
        StepData::Subdomain(_) => (3, "subdomain = $3"),
        StepData::Terms { .. } => (4, "terms_version = $3, terms_accepted_at = now()"),
    };
    let sql = format!(
        "UPDATE signup_sessions SET {sets}, steps_done = GREATEST(steps_done, $2)
          WHERE id = $1 RETURNING {COLUMNS}"
    );
    let query = sqlx::query_as::<_, SignupSession>(&sql).bind(id).bind(step);
    let query = match data {
        StepData::Account {
            name,
            password_hash,
        } => query.bind(name).bind(password_hash),
        StepData::IntendedUse {
            intended_use,
            other,
        } => query.bind(intended_use).bind(other),
        StepData::Subdomain(s) => query.bind(s),
        StepData::Terms { version } => query.bind(version),
    };
    Ok(query.fetch_one(pool).await?)
}

pub async fn mark_deployed(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    user_id: Uuid,
    tenant_id: Uuid,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE signup_sessions SET user_id = $2, tenant_id = $3, deployed_at = now(), password_hash = NULL
          WHERE id = $1",
    )
    .bind(id)
    .bind(user_id)
    .bind(tenant_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
