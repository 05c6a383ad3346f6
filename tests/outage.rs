//! While the platform database is unreachable the API answers 503
//! `database_unavailable` with `Retry-After` and nothing internal in the message,
//! and when it comes back the platform carries on without anyone acting.
//!
//! The shared Postgres cluster is never stopped: the platform under test reaches
//! it through a TCP relay this test owns, and "Postgres down" is the relay
//! refusing connections and dropping the ones it carried.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::query_parameters::InspectNetworkOptions;
use common::{env, Options, Platform};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A relay from a local port to Postgres that can be cut and restored.
struct Relay {
    port: u16,
    target: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let relay = Self {
            port,
            target,
            tasks: Arc::default(),
        };
        relay.serve(listener);
        relay
    }

    fn serve(&self, listener: TcpListener) {
        let (target, tasks) = (self.target.clone(), self.tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let target = target.clone();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().unwrap().push(pipe);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Postgres "goes down": new connections are refused, open ones are dropped.
    fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Postgres is back on the same address.
    async fn restore(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("rebinding the relay: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot rebind the relay: {e}"),
            }
        };
        self.serve(listener);
    }
}

/// The tenants network's gateway, where containers reach the host.
async fn gateway(p: &Platform) -> String {
    let network = p
        .docker
        .inspect_network(&env("TENANTS_NETWORK"), None::<InspectNetworkOptions>)
        .await
        .expect("the tenants network");
    network
        .ipam
        .and_then(|ipam| ipam.config)
        .and_then(|configs| configs.into_iter().find_map(|c| c.gateway))
        .expect("a gateway")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_answers_503_and_the_platform_recovers_by_itself() {
    let mut p = Platform::start(Options::default()).await;
    let relay = Relay::start(format!("127.0.0.1:{}", env("FP_PG_PORT"))).await;
    // The same database, reached through the relay.
    let (head, _) = p.db_url.split_once("@127.0.0.1:").unwrap();
    let through_relay = format!("{head}@127.0.0.1:{}/{}", relay.port, p.db_name);
    // Tenant containers keep reaching Postgres directly (the relay is on loopback).
    let tenants_db_host = format!("{}:{}", gateway(&p).await, env("FP_PG_PORT"));
    p.kill_server().await;
    p.opts.extra.push(("DATABASE_URL", through_relay));
    p.opts.extra.push(("TENANT_DB_HOST", tenants_db_host));
    p.start_server().await;
    let (status, _) = p
        .request(reqwest::Method::GET, "/api/v1/tenants", None)
        .await;
    assert_eq!(status, StatusCode::OK);

    relay.cut();
    for (method, path) in [
        (reqwest::Method::GET, "/api/v1/tenants"),
        (reqwest::Method::POST, "/api/v1/auth/login"),
    ] {
        let response = p
            .http
            .request(method.clone(), p.url(path))
            .bearer_auth(&p.key)
            .json(&serde_json::json!({ "email": "admin@test.invalid", "password": "x".repeat(12) }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}"
        );
        assert_eq!(response.headers()["retry-after"], "5");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("database"), "{message}");
        for internal in [
            "refused",
            "os error",
            "pool",
            "127.0.0.1",
            &relay.port.to_string(),
        ] {
            assert!(!message.contains(internal), "leaks {internal:?}: {message}");
        }
    }
    // What needs no database still answers; readiness names what is down.
    let (status, _) = p.request(reqwest::Method::GET, "/api/health", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = p.request(reqwest::Method::GET, "/api/ready", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("postgres"),
        "{body}"
    );

    relay.restore().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = p
            .request(reqwest::Method::GET, "/api/v1/tenants", None)
            .await;
        if status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not back after 30 s: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Not only reads: the reconciler provisions again too.
    let id = p.create_active(&common::subdomain("outage")).await;
    assert_eq!(p.tenant(&id).await["status"], "active");
    p.cleanup().await;
}
