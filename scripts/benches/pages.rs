//! Pages benchmark (not a test), each figure against a baseline measured in the
//! same run:
//! 1. Server-side render time of every page, p50/p95 over `BENCH_PAGE_REQUESTS`
//!    requests, for a user with 100 instances on the dashboard, against
//!    `GET /api/health` (the cheapest answer the same server gives) and against
//!    the JSON tenant list with the same 100 instances.
//! 2. The JavaScript and CSS of all pages together (each page loads a part),
//!    raw and gzipped (`gzip -9`).
//! 3. First load in headless Chromium (Navigation Timing, `loadEventEnd`): a
//!    fresh browser opening the landing page and the dashboard, against the same
//!    browser opening `GET /api/health`.
//!
//! Run with `scripts/bench` (or `cargo bench --bench pages` with the stack up).

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::browser::Browser;
use common::{random, Options, Platform};

const INSTANCES: usize = 100;
const PASSWORD: &str = "bench password for pages";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// p50 and p95 of `n` sequential GETs of `path`, in milliseconds.
async fn time_gets(client: &reqwest::Client, base: &str, path: &str, n: usize) -> (f64, f64, u16) {
    let mut times = Vec::with_capacity(n);
    let mut status = 0;
    for _ in 0..n {
        let t = Instant::now();
        let r = client.get(format!("{base}{path}")).send().await.unwrap();
        status = r.status().as_u16();
        let _ = r.bytes().await.unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (percentile(&times, 0.5), percentile(&times, 0.95), status)
}

fn gzipped(bytes: &[u8]) -> usize {
    let mut child = Command::new("gzip")
        .arg("-9c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    child.wait_with_output().unwrap().stdout.len()
}

/// Navigation Timing of the page on screen: (DOMContentLoaded, load) in ms.
async fn navigation(b: &Browser) -> (f64, f64) {
    let v = b
        .client
        .execute(
            "var n = performance.getEntriesByType('navigation')[0]; return [n.domContentLoadedEventEnd, n.loadEventEnd];",
            vec![],
        )
        .await
        .unwrap();
    (v[0].as_f64().unwrap_or(0.0), v[1].as_f64().unwrap_or(0.0))
}

async fn wait_loaded(b: &Browser) {
    for _ in 0..100 {
        let (_, load) = navigation(b).await;
        if load > 0.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main]
async fn main() {
    let requests: usize = std::env::var("BENCH_PAGE_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let p = Platform::start(Options::default()).await;
    let email = format!("bench-{}@test.invalid", random(6).to_lowercase());
    let member = p.verified_member(&email, PASSWORD).await;
    // 100 stopped instances, written straight into the store (no containers:
    // this measures rendering, not Docker).
    for i in 0..INSTANCES {
        let id = uuid::Uuid::new_v4();
        sqlx::query(
            "INSERT INTO tenants (id, user_id, tenant_identifier, subdomain, status, desired_state)
             VALUES ($1, $2, $3, $4, 'stopped', 'stopped')",
        )
        .bind(id)
        .bind(member.id)
        .bind(id.simple().to_string())
        .bind(format!("bench-{i:03}-{}", random(4).to_lowercase()))
        .execute(&p.pool)
        .await
        .unwrap();
    }
    sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1")
        .bind(member.id)
        .execute(&p.pool)
        .await
        .unwrap();
    let some_instance: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM tenants WHERE user_id = $1 LIMIT 1")
            .bind(member.id)
            .fetch_one(&p.pool)
            .await
            .unwrap();

    let browser_http = p.browser();
    let login = browser_http
        .post(p.url("/login"))
        .form(&[("email", email.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert!(login.status().is_success() || login.status().is_redirection());

    println!("== 1. server-side render, {requests} sequential GETs each, {INSTANCES} instances ==");
    let (h50, h95, _) = time_gets(&browser_http, &p.base, "/api/health", requests).await;
    let (j50, j95, _) = time_gets(
        &browser_http,
        &p.base,
        "/api/v1/tenants?perPage=100",
        requests,
    )
    .await;
    println!("baseline GET /api/health              p50 {h50:6.2} ms  p95 {h95:6.2} ms");
    println!("baseline GET /api/v1/tenants (100)    p50 {j50:6.2} ms  p95 {j95:6.2} ms");
    let instance = format!("/instances/{some_instance}");
    let pages = [
        "/",
        "/login",
        "/signup",
        "/dashboard",
        "/dashboard?view=list",
        instance.as_str(),
        "/settings",
        "/settings/notifications",
        "/support",
        "/admin/instances",
        "/admin/users",
        "/admin/audit",
    ];
    let mut worst = 0.0f64;
    for page in pages {
        let (p50, p95, status) = time_gets(&browser_http, &p.base, page, requests).await;
        worst = worst.max(p95);
        println!(
            "{page:38} p50 {p50:6.2} ms  p95 {p95:6.2} ms  ({status})  p95 ratio to health {:5.1}x, to JSON list {:4.2}x",
            p95 / h95,
            p95 / j95
        );
    }
    println!("slowest page p95: {worst:.2} ms (target < 20 ms)");

    println!("\n== 2. JavaScript and CSS of every page together ==");
    let mut raw = 0;
    let mut gz = 0;
    // Every script and stylesheet, as if one page loaded them all.
    let mut names: Vec<&str> = fresco_platform::web::assets::names()
        .filter(|n| n.ends_with(".js") || n.ends_with(".css"))
        .collect();
    names.sort();
    for name in names {
        let bytes = fresco_platform::web::assets::served(name).expect("asset");
        let g = gzipped(bytes);
        raw += bytes.len();
        gz += g;
        println!("{name:34} {:7} bytes  gzipped {g:6}", bytes.len());
    }
    println!("total                              {raw:7} bytes  gzipped {gz:6} (target < 102,400)");

    println!("\n== 3. first load in headless Chromium (Navigation Timing) ==");
    let b = Browser::open(&p).await;
    b.goto("/api/health").await;
    wait_loaded(&b).await;
    let (_, base_load) = navigation(&b).await;
    let cold = Browser::open(&p).await;
    cold.goto("/").await;
    wait_loaded(&cold).await;
    let (landing_dcl, landing_load) = navigation(&cold).await;
    cold.sign_in(&email, PASSWORD).await;
    cold.goto("/dashboard").await;
    wait_loaded(&cold).await;
    let (dash_dcl, dash_load) = navigation(&cold).await;
    println!("baseline /api/health            load {base_load:7.1} ms");
    println!("landing, cold cache             DOMContentLoaded {landing_dcl:7.1} ms  load {landing_load:7.1} ms  ({:.1}x baseline)", landing_load / base_load.max(0.1));
    println!("dashboard (100), assets cached  DOMContentLoaded {dash_dcl:7.1} ms  load {dash_load:7.1} ms  ({:.1}x baseline)", dash_load / base_load.max(0.1));
    b.close().await;
    cold.close().await;
    sqlx::query("DELETE FROM tenants WHERE user_id = $1")
        .bind(member.id)
        .execute(&p.pool)
        .await
        .ok();
    p.cleanup().await;
}
