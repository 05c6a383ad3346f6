//! Long-lived streams (followed logs, tenant events, usage samples) end soon
//! after their caller loses access, each user holds a bounded number of them,
//! and a large log read without follow does not sit in the control plane's memory.

mod common;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::{echo, random, subdomain, wait_traefik, Member, Options, Platform, SseReader};
use fresco_platform::store::sessions::{self, TokenPurpose};
use fresco_platform::store::users;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const PASSWORD: &str = "violet-tundra-42-kettle";
const NEW_PASSWORD: &str = "amber-glacier-77-lantern";
/// STREAM_RECHECK_SECS in these tests (the default is the 15 s keepalive).
const RECHECK: Duration = Duration::from_secs(1);
/// A stream ends within one re-check of losing access, plus this for the
/// query and the network.
const MARGIN: Duration = Duration::from_secs(2);

fn options() -> Options {
    Options {
        extra: vec![("STREAM_RECHECK_SECS", RECHECK.as_secs().to_string())],
        ..Default::default()
    }
}

/// The three long-lived streams of a tenant.
fn stream_paths(id: &str) -> [String; 3] {
    [
        format!("/api/v1/tenants/{id}/logs?follow=true&tail=1"),
        format!("/api/v1/tenants/{id}/events"),
        format!("/api/v1/tenants/{id}/metrics/stream"),
    ]
}

/// A member with a verified email and a running tenant of their own.
async fn owner_with_tenant(p: &Platform) -> (Member, String) {
    let m = p
        .member(&format!("streams-{}@test.invalid", random(6)), PASSWORD)
        .await;
    users::mark_email_verified(&p.pool, m.id, &m.email)
        .await
        .unwrap();
    let body = json!({ "subdomain": subdomain("strm"), "ownerEmail": m.email });
    let (status, body) = p.request(Method::POST, "/api/v1/tenants", Some(body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    p.wait_status(&id, "active", Duration::from_secs(60)).await;
    (m, id)
}

/// A browser signed in as `email`.
async fn signed_in(p: &Platform, email: &str) -> reqwest::Client {
    let browser = p.browser();
    let r = browser
        .post(p.url("/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    browser
}

/// A stream request with an API key, or with the client's session cookie.
async fn request(client: &reqwest::Client, url: String, key: Option<&str>) -> reqwest::Response {
    let mut req = client.get(url);
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    req.send().await.unwrap()
}

async fn open(p: &Platform, client: &reqwest::Client, path: &str, key: Option<&str>) -> SseReader {
    let r = request(client, p.url(path), key).await;
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    SseReader::new(r)
}

/// All three streams of the tenant, labelled by path.
async fn open_all(
    p: &Platform,
    client: &reqwest::Client,
    id: &str,
    key: Option<&str>,
) -> Vec<(String, SseReader)> {
    let mut readers = vec![];
    for path in stream_paths(id) {
        let reader = open(p, client, &path, key).await;
        readers.push((path, reader));
    }
    readers
}

/// Nothing ends the streams while their caller keeps access.
async fn stay_open(readers: &mut [(String, SseReader)], duration: Duration) {
    let checks = readers.iter_mut().map(|(path, reader)| async move {
        let (events, closed) = reader.read_for(duration).await;
        assert!(!closed, "{path} ended while access held; saw {events:?}");
        assert!(
            events
                .iter()
                .all(|e| e.event != "end" && e.event != "error"),
            "{path}: {events:?}"
        );
    });
    futures::future::join_all(checks).await;
}

/// Each stream sends `end` (reason `unauthorized`) and closes within one
/// re-check of `lost`; returns the slowest.
async fn all_end(readers: Vec<(String, SseReader)>, lost: Instant) -> Duration {
    let ends = readers.into_iter().map(|(path, mut reader)| async move {
        let (events, closed) = reader.read_for(RECHECK + MARGIN + MARGIN).await;
        let took = lost.elapsed();
        assert!(closed, "{path} still open {took:?} after access ended");
        let end = events.last().expect("an end event");
        assert_eq!(end.event, "end", "{path}: {events:?}");
        assert_eq!(end.json()["reason"], "unauthorized", "{path}");
        assert!(
            took <= RECHECK + MARGIN,
            "{path} ended {took:?} after access ended"
        );
        took
    });
    let took = futures::future::join_all(ends).await;
    took.into_iter().max().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_every_stream_of_the_session_within_a_recheck() {
    let p = Platform::start(options()).await;
    let (m, id) = owner_with_tenant(&p).await;
    let browser = signed_in(&p, &m.email).await;
    let session = || async {
        sqlx::query_as::<_, (DateTime<Utc>, DateTime<Utc>)>(
            "SELECT expires_at, last_seen_at FROM sessions WHERE user_id = $1",
        )
        .bind(m.id)
        .fetch_one(&p.pool)
        .await
        .unwrap()
    };
    let before = session().await;
    let mut readers = open_all(&p, &browser, &id, None).await;
    stay_open(&mut readers, RECHECK * 3).await;
    assert_eq!(session().await, before, "re-checks extended the session");

    let lost = Instant::now();
    let r = browser
        .post(p.url("/api/v1/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let took = all_end(readers, lost).await;
    eprintln!("logout: every stream ended within {took:?}");
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_an_api_key_ends_its_streams_and_no_others() {
    let p = Platform::start(options()).await;
    let (m, id) = owner_with_tenant(&p).await;
    let (status, created) = p
        .request_as(
            Some(&m.key),
            Method::POST,
            "/api/v1/api-keys",
            Some(json!({ "name": "other" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let other = created["key"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();
    let mut doomed = open_all(&p, &client, &id, Some(&m.key)).await;
    let mut kept = vec![(
        "events with the other key".to_owned(),
        open(&p, &client, &stream_paths(&id)[1], Some(&other)).await,
    )];
    stay_open(&mut doomed, RECHECK * 3).await;

    let (_, keys) = p
        .request_as(Some(&other), Method::GET, "/api/v1/api-keys", None)
        .await;
    let key_id = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "test")
        .and_then(|k| k["id"].as_str())
        .unwrap()
        .to_owned();
    let lost = Instant::now();
    let (status, _) = p
        .request_as(
            Some(&other),
            Method::DELETE,
            &format!("/api/v1/api-keys/{key_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let took = all_end(doomed, lost).await;
    eprintln!("key revocation: every stream ended within {took:?}");
    stay_open(&mut kept, RECHECK * 2).await;
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_reset_ends_the_streams_of_every_session() {
    let p = Platform::start(options()).await;
    let (m, id) = owner_with_tenant(&p).await;
    let browser = signed_in(&p, &m.email).await;
    let mut readers = open_all(&p, &browser, &id, None).await;
    stay_open(&mut readers, RECHECK * 2).await;

    // The emailed token, issued directly: this test is about what the reset ends.
    let ttl = chrono::Duration::minutes(10);
    let token =
        sessions::issue_email_token(&p.pool, m.id, &m.email, TokenPurpose::PasswordReset, ttl)
            .await
            .unwrap();
    let lost = Instant::now();
    let (status, body) = p
        .request_as(
            None,
            Method::POST,
            "/api/v1/auth/password-reset/confirm",
            Some(json!({ "token": token, "newPassword": NEW_PASSWORD })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let took = all_end(readers, lost).await;
    eprintln!("password reset: every stream ended within {took:?}");
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_admin_stops_watching_another_users_tenant() {
    let p = Platform::start(options()).await;
    let (_, id) = owner_with_tenant(&p).await;
    let watcher = p
        .member(&format!("watcher-{}@test.invalid", random(6)), PASSWORD)
        .await;
    let role = |role: &'static str| {
        let path = format!("/api/v1/admin/users/{}", watcher.id);
        let p = &p;
        async move {
            let (status, body) = p
                .request(Method::PATCH, &path, Some(json!({ "role": role })))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    };
    role("admin").await;
    let client = reqwest::Client::new();
    let mut readers = open_all(&p, &client, &id, Some(&watcher.key)).await;
    stay_open(&mut readers, RECHECK * 2).await;

    let lost = Instant::now();
    role("member").await;
    let took = all_end(readers, lost).await;
    eprintln!("demotion: every stream ended within {took:?}");
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_twenty_first_stream_gets_429_and_closing_one_frees_a_slot() {
    // The default limit: 20 streams per user.
    let p = Platform::start(options()).await;
    let (m, id) = owner_with_tenant(&p).await;
    let client = reqwest::Client::new();
    let paths = stream_paths(&id);
    // Every kind of stream counts against the same budget.
    let mut held = vec![];
    for i in 0..20 {
        held.push(open(&p, &client, &paths[i % 3], Some(&m.key)).await);
    }
    for path in &paths {
        let r = request(&client, p.url(path), Some(&m.key)).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry > 0);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "rate_limited", "{body}");
        assert!(body["meta"]["requestId"].is_string(), "{body}");
    }
    // Reading without follow is not a stream; another user has a budget of their own.
    let (status, _) = p
        .request_as(
            Some(&m.key),
            Method::GET,
            &format!("/api/v1/tenants/{id}/logs?tail=5"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    drop(open(&p, &client, &paths[1], Some(&p.key)).await);

    // A client that goes away gives its slot back.
    drop(held.pop());
    let closed = Instant::now();
    loop {
        let r = request(&client, p.url(&paths[1]), Some(&m.key)).await;
        if r.status() == StatusCode::OK {
            break;
        }
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            closed.elapsed() < Duration::from_secs(5),
            "the closed stream's slot was not freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "a closed stream's slot was free again after {:?}",
        closed.elapsed()
    );
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_logs_follow_fails_when_its_key_is_revoked() {
    let token = "streams-metrics-token";
    let mut opts = options();
    opts.extra.push(("METRICS_TOKEN", token.into()));
    let p = Platform::start(opts).await;
    let (m, id) = owner_with_tenant(&p).await;
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fresco-platform"))
        .args(["logs", &id, "-f"])
        .env("FRESCO_PLATFORM_URL", &p.base)
        .env("FRESCO_API_KEY", &m.key)
        .env_remove("FRESCO_CLI_CONFIG")
        .env(
            "HOME",
            std::env::temp_dir().join(format!("fp-cli-home-{}", random(8))),
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn logs -f");
    // Revoke only once the CLI's stream is open.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = p
            .http
            .get(p.url("/metrics"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics
            .lines()
            .any(|l| l == "fresco_platform_open_log_streams 1")
        {
            break;
        }
        assert!(Instant::now() < deadline, "logs -f never opened its stream");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, keys) = p
        .request_as(Some(&m.key), Method::GET, "/api/v1/api-keys", None)
        .await;
    let key_id = keys["data"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = p
        .request_as(
            Some(&m.key),
            Method::DELETE,
            &format!("/api/v1/api-keys/{key_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let output = tokio::time::timeout(RECHECK + MARGIN + MARGIN, child.wait_with_output())
        .await
        .expect("logs -f still running after its key was revoked")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("the platform ended the stream: access ended"),
        "stderr: {stderr}"
    );
    p.cleanup().await;
}

/// The peak resident memory of a process (VmHWM), in kB.
fn peak_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_log_read_without_follow_is_streamed_not_held_in_memory() {
    // Its own process: only its memory is measured. Docker must keep the whole
    // ~60 MB log (the default rotation keeps 3 × 10 MB).
    let mut opts = options();
    opts.extra.push(("TENANT_LOG_MAX_SIZE", "100m".into()));
    let p = Platform::start(Options {
        process: true,
        ..opts
    })
    .await;
    let pid = p.server_pid().unwrap();
    let sub = subdomain("bigtail");
    let id = p.create_active(&sub).await;
    wait_traefik(&sub, "/signin", 200, Duration::from_secs(20)).await;
    // 100,000 lines of some 600 bytes: about 60 MB of output.
    let pad = "x".repeat(600);
    for batch in 0..10 {
        echo(&sub, "stdout", &format!("big{batch}-{pad}"), 10_000).await;
    }
    let last = format!("big9-{pad} 10000");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = p
            .request(
                Method::GET,
                &format!("/api/v1/tenants/{id}/logs?tail=20&q=big9"),
                None,
            )
            .await;
        let texts = body["data"].as_array().cloned().unwrap_or_default();
        if texts.iter().any(|l| l["text"] == last.as_str()) {
            break;
        }
        assert!(Instant::now() < deadline, "the last line never arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let before = peak_kb(pid);
    let started = Instant::now();
    let r = reqwest::Client::new()
        .get(p.url(&format!("/api/v1/tenants/{id}/logs?tail=100000")))
        .bearer_auth(&p.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.bytes().await.unwrap();
    let took = started.elapsed();
    let after = peak_kb(pid);
    let answer: Value = serde_json::from_slice(&body).expect("the answer is one JSON document");
    let lines = answer["data"].as_array().unwrap();
    assert_eq!(lines.len(), 100_000);
    let big: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["text"].as_str())
        .filter(|t| t.starts_with("big"))
        .collect();
    assert_eq!(big.last().copied(), Some(last.as_str()));
    eprintln!(
        "a {} MB answer of {} lines in {took:?}: peak RSS {} MB before, {} MB after",
        body.len() / 1_000_000,
        lines.len(),
        before / 1000,
        after / 1000
    );
    assert!(
        after - before < 16_000,
        "peak RSS grew by {} MB while answering with {} MB",
        (after - before) / 1000,
        body.len() / 1_000_000
    );
    p.cleanup().await;
}
