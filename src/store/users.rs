//! Users and their API keys. Keys are stored only as SHA-256 hashes.

use chrono::{DateTime, Utc};
use rand::distributions::Alphanumeric;
use rand::Rng;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::StoreError;
use crate::domain::Role;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// Columns of `User`, for queries that join.
pub const USER_COLUMNS: &str = "u.id, u.email, u.role, u.created_at";

/// A user as an account: profile and password hash.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Account {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub name: Option<String>,
    pub email_verified_at: Option<DateTime<Utc>>,
    /// A new address waiting for its confirmation link.
    pub pending_email: Option<String>,
    pub created_at: DateTime<Utc>,
    #[sqlx(default)]
    pub password_hash: Option<String>,
}

/// An API key as listed: never the key itself.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyInfo {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_used_ip: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A freshly created key: the only time the full secret exists outside the caller.
pub struct NewApiKey {
    pub id: Uuid,
    pub prefix: String,
    pub secret: String,
}

impl std::fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApiKey")
            .field("id", &self.id)
            .field("prefix", &self.prefix)
            .finish()
    }
}

pub fn hash_key(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

pub fn random_token(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

pub async fn find_or_create_by_email(
    tx: &mut Transaction<'_, Postgres>,
    email: &str,
    role: Role,
) -> Result<User, StoreError> {
    sqlx::query("INSERT INTO users (id, email, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(Uuid::new_v4())
        .bind(email)
        .bind(role.as_str())
        .execute(&mut **tx)
        .await?;
    let user = sqlx::query_as::<_, User>(
        "SELECT id, email, role, created_at FROM users WHERE lower(email) = lower($1)",
    )
    .bind(email)
    .fetch_one(&mut **tx)
    .await?;
    Ok(user)
}

/// Creates the user if needed, makes it an admin, and issues a new API key.
pub async fn create_admin_with_key(
    pool: &PgPool,
    email: &str,
    key_name: &str,
) -> Result<(User, NewApiKey), StoreError> {
    let mut tx = pool.begin().await?;
    let user = find_or_create_by_email(&mut tx, email, Role::Admin).await?;
    sqlx::query("UPDATE users SET role = 'admin', updated_at = now() WHERE id = $1")
        .bind(user.id)
        .execute(&mut *tx)
        .await?;
    let key = insert_api_key(&mut tx, user.id, key_name).await?;
    tx.commit().await?;
    Ok((
        User {
            role: Role::Admin,
            ..user
        },
        key,
    ))
}

pub async fn insert_api_key(
    tx: &mut Transaction<'_, Postgres>,
    user_id: Uuid,
    name: &str,
) -> Result<NewApiKey, StoreError> {
    insert_api_key_expiring(tx, user_id, name, None).await
}

pub async fn insert_api_key_expiring(
    tx: &mut Transaction<'_, Postgres>,
    user_id: Uuid,
    name: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<NewApiKey, StoreError> {
    let prefix = format!("fpk_{}", random_token(8));
    let secret = format!("{prefix}_{}", random_token(40));
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(user_id)
    .bind(name)
    .bind(&prefix)
    .bind(hash_key(&secret))
    .bind(expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(NewApiKey { id, prefix, secret })
}

pub async fn list_api_keys(pool: &PgPool, user_id: Uuid) -> Result<Vec<ApiKeyInfo>, StoreError> {
    Ok(sqlx::query_as::<_, ApiKeyInfo>(
        "SELECT id, name, prefix, created_at, last_used_at, last_used_ip, expires_at, revoked_at
           FROM api_keys WHERE user_id = $1 ORDER BY created_at DESC",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await?)
}

/// Revokes one of the user's keys; false when the user has no such live key.
pub async fn revoke_api_key(
    pool: &PgPool,
    user_id: Uuid,
    key_id: Uuid,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
    )
    .bind(key_id)
    .bind(user_id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

const ACCOUNT_COLUMNS: &str =
    "id, email, role, name, email_verified_at, pending_email, created_at, password_hash";

pub async fn account(pool: &PgPool, id: Uuid) -> Result<Account, StoreError> {
    sqlx::query_as::<_, Account>(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM users WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound)
}

pub async fn account_by_email(pool: &PgPool, email: &str) -> Result<Option<Account>, StoreError> {
    Ok(sqlx::query_as::<_, Account>(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM users WHERE lower(email) = lower($1)"
    ))
    .bind(email)
    .fetch_optional(pool)
    .await?)
}

/// Creates a member with a password, in the caller's transaction (the wizard's deploy).
pub async fn insert_member(
    tx: &mut Transaction<'_, Postgres>,
    email: &str,
    name: Option<&str>,
    password_hash: &str,
) -> Result<Uuid, StoreError> {
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO users (id, email, role, name, password_hash) VALUES ($1, $2, 'member', $3, $4)")
        .bind(id)
        .bind(email)
        .bind(name)
        .bind(password_hash)
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_sqlx)?;
    Ok(id)
}

pub async fn set_password(pool: &PgPool, id: Uuid, password_hash: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(password_hash)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn set_name(pool: &PgPool, id: Uuid, name: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE users SET name = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(name)
        .execute(pool)
        .await?;
    Ok(())
}

/// Records a new address to switch to once it is confirmed; the current one
/// stays in use (and verified) until then.
pub async fn set_pending_email(pool: &PgPool, id: Uuid, email: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE users SET pending_email = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(email)
        .execute(pool)
        .await?;
    Ok(())
}

/// Whether any account signs in with this address.
pub async fn email_in_use(pool: &PgPool, email: &str) -> Result<bool, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($1))")
            .bind(email)
            .fetch_one(pool)
            .await?,
    )
}

/// What a confirmed email token did.
#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    /// The current address is now verified.
    Current,
    /// The pending address replaced the old one (returned), verified.
    Switched { old: String },
    /// The token names neither address any more.
    Stale,
}

/// Marks `email` verified for the user: the current address, or the pending one,
/// which then becomes the account's address. A pending address taken by another
/// account meanwhile is a `Conflict`.
pub async fn mark_email_verified(
    pool: &PgPool,
    id: Uuid,
    email: &str,
) -> Result<Verified, StoreError> {
    let done = sqlx::query(
        "UPDATE users SET email_verified_at = now(), updated_at = now() WHERE id = $1 AND lower(email) = lower($2)",
    )
    .bind(id)
    .bind(email)
    .execute(pool)
    .await?;
    if done.rows_affected() == 1 {
        return Ok(Verified::Current);
    }
    let old: Option<String> = sqlx::query_scalar(
        "UPDATE users u SET email = u.pending_email, pending_email = NULL,
                email_verified_at = now(), updated_at = now()
           FROM users before
          WHERE u.id = $1 AND before.id = u.id AND lower(u.pending_email) = lower($2)
          RETURNING before.email",
    )
    .bind(id)
    .bind(email)
    .fetch_optional(pool)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(old.map_or(Verified::Stale, |old| Verified::Switched { old }))
}

/// Revokes every live API key of the user (after a password reset): the names
/// and prefixes of those revoked, for telling the owner.
pub async fn revoke_all_api_keys(
    pool: &PgPool,
    user_id: Uuid,
) -> Result<Vec<(String, String)>, StoreError> {
    Ok(sqlx::query_as(
        "UPDATE api_keys SET revoked_at = now()
          WHERE user_id = $1 AND revoked_at IS NULL
            AND (expires_at IS NULL OR expires_at > now())
          RETURNING name, prefix",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await?)
}

/// Live tenants owned by accounts without a verified email, counted under a
/// transaction-scoped lock so two racing signups cannot both take the last place.
pub async fn lock_and_count_unverified_tenants(
    tx: &mut Transaction<'_, Postgres>,
) -> Result<i64, StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('unverified-tenants', 7))")
        .execute(&mut **tx)
        .await?;
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM tenants t JOIN users u ON u.id = t.user_id
          WHERE u.email_verified_at IS NULL
            AND t.status <> 'destroyed' AND t.desired_state <> 'destroyed'",
    )
    .fetch_one(&mut **tx)
    .await?)
}

/// Whether someone holds the account (it has a password) without having
/// verified its email address.
pub async fn holder_unverified(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT password_hash IS NOT NULL AND email_verified_at IS NULL FROM users WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .unwrap_or(false))
}

/// Whether the account has a verified email address.
pub async fn is_verified(pool: &PgPool, id: Uuid) -> Result<bool, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT email_verified_at IS NOT NULL FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?
            .unwrap_or(false),
    )
}

pub async fn set_role(pool: &PgPool, id: Uuid, role: Role) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE users SET role = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(role.as_str())
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn list_accounts(
    pool: &PgPool,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Account>, i64), StoreError> {
    let rows = sqlx::query_as::<_, Account>(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM users ORDER BY created_at, id LIMIT $1 OFFSET $2"
    ))
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(pool)
        .await?;
    Ok((rows, total))
}

/// The email addresses of these users (for lists that name owners or actors).
pub async fn emails_of(
    pool: &PgPool,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, String>, StoreError> {
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, email FROM users WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().collect())
}

/// The user a live API key belongs to; records when and from where it was used.
pub async fn user_for_api_key(
    pool: &PgPool,
    secret: &str,
    ip: Option<&str>,
) -> Result<Option<User>, StoreError> {
    let hash = hash_key(secret);
    let user = sqlx::query_as::<_, User>(&format!(
        "SELECT {USER_COLUMNS} FROM api_keys k JOIN users u ON u.id = k.user_id
          WHERE k.key_hash = $1 AND k.revoked_at IS NULL
            AND (k.expires_at IS NULL OR k.expires_at > now())"
    ))
    .bind(&hash)
    .fetch_optional(pool)
    .await?;
    if user.is_some() {
        // Recorded at most once a minute (or when the address changes), so a busy
        // client does not turn every request into a write.
        sqlx::query(
            "UPDATE api_keys SET last_used_at = now(), last_used_ip = $2
              WHERE key_hash = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute'
                                       OR last_used_ip IS DISTINCT FROM $2)",
        )
        .bind(&hash)
        .bind(ip)
        .execute(pool)
        .await?;
    }
    Ok(user)
}

/// A user and the owner of a tenant, as an open stream's re-check reads them.
#[derive(sqlx::FromRow)]
pub struct RecheckRow {
    #[sqlx(flatten)]
    user: User,
    owner: Option<Uuid>,
}

impl RecheckRow {
    pub fn split(self) -> (User, Option<Uuid>) {
        (self.user, self.owner)
    }
}

/// A live API key's user (found by the key's hash) and the owner of a tenant
/// (None when there is no such tenant), in one read by unique keys: an open
/// stream checking again that its caller may still watch. Not a use of the key:
/// `last_used_at` is left alone.
pub async fn recheck_api_key(
    pool: &PgPool,
    key_hash: &[u8],
    tenant_id: Uuid,
) -> Result<Option<(User, Option<Uuid>)>, StoreError> {
    let found: Option<RecheckRow> = sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS}, (SELECT t.user_id FROM tenants t WHERE t.id = $2) AS owner
           FROM api_keys k JOIN users u ON u.id = k.user_id
          WHERE k.key_hash = $1 AND k.revoked_at IS NULL
            AND (k.expires_at IS NULL OR k.expires_at > now())"
    ))
    .bind(key_hash)
    .bind(tenant_id)
    .fetch_optional(pool)
    .await?;
    Ok(found.map(RecheckRow::split))
}
