//! Configuration: one clap struct per concern, every field settable from the
//! environment and from the flag named after it (`TENANT_ISOLATION`,
//! `--tenant-isolation`). `fresco-platform serve --help` is the configuration
//! reference; the commands that take these structs are in `cli::args`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};

mod backup;
pub use backup::{BackupConfig, StorageKind};

#[derive(Clone, Args)]
pub struct DbConfig {
    /// Platform database (a non-superuser role with CREATEROLE, plus CREATEDB in
    /// database isolation mode).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Connections in the platform's pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,
}

impl std::fmt::Debug for DbConfig {
    // The URL carries the platform's password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConfig")
            .field("database_url", &"<redacted>")
            .field("database_max_connections", &self.database_max_connections)
            .finish()
    }
}

/// The default Docker HEALTHCHECK (shell form, run with the image's `node`):
/// `/api/health` on Fresco 4; Fresco 3.x has no health route, so on a 404 it
/// asks `/signin`, a page that reads the database. Redirects (to `/expired` once
/// the setup window has passed) are followed.
pub const DEFAULT_HEALTHCHECK: &str = "node -e \"const u='http://127.0.0.1:3000';fetch(u+'/api/health').then(r=>r.status===404?fetch(u+'/signin'):r).then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))\"";

pub use crate::domain::Isolation;

/// Each tenant role's CONNECTION LIMIT: its PgBouncer pool (5) and its direct
/// connections (migrations, Fresco's scripts) together.
pub const DEFAULT_TENANT_CONNECTION_LIMIT: u32 = 10;

/// The platform's pool on each tenant server.
pub const DEFAULT_DB_ADMIN_POOL_SIZE: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    #[command(flatten)]
    pub db: DbConfig,
    /// Address the API listens on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen_addr: SocketAddr,
    /// Log output format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub tenants: TenantConfig,
    #[command(flatten)]
    pub data_plane: DataPlaneConfig,
    #[command(flatten)]
    pub reconcile: ReconcileConfig,
    #[command(flatten)]
    pub accounts: AccountConfig,
    #[command(flatten)]
    pub limits: RateLimitConfig,
    #[command(flatten)]
    pub mail: crate::mail::MailConfig,
    #[command(flatten)]
    pub observe: ObserveConfig,
    #[command(flatten)]
    pub streams: StreamConfig,
    #[command(flatten)]
    pub notify: NotifyConfig,
    #[command(flatten)]
    pub backups: BackupConfig,
}

impl ServeConfig {
    /// Parses a tenant subdomain, refusing the platform's own host label too.
    pub fn subdomain(
        &self,
        input: &str,
    ) -> Result<crate::domain::Subdomain, crate::domain::SubdomainError> {
        let own = crate::domain::Subdomain::platform_label(
            &self.accounts.platform_url,
            &self.tenants.base_domain,
        );
        crate::domain::Subdomain::parse_beside(input, own.as_deref())
    }
}

#[derive(Clone, Args)]
pub struct ObserveConfig {
    /// Bearer token for `GET /metrics` (Prometheus). Unset: the endpoint is off.
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Seconds between resource samples of every active tenant.
    #[arg(long, env = "METRICS_INTERVAL_SECS", default_value_t = 30)]
    pub metrics_interval_secs: u64,
    /// Days of resource samples kept.
    #[arg(long, env = "METRICS_RETENTION_DAYS", default_value_t = 7)]
    pub metrics_retention_days: i64,
    /// Docker stats calls in flight at once during a sampler pass.
    #[arg(
        long = "metrics-sampler-concurrency",
        env = "METRICS_SAMPLER_CONCURRENCY",
        default_value_t = 8
    )]
    pub sampler_concurrency: usize,
    /// Seconds between events of a live metrics stream.
    #[arg(
        long = "metrics-stream-interval-secs",
        env = "METRICS_STREAM_INTERVAL_SECS",
        default_value_t = 5
    )]
    pub stream_interval_secs: u64,
    /// A tenant above this share (%) of its memory or CPU limit …
    #[arg(long, env = "ALERT_THRESHOLD_PERCENT", default_value_t = 80.0)]
    pub alert_threshold_percent: f64,
    /// … for this many consecutive samples gets a resource alert.
    #[arg(long, env = "ALERT_SUSTAINED_SAMPLES", default_value_t = 4)]
    pub alert_sustained_samples: u32,
}

impl std::fmt::Debug for ObserveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObserveConfig")
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "<set>"),
            )
            .field("metrics_interval_secs", &self.metrics_interval_secs)
            .field("metrics_retention_days", &self.metrics_retention_days)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Args)]
pub struct AccountConfig {
    /// Where the platform's own web app and API are reached. Its origin is the only
    /// one accepted on cookie-authenticated writes (CSRF), and cookies are `Secure`
    /// when it is https.
    #[arg(long, env = "PLATFORM_URL", default_value = "http://127.0.0.1:8080")]
    pub platform_url: String,
    /// Lifetime of a login session, extended by use.
    #[arg(long, env = "SESSION_TTL_HOURS", default_value_t = 24)]
    pub session_ttl_hours: i64,
    /// Lifetime of a "remember me" session, extended by use.
    #[arg(long, env = "SESSION_REMEMBER_DAYS", default_value_t = 30)]
    pub session_remember_days: i64,
    /// How long a signup wizard session stays usable.
    #[arg(
        long = "signup-session-ttl-minutes",
        env = "SIGNUP_SESSION_TTL_MINUTES",
        default_value_t = 60
    )]
    pub signup_ttl_minutes: i64,
    /// How long an emailed password-reset link works.
    #[arg(long, env = "PASSWORD_RESET_TTL_MINUTES", default_value_t = 60)]
    pub password_reset_ttl_minutes: i64,
    /// How long an emailed verification link works.
    #[arg(long, env = "EMAIL_VERIFY_TTL_HOURS", default_value_t = 48)]
    pub email_verify_ttl_hours: i64,
    /// Version of the terms of service the wizard asks users to accept.
    #[arg(long, env = "TERMS_VERSION", default_value = "2026-01")]
    pub terms_version: String,
    /// Live tenants a member may own.
    #[arg(long, env = "TENANT_QUOTA", default_value_t = 3)]
    pub tenant_quota: i64,
    /// Live tenants that accounts without a verified email may hold together
    /// (each such account holds at most one, from the signup wizard); the wizard
    /// refuses new signups once it is reached.
    #[arg(
        long = "unverified-tenant-cap",
        env = "UNVERIFIED_TENANT_CAP",
        default_value_t = 50
    )]
    pub unverified_tenant_cap: i64,
    /// Where people who only want to try Fresco are sent.
    #[arg(
        long,
        env = "SANDBOX_URL",
        default_value = "https://fresco-sandbox.networkcanvas.com"
    )]
    pub sandbox_url: String,
    /// Take the client address from X-Forwarded-For (only behind a trusted proxy).
    #[arg(long, env = "TRUST_PROXY_HEADERS", default_value_t = false, action = clap::ArgAction::Set)]
    pub trust_proxy_headers: bool,
    /// Addresses or CIDR networks of the proxies (Traefik) whose X-Forwarded-For is
    /// believed, comma-separated; a request from any other peer is taken at its own
    /// address, whatever its headers say.
    #[arg(
        long = "trusted-proxies",
        env = "TRUSTED_PROXIES",
        default_value = "127.0.0.1,::1",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<crate::http::client::ProxyNet>,
}

impl AccountConfig {
    pub fn secure_cookies(&self) -> bool {
        self.platform_url.starts_with("https://")
    }

    /// scheme://host[:port] of PLATFORM_URL.
    pub fn platform_origin(&self) -> String {
        let url = self.platform_url.trim_end_matches('/');
        match url.find("://").map(|i| i + 3) {
            Some(start) => match url[start..].find('/') {
                Some(slash) => url[..start + slash].to_owned(),
                None => url.to_owned(),
            },
            None => url.to_owned(),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct RateLimitConfig {
    /// Requests per window for each verified user (or each IP when anonymous, or
    /// when the credential has not checked out).
    #[arg(
        long = "rate-limit-general",
        env = "RATE_LIMIT_GENERAL",
        default_value_t = 600
    )]
    pub general: u32,
    /// Window of the general limit, in seconds.
    #[arg(
        long = "rate-limit-general-window-secs",
        env = "RATE_LIMIT_GENERAL_WINDOW_SECS",
        default_value_t = 60
    )]
    pub general_window_secs: u64,
    /// Login attempts per window, per IP and per email; also signups and wizard
    /// passwords per IP, and password changes per user.
    #[arg(
        long = "rate-limit-login",
        env = "RATE_LIMIT_LOGIN",
        default_value_t = 10
    )]
    pub login: u32,
    /// Window of the login limit, in seconds.
    #[arg(
        long = "rate-limit-login-window-secs",
        env = "RATE_LIMIT_LOGIN_WINDOW_SECS",
        default_value_t = 900
    )]
    pub login_window_secs: u64,
    /// Deploys and lifecycle actions per window, per user.
    #[arg(
        long = "rate-limit-actions",
        env = "RATE_LIMIT_ACTIONS",
        default_value_t = 30
    )]
    pub actions: u32,
    /// Window of the actions limit, in seconds.
    #[arg(
        long = "rate-limit-actions-window-secs",
        env = "RATE_LIMIT_ACTIONS_WINDOW_SECS",
        default_value_t = 60
    )]
    pub actions_window_secs: u64,
    /// Password-reset requests per window, per IP and per email; confirmations
    /// per IP. A budget apart from logins, so resets never lock anyone out.
    #[arg(
        long = "rate-limit-reset",
        env = "RATE_LIMIT_RESET",
        default_value_t = 5
    )]
    pub reset: u32,
    /// Window of the password-reset limit, in seconds.
    #[arg(
        long = "rate-limit-reset-window-secs",
        env = "RATE_LIMIT_RESET_WINDOW_SECS",
        default_value_t = 3600
    )]
    pub reset_window_secs: u64,
    /// Passwords the wizard's step 1 takes per signup session (each is hashed);
    /// per IP they also count against the login limit.
    #[arg(
        long = "rate-limit-wizard-passwords",
        env = "RATE_LIMIT_WIZARD_PASSWORDS",
        default_value_t = 5
    )]
    pub wizard_passwords: u32,
    /// Keys (addresses, users, emails) each limiter remembers at most; past it the
    /// oldest window is forgotten first. Bounds the limiters' memory.
    #[arg(
        long = "rate-limit-max-keys",
        env = "RATE_LIMIT_MAX_KEYS",
        default_value_t = 100_000
    )]
    pub max_keys: usize,
    /// Messages the support form takes per window, per client address and per
    /// signed-in user.
    #[arg(
        long = "rate-limit-support",
        env = "RATE_LIMIT_SUPPORT",
        default_value_t = 5
    )]
    pub support: u32,
    #[arg(
        long = "rate-limit-support-window-secs",
        env = "RATE_LIMIT_SUPPORT_WINDOW_SECS",
        default_value_t = 3600
    )]
    pub support_window_secs: u64,
}

/// Mail to owners about their instances, and the support address.
#[derive(Debug, Clone, Args)]
pub struct NotifyConfig {
    /// Where the support page's contact form sends its messages. Unset: the form
    /// says support mail is not configured and sends nothing.
    #[arg(long, env = "SUPPORT_EMAIL")]
    pub support_email: Option<String>,
    /// Seconds between the notifier's looks for events worth a mail (it also
    /// wakes on tenant activity).
    #[arg(long, env = "NOTIFY_INTERVAL_SECS", default_value_t = 30)]
    pub notify_interval_secs: u64,
    /// Minutes before an unclaimed instance's setup window closes at which its
    /// owner is warned.
    #[arg(long, env = "NOTIFY_SETUP_DEADLINE_WARNING_MINS", default_value_t = 30)]
    pub notify_setup_deadline_warning_mins: i64,
    /// Minutes after a "down" mail during which further down events of the same
    /// instance are recorded but not mailed (a flapping instance sends one).
    #[arg(long, env = "NOTIFY_DOWN_GAP_MINS", default_value_t = 60)]
    pub notify_down_gap_mins: i64,
}

/// Long-lived event streams: followed logs, tenant events, usage samples.
#[derive(Debug, Clone, Args)]
pub struct StreamConfig {
    /// Event streams one user may hold open at once; the next one gets 429.
    #[arg(
        long = "streams-per-user",
        env = "STREAMS_PER_USER",
        default_value_t = 20,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub per_user: u32,
    /// Seconds between checks that an open stream's caller still has access
    /// (session or key live, tenant visible); default the keepalive interval.
    #[arg(
        long = "stream-recheck-secs",
        env = "STREAM_RECHECK_SECS",
        default_value_t = crate::http::KEEPALIVE.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub recheck_secs: u64,
}

#[derive(Debug, Clone, Args)]
pub struct TenantConfig {
    /// Tenants are served at https://<subdomain>.<BASE_DOMAIN>.
    #[arg(long, env = "BASE_DOMAIN", default_value = "fresco.localhost")]
    pub base_domain: String,
    /// Scheme of tenant URLs (PUBLIC_URL given to Fresco).
    #[arg(long, env = "TENANT_URL_SCHEME", default_value = "https")]
    pub tenant_url_scheme: String,
    /// Port of tenant URLs, when Traefik does not listen on the scheme's default port.
    #[arg(long, env = "TENANT_URL_PORT")]
    pub tenant_url_port: Option<u16>,
    /// Name of this control plane; its containers carry it in a label and it only
    /// ever touches containers that carry its own name.
    #[arg(long, env = "PLATFORM_INSTANCE", default_value = "default")]
    pub platform_instance: String,
    /// How tenants are isolated in Postgres: `database` works with every Fresco
    /// release; `schema` only with images whose queries honour `?schema=` (Fresco
    /// 3.0 and earlier; 3.1+ uses Prisma 7, which ignores it, and fails to start).
    #[arg(
        long = "tenant-isolation",
        env = "TENANT_ISOLATION",
        value_enum,
        default_value = "database"
    )]
    pub isolation: Isolation,
    /// host[:port] of Postgres as seen from inside tenant containers. Defaults to the
    /// tenants network's gateway and the port of DATABASE_URL.
    #[arg(long, env = "TENANT_DB_HOST")]
    pub tenant_db_host: Option<String>,
    /// Fresco image for new tenants.
    #[arg(
        long,
        env = "FRESCO_IMAGE",
        default_value = "ghcr.io/complexdatacollective/fresco:latest"
    )]
    pub fresco_image: String,
    /// Docker HEALTHCHECK: a JSON array is run in exec form, anything else by the shell.
    /// The default passes on Fresco 4 (`/api/health`) and 3.x, which has no health
    /// route: on a 404 it asks `/signin`, a page that reads the database.
    #[arg(
        long = "fresco-healthcheck",
        env = "FRESCO_HEALTHCHECK",
        default_value = DEFAULT_HEALTHCHECK
    )]
    pub healthcheck: String,
    /// Seconds between health checks.
    #[arg(long, env = "HEALTHCHECK_INTERVAL_SECS", default_value_t = 10)]
    pub healthcheck_interval_secs: u64,
    /// Grace period for Fresco's start-up migrations before failed checks count.
    #[arg(long, env = "HEALTHCHECK_START_PERIOD_SECS", default_value_t = 120)]
    pub healthcheck_start_period_secs: u64,
    /// Consecutive failed checks before a container is unhealthy.
    #[arg(long, env = "HEALTHCHECK_RETRIES", default_value_t = 3)]
    pub healthcheck_retries: u32,
    /// Seconds one check may take. The default check starts a `node` process,
    /// which at a 0.5-CPU limit on a busy host can take several seconds.
    #[arg(long, env = "HEALTHCHECK_TIMEOUT_SECS", default_value_t = 10)]
    pub healthcheck_timeout_secs: u64,
    /// Docker network Traefik watches; created if missing.
    #[arg(long, env = "TENANTS_NETWORK", default_value = "fresco_tenants")]
    pub tenants_network: String,
    /// Traefik entrypoint tenant routers attach to.
    #[arg(long, env = "TRAEFIK_ENTRYPOINT", default_value = "websecure")]
    pub traefik_entrypoint: String,
    /// Traefik certificate resolver; TLS labels are only set when this is given.
    #[arg(long, env = "TRAEFIK_CERT_RESOLVER")]
    pub traefik_cert_resolver: Option<String>,
    /// Traefik middlewares attached to every tenant router.
    #[arg(
        long,
        env = "TRAEFIK_MIDDLEWARES",
        default_value = "security-headers@file"
    )]
    pub traefik_middlewares: String,
    /// Where Traefik reaches the platform's setup-claim guard (a forwardAuth in
    /// front of each tenant's `/setup`). Default: PLATFORM_URL + `/api/v1/setup-guard`;
    /// set it when Traefik reaches the platform by another address (e.g. a
    /// container network).
    #[arg(long, env = "SETUP_GUARD_URL")]
    pub setup_guard_url: Option<String>,
    /// Memory limit per tenant in MiB (at least 256); swap is twice this.
    #[arg(
        long = "tenant-memory-mb",
        env = "TENANT_MEMORY_MB",
        default_value_t = 512
    )]
    pub memory_mb: u32,
    /// CPU limit per tenant (cores).
    #[arg(long = "tenant-cpus", env = "TENANT_CPUS", default_value_t = 0.5)]
    pub cpus: f64,
    /// CPUs a tenant container may use while it starts: from a start the platform
    /// makes (create, start, restart, recovery) until its first passing health
    /// check, when its TENANT_CPUS limit is applied in place (no restart).
    /// Fresco's start (`prisma generate`, migrations, `initialize.ts`) is CPU
    /// bound on about one core: with the real Fresco 3.1.2, one start at a time,
    /// 1 CPU took container start -> ready from 19.7 s to 14.5 s (p50), 2 CPUs to
    /// 13.4 s; 1 is the default, most of the gain for at most one core of the host.
    /// Capped at the host's CPUs, never below the limit; 0 turns it off.
    #[arg(
        long = "tenant-start-cpus",
        env = "TENANT_START_CPUS",
        default_value_t = 1.0,
        value_parser = parse_start_cpus
    )]
    pub start_cpus: f64,
    /// Process limit per tenant container.
    #[arg(
        long = "tenant-pids-limit",
        env = "TENANT_PIDS_LIMIT",
        default_value_t = 100
    )]
    pub pids_limit: i64,
    /// Seconds Docker waits after SIGTERM before killing a tenant container.
    #[arg(
        long = "tenant-stop-timeout-secs",
        env = "TENANT_STOP_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub stop_timeout_secs: u32,
    /// User (`uid[:gid]` or a name the image knows) tenant containers run as. Empty:
    /// the image's own user (Fresco's image runs as uid 1001, the stand-in as 65532).
    #[arg(long = "tenant-user", env = "TENANT_USER", default_value = "")]
    pub user: String,
    /// Size at which a tenant container's log file is rotated (Docker json-file
    /// `max-size`: a number with k, m or g).
    #[arg(
        long = "tenant-log-max-size",
        env = "TENANT_LOG_MAX_SIZE",
        default_value = "10m",
        value_parser = parse_log_size
    )]
    pub log_max_size: String,
    /// Rotated log files kept per tenant container (json-file `max-file`).
    #[arg(
        long = "tenant-log-max-files",
        env = "TENANT_LOG_MAX_FILES",
        default_value_t = 3,
        value_parser = clap::value_parser!(u32).range(1..=100)
    )]
    pub log_max_files: u32,
    /// DISABLE_ANALYTICS given to Fresco.
    #[arg(long, env = "DISABLE_ANALYTICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub disable_analytics: bool,
    /// Connection limit of each tenant role.
    #[arg(
        long = "tenant-connection-limit",
        env = "TENANT_CONNECTION_LIMIT",
        default_value_t = DEFAULT_TENANT_CONNECTION_LIMIT
    )]
    pub connection_limit: u32,
    /// statement_timeout set on each tenant role.
    #[arg(
        long = "tenant-statement-timeout",
        env = "TENANT_STATEMENT_TIMEOUT",
        default_value = "60s"
    )]
    pub statement_timeout: String,
    /// idle_in_transaction_session_timeout set on each tenant role.
    #[arg(
        long = "tenant-idle-tx-timeout",
        env = "TENANT_IDLE_TX_TIMEOUT",
        default_value = "60s"
    )]
    pub idle_in_transaction_timeout: String,
}

/// Where tenant data lives: the servers' shared tenants database, PgBouncer,
/// the platform's own sessions on tenant servers, and moves between servers.
/// The servers themselves are `db_servers` rows (`fresco-platform db-servers`).
#[derive(Debug, Clone, Args)]
pub struct DataPlaneConfig {
    /// Schema isolation's shared database on every server (never the platform
    /// database). Default: the platform database's name + `_tenants`.
    #[arg(long, env = "TENANTS_DATABASE")]
    pub tenants_database: Option<String>,
    /// Port of the PgBouncer in front of the platform's own Postgres server, on
    /// the host of TENANT_DB_HOST (or the tenants network's gateway). Tenants
    /// get DATABASE_URL through it and DATABASE_URL_UNPOOLED direct; unset, both
    /// are direct. Other servers name their PgBouncer in their `db_servers` row.
    #[arg(long, env = "TENANT_DB_POOLER_PORT")]
    pub tenant_db_pooler_port: Option<u16>,
    /// The role PgBouncer's `auth_query` signs in as; every tenant database
    /// grants it CONNECT (and nothing else).
    #[arg(
        long,
        env = "PGBOUNCER_AUTH_ROLE",
        default_value = "fresco_pgbouncer_auth"
    )]
    pub pgbouncer_auth_role: String,
    /// `lock_timeout` of every session the platform opens on a tenant server:
    /// DDL waiting on a lock gives up (and is retried) instead of hanging.
    #[arg(long, env = "DDL_LOCK_TIMEOUT", default_value = "5s")]
    pub ddl_lock_timeout: String,
    /// `statement_timeout` of those sessions.
    #[arg(long, env = "DDL_STATEMENT_TIMEOUT", default_value = "60s")]
    pub ddl_statement_timeout: String,
    /// Connections of the platform's pool on each tenant server (and on each
    /// server's shared tenants database).
    #[arg(long, env = "DB_ADMIN_POOL_SIZE", default_value_t = DEFAULT_DB_ADMIN_POOL_SIZE)]
    pub db_admin_pool_size: u32,
    /// Connections the platform keeps for itself on its own server: its pool,
    /// its listeners and its admin pools. A server's capacity × the tenants'
    /// CONNECTION LIMIT must fit in max_connections − superuser_reserved − this.
    #[arg(long, env = "PLATFORM_RESERVED_CONNECTIONS", default_value_t = 40)]
    pub platform_reserved_connections: u32,
    /// `pg_dump` a move runs (version ≥ the servers').
    #[arg(long, env = "PG_DUMP", default_value = "pg_dump")]
    pub pg_dump: String,
    /// `pg_restore` a move runs.
    #[arg(long, env = "PG_RESTORE", default_value = "pg_restore")]
    pub pg_restore: String,
    /// `psql` a restore feeds the backup through (in one transaction).
    #[arg(long, env = "PSQL", default_value = "psql")]
    pub psql: String,
    /// Folder where a move keeps the tenant's dump while it copies (removed
    /// after). Default: the system's temporary folder.
    #[arg(long, env = "MOVE_WORK_DIR")]
    pub move_work_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ReconcileConfig {
    /// Tenants converged at the same time.
    #[arg(
        long = "reconcile-concurrency",
        env = "RECONCILE_CONCURRENCY",
        default_value_t = 4
    )]
    pub concurrency: usize,
    /// Seconds between full resyncs of every tenant against Docker and Postgres.
    #[arg(long, env = "RESYNC_INTERVAL_SECS", default_value_t = 30)]
    pub resync_interval_secs: u64,
    /// Failed attempts before a tenant is put in `error`.
    #[arg(
        long = "reconcile-max-attempts",
        env = "RECONCILE_MAX_ATTEMPTS",
        default_value_t = 5
    )]
    pub max_attempts: i32,
    /// First retry delay; doubled per attempt, capped at 5 minutes.
    #[arg(
        long = "reconcile-backoff-ms",
        env = "RECONCILE_BACKOFF_MS",
        default_value_t = 2000
    )]
    pub backoff_ms: u64,
    /// Seconds a started container may take to become healthy.
    #[arg(long, env = "HEALTH_TIMEOUT_SECS", default_value_t = 300)]
    pub health_timeout_secs: u64,
    /// Restarts during start-up after which a container counts as crash-looping:
    /// it is stopped and the action ends in `error` with its last output.
    #[arg(
        long = "crash-loop-restarts",
        env = "CRASH_LOOP_RESTARTS",
        default_value_t = 3
    )]
    pub crash_loop_restarts: i64,
}

impl ReconcileConfig {
    pub fn backoff(&self, attempts: i32) -> Duration {
        let exp = attempts.clamp(0, 16) as u32;
        let ms = self.backoff_ms.saturating_mul(1u64 << exp);
        Duration::from_millis(ms.min(300_000))
    }
}

/// TENANT_START_CPUS: 0 (off) or a CPU count Docker could give (0.01 to 1024).
fn parse_start_cpus(raw: &str) -> Result<f64, String> {
    let cpus: f64 = raw
        .trim()
        .parse()
        .map_err(|_| format!("{raw:?} is not a number of CPUs like 2 or 1.5"))?;
    if cpus == 0.0 || (0.01..=1024.0).contains(&cpus) {
        Ok(cpus)
    } else {
        Err(format!("{raw:?}: 0 (off) or between 0.01 and 1024"))
    }
}

/// A Docker json-file `max-size`: digits and a k, m or g unit, at least 1 MiB (smaller
/// files would rotate away what `docker logs` and the log API are asked for).
fn parse_log_size(raw: &str) -> Result<String, String> {
    let s = raw.trim().to_ascii_lowercase();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{raw:?} is not a size like 10m"))?;
    let bytes = match unit {
        "k" => n * 1024,
        "m" => n * 1024 * 1024,
        "g" => n * 1024 * 1024 * 1024,
        _ => return Err(format!("{raw:?}: the unit must be k, m or g (like 10m)")),
    };
    if bytes < 1024 * 1024 {
        return Err(format!("{raw:?} is below 1m"));
    }
    Ok(s)
}

impl TenantConfig {
    /// The URL a tenant is reached at.
    pub fn tenant_url(&self, subdomain: &str) -> String {
        match self.tenant_url_port {
            Some(port) => format!(
                "{}://{}.{}:{}",
                self.tenant_url_scheme, subdomain, self.base_domain, port
            ),
            None => format!(
                "{}://{}.{}",
                self.tenant_url_scheme, subdomain, self.base_domain
            ),
        }
    }
}
