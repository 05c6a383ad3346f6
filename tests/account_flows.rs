//! Account flows (issue 9): an email change goes through the new address, a
//! verified email is needed for tenants, a reset revokes API keys, answers do
//! not reveal whether an account exists, the session cookie is `__Host-` on
//! https, the platform's host label is reserved, and SCRAM verifiers never
//! reach the log.

mod common;

use std::time::{Duration, Instant};

use common::smtp::SmtpSink;
use common::{random, subdomain, Options, Platform};
use fresco_platform::store::users;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const PASSWORD: &str = "violet-tundra-42-kettle";
const NEW_PASSWORD: &str = "amber-glacier-77-lantern";

async fn patch_me(p: &Platform, key: &str, body: Value) -> (StatusCode, Value) {
    p.request_as(Some(key), Method::PATCH, "/api/v1/auth/me", Some(body))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_change_needs_the_password_and_waits_for_the_new_address() {
    let p = Platform::start(Options {
        smtp: true,
        ..Default::default()
    })
    .await;
    let sink = p.smtp.clone().unwrap();
    let m = p
        .member(&format!("old-{}@test.invalid", random(6)), PASSWORD)
        .await;
    users::mark_email_verified(&p.pool, m.id, &m.email)
        .await
        .unwrap();
    let new = format!("new-{}@test.invalid", random(6));

    let (status, body) = patch_me(&p, &m.key, json!({ "email": new })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"]["field"], "currentPassword");
    let (status, body) = patch_me(
        &p,
        &m.key,
        json!({ "email": new, "currentPassword": "not-the-password-at-all" }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"]["field"], "currentPassword");

    let (status, me) = patch_me(
        &p,
        &m.key,
        json!({ "email": new, "currentPassword": PASSWORD }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["email"], m.email.as_str(), "the old address stays");
    assert_eq!(me["emailVerified"], true, "and stays verified");
    assert_eq!(me["pendingEmail"], new.as_str());

    let notice = sink.wait_for(&m.email, Duration::from_secs(10)).await;
    assert!(notice.body().contains(&new), "{}", notice.body());
    assert!(
        notice.find_token("Token: ").is_none(),
        "no link to the old address"
    );
    let mail = sink.wait_for(&new, Duration::from_secs(10)).await;
    assert!(mail.body().contains("#token="), "{}", mail.body());
    assert!(!mail.body().contains("?token="), "{}", mail.body());
    let token = mail.find_token("Token: ").expect("token in the mail");

    let (status, _) = p
        .request_as(
            None,
            Method::POST,
            "/api/v1/auth/verify-email/confirm",
            Some(json!({ "token": token })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, me) = p
        .request_as(Some(&m.key), Method::GET, "/api/v1/auth/me", None)
        .await;
    assert_eq!(me["email"], new.as_str(), "{me}");
    assert_eq!(me["emailVerified"], true);
    assert_eq!(me["pendingEmail"], Value::Null);
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_in_use_gets_the_same_answer_and_no_link() {
    let p = Platform::start(Options {
        smtp: true,
        ..Default::default()
    })
    .await;
    let sink = p.smtp.clone().unwrap();
    let m = p
        .member(&format!("mover-{}@test.invalid", random(6)), PASSWORD)
        .await;
    let other = p
        .member(&format!("taken-{}@test.invalid", random(6)), PASSWORD)
        .await;
    let free = format!("free-{}@test.invalid", random(6));
    let (s1, free_answer) = patch_me(
        &p,
        &m.key,
        json!({ "email": free, "currentPassword": PASSWORD }),
    )
    .await;
    let (s2, taken_answer) = patch_me(
        &p,
        &m.key,
        json!({ "email": other.email, "currentPassword": PASSWORD }),
    )
    .await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK), "{taken_answer}");
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&free_answer), keys(&taken_answer));
    let note = sink.wait_for(&other.email, Duration::from_secs(10)).await;
    assert!(note.find_token("Token: ").is_none(), "{}", note.body());
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_reset_revokes_api_keys_and_names_them_in_a_mail() {
    let p = Platform::start(Options {
        smtp: true,
        ..Default::default()
    })
    .await;
    let sink = p.smtp.clone().unwrap();
    let m = p
        .member(&format!("reset-{}@test.invalid", random(6)), PASSWORD)
        .await;
    let prefix: String = m.key.split('_').take(2).collect::<Vec<_>>().join("_");
    let (status, _) = p
        .request_as(Some(&m.key), Method::GET, "/api/v1/auth/me", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = p
        .request_as(
            None,
            Method::POST,
            "/api/v1/auth/password-reset",
            Some(json!({ "email": m.email })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mail = sink.wait_for(&m.email, Duration::from_secs(10)).await;
    assert!(mail.body().contains("#token="), "{}", mail.body());
    let token = mail.find_token("Token: ").unwrap();
    let (status, _) = p
        .request_as(
            None,
            Method::POST,
            "/api/v1/auth/password-reset/confirm",
            Some(json!({ "token": token, "newPassword": NEW_PASSWORD })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = p
        .request_as(Some(&m.key), Method::GET, "/api/v1/auth/me", None)
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the key died with the reset"
    );
    let done = sink.wait_for(&m.email, Duration::from_secs(10)).await;
    assert!(done.body().contains(&prefix), "{}", done.body());
    assert!(
        done.body().contains("test"),
        "the key's name: {}",
        done.body()
    );
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_need_a_verified_email_except_the_wizards_one() {
    let p = Platform::start(Options::default()).await;
    let m = p
        .member(&format!("unv-{}@test.invalid", random(6)), PASSWORD)
        .await;
    let body = json!({ "subdomain": subdomain("unv") });
    let (status, answer) = p
        .request_as(
            Some(&m.key),
            Method::POST,
            "/api/v1/tenants",
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("verify your email"));
    // An admin cannot attach a tenant to that unverified account either.
    let (status, answer) = p
        .request(
            Method::POST,
            "/api/v1/tenants",
            Some(json!({ "subdomain": subdomain("adm"), "ownerEmail": m.email })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["error"]["code"], "owner_unverified");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&p.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
    users::mark_email_verified(&p.pool, m.id, &m.email)
        .await
        .unwrap();
    let (status, answer) = p
        .request_as(Some(&m.key), Method::POST, "/api/v1/tenants", Some(body))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wizard_stops_taking_signups_at_the_unverified_cap() {
    let p = Platform::start(Options {
        extra: vec![("UNVERIFIED_TENANT_CAP", "0".into())],
        ..Default::default()
    })
    .await;
    let client = p.browser();
    let id = walk(&p, &client, &subdomain("cap")).await;
    let r = client
        .post(p.url(&format!("/api/v1/wizard/sessions/{id}/deploy")))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("confirm their email"),
        "{body}"
    );
    p.cleanup().await;
}

/// A wizard session with its four steps done.
async fn walk(p: &Platform, client: &reqwest::Client, sub: &str) -> String {
    let email = format!("wiz-{}@test.invalid", random(6));
    let r: Value = client
        .post(p.url("/api/v1/wizard/sessions"))
        .json(&json!({ "email": email }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = r["sessionId"].as_str().unwrap().to_owned();
    let data = [
        json!({ "password": PASSWORD, "name": "Ada Researcher" }),
        json!({ "intendedUse": "study" }),
        json!({ "subdomain": sub }),
        json!({ "accepted": true, "termsVersion": "2026-01" }),
    ];
    for (i, d) in data.into_iter().enumerate() {
        let r = client
            .post(p.url(&format!("/api/v1/wizard/sessions/{id}/steps")))
            .json(&json!({ "step": i + 1, "data": d }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "step {}", i + 1);
    }
    id
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_request_takes_as_long_with_or_without_an_account() {
    // A slow SMTP server: were mail sent on the request path, a known account
    // would answer 400 ms later than an unknown one.
    let sink = SmtpSink::start_slow(Duration::from_millis(400)).await;
    let p = Platform::start(Options {
        extra: vec![
            ("SMTP_URL", sink.url()),
            ("RATE_LIMIT_RESET", "1000".into()),
        ],
        ..Default::default()
    })
    .await;
    let m = p
        .member(&format!("timing-{}@test.invalid", random(6)), PASSWORD)
        .await;
    let mut known = vec![];
    let mut unknown = vec![];
    let mut shapes = vec![];
    for i in 0..5 {
        for (email, times) in [
            (m.email.clone(), &mut known),
            (
                format!("nobody-{i}-{}@test.invalid", random(6)),
                &mut unknown,
            ),
        ] {
            let started = Instant::now();
            let (status, body) = p
                .request_as(
                    None,
                    Method::POST,
                    "/api/v1/auth/password-reset",
                    Some(json!({ "email": email })),
                )
                .await;
            times.push(started.elapsed());
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
            shapes.push(body);
        }
    }
    assert!(shapes.windows(2).all(|w| w[0] == w[1]), "{shapes:?}");
    let (known, unknown) = (median(known), median(unknown));
    assert!(
        known <= unknown * 2 + Duration::from_millis(50),
        "known {known:?} vs unknown {unknown:?}"
    );
    // The mail still goes out, later.
    sink.wait_for(&m.email, Duration::from_secs(10)).await;
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_https_the_session_cookie_is_host_only_and_the_platform_label_is_reserved() {
    let base = common::env("BASE_DOMAIN");
    let label = format!("console{}", random(4));
    let p = Platform::start(Options {
        extra: vec![("PLATFORM_URL", format!("https://{label}.{base}"))],
        ..Default::default()
    })
    .await;
    let m = p
        .member(&format!("host-{}@test.invalid", random(6)), PASSWORD)
        .await;
    let r = reqwest::Client::new()
        .post(p.url("/api/v1/auth/login"))
        .json(&json!({ "email": m.email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-fp_session="), "{cookie}");
    assert!(
        cookie.contains("; Secure") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.to_ascii_lowercase().contains("domain="), "{cookie}");
    let token = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("__Host-fp_session=");
    let me = |cookie: String| {
        let url = p.url("/api/v1/auth/me");
        async move {
            reqwest::Client::new()
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        me(format!("__Host-fp_session={token}")).await,
        StatusCode::OK
    );
    assert_eq!(
        me(format!("fp_session={token}")).await,
        StatusCode::UNAUTHORIZED,
        "a plain cookie (one a subdomain could plant) is ignored on https"
    );

    let (status, body) = p
        .request(
            Method::POST,
            "/api/v1/tenants",
            Some(json!({ "subdomain": label })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"]["rule"], "reserved");
    let (status, check) = p
        .request_as(
            None,
            Method::GET,
            &format!("/api/v1/wizard/subdomain-check?subdomain={label}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(check["rule"], "reserved", "{check}");
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_image_with_traefik_labels_is_refused() {
    let p = Platform::start(Options::default()).await;
    let base = common::env("FRESCO_STANDIN_IMAGE");
    let tag = format!("fresco-platform-test/routing-{}:latest", random(8));
    let dir = std::env::temp_dir().join(format!("routing-image-{}", random(8)));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM {base}\nLABEL traefik.http.routers.evil.rule=\"Host(`x`)\"\n"),
    )
    .unwrap();
    let built = std::process::Command::new("docker")
        .args(["build", "-q", "-t", &tag])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(built.success());
    let (status, body) = p
        .request(
            Method::POST,
            "/api/v1/tenants",
            Some(json!({ "subdomain": subdomain("evil"), "ownerEmail": "o@test.invalid", "image": tag })),
        )
        .await;
    let _ = std::process::Command::new("docker")
        .args(["rmi", "-f", &tag])
        .status();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"]["rule"], "labels");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("traefik.http.routers.evil.rule"));
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_verifiers_never_reach_the_log() {
    let log = std::env::temp_dir().join(format!("fresco-platform-scram-{}.log", random(8)));
    let p = Platform::start(Options {
        process: true,
        log_file: Some(log.clone()),
        // Every statement sqlx runs is logged at this level, slow or not.
        process_env: vec![("RUST_LOG", "sqlx=trace,info".into())],
        ..Default::default()
    })
    .await;
    p.create_active(&subdomain("scram")).await;
    p.cleanup().await;
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    assert!(
        text.contains("ALTER ROLE") || text.contains("CREATE ROLE") || text.contains("SELECT"),
        "statements are logged at this level: the check below means something"
    );
    assert!(
        !text.contains("SCRAM-SHA-256$"),
        "a verifier reached the log"
    );
}
