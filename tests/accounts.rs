//! Accounts: brute force meets 429, cookie writes need the platform's origin,
//! password reset and email verification arrive by real SMTP and work once.

mod common;

use std::time::Duration;

use common::{random, Options, Platform};
use reqwest::StatusCode;
use serde_json::json;

const PASSWORD: &str = "violet-tundra-42-kettle";
const NEW_PASSWORD: &str = "amber-glacier-77-lantern";

async fn login(
    p: &Platform,
    client: &reqwest::Client,
    email: &str,
    password: &str,
) -> reqwest::Response {
    client
        .post(p.url("/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_bad_logins_hit_429_and_the_right_password_works_after_the_window() {
    let p = Platform::start(Options {
        extra: vec![
            ("RATE_LIMIT_LOGIN", "5".into()),
            ("RATE_LIMIT_LOGIN_WINDOW_SECS", "8".into()),
        ],
        ..Default::default()
    })
    .await;
    let m = p
        .member(&format!("brute-{}@test.invalid", random(6)), PASSWORD)
        .await;
    let client = p.browser();
    for attempt in 1..=5 {
        let r = login(&p, &client, &m.email, &format!("guess-number-{attempt}")).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let r = login(&p, &client, &m.email, "guess-number-6").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=8).contains(&retry), "Retry-After {retry}");
    // Even the right password waits for the window.
    assert_eq!(
        login(&p, &client, &m.email, PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::sleep(Duration::from_secs(retry + 1)).await;
    let r = login(&p, &client, &m.email, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with("fp_session="));
    let failed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'auth.login_failed'")
            .fetch_one(&p.pool)
            .await
            .unwrap();
    assert_eq!(
        failed, 5,
        "refused attempts are audited; throttled ones never reach the password check"
    );
    let ok: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'auth.login' AND user_id = $1",
    )
    .bind(m.id)
    .fetch_one(&p.pool)
    .await
    .unwrap();
    assert_eq!(ok, 1);
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_authenticated_writes_from_a_foreign_origin_are_refused() {
    let p = Platform::start(Options::default()).await;
    let m = p
        .member(&format!("csrf-{}@test.invalid", random(6)), PASSWORD)
        .await;
    let browser = p.browser();
    assert_eq!(
        login(&p, &browser, &m.email, PASSWORD).await.status(),
        StatusCode::OK
    );

    let evil = browser
        .post(p.url("/api/v1/api-keys"))
        .header("origin", "https://evil.example")
        .json(&json!({ "name": "stolen" }))
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = evil.json().await.unwrap();
    assert_eq!(body["error"]["code"], "csrf_refused");
    // The same write from the platform's own origin goes through.
    let own = browser
        .post(p.url("/api/v1/api-keys"))
        .json(&json!({ "name": "mine" }))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::CREATED);
    // A referer from elsewhere, and no origin at all, are refused too.
    let cookie_only = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    assert_eq!(
        login(&p, &cookie_only, &m.email, PASSWORD).await.status(),
        StatusCode::OK
    );
    let r = cookie_only
        .post(p.url("/api/v1/api-keys"))
        .json(&json!({ "name": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "no Origin or Referer");
    let r = cookie_only
        .post(p.url("/api/v1/api-keys"))
        .header("referer", "https://evil.example/page")
        .json(&json!({ "name": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "foreign Referer");
    // Reads need no origin; API keys need none either.
    assert_eq!(
        cookie_only
            .get(p.url("/api/v1/auth/me"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let (status, _) = p
        .request_as(
            Some(&m.key),
            reqwest::Method::POST,
            "/api/v1/api-keys",
            Some(json!({ "name": "cli" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE user_id = $1")
        .bind(m.id)
        .fetch_one(&p.pool)
        .await
        .unwrap();
    assert_eq!(
        keys, 3,
        "the test key, `mine` and `cli`; nothing from the refused requests"
    );
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_reset_and_email_verification_arrive_by_smtp_and_work_once() {
    let p = Platform::start(Options {
        smtp: true,
        ..Default::default()
    })
    .await;
    let sink = p.smtp.clone().unwrap();
    let m = p
        .member(&format!("reset-{}@test.invalid", random(6)), PASSWORD)
        .await;
    let browser = p.browser();
    assert_eq!(
        login(&p, &browser, &m.email, PASSWORD).await.status(),
        StatusCode::OK
    );

    // Unknown and known emails get the same answer; only the known one gets mail.
    let (unknown_status, unknown) = p
        .request_as(
            None,
            reqwest::Method::POST,
            "/api/v1/auth/password-reset",
            Some(json!({ "email": "nobody@test.invalid" })),
        )
        .await;
    let (status, known) = p
        .request_as(
            None,
            reqwest::Method::POST,
            "/api/v1/auth/password-reset",
            Some(json!({ "email": m.email })),
        )
        .await;
    assert_eq!((status, &known), (unknown_status, &unknown));
    assert_eq!(status, StatusCode::ACCEPTED);
    let mail = sink.wait_for(&m.email, Duration::from_secs(10)).await;
    assert!(sink
        .all()
        .iter()
        .all(|m| !m.to.iter().any(|t| t.contains("nobody"))));
    let token = mail.find_token("Token: ").expect("token in the mail");
    assert!(
        !known.to_string().contains(&token),
        "the token leaked into the API answer"
    );

    // A weak new password is refused without burning the token.
    let (status, body) = p
        .request_as(
            None,
            reqwest::Method::POST,
            "/api/v1/auth/password-reset/confirm",
            Some(json!({ "token": token, "newPassword": "short" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = p
        .request_as(
            None,
            reqwest::Method::POST,
            "/api/v1/auth/password-reset/confirm",
            Some(json!({ "token": token, "newPassword": NEW_PASSWORD })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = p
        .request_as(
            None,
            reqwest::Method::POST,
            "/api/v1/auth/password-reset/confirm",
            Some(json!({ "token": token, "newPassword": NEW_PASSWORD })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a reset token works once");
    // The reset ended the old session; the old password is dead, the new one works.
    assert_eq!(
        browser
            .get(p.url("/api/v1/auth/me"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&p, &browser, &m.email, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&p, &browser, &m.email, NEW_PASSWORD).await.status(),
        StatusCode::OK
    );

    // The reset link reached the address: it counts as verified, so there is
    // nothing left to verify (the link flow itself: tests/account_flows.rs).
    let me: serde_json::Value = browser
        .get(p.url("/api/v1/auth/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["emailVerified"], true);
    let r = browser
        .post(p.url("/api/v1/auth/verify-email"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);

    // Changing the password ends the other sessions but not this one.
    let other = p.browser();
    assert_eq!(
        login(&p, &other, &m.email, NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
    let r = browser
        .post(p.url("/api/v1/auth/password"))
        .json(&json!({ "currentPassword": NEW_PASSWORD, "newPassword": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        browser
            .get(p.url("/api/v1/auth/me"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        other
            .get(p.url("/api/v1/auth/me"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // Strength scoring for the wizard's indicator.
    let (_, weak) = p
        .request_as(
            None,
            reqwest::Method::POST,
            "/api/v1/auth/password-strength",
            Some(json!({ "password": "password1" })),
        )
        .await;
    let (_, strong) = p
        .request_as(
            None,
            reqwest::Method::POST,
            "/api/v1/auth/password-strength",
            Some(json!({ "password": PASSWORD })),
        )
        .await;
    assert!(
        weak["score"].as_u64() < strong["score"].as_u64(),
        "{weak} {strong}"
    );
    p.cleanup().await;
}
