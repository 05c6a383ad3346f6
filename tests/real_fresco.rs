//! The real Fresco 3.1.2 (built offline by `scripts/build-fresco`; `scripts/test`
//! exports its tag as `FRESCO_REAL_IMAGE`) under the platform's default settings:
//! database isolation and the default health check.

mod common;

use std::time::{Duration, Instant};

use common::{
    fetch_through_traefik, path_of, subdomain, tenant_id, wait_traefik, Options, Platform,
};
use fresco_platform::config::DEFAULT_HEALTHCHECK;
use reqwest::StatusCode;
use serde_json::json;

/// Fresco migrates and initialises before it listens: tens of seconds at 0.5 CPU.
const START_TIMEOUT: Duration = Duration::from_secs(240);
const ROUTE_TIMEOUT: Duration = Duration::from_secs(30);

fn real_fresco(isolation: &'static str) -> Options {
    Options {
        isolation,
        extra: vec![
            ("FRESCO_IMAGE", common::env("FRESCO_REAL_IMAGE")),
            ("FRESCO_HEALTHCHECK", DEFAULT_HEALTHCHECK.to_owned()),
            ("HEALTHCHECK_INTERVAL_SECS", "2".to_owned()),
            ("HEALTH_TIMEOUT_SECS", START_TIMEOUT.as_secs().to_string()),
            ("TENANT_STOP_TIMEOUT_SECS", "10".to_owned()),
        ],
        ..Default::default()
    }
}

async fn tables_named(pool: &sqlx::PgPool, table: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM information_schema.tables WHERE table_name = $1")
        .bind(table)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_fresco_runs_with_the_defaults_is_guarded_and_lives_its_lifecycle() {
    let p = Platform::start(real_fresco("database")).await;
    let sub = subdomain("fresco");
    let (status, body) = p
        .request(
            reqwest::Method::POST,
            "/api/v1/tenants",
            Some(json!({ "subdomain": sub })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let t = p.wait_status(&id, "active", START_TIMEOUT).await;
    assert_eq!(t["container"]["health"], "healthy", "{t}");

    // It started, migrated and serves with no capabilities, no privilege escalation
    // and rotated logs, as its image's own user (uid 1001).
    let c = p.container(&id).await.unwrap();
    // It started with TENANT_START_CPUS and was put back at its 0.5-CPU limit.
    assert_eq!(
        c.host_config.as_ref().and_then(|h| h.nano_cpus),
        Some(500_000_000)
    );
    common::hardening::assert_hardened(&c, "10m", "3");
    assert_eq!(common::hardening::process_status(&c).uid, 1001);

    // Fresco's own sign-in page, through Traefik; 3.x has no health route.
    wait_traefik(&sub, "/signin", 200, ROUTE_TIMEOUT).await;
    let (_, _, page) = fetch_through_traefik(&sub, "/signin", None).await;
    assert!(page.contains("<title>Fresco - Sign In</title>"), "{page}");
    assert_eq!(
        fetch_through_traefik(&sub, "/api/health", None).await.0,
        404
    );
    // `/` is a permanent redirect to the dashboard (Next streams it: the target is
    // in a Location header or, once streaming began, in the page).
    let (root, headers, body) = fetch_through_traefik(&sub, "/", None).await;
    assert_eq!(root, 308);
    assert!(
        headers.get("location").is_some_and(|l| l == "/dashboard") || body.contains("/dashboard"),
        "{headers:?} {body}"
    );

    // Its tables are in its own database, and nowhere else.
    let db = tenant_id(&id).database_name();
    let mut conn = p.connect_as_tenant(&id, &db).await.expect("own database");
    let migrations: i64 =
        sqlx::query_scalar("SELECT count(*) FROM _prisma_migrations WHERE finished_at IS NOT NULL")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(migrations, 3, "Fresco 3.1.2 has three migrations");
    let initialized: i64 =
        sqlx::query_scalar("SELECT count(*) FROM \"AppSettings\" WHERE key = 'initializedAt'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(initialized, 1, "Fresco's initialize.ts ran");
    assert_eq!(tables_named(&p.pool, "_prisma_migrations").await, 0);
    assert_eq!(tables_named(&p.pool, "AppSettings").await, 0);

    // (This test's own direct session goes first: it too comes from loopback.)
    sqlx::Connection::close(conn).await.unwrap();
    // The app reads its settings through PgBouncer: its DATABASE_URL names the
    // pooler, and the sessions serving it are PgBouncer's, from the host's
    // loopback (the container's own would come from the tenants bridge).
    let c = p.container(&id).await.unwrap();
    let env = c.config.and_then(|c| c.env).unwrap_or_default();
    let pooled = env
        .iter()
        .find_map(|e| e.strip_prefix("DATABASE_URL="))
        .unwrap();
    assert!(
        pooled.ends_with(&format!(
            ":{}/{db}?pgbouncer=true",
            common::env("TENANT_DB_POOLER_PORT")
        )),
        "DATABASE_URL does not go through PgBouncer"
    );
    assert_eq!(fetch_through_traefik(&sub, "/signin", None).await.0, 200);
    let through_bouncer: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND client_addr = '127.0.0.1'",
    )
    .bind(tenant_id(&id).role_name())
    .fetch_one(&p.pool)
    .await
    .unwrap();
    assert!(
        through_bouncer >= 1,
        "no PgBouncer session serves the real Fresco"
    );

    // Only the owner's claim reaches the real setup page.
    let (stranger, _, refusal) = fetch_through_traefik(&sub, "/setup", None).await;
    assert_eq!(stranger, 403, "{refusal}");
    let claim = p.tenant(&id).await["setup"]["claimUrl"]
        .as_str()
        .expect("claim link for the owner")
        .to_owned();
    let (owner, headers, setup) = fetch_through_traefik(&sub, &path_of(&claim), None).await;
    assert_eq!(owner, 200, "{setup}");
    assert!(
        setup.contains("Create Account"),
        "Fresco's setup page: {setup}"
    );
    assert!(headers.get("set-cookie").is_some());
    assert_eq!(
        fetch_through_traefik(&sub, &path_of(&claim), None).await.0,
        403
    );

    // Stop: no longer routed. Start: routed again.
    assert_eq!(p.action(&id, "stop").await.0, StatusCode::ACCEPTED);
    p.wait_status(&id, "stopped", Duration::from_secs(60)).await;
    wait_traefik(&sub, "/signin", 404, ROUTE_TIMEOUT).await;
    assert_eq!(p.action(&id, "start").await.0, StatusCode::ACCEPTED);
    p.wait_status(&id, "active", START_TIMEOUT).await;
    wait_traefik(&sub, "/signin", 200, ROUTE_TIMEOUT).await;
    let c = p.container(&id).await.unwrap();
    assert_eq!(c.host_config.and_then(|h| h.nano_cpus), Some(500_000_000));

    // Destroy: nothing left.
    let (status, _) = p.destroy(&id, &sub).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    p.wait_status(&id, "destroyed", Duration::from_secs(60))
        .await;
    wait_traefik(&sub, "/signin", 404, ROUTE_TIMEOUT).await;
    assert!(p.container(&id).await.is_none());
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM pg_database WHERE datname = $1)
              + (SELECT count(*) FROM pg_roles WHERE rolname = $2)",
    )
    .bind(&db)
    .bind(tenant_id(&id).role_name())
    .fetch_one(&p.pool)
    .await
    .unwrap();
    assert_eq!(left, 0, "database or role left behind");
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_fresco_in_schema_mode_ends_in_error_saying_why() {
    let p = Platform::start(real_fresco("schema")).await;
    // The harness gives schema mode the 3.0 stand-in; this test wants the real 3.1.2.
    let sub = subdomain("fschema");
    let (status, body) = p.create_tenant(&sub).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        p.tenant(&id).await["image"],
        common::env("FRESCO_REAL_IMAGE")
    );
    let started = Instant::now();
    let t = p.wait_status(&id, "error", Duration::from_secs(180)).await;
    let error = t["lastError"].as_str().unwrap();
    assert!(error.contains("exited during start-up"), "{error}");
    assert!(
        error.contains("temporary tables") || error.contains("AppSettings"),
        "Fresco's own words about why: {error}"
    );
    assert!(
        !error.contains(&p.tenant_password(&id).await),
        "password in lastError"
    );
    assert!(
        started.elapsed() < START_TIMEOUT,
        "ended by crash detection, not the timeout"
    );
    p.cleanup().await;
}

/// Rows of one of Fresco's own tables, through the tenant's own role.
async fn participants(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM \"Participant\"")
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_fresco_is_backed_up_and_restored_and_serves_the_backup_s_data() {
    let root = std::env::temp_dir().join(format!("fpt-real-backups-{}", common::random(8)));
    std::fs::create_dir_all(&root).unwrap();
    let key = root.join("key");
    std::fs::write(&key, format!("{}\n", "ab".repeat(32))).unwrap();
    let mut opts = real_fresco("database");
    opts.extra.extend([
        ("BACKUP_KEY_FILE", key.display().to_string()),
        ("BACKUP_DIR", root.join("store").display().to_string()),
        ("BACKUP_SCHEDULE", "off".to_owned()),
        ("BACKUP_TICK_SECS", "1".to_owned()),
    ]);
    let p = Platform::start(opts).await;
    let sub = subdomain("fresco-bk");
    let id = p.create_active(&sub).await;
    wait_traefik(&sub, "/signin", 200, ROUTE_TIMEOUT).await;
    let db = tenant_id(&id).database_name();
    let mut conn = p.connect_as_tenant(&id, &db).await.unwrap();
    sqlx::query(
        "INSERT INTO \"Participant\" (id, identifier, label)
         SELECT 'p' || g, 'participant-' || g, 'Participant ' || g FROM generate_series(1, 20) g",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let newest: String = sqlx::query_scalar(
        "SELECT migration_name FROM _prisma_migrations ORDER BY finished_at DESC, migration_name DESC LIMIT 1",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();

    let (status, b) = p
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/tenants/{id}/backups"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{b}");
    let backup = b["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let b = loop {
        let (_, list) = p
            .request(
                reqwest::Method::GET,
                &format!("/api/v1/tenants/{id}/backups"),
                None,
            )
            .await;
        let b = list["data"][0].clone();
        if b["status"] == "complete" {
            break b;
        }
        assert!(
            b["status"] != "failed" && Instant::now() < deadline,
            "{b:#}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // The manifest knows Fresco's schema version and its tables.
    assert_eq!(b["schemaVersion"], newest.as_str(), "{b:#}");
    assert_eq!(b["frescoImage"], common::env("FRESCO_REAL_IMAGE").as_str());
    assert_eq!(b["rowCounts"]["Participant"], 20, "{b:#}");
    assert_eq!(b["rowCounts"]["_prisma_migrations"], 3, "{b:#}");

    sqlx::query("INSERT INTO \"Participant\" (id, identifier) VALUES ('late', 'after-the-backup')")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::Connection::close(conn).await.unwrap();
    let (status, r) = p
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/tenants/{id}/backups/{backup}/restore"),
            Some(json!({ "into": "same" })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{r}");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let (_, list) = p
            .request(
                reqwest::Method::GET,
                &format!("/api/v1/tenants/{id}/restores"),
                None,
            )
            .await;
        let r = list["data"][0].clone();
        if r["phase"] == "done" {
            break;
        }
        assert!(r["phase"] != "failed" && Instant::now() < deadline, "{r:#}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let t = p.wait_status(&id, "active", START_TIMEOUT).await;
    assert_eq!(t["container"]["health"], "healthy", "{t}");
    // The real app serves again on the restored database, which is the backup's.
    wait_traefik(&sub, "/signin", 200, ROUTE_TIMEOUT).await;
    let (_, _, page) = fetch_through_traefik(&sub, "/signin", None).await;
    assert!(page.contains("<title>Fresco - Sign In</title>"), "{page}");
    let mut conn = p.connect_as_tenant(&id, &db).await.unwrap();
    assert_eq!(participants(&mut conn).await, 20);
    let late: i64 = sqlx::query_scalar("SELECT count(*) FROM \"Participant\" WHERE id = 'late'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(late, 0);
    sqlx::Connection::close(conn).await.unwrap();
    p.cleanup().await;
    let _ = std::fs::remove_dir_all(&root);
}
