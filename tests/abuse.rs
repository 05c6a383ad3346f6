//! Abuse and bounded resources: a flood of password steps cannot run the
//! control plane out of memory, step 1 is capped per signup and per address,
//! a made-up cookie buys no fresh request budget, and password-reset requests
//! never lock anyone out of logging in.

mod common;

use common::{random, Options, Platform};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

const PASSWORD: &str = "violet-tundra-42-kettle";

async fn post(client: &reqwest::Client, url: String, body: Value) -> reqwest::Response {
    client.post(url).json(&body).send().await.unwrap()
}

async fn open_signup(p: &Platform, client: &reqwest::Client) -> String {
    let email = format!("flood-{}@test.invalid", random(8));
    let r = post(
        client,
        p.url("/api/v1/wizard/sessions"),
        json!({ "email": email }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.unwrap();
    body["sessionId"].as_str().unwrap().to_owned()
}

async fn step_one(p: &Platform, client: &reqwest::Client, session: &str) -> reqwest::Response {
    post(
        client,
        p.url(&format!("/api/v1/wizard/sessions/{session}/steps")),
        json!({ "step": 1, "data": { "password": PASSWORD } }),
    )
    .await
}

/// `VmRSS` or `VmHWM` (the peak) of a process, in KiB.
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim_start_matches(':').split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

/// The error envelope, with the code the test expects.
async fn assert_refused(r: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(r.status(), status);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "Retry-After {retry}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["meta"]["requestId"].is_string(), "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_password_steps_keeps_the_control_plane_memory_bounded() {
    let p = Platform::start(Options {
        process: true,
        // Only the hashing gate stands between this flood and the blocking pool.
        extra: vec![("RATE_LIMIT_LOGIN", "100000".into())],
        ..Default::default()
    })
    .await;
    let pid = p.server_pid().unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let flood = (10 * cores).max(40);
    let client = p.browser();
    let mut sessions = Vec::new();
    for _ in 0..flood {
        sessions.push(open_signup(&p, &client).await);
    }
    let idle = memory_kib(pid, "VmRSS");

    let answers: Vec<reqwest::Response> = futures::future::join_all(
        sessions
            .iter()
            .map(|s| step_one(&p, &client, s))
            .collect::<Vec<_>>(),
    )
    .await;
    let peak = memory_kib(pid, "VmHWM");
    let mut ok = 0;
    for r in answers {
        match r.status() {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_refused(r, StatusCode::SERVICE_UNAVAILABLE, "busy").await;
            }
            other => panic!("a password step answered {other}"),
        }
    }
    eprintln!(
        "{flood} concurrent step-1 requests on {cores} cores: RSS {} MiB idle, peak {} MiB; {ok} hashed",
        idle / 1024,
        peak / 1024
    );
    assert!(ok >= 1, "some passwords are hashed");
    // Argon2id takes 19 MiB a hash and the gate lets one run per core; the rest
    // is slack for the requests themselves. Unbounded, this flood took 670 MiB.
    let allowed = (cores as u64) * 25 * 1024 + 40 * 1024;
    assert!(
        peak.saturating_sub(idle) < allowed,
        "peak RSS grew by {} MiB (allowed {} MiB)",
        peak.saturating_sub(idle) / 1024,
        allowed / 1024
    );
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_steps_are_capped_per_signup_session_and_per_address() {
    let p = Platform::start(Options {
        extra: vec![
            ("RATE_LIMIT_LOGIN", "8".into()),
            ("RATE_LIMIT_WIZARD_PASSWORDS", "5".into()),
        ],
        ..Default::default()
    })
    .await;
    let client = p.browser();
    let first = open_signup(&p, &client).await;
    let second = open_signup(&p, &client).await;
    for attempt in 1..=5 {
        let r = step_one(&p, &client, &first).await;
        assert_eq!(r.status(), StatusCode::OK, "attempt {attempt}");
    }
    let r = step_one(&p, &client, &first).await;
    let body = assert_refused(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("this signup"),
        "{body}"
    );
    // The address has had 5 of its 8: the second session gets the other 3.
    for attempt in 1..=3 {
        let r = step_one(&p, &client, &second).await;
        assert_eq!(r.status(), StatusCode::OK, "attempt {attempt}");
    }
    let r = step_one(&p, &client, &second).await;
    let body = assert_refused(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("this address"),
        "{body}"
    );
    // The other steps go on: the session still works.
    let r = post(
        &client,
        p.url(&format!("/api/v1/wizard/sessions/{first}/steps")),
        json!({ "step": 2, "data": { "intendedUse": "study" } }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_credentials_share_their_address_budget() {
    let p = Platform::start(Options {
        extra: vec![
            ("RATE_LIMIT_GENERAL", "100".into()),
            ("RATE_LIMIT_GENERAL_WINDOW_SECS", "600".into()),
        ],
        ..Default::default()
    })
    .await;
    let m = p
        .member(&format!("budget-{}@test.invalid", random(6)), PASSWORD)
        .await;
    // A real key proves itself once; from then on it spends its user's budget.
    let (status, _) = p
        .request_as(Some(&m.key), reqwest::Method::GET, "/api/v1/auth/me", None)
        .await;
    assert_eq!(status, StatusCode::OK);

    let statuses: Vec<StatusCode> = futures::stream::iter(0..2000)
        .map(|i| {
            let req = p.http.get(p.url("/api/v1/auth/me"));
            let req = if i % 2 == 0 {
                req.header("cookie", format!("fp_session={}", random(32)))
            } else {
                req.bearer_auth(random(40))
            };
            async move { req.send().await.unwrap().status() }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    let unauthorized = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(limited + unauthorized, 2000, "only 401 or 429");
    assert!(
        unauthorized <= 99,
        "the address had 99 requests left; {unauthorized} got through"
    );
    let r = p
        .http
        .get(p.url("/api/health"))
        .header("cookie", format!("fp_session={}", random(32)))
        .send()
        .await
        .unwrap();
    assert_refused(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;

    // The verified user keeps its own budget, though it calls from the same address.
    let (status, body) = p
        .request_as(Some(&m.key), reqwest::Method::GET, "/api/v1/auth/me", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_requests_for_a_victim_do_not_lock_the_victim_out_of_login() {
    let p = Platform::start(Options::default()).await;
    let victim = p
        .member(&format!("victim-{}@test.invalid", random(6)), PASSWORD)
        .await;
    let stranger = reqwest::Client::new();
    let mut limited = 0;
    for _ in 0..10 {
        let r = post(
            &stranger,
            p.url("/api/v1/auth/password-reset"),
            json!({ "email": victim.email }),
        )
        .await;
        match r.status() {
            StatusCode::ACCEPTED => {}
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("reset request answered {other}"),
        }
    }
    let r = post(
        &p.browser(),
        p.url("/api/v1/auth/login"),
        json!({ "email": victim.email, "password": PASSWORD }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK, "the victim still logs in");
    assert!(limited > 0, "ten resets for one email are throttled");
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_longer_than_an_address_can_be_is_refused_before_it_is_counted() {
    let p = Platform::start(Options::default()).await;
    let long = format!("{}@test.invalid", "a".repeat(300));
    for (path, body) in [
        (
            "/api/v1/auth/login",
            json!({ "email": long, "password": PASSWORD }),
        ),
        ("/api/v1/auth/password-reset", json!({ "email": long })),
    ] {
        let r = post(&reqwest::Client::new(), p.url(path), body).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["details"]["field"], "email", "{body}");
    }
    p.cleanup().await;
}
