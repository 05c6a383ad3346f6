//! The platform converges without anyone acting: after its own crash, after a
//! container is removed by hand, and it says clearly when it cannot.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use common::{env, subdomain, tenant_id, wait_traefik, Options, Platform};
use reqwest::{Method, StatusCode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_removed_by_hand_is_recreated() {
    let p = Platform::start(Options::default()).await;
    let sub = subdomain("gone");
    let id = p.create_active(&sub).await;
    let old = p.container(&id).await.unwrap().id.unwrap();
    let remove = RemoveContainerOptionsBuilder::new().force(true).build();
    p.docker.remove_container(&old, Some(remove)).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(c) = p.container(&id).await {
            let healthy = c
                .state
                .as_ref()
                .and_then(|s| s.health.as_ref())
                .and_then(|h| h.status)
                .map(|s| s.to_string());
            if c.id.as_deref() != Some(&old) && healthy.as_deref() == Some("healthy") {
                break;
            }
        }
        assert!(Instant::now() < deadline, "container was not recreated");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    p.wait_status(&id, "active", Duration::from_secs(30)).await;
    wait_traefik(&sub, "/signin", 200, Duration::from_secs(20)).await;
    let log = p.deployments(&id).await;
    assert!(
        log.ends_with(&[
            ("recover".into(), "initiated".into()),
            ("recover".into(), "success".into())
        ]),
        "{log:?}"
    );
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpullable_image_ends_in_error_naming_the_image() {
    let p = Platform::start(Options::default()).await;
    let image = "127.0.0.1:9/missing/fresco:1.0";
    let (status, body) = p
        .request(
            Method::POST,
            "/api/v1/tenants",
            Some(serde_json::json!({ "subdomain": subdomain("nopull"), "ownerEmail": "o@test.invalid", "image": image })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let t = p.wait_status(&id, "error", Duration::from_secs(60)).await;
    let message = t["lastError"].as_str().unwrap();
    assert!(message.contains(image), "{message}");
    assert!(p.container(&id).await.is_none());
    let log = p.deployments(&id).await;
    assert_eq!(
        log.last().unwrap(),
        &("create".to_owned(), "failed".to_owned())
    );
    let failed: String = sqlx::query_scalar(
        "SELECT error_message FROM deployment_logs WHERE tenant_id = $1 AND status = 'failed'",
    )
    .bind(tenant_id(&id).0)
    .fetch_one(&p.pool)
    .await
    .unwrap();
    assert!(failed.contains(image), "{failed}");
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_control_plane_converges_after_restart() {
    let mut p = Platform::start(Options {
        process: true,
        ..Default::default()
    })
    .await;
    let mut ids = vec![];
    for i in 0..4 {
        let (status, body) = p.create_tenant(&subdomain(&format!("kill{i}"))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    // Kill it mid-provisioning: some containers exist, none is healthy yet (the
    // stand-in takes 1.5 s to open its port).
    let deadline = Instant::now() + Duration::from_secs(20);
    while p.managed_containers().await.is_empty() {
        assert!(Instant::now() < deadline, "nothing was provisioning");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    p.kill_server().await;
    let active_at_kill: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tenants WHERE status = 'active'")
            .fetch_one(&p.pool)
            .await
            .unwrap();
    assert!(
        active_at_kill < 4,
        "the kill came too late to test anything"
    );

    p.start_server().await;
    for id in &ids {
        p.wait_status(id, "active", Duration::from_secs(90)).await;
    }
    let mut names = p.managed_containers().await;
    names.sort();
    let mut expected: Vec<String> = ids
        .iter()
        .map(|id| format!("/{}", tenant_id(id).container_name()))
        .collect();
    expected.sort();
    assert_eq!(names, expected, "exactly one container per tenant");
    for id in &ids {
        let log = p.deployments(id).await;
        assert_eq!(
            log,
            vec![
                ("create".to_owned(), "initiated".to_owned()),
                ("create".to_owned(), "success".to_owned())
            ],
            "tenant {id}"
        );
    }
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_containers_are_removed_and_orphan_schemas_only_reported() {
    let p = Platform::start(Options::default()).await;
    // A managed container of this instance whose tenant never existed.
    let ghost = fresco_platform::domain::TenantId::new();
    let labels = HashMap::from([
        ("fresco-platform.managed".to_owned(), "true".to_owned()),
        ("fresco-platform.instance".to_owned(), p.instance.clone()),
        ("fresco-platform.tenant-id".to_owned(), ghost.to_string()),
    ]);
    let body = bollard::models::ContainerCreateBody {
        image: Some(env("FRESCO_IMAGE")),
        labels: Some(labels),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::new()
        .name(&ghost.container_name())
        .build();
    p.docker
        .create_container(Some(options), body)
        .await
        .unwrap();
    // A schema that looks like a tenant's, with data in it.
    let schema = ghost.schema_name();
    sqlx::raw_sql(&format!(
        "CREATE SCHEMA \"{schema}\"; CREATE TABLE \"{schema}\".keep (id int)"
    ))
    .execute(&p.pool)
    .await
    .unwrap();

    let (status, report) = p.request(Method::POST, "/api/v1/admin/orphans", None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        report["containersRemoved"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    assert!(
        report["schemas"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == &schema),
        "{report}"
    );
    assert!(
        p.managed_containers().await.is_empty(),
        "orphan container still there"
    );
    let kept: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(&schema)
            .fetch_one(&p.pool)
            .await
            .unwrap();
    assert!(kept, "an orphan schema was dropped");
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_spec_is_applied_by_recreating_the_container() {
    let mut p = Platform::start(Options::default()).await;
    let sub = subdomain("respec");
    let id = p.create_active(&sub).await;
    let before = p.container(&id).await.unwrap();
    assert_eq!(
        before.host_config.as_ref().unwrap().memory,
        Some(512 * 1024 * 1024)
    );

    // The operator changes the memory limit and restarts the control plane.
    p.kill_server().await;
    p.opts.extra.push(("TENANT_MEMORY_MB", "384".into()));
    p.start_server().await;

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(c) = p.container(&id).await {
            if c.host_config.as_ref().unwrap().memory == Some(384 * 1024 * 1024) {
                assert_ne!(c.id, before.id, "the container must be recreated");
                break;
            }
        }
        assert!(Instant::now() < deadline, "new limit never applied");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    p.wait_status(&id, "active", Duration::from_secs(60)).await;
    wait_traefik(&sub, "/signin", 200, Duration::from_secs(20)).await;
    let log = p.deployments(&id).await;
    assert!(
        log.ends_with(&[
            ("update".into(), "initiated".into()),
            ("update".into(), "success".into())
        ]),
        "{log:?}"
    );
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_while_provisioning_supersedes_the_create() {
    let p = Platform::start(Options::default()).await;
    let sub = subdomain("early");
    let (status, body) = p.create_tenant(&sub).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    // Another action than destroy must wait for the create.
    let (status, body) = p.action(&id, "stop").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "action_in_progress");
    let (status, body) = p.destroy(&id, &sub).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    p.wait_status(&id, "destroyed", Duration::from_secs(60))
        .await;
    assert!(p.container(&id).await.is_none());
    let log = p.deployments(&id).await;
    let expected: Vec<(String, String)> = [
        ("create", "initiated"),
        ("create", "failed"),
        ("destroy", "initiated"),
        ("destroy", "success"),
    ]
    .iter()
    .map(|(a, s)| (a.to_string(), s.to_string()))
    .collect();
    assert_eq!(log, expected);
    p.cleanup().await;
}
