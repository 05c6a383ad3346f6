//! The start-up CPU boost (`TENANT_START_CPUS`), read from the container's
//! `HostConfig.NanoCpus`: boosted while a start the platform made is under way,
//! at the declared limit once the tenant is active, after a failed start, and
//! after a hand raised it; never boosted when the boost is off.

mod common;

use std::time::{Duration, Instant};

use common::{random, subdomain, Options, Platform};
use reqwest::StatusCode;

/// TENANT_CPUS the harness runs with (the default).
const LIMIT: i64 = 500_000_000;
/// TENANT_START_CPUS asked for here: above the limit, and distinct from a host's
/// whole CPU count so the cap shows.
const BOOST_CPUS: f64 = 1.5;
/// How long the slow stand-in takes to open its port.
const SLOW_START_MS: u64 = 5000;

/// The stand-in, taking `SLOW_START_MS` to start (its `STANDIN_STARTUP_DELAY_MS`,
/// baked into an image of its own since the platform sets the container's env).
struct SlowImage(String);

impl SlowImage {
    fn build() -> Self {
        let base = common::env("FRESCO_STANDIN_IMAGE");
        let tag = format!("fresco-platform-test/slow-{}:latest", random(8));
        let dir = std::env::temp_dir().join(format!("slow-image-{}", random(8)));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("Dockerfile"),
            format!("FROM {base}\nENV STANDIN_STARTUP_DELAY_MS={SLOW_START_MS}\n"),
        )
        .unwrap();
        let built = std::process::Command::new("docker")
            .args(["build", "-q", "-t", &tag])
            .arg(&dir)
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            built.status.success(),
            "docker build of the slow stand-in: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        Self(tag)
    }
}

impl Drop for SlowImage {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rmi", "-f", &self.0])
            .stdout(std::process::Stdio::null())
            .status();
    }
}

fn options(image: &SlowImage, start_cpus: &str, extra: &[(&'static str, &str)]) -> Options {
    let mut all = vec![
        ("FRESCO_IMAGE", image.0.clone()),
        ("TENANT_START_CPUS", start_cpus.to_owned()),
    ];
    all.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    Options {
        extra: all,
        ..Default::default()
    }
}

/// The boost Docker can give on this host: at most its CPU count.
async fn expected_boost(p: &Platform) -> i64 {
    let host = p.docker.info().await.unwrap().ncpu.unwrap();
    (BOOST_CPUS.min(host as f64) * 1e9) as i64
}

/// What one look at the container saw.
#[derive(Debug, Clone)]
struct Look {
    id: String,
    running: bool,
    health: String,
    nano_cpus: i64,
}

async fn look(p: &Platform, id: &str) -> Option<Look> {
    let c = p.container(id).await?;
    let state = c.state.unwrap_or_default();
    Some(Look {
        id: c.id.unwrap_or_default(),
        running: state.running == Some(true),
        health: state
            .health
            .and_then(|h| h.status)
            .map(|s| s.to_string())
            .unwrap_or_default(),
        nano_cpus: c.host_config.and_then(|h| h.nano_cpus).unwrap_or(0),
    })
}

/// Looks at the tenant's container until the tenant is `status` with nothing in
/// flight; returns every look taken while its container was running and starting.
async fn looks_until(p: &Platform, id: &str, status: &str) -> Vec<Look> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut starting = vec![];
    loop {
        if let Some(l) = look(p, id).await {
            if l.running && l.health == "starting" {
                starting.push(l);
            }
        }
        let t = p.tenant(id).await;
        if t["status"] == status && t["currentAction"].is_null() {
            return starting;
        }
        assert!(Instant::now() < deadline, "never {status}: {t:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_all_at(looks: &[Look], nano_cpus: i64, what: &str) {
    assert!(!looks.is_empty(), "{what}: the start was never seen");
    let off: Vec<&Look> = looks.iter().filter(|l| l.nano_cpus != nano_cpus).collect();
    assert!(
        off.is_empty(),
        "{what}: expected NanoCpus {nano_cpus} throughout; {} of {} looks had another, first {:?}",
        off.len(),
        looks.len(),
        off[0]
    );
}

async fn create(p: &Platform, label: &str) -> String {
    let (status, body) = p.create_tenant(&subdomain(label)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_run_boosted_until_healthy_and_then_at_the_limit_in_place() {
    let image = SlowImage::build();
    let p = Platform::start(options(&image, &BOOST_CPUS.to_string(), &[])).await;
    let boost = expected_boost(&p).await;
    assert!(boost > LIMIT);

    // Create: boosted from the first look, at the limit once active.
    let id = create(&p, "boost").await;
    let created = looks_until(&p, &id, "active").await;
    assert_all_at(&created, boost, "create");
    let active = look(&p, &id).await.unwrap();
    assert_eq!(active.nano_cpus, LIMIT, "{active:?}");
    assert_eq!(active.id, created[0].id, "put back in place, not recreated");
    // The spec hash is of the declared limit: resyncs (every 2 s) see nothing stale.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let later = look(&p, &id).await.unwrap();
    assert_eq!(
        (later.id.as_str(), later.nano_cpus),
        (active.id.as_str(), LIMIT)
    );

    // Restart: Fresco migrates at every start, so it is boosted again.
    let (status, body) = p.action(&id, "restart").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let restarted = looks_until(&p, &id, "active").await;
    assert_all_at(&restarted, boost, "restart");
    assert_eq!(look(&p, &id).await.unwrap().nano_cpus, LIMIT);

    // Start of the stopped container: boosted again, then at the limit.
    assert_eq!(p.action(&id, "stop").await.0, StatusCode::ACCEPTED);
    p.wait_status(&id, "stopped", Duration::from_secs(30)).await;
    assert_eq!(look(&p, &id).await.unwrap().nano_cpus, LIMIT);
    assert_eq!(p.action(&id, "start").await.0, StatusCode::ACCEPTED);
    let started = looks_until(&p, &id, "active").await;
    assert_all_at(&started, boost, "start");
    let end = look(&p, &id).await.unwrap();
    assert_eq!(
        (end.id.as_str(), end.nano_cpus),
        (active.id.as_str(), LIMIT)
    );

    let log = p.deployments(&id).await;
    assert!(
        log.iter().all(|(a, s)| a != "update" && s != "failed"),
        "{log:?}"
    );
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_allocation_raised_by_hand_on_an_active_tenant_is_put_back_in_place() {
    let p = Platform::start(Options {
        extra: vec![("TENANT_START_CPUS", BOOST_CPUS.to_string())],
        ..Default::default()
    })
    .await;
    let id = p.create_active(&subdomain("hand")).await;
    let before = p.container(&id).await.unwrap();
    assert_eq!(before.host_config.as_ref().unwrap().nano_cpus, Some(LIMIT));
    let started_at = before.state.unwrap().started_at;

    let name = common::tenant_id(&id).container_name();
    let raised = bollard::models::ContainerUpdateBody {
        nano_cpus: Some(1_000_000_000),
        ..Default::default()
    };
    p.docker.update_container(&name, raised).await.unwrap();
    assert_eq!(look(&p, &id).await.unwrap().nano_cpus, 1_000_000_000);

    // The resync (every 2 s) notices and updates it: no recreate, no restart.
    let deadline = Instant::now() + Duration::from_secs(20);
    while look(&p, &id).await.unwrap().nano_cpus != LIMIT {
        assert!(Instant::now() < deadline, "never put back at its limit");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = p.container(&id).await.unwrap();
    assert_eq!(after.id, before.id, "recreated");
    assert_eq!(after.state.unwrap().started_at, started_at, "restarted");
    assert_eq!(p.tenant(&id).await["status"], "active");
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_times_out_is_put_back_at_its_limit() {
    let image = SlowImage::build();
    // Healthy after SLOW_START_MS (counted from its own start, after the
    // action began), but the platform gives up 4 s into the action: the boosted
    // window is long enough to be seen on a busy host.
    let p = Platform::start(options(
        &image,
        &BOOST_CPUS.to_string(),
        &[("HEALTH_TIMEOUT_SECS", "4")],
    ))
    .await;
    let boost = expected_boost(&p).await;
    let id = create(&p, "late").await;
    let mut seen_boost = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let l = look(&p, &id).await;
        seen_boost |= l.as_ref().is_some_and(|l| l.nano_cpus == boost);
        if p.tenant(&id).await["status"] == "error" {
            break;
        }
        assert!(Instant::now() < deadline, "never ended in error");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen_boost, "the start was boosted");
    let l = look(&p, &id).await.unwrap();
    assert!(l.running, "the late container still runs: {l:?}");
    assert_eq!(l.nano_cpus, LIMIT, "{l:?}");
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_boost_off_a_start_never_goes_above_the_limit() {
    let image = SlowImage::build();
    let p = Platform::start(options(&image, "0", &[])).await;
    let id = create(&p, "noboost").await;
    let created = looks_until(&p, &id, "active").await;
    assert_all_at(&created, LIMIT, "create");
    let (status, body) = p.action(&id, "restart").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let restarted = looks_until(&p, &id, "active").await;
    assert_all_at(&restarted, LIMIT, "restart");
    assert_eq!(look(&p, &id).await.unwrap().nano_cpus, LIMIT);
    p.cleanup().await;
}
