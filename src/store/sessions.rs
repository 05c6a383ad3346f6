//! Login sessions and one-time email tokens. Both are random secrets handed to
//! the user and stored here only as SHA-256 hashes.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::users::{hash_key, random_token, RecheckRow, User, USER_COLUMNS};
use super::StoreError;

pub struct NewSession {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

pub async fn create(
    pool: &PgPool,
    user_id: Uuid,
    remember: bool,
    ttl: Duration,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> Result<NewSession, StoreError> {
    let token = format!("fps_{}", random_token(43));
    let expires_at = Utc::now() + ttl;
    sqlx::query(
        "INSERT INTO sessions (id, user_id, token_hash, remember, expires_at, ip, user_agent)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(Uuid::new_v4())
    .bind(user_id)
    .bind(hash_key(&token))
    .bind(remember)
    .bind(expires_at)
    .bind(ip)
    .bind(user_agent.map(|u| u.chars().take(300).collect::<String>()))
    .execute(pool)
    .await?;
    Ok(NewSession { token, expires_at })
}

pub struct SessionUser {
    pub user: User,
    pub session_id: Uuid,
}

/// The user of a live session. Sliding expiry: use pushes the expiry out by the
/// session's lifetime (written at most once a minute, not at every request).
pub async fn user_for_token(
    pool: &PgPool,
    token: &str,
    ttl: Duration,
    remember_ttl: Duration,
) -> Result<Option<SessionUser>, StoreError> {
    type Row = (
        Uuid,
        bool,
        DateTime<Utc>,
        Uuid,
        String,
        crate::domain::Role,
        DateTime<Utc>,
    );
    let found: Option<Row> = sqlx::query_as(
        "SELECT s.id, s.remember, s.last_seen_at, u.id, u.email, u.role, u.created_at
           FROM sessions s JOIN users u ON u.id = s.user_id
          WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now()",
    )
    .bind(hash_key(token))
    .fetch_optional(pool)
    .await?;
    let Some((session_id, remember, last_seen, id, email, role, created_at)) = found else {
        return Ok(None);
    };
    if Utc::now() - last_seen > Duration::minutes(1) {
        let expires_at = Utc::now() + if remember { remember_ttl } else { ttl };
        sqlx::query("UPDATE sessions SET last_seen_at = now(), expires_at = $2 WHERE id = $1")
            .bind(session_id)
            .bind(expires_at)
            .execute(pool)
            .await?;
    }
    Ok(Some(SessionUser {
        user: User {
            id,
            email,
            role,
            created_at,
        },
        session_id,
    }))
}

pub async fn revoke(pool: &PgPool, session_id: Uuid) -> Result<(), StoreError> {
    sqlx::query("UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
        .bind(session_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Ends every session of the user except `keep` (after a password change).
pub async fn revoke_all(
    pool: &PgPool,
    user_id: Uuid,
    keep: Option<Uuid>,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = now()
          WHERE user_id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR id <> $2)",
    )
    .bind(user_id)
    .bind(keep)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    VerifyEmail,
    PasswordReset,
}

impl TokenPurpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::PasswordReset => "password_reset",
        }
    }
}

/// Issues a single-use email token; earlier unused tokens of the same purpose die.
pub async fn issue_email_token(
    pool: &PgPool,
    user_id: Uuid,
    email: &str,
    purpose: TokenPurpose,
    ttl: Duration,
) -> Result<String, StoreError> {
    let token = format!("fpe_{}", random_token(43));
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE email_tokens SET used_at = now() WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL")
        .bind(user_id)
        .bind(purpose.as_str())
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO email_tokens (id, user_id, purpose, token_hash, email, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(Uuid::new_v4())
    .bind(user_id)
    .bind(purpose.as_str())
    .bind(hash_key(&token))
    .bind(email)
    .bind(Utc::now() + ttl)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(token)
}

/// Uses a token once: returns its user and the email it was sent to, or None when
/// it is unknown, used or expired.
pub async fn consume_email_token(
    pool: &PgPool,
    token: &str,
    purpose: TokenPurpose,
) -> Result<Option<(Uuid, String)>, StoreError> {
    Ok(sqlx::query_as(
        "UPDATE email_tokens SET used_at = now()
          WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
          RETURNING user_id, email",
    )
    .bind(hash_key(token))
    .bind(purpose.as_str())
    .fetch_optional(pool)
    .await?)
}

/// The user a still-usable token belongs to, without using it up.
pub async fn peek_email_token(
    pool: &PgPool,
    token: &str,
    purpose: TokenPurpose,
) -> Result<Option<Uuid>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT user_id FROM email_tokens
          WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()",
    )
    .bind(hash_key(token))
    .bind(purpose.as_str())
    .fetch_optional(pool)
    .await?)
}

/// A live session's user and the owner of a tenant (None when there is no such
/// tenant), in one read by primary keys: an open stream checking again that its
/// caller may still watch. Unlike `user_for_token` it never extends the session.
pub async fn recheck(
    pool: &PgPool,
    session_id: Uuid,
    tenant_id: Uuid,
) -> Result<Option<(User, Option<Uuid>)>, StoreError> {
    let found: Option<RecheckRow> = sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS}, (SELECT t.user_id FROM tenants t WHERE t.id = $2) AS owner
           FROM sessions s JOIN users u ON u.id = s.user_id
          WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > now()"
    ))
    .bind(session_id)
    .bind(tenant_id)
    .fetch_optional(pool)
    .await?;
    Ok(found.map(RecheckRow::split))
}
