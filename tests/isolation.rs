//! A tenant's Postgres role, connecting with its own credentials, reaches its
//! own data and nothing else.

mod common;

use common::{subdomain, tenant_id, Options, Platform};

fn denied(result: Result<impl std::fmt::Debug, sqlx::Error>, what: &str) {
    match result {
        Ok(v) => panic!("{what} was allowed: {v:?}"),
        Err(sqlx::Error::Database(e)) => {
            assert_eq!(
                e.code().as_deref(),
                Some("42501"),
                "{what}: expected insufficient_privilege, got {e}"
            )
        }
        Err(e) => panic!("{what}: unexpected error {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_mode_tenant_role_is_confined_to_its_schema() {
    let p = Platform::start(Options {
        isolation: "schema",
        ..Default::default()
    })
    .await;
    let a = p.create_active(&subdomain("iso-a")).await;
    let b = p.create_active(&subdomain("iso-b")).await;
    let schema_b = tenant_id(&b).schema_name();

    // Its data is in the tenants database; the platform database is closed to it.
    match p.connect_as_tenant(&a, &p.db_name).await {
        Ok(_) => panic!("a schema-mode tenant connected to the platform database"),
        Err(sqlx::Error::Database(e)) => assert_eq!(e.code().as_deref(), Some("42501"), "{e}"),
        Err(e) => panic!("unexpected error {e}"),
    }
    let mut conn = p
        .connect_as_tenant(&a, &p.tenants_db())
        .await
        .expect("tenant A logs in to the tenants database");
    // Positive control: its own tables are readable through its search_path.
    let own: i64 = sqlx::query_scalar("SELECT count(*) FROM \"AppSettings\"")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(own, 1);

    // The platform's tables are not even in the database it reaches.
    let mut admin = p.connect_db(&p.tenants_db()).await;
    let platform_tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class WHERE relname IN ('users', 'tenants', 'api_keys')",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(
        platform_tables, 0,
        "platform tables in the tenants database"
    );
    for table in ["users", "tenants", "api_keys"] {
        match sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM public.{table}"))
            .fetch_one(&mut conn)
            .await
        {
            // Denied (public is closed to tenants there) or absent.
            Err(sqlx::Error::Database(e)) => assert!(
                matches!(e.code().as_deref(), Some("42501" | "42P01")),
                "platform {table}: {e}"
            ),
            other => panic!("platform {table} readable from the tenants database: {other:?}"),
        }
    }
    denied(
        sqlx::query_scalar::<_, i64>(&format!(
            "SELECT count(*) FROM \"{schema_b}\".\"AppSettings\""
        ))
        .fetch_one(&mut conn)
        .await,
        "reading another tenant's schema",
    );
    denied(
        sqlx::query(&format!(
            "INSERT INTO \"{schema_b}\".\"AppSettings\" (key, value) VALUES ('x', 'y')"
        ))
        .execute(&mut conn)
        .await,
        "writing another tenant's schema",
    );
    denied(
        sqlx::query("CREATE TABLE public.intruder (id int)")
            .execute(&mut conn)
            .await,
        "creating in public",
    );
    denied(
        sqlx::query(&format!("CREATE TABLE \"{schema_b}\".intruder (id int)"))
            .execute(&mut conn)
            .await,
        "creating in another tenant's schema",
    );
    // Other databases of the cluster are closed to it.
    let other = p.connect_as_tenant(&a, "postgres").await;
    assert!(other.is_err(), "tenant connected to the postgres database");
    // Role settings of the design.
    let timeout: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(timeout, "1min");
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_mode_tenant_cannot_connect_to_another_tenants_database() {
    let p = Platform::start(Options {
        isolation: "database",
        ..Default::default()
    })
    .await;
    let a = p.create_active(&subdomain("dbiso-a")).await;
    let b = p.create_active(&subdomain("dbiso-b")).await;

    let own = p
        .connect_as_tenant(&a, &tenant_id(&a).database_name())
        .await;
    assert!(
        own.is_ok(),
        "tenant A cannot reach its own database: {:?}",
        own.err()
    );
    for (database, what) in [
        (tenant_id(&b).database_name(), "another tenant's database"),
        (p.db_name.clone(), "the platform database"),
        ("postgres".to_owned(), "the postgres database"),
    ] {
        match p.connect_as_tenant(&a, &database).await {
            Ok(_) => panic!("tenant A connected to {what}"),
            Err(sqlx::Error::Database(e)) => {
                assert_eq!(e.code().as_deref(), Some("42501"), "{what}: {e}");
            }
            Err(e) => panic!("{what}: unexpected error {e}"),
        }
    }
    p.cleanup().await;
}
