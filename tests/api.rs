//! The API's answers to bad input, races and missing credentials: the right
//! status, the error envelope, and nothing created.

mod common;

use common::{subdomain, Options, Platform};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn tenant_rows(p: &Platform) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&p.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_subdomains_are_refused_with_the_rule_and_create_nothing() {
    let p = Platform::start(Options::default()).await;
    let long = "a".repeat(64);
    let cases: &[(&str, &str)] = &[
        ("MyStudy", "characters"),
        ("-study", "hyphens"),
        ("study-", "hyphens"),
        (&long, "length"),
        ("www", "reserved"),
        ("admin", "reserved"),
        ("xn--80ak6aa92e", "punycode"),
        ("a'; DROP TABLE tenants; --", "characters"),
        ("x$(rm -rf /)", "characters"),
        ("a`id`b", "characters"),
        ("a b", "characters"),
        ("", "length"),
        ("ab", "length"),
        ("études", "characters"),
        ("日本語サイト", "characters"),
        ("a.b.c", "characters"),
    ];
    for (input, rule) in cases {
        let (status, body) = p.create_tenant(input).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{input:?}: {body}"
        );
        assert_eq!(body["error"]["code"], "validation_failed", "{input:?}");
        assert_eq!(body["error"]["details"]["field"], "subdomain", "{input:?}");
        assert_eq!(body["error"]["details"]["rule"], *rule, "{input:?}: {body}");
        assert!(body["meta"]["requestId"].is_string());
    }
    assert_eq!(tenant_rows(&p).await, 0);
    assert!(p.managed_containers().await.is_empty());
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE role = 'member'")
        .fetch_one(&p.pool)
        .await
        .unwrap();
    assert_eq!(users, 0, "a refused request created an owner");
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_of_one_subdomain_yield_one_tenant() {
    let p = Platform::start(Options::default()).await;
    let sub = subdomain("race");
    let (first, second) = tokio::join!(p.create_tenant(&sub), p.create_tenant(&sub));
    let mut statuses = vec![first.0, second.0];
    statuses.sort();
    assert_eq!(
        statuses,
        vec![StatusCode::ACCEPTED, StatusCode::CONFLICT],
        "{first:?} {second:?}"
    );
    let loser = if first.0 == StatusCode::CONFLICT {
        &first.1
    } else {
        &second.1
    };
    assert_eq!(loser["error"]["code"], "subdomain_taken");
    assert_eq!(tenant_rows(&p).await, 1);
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_key_or_for_unknown_tenants_are_refused() {
    let p = Platform::start(Options::default()).await;
    let client = reqwest::Client::new();

    let r = client.get(p.url("/api/v1/tenants")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("x-request-id"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    let r = client
        .get(p.url("/api/v1/tenants"))
        .bearer_auth("fpk_nope_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // A request id given by a proxy is kept.
    let r = client
        .get(p.url("/api/health"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-me-123");

    let missing = uuid::Uuid::new_v4();
    for path in [
        format!("/api/v1/tenants/{missing}"),
        "/api/v1/tenants/not-an-id".to_owned(),
    ] {
        let (status, body) = p.request(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let (status, _) = p
        .request(
            Method::POST,
            &format!("/api/v1/tenants/{missing}/start"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Malformed bodies.
    let r = client
        .post(p.url("/api/v1/tenants"))
        .bearer_auth(&p.key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (status, body) = p
        .request(
            Method::POST,
            "/api/v1/tenants",
            Some(json!({ "ownerEmail": "o@test.invalid" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = p
        .request(
            Method::POST,
            "/api/v1/tenants",
            Some(json!({ "subdomain": subdomain("mail"), "ownerEmail": "nope" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"]["field"], "ownerEmail");
    let (status, body) = p
        .request(
            Method::POST,
            "/api/v1/tenants",
            Some(json!({ "subdomain": subdomain("lim"), "ownerEmail": "o@test.invalid", "resourceLimits": { "memoryMb": 64 } })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = p
        .request(Method::GET, "/api/v1/tenants?perPage=1000", None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = p.request(Method::GET, "/api/v1/nothing-here", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(tenant_rows(&p).await, 0);
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_list_is_paginated() {
    let p = Platform::start(Options {
        extra: vec![("FRESCO_IMAGE", "127.0.0.1:9/never/pulled:1".into())],
        ..Default::default()
    })
    .await;
    for i in 0..3 {
        let (status, body) = p.create_tenant(&subdomain(&format!("page{i}"))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (status, body) = p
        .request(Method::GET, "/api/v1/tenants?page=2&perPage=2", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    assert_eq!(body["meta"]["total"], 3);
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_list_pages_by_cursor_without_skipping_or_repeating_while_tenants_are_added() {
    let p = Platform::start(Options::default()).await;
    let owner: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users LIMIT 1")
        .fetch_one(&p.pool)
        .await
        .unwrap();
    // Settled rows (destroyed, nothing for the reconciler to do), a minute apart.
    let insert = |minutes_ago: i64, sub: String| {
        let pool = p.pool.clone();
        async move {
            let id = uuid::Uuid::new_v4();
            sqlx::query(
                "INSERT INTO tenants (id, user_id, tenant_identifier, subdomain, status, desired_state,
                                      observed_generation, created_at)
                 VALUES ($1, $2, $3, $4, 'destroyed', 'destroyed', 1, now() - make_interval(mins => $5))",
            )
            .bind(id)
            .bind(owner)
            .bind(id.simple().to_string())
            .bind(sub)
            .bind(minutes_ago as i32)
            .execute(&pool)
            .await
            .unwrap();
            id.to_string()
        }
    };
    let mut expected = Vec::new();
    for n in 1..=7 {
        expected.push(insert(n * 10, format!("{}-{n}", subdomain("page"))).await);
    }
    let page = |query: String| {
        let p = &p;
        async move {
            let (status, body) = p
                .request(
                    Method::GET,
                    &format!("/api/v1/tenants?status=destroyed&perPage=3{query}"),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let ids: Vec<String> = body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_owned())
                .collect();
            (ids, body["meta"].clone())
        }
    };
    let (first, meta) = page(String::new()).await;
    assert_eq!(first, expected[..3]);
    assert_eq!(meta["total"], 7);
    let cursor = meta["nextCursor"].as_str().expect("a next page").to_owned();
    // A newer tenant arrives between pages: it does not push anything into the
    // next page twice.
    insert(0, subdomain("newest")).await;
    let (second, meta) = page(format!("&after={cursor}")).await;
    assert_eq!(second, expected[3..6]);
    let cursor = meta["nextCursor"].as_str().expect("a next page").to_owned();
    let (third, meta) = page(format!("&after={cursor}")).await;
    assert_eq!(third, expected[6..]);
    assert!(meta.get("nextCursor").is_none(), "{meta}");
    // Cursors that are not ours, and a cursor with a page number, are refused.
    for bad in [
        "&after=nonsense",
        "&after=12_zz",
        &format!("&after={cursor}&page=2"),
    ] {
        let (status, body) = p
            .request(
                Method::GET,
                &format!("/api/v1/tenants?perPage=3{bad}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert_eq!(body["error"]["details"]["field"], "after", "{body}");
    }
    p.cleanup().await;
}
