//! Provisioning benchmark (not a test): tenants created through the API, timed
//! from "API accepted" to `active` and to the first 200 through Traefik, against
//! a floor measured in the same run: the same image created and started straight
//! through the Docker API plus the same role/database SQL, timed to healthy and to
//! the first 200 through Traefik. Prints p50/p95, the ratio control plane/floor,
//! and the control plane's peak RSS; first with the stand-in (BENCH_N tenants),
//! then with the real Fresco (`FRESCO_REAL_IMAGE`, BENCH_REAL_N tenants, default
//! 3), adding the container's peak memory during start-up and the phases of
//! Fresco's start from its log; then the real Fresco started with the start-up
//! CPU boost (`TENANT_START_CPUS`; the values in BENCH_START_CPUS, default 1)
//! against the same without it (0), tenants taken in turns from one platform
//! per value, one at a time and then BENCH_REAL_N at once: container start ->
//! ready and accepted -> active, p50/p95 and their ratio, and each start's phases.
//! Run with `scripts/bench`.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HealthConfig, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, RemoveContainerOptionsBuilder,
    StartContainerOptions,
};
use common::{env, random, subdomain, tenant_id, through_traefik, Options, Platform};
use fresco_platform::domain::TenantId;
use fresco_platform::provision::database::{ident, literal};

struct Sample {
    active: Duration,
    routed: Duration,
}

/// An image to provision, with the health check the platform gives it.
#[derive(Clone)]
struct Image {
    name: String,
    /// Docker's HEALTHCHECK test (`CMD …` or `CMD-SHELL …`).
    healthcheck: Vec<String>,
}

fn percentile(mut xs: Vec<Duration>, p: f64) -> Duration {
    xs.sort();
    let idx = ((xs.len() as f64 - 1.0) * p).round() as usize;
    xs[idx.min(xs.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn wait_routed(sub: &str, start: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(60);
    while through_traefik(sub, "/signin").await != 200 {
        assert!(Instant::now() < deadline, "{sub} never routed");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    start.elapsed()
}

/// Returns the sample, the container's peak memory, its name and the tenant id.
async fn through_platform(
    p: &Platform,
    sub: String,
    track_memory: bool,
) -> (Sample, u64, String, String) {
    let (status, body) = p.create_tenant(&sub).await;
    let accepted = Instant::now();
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let container = tenant_id(&id).container_name();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut peak_memory = 0u64;
    loop {
        let (_, t) = p
            .request(reqwest::Method::GET, &format!("/api/v1/tenants/{id}"), None)
            .await;
        if t["status"] == "active" {
            break;
        }
        assert!(Instant::now() < deadline, "{sub} never active: {t}");
        if track_memory {
            peak_memory = peak_memory.max(memory_now(p, &container).await);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let active = accepted.elapsed();
    let routed = wait_routed(&sub, accepted).await;
    (Sample { active, routed }, peak_memory, container, id)
}

/// How long each phase of Fresco's start took, from its container log (Docker's
/// timestamps), counted from the container's start: `prisma generate`, the
/// migrations, `initialize.ts` with the linger of its open Prisma client, Next's
/// boot. Empty for images that do not print these lines.
async fn start_phases(p: &Platform, container: &str) -> Vec<(&'static str, Duration)> {
    let started = p
        .docker
        .inspect_container(container, None::<InspectContainerOptions>)
        .await
        .ok()
        .and_then(|c| c.state?.started_at)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok());
    let Some(started) = started else {
        return vec![];
    };
    let options = bollard::query_parameters::LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .timestamps(true)
        .build();
    let mut logs = p.docker.logs(container, Some(options));
    let mut marks: Vec<(&'static str, chrono::DateTime<chrono::FixedOffset>)> = vec![];
    while let Some(Ok(out)) = futures::StreamExt::next(&mut logs).await {
        let line = out.to_string();
        let Some((stamp, text)) = line.split_once(' ') else {
            continue;
        };
        let Ok(at) = chrono::DateTime::parse_from_rfc3339(stamp) else {
            continue;
        };
        // Each phase ends where the next one's first line appears.
        let phase = match marks.len() {
            0 if text.contains("migrate: ") => Some("prisma generate"),
            1 if text.contains("migrate: applied") || text.contains("no pending") => {
                Some("migrations")
            }
            2 if text.contains("initializ") => Some("initialize.ts"),
            3 if text.contains("Next.js") => Some("linger until node server.js"),
            4 if text.contains("Ready in") => Some("Next boot"),
            _ => None,
        };
        if let Some(name) = phase {
            marks.push((name, at));
        }
    }
    let mut previous = started;
    marks
        .into_iter()
        .map(|(name, at)| {
            let d = (at - previous).to_std().unwrap_or_default();
            previous = at;
            (name, d)
        })
        .collect()
}

/// The container's memory use now (bytes), 0 when it has none yet.
async fn memory_now(p: &Platform, container: &str) -> u64 {
    let options = bollard::query_parameters::StatsOptionsBuilder::new()
        .stream(false)
        .one_shot(true)
        .build();
    let mut stats = p.docker.stats(container, Some(options));
    match futures::StreamExt::next(&mut stats).await {
        Some(Ok(s)) => s.memory_stats.and_then(|m| m.usage).unwrap_or(0),
        _ => 0,
    }
}

/// The same work without the control plane: role + schema SQL, then the same
/// container straight through the Docker API.
async fn floor(p: &Platform, sub: String, image: &Image) -> (Sample, TenantId) {
    let start = Instant::now();
    let id = TenantId::new();
    let (role, db) = (ident(&id.role_name()), ident(&id.database_name()));
    let password = random(32);
    let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
    sqlx::raw_sql(&format!(
        "CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE CONNECTION LIMIT 20;
         GRANT {role} TO CURRENT_USER;
         ALTER ROLE {role} PASSWORD {pw};",
        pw = literal(&verifier),
    ))
    .execute(&p.pool)
    .await
    .unwrap();
    sqlx::raw_sql(&format!("CREATE DATABASE {db} OWNER {role}"))
        .execute(&p.pool)
        .await
        .unwrap();
    sqlx::raw_sql(&format!(
        "REVOKE ALL ON DATABASE {db} FROM PUBLIC; GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {role};"
    ))
    .execute(&p.pool)
    .await
    .unwrap();
    let network = env("TENANTS_NETWORK");
    let gateway = p
        .docker
        .inspect_network(
            &network,
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .unwrap()
        .ipam
        .and_then(|i| i.config)
        .and_then(|c| c.into_iter().find_map(|c| c.gateway))
        .unwrap();
    let url = format!(
        "postgres://{}:{password}@{gateway}:{}/{}",
        id.role_name(),
        env("FP_PG_PORT"),
        id.database_name(),
    );
    let router = format!("floor-{}", id.simple());
    let labels = HashMap::from([
        ("traefik.enable".to_owned(), "true".to_owned()),
        ("traefik.docker.network".to_owned(), network.clone()),
        (
            format!("traefik.http.routers.{router}.rule"),
            format!("Host(`{sub}.{}`)", env("BASE_DOMAIN")),
        ),
        (
            format!("traefik.http.routers.{router}.entrypoints"),
            env("TRAEFIK_ENTRYPOINT"),
        ),
        (
            format!("traefik.http.services.{router}.loadbalancer.server.port"),
            "3000".to_owned(),
        ),
        ("fresco-platform.instance".to_owned(), p.instance.clone()),
    ]);
    let body = ContainerCreateBody {
        image: Some(image.name.clone()),
        env: Some(vec![
            format!("DATABASE_URL={url}"),
            format!("DATABASE_URL_UNPOOLED={url}"),
            format!("PUBLIC_URL=http://{sub}.{}", env("BASE_DOMAIN")),
            "HOSTNAME=0.0.0.0".to_owned(),
            "PORT=3000".to_owned(),
        ]),
        labels: Some(labels),
        healthcheck: Some(HealthConfig {
            test: Some(image.healthcheck.clone()),
            interval: Some(1_000_000_000),
            timeout: Some(5_000_000_000),
            retries: Some(3),
            start_period: Some(120_000_000_000),
            start_interval: None,
        }),
        host_config: Some(HostConfig {
            memory: Some(512 << 20),
            memory_swap: Some(3 * (512 << 20)),
            nano_cpus: Some(500_000_000),
            pids_limit: Some(100),
            network_mode: Some(network),
            ..Default::default()
        }),
        ..Default::default()
    };
    let name = format!("fresco_floor_{}", id.simple());
    let options = CreateContainerOptionsBuilder::new().name(&name).build();
    p.docker
        .create_container(Some(options), body)
        .await
        .unwrap();
    p.docker
        .start_container(&name, None::<StartContainerOptions>)
        .await
        .unwrap();
    loop {
        let c = p
            .docker
            .inspect_container(&name, None::<InspectContainerOptions>)
            .await
            .unwrap();
        let health = c
            .state
            .and_then(|s| s.health)
            .and_then(|h| h.status)
            .map(|s| s.to_string());
        if health.as_deref() == Some("healthy") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let active = start.elapsed();
    let routed = wait_routed(&sub, start).await;
    (Sample { active, routed }, id)
}

async fn remove_floor(p: &Platform, id: TenantId) {
    let name = format!("fresco_floor_{}", id.simple());
    let _ = p
        .docker
        .remove_container(
            &name,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await;
    let (role, db) = (ident(&id.role_name()), ident(&id.database_name()));
    let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&p.pool)
        .await;
    let _ = sqlx::raw_sql(&format!("DROP OWNED BY {role}; DROP ROLE {role};"))
        .execute(&p.pool)
        .await;
}

fn report(label: &str, samples: &[Sample], floor: &[Sample]) {
    let f = |xs: &[Sample], sel: fn(&Sample) -> Duration, p: f64| {
        percentile(xs.iter().map(sel).collect(), p)
    };
    for (what, sel) in [
        (
            "accepted->active",
            (|s: &Sample| s.active) as fn(&Sample) -> Duration,
        ),
        ("accepted->first 200", |s: &Sample| s.routed),
    ] {
        let (p50, p95) = (f(samples, sel, 0.5), f(samples, sel, 0.95));
        let (f50, f95) = (f(floor, sel, 0.5), f(floor, sel, 0.95));
        println!(
            "{label:<12} {what:<20} p50 {:>7.0} ms  p95 {:>7.0} ms | floor p50 {:>7.0} ms  p95 {:>7.0} ms | ratio p50 {:.2}  p95 {:.2}",
            ms(p50), ms(p95), ms(f50), ms(f95), ms(p50) / ms(f50), ms(p95) / ms(f95)
        );
    }
}

/// One real Fresco start through a platform: accepted -> active, and its phases
/// from the container's start to Next's "Ready in" line.
struct RealStart {
    active: Duration,
    phases: Vec<(&'static str, Duration)>,
}

impl RealStart {
    /// Container start -> ready: the phases together, when all were seen.
    fn ready(&self) -> Option<Duration> {
        (self.phases.last().map(|(name, _)| *name) == Some("Next boot"))
            .then(|| self.phases.iter().map(|(_, d)| *d).sum())
    }
}

/// Starts one tenant, reads its phases, and destroys it (idle Fresco containers
/// run a `node` health check every second, which would weigh on the next start).
async fn real_start(p: &Platform, label: &str) -> RealStart {
    let sub = subdomain(label);
    let (sample, _, container, id) = through_platform(p, sub.clone(), false).await;
    let phases = start_phases(p, &container).await;
    let nano_cpus = p
        .docker
        .inspect_container(&container, None::<InspectContainerOptions>)
        .await
        .ok()
        .and_then(|c| c.host_config?.nano_cpus);
    assert_eq!(
        nano_cpus,
        Some(500_000_000),
        "{sub}: active above its limit"
    );
    p.destroy(&id, &sub).await;
    p.wait_status(&id, "destroyed", Duration::from_secs(60))
        .await;
    RealStart {
        active: sample.active,
        phases,
    }
}

/// The real Fresco with the start-up CPU boost against without it, in one run:
/// one platform per `TENANT_START_CPUS` value (`BENCH_START_CPUS`, comma
/// separated, default 1, the platform's) and one with 0, taking turns (who goes first rotates)
/// so all meet the same host; first one tenant at a time, then `n` at once
/// (twice per platform).
async fn boost_comparison(image: &Image, n: usize) {
    let levels = std::env::var("BENCH_START_CPUS").unwrap_or_else(|_| "1".to_owned());
    let mut levels: Vec<String> = levels.split(',').map(|l| l.trim().to_owned()).collect();
    levels.push("0".to_owned());
    let mut platforms = vec![];
    for start_cpus in &levels {
        let p = Platform::start(Options {
            process: true,
            extra: vec![
                ("RECONCILE_CONCURRENCY", n.max(4).to_string()),
                ("FRESCO_IMAGE", image.name.clone()),
                ("FRESCO_HEALTHCHECK", platform_healthcheck(image)),
                ("HEALTH_TIMEOUT_SECS", "300".to_owned()),
                ("TENANT_START_CPUS", start_cpus.clone()),
            ],
            ..Default::default()
        })
        .await;
        platforms.push(p);
    }
    println!(
        "real Fresco start-up CPU boost: {n} tenants per platform one at a time, then twice {n} at once; TENANT_START_CPUS {} (TENANT_CPUS 0.5)",
        levels.join(" / ")
    );
    let k = platforms.len();
    let mut sequential: Vec<Vec<RealStart>> = (0..k).map(|_| vec![]).collect();
    for round in 0..n {
        for turn in 0..k {
            let which = (round + turn) % k;
            sequential[which].push(real_start(&platforms[which], "bseq").await);
        }
    }
    // Each platform twice, in order and then in reverse, so a host growing busier
    // or quieter over the run weighs on all alike.
    let mut concurrent: Vec<Vec<RealStart>> = (0..k).map(|_| vec![]).collect();
    for which in (0..k).chain((0..k).rev()) {
        let starts =
            futures::future::join_all((0..n).map(|_| real_start(&platforms[which], "bconc"))).await;
        concurrent[which].extend(starts);
    }
    let off = k - 1;
    for (label, starts) in [("sequential", &sequential), ("concurrent", &concurrent)] {
        for (level, with) in levels.iter().zip(starts).take(off) {
            for (what, sel) in [
                (
                    "container start->ready",
                    RealStart::ready as fn(&RealStart) -> Option<Duration>,
                ),
                ("accepted->active", |s: &RealStart| Some(s.active)),
            ] {
                let with: Vec<Duration> = with.iter().filter_map(sel).collect();
                let without: Vec<Duration> = starts[off].iter().filter_map(sel).collect();
                if with.is_empty() || without.is_empty() {
                    println!("{label:<12} {what:<24} not measured (phases missing from the log)");
                    continue;
                }
                let (b50, b95) = (percentile(with.clone(), 0.5), percentile(with, 0.95));
                let (o50, o95) = (percentile(without.clone(), 0.5), percentile(without, 0.95));
                println!(
                    "{label:<12} {what:<24} start cpus {level:<4} p50 {:>7.0} ms  p95 {:>7.0} ms | 0: p50 {:>7.0} ms  p95 {:>7.0} ms | ratio p50 {:.2}  p95 {:.2}",
                    ms(b50), ms(b95), ms(o50), ms(o95), ms(b50) / ms(o50), ms(b95) / ms(o95)
                );
            }
        }
    }
    for (label, starts) in [("sequential", &sequential), ("concurrent", &concurrent)] {
        for (level, tenants) in levels.iter().zip(starts) {
            for (i, start) in tenants.iter().enumerate() {
                let phases: Vec<String> = start
                    .phases
                    .iter()
                    .map(|(name, d)| format!("{name} {:.1} s", d.as_secs_f64()))
                    .collect();
                println!(
                    "start phases, {label}, start cpus {level}, tenant {}: {}",
                    i + 1,
                    phases.join(", ")
                );
            }
        }
    }
    for p in platforms {
        p.cleanup().await;
    }
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// One image's measurement: floor and platform, sequential and concurrent.
async fn bench(label: &str, image: Image, n: usize, track_memory: bool) {
    let extra = vec![
        ("RECONCILE_CONCURRENCY", n.max(4).to_string()),
        ("FRESCO_IMAGE", image.name.clone()),
        ("FRESCO_HEALTHCHECK", platform_healthcheck(&image)),
        ("HEALTH_TIMEOUT_SECS", "300".to_owned()),
    ];
    let p = Platform::start(Options {
        process: true,
        extra,
        ..Default::default()
    })
    .await;
    let start_cpus = std::env::var("TENANT_START_CPUS").unwrap_or_else(|_| "1 (default)".into());
    println!(
        "{label}: {n} tenants, image {}, TENANT_START_CPUS {start_cpus}",
        image.name
    );
    let mut floor_seq = vec![];
    let mut floor_ids = vec![];
    for _ in 0..n {
        let (s, id) = floor(&p, subdomain("floor"), &image).await;
        floor_seq.push(s);
        floor_ids.push(id);
    }
    let mut seq = vec![];
    let mut peaks = vec![];
    let mut phases: Vec<Vec<(&'static str, Duration)>> = vec![];
    for _ in 0..n {
        let (s, peak, container, _) = through_platform(&p, subdomain("seq"), track_memory).await;
        seq.push(s);
        peaks.push(peak);
        if track_memory {
            phases.push(start_phases(&p, &container).await);
        }
    }
    let floor_conc: Vec<(Sample, TenantId)> =
        futures::future::join_all((0..n).map(|_| floor(&p, subdomain("floorc"), &image))).await;
    let conc: Vec<Sample> =
        futures::future::join_all((0..n).map(|_| through_platform(&p, subdomain("conc"), false)))
            .await
            .into_iter()
            .map(|(s, _, _, _)| s)
            .collect();
    let (floor_conc, ids): (Vec<Sample>, Vec<TenantId>) = floor_conc.into_iter().unzip();
    floor_ids.extend(ids);

    report("sequential", &seq, &floor_seq);
    report("concurrent", &conc, &floor_conc);
    if track_memory {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        peaks.sort();
        println!(
            "container memory during start-up (sequential, sampled while not yet active): p50 {:.0} MiB, max {:.0} MiB (limit 512 MiB)",
            mib(peaks[peaks.len() / 2]),
            mib(*peaks.last().unwrap())
        );
    }
    for (i, tenant) in phases.iter().enumerate() {
        let line: Vec<String> = tenant
            .iter()
            .map(|(name, d)| format!("{name} {:.1} s", d.as_secs_f64()))
            .collect();
        println!(
            "start phases, tenant {} (from container start): {}",
            i + 1,
            line.join(", ")
        );
    }
    match p.server_pid().and_then(peak_rss_kib) {
        Some(kib) => println!("control plane peak RSS: {:.1} MiB", kib as f64 / 1024.0),
        None => println!("control plane peak RSS: unavailable"),
    }
    for id in floor_ids {
        remove_floor(&p, id).await;
    }
    p.cleanup().await;
}

/// FRESCO_HEALTHCHECK for the platform: exec form as JSON, shell form as text.
fn platform_healthcheck(image: &Image) -> String {
    match image.healthcheck.split_first() {
        Some((kind, rest)) if kind == "CMD" => serde_json::to_string(rest).unwrap(),
        _ => image.healthcheck[1..].join(" "),
    }
}

fn main() {
    let count = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let stand_in = Image {
            name: env("FRESCO_IMAGE"),
            healthcheck: std::iter::once("CMD".to_owned())
                .chain(serde_json::from_str::<Vec<String>>(&env("FRESCO_HEALTHCHECK")).unwrap())
                .collect(),
        };
        bench("stand-in", stand_in, count("BENCH_N", 5), false).await;
        match std::env::var("FRESCO_REAL_IMAGE") {
            Ok(name) => {
                let real = Image {
                    name,
                    healthcheck: vec![
                        "CMD-SHELL".to_owned(),
                        fresco_platform::config::DEFAULT_HEALTHCHECK.to_owned(),
                    ],
                };
                let n = count("BENCH_REAL_N", 3);
                bench("real Fresco", real.clone(), n, true).await;
                boost_comparison(&real, n).await;
            }
            Err(_) => println!(
                "real Fresco: skipped (FRESCO_REAL_IMAGE is not set; scripts/bench sets it)"
            ),
        }
    });
}
