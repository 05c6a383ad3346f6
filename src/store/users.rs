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
    pub role: String,
    pub created_at: DateTime<Utc>,
}

impl User {
    pub fn role(&self) -> Role {
        self.role.parse().unwrap_or(Role::Member)
    }
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

fn random_token(len: usize) -> String {
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
            role: Role::Admin.as_str().to_owned(),
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
    let prefix = format!("fpk_{}", random_token(8));
    let secret = format!("{prefix}_{}", random_token(40));
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO api_keys (id, user_id, name, prefix, key_hash) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(user_id)
    .bind(name)
    .bind(&prefix)
    .bind(hash_key(&secret))
    .execute(&mut **tx)
    .await?;
    Ok(NewApiKey { id, prefix, secret })
}

/// The user a live API key belongs to; records its last use.
pub async fn user_for_api_key(pool: &PgPool, secret: &str) -> Result<Option<User>, StoreError> {
    let user = sqlx::query_as::<_, User>(
        "UPDATE api_keys k SET last_used_at = now()
           FROM users u
          WHERE k.key_hash = $1 AND k.user_id = u.id AND k.revoked_at IS NULL
            AND (k.expires_at IS NULL OR k.expires_at > now())
          RETURNING u.id, u.email, u.role, u.created_at",
    )
    .bind(hash_key(secret))
    .fetch_optional(pool)
    .await?;
    Ok(user)
}
