//! Labels on tenant containers: the platform's management labels and the
//! Traefik labels that route `<subdomain>.<BASE_DOMAIN>` to the container.

use std::collections::BTreeMap;

use crate::config::TenantConfig;
use crate::domain::TenantId;

pub const MANAGED: &str = "fresco-platform.managed";
pub const TENANT_ID: &str = "fresco-platform.tenant-id";
pub const SPEC_HASH: &str = "fresco-platform.spec-hash";
pub const INSTANCE: &str = "fresco-platform.instance";

/// Port Fresco listens on inside its container.
pub const FRESCO_PORT: u16 = 3000;

/// The cookie carrying the owner's setup claim on the tenant's host.
pub const CLAIM_COOKIE: &str = "fp_setup_claim";
/// Where Fresco's first-run setup lives.
pub const SETUP_PATH: &str = "/setup";
/// Above any rule-length priority Traefik computes for the tenant's host router.
const SETUP_ROUTER_PRIORITY: u32 = 10_000;

pub fn management(cfg: &TenantConfig, id: TenantId) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED.to_owned(), "true".to_owned()),
        (TENANT_ID.to_owned(), id.to_string()),
        (INSTANCE.to_owned(), cfg.platform_instance.clone()),
    ])
}

pub fn traefik(cfg: &TenantConfig, id: TenantId, subdomain: &str) -> BTreeMap<String, String> {
    let name = id.router_name();
    let host_rule = format!("Host(`{subdomain}.{}`)", cfg.base_domain);
    let mut labels = BTreeMap::from([
        ("traefik.enable".to_owned(), "true".to_owned()),
        (
            "traefik.docker.network".to_owned(),
            cfg.tenants_network.clone(),
        ),
        (
            format!("traefik.http.services.{name}.loadbalancer.server.port"),
            FRESCO_PORT.to_string(),
        ),
    ]);
    let mut middlewares = vec![];
    if !cfg.traefik_middlewares.trim().is_empty() {
        middlewares.push(cfg.traefik_middlewares.clone());
    }
    router(
        &mut labels,
        cfg,
        &name,
        &name,
        host_rule.clone(),
        &middlewares,
    );
    // Fresco gives the instance to whoever opens /setup first: a second router,
    // preferred for that path, asks the platform's guard before passing on.
    if let Some(guard) = cfg.setup_guard_url.as_deref().filter(|g| !g.is_empty()) {
        let setup = format!("{name}-setup");
        let auth = format!("traefik.http.middlewares.{setup}-guard.forwardauth");
        labels.insert(format!("{auth}.address"), guard.to_owned());
        labels.insert(
            format!("{auth}.addAuthCookiesToResponse"),
            CLAIM_COOKIE.to_owned(),
        );
        middlewares.insert(0, format!("{setup}-guard"));
        let rule = format!("{host_rule} && PathPrefix(`{SETUP_PATH}`)");
        router(&mut labels, cfg, &setup, &name, rule, &middlewares);
        labels.insert(
            format!("traefik.http.routers.{setup}.priority"),
            SETUP_ROUTER_PRIORITY.to_string(),
        );
    }
    labels
}

/// The labels of one router to the tenant's service.
fn router(
    labels: &mut BTreeMap<String, String>,
    cfg: &TenantConfig,
    router: &str,
    service: &str,
    rule: String,
    middlewares: &[String],
) {
    let key = format!("traefik.http.routers.{router}");
    labels.insert(format!("{key}.rule"), rule);
    labels.insert(format!("{key}.entrypoints"), cfg.traefik_entrypoint.clone());
    labels.insert(format!("{key}.service"), service.to_owned());
    if !middlewares.is_empty() {
        labels.insert(format!("{key}.middlewares"), middlewares.join(","));
    }
    if let Some(resolver) = cfg
        .traefik_cert_resolver
        .as_deref()
        .filter(|r| !r.is_empty())
    {
        labels.insert(format!("{key}.tls"), "true".to_owned());
        labels.insert(format!("{key}.tls.certresolver"), resolver.to_owned());
    }
}
