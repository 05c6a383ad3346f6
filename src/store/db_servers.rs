//! The Postgres servers tenant databases live on (`db_servers`), how full each
//! is, and the placement of a new tenant on the least-loaded one.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::StoreError;
use crate::domain::{DbLocation, Isolation, TenantId};

/// The server the platform database is on, made by the migration; its NULL
/// columns mean "as the platform's own configuration says".
pub const DEFAULT_SERVER: Uuid = Uuid::from_u128(1);

/// Placement reads the load of every server and writes one tenant's place;
/// two placements at once must not both take a server's last slot.
const PLACEMENT_LOCK: i64 = 0x6672_6573_636f_0002;

#[derive(Clone, sqlx::FromRow)]
pub struct DbServer {
    pub id: Uuid,
    pub name: String,
    /// DSN of the platform's role on that server (a secret); None: DATABASE_URL.
    pub admin_url: Option<String>,
    /// host:port (or :port on the tenants network's gateway) tenants reach
    /// directly; None: TENANT_DB_HOST.
    pub tenant_host: Option<String>,
    /// host:port (or :port) of its PgBouncer; None: TENANT_DB_POOLER_PORT.
    pub pooler_host: Option<String>,
    pub capacity: i32,
    pub draining: bool,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for DbServer {
    // The admin URL carries a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbServer")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("tenant_host", &self.tenant_host)
            .field("pooler_host", &self.pooler_host)
            .field("capacity", &self.capacity)
            .field("draining", &self.draining)
            .finish_non_exhaustive()
    }
}

/// A server with how many live tenants it holds (moves under way to it count).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Loaded {
    #[sqlx(flatten)]
    pub server: DbServer,
    pub tenants: i64,
}

const COLUMNS: &str =
    "s.id, s.name, s.admin_url, s.tenant_host, s.pooler_host, s.capacity, s.draining, s.created_at";

const LOAD: &str = "(SELECT count(*) FROM tenants t
                       WHERE t.db_server_id = s.id AND t.status <> 'destroyed')
                  + (SELECT count(*) FROM tenant_moves m
                      WHERE m.to_server_id = s.id AND m.phase IN ('pending', 'stopped', 'copied'))";

pub async fn list(pool: &PgPool) -> Result<Vec<Loaded>, StoreError> {
    Ok(sqlx::query_as::<_, Loaded>(&format!(
        "SELECT {COLUMNS}, {LOAD} AS tenants FROM db_servers s ORDER BY s.created_at, s.name"
    ))
    .fetch_all(pool)
    .await?)
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<DbServer, StoreError> {
    sqlx::query_as::<_, DbServer>(&format!(
        "SELECT {COLUMNS} FROM db_servers s WHERE s.id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound)
}

pub async fn by_name(pool: &PgPool, name: &str) -> Result<DbServer, StoreError> {
    sqlx::query_as::<_, DbServer>(&format!(
        "SELECT {COLUMNS} FROM db_servers s WHERE s.name = $1"
    ))
    .bind(name)
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound)
}

pub struct NewServer<'a> {
    pub name: &'a str,
    pub admin_url: &'a str,
    pub tenant_host: &'a str,
    pub pooler_host: Option<&'a str>,
    pub capacity: i32,
}

/// Adds a server; a taken name is a `Conflict`.
pub async fn insert(pool: &PgPool, new: NewServer<'_>) -> Result<DbServer, StoreError> {
    sqlx::query_as::<_, DbServer>(&format!(
        "INSERT INTO db_servers AS s (id, name, admin_url, tenant_host, pooler_host, capacity)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(new.name)
    .bind(new.admin_url)
    .bind(new.tenant_host)
    .bind(new.pooler_host)
    .bind(new.capacity)
    .fetch_one(pool)
    .await
    .map_err(StoreError::from_sqlx)
}

/// Changes a server's capacity and/or draining flag; returns the new row.
pub async fn update(
    pool: &PgPool,
    id: Uuid,
    capacity: Option<i32>,
    draining: Option<bool>,
) -> Result<DbServer, StoreError> {
    sqlx::query_as::<_, DbServer>(&format!(
        "UPDATE db_servers AS s SET capacity = COALESCE($2, capacity), draining = COALESCE($3, draining)
          WHERE s.id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(capacity)
    .bind(draining)
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::NotFound)
}

/// Moves under way: (subdomain, from server, to server, phase).
pub async fn moves_under_way(
    pool: &PgPool,
) -> Result<Vec<(String, Uuid, Uuid, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT t.subdomain, m.from_server_id, m.to_server_id, m.phase FROM tenant_moves m
           JOIN tenants t ON t.id = m.tenant_id
          WHERE m.phase IN ('pending', 'stopped', 'copied', 'switched') ORDER BY m.id",
    )
    .fetch_all(pool)
    .await?)
}

/// Takes the placement lock for the rest of the caller's transaction.
pub async fn lock_placement(tx: &mut Transaction<'_, Postgres>) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(PLACEMENT_LOCK)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The least-loaded server (by share of its capacity) that is not draining,
/// has room, and is not `except`; under the placement lock.
pub async fn least_loaded(
    tx: &mut Transaction<'_, Postgres>,
    except: Option<Uuid>,
) -> Result<Option<DbServer>, StoreError> {
    Ok(sqlx::query_as::<_, DbServer>(&format!(
        "SELECT {COLUMNS} FROM db_servers s
          WHERE NOT s.draining AND ($1::uuid IS NULL OR s.id <> $1) AND {LOAD} < s.capacity
          ORDER BY ({LOAD})::float8 / s.capacity, s.created_at, s.name
          LIMIT 1"
    ))
    .bind(except)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Whether `server` has room for one more tenant (under the placement lock).
pub async fn has_room(
    tx: &mut Transaction<'_, Postgres>,
    server: Uuid,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT {LOAD} < s.capacity FROM db_servers s WHERE s.id = $1"
    ))
    .bind(server)
    .fetch_optional(&mut **tx)
    .await?
    .unwrap_or(false))
}

/// Why a tenant could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error(
        "no database server has room for another tenant ({0} server(s), each full or draining); \
         add one with `fresco-platform db-servers add` or raise a capacity"
    )]
    NoRoom(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Gives an unplaced tenant its place: the least-loaded server, and there its
/// own database (`database`) or the shared tenants database (`schema`).
/// A tenant placed meanwhile keeps its place.
pub async fn place(
    pool: &PgPool,
    tenant: TenantId,
    isolation: Isolation,
    tenants_database: &str,
) -> Result<DbLocation, PlacementError> {
    let mut tx = pool.begin().await.map_err(StoreError::from)?;
    lock_placement(&mut tx).await?;
    let Some(server) = least_loaded(&mut tx, None).await? else {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM db_servers")
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        return Err(PlacementError::NoRoom(count as usize));
    };
    let database = match isolation {
        Isolation::Database => tenant.database_name(),
        Isolation::Schema => tenants_database.to_owned(),
    };
    let placed: (Uuid, String, Isolation) = sqlx::query_as(
        "UPDATE tenants SET db_server_id = COALESCE(db_server_id, $2),
                db_name = CASE WHEN db_server_id IS NULL THEN $3 ELSE db_name END,
                db_isolation = CASE WHEN db_server_id IS NULL THEN $4 ELSE db_isolation END
          WHERE id = $1 RETURNING db_server_id, db_name, db_isolation",
    )
    .bind(tenant.0)
    .bind(server.id)
    .bind(&database)
    .bind(isolation)
    .fetch_one(&mut *tx)
    .await
    .map_err(StoreError::from)?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(DbLocation {
        server: placed.0,
        database: placed.1,
        isolation: placed.2,
    })
}
