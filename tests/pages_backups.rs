//! The backup pages in a real browser, on a platform with backups in a local
//! folder: an owner takes a backup by hand and sees it complete without a
//! reload, is refused a second one (the rate limit) with an alert, downloads
//! it with the page's session, replaces the instance's data with it behind the
//! typed subdomain and sees the restore done; destroys the instance and is told
//! until when its backups are kept; brings it back into a new instance from
//! the destroyed one's backups page; deletes the backups now. Admins see every
//! live instance's backup health. Without a backup key the page says backups
//! are off and offers nothing. Each new page passes axe and is photographed.

mod common;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::backups::{backup_dirs, local_backups};
use common::browser::Browser;
use common::{random, subdomain, tenant_id, Member, Options, Platform};
use serde_json::json;

const PASSWORD: &str = "correct horse battery staple";
const SETTLE: Duration = Duration::from_secs(90);

async fn member(p: &Platform, label: &str) -> Member {
    let email = format!("{label}-{}@test.invalid", random(6));
    p.verified_member(&email, PASSWORD).await
}

/// A member's own instance, created with the member's API key.
async fn create_instance(p: &Platform, m: &Member, sub: &str) -> String {
    let (status, body) = p
        .request_as(
            Some(&m.key),
            reqwest::Method::POST,
            "/api/v1/tenants",
            Some(json!({ "subdomain": sub })),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn click(b: &Browser, css: &str) {
    b.find(css).await.click().await.unwrap();
}

/// Waits until the browser is on an instance's own page (`/instances/{id}`).
async fn wait_instance_page(b: &Browser, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let path = b.path().await;
        if let Some(id) = path.strip_prefix("/instances/") {
            if !id.contains('/') {
                return id.to_owned();
            }
        }
        assert!(
            Instant::now() < deadline,
            "never reached an instance page: at {path}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The status and first bytes of a download, fetched by the page itself (its
/// session cookie, as a click on the link would send).
async fn fetch_start(b: &Browser, url: &str) -> (u64, String) {
    let v = b
        .client
        .execute_async(
            "var done = arguments[arguments.length - 1];
             fetch(arguments[0], { credentials: 'same-origin' })
               .then(function (r) { return r.arrayBuffer().then(function (buf) {
                 done([r.status, new TextDecoder().decode(new Uint8Array(buf).slice(0, 64))]);
               }); })
               .catch(function (e) { done([0, String(e)]); });",
            vec![json!(url)],
        )
        .await
        .unwrap();
    (v[0].as_u64().unwrap(), v[1].as_str().unwrap().to_owned())
}

async fn backup_statuses(p: &Platform, id: &str) -> Vec<(String, String)> {
    sqlx::query_as("SELECT kind, status FROM tenant_backups WHERE tenant_id = $1 ORDER BY id")
        .bind(tenant_id(id).0)
        .fetch_all(&p.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_backs_up_restores_destroys_and_brings_back_an_instance_from_the_pages() {
    let (key, dir) = backup_dirs();
    let p = Platform::start(Options {
        extra: local_backups(&key, &dir),
        ..Options::default()
    })
    .await;
    let m = member(&p, "bk").await;
    let sub = subdomain("bk");
    let id = create_instance(&p, &m, &sub).await;
    p.wait_status(&id, "active", SETTLE).await;
    let b = Browser::open(&p).await;
    b.sign_in(&m.email, PASSWORD).await;

    // The instance page leads to its backups.
    b.goto(&format!("/instances/{id}")).await;
    click(
        &b,
        &format!(".instance-links a[href='/instances/{id}/backups']"),
    )
    .await;
    b.wait_text("h1", &format!("Backups of {sub}"), Duration::from_secs(5))
        .await;
    b.wait_text("#backups-live", "No backups yet", Duration::from_secs(5))
        .await;
    b.check_page("backups-empty").await;

    // Back up now: it shows at once and turns complete without a reload.
    b.client
        .execute("window.__noReload = 1;", vec![])
        .await
        .unwrap();
    let now_button = format!("form[action='/instances/{id}/backups'] button");
    click(&b, &now_button).await;
    b.wait_text(
        "#backup-result",
        "Backup requested",
        Duration::from_secs(10),
    )
    .await;
    let first = "#backups-live .backup-table tbody tr:first-child";
    b.wait_text(&format!("{first} .backup-status"), "Complete", SETTLE)
        .await;
    let reloaded = b
        .client
        .execute("return window.__noReload !== 1;", vec![])
        .await
        .unwrap();
    assert_eq!(reloaded, json!(false), "the page reloaded");
    let row = b.text(first).await;
    assert!(row.contains("By hand"), "{row}");
    let backup: i64 = b
        .find(first)
        .await
        .attr("data-backup")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    let dump_link = b
        .find(&format!("{first} a[href$='format=dump']"))
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        dump_link,
        format!("/api/v1/tenants/{id}/backups/{backup}/download?format=dump")
    );
    let (status, start) = fetch_start(&b, &dump_link).await;
    assert_eq!(status, 200, "{start}");
    assert!(
        start.starts_with("PGDMP"),
        "not a pg_dump archive: {start:?}"
    );
    let (status, sql) = fetch_start(
        &b,
        &format!("/api/v1/tenants/{id}/backups/{backup}/download?format=sql"),
    )
    .await;
    assert_eq!(status, 200, "{sql}");
    assert!(sql.contains("PostgreSQL database dump"), "{sql:?}");
    b.check_page("backups-list").await;

    // A second one by hand is refused, as an alert beside the button.
    click(&b, &now_button).await;
    let refusal = b
        .wait_text(
            "#backup-result [role=alert]",
            "One backup by hand per 10m",
            Duration::from_secs(10),
        )
        .await;
    assert!(refusal.contains("the next one at"), "{refusal}");
    // Without JavaScript the form posts plainly: the page again, with the alert.
    let plain = p.browser();
    let login = plain
        .post(p.url("/login"))
        .form(&[("email", m.email.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(login.url().path(), "/dashboard", "signed in");
    let answer = plain
        .post(p.url(&format!("/instances/{id}/backups")))
        .form(&[] as &[(&str, &str)])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 429);
    let html = answer.text().await.unwrap();
    assert!(
        html.contains("role=\"alert\">One backup by hand per 10m"),
        "{html}"
    );
    assert_eq!(
        backup_statuses(&p, &id).await,
        vec![("manual".into(), "complete".into())]
    );

    // Restore it over the instance's data, behind the typed subdomain.
    click(
        &b,
        &format!("{first} a[href='/instances/{id}/backups/{backup}/restore']"),
    )
    .await;
    b.wait_for("#confirm", Duration::from_secs(5)).await;
    let warning = b.text(".restore-choice .alert-warning").await;
    assert!(warning.contains("backed up first"), "{warning}");
    assert!(warning.contains("restarts"), "{warning}");
    b.check_page("restore-confirm").await;
    let replace = "form:has(input[name=into][value=same]) button[type=submit]";
    b.fill("#confirm", "not-the-subdomain").await;
    click(&b, replace).await;
    let error = b
        .wait_text(
            "#confirm-error",
            "not this instance's subdomain",
            Duration::from_secs(10),
        )
        .await;
    assert!(error.contains(&sub), "{error}");
    b.fill("#confirm", &sub).await;
    click(&b, replace).await;
    b.wait_text(".notice", "The restore has begun", Duration::from_secs(10))
        .await;
    assert_eq!(b.path().await, format!("/instances/{id}"));
    b.goto(&format!("/instances/{id}/backups")).await;
    let restore_row = "#backups-live .restore-table tbody tr:first-child";
    b.wait_text(&format!("{restore_row} .restore-phase"), "Done", SETTLE)
        .await;
    let restored = b.text(restore_row).await;
    assert!(restored.contains("restore that one to undo"), "{restored}");
    b.wait_text("#backups-live .backup-table", "Before a restore", SETTLE)
        .await;
    p.wait_status(&id, "active", SETTLE).await;

    // Destroy says how long the backups are kept.
    b.goto(&format!("/instances/{id}/destroy")).await;
    let expected = (Utc::now() + chrono::Duration::days(30))
        .format("%Y-%m-%d")
        .to_string();
    let kept = b.text(".backups-kept").await;
    assert!(
        kept.contains("kept for 30 days, until") && kept.contains(&expected),
        "{kept}"
    );
    assert!(kept.contains("bring it back"), "{kept}");
    b.fill("#confirm", &sub).await;
    click(&b, "form[action$='/destroy'] button[type=submit]").await;
    b.wait_text(".notice", "being destroyed", Duration::from_secs(10))
        .await;
    p.wait_status(&id, "destroyed", SETTLE).await;

    // The destroyed instance's page leads to its backups, which say until when.
    let until: DateTime<Utc> =
        sqlx::query_scalar("SELECT backups_kept_until FROM tenants WHERE id = $1")
            .bind(tenant_id(&id).0)
            .fetch_one(&p.pool)
            .await
            .unwrap();
    b.goto(&format!("/instances/{id}")).await;
    click(
        &b,
        &format!(".instance-links a[href='/instances/{id}/backups']"),
    )
    .await;
    let shown = b
        .wait_text(".kept-until", "kept until", Duration::from_secs(5))
        .await;
    assert!(
        shown.contains(&until.format("%Y-%m-%d %H:%M UTC").to_string()),
        "{shown}"
    );
    assert!(
        b.client
            .find(fantoccini::Locator::Css(&now_button))
            .await
            .is_err(),
        "a destroyed instance offers Back up now"
    );
    b.wait_text(&format!("{first} .backup-kind"), "At destroy", SETTLE)
        .await;
    b.wait_text(&format!("{first} .backup-status"), "Complete", SETTLE)
        .await;
    b.check_page("backups-destroyed").await;

    // Bring it back: only into a new instance, at its old subdomain.
    click(&b, &format!("{first} a[href$='/restore']")).await;
    b.wait_for("#subdomain", Duration::from_secs(5)).await;
    assert_eq!(
        b.find("#subdomain").await.prop("value").await.unwrap(),
        Some(sub.clone())
    );
    assert!(
        b.client
            .find(fantoccini::Locator::Css("#confirm"))
            .await
            .is_err(),
        "a destroyed instance offers to replace its data"
    );
    b.check_page("restore-bring-back").await;
    click(
        &b,
        "form:has(input[name=into][value=new]) button[type=submit]",
    )
    .await;
    let new_id = wait_instance_page(&b, Duration::from_secs(10)).await;
    assert_ne!(new_id, id);
    b.wait_text(
        ".notice",
        "A new instance is being made",
        Duration::from_secs(5),
    )
    .await;
    let back = p.wait_status(&new_id, "active", SETTLE).await;
    assert_eq!(back["subdomain"], sub.as_str());

    // Delete the destroyed instance's backups now, behind the typed subdomain.
    b.goto(&format!("/instances/{id}/backups")).await;
    b.fill("#confirm", "nope").await;
    click(&b, "form[action$='/backups/delete'] button[type=submit]").await;
    b.wait_text(
        "#confirm-error",
        "not this instance's subdomain",
        Duration::from_secs(10),
    )
    .await;
    assert!(backup_statuses(&p, &id)
        .await
        .iter()
        .any(|(_, s)| s == "complete"));
    b.fill("#confirm", &sub).await;
    click(&b, "form[action$='/backups/delete'] button[type=submit]").await;
    b.wait_text(".notice", "being deleted", Duration::from_secs(10))
        .await;
    let deadline = Instant::now() + SETTLE;
    loop {
        let text = b.text("#backups-live .backup-table tbody").await;
        if !text.contains("Complete") && text.contains("Deleted") {
            break;
        }
        assert!(Instant::now() < deadline, "never all deleted: {text}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(backup_statuses(&p, &id)
        .await
        .iter()
        .all(|(_, s)| s == "deleted"));
    assert!(
        b.client
            .find(fantoccini::Locator::Css("a[href$='/restore']"))
            .await
            .is_err(),
        "a deleted backup offers a restore"
    );
    b.goto(&format!("/instances/{id}/backups")).await;
    assert!(
        b.client
            .find(fantoccini::Locator::Css("form[action$='/backups/delete']"))
            .await
            .is_err(),
        "nothing is left to delete"
    );

    // The admin page: every live instance's backup health.
    b.goto("/admin/backups").await;
    assert_eq!(b.text("h1").await, "Not allowed");
    let admin_email = format!("admin-{}@test.invalid", random(6));
    let admin = p.verified_member(&admin_email, PASSWORD).await;
    fresco_platform::store::users::set_role(
        &p.pool,
        admin.id,
        fresco_platform::domain::Role::Admin,
    )
    .await
    .unwrap();
    let a = Browser::open(&p).await;
    a.sign_in(&admin_email, PASSWORD).await;
    a.goto("/admin").await;
    click(&a, ".admin-nav a[href='/admin/backups']").await;
    a.wait_text("h1", "Backups", Duration::from_secs(5)).await;
    let row = a
        .wait_text(
            &format!("tr[data-tenant='{new_id}']"),
            &sub,
            Duration::from_secs(5),
        )
        .await;
    // Brought back from a backup but not backed up itself: never a good one.
    assert!(row.contains("Never"), "{row}");
    a.find(&format!(
        "tr[data-tenant='{new_id}'] a[href='/instances/{new_id}']"
    ))
    .await;
    assert!(
        a.client
            .find(fantoccini::Locator::Css(&format!("tr[data-tenant='{id}']")))
            .await
            .is_err(),
        "a destroyed instance is listed"
    );
    let summary = a.text(".backup-summary").await;
    assert!(summary.contains("Storage: local:"), "{summary}");
    assert!(summary.contains("Schedule: off"), "{summary}");
    a.check_page("admin-backups").await;

    a.close().await;
    b.close().await;
    p.cleanup().await;
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_backup_key_the_page_says_backups_are_off_and_offers_nothing() {
    let p = Platform::start(Options::default()).await;
    let m = member(&p, "nobk").await;
    let sub = subdomain("nobk");
    let id = create_instance(&p, &m, &sub).await;
    let b = Browser::open(&p).await;
    b.sign_in(&m.email, PASSWORD).await;
    b.goto(&format!("/instances/{id}/backups")).await;
    b.wait_text(".backups-off", "Backups are off", Duration::from_secs(5))
        .await;
    assert!(
        b.client
            .find(fantoccini::Locator::Css("main form, main button"))
            .await
            .is_err(),
        "a button on a platform without backups"
    );
    b.check_page("backups-off").await;
    // The destroy page does not promise backups that are not taken.
    b.goto(&format!("/instances/{id}/destroy")).await;
    b.wait_for("#confirm", Duration::from_secs(5)).await;
    assert!(!b.text("main").await.contains("backups are kept"));
    b.close().await;
    p.cleanup().await;
}
