//! Live operations: container logs (followed, filtered, resumed, exported),
//! metrics (current, history, retention, alerts), status streams, /metrics.

mod common;

use std::time::{Duration, Instant};

use common::{echo, random, subdomain, wait_traefik, Options, Platform, SseReader};
use reqwest::{Method, StatusCode};
use serde_json::Value;

const TOKEN: &str = "test-metrics-token";

fn options() -> Options {
    Options {
        extra: vec![("METRICS_TOKEN", TOKEN.into())],
        ..Default::default()
    }
}

async fn follow(p: &Platform, id: &str, query: &str, last_event_id: Option<&str>) -> SseReader {
    let mut req = p
        .http
        .get(p.url(&format!("/api/v1/tenants/{id}/logs?follow=true&{query}")))
        .bearer_auth(&p.key);
    if let Some(last) = last_event_id {
        req = req.header("last-event-id", last);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    SseReader::new(resp)
}

/// Reads `line` events until one contains `needle`.
async fn until_text(reader: &mut SseReader, needle: &str, timeout: Duration) -> Vec<common::Sse> {
    let deadline = Instant::now() + timeout;
    let mut seen = vec![];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = reader.next(left).await.unwrap_or_else(|| {
            panic!("no line containing {needle} within {timeout:?}; saw {seen:?}")
        });
        let hit = event.event == "line"
            && event.json()["text"]
                .as_str()
                .unwrap_or_default()
                .contains(needle);
        seen.push(event);
        if hit {
            return seen;
        }
    }
}

async fn scrape(p: &Platform) -> String {
    let r = p
        .http
        .get(p.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.text().await.unwrap()
}

fn gauge(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followed_logs_arrive_fast_and_keep_stdout_and_stderr_apart() {
    let p = Platform::start(options()).await;
    let sub = subdomain("logs");
    let id = p.create_active(&sub).await;
    wait_traefik(&sub, "/signin", 200, Duration::from_secs(20)).await;
    let mut reader = follow(&p, &id, "tail=0", None).await;
    let (out, err) = (format!("out-{}", random(8)), format!("err-{}", random(8)));

    let sent = Instant::now();
    echo(&sub, "stdout", &out, 1).await;
    let seen = until_text(&mut reader, &out, Duration::from_secs(1)).await;
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "took {:?}",
        sent.elapsed()
    );
    assert_eq!(seen.last().unwrap().json()["stream"], "stdout");
    let sent = Instant::now();
    echo(&sub, "stderr", &err, 1).await;
    let seen = until_text(&mut reader, &err, Duration::from_secs(1)).await;
    assert!(sent.elapsed() < Duration::from_secs(1));
    assert_eq!(seen.last().unwrap().json()["stream"], "stderr");
    drop(reader);

    // Without follow: the stderr filter gives only stderr, q filters text.
    let (status, body) = p
        .request(
            Method::GET,
            &format!("/api/v1/tenants/{id}/logs?stream=stderr"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let lines = body["data"].as_array().unwrap();
    assert!(lines.iter().all(|l| l["stream"] == "stderr"), "{body}");
    assert!(lines.iter().any(|l| l["text"] == err.as_str()));
    assert!(!lines.iter().any(|l| l["text"] == out.as_str()));
    let (_, body) = p
        .request(
            Method::GET,
            &format!("/api/v1/tenants/{id}/logs?q={out}&since=10m"),
            None,
        )
        .await;
    let lines = body["data"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "{body}");
    assert_eq!(lines[0]["text"], out.as_str(), "lines are shown as written");
    // Export as text.
    let r = p
        .http
        .get(p.url(&format!(
            "/api/v1/tenants/{id}/logs?format=text&timestamps=true"
        )))
        .bearer_auth(&p.key)
        .send()
        .await
        .unwrap();
    let disposition = r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename=") && disposition.contains(&sub),
        "{disposition}"
    );
    let text = r.text().await.unwrap();
    assert!(text.contains(&out) && text.contains(&err));
    assert!(
        !text.contains("DATABASE_URL"),
        "the container's environment leaked"
    );
    // Bad input.
    for bad in [
        "stream=both",
        "since=yesterday",
        "tail=99999999",
        "format=xml",
    ] {
        let (status, _) = p
            .request(
                Method::GET,
                &format!("/api/v1/tenants/{id}/logs?{bad}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_with_last_event_id_loses_and_repeats_no_line() {
    let p = Platform::start(options()).await;
    let sub = subdomain("resume");
    let id = p.create_active(&sub).await;
    wait_traefik(&sub, "/signin", 200, Duration::from_secs(20)).await;
    let marker = format!("seq-{}", random(6));
    let mut reader = follow(&p, &id, &format!("tail=0&q={marker}"), None).await;
    // One write of 40 lines: they share timestamps, the hard case for resuming.
    echo(&sub, "stdout", &marker, 40).await;
    let mut got: Vec<String> = vec![];
    let mut last_id = None;
    while got.len() < 15 {
        let e = reader.next(Duration::from_secs(5)).await.expect("line");
        if e.event == "line" {
            got.push(e.json()["text"].as_str().unwrap().to_owned());
            last_id = e.id.clone();
        }
    }
    drop(reader);
    echo(&sub, "stdout", &format!("{marker}-late"), 10).await;
    let mut reader = follow(&p, &id, &format!("q={marker}"), last_id.as_deref()).await;
    while got.len() < 50 {
        let e = reader
            .next(Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("stream dried up after {} lines: {got:?}", got.len()));
        if e.event == "line" {
            got.push(e.json()["text"].as_str().unwrap().to_owned());
        }
    }
    let expected: Vec<String> = (1..=40)
        .map(|i| format!("{marker} {i}"))
        .chain((1..=10).map(|i| format!("{marker}-late {i}")))
        .collect();
    assert_eq!(got, expected);
    assert!(
        reader.next(Duration::from_millis(500)).await.is_none(),
        "a line was repeated"
    );
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_follow_and_disconnect_cycles_leave_no_stream_open() {
    // Its own process: only its file descriptors are counted.
    let p = Platform::start(Options {
        process: true,
        ..options()
    })
    .await;
    let pid = p.server_pid().unwrap();
    let sub = subdomain("leak");
    let id = p.create_active(&sub).await;
    wait_traefik(&sub, "/signin", 200, Duration::from_secs(20)).await;
    let fds = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let before = fds();
    for i in 0..50 {
        let mut reader = follow(&p, &id, "tail=1", None).await;
        if i % 10 == 0 {
            echo(&sub, "stdout", "cycle", 1).await;
        }
        assert!(
            reader.next(Duration::from_secs(5)).await.is_some(),
            "cycle {i}: nothing arrived"
        );
        drop(reader);
    }
    // The server notices each client leaving and drops its Docker stream.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let open = gauge(&scrape(&p).await, "fresco_platform_open_log_streams");
        if open == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open} log streams still open after the clients left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = fds();
    assert!(
        after <= before + 8,
        "file descriptors grew from {before} to {after}: connections leaked"
    );
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followed_container_restart_is_announced_and_stop_ends_the_stream() {
    let p = Platform::start(options()).await;
    let sub = subdomain("rst");
    let id = p.create_active(&sub).await;
    wait_traefik(&sub, "/signin", 200, Duration::from_secs(20)).await;
    let mut reader = follow(&p, &id, "tail=0", None).await;
    let (status, _) = p.action(&id, "restart").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let e = reader
            .next(deadline.saturating_duration_since(Instant::now()))
            .await
            .expect("a restart event");
        if e.event == "restart" {
            break;
        }
        assert_ne!(
            e.event, "end",
            "the stream ended instead of following the restart"
        );
    }
    p.wait_status(&id, "active", Duration::from_secs(60)).await;
    wait_traefik(&sub, "/signin", 200, Duration::from_secs(20)).await;
    let after = format!("after-restart-{}", random(6));
    echo(&sub, "stdout", &after, 1).await;
    until_text(&mut reader, &after, Duration::from_secs(5)).await;

    let (status, _) = p.action(&id, "stop").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let deadline = Instant::now() + Duration::from_secs(30);
    let end = loop {
        let e = reader
            .next(deadline.saturating_duration_since(Instant::now()))
            .await
            .expect("an end event");
        if e.event == "end" {
            break e;
        }
    };
    assert_eq!(end.json()["reason"], "stopped");
    assert!(
        reader.next(Duration::from_secs(2)).await.is_none(),
        "the stream stays open after end"
    );
    // A stopped tenant's last lines stay readable.
    p.wait_status(&id, "stopped", Duration::from_secs(30)).await;
    let (status, body) = p
        .request(
            Method::GET,
            &format!("/api/v1/tenants/{id}/logs?q={after}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"].as_array().unwrap().len(), 1, "{body}");
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_history_retention_alerts_and_platform_metrics() {
    let p = Platform::start(Options {
        extra: vec![
            ("METRICS_TOKEN", TOKEN.into()),
            ("METRICS_INTERVAL_SECS", "1".into()),
            // Any use is "high": the alert must fire after 2 samples.
            ("ALERT_THRESHOLD_PERCENT", "0.001".into()),
            ("ALERT_SUSTAINED_SAMPLES", "2".into()),
        ],
        ..Default::default()
    })
    .await;
    let sub = subdomain("metrics");
    let id = p.create_active(&sub).await;
    let tid = common::tenant_id(&id);
    // An old sample that retention must remove.
    sqlx::query(
        "INSERT INTO tenant_metrics (tenant_id, sampled_at, cpu_percent, memory_bytes, memory_limit_bytes, network_rx_bytes,
                network_tx_bytes, block_read_bytes, block_write_bytes, pids)
         VALUES ($1, now() - interval '8 days', 1, 1, 1, 0, 0, 0, 0, 1)",
    )
    .bind(tid.0)
    .execute(&p.pool)
    .await
    .unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    let view = loop {
        let (status, view) = p
            .request(
                Method::GET,
                &format!("/api/v1/tenants/{id}/metrics?from=5m&step=1"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{view}");
        if view["series"].as_array().unwrap().len() >= 3 {
            break view;
        }
        assert!(
            Instant::now() < deadline,
            "the sampler recorded too little: {view}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let current = &view["current"];
    assert!(current["memoryBytes"].as_u64().unwrap() > 0, "{current}");
    assert_eq!(current["memoryLimitBytes"], 512 * 1024 * 1024);
    assert!(current["pids"].as_u64().unwrap() >= 1);
    let old: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tenant_metrics WHERE sampled_at < now() - interval '7 days'",
    )
    .fetch_one(&p.pool)
    .await
    .unwrap();
    assert_eq!(old, 0, "retention kept an 8-day-old sample");
    // Long ranges are downsampled; too fine a step is refused.
    let (status, _) = p
        .request(
            Method::GET,
            &format!("/api/v1/tenants/{id}/metrics?from=7d&step=1"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, week) = p
        .request(
            Method::GET,
            &format!("/api/v1/tenants/{id}/metrics?from=7d"),
            None,
        )
        .await;
    assert!(week["stepSeconds"].as_i64().unwrap() >= 7 * 86_400 / 300);

    // The sustained-use alert: a flag on the tenant and an event in its history.
    let deadline = Instant::now() + Duration::from_secs(20);
    let t = loop {
        let t = p.tenant(&id).await;
        if !t["resourceAlert"].is_null() {
            break t;
        }
        assert!(Instant::now() < deadline, "no resource alert: {t}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        t["metrics"]["memoryBytes"].as_u64().is_some(),
        "tenants.get carries current metrics: {t}"
    );
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tenant_events WHERE tenant_id = $1 AND kind = 'resource_alert'",
    )
    .bind(tid.0)
    .fetch_one(&p.pool)
    .await
    .unwrap();
    assert_eq!(events, 1);

    // Live stream of metrics.
    let r = p
        .http
        .get(p.url(&format!("/api/v1/tenants/{id}/metrics/stream")))
        .bearer_auth(&p.key)
        .send()
        .await
        .unwrap();
    let mut live = SseReader::new(r);
    let e = live
        .next(Duration::from_secs(5))
        .await
        .expect("a metrics event");
    assert_eq!(e.event, "metrics");
    assert!(e.json()["memoryBytes"].as_u64().is_some());
    drop(live);

    // Platform metrics: refused without the token, the series there with it.
    let r = reqwest::get(p.url("/metrics")).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = p
        .http
        .get(p.url("/metrics"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let text = scrape(&p).await;
    for series in [
        "fresco_platform_http_requests_total{method=\"GET\",route=\"/api/v1/tenants/{id}/metrics\",status=\"200\"}",
        "fresco_platform_http_request_duration_seconds_bucket",
        "fresco_platform_provisioning_duration_seconds_bucket{action=\"create\",outcome=\"success\"",
        "fresco_platform_tenants{status=\"active\"} 1",
        "fresco_platform_reconcile_queue_depth",
        "fresco_platform_reconcile_retries_total",
        "fresco_platform_docker_errors_total",
        "fresco_platform_postgres_errors_total",
        "fresco_platform_open_log_streams",
        "fresco_platform_resource_alerts_total 1",
    ] {
        assert!(text.contains(series), "missing {series} in:\n{text}");
    }
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_stream_shows_transitions_and_resumes() {
    let p = Platform::start(options()).await;
    let sub = subdomain("events");
    let id = p.create_active(&sub).await;
    let open = |last: Option<String>| {
        let p = &p;
        let id = id.clone();
        async move {
            let mut req = p
                .http
                .get(p.url(&format!("/api/v1/tenants/{id}/events")))
                .bearer_auth(&p.key);
            if let Some(l) = last {
                req = req.header("last-event-id", l);
            }
            SseReader::new(req.send().await.unwrap())
        }
    };
    let mut reader = open(None).await;
    // The history so far, then the current status.
    let mut last_id = None;
    let mut seen = vec![];
    while let Some(e) = reader.next(Duration::from_millis(800)).await {
        if e.id.is_some() {
            last_id = e.id.clone();
        }
        seen.push(e);
    }
    assert!(
        seen.iter()
            .any(|e| e.event == "deployment" && e.json()["status"] == "success"),
        "{seen:?}"
    );
    assert_eq!(seen.last().unwrap().event, "status");
    assert_eq!(seen.last().unwrap().json()["status"], "active");
    // A stop arrives as it happens.
    let (status, _) = p.action(&id, "stop").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let e = reader
            .next(deadline.saturating_duration_since(Instant::now()))
            .await
            .expect("live events");
        if e.id.is_some() {
            last_id = e.id.clone();
        }
        if e.event == "status" && e.json()["status"] == "stopped" {
            break;
        }
    }
    drop(reader);
    // Resuming replays only what came after, then the status.
    let (status, _) = p.action(&id, "start").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    p.wait_status(&id, "active", Duration::from_secs(60)).await;
    let mut reader = open(last_id).await;
    let mut replay = vec![];
    while let Some(e) = reader.next(Duration::from_millis(800)).await {
        replay.push(e);
    }
    let deployments: Vec<(String, String)> = replay
        .iter()
        .filter(|e| e.event == "deployment")
        .map(|e| {
            (
                e.json()["action"].as_str().unwrap().to_owned(),
                e.json()["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        deployments,
        vec![
            ("start".into(), "initiated".into()),
            ("start".into(), "success".into())
        ],
        "{replay:?}"
    );
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_member_cannot_read_logs_metrics_or_events() {
    let p = Platform::start(options()).await;
    let id = p.create_active(&subdomain("priv")).await;
    let stranger = p
        .member(
            &format!("stranger-{}@test.invalid", random(6)),
            "violet-tundra-42-kettle",
        )
        .await;
    for path in [
        format!("/api/v1/tenants/{id}/logs"),
        format!("/api/v1/tenants/{id}/logs?follow=true"),
        format!("/api/v1/tenants/{id}/metrics"),
        format!("/api/v1/tenants/{id}/metrics/stream"),
        format!("/api/v1/tenants/{id}/events"),
    ] {
        let r = p
            .http
            .get(p.url(&path))
            .bearer_auth(&stranger.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        let r = p.http.get(p.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let (status, _) = p
        .request(Method::GET, &format!("/api/v1/tenants/{id}/logs"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "admin reads logs");
    let (status, _): (StatusCode, Value) = p
        .request(Method::GET, &format!("/api/v1/tenants/{id}/metrics"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "admin reads metrics");
    p.cleanup().await;
}
