//! What a tenant's container should look like: the Fresco env contract, limits,
//! health check, labels, and the hash that tells a stale container from a current one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::labels;
use super::runtime::ContainerSpec;
use crate::config::{Isolation, TenantConfig};
use crate::domain::TenantId;

/// Per-tenant overrides of the configured limits (the `resource_limits` column).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceLimits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
}

pub const MIN_MEMORY_MB: u32 = 256;

impl ResourceLimits {
    /// A message a person can act on, or `None` when the limits are acceptable.
    pub fn problem(&self) -> Option<String> {
        if let Some(m) = self.memory_mb {
            if !(MIN_MEMORY_MB..=65536).contains(&m) {
                return Some(format!(
                    "memoryMb must be between {MIN_MEMORY_MB} and 65536"
                ));
            }
        }
        if let Some(c) = self.cpus {
            if !(0.1..=64.0).contains(&c) {
                return Some("cpus must be between 0.1 and 64".to_owned());
            }
        }
        if let Some(p) = self.pids_limit {
            if !(20..=100_000).contains(&p) {
                return Some("pidsLimit must be between 20 and 100000".to_owned());
            }
        }
        None
    }

    /// The declared CPU limit in Docker's NanoCpus: what the container runs at
    /// (outside a start's boost) and what its spec hash counts.
    pub fn nano_cpus(&self, cfg: &TenantConfig) -> i64 {
        (self.cpus.unwrap_or(cfg.cpus) * 1e9) as i64
    }
}

/// The Fresco options an owner may change: a fixed allow-list of Fresco
/// 3.1.2's env schema (`env.js`), where both are strict booleans ("true" /
/// "false"). Never arbitrary env. `None` keeps the platform's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FrescoSettings {
    /// Fresco sends anonymous usage analytics to the Network Canvas team unless disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disable_analytics: Option<bool>,
    /// Fresco's sandbox mode: for trying things out; data may be reset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox_mode: Option<bool>,
}

impl FrescoSettings {
    /// Whether analytics are off, with the platform's default filled in.
    pub fn analytics_disabled(&self, cfg: &TenantConfig) -> bool {
        self.disable_analytics.unwrap_or(cfg.disable_analytics)
    }

    pub fn sandbox(&self) -> bool {
        self.sandbox_mode.unwrap_or(false)
    }

    /// The env entries these settings give a container. SANDBOX_MODE appears
    /// only once an owner chose it, so instances that never did keep the spec
    /// hash they had before settings existed (no mass recreate on upgrade).
    fn env(&self, cfg: &TenantConfig) -> Vec<(String, String)> {
        let mut env = vec![(
            "DISABLE_ANALYTICS".to_owned(),
            self.analytics_disabled(cfg).to_string(),
        )];
        if let Some(sandbox) = self.sandbox_mode {
            env.push(("SANDBOX_MODE".to_owned(), sandbox.to_string()));
        }
        env
    }
}

/// Where a tenant's container finds its database.
#[derive(Debug, Clone)]
pub struct DbTarget {
    /// host:port of the server as seen from inside the container
    /// (DATABASE_URL_UNPOOLED, Fresco's migrations).
    pub direct: String,
    /// host:port of the server's PgBouncer, when it has one (DATABASE_URL).
    pub pooled: Option<String>,
    /// The database holding the tenant's data, and how it is isolated there.
    pub database: String,
    pub isolation: Isolation,
}

/// Parses FRESCO_HEALTHCHECK: a JSON array runs in exec form, anything else in a shell.
pub fn healthcheck_test(raw: &str) -> Vec<String> {
    let trimmed = raw.trim();
    if trimmed.starts_with('[') {
        if let Ok(argv) = serde_json::from_str::<Vec<String>>(trimmed) {
            return std::iter::once("CMD".to_owned()).chain(argv).collect();
        }
    }
    vec!["CMD-SHELL".to_owned(), trimmed.to_owned()]
}

pub struct SpecInput<'a> {
    pub tenant: TenantId,
    pub subdomain: &'a str,
    pub image: &'a str,
    pub limits: &'a ResourceLimits,
    pub db: &'a DbTarget,
    /// The owner's Fresco options (part of the env, so of the hash).
    pub settings: FrescoSettings,
    /// `None` computes the hash of the spec a container would get.
    pub password: Option<&'a str>,
}

/// Which of the two URLs a container gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Through the server's PgBouncer (transaction pooling) where it has one.
    Pooler,
    /// Straight to the server.
    Direct,
}

/// `DATABASE_URL` (`Via::Pooler`) or `DATABASE_URL_UNPOOLED` (`Via::Direct`).
/// Through PgBouncer the URL says `pgbouncer=true`, which makes Prisma's own
/// query engine leave out prepared statements (transaction pooling hands each
/// transaction any server connection); the pg driver adapter Fresco 3.1 uses
/// sends unnamed statements and ignores the parameter.
pub fn database_url(input: &SpecInput<'_>, password: &str, via: Via) -> String {
    let role = input.tenant.role_name();
    let db = input.db;
    let (host, pooled) = match (via, &db.pooled) {
        (Via::Pooler, Some(pooler)) => (pooler.as_str(), true),
        _ => (db.direct.as_str(), false),
    };
    let mut params = Vec::new();
    if db.isolation == Isolation::Schema {
        params.push(format!("schema={}", input.tenant.schema_name()));
    }
    if pooled {
        params.push("pgbouncer=true".to_owned());
    }
    let query = if params.is_empty() {
        String::new()
    } else {
        format!("?{}", params.join("&"))
    };
    format!("postgres://{role}:{password}@{host}/{}{query}", db.database)
}

/// The spec of a tenant's container. Its hash leaves out the password, which
/// changes at every (re)create, so only real changes trigger a recreate.
pub fn build(cfg: &TenantConfig, input: &SpecInput<'_>) -> ContainerSpec {
    let password = input.password.unwrap_or("<password>");
    let public_url = cfg.tenant_url(input.subdomain);
    let mut env = vec![
        (
            "DATABASE_URL".to_owned(),
            database_url(input, password, Via::Pooler),
        ),
        (
            "DATABASE_URL_UNPOOLED".to_owned(),
            database_url(input, password, Via::Direct),
        ),
        ("PUBLIC_URL".to_owned(), public_url.clone()),
        ("FRESCO_URL".to_owned(), public_url),
        ("NODE_ENV".to_owned(), "production".to_owned()),
        ("HOSTNAME".to_owned(), "0.0.0.0".to_owned()),
        ("PORT".to_owned(), labels::FRESCO_PORT.to_string()),
    ];
    env.extend(input.settings.env(cfg));
    if input.db.isolation == Isolation::Schema {
        env.push(("DATABASE_SCHEMA".to_owned(), input.tenant.schema_name()));
    }
    let memory_mb = input
        .limits
        .memory_mb
        .unwrap_or(cfg.memory_mb)
        .max(MIN_MEMORY_MB) as i64;
    let mut labels = labels::management(cfg, input.tenant);
    labels.extend(labels::traefik(cfg, input.tenant, input.subdomain));
    let mut spec = ContainerSpec {
        tenant: input.tenant,
        name: input.tenant.container_name(),
        image: input.image.to_owned(),
        env,
        labels,
        memory_bytes: memory_mb * 1024 * 1024,
        // Docker counts memory + swap together: swap of twice the memory.
        memory_swap_bytes: 3 * memory_mb * 1024 * 1024,
        nano_cpus: input.limits.nano_cpus(cfg),
        pids_limit: input.limits.pids_limit.unwrap_or(cfg.pids_limit),
        stop_timeout_secs: cfg.stop_timeout_secs as i64,
        healthcheck: healthcheck_test(&cfg.healthcheck),
        health_interval_secs: cfg.healthcheck_interval_secs.max(1),
        health_start_period_secs: cfg.healthcheck_start_period_secs,
        health_retries: cfg.healthcheck_retries.max(1),
        health_timeout_secs: cfg.healthcheck_timeout_secs.max(1),
        network: cfg.tenants_network.clone(),
        user: Some(cfg.user.trim())
            .filter(|u| !u.is_empty())
            .map(str::to_owned),
        cap_drop: vec!["ALL".to_owned()],
        security_opt: vec!["no-new-privileges".to_owned()],
        log_driver: "json-file".to_owned(),
        log_options: BTreeMap::from([
            ("max-size".to_owned(), cfg.log_max_size.clone()),
            ("max-file".to_owned(), cfg.log_max_files.to_string()),
        ]),
    };
    let hash = spec_hash(&spec, input);
    spec.labels.insert(labels::SPEC_HASH.to_owned(), hash);
    spec
}

fn spec_hash(spec: &ContainerSpec, input: &SpecInput<'_>) -> String {
    let mut h = Sha256::new();
    let pooled = database_url(input, "<password>", Via::Pooler);
    let direct = database_url(input, "<password>", Via::Direct);
    let mut feed = |s: &str| {
        h.update(s.as_bytes());
        h.update([0u8]);
    };
    feed(&spec.image);
    for (k, v) in &spec.env {
        feed(k);
        feed(match k.as_str() {
            "DATABASE_URL" => &pooled,
            "DATABASE_URL_UNPOOLED" => &direct,
            _ => v,
        });
    }
    for (k, v) in &spec.labels {
        feed(k);
        feed(v);
    }
    for n in [
        spec.memory_bytes,
        spec.memory_swap_bytes,
        spec.nano_cpus,
        spec.pids_limit,
        spec.stop_timeout_secs,
        spec.health_interval_secs as i64,
        spec.health_start_period_secs as i64,
        spec.health_retries as i64,
        spec.health_timeout_secs as i64,
    ] {
        feed(&n.to_string());
    }
    for part in &spec.healthcheck {
        feed(part);
    }
    feed(&spec.network);
    feed(spec.user.as_deref().unwrap_or(""));
    for part in spec.cap_drop.iter().chain(&spec.security_opt) {
        feed(part);
    }
    feed(&spec.log_driver);
    for (k, v) in &spec.log_options {
        feed(k);
        feed(v);
    }
    hex::encode(&h.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        tenants: TenantConfig,
    }

    fn config(flags: &[&str]) -> Result<TenantConfig, clap::Error> {
        let argv = ["test", "--fresco-image", "fresco:test"]
            .iter()
            .chain(flags);
        Flags::try_parse_from(argv).map(|f| f.tenants)
    }

    fn target() -> DbTarget {
        DbTarget {
            direct: "172.18.0.1:5432".to_owned(),
            pooled: Some("172.18.0.1:6432".to_owned()),
            database: "tenant_0123456789abcdef0123456789abcdef".to_owned(),
            isolation: Isolation::Database,
        }
    }

    #[test]
    fn the_app_goes_through_pgbouncer_and_migrations_straight_to_postgres() {
        let cfg = config(&[]).unwrap();
        let mut db = target();
        let input = |db: &DbTarget| {
            build(
                &cfg,
                &SpecInput {
                    tenant: "0123456789abcdef0123456789abcdef".parse().unwrap(),
                    subdomain: "study",
                    image: "fresco:test",
                    limits: &ResourceLimits::default(),
                    db,
                    settings: FrescoSettings::default(),
                    password: Some("pw"),
                },
            )
        };
        let env = |s: &ContainerSpec, k: &str| {
            s.env
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        let role = "tenant_user_0123456789abcdef0123456789abcdef";
        let database = "tenant_0123456789abcdef0123456789abcdef";
        let spec = input(&db);
        assert_eq!(
            env(&spec, "DATABASE_URL"),
            format!("postgres://{role}:pw@172.18.0.1:6432/{database}?pgbouncer=true")
        );
        assert_eq!(
            env(&spec, "DATABASE_URL_UNPOOLED"),
            format!("postgres://{role}:pw@172.18.0.1:5432/{database}")
        );
        db.pooled = None;
        let direct = input(&db);
        assert_eq!(
            env(&direct, "DATABASE_URL"),
            env(&direct, "DATABASE_URL_UNPOOLED")
        );
        assert_ne!(
            direct.labels[labels::SPEC_HASH],
            spec.labels[labels::SPEC_HASH],
            "a pooler added or removed recreates the container"
        );
        db.isolation = Isolation::Schema;
        db.database = "platform_tenants".into();
        db.pooled = Some("172.18.0.1:6432".into());
        let schema = input(&db);
        assert_eq!(
            env(&schema, "DATABASE_URL"),
            format!(
                "postgres://{role}:pw@172.18.0.1:6432/platform_tenants?schema=tenant_0123456789abcdef0123456789abcdef&pgbouncer=true"
            )
        );
        assert!(!schema.labels[labels::SPEC_HASH].is_empty());
        assert!(
            !format!("{schema:?}").contains("pw@"),
            "Debug leaves env values out"
        );
    }

    fn spec_of(cfg: &TenantConfig) -> ContainerSpec {
        let db = target();
        let input = SpecInput {
            tenant: "0123456789abcdef0123456789abcdef".parse().unwrap(),
            subdomain: "study",
            image: "fresco:test",
            limits: &ResourceLimits::default(),
            db: &db,
            settings: FrescoSettings::default(),
            password: None,
        };
        build(cfg, &input)
    }

    #[test]
    fn settings_reach_the_env_and_the_hash_and_unset_ones_change_nothing() {
        let cfg = config(&[]).unwrap();
        let base = spec_of(&cfg);
        let env =
            |s: &ContainerSpec, k: &str| s.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let default = cfg.disable_analytics.to_string();
        assert_eq!(env(&base, "DISABLE_ANALYTICS"), Some(default));
        assert_eq!(env(&base, "SANDBOX_MODE"), None);
        let db = target();
        let with = |settings| {
            build(
                &cfg,
                &SpecInput {
                    tenant: "0123456789abcdef0123456789abcdef".parse().unwrap(),
                    subdomain: "study",
                    image: "fresco:test",
                    limits: &ResourceLimits::default(),
                    db: &db,
                    settings,
                    password: None,
                },
            )
        };
        let hash = |s: &ContainerSpec| s.labels[labels::SPEC_HASH].clone();
        let same = with(FrescoSettings {
            disable_analytics: Some(cfg.disable_analytics),
            sandbox_mode: None,
        });
        assert_eq!(hash(&same), hash(&base), "the default chosen explicitly");
        let sandbox = with(FrescoSettings {
            disable_analytics: Some(!cfg.disable_analytics),
            sandbox_mode: Some(true),
        });
        assert_eq!(env(&sandbox, "SANDBOX_MODE").as_deref(), Some("true"));
        assert_eq!(
            env(&sandbox, "DISABLE_ANALYTICS"),
            Some((!cfg.disable_analytics).to_string())
        );
        assert_ne!(hash(&sandbox), hash(&base));
    }

    #[test]
    fn containers_drop_every_capability_and_privilege_escalation_and_rotate_logs() {
        let spec = spec_of(&config(&[]).unwrap());
        assert_eq!(spec.cap_drop, ["ALL"]);
        assert_eq!(spec.security_opt, ["no-new-privileges"]);
        assert_eq!(spec.log_driver, "json-file");
        assert_eq!(spec.log_options["max-size"], "10m");
        assert_eq!(spec.log_options["max-file"], "3");
        // Empty TENANT_USER: the image's own (non-root) user.
        assert_eq!(spec.user, None);
    }

    #[test]
    fn user_and_log_rotation_are_configurable_and_part_of_the_spec_hash() {
        let base = spec_of(&config(&[]).unwrap());
        let custom = spec_of(
            &config(&[
                "--tenant-user",
                "1001:1001",
                "--tenant-log-max-size",
                "50M",
                "--tenant-log-max-files",
                "5",
            ])
            .unwrap(),
        );
        assert_eq!(custom.user.as_deref(), Some("1001:1001"));
        assert_eq!(custom.log_options["max-size"], "50m");
        assert_eq!(custom.log_options["max-file"], "5");
        let hash = |s: &ContainerSpec| s.labels[labels::SPEC_HASH].clone();
        assert_ne!(hash(&base), hash(&custom));
        let only_size = spec_of(&config(&["--tenant-log-max-size", "20m"]).unwrap());
        assert_ne!(hash(&base), hash(&only_size));
    }

    #[test]
    fn log_sizes_docker_would_reject_or_that_rotate_too_early_are_refused() {
        for bad in ["10", "ten", "10mb", "512k", "0m", "-1m", ""] {
            assert!(
                config(&["--tenant-log-max-size", bad]).is_err(),
                "{bad:?} accepted"
            );
        }
        assert!(config(&["--tenant-log-max-files", "0"]).is_err());
        assert!(config(&["--tenant-log-max-size", "1g"]).is_ok());
    }
}
