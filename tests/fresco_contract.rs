//! What the real Fresco asks of the platform, proven with the stand-in (which is
//! never more lenient than the release it imitates): a fresh instance's
//! `/setup` is reachable only through its owner's one-time claim, and a
//! container that cannot start ends its action in `error` with the reason.

mod common;

use std::time::{Duration, Instant};

use common::{fetch_through_traefik, path_of, subdomain, wait_traefik, Options, Platform};
use reqwest::StatusCode;
use serde_json::json;

const ROUTE_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits until Traefik routes `/setup` of the tenant to the guard (not 404).
async fn wait_setup_router(sub: &str) -> (u16, String) {
    let deadline = Instant::now() + ROUTE_TIMEOUT;
    loop {
        let (status, _, body) = fetch_through_traefik(sub, "/setup", None).await;
        if status != 404 {
            return (status, body);
        }
        assert!(Instant::now() < deadline, "no /setup router for {sub}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owners_claim_link_reaches_setup_and_it_works_once() {
    let p = Platform::start(Options::default()).await;
    let sub = subdomain("claim");
    // The admin creates it for themselves, so the admin is the owner here.
    let (status, body) = p
        .request(
            reqwest::Method::POST,
            "/api/v1/tenants",
            Some(json!({ "subdomain": sub })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    p.wait_status(&id, "active", Duration::from_secs(60)).await;
    wait_traefik(&sub, "/signin", 200, ROUTE_TIMEOUT).await;

    // A stranger (no claim) is refused with a page that says why.
    let (status, body) = wait_setup_router(&sub).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("being set up by its owner"), "{body}");
    // The rest of the instance is routed as usual.
    assert_eq!(fetch_through_traefik(&sub, "/signin", None).await.0, 200);

    // The owner's link reaches Fresco's setup page and leaves a claim cookie.
    let t = p.tenant(&id).await;
    let claim_url = t["setup"]["claimUrl"]
        .as_str()
        .unwrap_or_else(|| panic!("owner gets a claim link: {t}"));
    assert!(claim_url.starts_with(t["setup"]["url"].as_str().unwrap()));
    let link = path_of(claim_url);
    let (status, headers, body) = fetch_through_traefik(&sub, &link, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Create the administrator account"), "{body}");
    let set_cookie = headers
        .get("set-cookie")
        .expect("claim cookie set on the tenant's host")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("Path=/setup"));
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    // The cookie keeps the owner's browser in; the link itself is spent.
    assert_eq!(
        fetch_through_traefik(&sub, "/setup", Some(&cookie)).await.0,
        200
    );
    let (again, _, _) = fetch_through_traefik(&sub, &link, None).await;
    assert_eq!(again, 403, "a claim link works once");
    // A forged cookie or token is refused.
    let forged = fetch_through_traefik(
        &sub,
        "/setup?claim=forged123",
        Some("fp_setup_claim=forged"),
    );
    assert_eq!(forged.await.0, 403);

    // Links expire.
    let fresh = p.tenant(&id).await["setup"]["claimUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    sqlx::query("UPDATE setup_claims SET expires_at = now() - interval '1 second' WHERE kind = 'link' AND used_at IS NULL")
        .execute(&p.pool)
        .await
        .unwrap();
    assert_eq!(
        fetch_through_traefik(&sub, &path_of(&fresh), None).await.0,
        403
    );

    // Tokens are stored only as hashes.
    let token = fresh.rsplit('=').next().unwrap();
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM setup_claims WHERE encode(token_hash, 'escape') LIKE '%' || $1 || '%'",
    )
    .bind(token)
    .fetch_one(&p.pool)
    .await
    .unwrap();
    assert_eq!(stored, 0);
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_links_are_for_the_owner_only() {
    let p = Platform::start(Options::default()).await;
    let owner = p
        .verified_member(
            &format!("{}@example.org", common::random(8)),
            "owner-password-1",
        )
        .await;
    let sub = subdomain("own");
    let (status, body) = p
        .request_as(
            Some(&owner.key),
            reqwest::Method::POST,
            "/api/v1/tenants",
            Some(json!({ "subdomain": sub })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    p.wait_status(&id, "active", Duration::from_secs(60)).await;

    let (_, as_owner) = p
        .request_as(
            Some(&owner.key),
            reqwest::Method::GET,
            &format!("/api/v1/tenants/{id}"),
            None,
        )
        .await;
    assert!(as_owner["setup"]["claimUrl"].is_string(), "{as_owner}");
    let (_, progress) = p
        .request_as(
            Some(&owner.key),
            reqwest::Method::GET,
            &format!("/api/v1/tenants/{id}/deployment"),
            None,
        )
        .await;
    assert!(progress["setup"]["claimUrl"].is_string(), "{progress}");
    // An admin sees the setup deadline, not a way in.
    let as_admin = p.tenant(&id).await;
    assert!(as_admin["setup"]["url"].is_string());
    assert!(as_admin["setup"].get("claimUrl").is_none(), "{as_admin}");
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresco_3_1_in_schema_mode_ends_in_error_with_its_reason() {
    // Fresco 3.1+ ignores ?schema= and needs TEMP: schema isolation cannot run it.
    let p = Platform::start(Options {
        isolation: "schema",
        extra: vec![("FRESCO_IMAGE", common::env("FRESCO_STANDIN_IMAGE"))],
        ..Default::default()
    })
    .await;
    let sub = subdomain("crash");
    let (status, body) = p.create_tenant(&sub).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let t = p.wait_status(&id, "error", Duration::from_secs(60)).await;
    let error = t["lastError"].as_str().unwrap();
    assert!(error.contains("exited during start-up"), "{error}");
    assert!(error.contains("exit code 1"), "{error}");
    assert!(
        error.contains("temporary tables"),
        "the app's own words: {error}"
    );
    assert!(
        !error.contains(&p.tenant_password(&id).await),
        "password in lastError"
    );
    assert!(!error.contains("postgres://"), "{error}");
    // Well before the health timeout; and the container no longer loops.
    assert!(started.elapsed() < Duration::from_secs(60));
    let c = p.container(&id).await.expect("container kept for its logs");
    assert_eq!(c.state.unwrap().running, Some(false));
    let log = p.deployments(&id).await;
    assert!(log.contains(&("create".into(), "failed".into())), "{log:?}");
    p.cleanup().await;
}
