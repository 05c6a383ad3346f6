//! Advisory locks that serialise work across control-plane processes.

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};

use super::StoreError;
use crate::domain::TenantId;

/// A tenant's reconcile lock: a session-level advisory lock held on one
/// connection for as long as this value lives. `release` gives it back; a lock
/// that cannot be released is dropped with its connection, which also ends it.
pub struct TenantLock {
    conn: PoolConnection<Postgres>,
    key: i64,
}

impl TenantLock {
    /// Takes the tenant's lock if nobody holds it; None when another pass (in
    /// this process or another) is working on the tenant.
    pub async fn try_acquire(pool: &PgPool, id: TenantId) -> Result<Option<Self>, StoreError> {
        let mut conn = pool.acquire().await?;
        let key = id.lock_key();
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut *conn)
            .await?;
        Ok(locked.then_some(Self { conn, key }))
    }

    pub async fn release(mut self) {
        if let Err(e) = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(self.key)
            .execute(&mut *self.conn)
            .await
        {
            // Closing the connection releases the lock.
            tracing::warn!(error = %e, "could not release the tenant lock; dropping the connection");
            let _ = self.conn.detach();
        }
    }
}
