//! Tenant databases on the platform's Postgres servers: a role per tenant
//! owning a database of its own (database mode) or a schema in the server's
//! shared tenants database (schema mode), never anything in the platform
//! database (tenants made before that rule keep a schema there until moved).
//!
//! Runs as the platform's non-superuser role with CREATEROLE (+ CREATEDB) on
//! each server, through a small pool per server whose sessions carry a
//! `lock_timeout` and a `statement_timeout`, so no lock a tenant (or anyone)
//! holds can make the platform wait forever. On Postgres 15 such a role must be
//! a member of a tenant role to create objects owned by it, to terminate its
//! sessions and to drop what it owns, so each tenant role is granted to the
//! platform role. Names derive from the tenant id and are still quoted;
//! passwords reach the server only as SCRAM verifiers.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use uuid::Uuid;

use crate::config::{DataPlaneConfig, DbConfig, TenantConfig};
use crate::domain::{DbLocation, Isolation, TenantId};
use crate::store::db_servers::{DbServer, DEFAULT_SERVER};

/// Grants on one database rewrite the same pg_database row; concurrent ones fail
/// with "tuple concurrently updated", so they take this transaction lock first.
/// Only the legacy tenants in the platform database still need it (the lock
/// lives in the platform database, which no other tenant can reach).
pub const DATABASE_ACL_LOCK: i64 = 0x6672_6573_636f_0001;

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("postgres {step} failed: {source}")]
    Sql {
        step: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("{0}")]
    Config(String),
}

trait Step<T> {
    fn step(self, step: &'static str) -> Result<T, DatabaseError>;
}

impl<T> Step<T> for Result<T, sqlx::Error> {
    fn step(self, step: &'static str) -> Result<T, DatabaseError> {
        self.map_err(|source| DatabaseError::Sql { step, source })
    }
}

/// Quotes an SQL identifier (as `format('%I')` does).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes an SQL string literal (as `format('%L')` does, without backslash escapes).
pub fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Objects that look like a tenant's but belong to no live tenant. Names on a
/// server other than `default` carry its name: `pg2:tenant_…`.
#[derive(Debug, Default, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DbOrphans {
    pub schemas: Vec<String>,
    pub databases: Vec<String>,
    pub roles: Vec<String>,
}

/// How to reach one database on one server as the platform's role, for the
/// programs a move runs (`pg_dump`, `pg_restore`): the password goes in their
/// environment, never on a command line.
#[derive(Clone)]
pub struct ConnParams {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
}

impl std::fmt::Debug for ConnParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnParams")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct TenantDatabases {
    inner: Arc<Inner>,
}

struct Inner {
    /// DATABASE_URL: the platform's own server and database.
    platform_url: String,
    platform_database: String,
    tenants_database: String,
    isolation: Isolation,
    connection_limit: u32,
    statement_timeout: String,
    idle_in_transaction_timeout: String,
    pgbouncer_auth_role: String,
    ddl_lock_timeout: String,
    ddl_statement_timeout: String,
    admin_pool_size: u32,
    /// Pools by (server, database); "" is the admin URL's own database.
    pools: Mutex<HashMap<(Uuid, String), PgPool>>,
    /// Setting up a tenants database grants on its row: one at a time here.
    shared_setup: tokio::sync::Mutex<()>,
}

/// The database a URL names (its path), or None.
fn url_database(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let db = parsed.path().trim_start_matches('/');
    (!db.is_empty()).then(|| db.to_owned())
}

impl TenantDatabases {
    pub fn new(
        db: &DbConfig,
        tenants: &TenantConfig,
        plane: &DataPlaneConfig,
    ) -> Result<Self, DatabaseError> {
        let platform_database = url_database(&db.database_url)
            .ok_or_else(|| DatabaseError::Config("DATABASE_URL names no database".into()))?;
        let tenants_database = plane
            .tenants_database
            .clone()
            .unwrap_or_else(|| format!("{platform_database}_tenants"));
        // Its group role `<name>_connect` must fit Postgres' 63-byte names too.
        if tenants_database.len() > 55 || tenants_database == platform_database {
            return Err(DatabaseError::Config(format!(
                "TENANTS_DATABASE {tenants_database:?} must differ from the platform database \
                 and be at most 55 bytes long"
            )));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                platform_url: db.database_url.clone(),
                platform_database,
                tenants_database,
                isolation: tenants.isolation,
                connection_limit: tenants.connection_limit,
                statement_timeout: tenants.statement_timeout.clone(),
                idle_in_transaction_timeout: tenants.idle_in_transaction_timeout.clone(),
                pgbouncer_auth_role: plane.pgbouncer_auth_role.clone(),
                ddl_lock_timeout: plane.ddl_lock_timeout.clone(),
                ddl_statement_timeout: plane.ddl_statement_timeout.clone(),
                admin_pool_size: plane.db_admin_pool_size.max(1),
                pools: Mutex::new(HashMap::new()),
                shared_setup: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The isolation new tenants get.
    pub fn isolation(&self) -> Isolation {
        self.inner.isolation
    }

    /// Schema mode's shared database, on every server.
    pub fn tenants_database(&self) -> &str {
        &self.inner.tenants_database
    }

    /// The platform database's name.
    pub fn platform_database(&self) -> &str {
        &self.inner.platform_database
    }

    /// Whether a location is a legacy schema inside the platform database.
    pub fn is_legacy(&self, loc: &DbLocation) -> bool {
        loc.server == DEFAULT_SERVER
            && loc.isolation == Isolation::Schema
            && loc.database == self.inner.platform_database
    }

    /// The group role whose members may connect to a shared tenants database.
    fn connect_group(database: &str) -> String {
        format!("{database}_connect")
    }

    fn admin_url<'a>(&'a self, server: &'a DbServer) -> &'a str {
        server
            .admin_url
            .as_deref()
            .unwrap_or(&self.inner.platform_url)
    }

    /// Connect options for a database on the server (None: the admin URL's
    /// own), with the platform's DDL timeouts on every session.
    fn options(
        &self,
        server: &DbServer,
        database: Option<&str>,
    ) -> Result<PgConnectOptions, DatabaseError> {
        let mut options: PgConnectOptions = self.admin_url(server).parse().map_err(|_| {
            DatabaseError::Config(format!(
                "the admin URL of database server {} is not a postgres:// URL",
                server.name
            ))
        })?;
        if let Some(db) = database {
            options = options.database(db);
        }
        Ok(options.application_name("fresco-platform").options([
            ("lock_timeout", self.inner.ddl_lock_timeout.as_str()),
            (
                "statement_timeout",
                self.inner.ddl_statement_timeout.as_str(),
            ),
        ]))
    }

    /// The pool for a database on a server, made on first use.
    fn pool(&self, server: &DbServer, database: Option<&str>) -> Result<PgPool, DatabaseError> {
        let key = (server.id, database.unwrap_or("").to_owned());
        let mut pools = self.inner.pools.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pool) = pools.get(&key) {
            return Ok(pool.clone());
        }
        let pool = PgPoolOptions::new()
            .max_connections(self.inner.admin_pool_size)
            .min_connections(0)
            .idle_timeout(Duration::from_secs(60))
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(self.options(server, database)?);
        pools.insert(key, pool.clone());
        Ok(pool)
    }

    fn admin(&self, server: &DbServer) -> Result<PgPool, DatabaseError> {
        self.pool(server, None)
    }

    /// A pool on the database itself where that database is shared (tenants
    /// database, legacy platform database); tenant databases get one-off
    /// connections (`connect_to`) so idle pools do not pile up per tenant.
    fn shared(&self, server: &DbServer, database: &str) -> Result<PgPool, DatabaseError> {
        self.pool(server, Some(database))
    }

    async fn connect_to(
        &self,
        server: &DbServer,
        database: &str,
    ) -> Result<sqlx::PgConnection, DatabaseError> {
        sqlx::PgConnection::connect_with(&self.options(server, Some(database))?)
            .await
            .step("connect to the tenant database")
    }

    /// How `pg_dump`/`pg_restore` reach `database` on the server.
    pub fn conn_params(
        &self,
        server: &DbServer,
        database: &str,
    ) -> Result<ConnParams, DatabaseError> {
        let bad = || {
            DatabaseError::Config(format!(
                "the admin URL of database server {} is not a postgres:// URL with a host",
                server.name
            ))
        };
        let url = url::Url::parse(self.admin_url(server)).map_err(|_| bad())?;
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        Ok(ConnParams {
            host: url.host_str().ok_or_else(bad)?.to_owned(),
            port: url.port().unwrap_or(5432),
            user: decode(url.username()),
            password: url.password().map(decode),
            database: database.to_owned(),
        })
    }

    /// The server's `max_connections` and `superuser_reserved_connections`.
    pub async fn connection_settings(
        &self,
        server: &DbServer,
    ) -> Result<(i64, i64), DatabaseError> {
        let pool = self.admin(server)?;
        let max: String = sqlx::query_scalar("SHOW max_connections")
            .fetch_one(&pool)
            .await
            .step("read max_connections")?;
        let reserved: String = sqlx::query_scalar("SHOW superuser_reserved_connections")
            .fetch_one(&pool)
            .await
            .step("read superuser_reserved_connections")?;
        Ok((max.parse().unwrap_or(100), reserved.parse().unwrap_or(3)))
    }

    async fn exec(pool: &PgPool, step: &'static str, sql: &str) -> Result<(), DatabaseError> {
        sqlx::raw_sql(sql)
            .execute(pool)
            .await
            .step(step)
            .map(|_| ())
    }

    async fn role_exists(pool: &PgPool, role: &str) -> Result<bool, DatabaseError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(role)
            .fetch_one(pool)
            .await
            .step("role lookup")
    }

    async fn database_exists(pool: &PgPool, name: &str) -> Result<bool, DatabaseError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(pool)
            .await
            .step("database lookup")
    }

    /// `CREATE DATABASE name <options>` unless it exists; losing a race with
    /// another creator is fine. (It cannot run inside a transaction block.)
    async fn create_database(
        admin: &PgPool,
        step: &'static str,
        name: &str,
        options: &str,
    ) -> Result<(), DatabaseError> {
        if Self::database_exists(admin, name).await? {
            return Ok(());
        }
        match Self::exec(
            admin,
            step,
            &format!("CREATE DATABASE {} {options}", ident(name)),
        )
        .await
        {
            Err(e) if !Self::database_exists(admin, name).await? => Err(e),
            _ => Ok(()),
        }
    }

    /// Whether `member` (None: the platform role) is a member of `role`.
    async fn is_member(
        admin: &PgPool,
        member: Option<&str>,
        role: &str,
    ) -> Result<bool, DatabaseError> {
        sqlx::query_scalar("SELECT pg_has_role(COALESCE($1, current_user::text), $2, 'MEMBER')")
            .bind(member)
            .bind(role)
            .fetch_one(admin)
            .await
            .step("membership lookup")
    }

    /// Makes `member` (None: the platform role) a member of `role` unless it is one.
    async fn grant_membership(
        admin: &PgPool,
        step: &'static str,
        role: &str,
        member: Option<&str>,
    ) -> Result<(), DatabaseError> {
        if Self::is_member(admin, member, role).await? {
            return Ok(());
        }
        let grantee = member
            .map(ident)
            .unwrap_or_else(|| "CURRENT_USER".to_owned());
        Self::exec(admin, step, &format!("GRANT {} TO {grantee}", ident(role))).await
    }

    /// Creates or corrects the tenant's role and its database or schema at
    /// `loc`. Returns true when the role had to be created, i.e. any running
    /// container has no valid password any more.
    pub async fn ensure(
        &self,
        server: &DbServer,
        loc: &DbLocation,
        tenant: TenantId,
    ) -> Result<bool, DatabaseError> {
        let admin = self.admin(server)?;
        let created = self.ensure_role(&admin, tenant).await?;
        let r = ident(&tenant.role_name());
        let settings = format!(
            "ALTER ROLE {r} SET statement_timeout = {};
             ALTER ROLE {r} SET idle_in_transaction_session_timeout = {};",
            literal(&self.inner.statement_timeout),
            literal(&self.inner.idle_in_transaction_timeout),
        );
        match loc.isolation {
            Isolation::Database => {
                Self::exec(
                    &admin,
                    "role settings",
                    &format!("{settings} ALTER ROLE {r} RESET search_path;"),
                )
                .await?;
                self.ensure_database(&admin, &loc.database, tenant).await?;
            }
            Isolation::Schema => {
                let s = ident(&tenant.schema_name());
                Self::exec(
                    &admin,
                    "role settings",
                    &format!("{settings} ALTER ROLE {r} SET search_path = {s};"),
                )
                .await?;
                if self.is_legacy(loc) {
                    self.ensure_legacy_schema(server, tenant).await?;
                } else {
                    self.ensure_shared_schema(server, &loc.database, tenant)
                        .await?;
                }
            }
        }
        Ok(created)
    }

    /// The tenant's login role, with its attributes, and the platform role a
    /// member of it (Postgres 15 needs that to own objects for it). True when
    /// the role was created now.
    async fn ensure_role(&self, admin: &PgPool, tenant: TenantId) -> Result<bool, DatabaseError> {
        let role = tenant.role_name();
        let r = ident(&role);
        let created = !Self::role_exists(admin, &role).await?;
        // Postgres 15 refuses to let a non-superuser even restate SUPERUSER,
        // REPLICATION or BYPASSRLS in ALTER ROLE; they are off at creation.
        let attributes = format!(
            "LOGIN NOCREATEDB NOCREATEROLE INHERIT CONNECTION LIMIT {}",
            self.inner.connection_limit
        );
        if created {
            let create =
                format!("CREATE ROLE {r} {attributes} NOSUPERUSER NOREPLICATION NOBYPASSRLS");
            match Self::exec(admin, "create role", &create).await {
                Ok(()) => {}
                // Lost a race with another creator of the same tenant: go on and correct it.
                Err(e) if !Self::role_exists(admin, &role).await? => return Err(e),
                Err(_) => {}
            }
        } else {
            Self::exec(admin, "alter role", &format!("ALTER ROLE {r} {attributes}")).await?;
        }
        Self::grant_membership(admin, "grant role to platform", &role, None).await?;
        Ok(created)
    }

    /// PgBouncer's auth role, when the server has one: it signs in to each
    /// tenant database to look up the tenant's SCRAM verifier.
    /// The platform role is made a member of it: PgBouncer keeps its lookup
    /// session open in each tenant database, and `DROP DATABASE … WITH (FORCE)`
    /// may only end sessions of roles the platform is a member of.
    async fn pgbouncer_role(&self, admin: &PgPool) -> Result<Option<String>, DatabaseError> {
        let role = &self.inner.pgbouncer_auth_role;
        if !Self::role_exists(admin, role).await? {
            return Ok(None);
        }
        Self::grant_membership(admin, "grant PgBouncer's role to platform", role, None).await?;
        Ok(Some(ident(role)))
    }

    /// Database isolation: a database the role owns, closed to everyone else
    /// but PgBouncer's lookup.
    async fn ensure_database(
        &self,
        admin: &PgPool,
        name: &str,
        tenant: TenantId,
    ) -> Result<(), DatabaseError> {
        let r = ident(&tenant.role_name());
        let d = ident(name);
        Self::create_database(admin, "create database", name, &format!("OWNER {r}")).await?;
        let mut sql = format!(
            "ALTER DATABASE {d} OWNER TO {r};
             REVOKE ALL ON DATABASE {d} FROM PUBLIC;
             GRANT CONNECT, TEMPORARY ON DATABASE {d} TO {r};"
        );
        if let Some(bouncer) = self.pgbouncer_role(admin).await? {
            sql.push_str(&format!("GRANT CONNECT ON DATABASE {d} TO {bouncer};"));
        }
        Self::exec(admin, "database privileges", &sql).await
    }

    /// Schema isolation: the server's shared tenants database (made once, closed
    /// to PUBLIC, reachable through its `_connect` group), the role in that
    /// group, and its own schema there.
    async fn ensure_shared_schema(
        &self,
        server: &DbServer,
        database: &str,
        tenant: TenantId,
    ) -> Result<(), DatabaseError> {
        let admin = self.admin(server)?;
        self.ensure_tenants_database(server, &admin, database)
            .await?;
        let r = ident(&tenant.role_name());
        Self::grant_membership(
            &admin,
            "grant tenants-database access",
            &Self::connect_group(database),
            Some(&tenant.role_name()),
        )
        .await?;
        let s = ident(&tenant.schema_name());
        Self::exec(
            &self.shared(server, database)?,
            "schema",
            &format!(
                "CREATE SCHEMA IF NOT EXISTS {s} AUTHORIZATION {r};
                 ALTER SCHEMA {s} OWNER TO {r};"
            ),
        )
        .await
    }

    /// The shared tenants database and its `_connect` group; grants are only
    /// written when missing (each rewrites the database's row).
    async fn ensure_tenants_database(
        &self,
        server: &DbServer,
        admin: &PgPool,
        database: &str,
    ) -> Result<(), DatabaseError> {
        let _one_at_a_time = self.inner.shared_setup.lock().await;
        let d = ident(database);
        let group = Self::connect_group(database);
        let g = ident(&group);
        Self::create_database(admin, "create tenants database", database, "").await?;
        if !Self::role_exists(admin, &group).await? {
            Self::exec(
                admin,
                "create tenants-database group",
                &format!("CREATE ROLE {g} NOLOGIN NOINHERIT"),
            )
            .await?;
        }
        // Set up once: PUBLIC holds nothing on it (a new database lets PUBLIC
        // CONNECT and create TEMP tables) and the group may CONNECT.
        let closed: bool = sqlx::query_scalar(
            "SELECT d.datacl IS NOT NULL
                    AND NOT EXISTS (SELECT 1 FROM aclexplode(d.datacl) a WHERE a.grantee = 0)
                    AND EXISTS (SELECT 1 FROM aclexplode(d.datacl) a
                                  JOIN pg_roles r ON r.oid = a.grantee
                                 WHERE r.rolname = $1 AND a.privilege_type = 'CONNECT')
               FROM pg_database d WHERE d.datname = $2",
        )
        .bind(&group)
        .bind(database)
        .fetch_one(admin)
        .await
        .step("tenants-database privilege lookup")?;
        if !closed {
            let mut sql = format!(
                "REVOKE ALL ON DATABASE {d} FROM PUBLIC; GRANT CONNECT ON DATABASE {d} TO {g};"
            );
            if let Some(bouncer) = self.pgbouncer_role(admin).await? {
                sql.push_str(&format!("GRANT CONNECT ON DATABASE {d} TO {bouncer};"));
            }
            Self::exec(admin, "tenants-database privileges", &sql).await?;
            // Nobody creates in (or reads) its public schema.
            Self::exec(
                &self.shared(server, database)?,
                "close public schema",
                "REVOKE ALL ON SCHEMA public FROM PUBLIC",
            )
            .await?;
        }
        Ok(())
    }

    /// A tenant made before the tenants database existed: its schema in the
    /// platform database, as it was, until it is moved.
    async fn ensure_legacy_schema(
        &self,
        server: &DbServer,
        tenant: TenantId,
    ) -> Result<(), DatabaseError> {
        let r = ident(&tenant.role_name());
        let s = ident(&tenant.schema_name());
        Self::exec(
            &self.shared(server, &self.inner.platform_database)?,
            "legacy schema",
            &format!(
                "CREATE SCHEMA IF NOT EXISTS {s} AUTHORIZATION {r};
                 ALTER SCHEMA {s} OWNER TO {r};
                 BEGIN;
                 SELECT pg_advisory_xact_lock({DATABASE_ACL_LOCK});
                 GRANT CONNECT ON DATABASE {db} TO {r};
                 COMMIT;",
                db = ident(&self.inner.platform_database),
            ),
        )
        .await
    }

    /// When Fresco recorded its first start (`AppSettings.initializedAt`, written
    /// by its `initialize.ts`): its setup window is counted from it. None until
    /// Fresco wrote it, or when the table is not Fresco's shape.
    pub async fn fresco_initialized_at(
        &self,
        server: &DbServer,
        loc: &DbLocation,
        tenant: TenantId,
    ) -> Result<Option<DateTime<Utc>>, DatabaseError> {
        const QUERY: &str = "SELECT value FROM {table} WHERE key::text = 'initializedAt'";
        let value: Option<String> = match loc.isolation {
            Isolation::Schema => {
                let table = format!("{}.\"AppSettings\"", ident(&tenant.schema_name()));
                sqlx::query_scalar(&QUERY.replace("{table}", &table))
                    .fetch_optional(&self.shared(server, &loc.database)?)
                    .await
                    .step("read initializedAt")?
            }
            Isolation::Database => {
                // The platform role reaches the tenant's database through its
                // membership in the tenant role.
                let mut conn = self.connect_to(server, &loc.database).await?;
                let value = sqlx::query_scalar(&QUERY.replace("{table}", "\"AppSettings\""))
                    .fetch_optional(&mut conn)
                    .await
                    .step("read initializedAt");
                let _ = conn.close().await;
                value?
            }
        };
        Ok(value
            .and_then(|v| DateTime::parse_from_rfc3339(v.trim()).ok())
            .map(|t| t.with_timezone(&Utc)))
    }

    /// Sets the role's password from a SCRAM-SHA-256 verifier computed here, so
    /// the plaintext never reaches the server or its logs.
    pub async fn set_password(
        &self,
        server: &DbServer,
        tenant: TenantId,
        password: &str,
    ) -> Result<(), DatabaseError> {
        let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
        let sql = format!(
            "ALTER ROLE {} PASSWORD {}",
            ident(&tenant.role_name()),
            literal(&verifier)
        );
        // sqlx logs statements with their text (at debug, and at warn when
        // slow): the verifier would reach the log. This one runs on a connection
        // of its own with statement logging off.
        let options = self.options(server, None)?.disable_statement_logging();
        let mut conn = sqlx::PgConnection::connect_with(&options)
            .await
            .step("connect to set the password")?;
        let done = sqlx::query(&sql)
            .persistent(false)
            .execute(&mut conn)
            .await
            .step("set password")
            .map(|_| ());
        let _ = conn.close().await;
        done
    }

    /// Ends the role's sessions on the server (all of them, or those in one
    /// database).
    async fn terminate(
        admin: &PgPool,
        tenant: TenantId,
        database: Option<&str>,
    ) -> Result<(), DatabaseError> {
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE usename = $1 AND ($2::text IS NULL OR datname = $2)",
        )
        .bind(tenant.role_name())
        .bind(database)
        .execute(admin)
        .await
        .step("terminate sessions")
        .map(|_| ())
    }

    /// Removes the tenant's data at `loc` and its role on that server: no more
    /// logins, sessions ended, then database/schema, owned objects and the role
    /// dropped.
    pub async fn teardown(
        &self,
        server: &DbServer,
        loc: &DbLocation,
        tenant: TenantId,
    ) -> Result<(), DatabaseError> {
        let admin = self.admin(server)?;
        let role = tenant.role_name();
        let r = ident(&role);
        let role_exists = Self::role_exists(&admin, &role).await?;
        if role_exists {
            Self::exec(&admin, "disable login", &format!("ALTER ROLE {r} NOLOGIN")).await?;
            Self::terminate(&admin, tenant, None).await?;
        }
        self.drop_data(server, &admin, loc, tenant, role_exists)
            .await?;
        if role_exists {
            Self::exec(
                &admin,
                "drop role",
                &format!("DROP OWNED BY {r}; DROP ROLE {r};"),
            )
            .await?;
        }
        Ok(())
    }

    /// Drops only the tenant's data at `loc` (the old copy after a move, or a
    /// half-made target copy), keeping its role for the copy it still has.
    pub async fn drop_copy(
        &self,
        server: &DbServer,
        loc: &DbLocation,
        tenant: TenantId,
    ) -> Result<(), DatabaseError> {
        let admin = self.admin(server)?;
        let role_exists = Self::role_exists(&admin, &tenant.role_name()).await?;
        if role_exists {
            Self::terminate(&admin, tenant, Some(&loc.database)).await?;
        }
        // DROP OWNED BY also revokes the role's grants on shared objects (its
        // CONNECT on databases): right for the platform database a legacy
        // tenant leaves, wrong anywhere else on the same server.
        self.drop_data(
            server,
            &admin,
            loc,
            tenant,
            role_exists && self.is_legacy(loc),
        )
        .await?;
        if role_exists && loc.isolation == Isolation::Schema && !self.is_legacy(loc) {
            let group = Self::connect_group(&loc.database);
            let member = Self::is_member(&admin, Some(&tenant.role_name()), &group)
                .await
                .unwrap_or(false);
            if member {
                Self::exec(
                    &admin,
                    "revoke tenants-database access",
                    &format!(
                        "REVOKE {} FROM {}",
                        ident(&Self::connect_group(&loc.database)),
                        ident(&tenant.role_name())
                    ),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// The database (database mode) or the schema and what the role holds in
    /// that database (schema mode).
    async fn drop_data(
        &self,
        server: &DbServer,
        admin: &PgPool,
        loc: &DbLocation,
        tenant: TenantId,
        drop_owned: bool,
    ) -> Result<(), DatabaseError> {
        match loc.isolation {
            // WITH (FORCE) cannot run inside a transaction block.
            Isolation::Database => {
                Self::exec(
                    admin,
                    "drop database",
                    &format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        ident(&loc.database)
                    ),
                )
                .await
            }
            Isolation::Schema => {
                if !Self::database_exists(admin, &loc.database).await? {
                    return Ok(());
                }
                let s = ident(&tenant.schema_name());
                let r = ident(&tenant.role_name());
                let owned = if drop_owned {
                    format!("DROP OWNED BY {r};")
                } else {
                    String::new()
                };
                // In the platform database, DROP OWNED BY revokes the legacy
                // role's CONNECT, rewriting the database's ACL.
                let sql = if self.is_legacy(loc) {
                    format!(
                        "BEGIN; SELECT pg_advisory_xact_lock({DATABASE_ACL_LOCK});
                         DROP SCHEMA IF EXISTS {s} CASCADE; {owned} COMMIT;"
                    )
                } else {
                    format!("DROP SCHEMA IF EXISTS {s} CASCADE; {owned}")
                };
                Self::exec(&self.shared(server, &loc.database)?, "drop schema", &sql).await
            }
        }
    }

    /// Rows in every table of the tenant's data at `loc`, by table (schema mode:
    /// the table's name; database mode: `schema.table`, or the bare name in
    /// `public`). A move compares these on both sides.
    pub async fn row_counts(
        &self,
        server: &DbServer,
        loc: &DbLocation,
        tenant: TenantId,
    ) -> Result<BTreeMap<String, i64>, DatabaseError> {
        let mut conn = self.connect_to(server, &loc.database).await?;
        let counts = Self::count_rows(&mut conn, loc, tenant).await;
        let _ = conn.close().await;
        counts
    }

    /// A consistent view of the tenant's data for a backup: a REPEATABLE READ,
    /// READ ONLY transaction whose snapshot is exported (`pg_dump --snapshot`
    /// dumps exactly what it sees), with the row counts and schema version read
    /// in it. Takes no lock beyond what reads take; the tenant keeps working.
    /// Hold it until the dump is done, then `release` it.
    pub async fn snapshot(
        &self,
        server: &DbServer,
        loc: &DbLocation,
        tenant: TenantId,
    ) -> Result<DataSnapshot, DatabaseError> {
        let mut conn = self.connect_to(server, &loc.database).await?;
        let read = async {
            sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .execute(&mut conn)
                .await
                .step("begin the backup's snapshot")?;
            // Counting a large table may outlast DDL_STATEMENT_TIMEOUT; this
            // transaction only reads.
            sqlx::query("SET LOCAL statement_timeout = 0")
                .execute(&mut conn)
                .await
                .step("begin the backup's snapshot")?;
            let id: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
                .fetch_one(&mut conn)
                .await
                .step("export the backup's snapshot")?;
            let counts = Self::count_rows(&mut conn, loc, tenant).await?;
            // Fresco's schema version: its newest applied Prisma migration.
            let schema = match loc.isolation {
                Isolation::Schema => tenant.schema_name(),
                Isolation::Database => "public".to_owned(),
            };
            let table = format!("{}._prisma_migrations", ident(&schema));
            let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(&table)
                .fetch_one(&mut conn)
                .await
                .step("look for Fresco's migrations")?;
            let schema_version: Option<String> = if exists {
                sqlx::query_scalar(&format!(
                    "SELECT migration_name FROM {table} WHERE finished_at IS NOT NULL
                      ORDER BY finished_at DESC, migration_name DESC LIMIT 1"
                ))
                .fetch_optional(&mut conn)
                .await
                .step("read Fresco's schema version")?
            } else {
                None
            };
            Ok::<_, DatabaseError>((id, counts, schema_version))
        }
        .await;
        match read {
            Ok((id, counts, schema_version)) => Ok(DataSnapshot {
                conn,
                id,
                counts,
                schema_version,
            }),
            Err(e) => {
                let _ = conn.close().await;
                Err(e)
            }
        }
    }

    /// Whether the tenant's data exists at `loc` (its database, or its schema).
    pub async fn data_exists(
        &self,
        server: &DbServer,
        loc: &DbLocation,
        tenant: TenantId,
    ) -> Result<bool, DatabaseError> {
        let admin = self.admin(server)?;
        let db: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&loc.database)
            .fetch_one(&admin)
            .await
            .step("look for the tenant database")?;
        if !db || loc.isolation == Isolation::Database {
            return Ok(db);
        }
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(tenant.schema_name())
            .fetch_one(&self.shared(server, &loc.database)?)
            .await
            .step("look for the tenant schema")
    }

    async fn count_rows(
        conn: &mut sqlx::PgConnection,
        loc: &DbLocation,
        tenant: TenantId,
    ) -> Result<BTreeMap<String, i64>, DatabaseError> {
        let tables: Vec<(String, String)> = sqlx::query_as(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p')
                AND CASE WHEN $1::text IS NULL
                         THEN n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgbouncer')
                              AND n.nspname NOT LIKE 'pg\\_%'
                         ELSE n.nspname = $1 END
              ORDER BY 1, 2",
        )
        .bind((loc.isolation == Isolation::Schema).then(|| tenant.schema_name()))
        .fetch_all(&mut *conn)
        .await
        .step("list tables")?;
        let mut counts = BTreeMap::new();
        for (schema, table) in tables {
            let n: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM {}.{}",
                ident(&schema),
                ident(&table)
            ))
            .fetch_one(&mut *conn)
            .await
            .step("count rows")?;
            let key = if loc.isolation == Isolation::Schema || schema == "public" {
                table
            } else {
                format!("{schema}.{table}")
            };
            counts.insert(key, n);
        }
        Ok(counts)
    }

    /// Tenant-looking schemas, databases and roles with no live tenant, on every
    /// server. Only reported: dropping data nobody asked to drop is not the
    /// platform's call.
    pub async fn orphans(
        &self,
        servers: &[DbServer],
        live: &[TenantId],
    ) -> Result<DbOrphans, DatabaseError> {
        let live_names: Vec<String> = live.iter().map(|t| t.simple()).collect();
        let mut all = DbOrphans::default();
        for server in servers {
            let found = self.orphans_on(server, &live_names).await?;
            let label = |name: String| {
                if server.id == DEFAULT_SERVER {
                    name
                } else {
                    format!("{}:{name}", server.name)
                }
            };
            all.schemas.extend(found.schemas.into_iter().map(label));
            all.databases.extend(found.databases.into_iter().map(label));
            all.roles.extend(found.roles.into_iter().map(label));
        }
        Ok(all)
    }

    async fn orphans_on(
        &self,
        server: &DbServer,
        live_names: &[String],
    ) -> Result<DbOrphans, DatabaseError> {
        let admin = self.admin(server)?;
        const SCHEMAS: &str = "SELECT nspname::text FROM pg_namespace
              WHERE nspname ~ '^tenant_[0-9a-f]{32}$' AND NOT (substr(nspname, 8) = ANY($1))
              ORDER BY 1";
        let mut schemas = Vec::new();
        let mut shared = vec![self.inner.tenants_database.clone()];
        if server.id == DEFAULT_SERVER {
            shared.push(self.inner.platform_database.clone());
        }
        for database in shared {
            if !Self::database_exists(&admin, &database).await? {
                continue;
            }
            let found: Vec<String> = sqlx::query_scalar(SCHEMAS)
                .bind(live_names)
                .fetch_all(&self.shared(server, &database)?)
                .await
                .step("orphan schemas")?;
            schemas.extend(found);
        }
        let databases: Vec<String> = sqlx::query_scalar(
            "SELECT datname::text FROM pg_database
              WHERE datname ~ '^tenant_[0-9a-f]{32}$' AND NOT (substr(datname, 8) = ANY($1))
                AND pg_has_role(current_user, datdba, 'MEMBER')
              ORDER BY 1",
        )
        .bind(live_names)
        .fetch_all(&admin)
        .await
        .step("orphan databases")?;
        // Roles of this platform: those that may connect to its platform or
        // tenants database, or own a tenant database.
        let roles: Vec<String> = sqlx::query_scalar(
            "SELECT rolname::text FROM pg_roles r
              WHERE rolname ~ '^tenant_user_[0-9a-f]{32}$' AND NOT (substr(rolname, 13) = ANY($1))
                AND (EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                              WHERE m.member = r.oid AND g.rolname = $2)
                     OR ($3 AND has_database_privilege(r.oid, current_database(), 'CONNECT'))
                     OR EXISTS (SELECT 1 FROM pg_database d WHERE d.datdba = r.oid))
              ORDER BY 1",
        )
        .bind(live_names)
        .bind(Self::connect_group(&self.inner.tenants_database))
        .bind(server.id == DEFAULT_SERVER)
        .fetch_all(&admin)
        .await
        .step("orphan roles")?;
        Ok(DbOrphans {
            schemas,
            databases,
            roles,
        })
    }
}

/// A backup's view of a tenant's data (`TenantDatabases::snapshot`).
pub struct DataSnapshot {
    conn: sqlx::PgConnection,
    /// For `pg_dump --snapshot`.
    pub id: String,
    pub counts: BTreeMap<String, i64>,
    pub schema_version: Option<String>,
}

impl DataSnapshot {
    /// Ends the snapshot's transaction.
    pub async fn release(mut self) {
        let _ = sqlx::query("COMMIT").execute(&mut self.conn).await;
        let _ = self.conn.close().await;
    }
}
