//! The signup wizard through HTTP, as a browser walks it: four steps, deploy,
//! progress until active, and the instance answering through Traefik.

mod common;

use std::time::{Duration, Instant};

use common::{random, subdomain, wait_traefik, Options, Platform};
use reqwest::StatusCode;
use serde_json::{json, Value};

const PASSWORD: &str = "violet-tundra-42-kettle";

async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut req = client.request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, resp.json().await.unwrap_or(Value::Null), headers)
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> (StatusCode, Value) {
    let (s, b, _) = send(client, reqwest::Method::POST, url, Some(body)).await;
    (s, b)
}

/// Opens a session and completes the given steps; returns its id.
async fn walk(
    p: &Platform,
    client: &reqwest::Client,
    email: &str,
    sub: &str,
    steps: i32,
) -> String {
    let (status, body) = post(
        client,
        p.url("/api/v1/wizard/sessions"),
        json!({ "email": email }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["sessionId"].as_str().unwrap().to_owned();
    let data = [
        json!({ "password": PASSWORD, "name": "Ada Researcher" }),
        json!({ "intendedUse": "study" }),
        json!({ "subdomain": sub }),
        json!({ "accepted": true, "termsVersion": "2026-01" }),
    ];
    for step in 1..=steps {
        let (status, body) = post(
            client,
            p.url(&format!("/api/v1/wizard/sessions/{id}/steps")),
            json!({ "step": step, "data": data[(step - 1) as usize] }),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "step {step}: {body}");
    }
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_wizard_deploys_an_instance_reachable_through_traefik() {
    let p = Platform::start(Options::default()).await;
    let browser = p.browser();
    let sub = subdomain("wiz");
    let email = format!("ada-{}@test.invalid", random(6));

    // Availability check, and suggestions for a reserved name.
    let (status, check, _) = send(
        &browser,
        reqwest::Method::GET,
        p.url(&format!("/api/v1/wizard/subdomain-check?subdomain={sub}")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(check["available"], true, "{check}");
    let (_, reserved, _) = send(
        &browser,
        reqwest::Method::GET,
        p.url("/api/v1/wizard/subdomain-check?subdomain=admin"),
        None,
    )
    .await;
    assert_eq!(reserved["valid"], false);
    assert_eq!(reserved["rule"], "reserved");
    assert_eq!(
        reserved["suggestions"].as_array().unwrap().len(),
        3,
        "{reserved}"
    );

    let (status, created) = post(
        &browser,
        p.url("/api/v1/wizard/sessions"),
        json!({ "email": email }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["next"], "account");
    let id = created["sessionId"].as_str().unwrap().to_owned();
    let steps = p.url(&format!("/api/v1/wizard/sessions/{id}/steps"));

    // Step 1: rules enforced, strength scored, password kept only as a hash.
    let (status, body) = post(
        &browser,
        steps.clone(),
        json!({ "step": 1, "data": { "password": "short" } }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["details"]["rule"], "min_length");
    let (status, body) = post(
        &browser,
        steps.clone(),
        json!({ "step": 1, "data": { "password": email } }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["details"]["rule"], "not_email");
    let (status, body) = post(
        &browser,
        steps.clone(),
        json!({ "step": 1, "data": { "password": PASSWORD } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["strength"]["score"].as_u64().unwrap() >= 3, "{body}");
    assert_eq!(body["nextStep"], 2);
    let stored: Option<String> =
        sqlx::query_scalar("SELECT password_hash FROM signup_sessions WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&p.pool)
            .await
            .unwrap();
    assert!(stored.unwrap().starts_with("$argon2id$"));

    // Step 2: testing gets the sandbox suggestion, and may still go on.
    let (status, body) = post(
        &browser,
        steps.clone(),
        json!({ "step": 2, "data": { "intendedUse": "testing" } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["suggestion"]["sandboxUrl"].is_string(), "{body}");
    let (status, body) = post(
        &browser,
        steps.clone(),
        json!({ "step": 2, "data": { "intendedUse": "other" } }),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "other needs a description: {body}"
    );
    let (status, body) = post(
        &browser,
        steps.clone(),
        json!({ "step": 3, "data": { "subdomain": sub } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = post(
        &browser,
        steps.clone(),
        json!({ "step": 4, "data": { "accepted": false, "termsVersion": "2026-01" } }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = post(
        &browser,
        steps.clone(),
        json!({ "step": 4, "data": { "accepted": true, "termsVersion": "2026-01" } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["nextStep"].is_null());

    // Deploy: the user and tenant exist, the browser is signed in.
    let deploy = p.url(&format!("/api/v1/wizard/sessions/{id}/deploy"));
    let (status, body, headers) = send(
        &browser,
        reqwest::Method::POST,
        deploy.clone(),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let cookie = headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let tenant = body["tenantId"].as_str().unwrap().to_owned();
    let (status, me, _) = send(
        &browser,
        reqwest::Method::GET,
        p.url("/api/v1/auth/me"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["email"], email);
    assert_eq!(me["role"], "member");

    // A double submit gives the same tenant.
    let (status, again) = post(&browser, deploy, json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again["tenantId"], tenant.as_str());

    // Progress until active.
    let deadline = Instant::now() + Duration::from_secs(90);
    let status_url = p.url(&format!("/api/v1/tenants/{tenant}/deployment"));
    let mut phases = vec![];
    let done = loop {
        let (status, progress, _) =
            send(&browser, reqwest::Method::GET, status_url.clone(), None).await;
        assert_eq!(status, StatusCode::OK, "{progress}");
        let phase = progress["phase"].as_str().unwrap().to_owned();
        if phases.last() != Some(&phase) {
            phases.push(phase.clone());
        }
        if phase == "active" {
            break progress;
        }
        assert_ne!(phase, "failed", "{progress}");
        assert!(Instant::now() < deadline, "never active: {progress}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["percentage"], 100);
    assert!(
        done["setup"]["url"].as_str().unwrap().ends_with("/setup"),
        "{done}"
    );
    assert!(done["setup"]["deadline"].is_string());
    assert!(!done["quickStart"].as_array().unwrap().is_empty());
    assert!(phases.len() >= 2, "the progress step saw only {phases:?}");
    wait_traefik(&sub, "/signin", 200, Duration::from_secs(20)).await;

    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE email = $1")
        .bind(&email)
        .fetch_one(&p.pool)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"));
    let left: Option<String> =
        sqlx::query_scalar("SELECT password_hash FROM signup_sessions WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&p.pool)
            .await
            .unwrap();
    assert!(
        left.is_none(),
        "the signup session still holds the password hash"
    );
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wizard_misuse_gets_clear_errors_and_creates_nothing() {
    let p = Platform::start(Options {
        extra: vec![("FRESCO_IMAGE", "127.0.0.1:9/never/pulled:1".into())],
        ..Default::default()
    })
    .await;
    let client = p.browser();
    let count = |table: &'static str| {
        let pool = p.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let users_before = count("users").await;

    // Skipping ahead names the missing step.
    let id = walk(
        &p,
        &client,
        &format!("skip-{}@test.invalid", random(6)),
        &subdomain("skip"),
        1,
    )
    .await;
    let (status, body) = post(
        &client,
        p.url(&format!("/api/v1/wizard/sessions/{id}/steps")),
        json!({ "step": 3, "data": { "subdomain": subdomain("x") } }),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["details"]["missingStep"], 2);
    // Deploying an incomplete session.
    let (status, body) = post(
        &client,
        p.url(&format!("/api/v1/wizard/sessions/{id}/deploy")),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "step_missing");
    // A malformed step.
    let (status, _) = post(
        &client,
        p.url(&format!("/api/v1/wizard/sessions/{id}/steps")),
        json!({ "step": 2, "data": { "nope": 1 } }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // An unknown session.
    let (status, _) = post(
        &client,
        p.url(&format!(
            "/api/v1/wizard/sessions/{}/deploy",
            uuid::Uuid::new_v4()
        )),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An expired session.
    let expired = walk(
        &p,
        &client,
        &format!("late-{}@test.invalid", random(6)),
        &subdomain("late"),
        4,
    )
    .await;
    sqlx::query(
        "UPDATE signup_sessions SET expires_at = now() - interval '1 minute' WHERE id = $1::uuid",
    )
    .bind(&expired)
    .execute(&p.pool)
    .await
    .unwrap();
    let (status, body) = post(
        &client,
        p.url(&format!("/api/v1/wizard/sessions/{expired}/deploy")),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    let (status, _) = post(
        &client,
        p.url(&format!("/api/v1/wizard/sessions/{expired}/steps")),
        json!({ "step": 1, "data": { "password": PASSWORD } }),
    )
    .await;
    assert_eq!(status, StatusCode::GONE);

    // Two signups race for one subdomain: the second loses at deploy, cleanly.
    let contested = subdomain("race");
    let first = walk(
        &p,
        &p.browser(),
        &format!("one-{}@test.invalid", random(6)),
        &contested,
        4,
    )
    .await;
    let loser_email = format!("two-{}@test.invalid", random(6));
    let second = walk(&p, &p.browser(), &loser_email, &contested, 4).await;
    let (status, body) = post(
        &p.browser(),
        p.url(&format!("/api/v1/wizard/sessions/{first}/deploy")),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = post(
        &p.browser(),
        p.url(&format!("/api/v1/wizard/sessions/{second}/deploy")),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "subdomain_taken");
    assert_eq!(
        body["error"]["details"]["suggestions"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "{body}"
    );
    let loser: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email = $1")
        .bind(&loser_email)
        .fetch_one(&p.pool)
        .await
        .unwrap();
    assert_eq!(loser, 0, "the losing signup left a user behind");
    assert_eq!(count("tenants").await, 1);
    assert_eq!(count("users").await, users_before + 1);

    // Reusing a deployed session.
    let (status, body) = post(
        &client,
        p.url(&format!("/api/v1/wizard/sessions/{first}/steps")),
        json!({ "step": 1, "data": { "password": PASSWORD } }),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "session_deployed");

    // An email that has an account: told to log in, in the same shape.
    let member = p
        .member(&format!("known-{}@test.invalid", random(6)), PASSWORD)
        .await;
    let (status, known) = post(
        &client,
        p.url("/api/v1/wizard/sessions"),
        json!({ "email": member.email }),
    )
    .await;
    let (status_new, fresh) = post(
        &client,
        p.url("/api/v1/wizard/sessions"),
        json!({ "email": format!("new-{}@test.invalid", random(6)) }),
    )
    .await;
    assert_eq!(status, status_new);
    assert_eq!(known["next"], "login");
    assert_eq!(fresh["next"], "account");
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&known), keys(&fresh));
    let known_id = known["sessionId"].as_str().unwrap();
    let (status, _) = post(
        &client,
        p.url(&format!("/api/v1/wizard/sessions/{known_id}/steps")),
        json!({ "step": 1, "data": { "password": PASSWORD } }),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    p.cleanup().await;
}
