//! The account pages in a real browser: password reset by the emailed link
//! (token in the fragment) and by a pasted code without JavaScript, the email
//! verification landing, the settings (profile with a pending email change,
//! password change, API keys shown once and revoked), and the terms, privacy
//! and service-level pages. Each page is checked with axe and photographed.

mod common;

use std::time::{Duration, Instant};

use common::browser::Browser;
use common::{random, Options, Platform};
use fantoccini::Locator;
use reqwest::StatusCode;
use serde_json::json;

const PASSWORD: &str = "violet-tundra-42-kettle";
const NEW_PASSWORD: &str = "amber-glacier-77-lantern";
const WAIT: Duration = Duration::from_secs(10);

fn email(label: &str) -> String {
    format!("{label}-{}@test.invalid", random(8).to_lowercase())
}

/// The API's answer to signing in with these credentials.
async fn api_login(p: &Platform, email: &str, password: &str) -> StatusCode {
    p.http
        .post(p.url("/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
        .status()
}

/// The API's answer to `GET /api/v1/auth/me` with this key.
async fn me_with_key(p: &Platform, key: &str) -> (StatusCode, serde_json::Value) {
    let resp = p
        .http
        .get(p.url("/api/v1/auth/me"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or_default())
}

async fn submit(b: &Browser, form: &str) {
    b.find(&format!("{form} button[type=submit]"))
        .await
        .click()
        .await
        .unwrap();
}

/// Waits until the browser is on `path` (path and query).
async fn wait_path(b: &Browser, path: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = b.path().await;
        if now == path {
            return;
        }
        assert!(Instant::now() < deadline, "never reached {path}; on {now}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn is_displayed(b: &Browser, css: &str) -> bool {
    b.find(css).await.is_displayed().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_reset_by_the_emailed_link_replaces_the_old_password() {
    let p = Platform::start(Options {
        smtp: true,
        ..Default::default()
    })
    .await;
    let sink = p.smtp.clone().unwrap();
    let address = email("reset");
    p.verified_member(&address, PASSWORD).await;

    // Without JavaScript the confirm form asks for the code from the mail.
    let html = p
        .http
        .get(p.url("/reset-password"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(r#"<input id="token" name="token" type="text""#),
        "a visible code field: {html}"
    );
    assert!(html.contains(r#"<label for="token">Reset code</label>"#));
    assert!(
        html.contains("starts with “Token:” in the mail"),
        "a hint says where the code is"
    );

    // The strength indicator's answer is the partial alone, for htmx to swap in.
    let partial = p
        .http
        .post(p.url("/password-strength"))
        .header("HX-Request", "true")
        .form(&[("newPassword", "short")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(partial.contains("Not accepted"), "{partial}");
    assert!(!partial.contains("<html"), "{partial}");
    assert!(
        html.contains(r#"hx-params="newPassword""#),
        "only the new password goes to the indicator"
    );

    // The request's answer says nothing about whether the account exists.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut answers = Vec::new();
    for who in [email("nobody"), address.clone()] {
        let resp = no_redirects
            .post(p.url("/reset-password"))
            .form(&[("email", who.as_str())])
            .send()
            .await
            .unwrap();
        answers.push((
            resp.status(),
            resp.headers().get("location").cloned(),
            resp.headers().get("set-cookie").cloned(),
        ));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0, StatusCode::SEE_OTHER);
    // That request's mail is not the one the browser uses below.
    sink.wait_for(&address, WAIT).await;

    let b = Browser::open(&p).await;
    b.goto("/reset-password").await;
    b.check_page("reset-request").await;
    b.fill("#email", &address).await;
    submit(&b, "form[action='/reset-password']").await;
    b.wait_text(".notice", "reset link is on its way", WAIT)
        .await;

    let mail = sink.wait_for(&address, WAIT).await;
    let link = mail.find_token(&p.base).expect("a link to the platform");
    assert!(link.starts_with("/reset-password#token="), "{link}");

    // Opening the link: the script takes the token from the fragment, hides
    // the code field and the request form, and clears the address bar.
    b.goto("/login").await;
    b.goto(&link).await;
    b.wait_for("[data-token-field][hidden]", WAIT).await;
    assert!(!is_displayed(&b, "#token").await);
    assert!(
        !is_displayed(&b, "#email").await,
        "the request form is hidden"
    );
    let url = b.client.current_url().await.unwrap();
    assert_eq!(url.fragment(), None, "the token left the address bar");
    assert_eq!(b.focused().await, "newPassword");

    b.fill("#newPassword", NEW_PASSWORD).await;
    b.wait_text("#newPassword-strength", "Strength", WAIT).await;
    b.fill("#confirmPassword", NEW_PASSWORD).await;
    b.check_page("reset-confirm").await;

    // A password the rules refuse comes back beside its field; the code stays.
    b.fill("#newPassword", "short").await;
    b.wait_text("#newPassword-strength", "Not accepted", WAIT)
        .await;
    b.fill("#confirmPassword", "short").await;
    submit(&b, "form[action='/reset-password/confirm']").await;
    let error = b.wait_text("#newPassword-error", "at least", WAIT).await;
    assert!(error.contains("10 characters"), "{error}");
    let described = b
        .find("#newPassword")
        .await
        .attr("aria-describedby")
        .await
        .unwrap();
    assert!(described.unwrap().contains("newPassword-error"));
    assert!(
        is_displayed(&b, "#token").await,
        "the code is kept, visibly"
    );

    b.fill("#newPassword", NEW_PASSWORD).await;
    b.fill("#confirmPassword", NEW_PASSWORD).await;
    submit(&b, "form[action='/reset-password/confirm']").await;
    wait_path(&b, "/login").await;
    b.wait_text(".notice", "password is reset", WAIT).await;

    assert_eq!(
        api_login(&p, &address, PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(api_login(&p, &address, NEW_PASSWORD).await, StatusCode::OK);
    b.sign_in(&address, NEW_PASSWORD).await;
    b.close().await;
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verification_link_marks_the_address_verified() {
    let p = Platform::start(Options {
        smtp: true,
        ..Default::default()
    })
    .await;
    let sink = p.smtp.clone().unwrap();
    let address = email("verify");
    let m = p.member(&address, PASSWORD).await;
    let b = Browser::open(&p).await;
    b.sign_in(&address, PASSWORD).await;

    // A code that is no good says so, and offers a new link.
    b.goto("/verify-email").await;
    b.check_page("verify-email").await;
    b.fill("#token", "not-a-real-code").await;
    submit(&b, "form[action='/verify-email']").await;
    b.wait_text("[role=alert]", "invalid, used or expired", WAIT)
        .await;
    b.check_page("verify-email-error").await;
    submit(&b, "form[action='/verify-email/resend']").await;
    wait_path(&b, "/settings").await;
    b.wait_text(".notice", "verification link is on its way", WAIT)
        .await;

    let mail = sink.wait_for(&address, WAIT).await;
    let link = mail.find_token(&p.base).expect("a link to the platform");
    assert!(link.starts_with("/verify-email#token="), "{link}");
    b.goto(&link).await;
    wait_path(&b, "/settings").await;
    b.wait_text(".notice", "email address is verified", WAIT)
        .await;
    let verified: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT email_verified_at FROM users WHERE id = $1")
            .bind(m.id)
            .fetch_one(&p.pool)
            .await
            .unwrap();
    assert!(verified.is_some(), "the row says verified");
    assert!(
        b.client
            .find(Locator::Css("form[action='/verify-email/resend']"))
            .await
            .is_err(),
        "nothing left to resend"
    );
    b.close().await;
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_change_the_password_and_show_a_pending_email_change() {
    let p = Platform::start(Options {
        smtp: true,
        ..Default::default()
    })
    .await;
    let sink = p.smtp.clone().unwrap();
    let address = email("settings");
    let m = p.verified_member(&address, PASSWORD).await;
    let b = Browser::open(&p).await;
    b.sign_in(&address, PASSWORD).await;

    b.goto("/settings").await;
    assert_eq!(b.text("h1").await, "Settings");
    let current = b.find(".settings-nav a[aria-current=page]").await;
    assert_eq!(current.text().await.unwrap(), "Profile");
    b.find(".settings-nav a[href='/settings/notifications']")
        .await;
    b.check_page("settings-profile").await;

    // An email change needs the password, then waits for the new address.
    let new_address = email("moved");
    b.fill("#email", &new_address).await;
    b.fill("#name", "Ada Researcher").await;
    submit(&b, "form[action='/settings/profile']").await;
    b.wait_text("#currentPassword-error", "current password", WAIT)
        .await;
    assert_eq!(
        b.find("#email")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some(new_address.as_str()),
        "the typed address is kept"
    );
    b.fill("#currentPassword", PASSWORD).await;
    submit(&b, "form[action='/settings/profile']").await;
    b.wait_text(".notice", "sent a link to the new address", WAIT)
        .await;
    let pending = b.text(".settings-body .alert-info").await;
    assert!(
        pending.contains(&format!("Pending change to {new_address}")),
        "{pending}"
    );
    let (name, pending_email): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT name, pending_email FROM users WHERE id = $1")
            .bind(m.id)
            .fetch_one(&p.pool)
            .await
            .unwrap();
    assert_eq!(name.as_deref(), Some("Ada Researcher"));
    assert_eq!(pending_email.as_deref(), Some(new_address.as_str()));
    let link = sink.wait_for(&new_address, WAIT).await;
    assert!(link.body().contains("/verify-email#token="));
    b.check_page("settings-profile-pending").await;

    // The password: a wrong current one is refused beside its field.
    b.goto("/settings/password").await;
    b.check_page("settings-password").await;
    b.fill("#currentPassword", "not-the-password-at-all").await;
    b.fill("#newPassword", NEW_PASSWORD).await;
    b.wait_text("#newPassword-strength", "Strength", WAIT).await;
    b.fill("#confirmPassword", NEW_PASSWORD).await;
    submit(&b, "form[action='/settings/password']").await;
    b.wait_text("#currentPassword-error", "not correct", WAIT)
        .await;
    b.fill("#currentPassword", PASSWORD).await;
    b.fill("#newPassword", NEW_PASSWORD).await;
    b.fill("#confirmPassword", NEW_PASSWORD).await;
    submit(&b, "form[action='/settings/password']").await;
    b.wait_text(".notice", "password is changed", WAIT).await;
    assert_eq!(
        b.path().await,
        "/settings/password",
        "this session stays signed in"
    );

    assert_eq!(
        api_login(&p, &address, PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(api_login(&p, &address, NEW_PASSWORD).await, StatusCode::OK);
    let other = Browser::open(&p).await;
    other.sign_in(&address, NEW_PASSWORD).await;
    other.close().await;
    b.close().await;
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_is_shown_once_works_and_is_revoked() {
    let p = Platform::start(Options::default()).await;
    let address = email("keys");
    p.verified_member(&address, PASSWORD).await;
    let b = Browser::open(&p).await;
    b.sign_in(&address, PASSWORD).await;

    b.goto("/settings/api-keys").await;
    b.check_page("settings-api-keys").await;
    // A nameless key is refused beside the name.
    submit(&b, "form[action='/settings/api-keys']").await;
    b.wait_text("#name-error", "1 to 100", WAIT).await;

    let name = format!("backup script {}", random(4));
    b.fill("#name", &name).await;
    submit(&b, "form[action='/settings/api-keys']").await;
    let field = b.wait_for("#new-key", WAIT).await;
    let key = field.prop("value").await.unwrap().unwrap();
    assert!(key.len() > 20, "{key}");
    assert!(
        is_displayed(&b, "button[data-copy='#new-key']").await,
        "the copy button shows with JS"
    );
    b.check_page("api-key-created").await;

    let (status, me) = me_with_key(&p, &key).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["email"], address.as_str());

    // A reload shows the list, not the key (and creates nothing).
    b.client.refresh().await.unwrap();
    wait_path(&b, "/settings/api-keys").await;
    b.wait_for("table.keys", WAIT).await;
    let source = b.client.source().await.unwrap();
    assert!(!source.contains(&key), "the key is never shown again");
    let rows = b
        .client
        .find_all(Locator::Css("table.keys tbody tr"))
        .await
        .unwrap();
    let mut ours = None;
    for row in rows {
        if row.text().await.unwrap().contains(&name) {
            assert!(ours.is_none(), "one key of that name");
            ours = Some(row);
        }
    }
    let row = ours.expect("the new key is listed");
    assert!(row.text().await.unwrap().contains("Never"), "not used yet");

    row.find(Locator::Css("summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    row.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_text(".notice", "API key is revoked", WAIT).await;
    assert_eq!(me_with_key(&p, &key).await.0, StatusCode::UNAUTHORIZED);
    b.close().await;
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terms_privacy_and_service_level_read_plainly() {
    let p = Platform::start(Options::default()).await;
    let b = Browser::open(&p).await;
    for (path, heading, name) in [
        ("/terms", "Terms of service", "terms"),
        ("/privacy", "Privacy", "privacy"),
        ("/service-level", "Service level", "service-level"),
    ] {
        b.goto(path).await;
        assert_eq!(b.text("h1").await, heading);
        b.check_page(name).await;
    }
    b.goto("/terms").await;
    b.find(".terms-text a[href='/privacy']").await;
    b.close().await;
    p.cleanup().await;
}
