//! sqlx queries on the platform schema, one file per table group.

pub mod audit;
mod columns;
pub mod deployments;
pub mod locks;
pub mod notify;
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
