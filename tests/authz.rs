//! Who may do what: every tenant endpoint for anonymous callers, another member,
//! the owner and an admin; dead credentials; the quota; role changes.

mod common;

use common::{random, Options, Platform};
use reqwest::{Method, StatusCode};
use serde_json::json;

const PASSWORD: &str = "violet-tundra-42-kettle";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_endpoints_answer_by_who_asks() {
    // An unpullable image: tenants fail fast and start no containers.
    let p = Platform::start(Options {
        extra: vec![
            ("FRESCO_IMAGE", "127.0.0.1:9/never/pulled:1".into()),
            ("TENANT_QUOTA", "1".into()),
        ],
        ..Default::default()
    })
    .await;
    let owner = p
        .verified_member(&format!("owner-{}@test.invalid", random(6)), PASSWORD)
        .await;
    let other = p
        .verified_member(&format!("other-{}@test.invalid", random(6)), PASSWORD)
        .await;
    let sub = common::subdomain("authz");
    let (status, body) = p
        .request_as(
            Some(&owner.key),
            Method::POST,
            "/api/v1/tenants",
            Some(json!({ "subdomain": sub })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(body["ownerId"], owner.id.to_string());
    p.wait_status(&id, "error", std::time::Duration::from_secs(60))
        .await;

    // The quota: a second instance is refused with the quota named.
    let (status, body) = p
        .request_as(
            Some(&owner.key),
            Method::POST,
            "/api/v1/tenants",
            Some(json!({ "subdomain": common::subdomain("quota") })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains('1'),
        "{body}"
    );
    // Members cannot pick images or owners.
    let (status, _) = p
        .request_as(
            Some(&other.key),
            Method::POST,
            "/api/v1/tenants",
            Some(json!({ "subdomain": common::subdomain("img"), "image": "x:1" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let endpoints: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (Method::GET, format!("/api/v1/tenants/{id}"), None),
        (
            Method::GET,
            format!("/api/v1/tenants/{id}/deployments"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/tenants/{id}/deployment"),
            None,
        ),
        (Method::POST, format!("/api/v1/tenants/{id}/retry"), None),
        (Method::POST, format!("/api/v1/tenants/{id}/stop"), None),
        (Method::POST, format!("/api/v1/tenants/{id}/start"), None),
        (Method::POST, format!("/api/v1/tenants/{id}/restart"), None),
        (
            Method::DELETE,
            format!("/api/v1/tenants/{id}"),
            Some(json!({ "confirm": sub })),
        ),
    ];
    for (method, path, body) in &endpoints {
        let (status, answer) = p.request_as(None, method.clone(), path, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "anonymous {method} {path}: {answer}"
        );
        let (status, answer) = p
            .request_as(Some(&other.key), method.clone(), path, body.clone())
            .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "other member {method} {path}: {answer}"
        );
        assert_eq!(
            answer["error"]["message"], "no such tenant",
            "a stranger's tenant must look missing"
        );
    }
    // Owner and admin get through (an action may still conflict with the state).
    for (who, key) in [("owner", owner.key.as_str()), ("admin", p.key.as_str())] {
        for (method, path, body) in &endpoints[..3] {
            let (status, answer) = p
                .request_as(Some(key), method.clone(), path, body.clone())
                .await;
            assert_eq!(status, StatusCode::OK, "{who} {method} {path}: {answer}");
        }
    }
    let (status, body) = p
        .request_as(
            Some(&owner.key),
            Method::POST,
            &format!("/api/v1/tenants/{id}/retry"),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "owner retries a failed deployment: {body}"
    );
    p.wait_status(&id, "error", std::time::Duration::from_secs(60))
        .await;
    let (status, body) = p
        .request_as(
            Some(&p.key),
            Method::POST,
            &format!("/api/v1/tenants/{id}/stop"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "admin stops it: {body}");
    p.wait_status(&id, "stopped", std::time::Duration::from_secs(30))
        .await;

    // Lists: own only for members, everything for admins.
    let listed = |key: String| {
        let p = &p;
        async move {
            let (status, body) = p
                .request_as(Some(&key), Method::GET, "/api/v1/tenants", None)
                .await;
            assert_eq!(status, StatusCode::OK);
            body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(owner.key.clone()).await, vec![id.clone()]);
    assert!(listed(other.key.clone()).await.is_empty());
    assert!(listed(p.key.clone()).await.contains(&id));
    let (_, filtered) = p
        .request_as(
            Some(&p.key),
            Method::GET,
            &format!("/api/v1/tenants?status=stopped&search={}", &sub[..6]),
            None,
        )
        .await;
    assert_eq!(filtered["meta"]["total"], 1, "{filtered}");
    let (status, _) = p
        .request_as(
            Some(&p.key),
            Method::GET,
            "/api/v1/tenants?status=bogus",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, logs) = p
        .request_as(
            Some(&owner.key),
            Method::GET,
            &format!("/api/v1/tenants/{id}/deployments?action=create&status=failed"),
            None,
        )
        .await;
    assert_eq!(
        logs["meta"]["total"], 2,
        "two failed create attempts: {logs}"
    );

    // Admin endpoints are for admins.
    for (method, path) in [
        (Method::GET, "/api/v1/admin/users"),
        (Method::GET, "/api/v1/admin/audit-log"),
        (Method::POST, "/api/v1/admin/orphans"),
    ] {
        let (status, _) = p
            .request_as(Some(&owner.key), method.clone(), path, None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        let (status, _) = p.request_as(Some(&p.key), method.clone(), path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    // The sweep removes containers: a GET does not run it.
    let (status, _) = p
        .request_as(Some(&p.key), Method::GET, "/api/v1/admin/orphans", None)
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    // An admin makes the other member an admin: now they see the tenant.
    let (status, body) = p
        .request_as(
            Some(&p.key),
            Method::PATCH,
            &format!("/api/v1/admin/users/{}", other.id),
            Some(json!({ "role": "admin" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = p
        .request_as(
            Some(&other.key),
            Method::GET,
            &format!("/api/v1/tenants/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, audit) = p
        .request_as(
            Some(&p.key),
            Method::GET,
            "/api/v1/admin/audit-log?action=user.role_changed",
            None,
        )
        .await;
    assert_eq!(
        audit["data"][0]["targetId"],
        other.id.to_string(),
        "{audit}"
    );

    // Owner destroys it last.
    let (status, body) = p
        .request_as(
            Some(&owner.key),
            Method::DELETE,
            &format!("/api/v1/tenants/{id}"),
            Some(json!({ "confirm": sub })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_expired_keys_and_ended_sessions_are_refused() {
    let p = Platform::start(Options::default()).await;
    let member = p
        .member(&format!("keys-{}@test.invalid", random(6)), PASSWORD)
        .await;

    // Self-service keys: shown once, listed by prefix, revocable.
    let (status, created) = p
        .request_as(
            Some(&member.key),
            Method::POST,
            "/api/v1/api-keys",
            Some(json!({ "name": "ci" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let (status, me) = p
        .request_as(Some(&key), Method::GET, "/api/v1/auth/me", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["email"], member.email);
    let (_, list) = p
        .request_as(Some(&member.key), Method::GET, "/api/v1/api-keys", None)
        .await;
    assert!(
        !list.to_string().contains(&key),
        "a listed key shows its secret"
    );
    let listed = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == created["id"])
        .unwrap()
        .clone();
    assert!(
        listed["lastUsedAt"].is_string(),
        "last use recorded: {listed}"
    );
    assert_eq!(listed["lastUsedIp"], "127.0.0.1");
    let key_id = created["id"].as_str().unwrap();
    let (status, _) = p
        .request_as(
            Some(&member.key),
            Method::DELETE,
            &format!("/api/v1/api-keys/{key_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = p
        .request_as(Some(&key), Method::GET, "/api/v1/auth/me", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked key");

    // An expired key.
    let (_, short) = p
        .request_as(
            Some(&member.key),
            Method::POST,
            "/api/v1/api-keys",
            Some(json!({ "name": "short" })),
        )
        .await;
    sqlx::query("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1::uuid")
        .bind(short["id"].as_str().unwrap())
        .execute(&p.pool)
        .await
        .unwrap();
    let (status, _) = p
        .request_as(
            Some(short["key"].as_str().unwrap()),
            Method::GET,
            "/api/v1/auth/me",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "expired key");
    let (status, _) = p
        .request_as(
            Some(&member.key),
            Method::POST,
            "/api/v1/api-keys",
            Some(json!({ "name": "past", "expiresAt": "2000-01-01T00:00:00Z" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // A session that logged out.
    let browser = p.browser();
    let login = browser
        .post(p.url("/api/v1/auth/login"))
        .json(&json!({ "email": member.email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = login
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
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
        browser
            .post(p.url("/api/v1/auth/logout"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    // Even replaying the old cookie by hand: the session is dead server-side.
    let replay = reqwest::Client::new()
        .get(p.url("/api/v1/auth/me"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    p.cleanup().await;
}
