//! `X-Forwarded-For` is believed only from the proxies in TRUSTED_PROXIES (Traefik's
//! address): from anyone else the header is ignored, so a client cannot choose the
//! address that rate limits count and the audit log records.

mod common;

use common::{Options, Platform};
use serde_json::json;

/// Creates an API key with a forged X-Forwarded-For and returns the address the
/// audit log recorded for it.
async fn recorded_ip(p: &Platform, forwarded_for: &str) -> String {
    let response = p
        .http
        .post(p.url("/api/v1/api-keys"))
        .bearer_auth(&p.key)
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({ "name": "proxy-test" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    sqlx::query_scalar(
        "SELECT ip FROM audit_log WHERE action = 'key.create' ORDER BY created_at DESC LIMIT 1",
    )
    .fetch_one(&p.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_is_not_a_trusted_proxy_cannot_spoof_its_address() {
    // The test client speaks from 127.0.0.1; the only trusted proxy is elsewhere.
    let p = Platform::start(Options {
        extra: vec![
            ("TRUST_PROXY_HEADERS", "true".to_owned()),
            ("TRUSTED_PROXIES", "192.0.2.10,10.99.0.0/16".to_owned()),
        ],
        ..Default::default()
    })
    .await;
    assert_eq!(recorded_ip(&p, "203.0.113.7").await, "127.0.0.1");
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_passes_the_client_address_but_not_what_the_client_wrote() {
    // Default TRUSTED_PROXIES: loopback, where Traefik runs on the development host.
    let p = Platform::start(Options {
        extra: vec![("TRUST_PROXY_HEADERS", "true".to_owned())],
        ..Default::default()
    })
    .await;
    assert_eq!(recorded_ip(&p, "203.0.113.7").await, "203.0.113.7");
    // The client's own "1.2.3.4" sits left of what the proxy appended.
    assert_eq!(
        recorded_ip(&p, "1.2.3.4, 198.51.100.9").await,
        "198.51.100.9"
    );
    p.cleanup().await;
}
