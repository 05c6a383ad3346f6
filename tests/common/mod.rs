//! Test harness: each test gets its own platform database, its own platform
//! instance name (so it only ever sees its own containers), the real Docker
//! engine, the real Postgres cluster and the Traefik started by `scripts/test`.
//! Everything a test creates is removed when its `Platform` is cleaned up or dropped.
//!
//! `platform` starts a platform, stops it and cleans up after it; `api` holds the
//! requests tests make of it; `traefik` reaches tenants the way their users do;
//! `sse` reads event streams; `servers` adds the extra Postgres clusters; `browser` drives headless Chromium through the pages; `smtp` receives the platform's mail; `fuzz` runs
//! schemathesis against it.
#![allow(dead_code)]

mod api;
pub mod backups;
pub mod browser;
mod fuzz;
pub mod hardening;
mod platform;
pub mod servers;
pub mod smtp;
mod sse;
mod traefik;

// Each test binary uses a part of the harness (hence also `dead_code` above).
#[allow(unused_imports)]
pub use self::{
    api::Member,
    fuzz::FuzzRun,
    platform::{Options, Platform},
    sse::{Sse, SseReader},
    traefik::{echo, fetch_through_traefik, path_of, through_traefik, wait_traefik},
};

use rand::distributions::Alphanumeric;
use rand::Rng;

use fresco_platform::domain::TenantId;

pub fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests through scripts/test"))
}

pub fn random(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(|c| (c as char).to_ascii_lowercase())
        .collect()
}

/// A subdomain no other test (or earlier run) uses.
pub fn subdomain(label: &str) -> String {
    format!("t{}-{label}", random(8))
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()),
        ))
        .with_test_writer()
        .try_init();
}

pub fn tenant_id(id: &str) -> TenantId {
    id.parse().expect("tenant id")
}
