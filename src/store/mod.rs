//! sqlx queries on the platform schema, one file per table group.

pub mod audit;
pub mod backups;
mod columns;
pub mod db_servers;
pub mod deployments;
pub mod locks;
pub mod moves;
pub mod notifications;
pub mod notify;
pub mod restores;
pub mod sessions;
pub mod setup_claims;
pub mod signup;
pub mod tenants;
pub mod usage;
pub mod users;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::config::DbConfig;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write; carries the constraint's name.
    #[error("conflicts with an existing row ({0})")]
    Conflict(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl StoreError {
    /// Turns unique violations into `Conflict`, so callers can answer 409.
    pub fn from_sqlx(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err {
            if db.is_unique_violation() {
                return Self::Conflict(db.constraint().unwrap_or("unique").to_owned());
            }
        }
        Self::Db(err)
    }

    /// The platform database could not be reached or is going away, as opposed to
    /// refusing this statement: a caller can retry once Postgres is back.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Db(e) if unavailable(e))
    }
}

/// Is this a failure to reach Postgres (down, restarting, out of connections)
/// rather than a fault of the statement? The pool reconnects by itself when the
/// server returns, so such errors pass without anyone acting.
pub fn unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => true,
        // Class 08: connection exception; 57P01-03: shutdown, crash, starting up;
        // 53300: too many connections.
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

pub async fn connect(cfg: &DbConfig) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = cfg.database_url.parse()?;
    PgPoolOptions::new()
        .max_connections(cfg.database_max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.application_name("fresco-platform"))
        .await
}

/// Does the platform database answer? (Readiness.)
pub async fn ping(pool: &PgPool) -> bool {
    sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(pool)
        .await
        .is_ok()
}

pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}
