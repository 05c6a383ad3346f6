//! Memory and errors under load (a measurement, not a test): the control plane's
//! RSS when idle, then through the property-based fuzz of `scripts/fuzz` and a
//! mixed load of GETs (health, tenants list, tenant get, the OpenAPI document) at
//! 500 requests/s for 60 s from `wrk`, sampled every 100 ms; how many requests of
//! either failed with a 5xx. The platform runs as its own process (release build).
//!
//! Run with `scripts/load`. `LOAD_SECONDS` (60), `LOAD_RATE` (500 requests/s) and
//! `FUZZ_EXAMPLES` (60 per operation) change the amounts.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{random, subdomain, Options, Platform};

/// Spreads requests over the connections: each waits a random 0 to 2·C/rate
/// seconds before each request (C/rate on average), so C connections together
/// send about `rate` requests/s without marching in step. Each thread corrects
/// that wait by how far it is ahead of or behind its share (response times add to
/// it; wrk's clock is whole seconds, hence a slow correction).
const WRK_SCRIPT: &str = r#"
local key = os.getenv("FP_LOAD_KEY")
local rate = tonumber(os.getenv("FP_LOAD_RATE"))
local connections = tonumber(os.getenv("FP_LOAD_CONNECTIONS"))
local share = rate / tonumber(os.getenv("FP_LOAD_THREADS"))
local paths = {
  "/api/health",
  "/api/v1/tenants",
  "/api/v1/tenants/" .. os.getenv("FP_LOAD_TENANT"),
  "/api/openapi.json",
}
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() + #threads)
  n, ok, client, server = 0, 0, 0, 0
  started, factor = os.time(), 1.0
end

function delay()
  local expected = (os.time() - started + 0.5) * share
  if n > expected then factor = math.min(factor * 1.01, 2.0)
  else factor = math.max(factor * 0.99, 0.5) end
  return math.random(0, math.floor(factor * 2000 * connections / rate))
end

function request()
  n = n + 1
  return wrk.format("GET", paths[(n % #paths) + 1], { ["Authorization"] = "Bearer " .. key })
end

function response(status, headers, body)
  if status >= 500 then server = server + 1
  elseif status >= 400 then client = client + 1
  else ok = ok + 1 end
end

function done(summary, latency, requests)
  local t = { ok = 0, client = 0, server = 0 }
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + thread:get(k) end
  end
  local e = summary.errors
  io.write(string.format(
    "LOAD requests=%d seconds=%.1f ok=%d 4xx=%d 5xx=%d socket_errors=%d p50_ms=%.2f p99_ms=%.2f\n",
    summary.requests, summary.duration / 1e6, t.ok, t.client, t.server,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"#;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The highest RSS seen while it runs.
struct Peak {
    kib: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Peak {
    fn watch(pid: u32) -> Self {
        let kib = Arc::new(AtomicU64::new(0));
        let seen = kib.clone();
        let task = tokio::spawn(async move {
            loop {
                seen.fetch_max(rss_kib(pid, "VmRSS:"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self { kib, task }
    }

    fn stop(self) -> u64 {
        self.task.abort();
        self.kib.load(Ordering::Relaxed)
    }
}

/// wrk's summary line (`LOAD key=value ...`).
struct Load(String);

impl Load {
    fn field(&self, name: &str) -> f64 {
        self.0
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    }
}

/// `seconds` of mixed GETs at about `rate` requests/s over 100 connections.
async fn wrk(p: &Platform, tenant: &str, dir: &std::path::Path, seconds: u64, rate: u64) -> Load {
    let connections = 100;
    let script = dir.join("load.lua");
    std::fs::write(&script, WRK_SCRIPT).unwrap();
    let output = tokio::process::Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s")])
        .arg("-s")
        .arg(&script)
        .arg(&p.base)
        .env("FP_LOAD_KEY", &p.key)
        .env("FP_LOAD_TENANT", tenant)
        .env("FP_LOAD_RATE", rate.to_string())
        .env("FP_LOAD_CONNECTIONS", connections.to_string())
        .env("FP_LOAD_THREADS", "2")
        .output()
        .await
        .expect("wrk runs (scripts/load installs it)");
    let out = String::from_utf8_lossy(&output.stdout);
    let line = out
        .lines()
        .find(|l| l.starts_with("LOAD "))
        .unwrap_or_else(|| panic!("no summary from wrk: {out}"));
    Load(line.to_owned())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (seconds, rate) = (env_or("LOAD_SECONDS", 60), env_or("LOAD_RATE", 500));
    let dir = std::env::temp_dir().join(format!("fp-load-{}", random(8)));
    std::fs::create_dir_all(&dir).unwrap();
    let p = Platform::start(Options {
        process: true,
        log_file: Some(dir.join("platform.log")),
        process_env: vec![("RUST_LOG", "warn".into())],
        extra: vec![
            ("RATE_LIMIT_GENERAL", "10000000".into()),
            ("RATE_LIMIT_LOGIN", "100000".into()),
            ("METRICS_TOKEN", random(32)),
        ],
        ..Options::default()
    })
    .await;
    let pid = p.server_pid().unwrap();
    let tenant = p.create_active(&subdomain("load")).await;
    // Idle: started, one tenant, nothing asked for a while.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle = rss_kib(pid, "VmRSS:");
    println!("idle RSS {:.1} MiB", mib(idle));

    let peak = Peak::watch(pid);
    let fuzz = p.fuzz(env_or("FUZZ_EXAMPLES", 60) as u32).await;
    let after_fuzz = peak.stop();
    println!(
        "fuzz: {} requests over {} operations in {:.0} s, failures {:?}; peak RSS {:.1} MiB",
        fuzz.generated,
        fuzz.operations,
        fuzz.seconds,
        fuzz.failures,
        mib(after_fuzz)
    );

    let peak = Peak::watch(pid);
    let load = wrk(&p, &tenant, &dir, seconds, rate).await;
    let after_load = peak.stop();
    let (requests, secs) = (load.field("requests"), load.field("seconds"));
    println!(
        "load: {requests} requests in {secs:.0} s ({:.0}/s), 5xx {}, 4xx {}, socket errors {}, p50 {} ms, p99 {} ms; peak RSS {:.1} MiB",
        requests / secs,
        load.field("5xx"),
        load.field("4xx"),
        load.field("socket_errors"),
        load.field("p50_ms"),
        load.field("p99_ms"),
        mib(after_load)
    );
    let now = rss_kib(pid, "VmRSS:");
    let ratio = |kib: u64| kib as f64 / idle as f64;
    println!(
        "RSS: idle {:.1} MiB; peak {:.1} MiB during the fuzz ({:.2}x), {:.1} MiB during the load ({:.2}x); after both {:.1} MiB ({:.2}x); high-water mark {:.1} MiB",
        mib(idle),
        mib(after_fuzz),
        ratio(after_fuzz),
        mib(after_load),
        ratio(after_load),
        mib(now),
        ratio(now),
        mib(rss_kib(pid, "VmHWM:")),
    );
    let server_errors = load.field("5xx") as u64
        + fuzz
            .failures
            .iter()
            .filter(|f| f.starts_with("ST101"))
            .count() as u64;
    println!(
        "verdict: RSS after the fuzz and the load within 2x of idle: {}; requests failed with 5xx: {server_errors}",
        if now <= 2 * idle { "yes" } else { "NO" },
    );
    p.cleanup().await;
    let _ = std::fs::remove_dir_all(&dir);
}
