//! Backup benchmark (not a test), against the real local stack: one tenant
//! (database isolation, the default stand-in) with `BENCH_BACKUP_MB` MiB of
//! data (default 64) written as its own role, then, 3 runs each, medians:
//! 1. backup throughput against a bare `pg_dump -Fc` to a file in the same run:
//!    the platform's pipeline without encryption (dump → SHA-256 → storage),
//!    with it (`Backups::take`), and the service through the API end to end;
//!    the seal alone in memory;
//! 2. restore time against a bare `pg_restore` of the bare dump into a fresh
//!    database: `Backups::check` + `Backups::replace`, and the in-place restore
//!    through the API end to end.
//! Run with `scripts/bench`.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{env, random, subdomain, tenant_id, Options, Platform};
use fresco_platform::domain::{Isolation, TenantId};
use fresco_platform::provision::backup::{Backups, Placement, Taken};
use fresco_platform::provision::copy::Copier;
use fresco_platform::provision::database::ConnParams;
use fresco_platform::provision::seal::{BackupKey, Sealer};
use fresco_platform::provision::storage::BackupStorage;
use fresco_platform::provision::TenantDatabases;
use fresco_platform::store::{self, db_servers};
use rand::RngCore;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection};
use tokio::io::AsyncReadExt;

const RUNS: usize = 3;
/// Bytes read from pg_dump at a time (what `Backups::take` reads).
const PIECE: usize = 256 * 1024;
/// The flags `Backups::take` gives pg_dump for a database-isolated tenant.
const DUMP_ARGS: [&str; 4] = [
    "--format=custom",
    "--no-owner",
    "--no-privileges",
    "--exclude-schema=pgbouncer",
];

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// A Postgres program reaching `conn` as the platform's role, the password in
/// its environment (what `Copier::command_as` does, which is crate-private).
fn pg_command(program: &str, conn: &ConnParams) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.env("PGHOST", &conn.host)
        .env("PGPORT", conn.port.to_string())
        .env("PGUSER", &conn.user)
        .env("PGDATABASE", &conn.database)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(password) = &conn.password {
        cmd.env("PGPASSWORD", password);
    }
    cmd
}

async fn run(mut cmd: tokio::process::Command, what: &str) {
    let out = cmd.output().await.unwrap();
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Everything the benchmark measures with, beside the platform itself.
struct Bench {
    id: String,
    tenant: TenantId,
    conn: ConnParams,
    dbs: TenantDatabases,
    server: db_servers::DbServer,
    loc: fresco_platform::domain::DbLocation,
    key: BackupKey,
    storage: BackupStorage,
    backups: Backups,
    pg_dump: String,
    pg_restore: String,
    work: PathBuf,
    /// The tenant's tables with their indexes and TOAST, in bytes.
    data_bytes: u64,
}

/// The tenant's own data: `mebibytes` inserts of 1024 rows of 1 KiB of hex
/// digits from 32 separate md5s (pg_dump -Fc compresses them about 2:1, not
/// the 30:1 of a repeated string).
async fn write_data(p: &Platform, id: &str, db: &str, mebibytes: usize) {
    let mut conn = p.connect_as_tenant(id, db).await.unwrap();
    sqlx::raw_sql("CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL, at timestamptz DEFAULT now())")
        .execute(&mut conn)
        .await
        .unwrap();
    let body = vec!["md5(random()::text)"; 32].join(" || ");
    let insert = format!("INSERT INTO notes (body) SELECT {body} FROM generate_series(1, 1024)");
    for _ in 0..mebibytes {
        sqlx::raw_sql(&insert).execute(&mut conn).await.unwrap();
    }
    sqlx::raw_sql("ANALYZE notes")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
}

/// (pg_database_size, the tenant's relations with indexes and TOAST).
async fn sizes(p: &Platform, db: &str) -> (u64, u64) {
    let mut conn = p.connect_db(db).await;
    let sizes: (i64, i64) = sqlx::query_as(
        "SELECT pg_database_size(current_database()),
                coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p', 'm')
            AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgbouncer')
            AND n.nspname NOT LIKE 'pg\\_%'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    conn.close().await.ok();
    (sizes.0 as u64, sizes.1 as u64)
}

async fn setup(p: &Platform, mebibytes: usize, work: PathBuf) -> Bench {
    let id = p.create_active(&subdomain("bench-backup")).await;
    let tenant = tenant_id(&id);
    let db = tenant.database_name();
    write_data(p, &id, &db, mebibytes).await;
    let (_, data_bytes) = sizes(p, &db).await;
    let cfg = p.config();
    let dbs = TenantDatabases::new(&cfg.db, &cfg.tenants, &cfg.data_plane).unwrap();
    let row = store::tenants::get(&p.pool, tenant).await.unwrap();
    let loc = row.location().expect("the tenant is placed");
    let server = db_servers::get(&p.pool, loc.server).await.unwrap();
    let conn = dbs.conn_params(&server, &loc.database).unwrap();
    let key = cfg.backups.key().unwrap().expect("BACKUP_KEY_FILE is set");
    let storage = BackupStorage::from_config(&cfg.backups).unwrap();
    let backups = Backups::new(
        key.clone(),
        storage.clone(),
        Copier::new(&cfg.data_plane),
        &cfg.data_plane.psql,
        cfg.backups.work_dir(),
    );
    Bench {
        id,
        tenant,
        conn,
        dbs,
        server,
        loc,
        key,
        storage,
        backups,
        pg_dump: cfg.data_plane.pg_dump.clone(),
        pg_restore: cfg.data_plane.pg_restore.clone(),
        work,
        data_bytes,
    }
}

/// (a) `pg_dump -Fc` to a file: its time and size.
async fn bare_dump(b: &Bench, file: &Path) -> (Duration, u64) {
    let mut cmd = pg_command(&b.pg_dump, &b.conn);
    cmd.args(DUMP_ARGS)
        .arg(format!("--file={}", file.display()));
    let started = Instant::now();
    run(cmd, "bare pg_dump").await;
    let took = started.elapsed();
    (took, std::fs::metadata(file).unwrap().len())
}

/// (b) The platform's pipeline without the seal: pg_dump's output hashed and
/// written to the storage as it comes, as `Backups::take` does.
async fn unsealed_backup(b: &Bench, object: &str) -> (Duration, u64) {
    let started = Instant::now();
    let mut cmd = pg_command(&b.pg_dump, &b.conn);
    cmd.args(DUMP_ARGS)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut writer = b.storage.writer(object).await.unwrap();
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; PIECE];
    let mut bytes = 0u64;
    loop {
        let n = out.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        bytes += n as u64;
        hash.update(&buf[..n]);
        writer.write(&buf[..n]).await.unwrap();
    }
    assert!(child.wait().await.unwrap().success(), "pg_dump failed");
    writer.finish().await.unwrap();
    let _ = hex::encode(hash.finalize());
    (started.elapsed(), bytes)
}

/// (c) `Backups::take` in a snapshot from `TenantDatabases::snapshot` (as the
/// service does): the take timed alone, the snapshot (which counts the rows)
/// apart. Returns the row counts too.
async fn sealed_backup(
    b: &Bench,
    object: &str,
) -> (Duration, Duration, Taken, BTreeMap<String, i64>) {
    let started = Instant::now();
    let snapshot = b.dbs.snapshot(&b.server, &b.loc, b.tenant).await.unwrap();
    let snap = started.elapsed();
    let started = Instant::now();
    let taken = b
        .backups
        .take(
            &b.conn,
            Isolation::Database,
            b.tenant,
            Some(&snapshot.id),
            object,
        )
        .await
        .unwrap();
    let took = started.elapsed();
    let counts = snapshot.counts.clone();
    snapshot.release().await;
    (took, snap, taken, counts)
}

/// (d) A backup by hand through the API, request to complete.
async fn api_backup(p: &Platform, id: &str) -> (Duration, Value) {
    let started = Instant::now();
    let (status, body) = p
        .request(Method::POST, &format!("/api/v1/tenants/{id}/backups"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let backup = body["id"].as_i64().unwrap();
    loop {
        let (status, list) = p
            .request(Method::GET, &format!("/api/v1/tenants/{id}/backups"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let row = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == backup)
            .cloned()
            .unwrap_or(Value::Null);
        if row["status"] == "complete" {
            return (started.elapsed(), row);
        }
        assert!(row["status"] != "failed", "backup failed: {row:#}");
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "backup too slow: {row:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The seal alone, in memory, over a 256 MiB buffer in `take`'s pieces; and
/// SHA-256 alone over the same buffer, for comparison.
fn seal_in_memory(key: &BackupKey) -> (Duration, Duration, u64) {
    let mut data = vec![0u8; 256 * 1024 * 1024];
    rand::thread_rng().fill_bytes(&mut data);
    let mut seals = vec![];
    let mut hashes = vec![];
    for _ in 0..RUNS {
        let started = Instant::now();
        let mut sealer = Sealer::new(key);
        let mut sealed = 0usize;
        for piece in data.chunks(PIECE) {
            sealed += sealer.push(piece).len();
        }
        sealed += sealer.finish().len();
        seals.push(started.elapsed());
        assert!(sealed > data.len());
        let started = Instant::now();
        std::hint::black_box(Sha256::digest(&data));
        hashes.push(started.elapsed());
    }
    (median(seals), median(hashes), data.len() as u64)
}

/// One backup figure: seconds, MiB/s of the tenant's data and of the dump, and
/// the time's ratio to the bare dump.
fn backup_line(label: &str, took: Duration, dump_bytes: u64, data_bytes: u64, bare: Duration) {
    let s = took.as_secs_f64();
    println!(
        "  {label:<44} {s:>7.2} s  {:>7.1} MiB/s of data  {:>7.1} MiB/s of dump ({:.1} MiB)  ratio {:.2}",
        mib(data_bytes) / s,
        mib(dump_bytes) / s,
        mib(dump_bytes),
        s / bare.as_secs_f64()
    );
}

async fn backup_figures(p: &Platform, b: &Bench) -> (Taken, BTreeMap<String, i64>, String, i64) {
    let bare_file = b.work.join("bare.dump");
    let (mut bare, mut plain, mut sealed, mut snaps, mut api) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut bare_bytes, mut plain_bytes) = (0, 0);
    let mut last: Option<(Taken, BTreeMap<String, i64>, String)> = None;
    let mut api_row = Value::Null;
    // Interleaved, so a neighbour's load on the shared cores falls on every kind alike.
    for run in 0..RUNS {
        let (t, n) = bare_dump(b, &bare_file).await;
        bare.push(t);
        bare_bytes = n;
        let object = format!("bench/unsealed-{run}.dump");
        let (t, n) = unsealed_backup(b, &object).await;
        plain.push(t);
        plain_bytes = n;
        b.storage.delete(&object).await.unwrap();
        let object = format!("bench/sealed-{run}.fpbk");
        let (t, snap, taken, counts) = sealed_backup(b, &object).await;
        sealed.push(t);
        snaps.push(snap);
        if let Some((_, _, old)) = last.replace((taken, counts, object)) {
            b.storage.delete(&old).await.unwrap();
        }
        let (t, row) = api_backup(p, &b.id).await;
        api.push(t);
        api_row = row;
    }
    let (taken, counts, object) = last.unwrap();
    let bare = median(bare);
    println!("backup, median of {RUNS} runs (MiB/s of data: the tenant's tables with indexes and TOAST):");
    backup_line(
        "(a) bare pg_dump -Fc to a file",
        bare,
        bare_bytes,
        b.data_bytes,
        bare,
    );
    backup_line(
        "(b) pg_dump → SHA-256 → storage, no seal",
        median(plain),
        plain_bytes,
        b.data_bytes,
        bare,
    );
    backup_line(
        "(c) Backups::take (sealed, in a snapshot)",
        median(sealed),
        taken.dump_bytes,
        b.data_bytes,
        bare,
    );
    let api_bytes = api_row["dumpBytes"].as_u64().unwrap_or(0);
    backup_line(
        "(d) through the API, request → complete",
        median(api),
        api_bytes,
        b.data_bytes,
        bare,
    );
    println!(
        "      (c) excludes its snapshot, {:.3} s (export and row counts; (d) includes it, the queue pickup, the manifest)",
        median(snaps).as_secs_f64()
    );
    println!(
        "      sealed object {} bytes for a {}-byte dump (+{:.3}%: header and a 16-byte tag per 64 KiB)",
        taken.stored_bytes,
        taken.dump_bytes,
        100.0 * (taken.stored_bytes as f64 / taken.dump_bytes as f64 - 1.0)
    );
    let (seal, hash, n) = seal_in_memory(&b.key);
    println!(
        "  seal alone in memory (256 MiB, {} KiB pieces)     {:>7.2} s  {:>7.1} MiB/s;  SHA-256 alone {:.1} MiB/s",
        PIECE / 1024,
        seal.as_secs_f64(),
        mib(n) / seal.as_secs_f64(),
        mib(n) / hash.as_secs_f64()
    );
    let api_id = api_row["id"].as_i64().unwrap();
    (taken, counts, object, api_id)
}

/// (a) `pg_restore` of the bare dump into a fresh database, as the platform
/// role; the database made before the clock starts and dropped after it stops.
async fn bare_restore(b: &Bench, file: &Path) -> Duration {
    let scratch = format!("bench_restore_{}", random(8));
    let mut admin = PgConnection::connect(&env("FP_TEST_ADMIN_DATABASE_URL"))
        .await
        .unwrap();
    sqlx::raw_sql(&format!("CREATE DATABASE \"{scratch}\""))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut cmd = pg_command(&b.pg_restore, &b.conn);
    cmd.args(["--no-owner", "--no-privileges", "--exit-on-error"])
        .arg(format!("--dbname={scratch}"))
        .arg(file);
    let started = Instant::now();
    run(cmd, "bare pg_restore").await;
    let took = started.elapsed();
    sqlx::raw_sql(&format!("DROP DATABASE \"{scratch}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.ok();
    took
}

async fn notes(p: &Platform, db: &str) -> i64 {
    let mut conn = p.connect_db(db).await;
    let n = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    n
}

/// An in-place restore through the API, request to phase done, with the
/// phases seen on the way.
async fn api_restore(p: &Platform, id: &str, backup: i64) -> (Duration, Vec<(String, Duration)>) {
    let started = Instant::now();
    let (status, body) = p
        .request(
            Method::POST,
            &format!("/api/v1/tenants/{id}/backups/{backup}/restore"),
            Some(json!({ "into": "same" })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let restore = body["id"].as_i64().unwrap();
    let mut seen: Vec<(String, Duration)> = vec![];
    loop {
        let (status, list) = p
            .request(Method::GET, &format!("/api/v1/tenants/{id}/restores"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let r = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == restore)
            .cloned()
            .unwrap_or(Value::Null);
        let phase = r["phase"].as_str().unwrap_or("").to_owned();
        if seen.last().map(|(p, _)| p != &phase).unwrap_or(true) {
            seen.push((phase.clone(), started.elapsed()));
        }
        if phase == "done" {
            return (started.elapsed(), seen);
        }
        assert!(
            !["failed", "abandoned"].contains(&phase.as_str()),
            "restore ended {phase}: {r:#}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "restore too slow: {r:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn restore_figures(
    p: &Platform,
    b: &Bench,
    taken: &Taken,
    counts: &BTreeMap<String, i64>,
    object: &str,
    api_backup: i64,
) {
    let db = b.tenant.database_name();
    let expected = counts.get("notes").copied().unwrap_or(0);
    let bare_file = b.work.join("bare.dump");
    let mut bare = vec![];
    for _ in 0..RUNS {
        bare.push(bare_restore(b, &bare_file).await);
    }
    // The platform's restore replaces the data of a stopped tenant (the
    // reconciler stops it first): stopped here too, for the direct runs.
    let (status, body) = p.action(&b.id, "stop").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    p.wait_status(&b.id, "stopped", Duration::from_secs(60))
        .await;
    let at = Placement {
        isolation: Isolation::Database,
        dumped_tenant: b.tenant,
        tenant: b.tenant,
    };
    let fetched = b.work.join("fetched.fpbk");
    let (mut checks, mut replaces, mut direct) = (vec![], vec![], vec![]);
    for _ in 0..RUNS {
        // Changed first, so the replace has something to undo.
        let mut conn = p.connect_db(&db).await;
        sqlx::raw_sql("DELETE FROM notes WHERE id % 2 = 0")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.ok();
        let started = Instant::now();
        b.backups
            .check(object, &taken.sha256, Some(&fetched))
            .await
            .unwrap();
        let check = started.elapsed();
        b.backups
            .replace(&b.conn, &at, &fetched, counts)
            .await
            .unwrap();
        let both = started.elapsed();
        std::fs::remove_file(&fetched).unwrap();
        assert_eq!(
            notes(p, &db).await,
            expected,
            "the replace did not bring the rows back"
        );
        checks.push(check);
        replaces.push(both - check);
        direct.push(both);
    }
    let (status, body) = p.action(&b.id, "start").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    p.wait_status(&b.id, "active", Duration::from_secs(90))
        .await;
    let mut api = vec![];
    let mut phases = vec![];
    for _ in 0..RUNS {
        let (t, seen) = api_restore(p, &b.id, api_backup).await;
        p.wait_status(&b.id, "active", Duration::from_secs(90))
            .await;
        assert_eq!(
            notes(p, &db).await,
            expected,
            "the API restore did not bring the rows back"
        );
        api.push(t);
        phases.push((t, seen));
    }
    let bare = median(bare);
    let line = |label: &str, d: Duration, note: &str| {
        println!(
            "  {label:<44} {:>7.2} s  {:>6.3} s/MiB of data  ratio {:.2}{note}",
            d.as_secs_f64(),
            d.as_secs_f64() / mib(b.data_bytes),
            d.as_secs_f64() / bare.as_secs_f64()
        );
    };
    println!("restore, median of {RUNS} runs:");
    line("(a) bare pg_restore into a fresh database", bare, "");
    line(
        "(b) Backups::check + Backups::replace",
        median(direct),
        "  (tenant stopped, in place)",
    );
    line(
        "      of which check (fetch, SHA-256, seals)",
        median(checks),
        "",
    );
    line(
        "      of which replace (one transaction)",
        median(replaces),
        "  (pg_restore | psql, row counts)",
    );
    line(
        "(c) through the API, request → done",
        median(api),
        "  (stop, safety backup, replace, start healthy)",
    );
    phases.sort_by_key(|(t, _)| *t);
    let (_, seen) = &phases[phases.len() / 2];
    let seen: Vec<String> = seen
        .iter()
        .map(|(p, t)| format!("{p} at {:.2} s", t.as_secs_f64()))
        .collect();
    println!("      phases seen in the median run: {}", seen.join(", "));
}

fn main() {
    let mebibytes = std::env::var("BENCH_BACKUP_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64usize);
    let root = std::env::temp_dir().join(format!("fpb-backups-{}", random(10)));
    let (store_dir, work) = (root.join("store"), root.join("work"));
    std::fs::create_dir_all(&store_dir).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let key_file = root.join("key");
    std::fs::write(&key_file, BackupKey::generate()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let p = Platform::start(Options {
            extra: vec![
                ("BACKUP_KEY_FILE", key_file.display().to_string()),
                ("BACKUP_DIR", store_dir.display().to_string()),
                ("BACKUP_WORK_DIR", work.display().to_string()),
                ("BACKUP_SCHEDULE", "off".into()),
                ("BACKUP_TICK_SECS", "1".into()),
            ],
            ..Options::default()
        })
        .await;
        let b = setup(&p, mebibytes, work.clone()).await;
        let (db_size, _) = sizes(&p, &b.tenant.database_name()).await;
        println!(
            "backups of one tenant: {mebibytes} MiB written, {:.1} MiB in its tables with indexes and TOAST (pg_database_size {:.1} MiB), local storage, {} cores",
            mib(b.data_bytes),
            mib(db_size),
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
        );
        println!(
            "ratio = time / the bare pg_dump's (or pg_restore's) time in this run: 1.00 is as fast as Postgres' own tool, 1.30 takes 30% longer; it does not depend on the machine as seconds do"
        );
        let (taken, counts, object, api_backup) = backup_figures(&p, &b).await;
        restore_figures(&p, &b, &taken, &counts, &object, api_backup).await;
        p.cleanup().await;
    });
    let _ = std::fs::remove_dir_all(&root);
}
