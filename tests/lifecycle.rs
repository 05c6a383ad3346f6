//! A tenant's whole life through the API, checked in Docker, Postgres and Traefik.

mod common;

use std::time::Duration;

use common::{subdomain, tenant_id, through_traefik, wait_traefik, Options, Platform};
use reqwest::StatusCode;

const ROUTE_TIMEOUT: Duration = Duration::from_secs(20);

async fn table_count_in_schema(p: &Platform, database: &str, schema: &str) -> i64 {
    let mut conn = p.connect_db(database).await;
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relname IN ('AppSettings', 'Interview')",
    )
    .bind(schema)
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_tenant_becomes_active_and_is_routed_by_traefik() {
    let p = Platform::start(Options {
        isolation: "schema",
        ..Default::default()
    })
    .await;
    let sub = subdomain("route");
    let id = p.create_active(&sub).await;

    wait_traefik(&sub, "/signin", 200, ROUTE_TIMEOUT).await;
    // Fresco 3.x has no health route; the health check fell back to /signin.
    assert_eq!(through_traefik(&sub, "/api/health").await, 404);
    // The stand-in's tables landed in this tenant's own schema, in the tenants
    // database, and nothing of it in the platform database.
    let schema = tenant_id(&id).schema_name();
    assert_eq!(table_count_in_schema(&p, &p.tenants_db(), &schema).await, 2);
    assert_eq!(table_count_in_schema(&p, &p.db_name, &schema).await, 0);

    let t = p.tenant(&id).await;
    assert_eq!(t["container"]["health"], "healthy");
    assert!(
        t["setup"]["url"].as_str().unwrap().ends_with("/setup"),
        "{t}"
    );
    assert!(t["setup"]["deadline"].is_string());
    assert!(
        !t.to_string().contains(&p.tenant_password(&id).await),
        "password leaked in tenant view"
    );

    // The container carries the limits and labels of the design.
    let c = p.container(&id).await.unwrap();
    let host = c.host_config.clone().unwrap();
    assert_eq!(host.memory, Some(512 * 1024 * 1024));
    assert_eq!(host.memory_swap, Some(3 * 512 * 1024 * 1024));
    assert_eq!(host.nano_cpus, Some(500_000_000));
    assert_eq!(host.pids_limit, Some(100));
    // Hardened: no capabilities, no privilege escalation, rotated logs, not root
    // (the stand-in image's own user, as Fresco's image has its own).
    common::hardening::assert_hardened(&c, "10m", "3");
    assert_eq!(common::hardening::process_status(&c).uid, 65532);
    assert_eq!(
        host.restart_policy
            .and_then(|r| r.name)
            .map(|n| n.to_string()),
        Some("unless-stopped".to_owned())
    );
    let labels = c.config.unwrap().labels.unwrap();
    let router = tenant_id(&id).router_name();
    assert_eq!(labels["fresco-platform.managed"], "true");
    assert_eq!(labels["fresco-platform.tenant-id"], id);
    assert!(labels.contains_key("fresco-platform.spec-hash"));
    assert_eq!(
        labels[&format!("traefik.http.routers.{router}.rule")],
        format!("Host(`{sub}.fresco.localhost`)")
    );
    assert_eq!(
        labels[&format!("traefik.http.routers.{router}.middlewares")],
        "security-headers@file"
    );
    assert!(!labels.contains_key(&format!("traefik.http.routers.{router}.tls.certresolver")));
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_mode_tenant_gets_its_own_database() {
    let p = Platform::start(Options {
        isolation: "database",
        ..Default::default()
    })
    .await;
    let sub = subdomain("dbmode");
    let id = p.create_active(&sub).await;
    wait_traefik(&sub, "/signin", 200, ROUTE_TIMEOUT).await;

    let db = tenant_id(&id).database_name();
    let mut conn = p
        .connect_as_tenant(&id, &db)
        .await
        .expect("tenant connects to its own database");
    let rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM public.\"AppSettings\" WHERE key = 'initializedAt'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("stand-in tables in the public schema of the tenant database");
    assert_eq!(rows, 1);
    // The setup deadline shown is Fresco's own: initializedAt + 2 hours.
    let initialized: String =
        sqlx::query_scalar("SELECT value FROM \"AppSettings\" WHERE key = 'initializedAt'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let initialized = chrono::DateTime::parse_from_rfc3339(&initialized).unwrap();
    let t = p.tenant(&id).await;
    let deadline =
        chrono::DateTime::parse_from_rfc3339(t["setup"]["deadline"].as_str().unwrap()).unwrap();
    assert_eq!(deadline - initialized, chrono::Duration::hours(2), "{t}");
    // Nothing of the tenant in the platform database.
    assert_eq!(
        table_count_in_schema(&p, &p.db_name, &tenant_id(&id).schema_name()).await,
        0
    );
    drop(conn);

    let (status, body) = p.destroy(&id, &sub).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    p.wait_status(&id, "destroyed", Duration::from_secs(60))
        .await;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&db)
            .fetch_one(&p.pool)
            .await
            .unwrap();
    assert!(!exists, "tenant database left behind");
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_lifecycle_stops_starts_restarts_destroys_and_logs_every_step() {
    let p = Platform::start(Options::default()).await;
    let sub = subdomain("cycle");
    let id = p.create_active(&sub).await;
    let tid = tenant_id(&id);
    wait_traefik(&sub, "/signin", 200, ROUTE_TIMEOUT).await;

    // stop: container stopped, no longer routed.
    let (status, body) = p.action(&id, "stop").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    p.wait_status(&id, "stopped", Duration::from_secs(30)).await;
    let state = p.container(&id).await.unwrap().state.unwrap();
    assert_eq!(state.running, Some(false));
    wait_traefik(&sub, "/signin", 404, ROUTE_TIMEOUT).await;
    let (status, _) = p.action(&id, "stop").await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "stopping a stopped tenant makes no sense"
    );

    // start: routed again.
    let (status, body) = p.action(&id, "start").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    p.wait_status(&id, "active", Duration::from_secs(60)).await;
    wait_traefik(&sub, "/signin", 200, ROUTE_TIMEOUT).await;

    // restart: healthy again with a new start time.
    let before = p
        .container(&id)
        .await
        .unwrap()
        .state
        .unwrap()
        .started_at
        .unwrap();
    let (status, body) = p.action(&id, "restart").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let t = p.wait_status(&id, "active", Duration::from_secs(60)).await;
    let after = p.container(&id).await.unwrap().state.unwrap();
    assert_ne!(
        after.started_at.unwrap(),
        before,
        "restart did not restart the container"
    );
    assert_eq!(t["container"]["health"], "healthy");
    wait_traefik(&sub, "/signin", 200, ROUTE_TIMEOUT).await;

    // destroy: wrong confirmation refused, right one removes everything.
    let (status, _) = p.destroy(&id, "not-the-subdomain").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = p.destroy(&id, &sub).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    p.wait_status(&id, "destroyed", Duration::from_secs(60))
        .await;
    assert!(p.container(&id).await.is_none(), "container left behind");
    let schema: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(tid.schema_name())
            .fetch_one(&p.pool)
            .await
            .unwrap();
    assert!(!schema, "schema left behind");
    let role: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(tid.role_name())
            .fetch_one(&p.pool)
            .await
            .unwrap();
    assert!(!role, "role left behind");
    wait_traefik(&sub, "/signin", 404, ROUTE_TIMEOUT).await;
    let (status, _) = p.action(&id, "start").await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "starting a destroyed tenant makes no sense"
    );

    let log = p.deployments(&id).await;
    let expected: Vec<(String, String)> = [
        ("create", "initiated"),
        ("create", "success"),
        ("stop", "initiated"),
        ("stop", "success"),
        ("start", "initiated"),
        ("start", "success"),
        ("restart", "initiated"),
        ("restart", "success"),
        ("destroy", "initiated"),
        ("destroy", "success"),
    ]
    .iter()
    .map(|(a, s)| (a.to_string(), s.to_string()))
    .collect();
    assert_eq!(log, expected);
    let durations: Vec<i64> = sqlx::query_scalar(
        "SELECT (metadata->>'durationMs')::bigint FROM deployment_logs
          WHERE tenant_id = $1 AND status = 'success' ORDER BY id",
    )
    .bind(tid.0)
    .fetch_all(&p.pool)
    .await
    .unwrap();
    assert_eq!(durations.len(), 5, "every success row records its duration");

    // The subdomain is free again.
    let again = p.create_active(&sub).await;
    assert_ne!(again, id);
    wait_traefik(&sub, "/signin", 200, ROUTE_TIMEOUT).await;
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_user_and_log_rotation_reach_the_container_and_logs_rotate() {
    let p = Platform::start(Options {
        extra: vec![
            ("TENANT_USER", "4242:4242".to_owned()),
            ("TENANT_LOG_MAX_SIZE", "1m".to_owned()),
            ("TENANT_LOG_MAX_FILES", "2".to_owned()),
        ],
        ..Default::default()
    })
    .await;
    let sub = subdomain("hard");
    let id = p.create_active(&sub).await;
    let c = p.container(&id).await.unwrap();
    common::hardening::assert_hardened(&c, "1m", "2");
    assert_eq!(common::hardening::process_status(&c).uid, 4242);

    // About 9 MB of output: Docker keeps at most two files of about 1 MiB.
    let ip = common::hardening::container_ip(&c, &common::env("TENANTS_NETWORK"));
    let (status, body) = common::hardening::stand_in_get(&ip, "/stand-in/burst?n=300000").await;
    assert_eq!(status, 202, "{body}");
    let log_path = std::path::PathBuf::from(c.log_path.clone().expect("json-file log path"));
    let dir = log_path.parent().unwrap().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let logs = std::fs::read_to_string(&log_path).unwrap_or_default();
        if logs.contains("burst done 300000") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "burst did not finish");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let files: Vec<(String, u64)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("-json.log"))
        .map(|n| {
            let len = std::fs::metadata(dir.join(&n)).unwrap().len();
            (n, len)
        })
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    let total: u64 = files.iter().map(|(_, len)| len).sum();
    assert!(total <= 2 * 1024 * 1024 + 64 * 1024, "{files:?}");
    p.cleanup().await;
}
