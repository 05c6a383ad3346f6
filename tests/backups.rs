//! Backups against the real parts: `pg_dump`/`pg_restore`/`psql` on the test
//! clusters, the sealed files in a local directory and in the S3-compatible
//! server the stack runs (moto), the platform as a child process killed with
//! SIGKILL in the middle of its scheduled backups, and `backups verify`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::backups::{backup_dirs, local_backups, KEY};
use common::{env, random, subdomain, tenant_id, wait_traefik, Options, Platform};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgConnection;

/// A platform with backups on, into a folder of the test's own (`extra` on
/// top of `local_backups`); the folder goes at `finish`.
async fn with_backups(process: bool, extra: Vec<(&'static str, String)>) -> (Platform, PathBuf) {
    let (key, dir) = backup_dirs();
    let mut all = local_backups(&key, &dir);
    for (k, v) in extra {
        all.retain(|(name, _)| *name != k);
        all.push((k, v));
    }
    let p = Platform::start(Options {
        process,
        extra: all,
        ..Options::default()
    })
    .await;
    (p, dir)
}

async fn finish(p: Platform, dir: &Path) {
    p.cleanup().await;
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

/// A `pg_dump` that waits `secs` first, so a kill lands in the middle of one.
fn slow_pg_dump(secs: u32) -> String {
    use std::os::unix::fs::PermissionsExt;
    let slow = std::env::temp_dir().join(format!("fpt-slow-pg_dump-{}", random(10)));
    std::fs::write(
        &slow,
        format!("#!/bin/sh\nsleep {secs}\nexec pg_dump \"$@\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).unwrap();
    slow.display().to_string()
}

/// An active instance of the platform's with `notes` rows of data: its
/// subdomain, id and database.
async fn instance_with_data(p: &Platform, label: &str, notes: i32) -> (String, String, String) {
    let sub = subdomain(label);
    let id = p.create_active(&sub).await;
    let db = tenant_id(&id).database_name();
    write_data(p, &id, &db, notes).await;
    (sub, id, db)
}

/// The tenant's data, written the way its app would (as its own role):
/// interviews, and a table of its own with `notes` rows.
async fn write_data(p: &Platform, id: &str, database: &str, notes: i32) {
    let mut conn = p
        .connect_as_tenant(id, database)
        .await
        .expect("tenant connects to its database");
    sqlx::raw_sql(
        "INSERT INTO \"Interview\" (id) SELECT 'iv-' || g FROM generate_series(1, 300) g;
         CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL);",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    add_notes(&mut conn, notes).await;
}

async fn add_notes(conn: &mut PgConnection, n: i32) {
    sqlx::query(
        "INSERT INTO notes (body) SELECT 'note ' || md5(g::text) FROM generate_series(1, $1) g",
    )
    .bind(n)
    .execute(&mut *conn)
    .await
    .unwrap();
}

/// Every row of the tenant's tables, hashed per table.
async fn fingerprint(conn: &mut PgConnection) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for table in ["Interview", "notes"] {
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

async fn notes(conn: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(conn)
        .await
        .unwrap()
}

async fn backups(p: &Platform, id: &str) -> Value {
    let (status, body) = p
        .request(Method::GET, &format!("/api/v1/tenants/{id}/backups"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn take_backup(p: &Platform, id: &str) -> Value {
    let (status, body) = p
        .request(Method::POST, &format!("/api/v1/tenants/{id}/backups"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    wait_backup(p, id, body["id"].as_i64().unwrap(), "complete").await
}

async fn wait_backup(p: &Platform, id: &str, backup: i64, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let list = backups(p, id).await;
        let b = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["id"] == backup)
            .cloned()
            .unwrap_or(Value::Null);
        if b["status"] == status {
            return b;
        }
        assert!(
            b["status"] != "failed" || status == "failed",
            "backup failed: {b:#}"
        );
        assert!(Instant::now() < deadline, "backup never {status}: {b:#}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn restore(p: &Platform, id: &str, backup: i64, body: Value) -> (StatusCode, Value) {
    p.request(
        Method::POST,
        &format!("/api/v1/tenants/{id}/backups/{backup}/restore"),
        Some(body),
    )
    .await
}

async fn wait_restore(p: &Platform, id: &str, restore: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (status, body) = p
            .request(Method::GET, &format!("/api/v1/tenants/{id}/restores"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let r = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == restore)
            .cloned()
            .unwrap_or(Value::Null);
        if ["done", "failed", "abandoned"].contains(&r["phase"].as_str().unwrap_or("")) {
            return r;
        }
        assert!(Instant::now() < deadline, "restore never ended: {r:#}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The sealed files under the backup folder.
fn sealed_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(sealed_files(&path));
        } else if path.extension().is_some_and(|x| x == "fpbk") {
            out.push(path);
        }
    }
    out.sort();
    out
}

async fn download(p: &Platform, id: &str, backup: i64, format: &str) -> (StatusCode, Vec<u8>) {
    let resp = p
        .http
        .get(p.url(&format!(
            "/api/v1/tenants/{id}/backups/{backup}/download?format={format}"
        )))
        .bearer_auth(&p.key)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_brings_back_the_rows_of_the_backup_and_keeps_what_it_replaced() {
    let (p, dir) = with_backups(false, vec![]).await;
    let (sub, id, db) = instance_with_data(&p, "restore", 100).await;
    let mut conn = p.connect_as_tenant(&id, &db).await.unwrap();
    let at_backup = fingerprint(&mut conn).await;

    let b = take_backup(&p, &id).await;
    assert_eq!(b["kind"], "manual");
    assert_eq!(b["rowCounts"]["notes"], 100, "{b:#}");
    assert_eq!(b["rowCounts"]["Interview"], 300, "{b:#}");
    assert_eq!(b["server"], "default");
    assert_eq!(b["database"], db.as_str());
    assert_eq!(b["sha256"].as_str().unwrap().len(), 64);
    assert!(
        b["fresco_image"].is_null() && b["frescoImage"].is_string(),
        "{b:#}"
    );
    let backup = b["id"].as_i64().unwrap();
    // Sealed on disk: neither the dump's magic nor the data is readable there,
    // and the manifest beside it says what the row says.
    let files = sealed_files(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let sealed = std::fs::read(&files[0]).unwrap();
    assert!(sealed.starts_with(b"FRESCOBK"));
    assert!(!sealed.windows(5).any(|w| w == b"PGDMP"));
    assert!(!sealed.windows(5).any(|w| w == b"note "));
    assert_eq!(b["storedBytes"].as_u64().unwrap(), sealed.len() as u64);
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(format!("{}.manifest.json", files[0].display())).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["sha256"], b["sha256"]);
    assert_eq!(manifest["rowCounts"]["notes"], 100);

    // The owner's downloads: the decrypted dump, and plain SQL.
    let (status, dump) = download(&p, &id, backup, "dump").await;
    assert_eq!(status, StatusCode::OK);
    assert!(dump.starts_with(b"PGDMP"), "not a pg_dump archive");
    assert_eq!(dump.len() as i64, b["dumpBytes"].as_i64().unwrap());
    let (status, sql) = download(&p, &id, backup, "sql").await;
    assert_eq!(status, StatusCode::OK);
    let sql = String::from_utf8(sql).unwrap();
    assert!(
        sql.contains("COPY public.notes"),
        "{}",
        &sql[..sql.len().min(2000)]
    );
    assert!(
        sql.contains("note c4ca4238a0b923820dcc509a6f75849b"),
        "row 1 missing"
    );
    let (status, body) = p
        .request(
            Method::GET,
            &format!("/api/v1/tenants/{id}/backups/{backup}/download?format=csv"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // More data after the backup, then the restore.
    add_notes(&mut conn, 50).await;
    drop(conn);
    let (status, r) = restore(&p, &id, backup, json!({ "into": "same" })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{r}");
    assert_eq!(r["intoNew"], false);
    // While it runs, owners' actions wait.
    let (status, _) = restore(&p, &id, backup, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let r = wait_restore(&p, &id, r["id"].as_i64().unwrap()).await;
    assert_eq!(r["phase"], "done", "{r:#}");
    p.wait_status(&id, "active", Duration::from_secs(60)).await;
    wait_traefik(&sub, "/signin", 200, Duration::from_secs(30)).await;

    let mut conn = p.connect_as_tenant(&id, &db).await.unwrap();
    assert_eq!(notes(&mut conn).await, 100);
    assert_eq!(fingerprint(&mut conn).await, at_backup);
    // The replaced state was backed up first: restoring it undoes the restore.
    let safety = r["safetyBackupId"].as_i64().expect("a safety backup");
    let s = wait_backup(&p, &id, safety, "complete").await;
    assert_eq!(s["kind"], "pre_restore");
    assert_eq!(s["rowCounts"]["notes"], 150, "{s:#}");
    let log = p.deployments(&id).await;
    assert!(
        log.contains(&("restore".into(), "initiated".into())),
        "{log:?}"
    );
    assert!(
        log.contains(&("restore".into(), "success".into())),
        "{log:?}"
    );

    let (status, r) = restore(&p, &id, safety, json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{r}");
    assert_eq!(
        wait_restore(&p, &id, r["id"].as_i64().unwrap()).await["phase"],
        "done"
    );
    p.wait_status(&id, "active", Duration::from_secs(60)).await;
    let mut conn = p.connect_as_tenant(&id, &db).await.unwrap();
    assert_eq!(notes(&mut conn).await, 150);
    drop(conn);
    finish(p, &dir).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_backup_is_refused_and_nothing_is_replaced() {
    let (p, dir) = with_backups(false, vec![]).await;
    let (sub, id, db) = instance_with_data(&p, "tamper", 20).await;
    let b = take_backup(&p, &id).await;
    let backup = b["id"].as_i64().unwrap();
    let mut conn = p.connect_as_tenant(&id, &db).await.unwrap();
    add_notes(&mut conn, 5).await;
    let now = fingerprint(&mut conn).await;
    drop(conn);
    let file = sealed_files(&dir).pop().unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    std::fs::write(&file, &bytes).unwrap();

    // Its checksum no longer matches: the download and the restore say so.
    let (status, body) = download(&p, &id, backup, "dump").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SHA-256"),
        "{body}"
    );
    let (status, r) = restore(&p, &id, backup, json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{r}");
    let r = wait_restore(&p, &id, r["id"].as_i64().unwrap()).await;
    assert_eq!(r["phase"], "failed", "{r:#}");
    assert!(r["error"].as_str().unwrap().contains("SHA-256"), "{r:#}");
    p.wait_status(&id, "active", Duration::from_secs(60)).await;
    let log = p.deployments(&id).await;
    assert!(
        log.contains(&("restore".into(), "failed".into())),
        "{log:?}"
    );

    // Altered with a checksum to match (someone who can write the manifest
    // too): the seal still refuses it.
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    sqlx::query("UPDATE tenant_backups SET sha256 = $1 WHERE id = $2")
        .bind(&sha)
        .bind(backup)
        .execute(&p.pool)
        .await
        .unwrap();
    let (status, body) = download(&p, &id, backup, "sql").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("altered"),
        "{body}"
    );
    let (status, r) = restore(&p, &id, backup, json!({ "into": "same" })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{r}");
    let r = wait_restore(&p, &id, r["id"].as_i64().unwrap()).await;
    assert_eq!(r["phase"], "failed", "{r:#}");
    assert!(r["error"].as_str().unwrap().contains("altered"), "{r:#}");
    assert!(
        r["safetyBackupId"].is_null(),
        "refused before anything was done: {r:#}"
    );
    p.wait_status(&id, "active", Duration::from_secs(60)).await;
    wait_traefik(&sub, "/signin", 200, Duration::from_secs(30)).await;
    // The data is what it was, the container never stopped for it.
    let mut conn = p.connect_as_tenant(&id, &db).await.unwrap();
    assert_eq!(fingerprint(&mut conn).await, now);
    drop(conn);
    finish(p, &dir).await;
}

/// The keys under `prefix` in the S3 bucket (moto answers unsigned listings).
async fn s3_keys(prefix: &str) -> Vec<String> {
    let url = format!(
        "{}/{}?list-type=2&prefix={prefix}",
        env("FP_S3_ENDPOINT"),
        env("FP_S3_BUCKET")
    );
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    text.split("<Key>")
        .skip(1)
        .filter_map(|s| s.split("</Key>").next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destroyed_tenant_comes_back_from_its_backup_in_s3_until_its_backups_are_deleted() {
    let (key, _) = backup_dirs();
    let prefix = format!("fpt-{}", random(8));
    let p = Platform::start(Options {
        isolation: "schema",
        extra: vec![
            ("BACKUP_KEY_FILE", key.display().to_string()),
            ("BACKUP_SCHEDULE", "off".into()),
            ("BACKUP_TICK_SECS", "1".into()),
            ("BACKUP_STORAGE", "s3".into()),
            ("BACKUP_S3_ENDPOINT", env("FP_S3_ENDPOINT")),
            ("BACKUP_S3_BUCKET", env("FP_S3_BUCKET")),
            ("BACKUP_S3_REGION", env("FP_S3_REGION")),
            ("BACKUP_S3_PREFIX", prefix.clone()),
            ("BACKUP_S3_ACCESS_KEY_ID", env("FP_S3_ACCESS_KEY_ID")),
            (
                "BACKUP_S3_SECRET_ACCESS_KEY",
                env("FP_S3_SECRET_ACCESS_KEY"),
            ),
        ],
        ..Options::default()
    })
    .await;
    let sub = subdomain("comeback");
    let id = p.create_active(&sub).await;
    let tenants_db = p.tenants_db();
    write_data(&p, &id, &tenants_db, 40).await;
    let mut conn = p.connect_as_tenant(&id, &tenants_db).await.unwrap();
    let before = fingerprint(&mut conn).await;
    drop(conn);

    // Destroy: the owner is told how long the backups are kept; the destroy
    // takes a last backup, to S3.
    let (status, t) = p.destroy(&id, &sub).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{t}");
    let kept: chrono::DateTime<chrono::Utc> =
        t["backupsKeptUntil"].as_str().unwrap().parse().unwrap();
    let days = (kept - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!((29.9..=30.1).contains(&days), "kept {days} days");
    p.wait_status(&id, "destroyed", Duration::from_secs(90))
        .await;
    let list = backups(&p, &id).await;
    let listed: chrono::DateTime<chrono::Utc> =
        list["keptUntil"].as_str().unwrap().parse().unwrap();
    assert!(
        (listed - kept).num_milliseconds().abs() < 1,
        "{listed} {kept}"
    );
    let last = list["data"][0].clone();
    assert_eq!(last["kind"], "final", "{list:#}");
    assert_eq!(last["status"], "complete", "{list:#}");
    assert_eq!(last["rowCounts"]["notes"], 40, "{last:#}");
    let keys = s3_keys(&prefix).await;
    assert_eq!(keys.len(), 2, "the sealed dump and its manifest: {keys:?}");
    assert!(keys.iter().any(|k| k.ends_with(".fpbk")), "{keys:?}");

    // A restore brings it back: a new instance, at its old subdomain, with
    // its data (moved into the new tenant's own schema).
    let (status, r) = restore(&p, &id, last["id"].as_i64().unwrap(), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{r}");
    assert_eq!(r["intoNew"], true);
    let new_id = r["tenantId"].as_str().unwrap().to_owned();
    assert_ne!(new_id, id);
    let r = wait_restore(&p, &new_id, r["id"].as_i64().unwrap()).await;
    assert_eq!(r["phase"], "done", "{r:#}");
    let back = p
        .wait_status(&new_id, "active", Duration::from_secs(90))
        .await;
    assert_eq!(back["subdomain"], sub.as_str());
    wait_traefik(&sub, "/signin", 200, Duration::from_secs(30)).await;
    let mut conn = p.connect_as_tenant(&new_id, &tenants_db).await.unwrap();
    assert_eq!(fingerprint(&mut conn).await, before);
    drop(conn);

    // Live instances' backups cannot be deleted wholesale; a destroyed one's can.
    let (status, _) = p
        .request(
            Method::DELETE,
            &format!("/api/v1/tenants/{new_id}/backups"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = p
        .request(
            Method::DELETE,
            &format!("/api/v1/tenants/{id}/backups"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["deleting"], 1);
    wait_backup(&p, &id, last["id"].as_i64().unwrap(), "deleted").await;
    assert!(s3_keys(&prefix).await.is_empty(), "objects left in S3");

    // The grace period's end deletes them too.
    let (status, t) = p.destroy(&new_id, &sub).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{t}");
    p.wait_status(&new_id, "destroyed", Duration::from_secs(90))
        .await;
    let last = backups(&p, &new_id).await["data"][0].clone();
    assert_eq!(last["status"], "complete", "{last:#}");
    assert_eq!(s3_keys(&prefix).await.len(), 2);
    sqlx::query(
        "UPDATE tenants SET backups_kept_until = now() - interval '1 second' WHERE id = $1",
    )
    .bind(tenant_id(&new_id).0)
    .execute(&p.pool)
    .await
    .unwrap();
    let gone = wait_backup(&p, &new_id, last["id"].as_i64().unwrap(), "deleted").await;
    assert!(
        gone["deletedWhy"]
            .as_str()
            .unwrap()
            .contains("grace period"),
        "{gone:#}"
    );
    assert!(s3_keys(&prefix).await.is_empty());
    p.cleanup().await;
}

/// `fresco-platform backups verify` with the platform's configuration.
fn verify(p: &Platform, args: &[&str]) -> (bool, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_fresco-platform"));
    cmd.arg("backups").arg("verify").args(args);
    for (k, v) in p.args() {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_backups_are_taken_once_each_across_a_sigkill_and_verify_restores_them() {
    let (key, dir) = backup_dirs();
    let slow = slow_pg_dump(2);
    let log = dir.parent().unwrap().join("serve.log");
    let mut p = Platform::start(Options {
        process: true,
        log_file: Some(log.clone()),
        process_env: vec![("RUST_LOG", "debug,sqlx=warn,hyper=info,bollard=info".into())],
        extra: vec![
            ("BACKUP_KEY_FILE", key.display().to_string()),
            ("BACKUP_DIR", dir.display().to_string()),
            // Every tenant is due at midnight UTC: all of them at once.
            ("BACKUP_SCHEDULE", "daily".into()),
            ("BACKUP_SPREAD", "0s".into()),
            ("BACKUP_TICK_SECS", "1".into()),
            ("BACKUP_LEASE_SECS", "3".into()),
            ("BACKUP_CONCURRENCY", "1".into()),
            ("PG_DUMP", slow),
        ],
        ..Options::default()
    })
    .await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let id = p.create_active(&subdomain(&format!("sched{n}"))).await;
        write_data(&p, &id, &tenant_id(&id).database_name(), 10 + n).await;
        ids.push(id);
    }
    let passwords: Vec<String> = {
        let mut v = Vec::new();
        for id in &ids {
            v.push(p.tenant_password(id).await);
        }
        v
    };
    // Kill it while a backup runs, once at least one is complete.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (running, complete): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'running'), count(*) FILTER (WHERE status = 'complete')
               FROM tenant_backups",
        )
        .fetch_one(&p.pool)
        .await
        .unwrap();
        if running == 1 && complete >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no backup ran ({running} running, {complete} complete)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    p.kill_server().await;
    p.start_server().await;

    let deadline = Instant::now() + Duration::from_secs(120);
    let rows = loop {
        let rows: Vec<(uuid::Uuid, String, i32)> = sqlx::query_as(
            "SELECT tenant_id, status, attempts FROM tenant_backups WHERE kind = 'scheduled' ORDER BY id",
        )
        .fetch_all(&p.pool)
        .await
        .unwrap();
        if rows.len() == 3 && rows.iter().all(|r| r.1 == "complete") {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "scheduled backups did not all complete: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    // One per tenant, the killed one taken over as a second attempt, and one
    // sealed file each: none left by the attempt that died.
    for id in &ids {
        assert_eq!(
            rows.iter().filter(|r| r.0 == tenant_id(id).0).count(),
            1,
            "{rows:?}"
        );
    }
    assert!(
        rows.iter().any(|r| r.2 >= 2),
        "no backup was interrupted: {rows:?}"
    );
    assert_eq!(sealed_files(&dir).len(), 3, "{:?}", sealed_files(&dir));
    // A few more turns of the scheduler take nothing more (same slot).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM tenant_backups")
        .fetch_one(&p.pool)
        .await
        .unwrap();
    assert_eq!(n, 3);

    // The recovery test restores each into a scratch database and counts.
    let (ok, out) = verify(&p, &[]);
    assert!(ok, "{out}");
    assert!(out.contains("3 verified, 0 failed"), "{out}");
    let verified: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tenant_backups WHERE verified_at IS NOT NULL AND verify_error IS NULL",
    )
    .fetch_one(&p.pool)
    .await
    .unwrap();
    assert_eq!(verified, 3);
    // A damaged one fails it, by name.
    let file = sealed_files(&dir).pop().unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    let (ok, out) = verify(&p, &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("FAIL") && out.contains("SHA-256"), "{out}");
    assert!(out.contains("2 verified, 1 failed"), "{out}");
    let (status, health) = p
        .request(Method::GET, "/api/v1/admin/backups/health", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["enabled"], true);
    assert_eq!(health["data"].as_array().unwrap().len(), 3, "{health:#}");
    assert!(
        health["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["lastVerifyError"].is_string()),
        "{health:#}"
    );

    // Nothing secret reached the log: not the key, not a tenant's password.
    p.kill_server().await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("backup complete"),
        "log is not the platform's"
    );
    assert!(!text.contains(KEY), "the backup key is in the log");
    for pw in &passwords {
        assert!(
            !text.contains(pw.as_str()),
            "a tenant password is in the log"
        );
    }
    assert!(!out.contains(KEY));
    finish(p, &dir).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_s_backups_are_its_owner_s_alone_and_backups_by_hand_are_rate_limited() {
    let (p, dir) = with_backups(false, vec![]).await;
    let alice = p
        .verified_member(
            &format!("alice-{}@test.invalid", random(6)),
            "a long password 1",
        )
        .await;
    let bob = p
        .verified_member(
            &format!("bob-{}@test.invalid", random(6)),
            "a long password 2",
        )
        .await;
    let mut ids = Vec::new();
    for m in [&alice, &bob] {
        let (status, t) = p
            .request_as(
                Some(&m.key),
                Method::POST,
                "/api/v1/tenants",
                Some(json!({ "subdomain": subdomain("own") })),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{t}");
        let id = t["id"].as_str().unwrap().to_owned();
        p.wait_status(&id, "active", Duration::from_secs(60)).await;
        ids.push(id);
    }
    let (a, b) = (&ids[0], &ids[1]);
    let backups_of = |id: &str| format!("/api/v1/tenants/{id}/backups");
    let (status, first) = p
        .request_as(Some(&alice.key), Method::POST, &backups_of(a), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let backup = first["id"].as_i64().unwrap();
    wait_backup(&p, a, backup, "complete").await;
    let (status, again) = p
        .request_as(Some(&alice.key), Method::POST, &backups_of(a), None)
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{again}");
    assert_eq!(again["error"]["code"], "rate_limited");
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap()
            .contains("per 10m"),
        "{again}"
    );

    // Another member cannot list, take, download or restore them, not even
    // through a path of their own instance: exactly as if they did not exist.
    for (method, path) in [
        (Method::GET, backups_of(a)),
        (Method::POST, backups_of(a)),
        (Method::GET, format!("{}/{backup}/download", backups_of(a))),
        (Method::POST, format!("{}/{backup}/restore", backups_of(a))),
        (Method::GET, format!("{}/{backup}/download", backups_of(b))),
        (Method::POST, format!("{}/{backup}/restore", backups_of(b))),
        (Method::GET, format!("/api/v1/tenants/{a}/restores")),
    ] {
        let body = (method == Method::POST).then(|| json!({}));
        let (status, answer) = p
            .request_as(Some(&bob.key), method.clone(), &path, body)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
    }
    let (status, _) = p.request_as(None, Method::GET, &backups_of(a), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = p
        .request_as(
            Some(&bob.key),
            Method::GET,
            "/api/v1/admin/backups/health",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Nonsense ids are 404s too, and a bad `into` is named.
    let (status, _) = p
        .request_as(
            Some(&alice.key),
            Method::GET,
            &format!("{}/x1/download", backups_of(a)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, bad) = p
        .request_as(
            Some(&alice.key),
            Method::POST,
            &format!("{}/{backup}/restore", backups_of(a)),
            Some(json!({ "into": "elsewhere" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    assert_eq!(bad["error"]["details"]["field"], "into");
    let (status, bad) = p
        .request_as(
            Some(&alice.key),
            Method::POST,
            &format!("{}/{backup}/restore", backups_of(a)),
            Some(json!({ "into": "new" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    assert_eq!(bad["error"]["details"]["field"], "subdomain");
    // An instance that ended in error can be restored too (its data may be why).
    sqlx::query("UPDATE tenants SET status = 'error', last_error = 'broken' WHERE id = $1")
        .bind(tenant_id(a).0)
        .execute(&p.pool)
        .await
        .unwrap();
    let (status, r) = p
        .request_as(
            Some(&alice.key),
            Method::POST,
            &format!("{}/{backup}/restore", backups_of(a)),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{r}");
    assert_eq!(
        wait_restore(&p, a, r["id"].as_i64().unwrap()).await["phase"],
        "done"
    );
    p.wait_status(a, "active", Duration::from_secs(60)).await;
    // The admin sees every backup.
    let (status, all) = p.request(Method::GET, "/api/v1/admin/backups", None).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert!(
        all["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == backup),
        "{all}"
    );
    finish(p, &dir).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_retention_policy_keeps_the_newest_of_each_day_and_deletes_the_rest() {
    let (mut p, dir) = with_backups(false, vec![]).await;
    let id = p.create_active(&subdomain("retain")).await;
    let tenant = tenant_id(&id);
    // Ten earlier days of scheduled backups (their files stand in for the
    // sealed objects: retention deletes by key).
    let today = chrono::Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let mut old = Vec::new();
    for days in 1..=10 {
        let slot = today - chrono::Duration::days(days);
        let key = format!("{}/old-{days}.fpbk", tenant.simple());
        std::fs::create_dir_all(dir.join(tenant.simple())).unwrap();
        std::fs::write(dir.join(&key), b"FRESCOBK").unwrap();
        let row: i64 = sqlx::query_scalar(
            "INSERT INTO tenant_backups (tenant_id, kind, slot, status, object_key, sha256, completed_at)
             VALUES ($1, 'scheduled', $2, 'complete', $3, 'x', $2) RETURNING id",
        )
        .bind(tenant.0)
        .bind(slot)
        .bind(&key)
        .fetch_one(&p.pool)
        .await
        .unwrap();
        old.push((days, row, key));
    }
    // Now the schedule: daily, at midnight UTC for everyone, keeping 3 days.
    p.kill_server().await;
    p.opts.extra.retain(|(k, _)| *k != "BACKUP_SCHEDULE");
    p.opts.extra.extend([
        ("BACKUP_SCHEDULE", "daily".to_owned()),
        ("BACKUP_SPREAD", "0s".to_owned()),
        ("BACKUP_RETENTION", "3d".to_owned()),
    ]);
    p.start_server().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let deleted: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM tenant_backups WHERE tenant_id = $1 AND status = 'deleted'",
        )
        .bind(tenant.0)
        .fetch_one(&p.pool)
        .await
        .unwrap();
        if deleted == 8 {
            break;
        }
        assert!(Instant::now() < deadline, "{deleted} deleted");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let list = backups(&p, &id).await;
    let kept: Vec<&Value> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["status"] == "complete")
        .collect();
    // Today's (taken now), yesterday's and the day before's.
    assert_eq!(kept.len(), 3, "{list:#}");
    assert!(kept.iter().any(|b| b["slot"]
        .as_str()
        .unwrap()
        .parse::<chrono::DateTime<chrono::Utc>>()
        .unwrap()
        == today));
    for (days, row, key) in old {
        let gone = !dir.join(&key).exists();
        let b = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["id"] == row)
            .unwrap();
        if days <= 2 {
            assert_eq!(b["status"], "complete", "{b:#}");
            assert!(!gone, "{key} deleted");
        } else {
            assert_eq!(b["status"], "deleted", "{b:#}");
            assert!(
                b["deletedWhy"].as_str().unwrap().contains("retention"),
                "{b:#}"
            );
            assert!(gone, "{key} still there");
        }
    }
    finish(p, &dir).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_cut_short_by_a_sigkill_resumes_and_ends_with_the_backup_s_data() {
    // The safety backup's pg_dump takes its time: the kill lands during it.
    let extra = vec![
        ("PG_DUMP", slow_pg_dump(3)),
        ("BACKUP_LEASE_SECS", "3".into()),
    ];
    let (mut p, dir) = with_backups(true, extra).await;
    let (sub, id, db) = instance_with_data(&p, "cut", 30).await;
    let backup = take_backup(&p, &id).await["id"].as_i64().unwrap();
    let mut conn = p.connect_as_tenant(&id, &db).await.unwrap();
    add_notes(&mut conn, 7).await;
    drop(conn);
    let (status, r) = restore(&p, &id, backup, json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{r}");
    let restore_id = r["id"].as_i64().unwrap();
    // Killed while it backs up the data it is about to replace.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let phase: String = sqlx::query_scalar("SELECT phase FROM tenant_restores WHERE id = $1")
            .bind(restore_id)
            .fetch_one(&p.pool)
            .await
            .unwrap();
        if phase == "stopped" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restore never reached stopped ({phase})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    p.kill_server().await;
    p.start_server().await;
    let r = wait_restore(&p, &id, restore_id).await;
    assert_eq!(r["phase"], "done", "{r:#}");
    p.wait_status(&id, "active", Duration::from_secs(60)).await;
    wait_traefik(&sub, "/signin", 200, Duration::from_secs(30)).await;
    let mut conn = p.connect_as_tenant(&id, &db).await.unwrap();
    assert_eq!(notes(&mut conn).await, 30);
    drop(conn);
    // The safety backup holds what was replaced, once.
    let safety = wait_backup(&p, &id, r["safetyBackupId"].as_i64().unwrap(), "complete").await;
    assert_eq!(safety["rowCounts"]["notes"], 37, "{safety:#}");
    let pre: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tenant_backups WHERE kind = 'pre_restore' AND status = 'complete'",
    )
    .fetch_one(&p.pool)
    .await
    .unwrap();
    assert_eq!(pre, 1);
    assert_eq!(sealed_files(&dir).len(), 2, "{:?}", sealed_files(&dir));
    finish(p, &dir).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_in_progress_holds_only_read_locks_and_the_tenant_keeps_writing() {
    // A pg_dump whose reader is slow: it stalls mid-dump, its locks held.
    let slow = std::env::temp_dir().join(format!("fpt-stalled-pg_dump-{}", random(10)));
    std::fs::write(&slow, "#!/bin/sh\npg_dump \"$@\" | { sleep 4; cat; }\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (p, dir) = with_backups(false, vec![("PG_DUMP", slow.display().to_string())]).await;
    // Enough rows that the dump outgrows the pipe and waits on it.
    let (_, id, db) = instance_with_data(&p, "busy", 20_000).await;
    let (status, b) = p
        .request(Method::POST, &format!("/api/v1/tenants/{id}/backups"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{b}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let modes: Vec<String> = loop {
        let modes: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT l.mode FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE a.application_name = 'fresco-platform-backup' AND a.datname = $1
                AND l.locktype = 'relation'",
        )
        .bind(&db)
        .fetch_all(&p.pool)
        .await
        .unwrap();
        if !modes.is_empty() {
            break modes;
        }
        assert!(
            Instant::now() < deadline,
            "the backup's pg_dump never held a lock"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(modes, vec!["AccessShareLock".to_owned()]);
    // Meanwhile the app writes, and no statement waits on a lock.
    let mut conn = p.connect_as_tenant(&id, &db).await.unwrap();
    sqlx::raw_sql(
        "SET lock_timeout = '200ms';
         INSERT INTO notes (body) VALUES ('during the backup');
         UPDATE notes SET body = 'changed' WHERE id = 1;
         DELETE FROM notes WHERE id = 2;
         INSERT INTO \"Interview\" (id) VALUES ('iv-during');",
    )
    .execute(&mut conn)
    .await
    .expect("the tenant's writes wait on nothing during a backup");
    drop(conn);
    let done = wait_backup(&p, &id, b["id"].as_i64().unwrap(), "complete").await;
    // The backup is of its snapshot: the rows as they were when it began.
    assert_eq!(done["rowCounts"]["notes"], 20_000, "{done:#}");
    let _ = std::fs::remove_file(&slow);
    finish(p, &dir).await;
}
