//! Owner notifications through a real SMTP sink: a finished or failed
//! deployment, a setup window about to close, and an instance that goes down
//! each mail the owner exactly once (a flapping instance sends one "down"
//! mail), and no mail carries the tenant's database password or a setup token.

mod common;

use std::time::{Duration, Instant};

use common::smtp::ReceivedMail;
use common::{random, subdomain, Options, Platform};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Mails to `to` whose subject contains `needle`, taken or not.
fn mails(p: &Platform, to: &str, needle: &str) -> Vec<ReceivedMail> {
    p.smtp
        .as_ref()
        .unwrap()
        .all()
        .into_iter()
        .filter(|m| m.to.iter().any(|r| r.eq_ignore_ascii_case(to)))
        .filter(|m| m.header("Subject").is_some_and(|s| s.contains(needle)))
        .collect()
}

/// The mails of the "down" family (one gap covers them all).
fn down_mails(p: &Platform, to: &str) -> Vec<ReceivedMail> {
    ["went down", "not responding", "crashed and restarted"]
        .iter()
        .flat_map(|needle| mails(p, to, needle))
        .collect()
}

/// Waits for the first mail to `to` whose subject contains `needle`.
async fn wait_mail(p: &Platform, to: &str, needle: &str, timeout: Duration) -> ReceivedMail {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(m) = mails(p, to, needle).into_iter().next() {
            return m;
        }
        let seen: Vec<_> = p
            .smtp
            .as_ref()
            .unwrap()
            .all()
            .iter()
            .map(|m| m.header("Subject"))
            .collect();
        assert!(
            Instant::now() < deadline,
            "no mail {needle:?} to {to}; seen: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn options(extra: Vec<(&'static str, String)>) -> Options {
    let mut extra = extra;
    extra.push(("NOTIFY_INTERVAL_SECS", "1".into()));
    Options {
        smtp: true,
        extra,
        ..Default::default()
    }
}

/// An owner with a verified address, and a tenant of theirs being created.
async fn owner_and_tenant(
    p: &Platform,
    label: &str,
    image: Option<&str>,
) -> (String, String, String, String) {
    let email = format!("{label}-{}@test.invalid", random(6).to_lowercase());
    let member = p
        .verified_member(&email, "correct horse battery staple")
        .await;
    let sub = subdomain(label);
    let mut body = json!({ "subdomain": sub, "ownerEmail": email });
    if let Some(image) = image {
        body["image"] = json!(image);
    }
    let (status, created) = p.request(Method::POST, "/api/v1/tenants", Some(body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    (email, sub, id, member.key)
}

/// Lets the reconciler resync (every 2 s in tests) and the notifier look
/// (every second) a few times.
async fn let_resyncs_pass() {
    tokio::time::sleep(Duration::from_secs(6)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_deployment_and_near_setup_deadline_mail_the_owner_once_without_secrets() {
    // Warn three hours ahead: the 2-hour window is "near" as soon as it starts.
    let p = Platform::start(options(vec![(
        "NOTIFY_SETUP_DEADLINE_WARNING_MINS",
        "180".into(),
    )]))
    .await;
    let (email, sub, id, key) = owner_and_tenant(&p, "notify-ok", None).await;
    p.wait_status(&id, "active", Duration::from_secs(60)).await;

    let ready = wait_mail(&p, &email, "is ready", Duration::from_secs(20)).await;
    assert!(ready.body().contains(&sub), "{}", ready.body());
    let setup = wait_mail(&p, &email, "setup window", Duration::from_secs(20)).await;
    assert!(
        setup.body().contains("find the setup link"),
        "{}",
        setup.body()
    );
    let_resyncs_pass().await;
    assert_eq!(mails(&p, &email, "is ready").len(), 1);
    assert_eq!(mails(&p, &email, "setup window").len(), 1);

    // Secrets: the database password the container was given, and the setup
    // claim token the owner's view of the tenant carries.
    let password = p.tenant_password(&id).await;
    let (_, member_view) = p
        .request_as(
            Some(&key),
            Method::GET,
            &format!("/api/v1/tenants/{id}"),
            None,
        )
        .await;
    assert!(
        member_view["setup"]["claimUrl"].is_string(),
        "{member_view}"
    );
    let claim = member_view["setup"]["claimUrl"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let token = claim.rsplit('=').next().unwrap_or_default().to_owned();
    for mail in mails(&p, &email, "") {
        let body = mail.body();
        assert!(password.len() > 8 && !body.contains(&password), "{body}");
        assert!(token.is_empty() || !body.contains(&token), "{body}");
        assert!(!body.contains("claim="), "{body}");
    }
    let recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notifications_sent WHERE outcome = 'sent' AND tenant_id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&p.pool)
    .await
    .unwrap();
    assert_eq!(recorded, 2);
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_deployment_mails_the_owner_once() {
    let p = Platform::start(options(vec![])).await;
    let (email, sub, id, _) =
        owner_and_tenant(&p, "notify-fail", Some("127.0.0.1:9/missing/fresco:1.0")).await;
    p.wait_status(&id, "error", Duration::from_secs(60)).await;
    let failed = wait_mail(&p, &email, "failed", Duration::from_secs(20)).await;
    assert_eq!(
        failed.header("Subject").unwrap(),
        format!("The deployment of {sub} failed")
    );
    assert!(failed.body().contains("/instances/"), "{}", failed.body());
    let_resyncs_pass().await;
    assert_eq!(mails(&p, &email, "failed").len(), 1);
    assert!(mails(&p, &email, "is ready").is_empty());
    p.cleanup().await;
}

/// Kills the tenant's container and waits until the reconciler has brought it
/// back (`recoveries` recover/success rows in its log).
async fn knock_down(p: &Platform, id: &str, recoveries: usize) {
    let name = common::tenant_id(id).container_name();
    p.docker
        .kill_container(
            &name,
            None::<bollard::query_parameters::KillContainerOptions>,
        )
        .await
        .expect("kill the tenant's container");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = p.deployments(id).await;
        let done = log
            .iter()
            .filter(|(a, s)| a == "recover" && s == "success")
            .count();
        if done >= recoveries {
            break;
        }
        assert!(Instant::now() < deadline, "not recovered: {log:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    p.wait_status(id, "active", Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_goes_down_twice_within_the_gap_sends_one_down_mail() {
    let p = Platform::start(options(vec![])).await;
    let (email, sub, id, _) = owner_and_tenant(&p, "notify-flap", None).await;
    p.wait_status(&id, "active", Duration::from_secs(60)).await;
    wait_mail(&p, &email, "is ready", Duration::from_secs(20)).await;

    knock_down(&p, &id, 1).await;
    // The notifier may see the episode first as the container gone (the
    // reconciler recovers it) or as its health check failing meanwhile; either
    // way it is one "down" episode, and one mail.
    let deadline = Instant::now() + Duration::from_secs(20);
    while down_mails(&p, &email).is_empty() {
        assert!(Instant::now() < deadline, "no down mail to {email}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let down = &down_mails(&p, &email)[0];
    assert!(down.body().contains(&sub), "{}", down.body());
    knock_down(&p, &id, 2).await;
    let_resyncs_pass().await;

    let subjects: Vec<_> = down_mails(&p, &email)
        .iter()
        .map(|m| m.header("Subject"))
        .collect();
    assert_eq!(subjects.len(), 1, "{subjects:?}");
    let outcomes: Vec<String> = sqlx::query_scalar(
        "SELECT outcome FROM notifications_sent
          WHERE tenant_id = $1::uuid AND kind = 'instance_down' ORDER BY id",
    )
    .bind(&id)
    .fetch_all(&p.pool)
    .await
    .unwrap();
    assert_eq!(
        outcomes.first().map(String::as_str),
        Some("sent"),
        "{outcomes:?}"
    );
    assert!(
        outcomes.len() >= 2 && outcomes[1..].iter().all(|o| o == "suppressed"),
        "the second episode is recorded, not mailed: {outcomes:?}"
    );
    p.cleanup().await;
}
