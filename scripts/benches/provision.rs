//! Provisioning benchmark (not a test): tenants created through the API, timed
//! from "API accepted" to `active` and to the first 200 through Traefik, against
//! a floor measured in the same run: the same image created and started straight
//! through the Docker API plus the same role/schema SQL, timed to healthy and to
//! the first 200 through Traefik. Prints p50/p95, the ratio control plane/floor,
//! and the control plane's peak RSS. Run with `scripts/bench` (BENCH_N tenants).

#[path = "../../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HealthConfig, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, RemoveContainerOptionsBuilder,
    StartContainerOptions,
};
use common::{env, random, subdomain, through_traefik, Options, Platform};
use fresco_platform::domain::TenantId;
use fresco_platform::provision::database::{ident, literal};

struct Sample {
    active: Duration,
    routed: Duration,
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

async fn through_platform(p: &Platform, sub: String) -> Sample {
    let (status, body) = p.create_tenant(&sub).await;
    let accepted = Instant::now();
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, t) = p
            .request(reqwest::Method::GET, &format!("/api/v1/tenants/{id}"), None)
            .await;
        if t["status"] == "active" {
            break;
        }
        assert!(Instant::now() < deadline, "{sub} never active: {t}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let active = accepted.elapsed();
    let routed = wait_routed(&sub, accepted).await;
    Sample { active, routed }
}

/// The same work without the control plane: role + schema SQL, then the same
/// container straight through the Docker API.
async fn floor(p: &Platform, sub: String) -> (Sample, TenantId) {
    let start = Instant::now();
    let id = TenantId::new();
    let (role, schema) = (ident(&id.role_name()), ident(&id.schema_name()));
    let password = random(32);
    let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
    sqlx::raw_sql(&format!(
        "CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE CONNECTION LIMIT 20;
         GRANT {role} TO CURRENT_USER;
         ALTER ROLE {role} SET search_path = {schema};
         CREATE SCHEMA {schema} AUTHORIZATION {role};
         BEGIN; SELECT pg_advisory_xact_lock({lock});
         GRANT CONNECT ON DATABASE {db} TO {role};
         COMMIT;
         ALTER ROLE {role} PASSWORD {pw};",
        db = ident(&p.db_name),
        pw = literal(&verifier),
        lock = fresco_platform::provision::database::DATABASE_ACL_LOCK,
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
        "postgres://{}:{password}@{gateway}:{}/{}?schema={}",
        id.role_name(),
        env("FP_PG_PORT"),
        p.db_name,
        id.schema_name()
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
    let healthcheck: Vec<String> = std::iter::once("CMD".to_owned())
        .chain(serde_json::from_str::<Vec<String>>(&env("FRESCO_HEALTHCHECK")).unwrap())
        .collect();
    let body = ContainerCreateBody {
        image: Some(env("FRESCO_IMAGE")),
        env: Some(vec![
            format!("DATABASE_URL={url}"),
            format!("DATABASE_URL_UNPOOLED={url}"),
            format!("PUBLIC_URL=http://{sub}.{}", env("BASE_DOMAIN")),
            "HOSTNAME=0.0.0.0".to_owned(),
            "PORT=3000".to_owned(),
        ]),
        labels: Some(labels),
        healthcheck: Some(HealthConfig {
            test: Some(healthcheck),
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
    let (role, schema) = (ident(&id.role_name()), ident(&id.schema_name()));
    let lock = fresco_platform::provision::database::DATABASE_ACL_LOCK;
    let _ = sqlx::raw_sql(&format!(
        "BEGIN; SELECT pg_advisory_xact_lock({lock}); DROP SCHEMA {schema} CASCADE; DROP OWNED BY {role}; DROP ROLE {role}; COMMIT;"
    ))
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

fn main() {
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let extra = vec![("RECONCILE_CONCURRENCY", n.max(4).to_string())];
        let p = Platform::start(Options {
            process: true,
            extra,
            ..Default::default()
        })
        .await;
        println!(
            "provisioning benchmark: {n} tenants, image {}",
            env("FRESCO_IMAGE")
        );

        let mut floor_seq = vec![];
        let mut floor_ids = vec![];
        for _ in 0..n {
            let (s, id) = floor(&p, subdomain("floor")).await;
            floor_seq.push(s);
            floor_ids.push(id);
        }
        let mut seq = vec![];
        for _ in 0..n {
            seq.push(through_platform(&p, subdomain("seq")).await);
        }
        let floor_conc: Vec<(Sample, TenantId)> =
            futures::future::join_all((0..n).map(|_| floor(&p, subdomain("floorc")))).await;
        let conc: Vec<Sample> =
            futures::future::join_all((0..n).map(|_| through_platform(&p, subdomain("conc"))))
                .await;
        let (floor_conc, ids): (Vec<Sample>, Vec<TenantId>) = floor_conc.into_iter().unzip();
        floor_ids.extend(ids);

        report("sequential", &seq, &floor_seq);
        report("concurrent", &conc, &floor_conc);
        match p.server_pid().and_then(peak_rss_kib) {
            Some(kib) => println!("control plane peak RSS: {:.1} MiB", kib as f64 / 1024.0),
            None => println!("control plane peak RSS: unavailable"),
        }
        for id in floor_ids {
            remove_floor(&p, id).await;
        }
        p.cleanup().await;
    });
}
