//! The API at scale (not a test; part of issue 13's 1,000-tenant benchmark):
//! `BENCH_SCALE` tenants in the table (default 10,000: nine in ten destroyed, the
//! rest stopped), then `BENCH_CLIENTS` (32) concurrent clients for
//! `BENCH_SCALE_SECS` (10) seconds each on `tenants.list` (the admin's first
//! page, a page by cursor deep in the list, a member's own) and `tenants.get`,
//! against `GET /api/health` with the same clients in the same run (the HTTP
//! stack's floor). Prints p50/p99 and requests/s against the targets
//! (list p99 < 5 ms and ≥ 2,000 req/s on 2 cores; get p99 < 20 ms) and the
//! floor. The platform runs in this process (a release build).
//! Run with `scripts/bench` (or `cargo bench --bench scale`).

#[path = "../../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Options, Platform};

fn number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(xs: &mut [Duration], p: f64) -> Duration {
    if xs.is_empty() {
        return Duration::ZERO;
    }
    xs.sort();
    let idx = ((xs.len() as f64 - 1.0) * p).round() as usize;
    xs[idx.min(xs.len() - 1)]
}

struct Figures {
    rate: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

/// `clients` clients asking `path` (with `key`) for `seconds`.
async fn load(p: &Platform, key: &str, path: &str, clients: usize, seconds: u64) -> Figures {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let url = p.url(path);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let jobs: Vec<_> = (0..clients)
        .map(|_| {
            let (http, url, key) = (http.clone(), url.clone(), key.to_owned());
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0usize);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match http.get(&url).bearer_auth(&key).send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            latencies.push(t.elapsed());
                        }
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let (mut all, mut errors) = (Vec::new(), 0);
    for job in jobs {
        let (l, e) = job.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rate = all.len() as f64 / elapsed;
    Figures {
        rate,
        p50: percentile(&mut all, 0.5),
        p99: percentile(&mut all, 0.99),
        errors,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn line(label: &str, f: &Figures, floor: &Figures, target: &str) {
    println!(
        "  {label:<40} {:>7.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {:<3} \
         rate {:.2}× of the floor, p99 {:.1}× the floor's   target: {target}",
        f.rate,
        ms(f.p50),
        ms(f.p99),
        f.errors,
        f.rate / floor.rate,
        ms(f.p99) / ms(floor.p99).max(0.001),
    );
}

fn main() {
    let scale = number("BENCH_SCALE", 10_000) as i64;
    let clients = number("BENCH_CLIENTS", 32) as usize;
    let seconds = number("BENCH_SCALE_SECS", 10);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        // The rate limit is not what is measured here.
        let p = Platform::start(Options {
            extra: vec![("RATE_LIMIT_GENERAL", "1000000000".into())],
            ..Options::default()
        })
        .await;
        let member = p
            .verified_member("scale-member@test.invalid", "a long password 1")
            .await;
        // Settled rows (nothing for the reconciler to do): nine in ten destroyed,
        // the rest stopped; one in a hundred the member's.
        let admin: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE role = 'admin'")
            .fetch_one(&p.pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO tenants (id, user_id, tenant_identifier, subdomain, status, desired_state,
                                  observed_generation, created_at)
             SELECT gen_random_uuid(), CASE WHEN g % 100 = 0 THEN $2 ELSE $1 END, 'scale' || g,
                    'scale-' || g,
                    CASE WHEN g % 10 = 0 THEN 'stopped' ELSE 'destroyed' END,
                    CASE WHEN g % 10 = 0 THEN 'stopped' ELSE 'destroyed' END,
                    1, now() - make_interval(secs => g)
               FROM generate_series(1, $3) g",
        )
        .bind(admin)
        .bind(member.id)
        .bind(scale)
        .execute(&p.pool)
        .await
        .unwrap();
        sqlx::query("ANALYZE tenants").execute(&p.pool).await.unwrap();
        let stopped: String = sqlx::query_scalar(
            "SELECT id::text FROM tenants WHERE status = 'stopped' ORDER BY created_at DESC LIMIT 1",
        )
        .fetch_one(&p.pool)
        .await
        .unwrap();
        // A cursor deep in the list: the page after the tenant at 90 %.
        let (_, deep) = p
            .request(
                reqwest::Method::GET,
                &format!("/api/v1/tenants?perPage=100&page={}", (scale * 9 / 10) / 100),
                None,
            )
            .await;
        let cursor = deep["meta"]["nextCursor"].as_str().unwrap_or_default().to_owned();
        println!(
            "tenants.list and tenants.get with {scale} tenants in the table ({} stopped, the rest destroyed), \
             {clients} concurrent clients, {seconds} s each, the platform in this process (release build), 2 cores",
            scale / 10
        );
        println!(
            "the floor is GET /api/health with the same clients in the same run; ratios to it do not depend on the machine as figures do"
        );
        let floor = load(&p, &p.key, "/api/health", clients, seconds).await;
        line("GET /api/health (floor)", &floor, &floor, "-");
        let list = load(&p, &p.key, "/api/v1/tenants?perPage=20", clients, seconds).await;
        line("tenants.list, admin, first page", &list, &floor, "p99 < 5 ms, ≥ 2000 req/s");
        let by_cursor = load(
            &p,
            &p.key,
            &format!("/api/v1/tenants?perPage=20&after={cursor}"),
            clients,
            seconds,
        )
        .await;
        line("tenants.list, admin, by cursor at 90 %", &by_cursor, &floor, "p99 < 5 ms, ≥ 2000 req/s");
        let by_page = load(
            &p,
            &p.key,
            &format!("/api/v1/tenants?perPage=20&page={}", (scale * 9 / 10) / 20),
            clients,
            seconds,
        )
        .await;
        line("tenants.list, admin, page number at 90 %", &by_page, &floor, "(offset: for comparison)");
        let own = load(&p, &member.key, "/api/v1/tenants?perPage=20", clients, seconds).await;
        line("tenants.list, a member's own", &own, &floor, "p99 < 5 ms, ≥ 2000 req/s");
        let get = load(&p, &p.key, &format!("/api/v1/tenants/{stopped}"), clients, seconds).await;
        line("tenants.get (a stopped tenant)", &get, &floor, "p99 < 20 ms");
        sqlx::query("DELETE FROM tenants WHERE tenant_identifier LIKE 'scale%'")
            .execute(&p.pool)
            .await
            .unwrap();
        p.cleanup().await;
    });
}
