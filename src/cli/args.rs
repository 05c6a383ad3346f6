//! The binary's argument tree: `fresco-platform <command>` and the arguments of
//! each command. Every flag that an environment variable can set is named after
//! it (`TENANT_ISOLATION` is `--tenant-isolation`); a test below keeps it so.

use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};

use crate::config::{DbConfig, ServeConfig};

#[derive(Debug, Parser)]
#[command(
    name = "fresco-platform",
    version,
    about = "Runs Fresco as a multi-tenant service"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API and the reconciler.
    Serve(Box<ServeConfig>),
    /// Apply the platform schema migrations and exit.
    Migrate(DbConfig),
    /// Create (or promote) an admin user and print a new admin API key once.
    CreateAdmin(CreateAdminArgs),
    /// Tail a tenant container's logs through the API.
    Logs(LogsArgs),
    /// List and act on tenants through the API.
    Tenants(TenantsArgs),
    /// Current resource use of a tenant through the API.
    Metrics(MetricsArgs),
    /// The Postgres servers tenant data lives on: add one (straight to the
    /// platform database), list, change or drain them (through the API).
    DbServers(DbServersArgs),
    /// Backups: recovery tests (`verify`) and a new sealing key (`new-key`).
    Backups(BackupsArgs),
    /// GET the platform's /api/health: exit 0 on a 200, 1 otherwise (the
    /// container image's HEALTHCHECK).
    Healthcheck(HealthcheckArgs),
}

/// `fresco-platform healthcheck`.
#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The URL to probe [default: http://<LISTEN_ADDR>/api/health, on loopback
    /// when LISTEN_ADDR is 0.0.0.0 or ::].
    #[arg(long)]
    pub url: Option<String>,
    /// The address `serve` listens on [default: 127.0.0.1:8080].
    #[arg(long, env = "LISTEN_ADDR")]
    pub listen_addr: Option<std::net::SocketAddr>,
}

/// `fresco-platform backups`.
#[derive(Debug, Args)]
pub struct BackupsArgs {
    #[command(subcommand)]
    pub command: BackupsCommand,
}

#[derive(Debug, Subcommand)]
pub enum BackupsCommand {
    /// Restore the latest backup of each tenant (or of one, or a sample) into
    /// a scratch database, compare its row counts with the manifest, report,
    /// and drop it. Reads the platform's configuration (as `serve` does).
    /// Exit code 1 if any backup fails.
    Verify(Box<BackupVerifyArgs>),
    /// Print a new random sealing key (64 hex digits) for BACKUP_KEY_FILE.
    NewKey,
}

#[derive(Debug, Args)]
pub struct BackupVerifyArgs {
    /// Only this tenant (id or subdomain).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only this many tenants, picked at random.
    #[arg(long)]
    pub sample: Option<usize>,
    #[command(flatten)]
    pub serve: ServeConfig,
}

/// `fresco-platform db-servers`.
#[derive(Debug, Args)]
pub struct DbServersArgs {
    #[command(flatten)]
    pub client: ClientOptions,
    #[command(subcommand)]
    pub command: DbServersCommand,
}

#[derive(Debug, Subcommand)]
pub enum DbServersCommand {
    /// Add a server: checks that the platform's role there can do its work and
    /// that the capacity fits the server's connections, then records it.
    Add(DbServerAddArgs),
    /// The servers, their load, capacity and whether they drain.
    List,
    /// Change a server's capacity, or end a drain (`--draining false`).
    Update {
        /// The server's name.
        name: String,
        /// Most live tenants placed on it.
        #[arg(long)]
        capacity: Option<i32>,
        /// `true` drains it, `false` ends a drain.
        #[arg(long, action = clap::ArgAction::Set)]
        draining: Option<bool>,
    },
    /// Drain a server: no new tenants there, and every tenant on it is moved to
    /// the least-loaded other server.
    Drain {
        /// The server's name.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct DbServerAddArgs {
    #[command(flatten)]
    pub db: DbConfig,
    /// A short name (lowercase letters, digits, dashes).
    #[arg(long)]
    pub name: String,
    /// postgres:// URL of the platform's role on that server (non-superuser, with
    /// CREATEROLE and CREATEDB). Kept in the platform database, never shown.
    /// Prefer the environment: arguments are visible to other users.
    #[arg(long, env = "DB_SERVER_ADMIN_URL", hide_env_values = true)]
    pub db_server_admin_url: String,
    /// host:port where tenant containers reach it directly (`:port` means on the
    /// tenants network's gateway).
    #[arg(long)]
    pub tenant_host: String,
    /// host:port (or `:port`) of its PgBouncer; without it tenants connect directly.
    #[arg(long)]
    pub pooler_host: Option<String>,
    /// Most live tenants placed on it.
    #[arg(long)]
    pub capacity: i32,
    /// The CONNECTION LIMIT the platform gives each tenant role (as `serve`'s).
    #[arg(long, env = "TENANT_CONNECTION_LIMIT", default_value_t = crate::config::DEFAULT_TENANT_CONNECTION_LIMIT)]
    pub tenant_connection_limit: u32,
    /// Connections of the platform's pool on each server (as `serve`'s).
    #[arg(long, env = "DB_ADMIN_POOL_SIZE", default_value_t = crate::config::DEFAULT_DB_ADMIN_POOL_SIZE)]
    pub db_admin_pool_size: u32,
}

#[derive(Debug, Args)]
pub struct CreateAdminArgs {
    #[command(flatten)]
    pub db: DbConfig,
    /// Email address of the admin user.
    #[arg(long = "admin-email", env = "ADMIN_EMAIL")]
    pub email: String,
    /// Name recorded on the API key.
    #[arg(long, default_value = "cli")]
    pub key_name: String,
}

/// Where the API is and how to authenticate; shared by every client command.
#[derive(Clone, Args)]
pub struct ClientOptions {
    /// The platform's API [default: `url` in the config file, else http://127.0.0.1:8080].
    #[arg(
        long = "fresco-platform-url",
        env = "FRESCO_PLATFORM_URL",
        value_name = "URL",
        global = true,
        help_heading = "Connection"
    )]
    pub url: Option<String>,
    /// API key, sent as `Authorization: Bearer` [default: `api_key` in the config file].
    /// Prefer the environment or the config file: arguments are visible to other users.
    #[arg(
        long = "fresco-api-key",
        env = "FRESCO_API_KEY",
        hide_env_values = true,
        value_name = "KEY",
        global = true,
        help_heading = "Connection"
    )]
    pub api_key: Option<String>,
    /// File of `url = …` and `api_key = …` lines, used for what neither a flag nor the
    /// environment gives; keep it private (chmod 600)
    /// [default: ~/.config/fresco-platform/cli.conf].
    #[arg(
        long = "fresco-cli-config",
        env = "FRESCO_CLI_CONFIG",
        value_name = "FILE",
        global = true,
        help_heading = "Connection"
    )]
    pub config: Option<PathBuf>,
    /// Print the API's JSON as is, for scripts (one value per line when following).
    #[arg(long, global = true)]
    pub json: bool,
}

impl fmt::Debug for ClientOptions {
    // The key is a credential.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("config", &self.config)
            .field("json", &self.json)
            .finish()
    }
}

/// `fresco-platform logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub client: ClientOptions,
    /// The tenant: its subdomain or its id.
    #[arg(value_name = "TENANT")]
    pub tenant: String,
    /// Keep printing lines as the container writes them, until Ctrl-C or until the
    /// container is stopped or removed.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines (before following).
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<u64>,
    /// Only lines written since then: a duration ago (`90s`, `10m`, `2h`, `1d`,
    /// `1h30m`) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = parse_moment)]
    pub since: Option<DateTime<Utc>>,
    /// Only lines written before then (same forms as --since).
    #[arg(long, value_name = "WHEN", value_parser = parse_moment)]
    pub until: Option<DateTime<Utc>>,
    /// Only what the container writes to stderr.
    #[arg(long, conflicts_with = "stdout")]
    pub stderr: bool,
    /// Only what the container writes to stdout.
    #[arg(long)]
    pub stdout: bool,
    /// Start each line with the time it was written (RFC 3339, nanoseconds).
    #[arg(short, long)]
    pub timestamps: bool,
    /// Only lines containing this text.
    #[arg(long, value_name = "TEXT")]
    pub grep: Option<String>,
}

/// `fresco-platform tenants`.
#[derive(Debug, Args)]
pub struct TenantsArgs {
    #[command(flatten)]
    pub client: ClientOptions,
    #[command(subcommand)]
    pub command: TenantsCommand,
}

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// List tenants (your own; every tenant for an admin).
    List {
        /// Only tenants in this status (e.g. active, stopped, error).
        #[arg(long)]
        status: Option<String>,
        /// Only tenants whose subdomain contains this text.
        #[arg(long, value_name = "TEXT")]
        search: Option<String>,
    },
    /// Show a tenant: status, URL, container, recent deployments.
    Get {
        /// Its subdomain or its id.
        #[arg(value_name = "TENANT")]
        tenant: String,
    },
    /// Start a stopped tenant.
    Start {
        /// Its subdomain or its id.
        #[arg(value_name = "TENANT")]
        tenant: String,
    },
    /// Stop a tenant (its data stays).
    Stop {
        /// Its subdomain or its id.
        #[arg(value_name = "TENANT")]
        tenant: String,
    },
    /// Restart a running tenant.
    Restart {
        /// Its subdomain or its id.
        #[arg(value_name = "TENANT")]
        tenant: String,
    },
    /// Move a tenant's data to another database server (admins): stopped, copied,
    /// verified, restarted there; the old copy goes once it is healthy.
    Move {
        /// Its subdomain or its id.
        #[arg(value_name = "TENANT")]
        tenant: String,
        /// The name of the target server (`db-servers list`).
        #[arg(long, value_name = "SERVER")]
        to: String,
    },
    /// Destroy a tenant: its container, its data and its database role. Cannot be undone.
    Destroy {
        /// Its subdomain or its id.
        #[arg(value_name = "TENANT")]
        tenant: String,
        /// The tenant's subdomain, repeated to confirm.
        #[arg(long, value_name = "SUBDOMAIN")]
        confirm: Option<String>,
    },
}

/// `fresco-platform metrics`.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    #[command(flatten)]
    pub client: ClientOptions,
    /// The tenant: its subdomain or its id.
    #[arg(value_name = "TENANT")]
    pub tenant: String,
}

// ---------------------------------------------------------------------------
// Moments (`--since`, `--until`)

/// A moment given on the command line: a duration ago or an RFC 3339 time.
fn parse_moment(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let ago = parse_duration(s).ok_or_else(|| {
        format!("{s:?} is neither a duration (90s, 10m, 2h, 1d, 1h30m) nor an RFC 3339 time")
    })?;
    Ok(Utc::now() - ago)
}

fn parse_duration(s: &str) -> Option<chrono::Duration> {
    let mut total = chrono::Duration::zero();
    let mut number = String::new();
    let mut any = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: i64 = number.parse().ok()?;
        number.clear();
        let part = match c {
            's' => chrono::Duration::try_seconds(n)?,
            'm' => chrono::Duration::try_minutes(n)?,
            'h' => chrono::Duration::try_hours(n)?,
            'd' => chrono::Duration::try_days(n)?,
            _ => return None,
        };
        total = total.checked_add(&part)?;
        any = true;
    }
    (any && number.is_empty()).then_some(total)
}

#[cfg(test)]
mod tests {
    use chrono::SecondsFormat;
    use clap::CommandFactory;

    use super::*;

    /// `TENANT_ISOLATION` → `tenant-isolation`.
    fn flag_for(env: &str) -> String {
        env.to_lowercase().replace('_', "-")
    }

    /// Every argument with an environment variable, in every command, as
    /// (command path, env variable, long flag).
    fn env_args(command: &clap::Command, path: &str, found: &mut Vec<(String, String, String)>) {
        for arg in command.get_arguments() {
            if let Some(env) = arg.get_env() {
                found.push((
                    path.to_owned(),
                    env.to_string_lossy().into_owned(),
                    arg.get_long().unwrap_or("").to_owned(),
                ));
            }
        }
        for sub in command.get_subcommands() {
            env_args(sub, &format!("{path} {}", sub.get_name()), found);
        }
    }

    #[test]
    fn every_flag_is_named_after_its_environment_variable() {
        let mut found = Vec::new();
        env_args(&Cli::command(), "fresco-platform", &mut found);
        // The walk reaches serve's settings, create-admin and the client commands.
        for (path, env) in [
            ("fresco-platform serve", "TENANT_ISOLATION"),
            ("fresco-platform serve", "SMTP_URL"),
            ("fresco-platform create-admin", "ADMIN_EMAIL"),
            ("fresco-platform tenants", "FRESCO_API_KEY"),
        ] {
            assert!(
                found.iter().any(|(p, e, _)| p == path && e == env),
                "{env} not found under `{path}`"
            );
        }
        let wrong: Vec<String> = found
            .iter()
            .filter(|(_, env, long)| *long != flag_for(env))
            .map(|(path, env, long)| {
                format!("`{path}`: {env} is --{long}, expected --{}", flag_for(env))
            })
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn the_argument_tree_is_consistent() {
        // clap's own checks: no flag defined twice, defaults parse, and so on.
        Cli::command().debug_assert();
    }

    #[test]
    fn moments_are_durations_ago_or_rfc3339() {
        let t = parse_moment("2026-01-02T03:04:05.123456789+01:00").unwrap();
        assert_eq!(
            t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            "2026-01-02T02:04:05.123456789Z"
        );
        assert_eq!(parse_duration("1h30m"), Some(chrono::Duration::minutes(90)));
        assert_eq!(parse_duration("10m"), Some(chrono::Duration::minutes(10)));
        assert_eq!(parse_duration("2d"), Some(chrono::Duration::days(2)));
        for bad in ["", "10", "m", "10x", "1h30", "yesterday"] {
            assert!(parse_moment(bad).is_err(), "{bad:?} accepted");
        }
        let ago = Utc::now() - parse_moment("10m").unwrap();
        assert!((ago.num_seconds() - 600).abs() < 5);
    }

    #[test]
    fn debug_never_prints_the_key() {
        let options = ClientOptions {
            url: None,
            api_key: Some("fp_secret".to_owned()),
            config: None,
            json: false,
        };
        assert!(!format!("{options:?}").contains("fp_secret"));
    }
}
