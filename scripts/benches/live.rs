//! Live-operations benchmark (not a test), against a baseline in the same run:
//! 1. Log throughput: the stand-in writes 200,000 lines as fast as it can; lines/s
//!    delivered to a follower through the API vs `docker logs -f` on the same
//!    container (a burst each), and the ratio.
//! 2. 100 concurrent followers on one tenant during a burst: the control plane's
//!    CPU time and RSS.
//! 3. Metrics sampler cost per tenant: one pass over N active tenants vs the same
//!    Docker stats calls made one after another straight through the API.
//!
//! Run with `scripts/bench`.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use bollard::query_parameters::StatsOptions;
use common::{env, random, subdomain, wait_traefik, Options, Platform, SseReader};
use futures::StreamExt;
use tokio::io::AsyncBufReadExt;

const TOKEN: &str = "bench-metrics-token";

async fn burst(sub: &str, n: u32) {
    let port = env("TRAEFIK_HTTP_PORT");
    let host = format!("{sub}.{}", env("BASE_DOMAIN"));
    let r = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{port}/stand-in/burst?n={n}&stream=stdout"
        ))
        .header("Host", host)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "burst refused");
}

/// Counts `burst line` events on an API follower until `burst done`.
async fn api_follower(p: &Platform, id: &str) -> SseReader {
    let r = p
        .http
        .get(p.url(&format!("/api/v1/tenants/{id}/logs?follow=true&tail=0")))
        .bearer_auth(&p.key)
        .send()
        .await
        .unwrap();
    SseReader::new(r)
}

async fn drain(mut reader: SseReader, n: u32) -> u32 {
    let mut lines = 0;
    while let Some(e) = reader.next(Duration::from_secs(60)).await {
        if e.event != "line" {
            continue;
        }
        if e.data.contains("burst line") {
            lines += 1;
        } else if e.data.contains(&format!("burst done {n}")) {
            break;
        }
    }
    lines
}

fn proc_stat(pid: u32) -> (f64, u64, u64) {
    let ticks = 100.0; // USER_HZ on Linux.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let cpu = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (cpu / ticks, kib("VmRSS:"), kib("VmHWM:"))
}

fn main() {
    let n: u32 = std::env::var("BENCH_LOG_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let followers: usize = std::env::var("BENCH_FOLLOWERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let tenants: usize = std::env::var("BENCH_SAMPLER_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let p = Platform::start(Options {
            process: true,
            extra: vec![
                ("METRICS_TOKEN", TOKEN.into()),
                ("METRICS_INTERVAL_SECS", "2".into()),
                // All followers are one user: lift the per-user stream cap for them.
                ("STREAMS_PER_USER", (followers + 10).to_string()),
            ],
            ..Default::default()
        })
        .await;
        let pid = p.server_pid().unwrap();
        let sub = subdomain("bench-logs");
        let id = p.create_active(&sub).await;
        wait_traefik(&sub, "/signin", 200, Duration::from_secs(30)).await;
        let container = common::tenant_id(&id).container_name();

        // 1. Throughput: the API follower, then `docker logs -f`, each on its own burst.
        let reader = api_follower(&p, &id).await;
        let start = Instant::now();
        burst(&sub, n).await;
        let got = drain(reader, n).await;
        let api_secs = start.elapsed().as_secs_f64();
        assert_eq!(got, n, "the API follower lost lines");

        let mut docker = tokio::process::Command::new("docker")
            .args(["logs", "-f", "--since", "0s", "--tail", "0", &container])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut out = tokio::io::BufReader::new(docker.stdout.take().unwrap()).lines();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let start = Instant::now();
        burst(&sub, n).await;
        let mut docker_lines = 0;
        while let Ok(Some(line)) = out.next_line().await {
            if line.starts_with("burst line") {
                docker_lines += 1;
            } else if line == format!("burst done {n}") {
                break;
            }
        }
        let docker_secs = start.elapsed().as_secs_f64();
        let _ = docker.kill().await;
        let (api_rate, docker_rate) = (n as f64 / api_secs, docker_lines as f64 / docker_secs);
        println!(
            "log throughput ({n} lines): API follower {api_rate:>9.0} lines/s ({api_secs:.2} s) | docker logs -f {docker_rate:>9.0} lines/s ({docker_secs:.2} s) | ratio {:.2}",
            api_rate / docker_rate
        );

        // 2. Many followers during a smaller burst.
        let lines_each = n / 10;
        let (cpu0, rss0, _) = proc_stat(pid);
        let readers: Vec<SseReader> = futures::future::join_all((0..followers).map(|_| api_follower(&p, &id))).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (_, rss_open, _) = proc_stat(pid);
        let start = Instant::now();
        burst(&sub, lines_each).await;
        let counts: Vec<u32> = futures::future::join_all(readers.into_iter().map(|r| drain(r, lines_each))).await;
        let secs = start.elapsed().as_secs_f64();
        let (cpu1, rss1, hwm) = proc_stat(pid);
        let complete = counts.iter().filter(|c| **c == lines_each).count();
        println!(
            "{followers} followers x {lines_each} lines: all delivered in {secs:.2} s ({complete}/{followers} complete), control-plane CPU {:.2} s ({:.0}% of one core), RSS {:.1} MiB idle -> {:.1} MiB with streams open -> {:.1} MiB after (peak {:.1} MiB)",
            cpu1 - cpu0,
            (cpu1 - cpu0) / secs * 100.0,
            rss0 as f64 / 1024.0,
            rss_open as f64 / 1024.0,
            rss1 as f64 / 1024.0,
            hwm as f64 / 1024.0
        );

        // 3. Sampler cost per tenant.
        let mut ids = vec![id.clone()];
        for _ in 1..tenants {
            ids.push(p.create_active(&subdomain(&format!("bench-s{}", random(3)))).await);
        }
        tokio::time::sleep(Duration::from_secs(7)).await;
        let scrape = p.http.get(p.url("/metrics")).bearer_auth(TOKEN).send().await.unwrap().text().await.unwrap();
        let value = |name: &str| {
            scrape.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        };
        let passes = value("fresco_platform_metrics_sampler_pass_seconds_count");
        let mean_pass = value("fresco_platform_metrics_sampler_pass_seconds_sum") / passes.max(1.0);
        let sampled = value("fresco_platform_metrics_sampler_tenants");
        let start = Instant::now();
        for id in &ids {
            let name = common::tenant_id(id).container_name();
            let mut s = p.docker.stats(&name, Some(StatsOptions { stream: false, one_shot: true }));
            let _ = s.next().await;
        }
        let sequential = start.elapsed().as_secs_f64();
        println!(
            "sampler: {sampled:.0} tenants per pass, mean pass {:.1} ms ({:.1} ms per tenant, over {passes:.0} passes) | sequential Docker stats floor {:.1} ms ({:.1} ms per tenant) | ratio {:.2}",
            mean_pass * 1000.0,
            mean_pass * 1000.0 / sampled.max(1.0),
            sequential * 1000.0,
            sequential * 1000.0 / ids.len() as f64,
            mean_pass / sequential
        );
        p.cleanup().await;
    });
}
