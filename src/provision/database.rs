//! Tenant databases: a role per tenant owning a schema in the platform database
//! (schema mode) or a database of its own (database mode).
//!
//! Runs as the platform's non-superuser role with CREATEROLE (+ CREATEDB). On
//! Postgres 15 such a role must be a member of a tenant role to create objects
//! owned by it, to terminate its sessions and to drop what it owns, so each
//! tenant role is granted to the platform role. Names derive from the tenant id
//! and are still quoted; passwords reach the server only as SCRAM verifiers.

use chrono::{DateTime, Utc};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::config::{Isolation, TenantConfig};
use crate::domain::TenantId;

/// Grants on one database rewrite the same pg_database row; concurrent ones fail
/// with "tuple concurrently updated", so they take this transaction lock first.
pub const DATABASE_ACL_LOCK: i64 = 0x6672_6573_636f_0001;

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("postgres {step} failed: {source}")]
    Sql {
        step: &'static str,
        #[source]
        source: sqlx::Error,
    },
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

#[derive(Clone)]
pub struct TenantDatabases {
    pool: PgPool,
    database_name: std::sync::Arc<tokio::sync::OnceCell<String>>,
    isolation: Isolation,
    connection_limit: u32,
    statement_timeout: String,
    idle_in_transaction_timeout: String,
}

/// Objects that look like a tenant's but belong to no live tenant.
#[derive(Debug, Default, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DbOrphans {
    pub schemas: Vec<String>,
    pub databases: Vec<String>,
    pub roles: Vec<String>,
}

impl TenantDatabases {
    pub fn new(pool: PgPool, cfg: &TenantConfig) -> Self {
        Self {
            pool,
            database_name: Default::default(),
            isolation: cfg.isolation,
            connection_limit: cfg.connection_limit,
            statement_timeout: cfg.statement_timeout.clone(),
            idle_in_transaction_timeout: cfg.idle_in_transaction_timeout.clone(),
        }
    }

    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    async fn exec(&self, step: &'static str, sql: &str) -> Result<(), DatabaseError> {
        sqlx::raw_sql(sql)
            .execute(&self.pool)
            .await
            .step(step)
            .map(|_| ())
    }

    async fn role_exists(&self, role: &str) -> Result<bool, DatabaseError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(role)
            .fetch_one(&self.pool)
            .await
            .step("role lookup")
    }

    async fn database_exists(&self, name: &str) -> Result<bool, DatabaseError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .step("database lookup")
    }

    /// Creates or corrects the tenant's role and schema/database. Returns true
    /// when the role had to be created, i.e. any running container has no valid
    /// password any more.
    pub async fn ensure(&self, tenant: TenantId) -> Result<bool, DatabaseError> {
        let created = self.ensure_role(tenant).await?;
        let r = ident(&tenant.role_name());
        let settings = format!(
            "ALTER ROLE {r} SET statement_timeout = {};
             ALTER ROLE {r} SET idle_in_transaction_session_timeout = {};",
            literal(&self.statement_timeout),
            literal(&self.idle_in_transaction_timeout),
        );
        match self.isolation {
            Isolation::Schema => self.ensure_schema(tenant, settings).await?,
            Isolation::Database => self.ensure_database(tenant, settings).await?,
        }
        Ok(created)
    }

    /// The tenant's login role, with its attributes, and the platform role a
    /// member of it (Postgres 15 needs that to own objects for it). True when
    /// the role was created now.
    async fn ensure_role(&self, tenant: TenantId) -> Result<bool, DatabaseError> {
        let role = tenant.role_name();
        let r = ident(&role);
        let created = !self.role_exists(&role).await?;
        // Postgres 15 refuses to let a non-superuser even restate SUPERUSER,
        // REPLICATION or BYPASSRLS in ALTER ROLE; they are off at creation.
        let attributes = format!(
            "LOGIN NOCREATEDB NOCREATEROLE INHERIT CONNECTION LIMIT {}",
            self.connection_limit
        );
        if created {
            let create =
                format!("CREATE ROLE {r} {attributes} NOSUPERUSER NOREPLICATION NOBYPASSRLS");
            match self.exec("create role", &create).await {
                Ok(()) => {}
                // Lost a race with another creator of the same tenant: go on and correct it.
                Err(e) if !self.role_exists(&role).await? => return Err(e),
                Err(_) => {}
            }
        } else {
            self.exec("alter role", &format!("ALTER ROLE {r} {attributes}"))
                .await?;
        }
        let member: bool = sqlx::query_scalar("SELECT pg_has_role(current_user, $1, 'MEMBER')")
            .bind(&role)
            .fetch_one(&self.pool)
            .await
            .step("membership lookup")?;
        if !member {
            self.exec(
                "grant role to platform",
                &format!("GRANT {r} TO CURRENT_USER"),
            )
            .await?;
        }
        Ok(created)
    }

    /// Schema isolation: the role's own schema in the shared database, on its
    /// search path, and CONNECT on that database.
    async fn ensure_schema(
        &self,
        tenant: TenantId,
        mut settings: String,
    ) -> Result<(), DatabaseError> {
        let r = ident(&tenant.role_name());
        let s = ident(&tenant.schema_name());
        settings.push_str(&format!(
            "ALTER ROLE {r} SET search_path = {s};
             CREATE SCHEMA IF NOT EXISTS {s} AUTHORIZATION {r};
             ALTER SCHEMA {s} OWNER TO {r};
             BEGIN;
             SELECT pg_advisory_xact_lock({DATABASE_ACL_LOCK});
             GRANT CONNECT ON DATABASE {db} TO {r};
             COMMIT;",
            db = ident(&self.current_database().await?),
        ));
        self.exec("role settings and schema", &settings).await
    }

    /// Database isolation: a database the role owns, closed to everyone else.
    async fn ensure_database(
        &self,
        tenant: TenantId,
        mut settings: String,
    ) -> Result<(), DatabaseError> {
        let r = ident(&tenant.role_name());
        settings.push_str(&format!("ALTER ROLE {r} RESET search_path;"));
        self.exec("role settings", &settings).await?;
        let name = tenant.database_name();
        let d = ident(&name);
        if !self.database_exists(&name).await? {
            // CREATE DATABASE cannot run inside a transaction block.
            if let Err(e) = self
                .exec("create database", &format!("CREATE DATABASE {d} OWNER {r}"))
                .await
            {
                if !self.database_exists(&name).await? {
                    return Err(e);
                }
            }
        }
        self.exec(
            "database privileges",
            &format!(
                "ALTER DATABASE {d} OWNER TO {r};
                 REVOKE ALL ON DATABASE {d} FROM PUBLIC;
                 GRANT CONNECT, TEMPORARY ON DATABASE {d} TO {r};"
            ),
        )
        .await
    }

    /// When Fresco recorded its first start (`AppSettings.initializedAt`, written
    /// by its `initialize.ts`): its setup window is counted from it. None until
    /// Fresco wrote it, or when the table is not Fresco's shape.
    pub async fn fresco_initialized_at(
        &self,
        tenant: TenantId,
    ) -> Result<Option<DateTime<Utc>>, DatabaseError> {
        const QUERY: &str = "SELECT value FROM {table} WHERE key::text = 'initializedAt'";
        let value: Option<String> = match self.isolation {
            Isolation::Schema => {
                let table = format!("{}.\"AppSettings\"", ident(&tenant.schema_name()));
                sqlx::query_scalar(&QUERY.replace("{table}", &table))
                    .fetch_optional(&self.pool)
                    .await
                    .step("read initializedAt")?
            }
            Isolation::Database => {
                // The platform role reaches the tenant's database through its
                // membership in the tenant role.
                let options = (*self.pool.connect_options())
                    .clone()
                    .database(&tenant.database_name());
                let mut conn = sqlx::PgConnection::connect_with(&options)
                    .await
                    .step("connect to the tenant database")?;
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

    /// The platform database's name: asked once, it never changes.
    pub async fn current_database(&self) -> Result<String, DatabaseError> {
        self.database_name
            .get_or_try_init(|| async {
                sqlx::query_scalar("SELECT current_database()")
                    .fetch_one(&self.pool)
                    .await
                    .step("database name")
            })
            .await
            .cloned()
    }

    /// Sets the role's password from a SCRAM-SHA-256 verifier computed here, so
    /// the plaintext never reaches the server or its logs.
    pub async fn set_password(
        &self,
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
        let options = (*self.pool.connect_options())
            .clone()
            .disable_statement_logging();
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

    /// Removes the tenant's data and role: no more logins, sessions ended, then
    /// schema/database, owned objects and the role dropped.
    pub async fn teardown(&self, tenant: TenantId) -> Result<(), DatabaseError> {
        let role = tenant.role_name();
        let r = ident(&role);
        let role_exists = self.role_exists(&role).await?;
        if role_exists {
            self.exec("disable login", &format!("ALTER ROLE {r} NOLOGIN"))
                .await?;
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
            )
            .bind(&role)
            .execute(&self.pool)
            .await
            .step("terminate sessions")?;
        }
        if self.isolation == Isolation::Database {
            // WITH (FORCE) cannot run inside a transaction block.
            self.exec(
                "drop database",
                &format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    ident(&tenant.database_name())
                ),
            )
            .await?;
        }
        // DROP OWNED BY revokes the role's CONNECT, rewriting the database's ACL.
        let mut sql = format!("BEGIN; SELECT pg_advisory_xact_lock({DATABASE_ACL_LOCK});");
        sql.push_str(&format!(
            "DROP SCHEMA IF EXISTS {} CASCADE;",
            ident(&tenant.schema_name())
        ));
        if role_exists {
            sql.push_str(&format!("DROP OWNED BY {r}; DROP ROLE {r};"));
        }
        sql.push_str("COMMIT;");
        self.exec("drop schema and role", &sql).await
    }

    /// Tenant-looking schemas, databases and roles with no live tenant. Only
    /// reported: dropping data nobody asked to drop is not the platform's call.
    pub async fn orphans(&self, live: &[TenantId]) -> Result<DbOrphans, DatabaseError> {
        let live_names: Vec<String> = live.iter().map(|t| t.simple()).collect();
        let schemas: Vec<String> = sqlx::query_scalar(
            "SELECT nspname FROM pg_namespace
              WHERE nspname ~ '^tenant_[0-9a-f]{32}$' AND NOT (substr(nspname, 8) = ANY($1))
              ORDER BY 1",
        )
        .bind(&live_names)
        .fetch_all(&self.pool)
        .await
        .step("orphan schemas")?;
        let databases: Vec<String> = sqlx::query_scalar(
            "SELECT datname FROM pg_database
              WHERE datname ~ '^tenant_[0-9a-f]{32}$' AND NOT (substr(datname, 8) = ANY($1))
                AND pg_has_role(current_user, datdba, 'MEMBER')
              ORDER BY 1",
        )
        .bind(&live_names)
        .fetch_all(&self.pool)
        .await
        .step("orphan databases")?;
        // Roles of this platform database: those that may connect to it (schema
        // mode) or own a tenant database (database mode).
        let roles: Vec<String> = sqlx::query_scalar(
            "SELECT rolname FROM pg_roles r
              WHERE rolname ~ '^tenant_user_[0-9a-f]{32}$' AND NOT (substr(rolname, 13) = ANY($1))
                AND (has_database_privilege(r.oid, current_database(), 'CONNECT')
                     OR EXISTS (SELECT 1 FROM pg_database d WHERE d.datdba = r.oid))
              ORDER BY 1",
        )
        .bind(&live_names)
        .fetch_all(&self.pool)
        .await
        .step("orphan roles")?;
        Ok(DbOrphans {
            schemas,
            databases,
            roles,
        })
    }
}
