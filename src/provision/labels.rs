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

pub fn management(cfg: &TenantConfig, id: TenantId) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED.to_owned(), "true".to_owned()),
        (TENANT_ID.to_owned(), id.to_string()),
        (INSTANCE.to_owned(), cfg.platform_instance.clone()),
    ])
}

pub fn traefik(cfg: &TenantConfig, id: TenantId, subdomain: &str) -> BTreeMap<String, String> {
    let name = id.router_name();
    let router = format!("traefik.http.routers.{name}");
    let mut labels = BTreeMap::from([
        ("traefik.enable".to_owned(), "true".to_owned()),
        (
            "traefik.docker.network".to_owned(),
            cfg.tenants_network.clone(),
        ),
        (
            format!("{router}.rule"),
            format!("Host(`{subdomain}.{}`)", cfg.base_domain),
        ),
        (
            format!("{router}.entrypoints"),
            cfg.traefik_entrypoint.clone(),
        ),
        (format!("{router}.service"), name.clone()),
        (
            format!("traefik.http.services.{name}.loadbalancer.server.port"),
            FRESCO_PORT.to_string(),
        ),
    ]);
    if !cfg.traefik_middlewares.trim().is_empty() {
        labels.insert(
            format!("{router}.middlewares"),
            cfg.traefik_middlewares.clone(),
        );
    }
    if let Some(resolver) = cfg
        .traefik_cert_resolver
        .as_deref()
        .filter(|r| !r.is_empty())
    {
        labels.insert(format!("{router}.tls"), "true".to_owned());
        labels.insert(format!("{router}.tls.certresolver"), resolver.to_owned());
    }
    labels
}
