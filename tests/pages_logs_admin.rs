//! The log viewer and the admin pages in a real browser: a line the instance
//! writes appears live, a forced reconnect repeats and loses nothing, the
//! stream filter hides the other stream, another user's logs are a 404 page;
//! admins see every instance with its owner, change a user's role (the row in
//! the database changes), and filter the audit log. Each page passes axe and
//! is photographed at three widths.

mod common;

use std::time::{Duration, Instant};

use common::browser::Browser;
use common::{echo, random, subdomain, wait_traefik, Member, Options, Platform, SseReader};
use fantoccini::Locator;
use serde_json::json;

const PASSWORD: &str = "correct horse battery staple";

/// A verified member who owns a running instance (made by the admin key).
async fn owner_with_instance(p: &Platform, label: &str) -> (Member, String, String) {
    let email = format!("{label}-{}@test.invalid", random(6));
    let owner = p.verified_member(&email, PASSWORD).await;
    let sub = subdomain(label);
    let (status, body) = p
        .request(
            reqwest::Method::POST,
            "/api/v1/tenants",
            Some(json!({ "subdomain": sub, "ownerEmail": email })),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    (owner, id, sub)
}

/// How many lines in the log show exactly `text`, and how many of them are shown.
async fn count_lines(b: &Browser, text: &str) -> (u64, u64) {
    let v = b
        .client
        .execute(
            "var t = arguments[0], all = 0, shown = 0;
             document.querySelectorAll('#log li[data-id]').forEach(function (li) {
               if (li.querySelector('.log-text').textContent === t) { all++; if (!li.hidden) shown++; }
             });
             return [all, shown];",
            vec![json!(text)],
        )
        .await
        .unwrap();
    (v[0].as_u64().unwrap(), v[1].as_u64().unwrap())
}

/// Waits until a line showing exactly `text` is in the log; returns how long it took.
async fn wait_line(b: &Browser, text: &str, timeout: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if count_lines(b, text).await.0 > 0 {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "{text:?} never appeared in the log"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn js_u64(b: &Browser, script: &str) -> u64 {
    b.client
        .execute(script, vec![])
        .await
        .unwrap()
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_viewer_follows_live_resumes_without_repeats_and_filters_streams() {
    let p = Platform::start(Options::default()).await;
    let (owner, id, sub) = owner_with_instance(&p, "logs").await;
    p.wait_status(&id, "active", Duration::from_secs(60)).await;
    wait_traefik(&sub, "/signin", 200, Duration::from_secs(20)).await;
    let early = format!("early-{}", random(6));
    echo(&sub, "stdout", &early, 1).await;

    let b = Browser::open(&p).await;
    b.sign_in(&owner.email, PASSWORD).await;
    b.goto(&format!("/instances/{id}/logs")).await;
    assert_eq!(b.text("h1").await, format!("Logs of {sub}"));
    // The snapshot is rendered by the server; then the stream opens.
    wait_line(&b, &early, Duration::from_secs(5)).await;
    b.wait_text(
        "[data-log-status]",
        "Following new lines live",
        Duration::from_secs(10),
    )
    .await;

    // A line the instance writes appears within 2 s.
    let live = format!("live-{}", random(6));
    echo(&sub, "stdout", &live, 1).await;
    let took = wait_line(&b, &live, Duration::from_secs(2)).await;
    assert!(took < Duration::from_secs(2), "took {took:?}");

    // A forced reconnect, between two bursts that share timestamps: every line once.
    let before = format!("before-{}", random(6));
    echo(&sub, "stdout", &before, 20).await;
    wait_line(&b, &format!("{before} 20"), Duration::from_secs(5)).await;
    b.client
        .execute("window.FrescoLogs.reconnect();", vec![])
        .await
        .unwrap();
    let after = format!("after-{}", random(6));
    echo(&sub, "stderr", &after, 20).await;
    wait_line(&b, &format!("{after} 20"), Duration::from_secs(5)).await;
    // Once more, with nothing new: the new stream must not replay anything.
    b.client
        .execute("window.FrescoLogs.reconnect();", vec![])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for text in [early.clone(), live.clone()]
        .into_iter()
        .chain((1..=20).map(|i| format!("{before} {i}")))
        .chain((1..=20).map(|i| format!("{after} {i}")))
    {
        assert_eq!(
            count_lines(&b, &text).await.0,
            1,
            "{text:?} not exactly once"
        );
    }
    assert_eq!(
        js_u64(&b, "return window.FrescoLogs.repeats();").await,
        0,
        "the server sent a line again after a reconnect"
    );
    let ids = js_u64(
        &b,
        "var ids = Array.from(document.querySelectorAll('#log li[data-id]')).map(function (l) { return l.dataset.id; });
         return ids.length - new Set(ids).size;",
    )
    .await;
    assert_eq!(ids, 0, "a cursor appears twice in the log");

    // The browser's own reconnect sends Last-Event-ID: the web stream resumes after it.
    let http = p.browser();
    // (The login redirects to the dashboard; the session cookie is what counts.)
    http.post(p.url("/login"))
        .form(&[("email", owner.email.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let last = b
        .client
        .execute(
            "var t = arguments[0];
             var li = Array.from(document.querySelectorAll('#log li[data-id]')).find(function (l) { return l.querySelector('.log-text').textContent === t; });
             return li.dataset.id;",
            vec![json!(format!("{after} 18"))],
        )
        .await
        .unwrap();
    let resp = http
        .get(p.url(&format!("/instances/{id}/logs/stream?after=0-0")))
        .header("last-event-id", last.as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut reader = SseReader::new(resp);
    let mut texts = vec![];
    while texts.len() < 2 {
        let e = reader
            .next(Duration::from_secs(5))
            .await
            .expect("resumed lines");
        if e.event == "line" {
            texts.push(e.json()["text"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(texts, vec![format!("{after} 19"), format!("{after} 20")]);
    drop(reader);

    // Standard error only: stdout lines are hidden, stderr lines shown, live too.
    b.find("label[for='stream-stderr']")
        .await
        .click()
        .await
        .unwrap();
    let out = format!("out-{}", random(6));
    let err = format!("err-{}", random(6));
    echo(&sub, "stdout", &out, 1).await;
    echo(&sub, "stderr", &err, 1).await;
    wait_line(&b, &err, Duration::from_secs(5)).await;
    wait_line(&b, &out, Duration::from_secs(5)).await;
    assert_eq!(count_lines(&b, &err).await, (1, 1), "stderr line shown");
    assert_eq!(count_lines(&b, &out).await, (1, 0), "stdout line hidden");
    assert_eq!(
        count_lines(&b, &live).await,
        (1, 0),
        "earlier stdout line hidden"
    );
    assert!(
        b.path().await.contains("stream=stderr"),
        "the URL keeps the filter"
    );
    let download = b
        .find("[data-log-download]")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(
        download.contains("format=text") && download.contains("stream=stderr"),
        "{download}"
    );

    // Search: only matching lines, the match marked.
    b.find("label[for='stream-all']")
        .await
        .click()
        .await
        .unwrap();
    b.fill("#log-q", &live).await;
    b.wait_for("#log li mark", Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(count_lines(&b, &live).await, (1, 1));
    assert_eq!(
        count_lines(&b, &early).await,
        (1, 0),
        "non-matching line hidden"
    );
    b.fill("#log-q", "").await;
    tokio::time::sleep(Duration::from_millis(400)).await;

    // Pause: new lines wait, counted; resume shows them.
    b.find("[data-log-pause]").await.click().await.unwrap();
    let paused = format!("paused-{}", random(6));
    echo(&sub, "stdout", &paused, 3).await;
    // (The stand-in logs its health checks too: at least these three wait.)
    let waiting = b
        .wait_text(
            "[data-log-status]",
            "new lines waiting",
            Duration::from_secs(6),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let waiting: u64 = b.text("[data-log-status]").await["Paused: ".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{waiting}"));
    assert!(waiting >= 3, "{waiting} lines waiting");
    assert_eq!(
        count_lines(&b, &format!("{paused} 3")).await.0,
        0,
        "paused lines wait"
    );
    b.find("[data-log-pause]").await.click().await.unwrap();
    wait_line(&b, &format!("{paused} 3"), Duration::from_secs(3)).await;

    // The text export the download link points at answers with the session cookie.
    let text = http
        .get(p.url(&format!(
            "/api/v1/tenants/{id}/logs?format=text&stream=stderr"
        )))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains(&err) && !text.contains(&out), "{text}");

    b.check_page("logs").await;

    // Without JavaScript's stream the server-rendered page filters too.
    b.goto(&format!(
        "/instances/{id}/logs?applied=1&stream=stdout&only=on"
    ))
    .await;
    let hidden = js_u64(
        &b,
        "return document.querySelectorAll('#log li.stderr:not([hidden])').length;",
    )
    .await;
    assert_eq!(hidden, 0, "stderr lines hidden by the server's filter");

    // Another member: the 404 page, for the page and its stream.
    let other = p
        .verified_member(&format!("other-{}@test.invalid", random(6)), PASSWORD)
        .await;
    let b2 = Browser::open(&p).await;
    b2.sign_in(&other.email, PASSWORD).await;
    b2.goto(&format!("/instances/{id}/logs")).await;
    assert_eq!(b2.text("h1").await, "Page not found");
    let status = b2
        .client
        .execute_async(
            "var done = arguments[arguments.length - 1];
             fetch(arguments[0]).then(function (r) { done(r.status); });",
            vec![json!(format!("/instances/{id}/logs/stream"))],
        )
        .await
        .unwrap();
    assert_eq!(status, 404);
    b2.close().await;
    b.close().await;
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_see_every_instance_change_roles_and_filter_the_audit_log() {
    let p = Platform::start(Options::default()).await;
    let (member, id, sub) = owner_with_instance(&p, "adm").await;
    let admin_email = format!("admin-{}@test.invalid", random(6));
    let admin = p.verified_member(&admin_email, PASSWORD).await;
    fresco_platform::store::users::set_role(
        &p.pool,
        admin.id,
        fresco_platform::domain::Role::Admin,
    )
    .await
    .unwrap();

    // A member is refused with the 403 page.
    let b = Browser::open(&p).await;
    b.sign_in(&member.email, PASSWORD).await;
    b.goto("/admin/users").await;
    assert_eq!(b.text("h1").await, "Not allowed");
    b.check_page("forbidden").await;
    let refused = p.browser();
    refused
        .post(p.url("/login"))
        .form(&[("email", member.email.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let answer = refused.get(p.url("/admin")).send().await.unwrap();
    assert_eq!(answer.status(), 403);
    b.close().await;

    let b = Browser::open(&p).await;
    b.sign_in(&admin_email, PASSWORD).await;
    b.goto("/admin").await;
    assert_eq!(b.text("h1").await, "Admin");
    b.check_page("admin").await;

    // Every instance, with its owner's email and links to its page and logs.
    b.goto("/admin/instances").await;
    let row = format!("tr[data-tenant='{id}']");
    assert_eq!(b.text(&format!("{row} .owner")).await, member.email);
    assert!(b.text(&format!("{row} th")).await.contains(&sub));
    b.find(&format!("{row} a[href='/instances/{id}/logs']"))
        .await;
    b.check_page("admin-instances").await;
    b.fill("#search", "no-such-subdomain-at-all").await;
    b.find("form[action='/admin/instances'] button")
        .await
        .click()
        .await
        .unwrap();
    b.wait_text("main", "No instance matches", Duration::from_secs(5))
        .await;

    // An admin may read any instance's logs.
    b.goto(&format!("/instances/{id}/logs")).await;
    assert_eq!(b.text("h1").await, format!("Logs of {sub}"));
    assert!(b
        .text(".eyebrow")
        .await
        .to_lowercase()
        .contains("another user"));

    // Role change: the row in the database changes, the notice says so.
    b.goto("/admin/users").await;
    b.check_page("admin-users").await;
    assert!(
        b.client
            .find(Locator::Css(&format!(
                "form[action='/admin/users/{}/role']",
                admin.id
            )))
            .await
            .is_err(),
        "no role form on the admin's own row"
    );
    b.find(&format!("#role-{}", member.id))
        .await
        .select_by_value("admin")
        .await
        .unwrap();
    b.find(&format!(
        "form[action='/admin/users/{}/role'] button",
        member.id
    ))
    .await
    .click()
    .await
    .unwrap();
    b.wait_text(".notice", "role is changed", Duration::from_secs(5))
        .await;
    let role: String = sqlx::query_scalar("SELECT role FROM users WHERE id = $1")
        .bind(member.id)
        .fetch_one(&p.pool)
        .await
        .unwrap();
    assert_eq!(role, "admin");

    // The audit log, narrowed by action, then by instance.
    b.goto("/admin/audit").await;
    let all = js_u64(
        &b,
        "return document.querySelectorAll('.audit-table tbody tr').length;",
    )
    .await;
    b.fill("#action", "user.role_changed").await;
    b.find("form[action='/admin/audit'] button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    b.wait_text("main", "Page 1 of 1", Duration::from_secs(5))
        .await;
    let actions: Vec<String> = serde_json::from_value(
        b.client
            .execute(
                "return Array.from(document.querySelectorAll('.audit-table tbody tr th')).map(function (t) { return t.textContent.trim(); });",
                vec![],
            )
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(actions, vec!["user.role_changed".to_owned()]);
    assert!(all > actions.len() as u64, "the filter narrowed {all} rows");
    assert!(b.text(".audit-table tbody").await.contains(&admin_email));
    b.check_page("admin-audit").await;
    b.goto(&format!("/admin/audit?action=&tenant={sub}")).await;
    let tenant_rows = b.text(".audit-table tbody").await;
    assert!(tenant_rows.contains("tenant.create"), "{tenant_rows}");
    assert!(!tenant_rows.contains("user.role_changed"), "{tenant_rows}");
    b.goto(&format!(
        "/admin/audit?user=nobody-{}@test.invalid",
        random(4)
    ))
    .await;
    b.wait_text("#user-error", "No user", Duration::from_secs(5))
        .await;

    // The orphan report: the sweep runs on a button, never on a GET.
    b.goto("/admin/orphans").await;
    b.find("form[action='/admin/orphans'] button")
        .await
        .click()
        .await
        .unwrap();
    b.wait_text(
        "#orphan-report",
        "What the sweep found",
        Duration::from_secs(20),
    )
    .await;
    b.check_page("admin-orphans").await;

    // The database servers, with the instance on the platform's own server
    // counted and no password shown.
    b.goto("/admin/servers").await;
    assert_eq!(b.text("h1").await, "Database servers");
    let row = b.text("tr[data-server='default']").await;
    assert!(row.contains("1 of 40"), "{row}");
    assert!(row.contains("Open"), "{row}");
    let page = b.text("main").await;
    assert!(!page.contains("fresco-dev-password"), "{page}");
    b.check_page("admin-servers").await;

    b.close().await;
    p.cleanup().await;
}
