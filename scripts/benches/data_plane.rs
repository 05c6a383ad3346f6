//! Data-plane benchmark (not a test), against the real local stack:
//! 1. a tenant's queries through PgBouncer against straight to Postgres, 50
//!    concurrent clients, same run: throughput and p50/p95, with one long-lived
//!    connection per client and with a connection per query;
//! 2. a move of a tenant with `BENCH_MOVE_MB` MiB of data (default 64) to another
//!    server, against a bare `pg_dump -Fc | pg_restore` of the same database to
//!    the same server in the same run: seconds per MiB and their ratio, with the
//!    move's phases.
//! Run with `scripts/bench`.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::servers::{add_server, cluster, with_database};
use common::{env, subdomain, tenant_id, Options, Platform};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::{Connection, PgConnection};

const CLIENTS: usize = 50;

fn percentile(mut xs: Vec<Duration>, p: f64) -> Duration {
    xs.sort();
    let idx = ((xs.len() as f64 - 1.0) * p).round() as usize;
    xs[idx.min(xs.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Run {
    queries: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    first_error: Option<String>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.queries as f64 / self.elapsed.as_secs_f64()
    }
    fn line(&self, label: &str) -> String {
        format!(
            "{label:<34} {:>8.0} q/s  p50 {:>6.2} ms  p95 {:>6.2} ms  errors {}{}",
            self.rate(),
            ms(percentile(self.latencies.clone(), 0.5)),
            ms(percentile(self.latencies.clone(), 0.95)),
            self.errors,
            self.first_error
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        )
    }
}

/// The tenant's typical read, as one simple-protocol message (through
/// PgBouncer's transaction pooling, sqlx's extended protocol sends Parse and
/// Bind in separate round trips that another client may come between;
/// node-postgres, which Fresco uses, sends them together).
const QUERY: &str = "SELECT count(*) FROM \"Interview\" WHERE id > 'iv-5'";

async fn one_query(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::Executor::fetch_one(&mut *conn, QUERY)
        .await
        .map(|_| ())
}

/// `CLIENTS` clients for `seconds`: each on its own connection, or connecting
/// for every query.
async fn load(url: &str, seconds: u64, per_query_connection: bool) -> Run {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let jobs: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let url = url.to_owned();
            tokio::spawn(async move {
                let mut latencies = vec![];
                let mut errors = 0;
                let mut first_error: Option<String> = None;
                let mut conn = None;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    if conn.is_none() {
                        match PgConnection::connect(&url).await {
                            Ok(c) => conn = Some(c),
                            Err(e) => {
                                errors += 1;
                                first_error.get_or_insert(e.to_string());
                                tokio::time::sleep(Duration::from_millis(10)).await;
                                continue;
                            }
                        }
                    }
                    let c = conn.as_mut().unwrap();
                    match one_query(c).await {
                        Ok(()) => latencies.push(t.elapsed()),
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(e.to_string());
                            conn = None;
                            continue;
                        }
                    }
                    if per_query_connection {
                        if let Some(c) = conn.take() {
                            let _ = c.close().await;
                        }
                    }
                }
                (latencies, errors, first_error)
            })
        })
        .collect();
    let mut run = Run {
        queries: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies: vec![],
        first_error: None,
    };
    for job in jobs {
        let (l, e, first) = job.await.unwrap();
        run.queries += l.len();
        run.errors += e;
        run.latencies.extend(l);
        run.first_error = run.first_error.or(first);
    }
    run.elapsed = started.elapsed();
    run
}

async fn queries(p: &Platform, seconds: u64) {
    let id = p.create_active(&subdomain("bench-pool")).await;
    let tid = tenant_id(&id);
    let db = tid.database_name();
    let mut admin = PgConnection::connect(&with_database(&p.db_url, &db))
        .await
        .unwrap();
    sqlx::raw_sql(
        "INSERT INTO \"Interview\" (id) SELECT 'iv-' || g FROM generate_series(1, 1000) g",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    // 50 direct clients need more than the tenant role's limit: raised for the
    // comparison only, so both sides serve every client.
    sqlx::raw_sql(&format!(
        "ALTER ROLE \"{}\" CONNECTION LIMIT {}",
        tid.role_name(),
        CLIENTS + 10
    ))
    .execute(&p.pool)
    .await
    .unwrap();
    let password = p.tenant_password(&id).await;
    let role = tid.role_name();
    let direct = format!(
        "postgres://{role}:{password}@127.0.0.1:{}/{db}",
        env("FP_PG_PORT")
    );
    let pooled = format!(
        "postgres://{role}:{password}@127.0.0.1:{}/{db}",
        env("TENANT_DB_POOLER_PORT")
    );
    println!(
        "tenant queries, {CLIENTS} concurrent clients, {seconds} s each (PgBouncer: transaction pooling, 5 server connections for the tenant):"
    );
    for per_query in [false, true] {
        let kind = if per_query {
            "a connection per query"
        } else {
            "one connection per client"
        };
        let d = load(&direct, seconds, per_query).await;
        let b = load(&pooled, seconds, per_query).await;
        println!("  {}", d.line(&format!("direct, {kind}")));
        println!("  {}", b.line(&format!("PgBouncer, {kind}")));
        println!(
            "  PgBouncer / direct: throughput {:.2}, p95 {:.2}",
            b.rate() / d.rate(),
            ms(percentile(b.latencies.clone(), 0.95)) / ms(percentile(d.latencies.clone(), 0.95))
        );
    }
}

fn mib(bytes: i64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

async fn database_size(url: &str, db: &str) -> i64 {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar("SELECT pg_database_size($1)")
        .bind(db)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

/// `pg_dump -Fc` of the source database piped into `pg_restore` of a scratch
/// database on the target server, as the platform role (the floor of a move).
async fn bare_copy(source_url: &str, db: &str, target_url: &str) -> Duration {
    let scratch = format!("bench_copy_{}", common::random(8));
    let mut target = PgConnection::connect(target_url).await.unwrap();
    sqlx::raw_sql(&format!("CREATE DATABASE \"{scratch}\""))
        .execute(&mut target)
        .await
        .unwrap();
    let src = url::Url::parse(&with_database(source_url, db)).unwrap();
    let dst = url::Url::parse(&with_database(target_url, &scratch)).unwrap();
    let started = Instant::now();
    let script = "pg_dump -Fc --no-owner --no-privileges --exclude-schema=pgbouncer \"$SRC\" | pg_restore --no-owner --no-privileges --exit-on-error -d \"$DST\"";
    let status = tokio::process::Command::new("bash")
        .args(["-o", "pipefail", "-c", script])
        .env("SRC", src.as_str())
        .env("DST", dst.as_str())
        .stdout(Stdio::null())
        .status()
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(status.success(), "bare pg_dump | pg_restore failed");
    sqlx::raw_sql(&format!("DROP DATABASE \"{scratch}\" WITH (FORCE)"))
        .execute(&mut target)
        .await
        .unwrap();
    took
}

async fn a_move(p: &Platform, mebibytes: usize) {
    // On the platform's own server first; pg2 joins afterwards as the target.
    let id = p.create_active(&subdomain("bench-move")).await;
    let db = tenant_id(&id).database_name();
    let mut conn = p.connect_as_tenant(&id, &db).await.unwrap();
    // Rows of about 1 KiB: ids, text, a timestamp (an interview's kind of row).
    sqlx::raw_sql("CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL, at timestamptz DEFAULT now())")
        .execute(&mut conn)
        .await
        .unwrap();
    for _ in 0..mebibytes {
        sqlx::query("INSERT INTO notes (body) SELECT repeat(md5(random()::text), 32) FROM generate_series(1, 1024)")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    drop(conn);
    add_server(p, 2, 10);
    let size = database_size(&p.db_url, &db).await;
    let (_, pg2_url, _, _) = cluster(2);
    let bare = bare_copy(&p.db_url, &db, &pg2_url).await;

    let (status, body) = p
        .request(
            Method::POST,
            &format!("/api/v1/admin/tenants/{id}/move"),
            Some(json!({ "server": "pg2" })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let asked = Instant::now();
    let mut seen: Vec<(String, Duration)> = vec![];
    loop {
        let phase: String = sqlx::query_scalar(
            "SELECT phase FROM tenant_moves WHERE tenant_id = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(tenant_id(&id).0)
        .fetch_one(&p.pool)
        .await
        .unwrap();
        if seen.last().map(|(p, _)| p != &phase).unwrap_or(true) {
            seen.push((phase.clone(), asked.elapsed()));
        }
        if phase == "done" || phase == "rolled_back" {
            assert_eq!(phase, "done", "the benchmark's move rolled back");
            break;
        }
        assert!(asked.elapsed() < Duration::from_secs(900), "move too slow");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = asked.elapsed();
    let at = |name: &str| seen.iter().find(|(p, _)| p == name).map(|(_, t)| *t);
    let copy = match (at("stopped"), at("copied").or(at("switched"))) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => total,
    };
    let per_mib = |d: Duration| d.as_secs_f64() / mib(size).max(0.001);
    println!(
        "move of {:.1} MiB (pg_database_size) to another server:",
        mib(size)
    );
    println!(
        "  bare pg_dump | pg_restore      {:>7.2} s  {:.3} s/MiB",
        bare.as_secs_f64(),
        per_mib(bare)
    );
    println!(
        "  copy phase of the move         {:>7.2} s  {:.3} s/MiB  (dump to a file, restore as the tenant in one transaction, row counts on both sides)",
        copy.as_secs_f64(),
        per_mib(copy)
    );
    println!(
        "  whole move (request → done)    {:>7.2} s  {:.3} s/MiB  (stop, copy, switch, start healthy, drop the old copy)",
        total.as_secs_f64(),
        per_mib(total)
    );
    println!(
        "  ratio to the bare copy: copy phase {:.2}, whole move {:.2}",
        copy.as_secs_f64() / bare.as_secs_f64(),
        total.as_secs_f64() / bare.as_secs_f64()
    );
    let line: Vec<String> = seen
        .iter()
        .map(|(p, t)| format!("{p} at {:.2} s", t.as_secs_f64()))
        .collect();
    println!("  phases seen: {}", line.join(", "));
}

fn main() {
    let number = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let p = Platform::start(Options::default()).await;
        queries(&p, number("BENCH_QUERY_SECS", 10)).await;
        a_move(&p, number("BENCH_MOVE_MB", 64) as usize).await;
        p.cleanup().await;
    });
}
