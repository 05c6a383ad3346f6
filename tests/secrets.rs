//! Secrets stay secret: the tenant's database password and the admin API key
//! never appear in the control plane's log, even at the most verbose level, nor
//! in any API answer.

mod common;

use std::time::Duration;

use common::{random, subdomain, Options, Platform};
use reqwest::{Method, StatusCode};

/// Fails naming the log target that wrote the secret, without printing it.
fn assert_not_logged(log: &str, name: &str, secret: &str) {
    let leaks: Vec<String> = log
        .lines()
        .filter(|l| l.contains(secret))
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .map(|v| v["target"].to_string())
                .unwrap_or_default()
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "{name} found in the log, written by {leaks:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_and_keys_never_reach_logs_or_responses() {
    let log = std::env::temp_dir().join(format!("fresco-platform-secrets-{}.log", random(8)));
    let p = Platform::start(Options {
        process: true,
        log_file: Some(log.clone()),
        process_env: vec![("RUST_LOG", "trace".into()), ("LOG_FORMAT", "json".into())],
        ..Default::default()
    })
    .await;
    let sub = subdomain("secret");
    let id = p.create_active(&sub).await;
    let first_password = p.tenant_password(&id).await;
    let mut answers = String::new();
    for path in [
        format!("/api/v1/tenants/{id}"),
        "/api/v1/tenants".into(),
        format!("/api/v1/tenants/{id}/deployments"),
    ] {
        let (status, body) = p.request(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK);
        answers.push_str(&body.to_string());
    }
    // A restart with a changed container (removed by hand) mints a new password.
    let c = p.container(&id).await.unwrap().id.unwrap();
    p.docker
        .remove_container(
            &c,
            Some(
                bollard::query_parameters::RemoveContainerOptionsBuilder::new()
                    .force(true)
                    .build(),
            ),
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let second_password = loop {
        if p.container(&id).await.is_some() {
            break p.tenant_password(&id).await;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "container not recreated"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_ne!(
        first_password, second_password,
        "a recreated container gets a fresh password"
    );
    p.wait_status(&id, "active", Duration::from_secs(60)).await;
    let (status, _) = p.destroy(&id, &sub).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    p.wait_status(&id, "destroyed", Duration::from_secs(60))
        .await;

    let key = p.key.clone();
    p.cleanup().await;
    let text = std::fs::read_to_string(&log).expect("log written");
    let _ = std::fs::remove_file(&log);
    assert!(
        text.lines().count() > 20,
        "the log is suspiciously short:\n{text}"
    );
    assert!(text.contains(&id), "the log should mention the tenant");
    // LOG_FORMAT=json: one JSON object per line, carrying request and tenant ids.
    let objects: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let has = |field: &str| {
        objects
            .iter()
            .any(|o| o.to_string().contains(&format!("\"{field}\"")))
    };
    assert!(has("request_id"), "no request_id field in the JSON log");
    assert!(has("tenant_id"), "no tenant_id field in the JSON log");
    for (name, secret) in [
        ("first tenant password", &first_password),
        ("second tenant password", &second_password),
        ("admin API key", &key),
    ] {
        assert_not_logged(&text, name, secret);
        assert!(
            !answers.contains(secret.as_str()),
            "{name} found in an API answer"
        );
    }
    assert!(
        !text.contains("fresco-dev-password"),
        "the platform's own database password is in the log"
    );
}

/// Account secrets: the password typed into the wizard, session tokens, API
/// keys and emailed tokens, through signup, login, key creation and a reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_secrets_never_reach_the_log() {
    let log =
        std::env::temp_dir().join(format!("fresco-platform-account-secrets-{}.log", random(8)));
    let p = Platform::start(Options {
        process: true,
        smtp: true,
        log_file: Some(log.clone()),
        process_env: vec![("RUST_LOG", "trace".into()), ("LOG_FORMAT", "json".into())],
        extra: vec![("FRESCO_IMAGE", "127.0.0.1:9/never/pulled:1".into())],
        ..Default::default()
    })
    .await;
    let password = format!("Secret-{}-Passphrase", random(12));
    let email = format!("leak-{}@test.invalid", random(6));
    let browser = p.browser();
    let post = |url: String, body: serde_json::Value| {
        let browser = browser.clone();
        async move { browser.post(url).json(&body).send().await.unwrap() }
    };
    let session: serde_json::Value = post(
        p.url("/api/v1/wizard/sessions"),
        serde_json::json!({ "email": email }),
    )
    .await
    .json()
    .await
    .unwrap();
    let sid = session["sessionId"].as_str().unwrap().to_owned();
    let steps = [
        serde_json::json!({ "step": 1, "data": { "password": password } }),
        serde_json::json!({ "step": 2, "data": { "intendedUse": "study" } }),
        serde_json::json!({ "step": 3, "data": { "subdomain": subdomain("leak") } }),
        serde_json::json!({ "step": 4, "data": { "accepted": true, "termsVersion": "2026-01" } }),
    ];
    for step in steps {
        let r = post(p.url(&format!("/api/v1/wizard/sessions/{sid}/steps")), step).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let deployed = post(
        p.url(&format!("/api/v1/wizard/sessions/{sid}/deploy")),
        serde_json::json!({}),
    )
    .await;
    assert_eq!(deployed.status(), StatusCode::ACCEPTED);
    let cookie_value = |r: &reqwest::Response| {
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches("fp_session=")
            .to_owned()
    };
    let first_session = cookie_value(&deployed);
    let wrong = post(
        p.url("/api/v1/auth/login"),
        serde_json::json!({ "email": email, "password": format!("{password}x") }),
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let login = post(
        p.url("/api/v1/auth/login"),
        serde_json::json!({ "email": email, "password": password }),
    )
    .await;
    assert_eq!(login.status(), StatusCode::OK);
    let second_session = cookie_value(&login);
    let key: serde_json::Value = post(
        p.url("/api/v1/api-keys"),
        serde_json::json!({ "name": "leak-check" }),
    )
    .await
    .json()
    .await
    .unwrap();
    let key = key["key"].as_str().unwrap().to_owned();
    assert_eq!(
        post(
            p.url("/api/v1/auth/password-reset"),
            serde_json::json!({ "email": email })
        )
        .await
        .status(),
        StatusCode::ACCEPTED
    );
    let mail = p
        .smtp
        .as_ref()
        .unwrap()
        .wait_for(&email, Duration::from_secs(10))
        .await;
    let reset_token = mail.find_token("Token: ").unwrap();

    let admin_key = p.key.clone();
    p.cleanup().await;
    let text = std::fs::read_to_string(&log).expect("log written");
    let _ = std::fs::remove_file(&log);
    assert!(
        text.contains("auth.login") || text.contains("/api/v1/auth/login"),
        "the log should show the logins"
    );
    for (name, secret) in [
        ("the wizard password", password.as_str()),
        ("the first session token", first_session.as_str()),
        ("the second session token", second_session.as_str()),
        ("the new API key", key.as_str()),
        ("the admin API key", admin_key.as_str()),
        ("the reset token", reset_token.as_str()),
    ] {
        assert_not_logged(&text, name, secret);
    }
}
