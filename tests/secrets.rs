//! Secrets stay secret: the tenant's database password and the admin API key
//! never appear in the control plane's log, even at the most verbose level, nor
//! in any API answer.

mod common;

use std::time::Duration;

use common::{random, subdomain, Options, Platform};
use reqwest::{Method, StatusCode};

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
    for (name, secret) in [
        ("first tenant password", &first_password),
        ("second tenant password", &second_password),
        ("admin API key", &key),
    ] {
        let leaks: Vec<String> = text
            .lines()
            .filter(|l| l.contains(secret.as_str()))
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
