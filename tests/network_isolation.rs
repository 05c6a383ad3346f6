//! The network layout of tenants (README, "Network isolation"): on their bridge with
//! inter-container traffic off and the host's firewall from scripts/lib/stack.sh, a
//! tenant container reaches Postgres and its PgBouncer and nothing else: not another tenant, not the
//! platform's API, not any other port of the host. Each refusal is asked from inside
//! a tenant container (the stand-in's `/stand-in/connect`), and Traefik on the host
//! still routes every tenant.

mod common;

use std::process::Command;
use std::time::Duration;

use bollard::query_parameters::InspectNetworkOptions;
use common::hardening::{container_ip, stand_in_get};
use common::{env, random, subdomain, wait_traefik, Options, Platform};
use fresco_platform::provision::docker::{icc_enabled, DockerRuntime};
use fresco_platform::provision::TenantRuntime;

/// Calls a function of scripts/lib/stack.sh.
fn stack(function: &str, args: &[&str]) {
    let status = Command::new("bash")
        .arg("-c")
        .arg(format!("source scripts/lib/stack.sh && {function} \"$@\""))
        .arg("stack")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("bash runs");
    assert!(status.success(), "{function} {args:?} failed");
}

/// A tenants network of this test's own, laid out by the scripts (isolated bridge
/// and firewall) and removed with its rules when dropped.
struct TenantsNetwork(String);

impl TenantsNetwork {
    fn up() -> Self {
        let name = format!("fpt_net_{}", random(8));
        // Postgres and its PgBouncer are what a tenant may reach on the host.
        stack(
            "stack_tenants_network_up",
            &[&name, &env("FP_PG_PORT"), &env("FP_PGBOUNCER_PORT")],
        );
        Self(name)
    }
}

impl Drop for TenantsNetwork {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg("-c")
            .arg("source scripts/lib/stack.sh && stack_tenants_network_down \"$1\"")
            .arg("stack")
            .arg(&self.0)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status();
    }
}

async fn gateway(p: &Platform, network: &str) -> String {
    p.docker
        .inspect_network(network, None::<InspectNetworkOptions>)
        .await
        .unwrap()
        .ipam
        .and_then(|i| i.config)
        .and_then(|c| c.into_iter().find_map(|c| c.gateway))
        .expect("gateway")
}

/// Whether the tenant container at `from` opens a TCP connection to `to` (IP:PORT).
async fn connects(from: &str, to: &str) -> bool {
    let (status, body) = stand_in_get(from, &format!("/stand-in/connect?addr={to}")).await;
    assert_eq!(status, 200, "{body}");
    body["connected"].as_bool().expect("connected")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_reaches_postgres_but_not_other_tenants_the_platform_or_the_host() {
    let network = TenantsNetwork::up();
    // Any service on the host, on every interface (as the platform's API would be
    // with LISTEN_ADDR=0.0.0.0:8080).
    let bystander = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let bystander_port = bystander.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = bystander.accept().await {
            drop(socket);
        }
    });
    let p = Platform::start(Options {
        extra: vec![("TENANTS_NETWORK", network.0.clone())],
        ..Default::default()
    })
    .await;
    let (sub_a, sub_b) = (subdomain("neta"), subdomain("netb"));
    let a = p.create_active(&sub_a).await;
    let b = p.create_active(&sub_b).await;
    let ip_a = container_ip(&p.container(&a).await.unwrap(), &network.0);
    let ip_b = container_ip(&p.container(&b).await.unwrap(), &network.0);
    let gw = gateway(&p, &network.0).await;
    let platform_port = p.base.rsplit(':').next().unwrap().to_owned();

    // Positive controls: the route works, a tenant reaches its own port and Postgres
    // through the gateway (the intended path; its role is confined there, see
    // tests/isolation.rs).
    assert!(connects(&ip_a, &format!("{ip_a}:3000")).await);
    assert!(connects(&ip_a, &format!("{gw}:{}", env("FP_PG_PORT"))).await);
    assert!(connects(&ip_a, &format!("{gw}:{}", env("FP_PGBOUNCER_PORT"))).await);

    // Refusals, asked from inside tenant A.
    assert!(
        !connects(&ip_a, &format!("{ip_b}:3000")).await,
        "tenant A reached tenant B"
    );
    assert!(
        !connects(&ip_b, &format!("{ip_a}:3000")).await,
        "tenant B reached tenant A"
    );
    assert!(
        !connects(&ip_a, &format!("{gw}:{platform_port}")).await,
        "tenant A reached the platform's API"
    );
    assert!(
        !connects(&ip_a, &format!("{gw}:{bystander_port}")).await,
        "tenant A reached a host service"
    );
    assert!(
        !connects(&ip_a, &format!("{gw}:{}", env("TRAEFIK_PING_PORT"))).await,
        "tenant A reached Traefik's dashboard port"
    );

    // Traefik, on the host, still reaches both through the bridge.
    wait_traefik(&sub_a, "/signin", 200, Duration::from_secs(20)).await;
    wait_traefik(&sub_b, "/signin", 200, Duration::from_secs(20)).await;

    // Without the firewall the host service answers: the refusal above is its doing.
    stack("_stack_tenants_firewall_remove", &[&network.0]);
    assert!(connects(&ip_a, &format!("{gw}:{bystander_port}")).await);
    // Inter-container traffic stays off without it: that is the bridge's doing.
    assert!(!connects(&ip_a, &format!("{ip_b}:3000")).await);

    p.cleanup().await;
    drop(network);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_creates_a_missing_tenants_network_with_inter_container_traffic_off() {
    let name = format!("fpt_net_{}", random(8));
    let runtime = DockerRuntime::connect(&format!("fpt_{}", random(8)))
        .await
        .unwrap();
    let gateway = runtime.ensure_network(&name).await.unwrap();
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    let network = docker
        .inspect_network(&name, None::<InspectNetworkOptions>)
        .await
        .unwrap();
    docker.remove_network(&name).await.unwrap();
    assert!(gateway.is_some());
    assert!(
        !icc_enabled(network.options.as_ref()),
        "{:?}",
        network.options
    );
}
