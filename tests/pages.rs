//! The public pages in a real browser: landing, login, the 404 page. Each is
//! checked with axe and photographed at three widths.

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::{random, Options, Platform};

#[tokio::test]
async fn landing_page_leads_to_signup_and_passes_axe() {
    let p = Platform::start(Options::default()).await;
    let b = Browser::open(&p).await;
    b.goto("/").await;
    assert_eq!(b.text("h1").await, "Your own Fresco, ready in a minute");
    let cta = b.find("main a[href='/signup']").await;
    assert!(cta.text().await.unwrap().contains("Create an instance"));
    b.check_page("landing").await;
    b.close().await;
    p.cleanup().await;
}

#[tokio::test]
async fn login_shows_errors_beside_the_form_and_signs_in_on_good_credentials() {
    let p = Platform::start(Options::default()).await;
    let email = format!("login-{}@test.invalid", random(6).to_lowercase());
    p.verified_member(&email, "correct horse battery staple")
        .await;
    let b = Browser::open(&p).await;

    b.goto("/login").await;
    b.check_page("login").await;
    // Empty fields: each error sits beside its field, tied with aria-describedby.
    b.find("form[action='/login'] button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for("#email-error", Duration::from_secs(5)).await;
    let described = b
        .find("#email")
        .await
        .attr("aria-describedby")
        .await
        .unwrap();
    assert_eq!(described.as_deref(), Some("email-error"));
    b.check_page("login-errors").await;

    b.fill("#email", &email).await;
    b.fill("#password", "wrong password entirely").await;
    b.find("form[action='/login'] button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let alert = b
        .wait_text("[role=alert]", "not correct", Duration::from_secs(10))
        .await;
    assert!(
        alert.contains("email or password is not correct"),
        "{alert}"
    );
    assert_eq!(
        b.find("#email")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some(email.as_str())
    );

    b.sign_in(&email, "correct horse battery staple").await;
    // Signed in: the landing page offers the dashboard instead of signing up.
    b.goto("/").await;
    b.find("main a[href='/dashboard']").await;
    b.close().await;
    p.cleanup().await;
}

#[tokio::test]
async fn unknown_pages_get_an_html_404_and_unknown_api_paths_json() {
    let p = Platform::start(Options::default()).await;
    let page = p.http.get(p.url("/no/such/page")).send().await.unwrap();
    assert_eq!(page.status(), 404);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("Page not found"), "{html}");
    assert!(!html.contains("<script>"), "no inline script");
    let api = p.http.get(p.url("/api/v1/no-such")).send().await.unwrap();
    assert_eq!(api.status(), 404);
    assert_eq!(api.headers()["content-type"], "application/json");

    let b = Browser::open(&p).await;
    b.goto("/no/such/page").await;
    assert_eq!(b.text("h1").await, "Page not found");
    b.check_page("not-found").await;
    b.close().await;
    p.cleanup().await;
}
