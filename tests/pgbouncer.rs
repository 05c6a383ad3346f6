//! PgBouncer in front of each Postgres cluster of the stack (scripts/lib/stack.sh):
//! a tenant role signs in through it with its own password, which PgBouncer looks
//! up as `fresco_pgbouncer_auth` through `pgbouncer.get_auth` (auth_query, SCRAM),
//! and runs queries; a wrong password, the platform role and the superuser are
//! refused. Then what transaction pooling in PgBouncer 1.18 (no support for
//! prepared statements) does to sqlx's extended-protocol queries, proved rather
//! than assumed: those tests describe PgBouncer's behaviour and fail when it changes
//! (e.g. a PgBouncer with `max_prepared_statements`), which is the point.
//!
//! Each test makes its own tenant role and database (`tenant_user_<hex>`,
//! `tenant_<hex>`) as the platform role, the way src/provision/database.rs does,
//! and drops them afterwards, also when it fails.

mod common;

use std::panic::AssertUnwindSafe;
use std::process::Command;

use futures::FutureExt;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use common::env;

/// One Postgres cluster and the PgBouncer in front of it.
struct Cluster {
    name: &'static str,
    /// The platform role (CREATEROLE, CREATEDB), database `postgres`.
    admin_url: String,
    pg_port: u16,
    pgbouncer_port: u16,
    /// A psql command line on PgBouncer's admin console (FP_PGBOUNCER*_ADMIN).
    pgbouncer_admin: String,
}

fn port(name: &str) -> u16 {
    env(name)
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a port"))
}

fn main_cluster() -> Cluster {
    Cluster {
        name: "pg",
        admin_url: env("FP_TEST_ADMIN_DATABASE_URL"),
        pg_port: port("FP_PG_PORT"),
        pgbouncer_port: port("FP_PGBOUNCER_PORT"),
        pgbouncer_admin: env("FP_PGBOUNCER_ADMIN"),
    }
}

/// The main cluster and the two of `stack_extra_postgres` (scripts/test starts them).
fn clusters() -> Vec<Cluster> {
    vec![
        main_cluster(),
        Cluster {
            name: "pg2",
            admin_url: env("FP_PG2_ADMIN_URL"),
            pg_port: port("FP_PG2_PORT"),
            pgbouncer_port: port("FP_PGBOUNCER2_PORT"),
            pgbouncer_admin: env("FP_PGBOUNCER2_ADMIN"),
        },
        Cluster {
            name: "pg3",
            admin_url: env("FP_PG3_ADMIN_URL"),
            pg_port: port("FP_PG3_PORT"),
            pgbouncer_port: port("FP_PGBOUNCER3_PORT"),
            pgbouncer_admin: env("FP_PGBOUNCER3_ADMIN"),
        },
    ]
}

impl Cluster {
    /// `SHOW <what>` on the admin console, as rows of `|`-separated fields.
    fn pgbouncer_show(&self, what: &str) -> Vec<Vec<String>> {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{} -A -t -c 'SHOW {what}'", self.pgbouncer_admin))
            .output()
            .expect("sh runs");
        assert!(
            out.status.success(),
            "{}: SHOW {what} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('|').map(str::to_owned).collect())
            .collect()
    }
}

/// A tenant role and database on one cluster, made as the platform role.
struct Tenant {
    admin_url: String,
    role: String,
    database: String,
    password: String,
}

impl Tenant {
    async fn create(cluster: &Cluster) -> Tenant {
        let hex = uuid::Uuid::new_v4().simple().to_string();
        let t = Tenant {
            admin_url: cluster.admin_url.clone(),
            role: format!("tenant_user_{hex}"),
            database: format!("tenant_{hex}"),
            password: common::random(24),
        };
        let mut admin = PgConnection::connect(&t.admin_url)
            .await
            .expect("platform role connects");
        // As the platform does: a SCRAM verifier computed here, never the plaintext.
        let verifier = postgres_protocol::password::scram_sha_256(t.password.as_bytes());
        let (r, d) = (&t.role, &t.database);
        sqlx::raw_sql(&format!(
            "CREATE ROLE \"{r}\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE CONNECTION LIMIT 20 \
                 PASSWORD '{verifier}';
             GRANT \"{r}\" TO CURRENT_USER;"
        ))
        .execute(&mut admin)
        .await
        .expect("create tenant role");
        sqlx::raw_sql(&format!("CREATE DATABASE \"{d}\" OWNER \"{r}\""))
            .execute(&mut admin)
            .await
            .expect("create tenant database");
        sqlx::raw_sql(&format!(
            "REVOKE ALL ON DATABASE \"{d}\" FROM PUBLIC;
             GRANT CONNECT, TEMPORARY ON DATABASE \"{d}\" TO \"{r}\";
             GRANT CONNECT ON DATABASE \"{d}\" TO fresco_pgbouncer_auth;"
        ))
        .execute(&mut admin)
        .await
        .expect("grant CONNECT to the tenant and to PgBouncer's auth role");
        let _ = admin.close().await;
        t
    }

    /// Drops the database and the role, as the platform role (what exists).
    async fn drop_all(&self) -> Result<(), sqlx::Error> {
        let mut admin = PgConnection::connect(&self.admin_url).await?;
        let (r, d) = (&self.role, &self.database);
        // Two statements: DROP DATABASE cannot run in a multi-statement query.
        let mut dropped = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{d}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await;
        if dropped.is_ok() {
            dropped = sqlx::raw_sql(&format!("DROP ROLE IF EXISTS \"{r}\""))
                .execute(&mut admin)
                .await;
        }
        let _ = admin.close().await;
        dropped.map(|_| ())
    }

    fn options(&self, port: u16) -> PgConnectOptions {
        PgConnectOptions::new()
            .host("127.0.0.1")
            .port(port)
            .username(&self.role)
            .password(&self.password)
            .database(&self.database)
    }
}

/// Runs `body` with a fresh tenant on `cluster`, then drops the tenant, also when
/// `body` panicked.
async fn with_tenant<F, Fut>(cluster: &Cluster, body: F)
where
    F: FnOnce(Tenant) -> Fut,
    Fut: std::future::Future<Output = Tenant>,
{
    let tenant = Tenant::create(cluster).await;
    let cleanup = Tenant {
        admin_url: tenant.admin_url.clone(),
        role: tenant.role.clone(),
        database: tenant.database.clone(),
        password: String::new(),
    };
    let outcome = AssertUnwindSafe(body(tenant)).catch_unwind().await;
    let dropped = cleanup.drop_all().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    dropped.expect("clean-up: drop the tenant database and role as the platform role");
}

/// The message of a refused sign-in, or a panic when it was not refused.
fn refused(result: Result<PgConnection, sqlx::Error>, what: &str) -> String {
    match result {
        Ok(_) => panic!("{what}: signed in"),
        Err(sqlx::Error::Database(e)) => e.message().to_owned(),
        Err(e) => panic!("{what}: not refused by the server but {e}"),
    }
}

/// The SQLSTATE of a failed statement, or a panic when it succeeded.
fn sqlstate<T: std::fmt::Debug>(result: Result<T, sqlx::Error>, what: &str) -> String {
    match result {
        Ok(v) => panic!("{what}: succeeded with {v:?}"),
        Err(sqlx::Error::Database(e)) => e.code().map(|c| c.into_owned()).unwrap_or_default(),
        Err(e) => panic!("{what}: unexpected error {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_signs_in_through_each_clusters_pgbouncer_and_runs_a_parameterised_query() {
    for cluster in clusters() {
        let name = cluster.name;
        let (pg_port, pgbouncer_port) = (cluster.pg_port, cluster.pgbouncer_port);
        with_tenant(&cluster, |t| async move {
            // sqlx sends extra_float_digits at start-up: PgBouncer would refuse the
            // connection if that were not among its ignore_startup_parameters.
            let mut conn = PgConnection::connect_with(&t.options(pgbouncer_port))
                .await
                .unwrap_or_else(|e| panic!("{name}: tenant through PgBouncer: {e}"));
            let (user, database, server_port): (String, String, i32) = sqlx::query_as(
                "SELECT current_user::text, current_database()::text, inet_server_port()",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap();
            assert_eq!(user, t.role, "{name}");
            assert_eq!(database, t.database, "{name}");
            // Connected to PgBouncer's port, served by this cluster's Postgres.
            assert_ne!(pgbouncer_port, pg_port);
            assert_eq!(
                server_port,
                i32::from(pg_port),
                "{name}: served by another cluster"
            );
            // Parameters: one client alone on its database keeps getting the same
            // server connection, so its prepared statements are found there.
            for i in 0..3 {
                let n: i32 = sqlx::query_scalar("SELECT $1::int4 + $2::int4")
                    .bind(i)
                    .bind(40)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{name}: parameterised query {i}: {e}"));
                assert_eq!(n, i + 40, "{name}");
            }
            // The tenant cannot call the lookup function itself.
            let code = sqlstate(
                sqlx::query_scalar::<_, String>("SELECT passwd FROM pgbouncer.get_auth($1)")
                    .bind("fresco_platform")
                    .fetch_optional(&mut conn)
                    .await,
                "tenant calls pgbouncer.get_auth",
            );
            assert_eq!(code, "42501", "{name}: expected insufficient_privilege");
            let _ = conn.close().await;
            t
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbouncer_lists_the_tenants_pool_on_its_admin_console() {
    let cluster = main_cluster();
    let port = cluster.pgbouncer_port;
    let admin = &cluster;
    with_tenant(&cluster, |t| async move {
        let mut conn = PgConnection::connect_with(&t.options(port)).await.unwrap();
        sqlx::raw_sql("SELECT 1").execute(&mut conn).await.unwrap();
        // SHOW POOLS: database | user | cl_active | ... ; the tenant's own pool.
        let pools = admin.pgbouncer_show("POOLS");
        let pool = pools
            .iter()
            .find(|row| row[0] == t.database && row[1] == t.role)
            .unwrap_or_else(|| panic!("no pool for the tenant in {pools:?}"));
        assert_eq!(
            pool.last().map(String::as_str),
            Some("transaction"),
            "{pool:?}"
        );
        // Its limits as configured: SHOW CONFIG rows are key | value | default | changeable.
        let config = admin.pgbouncer_show("CONFIG");
        let value = |key: &str| {
            config
                .iter()
                .find(|row| row[0] == key)
                .map(|row| row[1].clone())
                .unwrap_or_else(|| panic!("{key} not in SHOW CONFIG"))
        };
        assert_eq!(value("pool_mode"), "transaction");
        assert_eq!(value("auth_type"), "scram-sha-256");
        assert_eq!(value("auth_user"), "fresco_pgbouncer_auth");
        assert_eq!(value("default_pool_size"), value("max_db_connections"));
        let _ = conn.close().await;
        t
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbouncer_refuses_a_wrong_tenant_password() {
    let cluster = main_cluster();
    let port = cluster.pgbouncer_port;
    with_tenant(&cluster, |t| async move {
        let wrong = t.options(port).password("not-the-password");
        let message = refused(PgConnection::connect_with(&wrong).await, "wrong password");
        assert!(
            message.contains("authentication failed"),
            "unexpected refusal: {message}"
        );
        // Control: the same options with the right password sign in.
        let conn = PgConnection::connect_with(&t.options(port)).await;
        assert!(conn.is_ok(), "right password refused: {:?}", conn.err());
        t
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbouncer_refuses_the_platform_role_which_postgres_itself_accepts() {
    let cluster = main_cluster();
    let (pg_port, pgbouncer_port) = (cluster.pg_port, cluster.pgbouncer_port);
    let platform: PgConnectOptions = cluster.admin_url.parse().unwrap();
    with_tenant(&cluster, |t| async move {
        // The platform role may connect to the tenant database (it is a member of
        // the tenant role), with the right password...
        let direct = platform.clone().port(pg_port).database(&t.database);
        let conn = PgConnection::connect_with(&direct).await;
        assert!(
            conn.is_ok(),
            "platform role refused by Postgres: {:?}",
            conn.err()
        );
        // ...but pgbouncer.get_auth returns nothing for it, so PgBouncer knows no
        // such user. (In a database where the auth role may not connect, such as
        // postgres, PgBouncer cannot even ask, and nobody gets in.)
        let through = platform.clone().port(pgbouncer_port).database(&t.database);
        let message = refused(
            PgConnection::connect_with(&through).await,
            "platform role through PgBouncer",
        );
        assert!(
            message.contains("no such user"),
            "unexpected refusal: {message}"
        );
        t
    })
    .await;
}

/// PgBouncer keeps its auth_query connection (as fresco_pgbouncer_auth) in the
/// tenant's database after the tenant signed in. The platform's teardown,
/// `DROP DATABASE ... WITH (FORCE)`, has to end it: Postgres 15 lets it only as a
/// member of that role, which scripts/lib/stack.sh makes the platform role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_role_drops_a_tenant_database_pgbouncer_is_connected_to() {
    let cluster = main_cluster();
    let port = cluster.pgbouncer_port;
    let tenant = Tenant::create(&cluster).await;
    let mut conn = PgConnection::connect_with(&tenant.options(port))
        .await
        .unwrap();
    sqlx::raw_sql("SELECT 1").execute(&mut conn).await.unwrap();
    let _ = conn.close().await;
    let mut admin = PgConnection::connect(&cluster.admin_url).await.unwrap();
    let sessions: Vec<String> = sqlx::query_scalar(
        "SELECT usename::text FROM pg_stat_activity WHERE datname = $1 ORDER BY 1",
    )
    .bind(&tenant.database)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(
        sessions.iter().any(|u| u == "fresco_pgbouncer_auth"),
        "no auth_query connection into the tenant database: {sessions:?}"
    );
    let dropped = sqlx::raw_sql(&format!(
        "DROP DATABASE \"{}\" WITH (FORCE)",
        tenant.database
    ))
    .execute(&mut admin)
    .await;
    let _ = admin.close().await;
    // Whatever happened, the tenant goes (what is gone already is skipped).
    let cleanup = tenant.drop_all().await;
    dropped.expect("the platform role drops the database PgBouncer is connected to");
    cleanup.expect("clean-up: drop the tenant role");
}

/// sqlx names its prepared statements `sqlx_s_1`, `sqlx_s_2`, ... per connection
/// and caches them. In transaction pooling a server connection passes from client
/// to client after each transaction (here: each Sync outside a transaction), and
/// PgBouncer 1.18 does not track statements, so a second client meets the first
/// one's `sqlx_s_1` on the server connection it inherits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlx_prepared_statements_of_two_clients_collide_through_pgbouncer_1_18() {
    let cluster = main_cluster();
    let port = cluster.pgbouncer_port;
    with_tenant(&cluster, |t| async move {
        let mut a = PgConnection::connect_with(&t.options(port)).await.unwrap();
        let mut b = PgConnection::connect_with(&t.options(port)).await.unwrap();
        let one: i32 = sqlx::query_scalar("SELECT $1::int4")
            .bind(1)
            .fetch_one(&mut a)
            .await
            .expect("first client's statement");
        assert_eq!(one, 1);
        // B gets the only server connection of the pool, where A's sqlx_s_1 lives.
        let code = sqlstate(
            sqlx::query_scalar::<_, i32>("SELECT $1::int4 * 2")
                .bind(2)
                .fetch_one(&mut b)
                .await,
            "second client's first statement",
        );
        assert_eq!(code, "42P05", "expected duplicate_prepared_statement");
        t
    })
    .await;
}

/// A statement sqlx prepared and cached is on one server connection; when that one
/// is busy with another client's transaction, the next use lands on another server
/// connection, where it does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_sqlx_statement_is_missing_on_another_server_connection() {
    let cluster = main_cluster();
    let port = cluster.pgbouncer_port;
    with_tenant(&cluster, |t| async move {
        let mut a = PgConnection::connect_with(&t.options(port)).await.unwrap();
        let mut b = PgConnection::connect_with(&t.options(port)).await.unwrap();
        let query = "SELECT $1::int4 + 1";
        let n: i32 = sqlx::query_scalar(query)
            .bind(1)
            .fetch_one(&mut a)
            .await
            .unwrap();
        assert_eq!(n, 2);
        // B holds that server connection in a transaction (simple protocol: no
        // statement of its own).
        sqlx::raw_sql("BEGIN").execute(&mut b).await.unwrap();
        let held: i32 = sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
            .persistent(false)
            .fetch_one(&mut b)
            .await
            .unwrap();
        // A reuses its cached sqlx_s_1: Bind on a new server connection.
        let code = sqlstate(
            sqlx::query_scalar::<_, i32>(query)
                .bind(2)
                .fetch_one(&mut a)
                .await,
            "cached statement on another server connection",
        );
        assert_eq!(code, "26000", "expected invalid_sql_statement_name");
        let pid: i32 = sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
            .persistent(false)
            .fetch_one(&mut b)
            .await
            .unwrap();
        assert_eq!(
            pid, held,
            "B kept its server connection for its transaction"
        );
        sqlx::raw_sql("COMMIT").execute(&mut b).await.unwrap();
        t
    })
    .await;
}

/// What does work through transaction pooling from sqlx: unnamed statements
/// (`persistent(false)`) inside an explicit transaction, where PgBouncer keeps the
/// client on one server connection from BEGIN to COMMIT, and the simple protocol
/// (`raw_sql`, no parameters). Two clients interleaved, sharing server connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnamed_statements_in_transactions_and_simple_queries_work_through_pgbouncer() {
    let cluster = main_cluster();
    let port = cluster.pgbouncer_port;
    with_tenant(&cluster, |t| async move {
        let mut a = PgConnection::connect_with(&t.options(port)).await.unwrap();
        let mut b = PgConnection::connect_with(&t.options(port)).await.unwrap();
        for round in 0..5 {
            for (who, conn) in [("a", &mut a), ("b", &mut b)] {
                let mut tx = conn.begin().await.unwrap();
                let n: i32 = sqlx::query_scalar("SELECT $1::int4 * 10")
                    .bind(round)
                    .persistent(false)
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap_or_else(|e| panic!("{who}, round {round}: {e}"));
                assert_eq!(n, round * 10);
                tx.commit().await.unwrap();
                sqlx::raw_sql("SELECT 1")
                    .execute(&mut *conn)
                    .await
                    .unwrap_or_else(|e| panic!("{who}, round {round}, simple query: {e}"));
            }
        }
        t
    })
    .await;
}

/// PgBouncer drops the `options` start-up parameter instead of refusing the client
/// (ignore_startup_parameters), so settings sent that way never reach the server:
/// a role's own settings (ALTER ROLE ... SET) are what applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_options_are_dropped_by_pgbouncer_but_honoured_by_postgres() {
    let cluster = main_cluster();
    let (pg_port, pgbouncer_port) = (cluster.pg_port, cluster.pgbouncer_port);
    with_tenant(&cluster, |t| async move {
        let setting = [("statement_timeout", "4321ms")];
        let show = "SELECT current_setting('statement_timeout')";
        let mut direct = PgConnection::connect_with(&t.options(pg_port).options(setting))
            .await
            .unwrap();
        let value: String = sqlx::query_scalar(show)
            .fetch_one(&mut direct)
            .await
            .unwrap();
        assert_eq!(value, "4321ms", "Postgres applies options");
        let mut pooled = PgConnection::connect_with(&t.options(pgbouncer_port).options(setting))
            .await
            .expect("PgBouncer accepts a client that sends options");
        let value: String = sqlx::query_scalar(show)
            .persistent(false)
            .fetch_one(&mut pooled)
            .await
            .unwrap();
        assert_ne!(value, "4321ms", "PgBouncer passed options on");
        t
    })
    .await;
}
