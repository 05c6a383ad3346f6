//! Setup claims: the one-time links that let a tenant's owner (and only them)
//! reach their fresh Fresco's `/setup`, and the cookies those links turn into.
//! Tokens are random; only their SHA-256 hashes are stored.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::users::{hash_key, random_token};
use super::StoreError;
use crate::domain::TenantId;

const TOKEN_LENGTH: usize = 40;

/// A new one-time link token for the tenant, valid until `expires_at`. Claims
/// of the tenant that expired a day ago or more are removed on the way.
pub async fn issue_link(
    pool: &PgPool,
    tenant: TenantId,
    expires_at: DateTime<Utc>,
) -> Result<String, StoreError> {
    let token = random_token(TOKEN_LENGTH);
    let mut tx = pool.begin().await?;
    sqlx::query(
        "DELETE FROM setup_claims WHERE tenant_id = $1 AND expires_at < now() - interval '1 day'",
    )
    .bind(tenant.0)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO setup_claims (token_hash, tenant_id, kind, expires_at) VALUES ($1, $2, 'link', $3)",
    )
    .bind(hash_key(&token))
    .bind(tenant.0)
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(token)
}

/// Uses a link token of this tenant: if it is unused and unexpired, marks it
/// used and returns a cookie token valid until `cookie_expires_at`.
pub async fn redeem_link(
    pool: &PgPool,
    tenant: TenantId,
    link: &str,
    cookie_expires_at: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    let mut tx = pool.begin().await?;
    let used = sqlx::query(
        "UPDATE setup_claims SET used_at = now()
          WHERE token_hash = $1 AND tenant_id = $2 AND kind = 'link'
            AND used_at IS NULL AND expires_at > now()",
    )
    .bind(hash_key(link))
    .bind(tenant.0)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if used == 0 {
        return Ok(None);
    }
    let cookie = random_token(TOKEN_LENGTH);
    sqlx::query(
        "INSERT INTO setup_claims (token_hash, tenant_id, kind, expires_at) VALUES ($1, $2, 'cookie', $3)",
    )
    .bind(hash_key(&cookie))
    .bind(tenant.0)
    .bind(cookie_expires_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(cookie))
}

/// Whether a cookie token admits its browser to this tenant's setup.
pub async fn cookie_admits(
    pool: &PgPool,
    tenant: TenantId,
    cookie: &str,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM setup_claims
                         WHERE token_hash = $1 AND tenant_id = $2 AND kind = 'cookie'
                           AND expires_at > now())",
    )
    .bind(hash_key(cookie))
    .bind(tenant.0)
    .fetch_one(pool)
    .await?)
}
