//! The dashboard and instance pages in a real browser: live badges through a
//! stop and a start without a reload, destroy behind the typed subdomain, the
//! instance page's charts and their table fallback, another user's instance as
//! the 404 page, the way back after login, and a settings change that
//! recreates the container with the new env. Each page is checked with axe and
//! photographed at three widths.

mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::browser::Browser;
use common::{random, subdomain, tenant_id, wait_traefik, Member, Options, Platform};
use fresco_platform::store::usage::{self, NewPoint, UsagePoint};
use serde_json::json;

const SETTLE: Duration = Duration::from_secs(90);
const PASSWORD: &str = "correct horse battery staple";

/// A member's own instance, created with the member's API key, once active.
async fn own_instance(p: &Platform, m: &Member, sub: &str) -> String {
    let (status, body) = p
        .request_as(
            Some(&m.key),
            reqwest::Method::POST,
            "/api/v1/tenants",
            Some(json!({ "subdomain": sub })),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    p.wait_status(&id, "active", SETTLE).await;
    id
}

async fn member(p: &Platform, label: &str) -> Member {
    let email = format!("{label}-{}@test.invalid", random(6));
    p.verified_member(&email, PASSWORD).await
}

async fn no_reload_flag(b: &Browser) -> bool {
    b.client
        .execute("return window.__noReload === 1;", vec![])
        .await
        .unwrap()
        .as_bool()
        .unwrap_or(false)
}

async fn click(b: &Browser, css: &str) {
    b.find(css).await.click().await.unwrap();
}

async fn tenant_row(p: &Platform, id: &str) -> (String, String) {
    sqlx::query_as("SELECT status, desired_state FROM tenants WHERE id = $1")
        .bind(tenant_id(id).0)
        .fetch_one(&p.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn dashboard_stops_and_starts_with_live_badges_and_destroy_needs_the_typed_subdomain() {
    let p = Platform::start(Options::default()).await;
    let m = member(&p, "dash").await;
    let b = Browser::open(&p).await;
    b.sign_in(&m.email, PASSWORD).await;

    b.goto("/dashboard").await;
    b.wait_text(".empty-state", "No instances yet", Duration::from_secs(5))
        .await;
    b.find(".empty-state a[href='/signup']").await;
    b.check_page("dashboard-empty").await;

    let sub = subdomain("dash");
    let id = own_instance(&p, &m, &sub).await;
    let badge = format!("#status-{id}");
    b.goto("/dashboard").await;
    b.wait_text(&badge, "Running", Duration::from_secs(5)).await;
    assert!(b.text(".instance-grid").await.contains(&sub));
    b.check_page("dashboard-grid").await;
    click(&b, ".view-toggle a:not([aria-current])").await;
    b.wait_for(".table-wrap table", Duration::from_secs(5))
        .await;
    assert_eq!(b.path().await, "/dashboard?view=list");
    b.wait_text(&badge, "Running", Duration::from_secs(5)).await;
    b.check_page("dashboard-list").await;

    // Search and filter narrow the list (the form works as a plain GET).
    b.goto("/dashboard?q=no-such-instance").await;
    b.wait_text("main", "No instance matches", Duration::from_secs(5))
        .await;
    b.goto("/dashboard?status=stopped").await;
    b.wait_text("main", "No instance matches", Duration::from_secs(5))
        .await;

    // Stop, then start, from the grid: the badge follows over SSE, no reload.
    b.goto("/dashboard").await;
    b.client
        .execute("window.__noReload = 1;", vec![])
        .await
        .unwrap();
    click(&b, &format!("form[action='/instances/{id}/stop'] button")).await;
    b.wait_text(
        &format!("#result-{id}"),
        "Stop requested",
        Duration::from_secs(10),
    )
    .await;
    b.wait_text(&badge, "Stopped", SETTLE).await;
    assert!(no_reload_flag(&b).await, "the page reloaded");
    assert_eq!(tenant_row(&p, &id).await.0, "stopped");
    // Stopping a stopped instance is refused as an alert beside it.
    click(&b, &format!("form[action='/instances/{id}/stop'] button")).await;
    b.wait_text(
        &format!("#result-{id} [role=alert]"),
        "already stopped",
        Duration::from_secs(10),
    )
    .await;
    click(&b, &format!("form[action='/instances/{id}/start'] button")).await;
    b.wait_text(&badge, "Running", SETTLE).await;
    assert!(no_reload_flag(&b).await, "the page reloaded");
    assert_eq!(tenant_row(&p, &id).await.0, "active");

    // Destroy asks for the subdomain typed; a wrong one is a field error.
    click(&b, &format!("a[href='/instances/{id}/destroy']")).await;
    b.wait_for("#confirm", Duration::from_secs(5)).await;
    b.check_page("destroy-confirm").await;
    b.fill("#confirm", "not-the-subdomain").await;
    click(&b, "form[action$='/destroy'] button[type=submit]").await;
    let error = b
        .wait_text(
            "#confirm-error",
            "not this instance's subdomain",
            Duration::from_secs(10),
        )
        .await;
    assert!(error.contains(&sub), "{error}");
    let described = b
        .find("#confirm")
        .await
        .attr("aria-describedby")
        .await
        .unwrap();
    assert!(described.unwrap_or_default().contains("confirm-error"));
    assert_eq!(
        tenant_row(&p, &id).await,
        ("active".into(), "running".into())
    );
    b.fill("#confirm", &sub).await;
    click(&b, "form[action$='/destroy'] button[type=submit]").await;
    b.wait_text(".notice", "being destroyed", Duration::from_secs(10))
        .await;
    assert_eq!(b.path().await, "/dashboard");
    let (status, desired) = tenant_row(&p, &id).await;
    assert_eq!(desired, "destroyed");
    assert!(
        matches!(status.as_str(), "destroying" | "destroyed"),
        "{status}"
    );
    b.close().await;
    p.cleanup().await;
}

/// An hour of samples, one a minute, so the charts have something to draw.
async fn seed_usage(p: &Platform, id: &str) {
    let now = Utc::now();
    let points: Vec<NewPoint> = (0..60)
        .map(|i| NewPoint {
            tenant: tenant_id(id),
            point: UsagePoint {
                at: now - chrono::Duration::minutes(60 - i),
                cpu_percent: Some(5.0 + (i % 7) as f64),
                memory_bytes: (150 + i) * 1024 * 1024,
                memory_limit_bytes: 512 * 1024 * 1024,
                network_rx_bytes: 0,
                network_tx_bytes: 0,
                block_read_bytes: 0,
                block_write_bytes: 0,
                pids: 10,
            },
        })
        .collect();
    usage::insert(&p.pool, &points).await.unwrap();
}

async fn container_env(p: &Platform, id: &str) -> Vec<String> {
    p.container(id)
        .await
        .and_then(|c| c.config)
        .and_then(|c| c.env)
        .unwrap_or_default()
}

#[tokio::test]
async fn instance_page_charts_settings_and_who_may_see_it() {
    let p = Platform::start(Options::default()).await;
    let owner = member(&p, "owner").await;
    let other = member(&p, "other").await;
    let sub = subdomain("inst");
    let id = own_instance(&p, &owner, &sub).await;
    seed_usage(&p, &id).await;
    let page = format!("/instances/{id}");

    // Logged out: to the login page, and back here after signing in.
    let b = Browser::open(&p).await;
    b.goto(&page).await;
    assert_eq!(b.path().await, format!("/login?next={page}"));
    b.fill("#email", &owner.email).await;
    b.fill("#password", PASSWORD).await;
    click(&b, "form[action='/login'] button[type=submit]").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.path().await != page {
        assert!(Instant::now() < deadline, "not sent back to {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b.text("h1").await, sub);
    b.wait_text(&format!("#status-{id}"), "Running", Duration::from_secs(5))
        .await;

    // Two charts, each an image labelled by its summary, with a table fallback.
    let charts = b
        .client
        .find_all(fantoccini::Locator::Css("svg[role=img]"))
        .await
        .unwrap();
    assert_eq!(charts.len(), 2);
    let summary = b.text("#chart-memory-summary").await;
    assert!(summary.contains("maximum 209 MiB"), "{summary}");
    let labelled = charts[1].attr("aria-labelledby").await.unwrap().unwrap();
    assert!(labelled.contains("chart-memory-summary"), "{labelled}");
    assert!(b
        .find("svg polyline.series-cpu")
        .await
        .attr("points")
        .await
        .unwrap()
        .is_some());
    let fallback_rows = b
        .client
        .find_all(fantoccini::Locator::Css("details.table-fallback tbody tr"))
        .await
        .unwrap();
    assert!(fallback_rows.len() >= 100, "{} rows", fallback_rows.len());
    b.find(&format!("a[href='/instances/{id}/logs']")).await;
    b.find(&format!("a[href='{page}?range=7d']")).await;
    b.check_page("instance").await;
    b.goto(&format!("{page}?range=7d")).await;
    assert_eq!(
        b.find("a[aria-current='true'][href$='range=7d']")
            .await
            .text()
            .await
            .unwrap(),
        "7 days"
    );

    // Settings: sandbox mode on recreates the container with the new env.
    let before = p.container(&id).await.and_then(|c| c.id).unwrap();
    assert!(!container_env(&p, &id)
        .await
        .contains(&"SANDBOX_MODE=true".to_owned()));
    b.goto(&format!("{page}/settings")).await;
    b.check_page("instance-settings").await;
    click(&b, "#sandbox_mode").await;
    click(&b, "form[action$='/settings'] button[type=submit]").await;
    b.wait_text(".notice", "Settings saved", Duration::from_secs(10))
        .await;
    assert_eq!(b.path().await, page);
    let deadline = Instant::now() + SETTLE;
    while !container_env(&p, &id)
        .await
        .contains(&"SANDBOX_MODE=true".to_owned())
    {
        assert!(
            Instant::now() < deadline,
            "the container never got SANDBOX_MODE=true"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    p.wait_status(&id, "active", SETTLE).await;
    let after = p.container(&id).await.and_then(|c| c.id).unwrap();
    assert_ne!(before, after, "the container was recreated");
    assert!(
        p.deployments(&id)
            .await
            .contains(&("update".into(), "success".into())),
        "{:?}",
        p.deployments(&id).await
    );
    wait_traefik(&sub, "/signin", 200, SETTLE).await;
    b.goto(&page).await;
    b.wait_text(".facts", "Sandbox mode", Duration::from_secs(5))
        .await;
    assert!(
        b.text(".facts").await.contains("Sandbox mode\nOn")
            || b.text(".facts").await.contains("Sandbox mode On")
    );
    b.close().await;

    // Someone else's instance is the 404 page, exactly like a missing one.
    let b = Browser::open(&p).await;
    b.sign_in(&other.email, PASSWORD).await;
    b.goto(&page).await;
    assert_eq!(b.text("h1").await, "Page not found");
    b.goto(&format!("/instances/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(b.text("h1").await, "Page not found");
    b.goto(&format!("{page}/settings")).await;
    assert_eq!(b.text("h1").await, "Page not found");
    b.close().await;
    p.cleanup().await;
}

#[tokio::test]
async fn the_dashboard_stream_counts_against_the_per_user_stream_cap() {
    let p = Platform::start(Options {
        extra: vec![("STREAMS_PER_USER", "2".into())],
        ..Options::default()
    })
    .await;
    let email = format!("cap-{}@test.invalid", random(6).to_lowercase());
    p.verified_member(&email, PASSWORD).await;
    let browser = p.browser();
    let login = browser
        .post(p.url("/login"))
        .form(&[("email", email.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(login.url().path(), "/dashboard", "signed in");
    let open = |_| browser.get(p.url("/dashboard/stream")).send();
    let first = open(1).await.unwrap();
    let second = open(2).await.unwrap();
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = open(3).await.unwrap();
    assert_eq!(third.status(), 429, "a third stream is refused");
    let page = third.text().await.unwrap();
    assert!(page.contains("too many open streams"), "{page}");
    // Closing one gives its slot back.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let again = open(4).await.unwrap();
        if again.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the slot was not given back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(second);
    p.cleanup().await;
}
