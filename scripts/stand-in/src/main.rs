//! fresco-stand-in: a small program that behaves like the Fresco survey app as far as the
//! fresco-platform control plane can tell, so development machines and tests (which cannot
//! pull the real image) can run tenants.
//!
//! Contract (see DESIGN.md, "The tenant container (Fresco contract)"):
//! * `fresco-stand-in` serves. It validates its environment first and exits 1 with a message
//!   naming the variable when `DATABASE_URL` / `DATABASE_URL_UNPOOLED` is missing or empty,
//!   when `PUBLIC_URL` is not an http(s) URL with a host, or when `DISABLE_ANALYTICS` is
//!   something other than `true` / `false`.
//! * It imitates one Fresco release, `STANDIN_FRESCO_VERSION` (baked into the image):
//!   `3.1` (the default; what `fresco:latest` publishes), `3.0`, or `4`. It is never more
//!   lenient than that release where the platform depends on it:
//!   - migrations create the tables in the schema named by the Prisma-style `?schema=`
//!     parameter (else `public`); from 3.1 on they also create a temporary table (Fresco's
//!     2024-10 `app_settings_kv` migration does), so the role needs `TEMP`;
//!   - queries (recording `initializedAt`, health) go to that schema only on 3.0; from 3.1 on
//!     (Prisma 7 ignores `?schema=` for queries) they go to `public`, so a schema-isolated
//!     tenant fails to start, as the real app does;
//!   - `GET /api/health` exists only on 4; on 3.x it is a 404.
//! * It applies its migrations over `DATABASE_URL_UNPOOLED` (as the image
//!   `scripts/build-fresco` makes does), then connects with `DATABASE_URL` (each connection
//!   retried for up to 60 s) and records `initializedAt` once (a failure there exits 1 at
//!   once, as Fresco's start script does). Over `DATABASE_URL`, which goes through PgBouncer's
//!   transaction pooling, it sends only simple queries: no named prepared statement, no
//!   session state (`SET`), as node-postgres under Fresco 3.1 sends none either; waits out `STANDIN_STARTUP_DELAY_MS` (default 1500, counted from
//!   start; it stands for Fresco's start-up) and only then opens `PORT` (default 3000) on
//!   `HOSTNAME` (default 0.0.0.0).
//! * Routes: `GET /signin` 200 when the database answers (else 500; Fresco's sign-in page
//!   reads its settings), `GET /setup` 200, `GET /api/health` (4 only) 200 or 503,
//!   `GET /` 308 to /dashboard, `GET /dashboard` 307 to /signin, anything else 404. Each of
//!   these requests prints one line `METHOD /path STATUS` on stdout.
//! * Stand-in-only routes (never in real Fresco), for log-streaming tests and benchmarks; they
//!   print no request line of their own, so tests can count exact lines:
//!   - `GET /stand-in/echo?stream=stdout|stderr&text=T&n=N` writes `T` (form-decoded) as `N`
//!     lines (default 1, at most 10000; with N > 1 each line is `T i`, i = 1..=N) to the
//!     stream (stdout when `stream` is absent), flushes, and answers 200 `{"written":N}`.
//!   - `GET /stand-in/burst?n=N&stream=stdout|stderr` answers 202 at once; a background
//!     thread then writes `burst line i` for i = 1..=N (N at most 5000000) as fast as it can,
//!     then `burst done N`. One burst at a time: 409 while one runs.
//!
//!   - `GET /stand-in/connect?addr=IP:PORT` tries a TCP connection from inside the container
//!     (at most 2 s) and answers 200 `{"connected":true}` or `{"connected":false,"error":E}`:
//!     the network-isolation tests ask a tenant what it can reach (the image has no shell).
//!
//!   A bad parameter (an empty or unknown `stream`, a bad `n`, a missing `text`, a `text`
//!   holding CR or LF) gives 400, a method other than GET 405.
//! * SIGTERM / SIGINT: exits 0 at once (it is PID 1 in its container, where the default
//!   disposition of those signals is "ignore", so they are handled explicitly).
//! * `fresco-stand-in healthcheck`: what the platform's default check does with `node`:
//!   `GET /api/health` on 127.0.0.1:$PORT, and `GET /signin` when that is a 404; exit 0 on a
//!   200, exit 1 otherwise, within 3 s. Meant for the Docker HEALTHCHECK (exec form).
//!
//! The binary is linked statically against glibc and runs in a `FROM scratch` image, so it
//! resolves no host names by itself: give `DATABASE_URL` an IP address. A name is still
//! tried (through the libc resolver, which may not work in a scratch image).
//!
//! It never prints `DATABASE_URL` or a password: only host, port, database and schema.

use std::env;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};

const DEFAULT_PORT: u16 = 3000;
const DEFAULT_STARTUP_DELAY_MS: u64 = 1500;
const DB_RETRY_WINDOW: Duration = Duration::from_secs(60);
const DB_RETRY_SLEEP: Duration = Duration::from_millis(1000);
const DB_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(3);
const CLIENT_IO_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// The container runs with a pids limit (100 by default): never spawn more handler threads
/// than this; excess connections get a 503 from the accept loop.
const MAX_CONNECTION_THREADS: usize = 32;
/// URL parameters that Prisma understands and the postgres crate does not (it rejects
/// unknown options); they are dropped before connecting.
const PRISMA_ONLY_PARAMS: &[&str] = &[
    "schema",
    "connection_limit",
    "pool_timeout",
    "pgbouncer",
    "socket_timeout",
    "statement_cache_size",
    "sslaccept",
    "sslcert",
    "sslidentity",
    "sslpassword",
];

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        None => serve(),
        Some("healthcheck") if args.len() == 1 => healthcheck(),
        Some("-h") | Some("--help") | Some("help") => {
            println!("{}", usage());
            0
        }
        Some("-V") | Some("--version") => {
            println!("fresco-stand-in {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Some(_) => {
            eprintln!(
                "fresco-stand-in: unexpected arguments {args:?}\n{}",
                usage()
            );
            2
        }
    };
    process::exit(code);
}

fn usage() -> &'static str {
    "usage: fresco-stand-in              serve (configured by environment variables)\n\
     \x20      fresco-stand-in healthcheck  GET /api/health (else /signin) on 127.0.0.1:$PORT, exit 0 on 200\n\
     environment: DATABASE_URL, DATABASE_URL_UNPOOLED, PUBLIC_URL (required);\n\
     \x20            PORT (3000), HOSTNAME (0.0.0.0), DISABLE_ANALYTICS (true|false),\n\
     \x20            STANDIN_STARTUP_DELAY_MS (1500), STANDIN_FRESCO_VERSION (3.1; or 3.0, 4)"
}

// ---------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------

/// The Fresco release the stand-in imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Release {
    V3_0,
    V3_1,
    V4,
}

impl Release {
    fn parse(raw: &str) -> Option<Self> {
        match raw.trim() {
            "3.0" => Some(Self::V3_0),
            "" | "3.1" => Some(Self::V3_1),
            "4" => Some(Self::V4),
            _ => None,
        }
    }

    /// Prisma 7 (Fresco 3.1+) ignores `?schema=` for queries; migrations honour it.
    fn query_schema<'a>(&self, db: &'a DbUrl) -> &'a str {
        match self {
            Self::V3_0 => db.schema_name(),
            Self::V3_1 | Self::V4 => "public",
        }
    }

    fn has_health_route(&self) -> bool {
        *self == Self::V4
    }

    /// Fresco's 2024-10 migration creates a temporary table.
    fn migrations_need_temp(&self) -> bool {
        *self != Self::V3_0
    }
}

struct Settings {
    release: Release,
    db: DbUrl,
    /// DATABASE_URL_UNPOOLED: straight to Postgres, for the migrations.
    migrate_db: DbUrl,
    public_url: String,
    port: u16,
    bind_ip: IpAddr,
    startup_delay: Duration,
}

/// Exit-1 configuration error; the message names the variable and never holds a secret.
struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn required_var(name: &str) -> Result<String, ConfigError> {
    match env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        Ok(_) => Err(ConfigError(format!(
            "{name} is set but empty; it is required"
        ))),
        Err(env::VarError::NotPresent) => {
            Err(ConfigError(format!("{name} is not set; it is required")))
        }
        Err(env::VarError::NotUnicode(_)) => Err(ConfigError(format!("{name} is not valid UTF-8"))),
    }
}

fn optional_var(name: &str) -> Result<Option<String>, ConfigError> {
    match env::var(name) {
        Ok(v) => Ok(Some(v)),
        Err(env::VarError::NotPresent) => Ok(None),
        Err(env::VarError::NotUnicode(_)) => Err(ConfigError(format!("{name} is not valid UTF-8"))),
    }
}

fn port_from_env() -> Result<u16, ConfigError> {
    match optional_var("PORT")? {
        None => Ok(DEFAULT_PORT),
        Some(v) if v.trim().is_empty() => Ok(DEFAULT_PORT),
        Some(v) => match v.trim().parse::<u16>() {
            Ok(p) if p != 0 => Ok(p),
            _ => Err(ConfigError(format!(
                "PORT must be a TCP port number between 1 and 65535, got {v:?}"
            ))),
        },
    }
}

fn load_settings() -> Result<Settings, ConfigError> {
    let database_url = required_var("DATABASE_URL")?;
    let unpooled = required_var("DATABASE_URL_UNPOOLED")?;
    let db = DbUrl::parse(&database_url)
        .map_err(|e| ConfigError(format!("DATABASE_URL is not usable: {e}")))?;
    let migrate_db = DbUrl::parse(&unpooled)
        .map_err(|e| ConfigError(format!("DATABASE_URL_UNPOOLED is not usable: {e}")))?;

    let public_url = optional_var("PUBLIC_URL")?
        .ok_or_else(|| ConfigError("PUBLIC_URL is not set; it is required".into()))?;
    validate_public_url(&public_url)
        .map_err(|e| ConfigError(format!("PUBLIC_URL is invalid: {e} (got {public_url:?})")))?;

    if let Some(v) = optional_var("DISABLE_ANALYTICS")? {
        if v != "true" && v != "false" {
            return Err(ConfigError(format!(
                "DISABLE_ANALYTICS must be \"true\" or \"false\", got {v:?}"
            )));
        }
    }

    let port = port_from_env()?;
    let bind_ip = bind_ip_from_env()?;
    let release = match optional_var("STANDIN_FRESCO_VERSION")? {
        None => Release::V3_1,
        Some(v) => Release::parse(&v).ok_or_else(|| {
            ConfigError(format!(
                "STANDIN_FRESCO_VERSION must be 3.0, 3.1 or 4, got {v:?}"
            ))
        })?,
    };

    let startup_delay = match optional_var("STANDIN_STARTUP_DELAY_MS")? {
        None => Duration::from_millis(DEFAULT_STARTUP_DELAY_MS),
        Some(v) if v.trim().is_empty() => Duration::from_millis(DEFAULT_STARTUP_DELAY_MS),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(ms) => Duration::from_millis(ms),
            Err(_) => {
                return Err(ConfigError(format!(
                    "STANDIN_STARTUP_DELAY_MS must be a whole number of milliseconds, got {v:?}"
                )))
            }
        },
    };

    Ok(Settings {
        release,
        db,
        migrate_db,
        public_url,
        port,
        bind_ip,
        startup_delay,
    })
}

fn validate_public_url(url: &str) -> Result<(), String> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains whitespace or control characters".into());
    }
    let lower = url.to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url["https://".len()..]
    } else if lower.starts_with("http://") {
        &url["http://".len()..]
    } else {
        return Err("it must start with http:// or https://".into());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit('@').next().unwrap_or("");
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        match v6.find(']') {
            Some(end) => &v6[..end],
            None => return Err("unterminated IPv6 address".into()),
        }
    } else {
        hostport.split(':').next().unwrap_or("")
    };
    if host.is_empty() {
        return Err("it has no host".into());
    }
    if let Some(port) = hostport.rsplit_once("]:").map(|(_, p)| p).or_else(|| {
        if hostport.starts_with('[') {
            None
        } else {
            hostport.split_once(':').map(|(_, p)| p)
        }
    }) {
        if !port.is_empty() && port.parse::<u16>().is_err() {
            return Err(format!("bad port {port:?}"));
        }
    }
    Ok(())
}

/// Next.js binds to `HOSTNAME`. Docker sets `HOSTNAME` to the container id unless told
/// otherwise, and Next then listens only on the container's own address (which is why the
/// platform must set `HOSTNAME=0.0.0.0`). The stand-in mimics that without a resolver: an IP
/// literal is used as it is, a name is looked up in /etc/hosts (where Docker writes the
/// container's address), and a name it cannot find there is an error.
fn bind_ip_from_env() -> Result<IpAddr, ConfigError> {
    let Some(raw) = optional_var("HOSTNAME")? else {
        return Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    };
    let name = raw.trim();
    if name.is_empty() {
        return Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }
    let literal = name.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(ip);
    }
    if name.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    match lookup_etc_hosts(name) {
        Some(ip) => {
            eprintln!(
                "stand-in: warning: HOSTNAME={name} is not an IP address; binding only {ip} \
                 (from /etc/hosts) as Next.js would; set HOSTNAME=0.0.0.0 to listen everywhere"
            );
            Ok(ip)
        }
        None => Err(ConfigError(format!(
            "HOSTNAME={name:?} is neither an IP address nor a name in /etc/hosts \
             (set HOSTNAME=0.0.0.0)"
        ))),
    }
}

fn lookup_etc_hosts(name: &str) -> Option<IpAddr> {
    let text = std::fs::read_to_string("/etc/hosts").ok()?;
    let mut v6 = None;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let Some(addr) = fields.next().and_then(|a| a.parse::<IpAddr>().ok()) else {
            continue;
        };
        if fields.any(|n| n.eq_ignore_ascii_case(name)) {
            if addr.is_ipv4() {
                return Some(addr);
            }
            v6.get_or_insert(addr);
        }
    }
    v6
}

// ---------------------------------------------------------------------------------------
// DATABASE_URL handling (without ever printing it)
// ---------------------------------------------------------------------------------------

struct DbUrl {
    /// The URL handed to the postgres crate: Prisma-only parameters removed.
    connect_url: String,
    /// `host:port/db` for logs.
    display: String,
    /// Target schema (from `?schema=`), `None` for `public`.
    schema: Option<String>,
    /// Password as written in the URL and decoded, for scrubbing error messages.
    secrets: Vec<String>,
}

impl DbUrl {
    fn parse(raw: &str) -> Result<DbUrl, String> {
        let raw = raw.trim();
        let lower = raw.to_ascii_lowercase();
        let scheme_len = if lower.starts_with("postgresql://") {
            "postgresql://".len()
        } else if lower.starts_with("postgres://") {
            "postgres://".len()
        } else {
            return Err("it must start with postgresql:// or postgres://".into());
        };
        let rest = &raw[scheme_len..];
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match before_query.find('/') {
            Some(i) => (&before_query[..i], &before_query[i + 1..]),
            None => (before_query, ""),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let mut secrets = Vec::new();
        if let Some((_, pw)) = userinfo.and_then(|u| u.split_once(':')) {
            if !pw.is_empty() {
                secrets.push(pw.to_string());
                let decoded = percent_decode(pw);
                if decoded != pw {
                    secrets.push(decoded);
                }
            }
        }

        let mut schema = None;
        let mut kept = Vec::new();
        if let Some(q) = query {
            for pair in q.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let key = percent_decode(k);
                if key == "password" && !v.is_empty() {
                    secrets.push(v.to_string());
                    secrets.push(percent_decode(v));
                }
                if key == "schema" {
                    let s = percent_decode(v);
                    if s.contains('\0') {
                        return Err("the schema parameter contains a NUL character".into());
                    }
                    schema = if s.is_empty() { None } else { Some(s) };
                } else if PRISMA_ONLY_PARAMS.contains(&key.as_str()) {
                    // Dropped: Prisma's, not libpq's.
                } else {
                    kept.push(pair);
                }
            }
        }
        let mut connect_url = format!("{}{}", &raw[..scheme_len], before_query);
        if !kept.is_empty() {
            connect_url.push('?');
            connect_url.push_str(&kept.join("&"));
        }
        let host_display = if hostport.is_empty() {
            "(default host)"
        } else {
            hostport
        };
        let display = format!("{}/{}", host_display, percent_decode(path));
        Ok(DbUrl {
            connect_url,
            display,
            schema,
            secrets,
        })
    }

    fn schema_name(&self) -> &str {
        self.schema.as_deref().unwrap_or("public")
    }

    /// Removes anything secret from a message (defence in depth: driver errors should not
    /// contain the password, but a log line must never show it).
    fn scrub(&self, msg: &str) -> String {
        let mut out = msg.to_string();
        for s in &self.secrets {
            if !s.is_empty() {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }

    fn config(&self) -> Result<postgres::Config, String> {
        let mut cfg: postgres::Config =
            self.connect_url.parse().map_err(|e: postgres::Error| {
                format!("DATABASE_URL is not usable: {}", self.scrub(&e.to_string()))
            })?;
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(DB_CONNECT_TIMEOUT);
        }
        if cfg.get_tcp_user_timeout().is_none() {
            cfg.tcp_user_timeout(Duration::from_secs(10));
        }
        cfg.keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        if cfg.get_application_name().is_none() {
            cfg.application_name("fresco-stand-in");
        }
        Ok(cfg)
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

// ---------------------------------------------------------------------------------------
// Database: connect, "migrations", health
// ---------------------------------------------------------------------------------------

/// Connects, retrying for up to 60 s (the database may still be starting); None
/// (after saying why) when it never answered.
fn connect_retrying(db: &DbUrl) -> Option<Client> {
    let deadline = Instant::now() + DB_RETRY_WINDOW;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match connect(db) {
            Ok(c) => return Some(c),
            Err(e) => {
                eprintln!("stand-in: database {} attempt {attempt} failed: {e}", db.display);
                if Instant::now() + DB_RETRY_SLEEP >= deadline {
                    eprintln!(
                        "stand-in: error: could not reach the database within {} s, giving up",
                        DB_RETRY_WINDOW.as_secs()
                    );
                    return None;
                }
                thread::sleep(DB_RETRY_SLEEP);
            }
        }
    }
}

fn connect(db: &DbUrl) -> Result<Client, String> {
    let cfg = db.config()?;
    cfg.connect(NoTls)
        .map_err(|e| db.scrub(&describe_pg_error(&e)))
}

fn describe_pg_error(e: &postgres::Error) -> String {
    use std::error::Error as _;
    let mut msg = e.to_string();
    if let Some(db) = e.as_db_error() {
        msg = format!("{}: {}", db.severity(), db.message());
    } else if let Some(src) = e.source() {
        let s = src.to_string();
        if !msg.contains(&s) {
            msg = format!("{msg}: {s}");
        }
    }
    msg
}

/// Stands for Fresco's Prisma migrations: idempotent, in the schema `?schema=` names.
fn migrate(client: &mut Client, db: &DbUrl, release: Release) -> Result<(), String> {
    let schema = db.schema_name();
    let s = quote_ident(schema);
    let err = |e: postgres::Error| db.scrub(&describe_pg_error(&e));

    // Check before creating: CREATE SCHEMA needs CREATE on the database even with
    // IF NOT EXISTS, and a tenant role usually only owns its schema.
    let exists = client
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
        .map_err(err)?
        .is_some();
    if !exists {
        client
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {s}"))
            .map_err(|e| {
                format!(
                    "schema {schema} does not exist and cannot be created: {}",
                    err(e)
                )
            })?;
    }
    let mut tx = client.transaction().map_err(err)?;
    if release.migrations_need_temp() {
        tx.batch_execute(
            "CREATE TEMP TABLE _app_settings_kv_migration (key text, value text) ON COMMIT DROP",
        )
        .map_err(|e| format!("migration app_settings_kv failed: {}", err(e)))?;
    }
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {s}.\"AppSettings\" (\
             key text PRIMARY KEY, \
             value text NOT NULL); \
         CREATE TABLE IF NOT EXISTS {s}.\"Interview\" (\
             id text PRIMARY KEY, \
             \"startTime\" timestamptz NOT NULL DEFAULT now());"
    ))
    .map_err(err)?;
    tx.commit().map_err(err)
}

/// Stands for Fresco's `initialize.ts`: records `initializedAt` once, in the schema
/// its queries use. Returns the recorded value.
fn initialize(client: &mut Client, db: &DbUrl, release: Release) -> Result<String, String> {
    let q = quote_ident(release.query_schema(db));
    let err = |e: postgres::Error| db.scrub(&describe_pg_error(&e));
    client
        .batch_execute(&format!(
            "INSERT INTO {q}.\"AppSettings\" (key, value) VALUES ('initializedAt', \
                 to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')) \
                 ON CONFLICT (key) DO NOTHING;"
        ))
        .map_err(err)?;
    let messages = client
        .simple_query(&format!(
            "SELECT value FROM {q}.\"AppSettings\" WHERE key = {}",
            quote_literal("initializedAt")
        ))
        .map_err(err)?;
    messages
        .iter()
        .find_map(|m| match m {
            postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .ok_or_else(|| "initializedAt was not recorded".to_owned())
}

struct Db {
    url: DbUrl,
    release: Release,
    client: Mutex<Option<Client>>,
}

impl Db {
    /// Reads the app settings on the connection; reconnects once if the connection was lost.
    fn healthy(&self) -> Result<(), String> {
        let mut guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_none_or(|c| c.is_closed()) {
            *guard = None;
            *guard = Some(connect(&self.url)?);
        }
        let Some(client) = guard.as_mut() else {
            return Err("no database connection".into());
        };
        // As Fresco's sign-in page, read the app's settings (schema-qualified: no
        // session state survives transaction pooling).
        let read = format!(
            "SELECT value FROM {}.\"AppSettings\" WHERE key = 'initializedAt'",
            quote_ident(self.release.query_schema(&self.url))
        );
        match client.simple_query(&read) {
            Ok(_) => Ok(()),
            Err(e) => {
                *guard = None;
                Err(self.url.scrub(&describe_pg_error(&e)))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Serve
// ---------------------------------------------------------------------------------------

fn install_signal_handlers() -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let name = if sig == SIGTERM { "SIGTERM" } else { "SIGINT" };
                println!("received {name}, shutting down");
                let _ = std::io::stdout().flush();
                process::exit(0);
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(())
}

fn serve() -> i32 {
    let started = Instant::now();
    if let Err(e) = install_signal_handlers() {
        eprintln!("stand-in: error: {e}");
        return 1;
    }
    println!("fresco-stand-in {} starting", env!("CARGO_PKG_VERSION"));
    eprintln!("stand-in: stderr channel ready");

    let settings = match load_settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("stand-in: configuration error: {e}");
            return 1;
        }
    };
    println!(
        "config: database {} schema {}, public url {}, listen {}",
        settings.db.display,
        settings.db.schema_name(),
        settings.public_url,
        SocketAddr::new(settings.bind_ip, settings.port)
    );

    // Migrations and initialisation fail the start at once, as Fresco's start script does.
    let Some(mut migrator) = connect_retrying(&settings.migrate_db) else {
        return 1;
    };
    if let Err(e) = migrate(&mut migrator, &settings.migrate_db, settings.release) {
        eprintln!("stand-in: error: migrations failed: {e}");
        return 1;
    }
    drop(migrator);
    println!("migrations applied in schema {}", settings.db.schema_name());
    let Some(mut client) = connect_retrying(&settings.db) else {
        return 1;
    };
    let initialized_at = match initialize(&mut client, &settings.db, settings.release) {
        Ok(at) => at,
        Err(e) => {
            eprintln!("stand-in: error: initialize failed: {e}");
            return 1;
        }
    };
    println!("initializedAt {initialized_at} (first-run setup at /setup)");

    // Fresco opens its port only after its migrations: wait out the rest of the delay.
    let elapsed = started.elapsed();
    if settings.startup_delay > elapsed {
        thread::sleep(settings.startup_delay - elapsed);
    }

    let addr = SocketAddr::new(settings.bind_ip, settings.port);
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("stand-in: error: cannot listen on {addr}: {e}");
            return 1;
        }
    };
    println!("listening on http://{addr}");

    let db = Arc::new(Db {
        url: settings.db,
        release: settings.release,
        client: Mutex::new(Some(client)),
    });
    let active = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let mut stream = match conn {
            Ok(s) => s,
            Err(e) => {
                eprintln!("stand-in: accept failed: {e}");
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTION_THREADS {
            active.fetch_sub(1, Ordering::SeqCst);
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = write_response(&mut stream, 503, "text/plain", "busy\n", &[], true);
            eprintln!("stand-in: too many connections, answered 503");
            continue;
        }
        let db = Arc::clone(&db);
        let active_in_thread = Arc::clone(&active);
        let spawned = thread::Builder::new().name("conn".into()).spawn(move || {
            handle_connection(stream, &db);
            active_in_thread.fetch_sub(1, Ordering::SeqCst);
        });
        if let Err(e) = spawned {
            active.fetch_sub(1, Ordering::SeqCst);
            eprintln!("stand-in: cannot start a connection thread: {e}");
        }
    }
    0
}

struct Request {
    method: String,
    path: String,
    /// The raw query string (after `?`, before `#`), without the `?`.
    query: String,
}

fn read_request(stream: &TcpStream) -> Result<Option<Request>, String> {
    let mut reader = BufReader::new(stream.take(MAX_REQUEST_HEAD as u64));
    let mut line = String::new();
    let n = reader
        .read_line(&mut line)
        .map_err(|e| format!("read failed: {e}"))?;
    if n == 0 {
        return Ok(None); // connection opened and closed without a request (port probe)
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("malformed request line {:?}", line.trim_end()));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(format!("unsupported protocol {version:?}"));
    }
    // Skip the headers; the stand-in needs none of them and reads no body.
    loop {
        let mut header = String::new();
        let n = reader
            .read_line(&mut header)
            .map_err(|e| format!("read failed: {e}"))?;
        if n == 0 || header == "\r\n" || header == "\n" {
            break;
        }
        if !header.ends_with('\n') {
            return Err("request head too large".into());
        }
    }
    let (path, query) = split_target(target);
    Ok(Some(Request {
        method: method.to_string(),
        path,
        query,
    }))
}

/// Splits a request target into its path and its raw query (the fragment is dropped).
fn split_target(target: &str) -> (String, String) {
    let without_fragment = target.split('#').next().unwrap_or("");
    match without_fragment.split_once('?') {
        Some((path, query)) => (path.to_string(), query.to_string()),
        None => (without_fragment.to_string(), String::new()),
    }
}

fn handle_connection(mut stream: TcpStream, db: &Db) {
    let _ = stream.set_read_timeout(Some(CLIENT_IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(CLIENT_IO_TIMEOUT));
    let req = match read_request(&stream) {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            eprintln!("stand-in: bad request: {e}");
            let _ = write_response(&mut stream, 400, "text/plain", "bad request\n", &[], true);
            return;
        }
    };
    if req.path.starts_with("/stand-in/") {
        // Stand-in-only routes: no request log line (tests count their exact output).
        let (status, body, extra) = stand_in_route(&req);
        if let Err(e) = write_response(&mut stream, status, "application/json", &body, &extra, true)
        {
            let _ = writeln!(io::stderr(), "stand-in: write failed: {e}");
        }
        return;
    }
    let head_only = req.method == "HEAD";
    let known = matches!(req.path.as_str(), "/" | "/dashboard" | "/signin" | "/setup")
        || (req.path == "/api/health" && db.release.has_health_route());
    let (status, ctype, body, extra): (u16, &str, String, Vec<(&str, &str)>) =
        if req.method != "GET" && !head_only {
            if known {
                (
                    405,
                    "text/plain",
                    "method not allowed\n".into(),
                    vec![("Allow", "GET, HEAD")],
                )
            } else {
                (404, "text/plain", "not found\n".into(), vec![])
            }
        } else {
            match req.path.as_str() {
                "/" => (
                    308,
                    "text/plain",
                    "/dashboard\n".into(),
                    vec![("Location", "/dashboard")],
                ),
                "/dashboard" => (
                    307,
                    "text/plain",
                    "/signin\n".into(),
                    vec![("Location", "/signin")],
                ),
                "/signin" => match db.healthy() {
                    Ok(()) => (
                        200,
                        "text/html; charset=utf-8",
                        page("Sign In", "Sign in to Fresco (stand-in)."),
                        vec![],
                    ),
                    Err(e) => {
                        eprintln!("stand-in: sign-in page cannot read its settings: {e}");
                        (500, "text/plain", "Internal Server Error\n".into(), vec![])
                    }
                },
                "/setup" => (
                    200,
                    "text/html; charset=utf-8",
                    page("Setup", "Create the administrator account (stand-in)."),
                    vec![],
                ),
                "/api/health" if db.release.has_health_route() => match db.healthy() {
                    Ok(()) => (
                        200,
                        "application/json",
                        "{\"status\":\"ok\"}".into(),
                        vec![],
                    ),
                    Err(e) => {
                        eprintln!("stand-in: health check failed: {e}");
                        (
                            503,
                            "application/json",
                            "{\"status\":\"error\"}".into(),
                            vec![],
                        )
                    }
                },
                _ => (404, "text/plain", "not found\n".into(), vec![]),
            }
        };
    let log_path: String = req
        .path
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    println!("{} {} {}", req.method, log_path, status);
    if let Err(e) = write_response(&mut stream, status, ctype, &body, &extra, !head_only) {
        eprintln!("stand-in: write failed: {e}");
    }
}

fn page(title: &str, text: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title} | Fresco</title></head>\
         <body><h1>{title}</h1><p>{text}</p></body></html>\n"
    )
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

fn write_response(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &str,
    extra: &[(&str, &str)],
    with_body: bool,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n",
        reason(status),
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if with_body {
        out.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&out)?;
    stream.flush()
}

// ---------------------------------------------------------------------------------------
// Stand-in-only routes: /stand-in/echo and /stand-in/burst (log-streaming tests, benchmarks)
// ---------------------------------------------------------------------------------------

const ECHO_MAX_LINES: u64 = 10_000;
const BURST_MAX_LINES: u64 = 5_000_000;
/// Output is written in chunks of whole lines of about this size. The stream is locked per
/// chunk, not for a whole burst, so request log lines (and with them the HTTP answers, the
/// Docker health check included) are never held up for longer than one chunk write; they can
/// only land between two whole lines.
const OUTPUT_CHUNK: usize = 64 * 1024;

/// Set while a burst runs (one at a time).
static BURST_RUNNING: AtomicBool = AtomicBool::new(false);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OutStream {
    Stdout,
    Stderr,
}

impl OutStream {
    fn name(self) -> &'static str {
        match self {
            OutStream::Stdout => "stdout",
            OutStream::Stderr => "stderr",
        }
    }

    /// Runs `f` with the stream locked (no other thread's output can come in between), then
    /// flushes.
    fn with_locked<T>(self, f: impl FnOnce(&mut dyn Write) -> io::Result<T>) -> io::Result<T> {
        match self {
            OutStream::Stdout => {
                let mut lock = io::stdout().lock();
                let out = f(&mut lock)?;
                lock.flush()?;
                Ok(out)
            }
            OutStream::Stderr => {
                let mut lock = io::stderr().lock();
                let out = f(&mut lock)?;
                lock.flush()?;
                Ok(out)
            }
        }
    }

    fn write_locked(self, bytes: &[u8]) -> io::Result<()> {
        self.with_locked(|w| w.write_all(bytes))
    }
}

#[derive(Debug, PartialEq, Eq)]
struct EchoParams {
    stream: OutStream,
    text: String,
    n: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BurstParams {
    stream: OutStream,
    n: u64,
}

/// Decodes an `application/x-www-form-urlencoded` component: `+` is a space, then `%XX`.
fn form_decode(s: &str) -> String {
    percent_decode(&s.replace('+', " "))
}

/// Splits a raw query into decoded `(key, value)` pairs, in order; `k` alone gives `(k, "")`.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

/// The value of `key` (the last one when repeated).
fn query_param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `stream`: absent means stdout; present, it must be `stdout` or `stderr`.
fn stream_param(pairs: &[(String, String)]) -> Result<OutStream, String> {
    match query_param(pairs, "stream") {
        None | Some("stdout") => Ok(OutStream::Stdout),
        Some("stderr") => Ok(OutStream::Stderr),
        Some(other) => Err(format!("stream must be stdout or stderr, got {other:?}")),
    }
}

fn count_param(pairs: &[(String, String)], default: Option<u64>, max: u64) -> Result<u64, String> {
    let raw = match (query_param(pairs, "n"), default) {
        (Some(v), _) => v,
        (None, Some(d)) => return Ok(d),
        (None, None) => return Err("n is required".into()),
    };
    match raw.parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "n must be a whole number from 1 to {max}, got {raw:?}"
        )),
    }
}

fn parse_echo(query: &str) -> Result<EchoParams, String> {
    let pairs = parse_query(query);
    let stream = stream_param(&pairs)?;
    let n = count_param(&pairs, Some(1), ECHO_MAX_LINES)?;
    let text = query_param(&pairs, "text").ok_or("text is required")?;
    if text.contains(['\n', '\r']) {
        return Err("text must not contain CR or LF (each line is exactly the text)".into());
    }
    Ok(EchoParams {
        stream,
        text: text.to_string(),
        n,
    })
}

fn parse_burst(query: &str) -> Result<BurstParams, String> {
    let pairs = parse_query(query);
    let stream = stream_param(&pairs)?;
    let n = count_param(&pairs, None, BURST_MAX_LINES)?;
    Ok(BurstParams { stream, n })
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// `addr=IP:PORT` (an address, not a name: the image resolves none).
fn parse_connect(query: &str) -> Result<SocketAddr, String> {
    let pairs = parse_query(query);
    let raw = query_param(&pairs, "addr").ok_or("addr is missing (IP:PORT)")?;
    raw.parse()
        .map_err(|_| format!("addr must be IP:PORT, not {raw:?}"))
}

/// Whether a TCP connection to `addr` opens within `CONNECT_TIMEOUT`, as a JSON body.
fn try_connect(addr: SocketAddr) -> String {
    match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
        Ok(_) => "{\"connected\":true}".to_string(),
        Err(e) => format!(
            "{{\"connected\":false,\"error\":{}}}",
            json_string(&e.to_string())
        ),
    }
}

/// Collects whole lines and hands them to `sink` in chunks of about `OUTPUT_CHUNK` bytes.
struct LineChunks<F: FnMut(&[u8]) -> io::Result<()>> {
    buf: Vec<u8>,
    sink: F,
}

impl<F: FnMut(&[u8]) -> io::Result<()>> LineChunks<F> {
    fn new(sink: F) -> Self {
        LineChunks {
            buf: Vec::with_capacity(OUTPUT_CHUNK + 256),
            sink,
        }
    }

    /// Appends one line (`fill` writes it without its newline).
    fn line(&mut self, fill: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
        fill(&mut self.buf);
        self.buf.push(b'\n');
        if self.buf.len() >= OUTPUT_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            (self.sink)(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// Appends the decimal form of `n` (faster than `write!` in a loop of millions).
fn push_decimal(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// The echo lines: `text` once, or `text i` for i = 1..=n when n > 1.
fn echo_lines<F: FnMut(&[u8]) -> io::Result<()>>(text: &str, n: u64, sink: F) -> io::Result<()> {
    let mut out = LineChunks::new(sink);
    for i in 1..=n {
        out.line(|b| {
            b.extend_from_slice(text.as_bytes());
            if n > 1 {
                b.push(b' ');
                push_decimal(b, i);
            }
        })?;
    }
    out.flush()
}

/// The burst lines `burst line i`, i = 1..=n (without the final `burst done n`).
fn burst_lines<F: FnMut(&[u8]) -> io::Result<()>>(n: u64, sink: F) -> io::Result<()> {
    let mut out = LineChunks::new(sink);
    for i in 1..=n {
        out.line(|b| {
            b.extend_from_slice(b"burst line ");
            push_decimal(b, i);
        })?;
    }
    out.flush()
}

fn json_error(msg: &str) -> String {
    format!("{{\"error\":{}}}", json_string(msg))
}

/// `msg` as a JSON string literal.
fn json_string(msg: &str) -> String {
    let mut escaped = String::with_capacity(msg.len());
    for c in msg.chars() {
        match c {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            c if (c as u32) < 0x20 => escaped.push_str(&format!("\\u{:04x}", c as u32)),
            c => escaped.push(c),
        }
    }
    format!("\"{escaped}\"")
}

/// Answers a `/stand-in/...` request: (status, JSON body, extra headers).
fn stand_in_route(req: &Request) -> (u16, String, Vec<(&'static str, &'static str)>) {
    let route = req.path.as_str();
    if !matches!(
        route,
        "/stand-in/echo" | "/stand-in/burst" | "/stand-in/connect"
    ) {
        return (404, json_error("not found"), vec![]);
    }
    if req.method != "GET" {
        return (
            405,
            json_error("method not allowed"),
            vec![("Allow", "GET")],
        );
    }
    if route == "/stand-in/connect" {
        return match parse_connect(&req.query) {
            Ok(addr) => (200, try_connect(addr), vec![]),
            Err(e) => (400, json_error(&e), vec![]),
        };
    }
    if route == "/stand-in/echo" {
        let p = match parse_echo(&req.query) {
            Ok(p) => p,
            Err(e) => return (400, json_error(&e), vec![]),
        };
        let stream = p.stream;
        match echo_lines(&p.text, p.n, |chunk| stream.write_locked(chunk)) {
            Ok(()) => (200, format!("{{\"written\":{}}}", p.n), vec![]),
            Err(e) => (
                500,
                json_error(&format!("cannot write to {}: {e}", stream.name())),
                vec![],
            ),
        }
    } else {
        let p = match parse_burst(&req.query) {
            Ok(p) => p,
            Err(e) => return (400, json_error(&e), vec![]),
        };
        if BURST_RUNNING
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return (409, json_error("a burst is already running"), vec![]);
        }
        let spawned = thread::Builder::new()
            .name("burst".into())
            .spawn(move || run_burst(p));
        match spawned {
            Ok(_) => (
                202,
                format!("{{\"started\":{},\"stream\":\"{}\"}}", p.n, p.stream.name()),
                vec![],
            ),
            Err(e) => {
                BURST_RUNNING.store(false, Ordering::SeqCst);
                (
                    503,
                    json_error(&format!("cannot start the burst thread: {e}")),
                    vec![],
                )
            }
        }
    }
}

fn run_burst(p: BurstParams) {
    let stream = p.stream;
    let result = burst_lines(p.n, |chunk| stream.write_locked(chunk)).and_then(|()| {
        // Clear the flag while holding the stream: a burst started from now on can only
        // write after this one's final line.
        stream.with_locked(|w| {
            BURST_RUNNING.store(false, Ordering::SeqCst);
            let mut done = b"burst done ".to_vec();
            push_decimal(&mut done, p.n);
            done.push(b'\n');
            w.write_all(&done)
        })
    });
    BURST_RUNNING.store(false, Ordering::SeqCst);
    if let Err(e) = result {
        let _ = writeln!(
            io::stderr(),
            "stand-in: burst to {} failed: {e}",
            stream.name()
        );
    }
}

// ---------------------------------------------------------------------------------------
// Health-check mode
// ---------------------------------------------------------------------------------------

fn healthcheck() -> i32 {
    let port = match port_from_env() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("healthcheck: {e}");
            return 1;
        }
    };
    let answer = match probe(port, "/api/health") {
        // Fresco 3.x has no health route: its sign-in page reads the database.
        Ok(line) if is_status(&line, "404") => probe(port, "/signin"),
        other => other,
    };
    match answer {
        Ok(status_line) if is_status(&status_line, "200") => {
            println!("healthcheck: {status_line}");
            0
        }
        Ok(status_line) => {
            eprintln!("healthcheck: unhealthy: {status_line}");
            1
        }
        Err(e) => {
            eprintln!("healthcheck: unhealthy: {e}");
            1
        }
    }
}

fn is_status(status_line: &str, code: &str) -> bool {
    let mut parts = status_line.split_whitespace();
    matches!(parts.next(), Some(v) if v.starts_with("HTTP/1.")) && parts.next() == Some(code)
}

fn probe(port: u16, path: &str) -> Result<String, String> {
    let deadline = Instant::now() + HEALTHCHECK_TIMEOUT;
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let remaining = |d: Instant| {
        d.checked_duration_since(Instant::now())
            .filter(|r| !r.is_zero())
            .ok_or_else(|| "timed out after 3 s".to_string())
    };
    let mut stream = TcpStream::connect_timeout(&addr, remaining(deadline)?)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_write_timeout(Some(remaining(deadline)?))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: fresco-stand-in-healthcheck\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    while !buf.contains(&b'\n') && buf.len() < 4096 {
        stream
            .set_read_timeout(Some(remaining(deadline)?))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return Err("timed out after 3 s waiting for the response".into())
            }
            Err(e) => return Err(format!("cannot read the response: {e}")),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let line = text.lines().next().unwrap_or("").trim().to_string();
    if line.is_empty() {
        return Err("empty response".into());
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_reports_whether_a_tcp_connection_opened() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        assert_eq!(try_connect(open), "{\"connected\":true}");
        drop(listener);
        let closed = try_connect(open);
        assert!(
            closed.starts_with("{\"connected\":false,\"error\":\""),
            "{closed}"
        );
        assert_eq!(
            parse_connect("addr=10.0.0.1%3A3000"),
            Ok("10.0.0.1:3000".parse().unwrap())
        );
        assert!(parse_connect("addr=example.org:80").is_err());
        assert!(parse_connect("").is_err());
    }

    #[test]
    fn parses_prisma_url_and_hides_password() {
        let u = DbUrl::parse("postgres://user:p%40ss@127.0.0.1:5432/db?schema=tenant_abc&connection_limit=3&sslmode=disable").unwrap();
        assert_eq!(u.schema.as_deref(), Some("tenant_abc"));
        assert_eq!(
            u.connect_url,
            "postgres://user:p%40ss@127.0.0.1:5432/db?sslmode=disable"
        );
        assert_eq!(u.display, "127.0.0.1:5432/db");
        assert_eq!(u.scrub("x p@ss y p%40ss"), "x *** y ***");
        assert!(DbUrl::parse("mysql://x").is_err());
        let p = DbUrl::parse("postgresql://u@[::1]/d").unwrap();
        assert_eq!(p.schema_name(), "public");
    }

    #[test]
    fn public_url_rules() {
        assert!(validate_public_url("https://a.example.com").is_ok());
        assert!(validate_public_url("http://localhost:8080/x").is_ok());
        assert!(validate_public_url("http://[::1]:80").is_ok());
        assert!(validate_public_url("ftp://a").is_err());
        assert!(validate_public_url("https://").is_err());
        assert!(validate_public_url("https://:80").is_err());
        assert!(validate_public_url("a.example.com").is_err());
        assert!(validate_public_url("http://a:99999").is_err());
    }

    #[test]
    fn quoting_and_decoding() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(percent_decode("a%2Fb%"), "a/b%");
        assert_eq!(percent_decode("%4"), "%4");
        assert!(is_status("HTTP/1.1 200 OK", "200"));
        assert!(!is_status("HTTP/1.1 503 Service Unavailable", "200"));
    }

    #[test]
    fn splits_targets_and_decodes_queries() {
        assert_eq!(
            split_target("/stand-in/echo?text=a#frag"),
            ("/stand-in/echo".to_string(), "text=a".to_string())
        );
        assert_eq!(
            split_target("/signin"),
            ("/signin".to_string(), String::new())
        );
        assert_eq!(split_target("/x?"), ("/x".to_string(), String::new()));
        assert_eq!(form_decode("a+b%2Bc%20d"), "a b+c d");
        assert_eq!(form_decode("caf%C3%A9"), "café");
        let q = parse_query("a=1&&b&c=x%3Dy&a=2");
        assert_eq!(
            q,
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), String::new()),
                ("c".to_string(), "x=y".to_string()),
                ("a".to_string(), "2".to_string()),
            ]
        );
        assert_eq!(query_param(&q, "a"), Some("2"));
        assert_eq!(query_param(&q, "zz"), None);
    }

    #[test]
    fn echo_parameters() {
        assert_eq!(
            parse_echo("text=hello+world%21").unwrap(),
            EchoParams {
                stream: OutStream::Stdout,
                text: "hello world!".into(),
                n: 1
            }
        );
        let p = parse_echo("stream=stderr&text=x&n=10000").unwrap();
        assert_eq!((p.stream, p.n), (OutStream::Stderr, 10000));
        assert_eq!(parse_echo("stream=stdout&text=").unwrap().text, "");
        assert!(parse_echo("stream=&text=x").is_err());
        assert!(parse_echo("stream=STDOUT&text=x").is_err());
        assert!(parse_echo("stream=both&text=x").is_err());
        assert!(parse_echo("n=2").is_err());
        assert!(parse_echo("text=x&n=0").is_err());
        assert!(parse_echo("text=x&n=10001").is_err());
        assert!(parse_echo("text=x&n=-1").is_err());
        assert!(parse_echo("text=x&n=").is_err());
        assert!(parse_echo("text=a%0Ab").is_err());
        assert!(parse_echo("text=a%0D").is_err());
    }

    #[test]
    fn burst_parameters() {
        assert_eq!(
            parse_burst("n=200000&stream=stderr").unwrap(),
            BurstParams {
                stream: OutStream::Stderr,
                n: 200000
            }
        );
        assert_eq!(parse_burst("n=5000000").unwrap().stream, OutStream::Stdout);
        assert!(parse_burst("").is_err());
        assert!(parse_burst("n=5000001").is_err());
        assert!(parse_burst("n=0").is_err());
        assert!(parse_burst("n=1e3").is_err());
        assert!(parse_burst("n=5&stream=nope").is_err());
    }

    fn collect(
        f: impl FnOnce(&mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()>,
    ) -> (String, usize) {
        let mut out = Vec::new();
        let mut chunks = 0;
        f(&mut |c: &[u8]| {
            assert!(c.ends_with(b"\n"), "chunks hold whole lines");
            chunks += 1;
            out.extend_from_slice(c);
            Ok(())
        })
        .unwrap();
        (String::from_utf8(out).unwrap(), chunks)
    }

    #[test]
    fn echo_and_burst_output() {
        let (one, _) = collect(|s| echo_lines("hi there", 1, s));
        assert_eq!(one, "hi there\n");
        let (three, _) = collect(|s| echo_lines("x", 3, s));
        assert_eq!(three, "x 1\nx 2\nx 3\n");
        let (empty, _) = collect(|s| echo_lines("", 1, s));
        assert_eq!(empty, "\n");

        let (burst, chunks) = collect(|s| burst_lines(100_000, s));
        assert!(chunks > 1, "a large burst is written in several chunks");
        let lines: Vec<&str> = burst.lines().collect();
        assert_eq!(lines.len(), 100_000);
        assert_eq!(lines[0], "burst line 1");
        assert_eq!(lines[9], "burst line 10");
        assert_eq!(lines[99_999], "burst line 100000");

        let mut b = Vec::new();
        for n in [0u64, 7, 10, 1234567890, u64::MAX] {
            b.clear();
            push_decimal(&mut b, n);
            assert_eq!(String::from_utf8(b.clone()).unwrap(), n.to_string());
        }
        assert_eq!(
            json_error("a \"b\"\n"),
            "{\"error\":\"a \\\"b\\\"\\u000a\"}"
        );
    }
}
