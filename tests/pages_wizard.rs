//! The signup wizard's pages in a real browser: a new user walks all six steps
//! with the keyboard only and their instance answers through Traefik; the
//! progress step updates live, without a reload; a taken or invalid subdomain
//! and unaccepted terms are refused beside their fields; a failed deployment
//! offers a retry. Every step passes axe and is photographed.

mod common;

use std::time::{Duration, Instant};

use common::browser::Browser;
use common::{random, subdomain, wait_traefik, Options, Platform};

const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";
const DOWN: &str = "\u{E015}";
const PASSWORD: &str = "violet-tundra-42-kettle";

/// Presses Tab until the element described as `target` (id, name or text, as
/// `Browser::focused` says) has focus.
async fn tab_to(b: &Browser, target: &str) {
    for _ in 0..40 {
        if b.focused().await == target {
            return;
        }
        b.keys(TAB).await;
    }
    panic!("Tab never reached {target:?} on {}", b.path().await);
}

/// Waits until the browser is on a page whose path starts with `prefix`.
async fn wait_path(b: &Browser, prefix: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let path = b.path().await;
        if path.starts_with(prefix) {
            return path;
        }
        assert!(
            Instant::now() < deadline,
            "never reached {prefix}; on {path}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn current_step(b: &Browser) -> String {
    b.text(".wizard-steps [aria-current=step]").await
}

async fn js(b: &Browser, script: &str) -> serde_json::Value {
    b.client.execute(script, vec![]).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_signs_up_with_the_keyboard_only_and_the_instance_answers_through_traefik() {
    let p = Platform::start(Options::default()).await;
    let b = Browser::open(&p).await;
    let sub = subdomain("kbd");
    let email = format!("kbd-{}@test.invalid", random(6));

    // Step 1: account, with the strength indicator updating as the password is typed.
    b.goto("/signup").await;
    assert_eq!(current_step(&b).await, "1. Account");
    b.check_page("signup-account").await;
    tab_to(&b, "email").await;
    b.keys(&email).await;
    b.keys(TAB).await;
    assert_eq!(b.focused().await, "password");
    b.keys(PASSWORD).await;
    let strength = b
        .wait_text("#password-strength", "Strength:", Duration::from_secs(5))
        .await;
    assert!(strength.contains("strong"), "{strength}");
    assert_eq!(
        b.find("#password-strength")
            .await
            .attr("aria-live")
            .await
            .unwrap()
            .as_deref(),
        Some("polite")
    );
    b.keys(TAB).await;
    assert_eq!(b.focused().await, "passwordConfirm");
    b.keys(PASSWORD).await;
    b.keys(TAB).await;
    assert_eq!(b.focused().await, "name");
    b.keys("Ada Keyboard").await;
    b.keys(ENTER).await;

    // Step 2: "learning" hears of the sandbox, and goes on anyway.
    wait_path(&b, "/signup/use", Duration::from_secs(15)).await;
    assert_eq!(current_step(&b).await, "2. Intended use");
    b.check_page("signup-use").await;
    tab_to(&b, "use-study").await;
    b.keys(DOWN).await;
    b.keys(DOWN).await;
    assert_eq!(b.focused().await, "use-learning");
    tab_to(&b, "Continue").await;
    b.keys(ENTER).await;
    wait_path(&b, "/signup/sandbox", Duration::from_secs(10)).await;
    let sandbox = b
        .find("a[href^='https://fresco-sandbox.networkcanvas.com']")
        .await;
    assert!(sandbox.text().await.unwrap().contains("sandbox"));
    b.check_page("signup-sandbox").await;
    tab_to(&b, "Continue anyway").await;
    b.keys(ENTER).await;

    // Step 3: the subdomain, checked live, with the address previewed.
    wait_path(&b, "/signup/subdomain", Duration::from_secs(10)).await;
    assert_eq!(current_step(&b).await, "3. Subdomain");
    tab_to(&b, "subdomain").await;
    b.keys(&sub).await;
    b.wait_text("#subdomain-status", "is available", Duration::from_secs(5))
        .await;
    let preview = b.text("#subdomain-preview").await;
    assert!(preview.contains(&format!("{sub}.")), "{preview}");
    b.check_page("signup-subdomain").await;
    b.find("#subdomain").await.click().await.unwrap();
    b.keys(ENTER).await;

    // Step 4: unaccepted terms are refused beside the checkbox.
    wait_path(&b, "/signup/terms", Duration::from_secs(10)).await;
    assert_eq!(current_step(&b).await, "4. Terms");
    b.check_page("signup-terms").await;
    tab_to(&b, "terms-box").await;
    tab_to(&b, "Accept and create my instance").await;
    b.keys(ENTER).await;
    b.wait_for("#accepted-error", Duration::from_secs(10)).await;
    let described = b
        .find("#accepted")
        .await
        .attr("aria-describedby")
        .await
        .unwrap();
    assert_eq!(described.as_deref(), Some("accepted-error"));
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email = $1")
        .bind(&email)
        .fetch_one(&p.pool)
        .await
        .unwrap();
    assert_eq!(users, 0, "refused terms create no account");
    b.check_page("signup-terms-error").await;
    tab_to(&b, "accepted").await;
    b.keys(" ").await;
    tab_to(&b, "Accept and create my instance").await;
    b.keys(ENTER).await;

    // Step 5: the progress page follows the deployment live, without a reload.
    let path = wait_path(&b, "/signup/progress/", Duration::from_secs(20)).await;
    let tenant_id = path.trim_start_matches("/signup/progress/").to_owned();
    js(&b, "window.__noReload = 1;").await;
    let settled_on_arrival = js(&b, "return !!document.getElementById('continue');").await;
    assert_eq!(
        settled_on_arrival, false,
        "the deployment was done before the page could watch it"
    );
    assert_eq!(current_step(&b).await, "5. Deployment");
    b.check_page("signup-progress").await;
    b.wait_for("#continue", Duration::from_secs(60)).await;
    assert_eq!(
        js(&b, "return window.__noReload === 1;").await,
        true,
        "the page reloaded"
    );
    assert_eq!(
        b.find("#deploy-progress")
            .await
            .attr("value")
            .await
            .unwrap()
            .as_deref(),
        Some("100")
    );
    b.check_page("signup-progress-done").await;
    tab_to(&b, "continue").await;
    b.keys(ENTER).await;

    // Step 6: the address, the setup link and its live countdown.
    wait_path(&b, "/signup/done/", Duration::from_secs(10)).await;
    assert_eq!(current_step(&b).await, "6. Ready");
    let url = b
        .find("#instance-url")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(url.contains(&format!("{sub}.")), "{url}");
    let setup = b
        .find("#setup-link")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(setup.contains("/setup?"), "the owner's claim link: {setup}");
    let first = b.text("[data-deadline]").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = b.text("[data-deadline]").await;
    assert!(
        first.contains(" s left") && first != later,
        "{first} / {later}"
    );
    assert!(first.starts_with("1 h 5"), "about two hours: {first}");
    b.find("a[href='/dashboard']").await;
    b.check_page("signup-success").await;

    // Real effects: the account owns the tenant, the wizard's cookie is gone,
    // and the instance answers through Traefik.
    let owner: String = sqlx::query_scalar(
        "SELECT u.email FROM tenants t JOIN users u ON u.id = t.user_id WHERE t.id = $1::uuid",
    )
    .bind(&tenant_id)
    .fetch_one(&p.pool)
    .await
    .unwrap();
    assert_eq!(owner, email);
    let cookies = b.client.get_all_cookies().await.unwrap();
    assert!(
        cookies.iter().all(|c| c.name() != "fp_signup"),
        "{cookies:?}"
    );
    assert!(
        cookies.iter().any(|c| c.name() == "fp_session"),
        "signed in"
    );
    wait_traefik(&sub, "/", 200, Duration::from_secs(20)).await;

    b.close().await;
    p.cleanup().await;
}

/// Fills steps 1 and 2 through the forms (not the subject of these tests).
async fn first_two_steps(b: &Browser, email: &str) {
    b.goto("/signup").await;
    b.fill("#email", email).await;
    b.fill("#password", PASSWORD).await;
    b.fill("#passwordConfirm", PASSWORD).await;
    b.find("form[action='/signup'] button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    wait_path(b, "/signup/use", Duration::from_secs(15)).await;
    b.find("#use-study").await.click().await.unwrap();
    b.find("form[action='/signup/use'] button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    wait_path(b, "/signup/subdomain", Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_and_invalid_subdomains_are_refused_beside_the_field_with_suggestions() {
    let p = Platform::start(Options::default()).await;
    let taken = subdomain("taken");
    let (status, body) = p.create_tenant(&taken).await;
    assert_eq!(status, 202, "{body}");
    let b = Browser::open(&p).await;

    // Steps are taken in order: a new visitor cannot start at the terms.
    b.goto("/signup/terms").await;
    assert_eq!(b.path().await, "/signup");

    // Step 1 refuses a mismatched confirmation beside its field.
    let email = format!("sub-{}@test.invalid", random(6));
    b.fill("#email", &email).await;
    b.fill("#password", "password").await;
    b.wait_text("#password-strength", "very weak", Duration::from_secs(5))
        .await;
    b.fill("#passwordConfirm", "something else").await;
    b.find("form[action='/signup'] button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for("#passwordConfirm-error", Duration::from_secs(5))
        .await;
    b.check_page("signup-account-error").await;

    first_two_steps(&b, &email).await;
    // Live: a reserved name, then a taken one, each with suggestions.
    b.fill("#subdomain", "admin").await;
    let reserved = b
        .wait_text("#subdomain-status", "reserved", Duration::from_secs(5))
        .await;
    assert!(reserved.contains("Available instead"), "{reserved}");
    b.fill("#subdomain", &taken).await;
    b.wait_text("#subdomain-status", "already taken", Duration::from_secs(5))
        .await;
    let suggestion = b.find("#subdomain-status [data-suggestion]").await;
    let picked = suggestion.attr("value").await.unwrap().unwrap();
    assert!(picked.starts_with(&taken), "{picked}");
    // A suggestion fills the field (with JS) and is checked again.
    suggestion.click().await.unwrap();
    let value = b.find("#subdomain").await.prop("value").await.unwrap();
    assert_eq!(value.as_deref(), Some(picked.as_str()));
    b.wait_text("#subdomain-status", "is available", Duration::from_secs(5))
        .await;
    assert!(b.text("#subdomain-preview").await.contains(&picked));

    // Submitted anyway: the error sits beside the field, with suggestions.
    b.fill("#subdomain", &taken).await;
    b.find("#subdomain-continue").await.click().await.unwrap();
    let error = b
        .wait_text("#subdomain-error", "already taken", Duration::from_secs(10))
        .await;
    assert!(error.contains(&taken), "{error}");
    assert_eq!(b.path().await, "/signup/subdomain");
    let input = b.find("#subdomain").await;
    assert_eq!(
        input.attr("aria-invalid").await.unwrap().as_deref(),
        Some("true")
    );
    let described = input.attr("aria-describedby").await.unwrap().unwrap();
    assert!(described.contains("subdomain-status"), "{described}");
    assert!(b
        .find("#subdomain-status [data-suggestion]")
        .await
        .attr("value")
        .await
        .unwrap()
        .is_some());
    b.check_page("signup-subdomain-error").await;

    // Invalid: the format rule, beside the field.
    b.fill("#subdomain", "ab").await;
    b.find("#subdomain-continue").await.click().await.unwrap();
    b.wait_text(
        "#subdomain-error",
        "between 3 and 63",
        Duration::from_secs(10),
    )
    .await;
    let steps_done: i32 =
        sqlx::query_scalar("SELECT steps_done FROM signup_sessions WHERE email = $1")
            .bind(&email)
            .fetch_one(&p.pool)
            .await
            .unwrap();
    assert_eq!(steps_done, 2, "no subdomain was recorded");

    b.close().await;
    p.cleanup().await;
}

#[tokio::test]
async fn the_wizard_keeps_its_session_in_a_short_httponly_cookie_and_refuses_foreign_posts() {
    let p = Platform::start(Options::default()).await;
    let email = format!("cookie-{}@test.invalid", random(6));
    let form = [
        ("email", email.as_str()),
        ("password", PASSWORD),
        ("passwordConfirm", PASSWORD),
        ("name", ""),
    ];
    // A form on another site cannot drive the wizard.
    let foreign = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let refused = foreign
        .post(p.url("/signup"))
        .header("origin", "https://evil.example")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    let ours = foreign
        .post(p.url("/signup"))
        .header("origin", &p.base)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(ours.status(), 303);
    assert_eq!(ours.headers()["location"], "/signup/use");
    let cookie = ours.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("fp_signup="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=3600"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    let id = cookie["fp_signup=".len()..].split(';').next().unwrap();
    let stored: String =
        sqlx::query_scalar("SELECT id::text FROM signup_sessions WHERE email = $1")
            .bind(&email)
            .fetch_one(&p.pool)
            .await
            .unwrap();
    assert_eq!(id, stored, "the cookie holds the session's random id");
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_deployment_shows_its_error_and_offers_a_retry() {
    let p = Platform::start(Options {
        extra: vec![("FRESCO_IMAGE", "127.0.0.1:9/never/pulled:1".into())],
        ..Options::default()
    })
    .await;
    let b = Browser::open(&p).await;
    let email = format!("fail-{}@test.invalid", random(6));
    first_two_steps(&b, &email).await;
    b.fill("#subdomain", &subdomain("fail")).await;
    b.find("#subdomain-continue").await.click().await.unwrap();
    wait_path(&b, "/signup/terms", Duration::from_secs(10)).await;
    b.find("#accepted").await.click().await.unwrap();
    b.find("form[action='/signup/terms'] button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    wait_path(&b, "/signup/progress/", Duration::from_secs(20)).await;
    js(&b, "window.__noReload = 1;").await;
    let alert = b
        .wait_text(
            "#progress-body [role=alert]",
            "failed",
            Duration::from_secs(60),
        )
        .await;
    assert!(
        alert.len() > "The deployment failed.".len(),
        "the reason is shown: {alert}"
    );
    assert_eq!(
        js(&b, "return window.__noReload === 1;").await,
        true,
        "the page reloaded"
    );
    b.check_page("signup-progress-failed").await;
    let retry = b.find("form[action$='/retry'] button").await;
    retry.click().await.unwrap();
    // The retry is recorded (the API's lifecycle rule), and the page watches again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let retried: i64 =
            sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'tenant.retry'")
                .fetch_one(&p.pool)
                .await
                .unwrap_or(0);
        if retried == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no retry recorded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.close().await;
    p.cleanup().await;
}
