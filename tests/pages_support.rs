//! The support, status and email-preferences pages in a real browser: the
//! contact form mails SUPPORT_EMAIL with the sender as Reply-To, refuses a
//! line break in the subject and answers its rate limit with a form error; the
//! status panel shows the platform's checks; switching a kind of mail off in
//! the preferences means no mail for the next such event. Each page passes axe
//! and is photographed.

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::{random, subdomain, Options, Platform};
use reqwest::{Method, StatusCode};
use serde_json::json;

const SUPPORT: &str = "support@test.invalid";

/// A client that does not follow redirects, so a 303 is seen as one.
fn form_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn post_support(
    p: &Platform,
    email: &str,
    subject: &str,
    message: &str,
) -> (StatusCode, String) {
    let resp = form_client()
        .post(p.url("/support"))
        .form(&[("email", email), ("subject", subject), ("message", message)])
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

fn mails_to_support(p: &Platform) -> usize {
    p.smtp
        .as_ref()
        .unwrap()
        .all()
        .iter()
        .filter(|m| m.to.iter().any(|t| t == SUPPORT))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_form_mails_support_with_reply_to_refuses_newlines_and_rate_limits() {
    let p = Platform::start(Options {
        smtp: true,
        extra: vec![
            ("SUPPORT_EMAIL", SUPPORT.into()),
            ("RATE_LIMIT_SUPPORT", "2".into()),
        ],
        ..Default::default()
    })
    .await;
    let b = Browser::open(&p).await;
    b.goto("/support").await;
    assert_eq!(b.text("h1").await, "Support");
    b.find("a[href='https://documentation.networkcanvas.com/en/fresco']")
        .await;
    b.find("a[href='/api/openapi.json']").await;
    let faq = b
        .client
        .find_all(fantoccini::Locator::Css("details.faq"))
        .await
        .unwrap();
    assert_eq!(faq.len(), 5);
    b.find("#status-panel[aria-live='polite'][hx-get='/status/panel'][hx-trigger='every 30s']")
        .await;
    b.check_page("support").await;

    // Empty: each field says what is missing, tied to it.
    b.find("form[action='/support#contact'] button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    b.wait_for("#message-error", Duration::from_secs(5)).await;
    b.find("#email-error").await;
    let described = b
        .find("#message")
        .await
        .attr("aria-describedby")
        .await
        .unwrap();
    assert_eq!(described.as_deref(), Some("message-error"));

    let sender = format!("asker-{}@test.invalid", random(6).to_lowercase());
    b.fill("#email", &sender).await;
    b.fill("#subject", "Setup link question").await;
    b.fill("#message", "My <b>setup</b> link expired.\nWhat now?")
        .await;
    b.find("form[action='/support#contact'] button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    b.wait_text(
        "[role=status]",
        "Your message is sent",
        Duration::from_secs(10),
    )
    .await;
    b.check_page("support-sent").await;

    let mail = p
        .smtp
        .as_ref()
        .unwrap()
        .wait_for(SUPPORT, Duration::from_secs(10))
        .await;
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("[Support] Setup link question")
    );
    assert!(
        mail.header("Reply-To").unwrap().contains(&sender),
        "{:?}",
        mail.header("Reply-To")
    );
    assert!(mail
        .header("Content-Type")
        .unwrap()
        .starts_with("text/plain"));
    let body = mail.body();
    assert!(
        body.contains("My <b>setup</b> link expired.\nWhat now?"),
        "{body}"
    );
    assert!(
        body.contains(&format!("From {sender} (not signed in)")),
        "{body}"
    );

    // A line break in the subject would be a header: refused beside the field.
    let (status, page) = post_support(&p, &sender, "Hi\r\nBcc: evil@test.invalid", "x").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.contains("The subject must be a single line."),
        "{page}"
    );
    // The budget is two per address: the second goes, the third is refused.
    let (status, _) = post_support(&p, &sender, "Second", "Another question").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, page) = post_support(&p, &sender, "Third", "And another").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        page.contains("too many messages from this address"),
        "{page}"
    );
    assert!(page.contains("role=\"alert\""), "a form error: {page}");
    assert!(page.contains("And another"), "the message is kept: {page}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mails_to_support(&p), 2);
    b.close().await;
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_shows_ok_badges_and_support_without_an_address_sends_nothing() {
    let p = Platform::start(Options::default()).await;
    let b = Browser::open(&p).await;
    b.goto("/status").await;
    assert_eq!(b.text("h1").await, "Platform status");
    let ok = b
        .client
        .find_all(fantoccini::Locator::Css(".status-check [data-status='ok']"))
        .await
        .unwrap();
    assert_eq!(
        ok.len(),
        3,
        "database, Docker and the reconciler are all fine"
    );
    let names = b.text(".status-list").await;
    for name in ["Database", "Container engine", "Reconciler"] {
        assert!(names.contains(name), "{names}");
    }
    b.find("#status-panel[aria-live='polite'][hx-trigger='every 30s']")
        .await;
    b.check_page("status").await;

    // The fragment htmx fetches: the same list, without the page around it.
    let fragment = p.http.get(p.url("/status/panel")).send().await.unwrap();
    assert_eq!(fragment.status(), 200);
    let html = fragment.text().await.unwrap();
    assert!(
        html.contains("badge-ok") && !html.contains("<html"),
        "{html}"
    );

    // No SUPPORT_EMAIL: the page says so, and a post is refused.
    b.goto("/support").await;
    b.wait_text(".alert-warning", "not configured", Duration::from_secs(5))
        .await;
    assert!(b
        .client
        .find(fantoccini::Locator::Css("#message"))
        .await
        .is_err());
    let (status, page) = post_support(&p, "a@test.invalid", "Hello", "Anyone?").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("Support mail is not configured"), "{page}");
    b.close().await;
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_deployment_mails_off_means_no_mail_for_the_next_deployment() {
    let p = Platform::start(Options {
        smtp: true,
        extra: vec![
            ("NOTIFY_INTERVAL_SECS", "1".into()),
            ("SUPPORT_EMAIL", SUPPORT.into()),
        ],
        ..Default::default()
    })
    .await;
    let email = format!("prefs-{}@test.invalid", random(6).to_lowercase());
    let password = "correct horse battery staple";
    let member = p.verified_member(&email, password).await;
    let b = Browser::open(&p).await;
    b.sign_in(&email, password).await;

    // Signed in, the contact form knows who is writing.
    b.goto("/support").await;
    let prefilled = b.find("#email").await.prop("value").await.unwrap();
    assert_eq!(prefilled.as_deref(), Some(email.as_str()));

    b.goto("/settings/notifications").await;
    assert_eq!(b.text("h1").await, "Email preferences");
    for kind in [
        "deployment",
        "instance_down",
        "resource_alert",
        "setup_deadline",
    ] {
        let checked = b
            .find(&format!("#pref-{kind}"))
            .await
            .prop("checked")
            .await
            .unwrap();
        assert_eq!(checked.as_deref(), Some("true"), "{kind} is on by default");
    }
    b.check_page("settings-notifications").await;
    b.find("#pref-deployment").await.click().await.unwrap();
    b.find("form[action='/settings/notifications'] button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    b.wait_text(
        "[role=status]",
        "email preferences are saved",
        Duration::from_secs(10),
    )
    .await;
    let checked = b
        .find("#pref-deployment")
        .await
        .prop("checked")
        .await
        .unwrap();
    assert_eq!(checked.as_deref(), Some("false"));
    let stored: bool =
        sqlx::query_scalar("SELECT deployment FROM notification_preferences WHERE user_id = $1")
            .bind(member.id)
            .fetch_one(&p.pool)
            .await
            .unwrap();
    assert!(!stored);

    let sub = subdomain("prefs-off");
    let (status, created) = p
        .request(
            Method::POST,
            "/api/v1/tenants",
            Some(json!({ "subdomain": sub, "ownerEmail": email })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    p.wait_status(&id, "active", Duration::from_secs(60)).await;
    // The event is recorded as switched off, and stays unmailed.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let outcome: Option<String> = sqlx::query_scalar(
            "SELECT outcome FROM notifications_sent WHERE tenant_id = $1::uuid AND kind = 'deployment'",
        )
        .bind(&id)
        .fetch_optional(&p.pool)
        .await
        .unwrap();
        if let Some(outcome) = outcome {
            assert_eq!(outcome, "switched_off");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the deployment was never looked at"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let to_owner: Vec<_> = p
        .smtp
        .as_ref()
        .unwrap()
        .all()
        .into_iter()
        .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(&email)))
        .filter_map(|m| m.header("Subject"))
        .collect();
    assert!(
        to_owner.iter().all(|s| !s.contains("is ready")),
        "{to_owner:?}"
    );
    b.close().await;
    p.cleanup().await;
}
