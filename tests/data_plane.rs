//! The tenant data plane against three real Postgres clusters (the main one and
//! the two `scripts/test` starts beside it, each with its PgBouncer): placement
//! on the least-loaded server, a move with data in it, a control plane killed in
//! the middle of a move, a drain, and what a tenant's own credentials cannot do
//! to the platform.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::servers::{add_server, cluster, with_database};
use common::{env, subdomain, tenant_id, wait_traefik, Options, Platform};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};

const ROUTE_TIMEOUT: Duration = Duration::from_secs(30);

async fn servers(p: &Platform) -> BTreeMap<String, Value> {
    let (status, body) = p
        .request(Method::GET, "/api/v1/admin/db-servers", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_owned(), s.clone()))
        .collect()
}

async fn patch_server(p: &Platform, name: &str, change: Value) {
    let (status, body) = p
        .request(
            Method::PATCH,
            &format!("/api/v1/admin/db-servers/{name}"),
            Some(change),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The server (its name) a tenant's row says its data is on.
async fn server_of(p: &Platform, id: &str) -> String {
    sqlx::query_scalar(
        "SELECT s.name FROM tenants t JOIN db_servers s ON s.id = t.db_server_id WHERE t.id = $1",
    )
    .bind(tenant_id(id).0)
    .fetch_one(&p.pool)
    .await
    .unwrap()
}

/// The admin URL of a server by name (default: the main cluster).
fn admin_url_of(p: &Platform, server: &str) -> String {
    match server {
        "default" => p.db_url.clone(),
        "pg2" => cluster(2).1,
        "pg3" => cluster(3).1,
        other => panic!("unknown server {other}"),
    }
}

async fn database_exists(p: &Platform, server: &str, db: &str) -> bool {
    let mut conn = PgConnection::connect(&admin_url_of(p, server))
        .await
        .unwrap();
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(db)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

async fn role_exists(p: &Platform, server: &str, role: &str) -> bool {
    let mut conn = PgConnection::connect(&admin_url_of(p, server))
        .await
        .unwrap();
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
        .bind(role)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

/// A connection to the tenant's own database on `server` as the platform role.
async fn tenant_db(p: &Platform, server: &str, id: &str) -> PgConnection {
    let url = with_database(&admin_url_of(p, server), &tenant_id(id).database_name());
    PgConnection::connect(&url).await.unwrap()
}

/// Puts data in a tenant's database the way its app would (as its own role):
/// interviews, and a table of its own with about `kib` KiB of notes.
async fn write_data(p: &Platform, id: &str, kib: usize) {
    write_data_on(p, &env("FP_PG_PORT"), id, kib).await
}

/// The same on the cluster listening on `port`.
async fn write_data_on(p: &Platform, port: &str, id: &str, kib: usize) {
    let mut conn = p
        .connect_as_tenant_on(id, port, &tenant_id(id).database_name())
        .await
        .expect("tenant connects to its own database");
    sqlx::raw_sql(
        "INSERT INTO \"Interview\" (id) SELECT 'iv-' || g FROM generate_series(1, 300) g;
         CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL);",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO notes (body) SELECT repeat(md5(g::text), 32) FROM generate_series(1, $1) g",
    )
    .bind(kib as i32)
    .execute(&mut conn)
    .await
    .unwrap();
}

/// What a tenant's data is: every row of its tables, hashed per table.
async fn fingerprint(conn: &mut PgConnection) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for table in ["AppSettings", "Interview", "notes"] {
        let digest: String = sqlx::query_scalar(&format!(
            "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '')
               FROM \"{table}\" t"
        ))
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        out.insert(table.to_owned(), digest);
    }
    out
}

async fn env_of(p: &Platform, id: &str, key: &str) -> String {
    let c = p.container(id).await.expect("container");
    c.config
        .and_then(|c| c.env)
        .unwrap_or_default()
        .iter()
        .find_map(|e| e.strip_prefix(&format!("{key}=")).map(str::to_owned))
        .unwrap_or_else(|| panic!("{key} not in the container's env"))
}

async fn request_move(p: &Platform, id: &str, to: &str) -> Value {
    let (status, body) = p
        .request(
            Method::POST,
            &format!("/api/v1/admin/tenants/{id}/move"),
            Some(json!({ "server": to })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body
}

async fn moves(p: &Platform, id: &str) -> Vec<Value> {
    let (status, body) = p
        .request(
            Method::GET,
            &format!("/api/v1/admin/tenants/{id}/moves"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].as_array().unwrap().clone()
}

async fn wait_move(p: &Platform, id: &str, phase: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let all = moves(p, id).await;
        if let Some(m) = all.first() {
            if m["phase"] == phase {
                return m.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "move never reached {phase}: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_tenants_go_to_the_least_loaded_server_and_each_records_where_it_lives() {
    let p = Platform::start(Options::default()).await;
    // The platform's own server takes one; the others five each.
    patch_server(&p, "default", json!({ "capacity": 1 })).await;
    add_server(&p, 2, 5);
    add_server(&p, 3, 5);

    let mut placed = Vec::new();
    for label in ["place-a", "place-b", "place-c"] {
        let sub = subdomain(label);
        let id = p.create_active(&sub).await;
        placed.push((sub, id.clone(), server_of(&p, &id).await));
    }
    let names: Vec<&str> = placed.iter().map(|(_, _, s)| s.as_str()).collect();
    // Ties go to the older server; then the share of capacity decides.
    assert_eq!(names, ["default", "pg2", "pg3"]);
    let listed = servers(&p).await;
    for name in ["default", "pg2", "pg3"] {
        assert_eq!(listed[name]["tenants"], 1, "{listed:?}");
    }
    assert!(
        !listed["pg2"].to_string().contains("fresco-dev-password"),
        "the admin API shows a server's password"
    );
    assert_eq!(
        listed["pg2"]["admin"],
        format!("fresco_platform@127.0.0.1:{}/postgres", cluster(2).2)
    );

    // The tenant on pg3 lives there and only there, and runs through pg3's PgBouncer.
    let (sub, id, _) = &placed[2];
    let db = tenant_id(id).database_name();
    assert!(database_exists(&p, "pg3", &db).await);
    assert!(!database_exists(&p, "default", &db).await);
    assert!(!database_exists(&p, "pg2", &db).await);
    let pooled = env_of(&p, id, "DATABASE_URL").await;
    let direct = env_of(&p, id, "DATABASE_URL_UNPOOLED").await;
    assert!(
        pooled.contains(&format!(":{}/{db}?pgbouncer=true", cluster(3).3)),
        "DATABASE_URL goes to pg3's PgBouncer"
    );
    assert!(
        direct.contains(&format!(":{}/{db}", cluster(3).2)),
        "DATABASE_URL_UNPOOLED goes to pg3"
    );
    wait_traefik(sub, "/signin", 200, ROUTE_TIMEOUT).await;

    // No room anywhere: a new tenant ends in error saying what to do.
    for name in ["pg2", "pg3"] {
        patch_server(&p, name, json!({ "draining": true })).await;
    }
    let (status, body) = p.create_tenant(&subdomain("place-full")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let t = p
        .wait_status(
            body["id"].as_str().unwrap(),
            "error",
            Duration::from_secs(60),
        )
        .await;
    let error = t["lastError"].as_str().unwrap();
    assert!(error.contains("no database server has room"), "{error}");
    assert!(error.contains("db-servers add"), "{error}");

    // The CLI lists them through the API.
    let out = Command::new(env!("CARGO_BIN_EXE_fresco-platform"))
        .args(["db-servers", "list"])
        .env("FRESCO_PLATFORM_URL", &p.base)
        .env("FRESCO_API_KEY", &p.key)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{listing}");
    assert!(
        listing.contains("pg3") && listing.contains("draining"),
        "{listing}"
    );
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_tenant_keeps_its_data_and_the_old_copy_goes_once_it_is_healthy() {
    let p = Platform::start(Options::default()).await;
    add_server(&p, 2, 10);
    let sub = subdomain("move");
    let id = p.create_active(&sub).await;
    assert_eq!(server_of(&p, &id).await, "default");
    write_data(&p, &id, 512).await;
    let before = fingerprint(&mut tenant_db(&p, "default", &id).await).await;

    let asked = request_move(&p, &id, "pg2").await;
    assert_eq!(asked["fromServer"], "default");
    assert_eq!(asked["toServer"], "pg2");
    // While it moves, owners' actions wait.
    let (status, _) = p.action(&id, "restart").await;
    assert_eq!(status, StatusCode::CONFLICT);
    let done = wait_move(&p, &id, "done", Duration::from_secs(120)).await;
    let t = p.wait_status(&id, "active", Duration::from_secs(60)).await;
    assert!(done["dumpBytes"].as_i64().unwrap() > 5_000, "{done}");
    assert_eq!(done["rowCounts"]["notes"], 512, "{done}");
    assert_eq!(done["rowCounts"]["Interview"], 300, "{done}");

    // The data on pg2 is the data that was on the default server, row for row.
    let after = fingerprint(&mut tenant_db(&p, "pg2", &id).await).await;
    assert_eq!(before, after);
    assert_eq!(server_of(&p, &id).await, "pg2");
    let db = tenant_id(&id).database_name();
    assert!(
        !database_exists(&p, "default", &db).await,
        "old copy left behind"
    );
    assert!(
        !role_exists(&p, "default", &tenant_id(&id).role_name()).await,
        "old role left behind"
    );
    assert!(role_exists(&p, "pg2", &tenant_id(&id).role_name()).await);
    assert!(env_of(&p, &id, "DATABASE_URL_UNPOOLED")
        .await
        .contains(&format!(":{}/", cluster(2).2)));
    // The tenant's own password works on its new server.
    let own = p.connect_as_tenant_on(&id, &cluster(2).2, &db).await;
    assert!(own.is_ok(), "{:?}", own.err());
    wait_traefik(&sub, "/signin", 200, ROUTE_TIMEOUT).await;
    assert_eq!(t["status"], "active");
    let log = p.deployments(&id).await;
    assert!(
        log.ends_with(&[
            ("move".into(), "initiated".into()),
            ("move".into(), "success".into())
        ]),
        "{log:?}"
    );
    // A move to where it is already is refused.
    let (status, body) = p
        .request(
            Method::POST,
            &format!("/api/v1/admin/tenants/{id}/move"),
            Some(json!({ "server": "pg2" })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "already_there");
    let (status, body) = p
        .request(
            Method::POST,
            &format!("/api/v1/admin/tenants/{id}/move"),
            Some(json!({ "server": "nowhere" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Members cannot move tenants.
    let member = p
        .verified_member("mover@test.invalid", "a long password 1")
        .await;
    let (status, _) = p
        .request_as(
            Some(&member.key),
            Method::POST,
            &format!("/api/v1/admin/tenants/{id}/move"),
            Some(json!({ "server": "default" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_killed_in_the_middle_of_a_move_converges_on_one_copy() {
    let mut p = Platform::start(Options {
        process: true,
        ..Default::default()
    })
    .await;
    add_server(&p, 3, 10);
    let sub = subdomain("movekill");
    let id = p.create_active(&sub).await;
    // Enough data that the copy takes a moment.
    write_data(&p, &id, 8192).await;
    let before = fingerprint(&mut tenant_db(&p, "default", &id).await).await;
    request_move(&p, &id, "pg3").await;
    // Kill it as soon as the move is under way (container stopped, copy begun).
    let deadline = Instant::now() + Duration::from_secs(60);
    let phase = loop {
        let phase: String =
            sqlx::query_scalar("SELECT phase FROM tenant_moves WHERE tenant_id = $1")
                .bind(tenant_id(&id).0)
                .fetch_one(&p.pool)
                .await
                .unwrap();
        if phase != "pending" {
            break phase;
        }
        assert!(Instant::now() < deadline, "the move never began");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    p.kill_server().await;
    // Whatever it had done, the tenant row names exactly one copy, and that
    // copy is whole.
    let authoritative = server_of(&p, &id).await;
    let db = tenant_id(&id).database_name();
    assert!(
        database_exists(&p, &authoritative, &db).await,
        "killed at {phase}"
    );
    assert_eq!(
        before,
        fingerprint(&mut tenant_db(&p, &authoritative, &id).await).await,
        "killed at {phase}"
    );
    p.start_server().await;
    wait_move(&p, &id, "done", Duration::from_secs(120)).await;
    p.wait_status(&id, "active", Duration::from_secs(60)).await;
    assert_eq!(server_of(&p, &id).await, "pg3");
    assert_eq!(
        before,
        fingerprint(&mut tenant_db(&p, "pg3", &id).await).await
    );
    assert!(
        !database_exists(&p, "default", &db).await,
        "old copy left behind"
    );
    wait_traefik(&sub, "/signin", 200, ROUTE_TIMEOUT).await;
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_a_server_moves_every_tenant_off_it() {
    let p = Platform::start(Options::default()).await;
    add_server(&p, 2, 10);
    add_server(&p, 3, 10);
    // Both tenants on pg2: the others take none meanwhile.
    for name in ["default", "pg3"] {
        patch_server(&p, name, json!({ "draining": true })).await;
    }
    let a = p.create_active(&subdomain("drain-a")).await;
    let b = p.create_active(&subdomain("drain-b")).await;
    assert_eq!(server_of(&p, &a).await, "pg2");
    assert_eq!(server_of(&p, &b).await, "pg2");
    write_data_on(&p, &cluster(2).2, &a, 64).await;
    let before = fingerprint(&mut tenant_db(&p, "pg2", &a).await).await;
    for name in ["default", "pg3"] {
        patch_server(&p, name, json!({ "draining": false })).await;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_fresco-platform"))
        .args(["db-servers", "drain", "pg2"])
        .env("FRESCO_PLATFORM_URL", &p.base)
        .env("FRESCO_API_KEY", &p.key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for id in [&a, &b] {
        let m = wait_move(&p, id, "done", Duration::from_secs(120)).await;
        assert!(m["reason"].as_str().unwrap().contains("drain"), "{m}");
        p.wait_status(id, "active", Duration::from_secs(60)).await;
    }
    let mut landed = vec![server_of(&p, &a).await, server_of(&p, &b).await];
    landed.sort();
    // The least loaded first: one each.
    assert_eq!(landed, ["default", "pg3"]);
    assert_eq!(servers(&p).await["pg2"]["tenants"], 0);
    let where_a = server_of(&p, &a).await;
    assert_eq!(
        before,
        fingerprint(&mut tenant_db(&p, &where_a, &a).await).await
    );
    p.cleanup().await;
}

/// A tenant's credentials, in the one database they reach, try what a
/// compromised Fresco could: hold every advisory lock the platform takes, flood
/// its notification channels. Nothing of it reaches the platform.
async fn tenant_cannot_hold_up_the_platform(isolation: &'static str) {
    let p = Platform::start(Options {
        isolation,
        ..Default::default()
    })
    .await;
    let a = p.create_active(&subdomain("attack-a")).await;
    let b = p.create_active(&subdomain("attack-b")).await;
    let own_db = match isolation {
        "schema" => p.tenants_db(),
        _ => tenant_id(&a).database_name(),
    };
    // Not even a connection to the platform database.
    match p.connect_as_tenant(&a, &p.db_name).await {
        Ok(_) => panic!("{isolation}: a tenant connected to the platform database"),
        Err(sqlx::Error::Database(e)) => assert_eq!(e.code().as_deref(), Some("42501"), "{e}"),
        Err(e) => panic!("unexpected error {e}"),
    }
    let mut locker = p.connect_as_tenant(&a, &own_db).await.unwrap();
    let keys = [
        fresco_platform::provision::database::DATABASE_ACL_LOCK,
        0x6672_6573_636f_0002, // placement
        tenant_id(&b).lock_key(),
    ];
    for key in keys {
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut locker)
            .await
            .unwrap();
        assert!(
            got,
            "{isolation}: lock {key:#x} taken in the tenant's database"
        );
    }
    // Forged wake-ups and activity on the platform's channels, as fast as it can.
    let mut notifier = p.connect_as_tenant(&a, &own_db).await.unwrap();
    let flood = tokio::spawn(async move {
        for _ in 0..2000 {
            let _ = sqlx::query(
                "SELECT pg_notify('fresco_tenant_changes', $1), pg_notify('fresco_tenant_activity', '{}')",
            )
            .bind(uuid::Uuid::new_v4().to_string())
            .execute(&mut notifier)
            .await;
        }
    });
    // Meanwhile the platform provisions, stops and destroys as if nothing happened.
    let started = Instant::now();
    let c = p.create_active(&subdomain("attack-c")).await;
    assert!(started.elapsed() < Duration::from_secs(60));
    let (status, body) = p.action(&b, "stop").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    p.wait_status(&b, "stopped", Duration::from_secs(60)).await;
    let (status, body) = p
        .destroy(&b, p.tenant(&b).await["subdomain"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    p.wait_status(&b, "destroyed", Duration::from_secs(60))
        .await;
    flood.await.unwrap();
    // The locks were real and are still held by the tenant's session.
    let c_db = match isolation {
        "schema" => p.tenants_db(),
        _ => tenant_id(&c).database_name(),
    };
    let mut other = p.connect_as_tenant(&c, &c_db).await.unwrap();
    let held: bool = sqlx::query_scalar("SELECT NOT pg_try_advisory_lock($1)")
        .bind(keys[0])
        .fetch_one(&mut other)
        .await
        .unwrap();
    // Advisory locks belong to their database: in another tenant's (or the
    // shared) database only a same-database session competes.
    assert_eq!(held, isolation == "schema", "{isolation}");
    drop(locker);
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_mode_tenant_cannot_lock_or_notify_the_platform() {
    tenant_cannot_hold_up_the_platform("schema").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_mode_tenant_cannot_lock_or_notify_the_platform() {
    tenant_cannot_hold_up_the_platform("database").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_that_waits_on_a_lock_gives_up_and_is_retried_instead_of_hanging() {
    let p = Platform::start(Options {
        isolation: "schema",
        extra: vec![
            ("DDL_LOCK_TIMEOUT", "1s".to_owned()),
            ("RECONCILE_MAX_ATTEMPTS", "50".to_owned()),
        ],
        ..Default::default()
    })
    .await;
    let sub = subdomain("ddl-lock");
    let id = p.create_active(&sub).await;
    // Some session (here the platform's own role, as an operator's psql would)
    // holds the tenant's table.
    let mut holder = p.connect_db(&p.tenants_db()).await;
    sqlx::raw_sql(&format!(
        "BEGIN; LOCK TABLE \"{}\".\"AppSettings\" IN ACCESS EXCLUSIVE MODE;",
        tenant_id(&id).schema_name()
    ))
    .execute(&mut holder)
    .await
    .unwrap();
    let (status, body) = p.destroy(&id, &sub).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // The DROP SCHEMA gives up after its lock timeout and says so.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = p.tenant(&id).await;
        if let Some(e) = t["lastError"].as_str() {
            assert!(e.contains("lock timeout"), "{e}");
            assert_eq!(t["status"], "destroying");
            break;
        }
        assert!(Instant::now() < deadline, "no lock timeout reported: {t}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .unwrap();
    p.wait_status(&id, "destroyed", Duration::from_secs(60))
        .await;
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_at_its_connection_limit_starves_only_itself() {
    let p = Platform::start(Options::default()).await;
    let sub_a = subdomain("pool-a");
    let sub_b = subdomain("pool-b");
    let a = p.create_active(&sub_a).await;
    let b = p.create_active(&sub_b).await;
    let db_a = tenant_id(&a).database_name();
    let pooled = env_of(&p, &a, "DATABASE_URL").await;
    let bouncer = env("TENANT_DB_POOLER_PORT");
    assert!(
        pooled.contains(&format!(":{bouncer}/{db_a}?pgbouncer=true")),
        "the app goes through PgBouncer"
    );
    // Tenant A, from its own credentials: far more clients through PgBouncer
    // than its pool holds, each in a long query...
    let password = p.tenant_password(&a).await;
    let role = tenant_id(&a).role_name();
    let through_bouncer = format!("postgres://{role}:{password}@127.0.0.1:{bouncer}/{db_a}");
    let busy = futures::future::join_all((0..15).map(|_| {
        let url = through_bouncer.clone();
        async move {
            let mut conn = PgConnection::connect(&url).await?;
            // A simple query: through transaction pooling an extended-protocol
            // statement may meet another server connection between its messages.
            sqlx::raw_sql("SELECT pg_sleep(3)")
                .execute(&mut conn)
                .await?;
            Ok::<_, sqlx::Error>(())
        }
    }));
    let sessions_of_a = || async {
        let mut admin = p.connect_db(&p.db_name).await;
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pg_stat_activity WHERE usename = $1")
            .bind(&role)
            .fetch_one(&mut admin)
            .await
            .unwrap()
    };
    let meanwhile = async {
        // PgBouncer fills A's pool (5 server connections) and queues the rest.
        let deadline = Instant::now() + Duration::from_secs(20);
        while sessions_of_a().await < 5 {
            assert!(Instant::now() < deadline, "PgBouncer never filled A's pool");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // ...and A opens direct connections until Postgres refuses more for its role.
        let mut direct = Vec::new();
        let refused = loop {
            match p.connect_as_tenant(&a, &db_a).await {
                Ok(c) => direct.push(c),
                Err(e) => break e,
            }
            assert!(direct.len() <= 20, "no connection limit on the tenant role");
        };
        assert!(
            refused
                .to_string()
                .contains("too many connections for role"),
            "{refused}"
        );
        // Postgres holds no more sessions of A than its role's limit.
        let sessions = sessions_of_a().await;
        assert!(sessions <= 10, "{sessions} sessions of A");
        // Meanwhile B, the API and provisioning work.
        let started = Instant::now();
        wait_traefik(&sub_b, "/signin", 200, Duration::from_secs(5)).await;
        let (status, _) = p.request(Method::GET, "/api/v1/tenants", None).await;
        assert_eq!(status, StatusCode::OK);
        let c = p.create_active(&subdomain("pool-c")).await;
        assert!(started.elapsed() < Duration::from_secs(60));
        drop(direct);
        c
    };
    let (results, c) = tokio::join!(busy, meanwhile);
    for r in results {
        r.expect("A's queued clients are served in turn");
    }
    wait_traefik(&sub_a, "/signin", 200, Duration::from_secs(20)).await;
    let _ = (b, c);
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_schema_in_the_platform_database_moves_to_the_tenants_database() {
    let mut p = Platform::start(Options {
        isolation: "schema",
        ..Default::default()
    })
    .await;
    // A tenant as the migration leaves one made before the tenants database
    // existed: its schema in the platform database itself.
    p.kill_server().await;
    let admin: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE role = 'admin'")
        .fetch_one(&p.pool)
        .await
        .unwrap();
    let sub = subdomain("legacy");
    let mut tx = p.pool.begin().await.unwrap();
    let parsed = fresco_platform::domain::Subdomain::parse(&sub).unwrap();
    let row = fresco_platform::store::tenants::insert(
        &mut tx,
        fresco_platform::store::tenants::NewTenant {
            user_id: admin,
            subdomain: &parsed,
            image: None,
            resource_limits: json!({}),
        },
    )
    .await
    .unwrap();
    sqlx::query(
        "UPDATE tenants SET db_server_id = '00000000-0000-0000-0000-000000000001',
                db_name = current_database(), db_isolation = 'schema' WHERE id = $1",
    )
    .bind(row.id)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    p.start_server().await;
    let id = row.id.to_string();
    p.wait_status(&id, "active", Duration::from_secs(60)).await;
    wait_traefik(&sub, "/signin", 200, ROUTE_TIMEOUT).await;
    let schema = tenant_id(&id).schema_name();
    // Legacy: it reaches the platform database. That is what the move ends.
    let mut legacy = p
        .connect_as_tenant(&id, &p.db_name)
        .await
        .expect("a legacy tenant reaches the platform database");
    sqlx::raw_sql(&format!(
        "INSERT INTO \"{schema}\".\"Interview\" (id) SELECT 'iv-' || g FROM generate_series(1, 50) g"
    ))
    .execute(&mut legacy)
    .await
    .unwrap();
    drop(legacy);

    let asked = request_move(&p, &id, "default").await;
    assert_eq!(asked["fromDatabase"], p.db_name.as_str());
    assert_eq!(asked["toDatabase"], p.tenants_db().as_str());
    let done = wait_move(&p, &id, "done", Duration::from_secs(120)).await;
    assert_eq!(done["rowCounts"]["Interview"], 50, "{done}");
    p.wait_status(&id, "active", Duration::from_secs(60)).await;
    wait_traefik(&sub, "/signin", 200, ROUTE_TIMEOUT).await;
    // Out of the platform database for good: no schema there, no CONNECT.
    let mut platform = p.connect_db(&p.db_name).await;
    let left: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(&schema)
            .fetch_one(&mut platform)
            .await
            .unwrap();
    assert!(!left, "the legacy schema is still in the platform database");
    match p.connect_as_tenant(&id, &p.db_name).await {
        Ok(_) => panic!("the moved tenant still connects to the platform database"),
        Err(sqlx::Error::Database(e)) => assert_eq!(e.code().as_deref(), Some("42501"), "{e}"),
        Err(e) => panic!("unexpected error {e}"),
    }
    let mut moved = p.connect_as_tenant(&id, &p.tenants_db()).await.unwrap();
    let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{schema}\".\"Interview\""))
        .fetch_one(&mut moved)
        .await
        .unwrap();
    assert_eq!(n, 50);
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_that_cannot_copy_rolls_back_and_the_tenant_runs_where_it_was() {
    let p = Platform::start(Options {
        // A restore that always fails: every attempt of the copy fails.
        extra: vec![("PG_RESTORE", "false".to_owned())],
        ..Default::default()
    })
    .await;
    add_server(&p, 2, 10);
    let sub = subdomain("rollback");
    let id = p.create_active(&sub).await;
    write_data(&p, &id, 16).await;
    let before = fingerprint(&mut tenant_db(&p, "default", &id).await).await;
    request_move(&p, &id, "pg2").await;
    let m = wait_move(&p, &id, "rolled_back", Duration::from_secs(120)).await;
    assert!(m["error"].as_str().unwrap().contains("false failed"), "{m}");
    p.wait_status(&id, "active", Duration::from_secs(60)).await;
    // The move failed with its reason; the tenant was started where it was.
    let log = p.deployments(&id).await;
    let tail: Vec<(String, String)> = [
        ("move", "initiated"),
        ("move", "failed"),
        ("start", "initiated"),
        ("start", "success"),
    ]
    .iter()
    .map(|(a, s)| (a.to_string(), s.to_string()))
    .collect();
    assert!(log.ends_with(&tail), "{log:?}");
    let why: String = sqlx::query_scalar(
        "SELECT error_message FROM deployment_logs
          WHERE tenant_id = $1 AND action = 'move' AND status = 'failed'",
    )
    .bind(tenant_id(&id).0)
    .fetch_one(&p.pool)
    .await
    .unwrap();
    assert!(why.contains("false failed"), "{why}");
    assert_eq!(server_of(&p, &id).await, "default");
    assert_eq!(
        before,
        fingerprint(&mut tenant_db(&p, "default", &id).await).await
    );
    let db = tenant_id(&id).database_name();
    assert!(
        !database_exists(&p, "pg2", &db).await,
        "target copy left behind"
    );
    assert!(
        !role_exists(&p, "pg2", &tenant_id(&id).role_name()).await,
        "target role left behind"
    );
    wait_traefik(&sub, "/signin", 200, ROUTE_TIMEOUT).await;
    // Owners can act again.
    let (status, body) = p.action(&id, "restart").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    p.cleanup().await;
}
