//! The `logs`, `tenants` and `metrics` commands: a client of the platform's own
//! HTTP API, authenticated with an API key, for people at a terminal and scripts.
//!
//! This module owns where the API address and key come from (flag, then
//! environment, then the config file), turning `<subdomain|id>` into a tenant id,
//! turning the API's error envelope into a message and an exit code, and following
//! a log stream over Server-Sent Events, resuming with `Last-Event-ID` when the
//! connection drops. Human output by default; `--json` prints the API's JSON.
//!
//! Exit codes: 0 done, 1 the API (or the network) said no, 2 the command line or
//! the configuration is wrong.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

const DEFAULT_URL: &str = "http://127.0.0.1:8080";
/// Relative to the home directory.
const DEFAULT_CONFIG: &str = ".config/fresco-platform/cli.conf";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// For every request except a followed log stream, which has no time limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Reconnects in a row, without an event in between, before `logs -f` gives up.
const MAX_RECONNECTS: u32 = 5;
/// A connection that lasted this long counts as working, events or not (a quiet
/// container behind a proxy that cuts long requests).
const STABLE_CONNECTION: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The API's largest page.
const PER_PAGE: u64 = 100;

/// Where the API is and how to authenticate; shared by every client command.
#[derive(Clone, clap::Args)]
pub struct ClientOptions {
    /// The platform's API [default: `url` in the config file, else http://127.0.0.1:8080].
    #[arg(
        long,
        env = "FRESCO_PLATFORM_URL",
        value_name = "URL",
        global = true,
        help_heading = "Connection"
    )]
    pub url: Option<String>,
    /// API key, sent as `Authorization: Bearer` [default: `api_key` in the config file].
    /// Prefer the environment or the config file: arguments are visible to other users.
    #[arg(
        long,
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
        long,
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
#[derive(Debug, clap::Args)]
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
#[derive(Debug, clap::Args)]
pub struct TenantsArgs {
    #[command(flatten)]
    pub client: ClientOptions,
    #[command(subcommand)]
    pub command: TenantsCommand,
}

#[derive(Debug, clap::Subcommand)]
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
#[derive(Debug, clap::Args)]
pub struct MetricsArgs {
    #[command(flatten)]
    pub client: ClientOptions,
    /// The tenant: its subdomain or its id.
    #[arg(value_name = "TENANT")]
    pub tenant: String,
}

/// Prints a tenant's container logs; returns the exit code.
pub async fn logs(args: LogsArgs) -> i32 {
    if !args.follow {
        return finish(run_logs(&args).await);
    }
    // Ctrl-C is how a follow normally ends: not an error.
    let interrupted = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = run_logs(&args) => finish(result),
        () = interrupted => 0,
    }
}

/// Lists tenants or acts on one; returns the exit code.
pub async fn tenants(args: TenantsArgs) -> i32 {
    finish(run_tenants(&args).await)
}

/// Prints a tenant's current resource use; returns the exit code.
pub async fn metrics(args: MetricsArgs) -> i32 {
    finish(run_metrics(&args).await)
}

fn finish(result: Result<(), Failure>) -> i32 {
    match result {
        Ok(()) | Err(Failure::OutputClosed) => 0,
        Err(failure) => {
            eprintln!("error: {failure}");
            failure.exit_code()
        }
    }
}

// ---------------------------------------------------------------------------
// Errors

#[derive(Debug, thiserror::Error)]
enum Failure {
    /// The command line or the configuration is wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The API answered with an error (exit 1).
    #[error("{0}")]
    Api(ApiFailure),
    /// The API could not be reached, answered something unexpected, or a tenant
    /// reference matched nothing (exit 1).
    #[error("{0}")]
    Failed(String),
    /// Whoever reads our stdout has gone (`… | head`): stop quietly.
    #[error("output closed")]
    OutputClosed,
}

impl Failure {
    fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_) => 2,
            Self::OutputClosed => 0,
            Self::Api(_) | Self::Failed(_) => 1,
        }
    }
}

/// A non-2xx answer, from the envelope `{"error":{"code","message"},"meta":{"requestId"}}`.
#[derive(Debug)]
struct ApiFailure {
    status: StatusCode,
    code: Option<String>,
    message: String,
    request_id: Option<String>,
    retry_after: Option<String>,
}

impl ApiFailure {
    async fn from_response(resp: Response) -> Self {
        let status = resp.status();
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let header_request_id = header("x-request-id");
        let retry_after = header(RETRY_AFTER.as_str());
        let text = resp.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let message = match body["error"]["message"].as_str() {
            Some(m) => m.to_owned(),
            // Not the platform's envelope (a proxy in between, say): show a bit of it.
            None if !text.trim().is_empty() => text.trim().chars().take(200).collect(),
            None => status
                .canonical_reason()
                .unwrap_or("request failed")
                .to_lowercase(),
        };
        Self {
            status,
            code: body["error"]["code"].as_str().map(str::to_owned),
            message,
            request_id: body["meta"]["requestId"]
                .as_str()
                .map(str::to_owned)
                .or(header_request_id),
            retry_after,
        }
    }
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [", self.message)?;
        if let Some(code) = &self.code {
            write!(f, "{code}, ")?;
        }
        write!(f, "HTTP {}", self.status.as_u16())?;
        if let Some(id) = &self.request_id {
            write!(f, ", request id {id}")?;
        }
        write!(f, "]")?;
        if let Some(secs) = &self.retry_after {
            write!(f, "; retry after {secs} s")?;
        }
        Ok(())
    }
}

/// The innermost cause of a transport error ("Connection refused", "operation timed out").
fn cause(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_owned();
    }
    let mut inner: &dyn std::error::Error = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

fn write_line(mut to: impl Write, line: &str) -> Result<(), Failure> {
    writeln!(to, "{line}").map_err(|e| match e.kind() {
        std::io::ErrorKind::BrokenPipe => Failure::OutputClosed,
        _ => Failure::Failed(format!("cannot write output: {e}")),
    })
}

fn out(line: &str) -> Result<(), Failure> {
    write_line(std::io::stdout().lock(), line)
}

fn err(line: &str) -> Result<(), Failure> {
    write_line(std::io::stderr().lock(), line)
}

// ---------------------------------------------------------------------------
// Settings and the HTTP client

#[derive(Debug, Default, PartialEq)]
struct FileSettings {
    url: Option<String>,
    api_key: Option<String>,
}

struct Api {
    base: String,
    key: String,
    http: reqwest::Client,
    json: bool,
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl ClientOptions {
    fn connect(&self) -> Result<Api, Failure> {
        let mut url = non_empty(&self.url);
        let mut key = non_empty(&self.api_key);
        let config = self.config_path();
        if url.is_none() || key.is_none() {
            if let Some((path, explicit)) = &config {
                let file = read_config(path, *explicit)?;
                url = url.or(file.url);
                key = key.or(file.api_key);
            }
        }
        let key = key.ok_or_else(|| {
            let file = match &config {
                Some((path, _)) => format!(" or put `api_key = …` in {}", path.display()),
                None => String::new(),
            };
            Failure::Usage(format!(
                "no API key: set FRESCO_API_KEY, pass --api-key{file}"
            ))
        })?;
        let base = base_url(url.as_deref().unwrap_or(DEFAULT_URL))?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("fresco-platform-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::Failed(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Api {
            base,
            key,
            http,
            json: self.json,
        })
    }

    /// The config file and whether it was asked for (a missing default file is fine).
    fn config_path(&self) -> Option<(PathBuf, bool)> {
        match &self.config {
            Some(path) => Some((path.clone(), true)),
            None => std::env::var_os("HOME")
                .filter(|home| !home.is_empty())
                .map(|home| (Path::new(&home).join(DEFAULT_CONFIG), false)),
        }
    }
}

fn base_url(url: &str) -> Result<String, Failure> {
    let trimmed = url.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed).map_err(|e| {
        Failure::Usage(format!(
            "the platform URL {trimmed:?} is not a URL ({e}); expected e.g. {DEFAULT_URL}"
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(Failure::Usage(format!(
            "the platform URL {trimmed:?} must be http:// or https:// with a host"
        )));
    }
    Ok(trimmed.to_owned())
}

fn read_config(path: &Path, explicit: bool) -> Result<FileSettings, Failure> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            return Ok(FileSettings::default())
        }
        Err(e) => {
            return Err(Failure::Usage(format!(
                "cannot read the config file {}: {e}",
                path.display()
            )))
        }
    };
    let settings = parse_config(&text, path)?;
    if settings.api_key.is_some() {
        warn_if_shared(path);
    }
    Ok(settings)
}

fn parse_config(text: &str, path: &Path) -> Result<FileSettings, Failure> {
    let mut settings = FileSettings::default();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The line itself is never echoed: it may hold the key.
        let Some((name, value)) = line.split_once('=') else {
            return Err(Failure::Usage(format!(
                "{}:{}: expected `name = value`",
                path.display(),
                n + 1
            )));
        };
        let value = unquote(value.trim()).to_owned();
        let value = (!value.is_empty()).then_some(value);
        match name.trim() {
            "url" => settings.url = value,
            "api_key" => settings.api_key = value,
            other => eprintln!(
                "warning: {}:{}: unknown setting `{other}` ignored (known: url, api_key)",
                path.display(),
                n + 1
            ),
        }
    }
    Ok(settings)
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

#[cfg(unix)]
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o044 != 0 {
            eprintln!(
                "warning: {} holds an API key and other users can read it; run `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path) {}

impl Api {
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
    }

    fn unreachable(&self, e: &reqwest::Error) -> Failure {
        Failure::Failed(format!(
            "cannot reach the platform at {}: {}",
            self.base,
            cause(e)
        ))
    }

    /// Sends with the usual time limit; a non-2xx answer becomes a `Failure::Api`.
    async fn send(&self, request: RequestBuilder) -> Result<Response, Failure> {
        let resp = request
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(Failure::Api(ApiFailure::from_response(resp).await))
        }
    }

    /// The answer's text (as sent, for `--json`) and its parsed value.
    async fn call(&self, request: RequestBuilder) -> Result<(String, Value), Failure> {
        let resp = self.send(request).await?;
        let text = resp.text().await.map_err(|e| {
            Failure::Failed(format!("the platform's answer broke off: {}", cause(&e)))
        })?;
        let value = serde_json::from_str(&text)
            .map_err(|e| Failure::Failed(format!("the platform's answer is not JSON ({e})")))?;
        Ok((text, value))
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<(String, Value), Failure> {
        self.call(self.request(Method::GET, path).query(query))
            .await
    }

    /// Prints the answer as is under `--json`.
    fn print_raw(&self, text: &str) -> Result<(), Failure> {
        out(text.trim_end())
    }
}

// ---------------------------------------------------------------------------
// Tenant references

/// A tenant the user named, by subdomain or id.
struct TenantRef {
    id: String,
    /// Known when the user gave a subdomain.
    subdomain: Option<String>,
}

impl TenantRef {
    fn name(&self) -> &str {
        self.subdomain.as_deref().unwrap_or(&self.id)
    }

    fn path(&self, rest: &str) -> String {
        format!("/api/v1/tenants/{}{rest}", self.id)
    }
}

/// A UUID is used as is; anything else is a subdomain looked up through the list.
async fn resolve(api: &Api, reference: &str) -> Result<TenantRef, Failure> {
    let reference = reference.trim();
    if reference.is_empty() {
        return Err(Failure::Usage(
            "no tenant given: name it by its subdomain or its id".to_owned(),
        ));
    }
    if let Ok(id) = uuid::Uuid::parse_str(reference) {
        return Ok(TenantRef {
            id: id.to_string(),
            subdomain: None,
        });
    }
    let mut matches = Vec::new();
    for page in 1.. {
        let (_, body) = api
            .get(
                "/api/v1/tenants",
                &[
                    ("search", reference.to_owned()),
                    ("perPage", PER_PAGE.to_string()),
                    ("page", page.to_string()),
                ],
            )
            .await?;
        let items = list_items(&body)?;
        matches.extend(
            items
                .iter()
                .filter(|t| t["subdomain"].as_str() == Some(reference))
                .cloned(),
        );
        if items.is_empty() || page * PER_PAGE >= body["meta"]["total"].as_u64().unwrap_or(0) {
            break;
        }
    }
    // A destroyed tenant keeps its row and frees its subdomain, so a live tenant and
    // destroyed ones may share it: the live one is meant, else the latest destroyed.
    matches.sort_by_key(|t| {
        (
            t["status"].as_str() != Some("destroyed"),
            t["createdAt"].as_str().unwrap_or_default().to_owned(),
        )
    });
    match matches.last().and_then(|t| t["id"].as_str()) {
        Some(id) => Ok(TenantRef {
            id: id.to_owned(),
            subdomain: Some(reference.to_owned()),
        }),
        None => Err(Failure::Failed(format!(
            "no tenant with subdomain {reference}"
        ))),
    }
}

fn list_items(body: &Value) -> Result<&Vec<Value>, Failure> {
    body["data"].as_array().ok_or_else(|| {
        Failure::Failed("unexpected answer from the platform: no `data` list".to_owned())
    })
}

// ---------------------------------------------------------------------------
// logs

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

fn log_query(args: &LogsArgs) -> Vec<(&'static str, String)> {
    let stream = match (args.stdout, args.stderr) {
        (true, false) => "stdout",
        (false, true) => "stderr",
        _ => "all",
    };
    let moment = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    let mut query = vec![("stream", stream.to_owned())];
    if let Some(n) = args.tail {
        query.push(("tail", n.to_string()));
    }
    if let Some(t) = &args.since {
        query.push(("since", moment(t)));
    }
    if let Some(t) = &args.until {
        query.push(("until", moment(t)));
    }
    if args.timestamps {
        query.push(("timestamps", "true".to_owned()));
    }
    if let Some(text) = &args.grep {
        query.push(("q", text.clone()));
    }
    if args.follow {
        query.push(("follow", "true".to_owned()));
    }
    query
}

#[derive(Debug, Deserialize)]
struct LogLine {
    #[serde(default)]
    timestamp: Option<String>,
    stream: String,
    text: String,
}

/// stdout lines to our stdout, stderr lines to our stderr, like `docker logs`.
fn print_log_line(line: &LogLine, timestamps: bool) -> Result<(), Failure> {
    let text = line.text.strip_suffix('\n').unwrap_or(&line.text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    let rendered = match (&line.timestamp, timestamps) {
        (Some(ts), true) => format!("{ts} {text}"),
        _ => text.to_owned(),
    };
    if line.stream == "stderr" {
        err(&rendered)
    } else {
        out(&rendered)
    }
}

async fn run_logs(args: &LogsArgs) -> Result<(), Failure> {
    let api = args.client.connect()?;
    let tenant = resolve(&api, &args.tenant).await?;
    let path = tenant.path("/logs");
    let query = log_query(args);
    if args.follow {
        return follow(&api, &path, &query, args.timestamps).await;
    }
    let (text, body) = api.get(&path, &query).await?;
    if api.json {
        return api.print_raw(&text);
    }
    for item in list_items(&body)? {
        let line: LogLine = serde_json::from_value(item.clone())
            .map_err(|e| Failure::Failed(format!("unexpected log line from the platform ({e})")))?;
        print_log_line(&line, args.timestamps)?;
    }
    Ok(())
}

/// How one connection of a followed stream ended.
enum StreamEnd {
    /// The server sent `end`: the container is gone or stopped.
    Finished,
    /// The connection broke; resume from the last event.
    Dropped(String),
}

struct FollowState {
    /// Cursor of the last event printed, sent back as `Last-Event-ID`.
    last_id: Option<String>,
    /// Failed connections since the stream last made progress.
    failures: u32,
    /// Reconnection delay asked for by the server (`retry:`).
    retry: Option<Duration>,
    timestamps: bool,
    json: bool,
}

async fn follow(
    api: &Api,
    path: &str,
    query: &[(&'static str, String)],
    timestamps: bool,
) -> Result<(), Failure> {
    let mut state = FollowState {
        last_id: None,
        failures: 0,
        retry: None,
        timestamps,
        json: api.json,
    };
    let mut connected = false;
    loop {
        // No time limit: a quiet container may not write for hours.
        let mut request = api
            .request(Method::GET, path)
            .query(query)
            .header(ACCEPT, "text/event-stream");
        if let Some(id) = &state.last_id {
            request = request.header("Last-Event-ID", id);
        }
        let opened = std::time::Instant::now();
        let end = match request.send().await {
            Ok(resp) if resp.status().is_success() => {
                connected = true;
                let end = read_events(resp, &mut state).await?;
                if opened.elapsed() >= STABLE_CONNECTION {
                    state.failures = 0;
                }
                end
            }
            // Only once the stream has worked is a failure worth retrying: at first it
            // means a wrong URL or a server that is down, and the user should know now.
            Ok(resp) if connected && resp.status().is_server_error() => {
                StreamEnd::Dropped(format!("HTTP {}", resp.status().as_u16()))
            }
            Ok(resp) => return Err(Failure::Api(ApiFailure::from_response(resp).await)),
            Err(e) if connected => StreamEnd::Dropped(cause(&e)),
            Err(e) => return Err(api.unreachable(&e)),
        };
        let reason = match end {
            StreamEnd::Finished => return Ok(()),
            StreamEnd::Dropped(reason) => reason,
        };
        if state.failures >= MAX_RECONNECTS {
            return Err(Failure::Failed(format!(
                "the log stream broke ({reason}) and {MAX_RECONNECTS} reconnects failed"
            )));
        }
        state.failures += 1;
        let delay = state.retry.unwrap_or_else(|| {
            FIRST_BACKOFF
                .saturating_mul(1 << (state.failures - 1))
                .min(MAX_BACKOFF)
        });
        err(&format!(
            "-- connection lost ({reason}); reconnecting ({}/{MAX_RECONNECTS})",
            state.failures
        ))?;
        tokio::time::sleep(delay).await;
    }
}

async fn read_events(resp: Response, state: &mut FollowState) -> Result<StreamEnd, Failure> {
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !content_type.starts_with("text/event-stream") {
        return Err(Failure::Failed(format!(
            "expected an event stream from the platform, got {content_type:?}"
        )));
    }
    // A fresh parser per connection: half an event from a broken one is dropped, and
    // the server resends it after `Last-Event-ID`.
    let mut parser = SseParser::default();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => return Ok(StreamEnd::Dropped(cause(&e))),
        };
        for event in parser.feed(&chunk) {
            // An `error` event is the server giving up on this connection: no progress.
            if event.event != "error" {
                state.failures = 0;
            }
            if let Some(id) = &event.id {
                state.last_id = Some(id.clone());
            }
            if handle_event(&event, state)? {
                return Ok(StreamEnd::Finished);
            }
        }
        if let Some(ms) = parser.retry_ms {
            state.retry = Some(Duration::from_millis(ms).min(MAX_BACKOFF));
        }
    }
    Ok(StreamEnd::Dropped(
        "the server closed the stream".to_owned(),
    ))
}

/// Prints one event; true when it ends the stream.
fn handle_event(event: &SseEvent, state: &FollowState) -> Result<bool, Failure> {
    let data: Value = match serde_json::from_str(&event.data) {
        Ok(data) => data,
        Err(_) => {
            err(&format!("-- skipped an unreadable {:?} event", event.event))?;
            return Ok(false);
        }
    };
    let ends = event.event == "end";
    if state.json {
        // The event's own JSON, with its name and cursor so a script can tell them apart.
        let mut value = match data {
            Value::Object(map) => Value::Object(map),
            other => json!({ "data": other }),
        };
        if let Value::Object(map) = &mut value {
            map.insert("event".to_owned(), Value::String(event.event.clone()));
            if let Some(id) = &event.id {
                map.insert("id".to_owned(), Value::String(id.clone()));
            }
        }
        out(&value.to_string())?;
        return Ok(ends);
    }
    match event.event.as_str() {
        "line" => match serde_json::from_value::<LogLine>(data) {
            Ok(line) => print_log_line(&line, state.timestamps)?,
            Err(e) => err(&format!("-- skipped an unreadable log line ({e})"))?,
        },
        "restart" | "end" | "error" => {
            let message = data["message"]
                .as_str()
                .or(data["reason"].as_str())
                .unwrap_or(event.event.as_str());
            err(&format!("-- {message}"))?;
        }
        // Events this client does not know are left out rather than guessed at.
        _ => {}
    }
    Ok(ends)
}

// ---------------------------------------------------------------------------
// Server-Sent Events

/// One dispatched event.
#[derive(Debug, PartialEq)]
struct SseEvent {
    event: String,
    data: String,
    /// The last `id:` seen on this connection, at or before this event.
    id: Option<String>,
}

/// An incremental parser of `text/event-stream` (the WHATWG rules): bytes may arrive
/// split anywhere, lines end in LF, CRLF or CR, a blank line dispatches.
#[derive(Debug, Default)]
struct SseParser {
    line: Vec<u8>,
    /// The last byte was CR: an LF right after it belongs to the same line end.
    after_cr: bool,
    started: bool,
    event: String,
    data: String,
    id: Option<String>,
    retry_ms: Option<u64>,
}

impl SseParser {
    fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut bytes = bytes;
        if !self.started && !bytes.is_empty() {
            self.started = true;
            bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        }
        let mut events = Vec::new();
        for &b in bytes {
            if std::mem::take(&mut self.after_cr) && b == b'\n' {
                continue;
            }
            match b {
                b'\n' => self.end_line(&mut events),
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut events);
                }
                _ => self.line.push(b),
            }
        }
        events
    }

    fn end_line(&mut self, events: &mut Vec<SseEvent>) {
        let raw = std::mem::take(&mut self.line);
        let line = String::from_utf8_lossy(&raw);
        if line.is_empty() {
            self.dispatch(events);
            return;
        }
        if line.starts_with(':') {
            return; // a comment: keepalive
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => {
                self.id = (!value.is_empty()).then(|| value.to_owned());
            }
            "retry" => {
                if let Ok(ms) = value.parse() {
                    self.retry_ms = Some(ms);
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, events: &mut Vec<SseEvent>) {
        let event = std::mem::take(&mut self.event);
        let mut data = std::mem::take(&mut self.data);
        if data.is_empty() {
            return;
        }
        data.pop(); // the newline after the last data line
        events.push(SseEvent {
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data,
            id: self.id.clone(),
        });
    }
}

// ---------------------------------------------------------------------------
// tenants

async fn run_tenants(args: &TenantsArgs) -> Result<(), Failure> {
    // Refuse before touching the network, so a forgotten flag costs nothing.
    if let TenantsCommand::Destroy {
        tenant,
        confirm: None,
    } = &args.command
    {
        return Err(Failure::Usage(format!(
            "refusing to destroy {tenant} without --confirm <its subdomain>: this deletes \
             its container, its database and every interview in it, and cannot be undone"
        )));
    }
    let api = args.client.connect()?;
    match &args.command {
        TenantsCommand::List { status, search } => list(&api, status, search).await,
        TenantsCommand::Get { tenant } => show(&api, tenant).await,
        TenantsCommand::Start { tenant } => act(&api, tenant, "start").await,
        TenantsCommand::Stop { tenant } => act(&api, tenant, "stop").await,
        TenantsCommand::Restart { tenant } => act(&api, tenant, "restart").await,
        TenantsCommand::Destroy { tenant, confirm } => {
            let tenant = resolve(&api, tenant).await?;
            let confirm = confirm.clone().unwrap_or_default();
            let request = api
                .request(Method::DELETE, &tenant.path(""))
                .json(&json!({ "confirm": confirm }));
            let (text, body) = api.call(request).await?;
            requested(&api, &tenant, "destroy", &text, &body)
        }
    }
}

async fn list(api: &Api, status: &Option<String>, search: &Option<String>) -> Result<(), Failure> {
    let mut rows = Vec::new();
    for page in 1.. {
        let mut query = vec![
            ("page", page.to_string()),
            ("perPage", PER_PAGE.to_string()),
        ];
        if let Some(s) = status {
            query.push(("status", s.clone()));
        }
        if let Some(s) = search {
            query.push(("search", s.clone()));
        }
        let (text, body) = api.get("/api/v1/tenants", &query).await?;
        let items = list_items(&body)?;
        if api.json {
            // Each page as the API sent it, one per line.
            api.print_raw(&text)?;
        }
        rows.extend(items.iter().map(|t| {
            ["id", "subdomain", "status", "url"].map(|k| t[k].as_str().unwrap_or("-").to_owned())
        }));
        if items.is_empty() || page * PER_PAGE >= body["meta"]["total"].as_u64().unwrap_or(0) {
            break;
        }
    }
    if api.json {
        return Ok(());
    }
    if rows.is_empty() {
        return out("no tenants");
    }
    let header = ["ID", "SUBDOMAIN", "STATUS", "URL"].map(str::to_owned);
    let mut widths = [0; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line = format!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        out(&line)?;
    }
    Ok(())
}

async fn show(api: &Api, reference: &str) -> Result<(), Failure> {
    let tenant = resolve(api, reference).await?;
    let (text, t) = api.get(&tenant.path(""), &[]).await?;
    if api.json {
        return api.print_raw(&text);
    }
    let s = |v: &Value| v.as_str().map(str::to_owned);
    let mut rows: Vec<(&str, String)> = vec![
        ("id", s(&t["id"]).unwrap_or_default()),
        ("subdomain", s(&t["subdomain"]).unwrap_or_default()),
        ("url", s(&t["url"]).unwrap_or_default()),
        (
            "status",
            match s(&t["desiredState"]) {
                Some(desired) => format!(
                    "{} (desired: {desired})",
                    s(&t["status"]).unwrap_or_default()
                ),
                None => s(&t["status"]).unwrap_or_default(),
            },
        ),
        ("image", s(&t["image"]).unwrap_or_default()),
    ];
    if let Some(action) = s(&t["currentAction"]) {
        rows.push(("in progress", action));
    }
    if let Some(error) = s(&t["lastError"]) {
        rows.push(("last error", error));
    }
    if let Some(state) = s(&t["container"]["state"]) {
        let mut container = state;
        if let Some(health) = s(&t["container"]["health"]) {
            container.push_str(&format!(", {health}"));
        }
        if let Some(since) = s(&t["container"]["startedAt"]) {
            container.push_str(&format!(", started {since}"));
        }
        rows.push(("container", container));
    }
    if let (Some(url), Some(deadline)) = (s(&t["setup"]["url"]), s(&t["setup"]["deadline"])) {
        rows.push(("setup", format!("{url} (open until {deadline})")));
    }
    if let Some(created) = s(&t["createdAt"]) {
        rows.push(("created", created));
    }
    if let Some(deployed) = s(&t["lastDeployedAt"]) {
        rows.push(("last deployed", deployed));
    }
    for (label, value) in rows {
        out(&format!("{label:<14}{value}"))?;
    }
    if let Some(logs) = t["recentDeployments"].as_array().filter(|l| !l.is_empty()) {
        out("recent deployments:")?;
        for entry in logs {
            let mut line = format!(
                "  {}  {} {}",
                s(&entry["createdAt"]).unwrap_or_default(),
                s(&entry["action"]).unwrap_or_default(),
                s(&entry["status"]).unwrap_or_default()
            );
            if let Some(error) = s(&entry["errorMessage"]) {
                line.push_str(&format!(": {error}"));
            }
            out(&line)?;
        }
    }
    Ok(())
}

async fn act(api: &Api, reference: &str, action: &str) -> Result<(), Failure> {
    let tenant = resolve(api, reference).await?;
    let request = api.request(Method::POST, &tenant.path(&format!("/{action}")));
    let (text, body) = api.call(request).await?;
    requested(api, &tenant, action, &text, &body)
}

/// The 202 of a lifecycle action: the reconciler does the work.
fn requested(
    api: &Api,
    tenant: &TenantRef,
    action: &str,
    text: &str,
    body: &Value,
) -> Result<(), Failure> {
    if api.json {
        return api.print_raw(text);
    }
    let name = body["subdomain"].as_str().unwrap_or(tenant.name());
    out(&format!("{action} requested for {name}"))
}

// ---------------------------------------------------------------------------
// metrics

async fn run_metrics(args: &MetricsArgs) -> Result<(), Failure> {
    let api = args.client.connect()?;
    let tenant = resolve(&api, &args.tenant).await?;
    let (text, body) = api.get(&tenant.path("/metrics"), &[]).await?;
    if api.json {
        return api.print_raw(&text);
    }
    let current = &body["current"];
    if current.is_null() {
        return out("no data (tenant not running)");
    }
    for line in metrics_lines(current) {
        out(&line)?;
    }
    Ok(())
}

fn metrics_lines(c: &Value) -> Vec<String> {
    let bytes = |k: &str| c[k].as_f64().map(format_bytes);
    let unknown = || "-".to_owned();
    let mut memory = bytes("memoryBytes").unwrap_or_else(unknown);
    if let Some(limit) = c["memoryLimitBytes"].as_f64().filter(|l| *l > 0.0) {
        memory.push_str(&format!(" of {}", format_bytes(limit)));
    }
    if let Some(pct) = c["memoryPercent"].as_f64() {
        memory.push_str(&format!(" ({pct:.1} %)"));
    }
    let pair = |a: &str, ka: &str, b: &str, kb: &str| {
        format!(
            "{a} {}, {b} {}",
            bytes(ka).unwrap_or_else(unknown),
            bytes(kb).unwrap_or_else(unknown)
        )
    };
    // Null until the sampler has two samples to compare.
    let mut cpu = c["cpuPercent"]
        .as_f64()
        .map(|p| format!("{p:.1} %"))
        .unwrap_or_else(|| "not measured yet".to_owned());
    if let Some(pct) = c["cpuOfLimitPercent"].as_f64() {
        cpu.push_str(&format!(" ({pct:.1} % of its limit)"));
    }
    let rows = [
        ("cpu", cpu),
        ("memory", memory),
        (
            "network",
            pair("received", "networkRxBytes", "sent", "networkTxBytes"),
        ),
        (
            "disk",
            pair("read", "blockReadBytes", "written", "blockWriteBytes"),
        ),
        (
            "processes",
            c["pids"]
                .as_u64()
                .map(|n| n.to_string())
                .unwrap_or_else(unknown),
        ),
        (
            "sampled at",
            c["sampledAt"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(unknown),
        ),
    ];
    rows.into_iter()
        .map(|(label, value)| format!("{label:<12}{value}"))
        .collect()
}

fn format_bytes(n: f64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024.0 {
        return format!("{n:.0} B");
    }
    let mut value = n;
    let mut unit = "B";
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event: &str, data: &str, id: Option<&str>) -> SseEvent {
        SseEvent {
            event: event.to_owned(),
            data: data.to_owned(),
            id: id.map(str::to_owned),
        }
    }

    #[test]
    fn sse_events_split_anywhere_across_chunks_come_out_whole() {
        let stream = b": keepalive\n\nevent: line\nid: c1\ndata: {\"text\":\"a\"}\n\n\
                       event: end\ndata: {\"reason\":\"stopped\"}\n\n";
        let expected = vec![
            event("line", "{\"text\":\"a\"}", Some("c1")),
            event("end", "{\"reason\":\"stopped\"}", Some("c1")),
        ];
        for size in 1..stream.len() {
            let mut parser = SseParser::default();
            let got: Vec<_> = stream
                .chunks(size)
                .flat_map(|chunk| parser.feed(chunk))
                .collect();
            assert_eq!(got, expected, "chunk size {size}");
        }
    }

    #[test]
    fn sse_multiple_data_lines_join_with_newlines_and_crlf_works() {
        let mut parser = SseParser::default();
        let mut got = parser.feed(b"data: one\r\ndata:two\r");
        assert!(got.is_empty());
        got.extend(parser.feed(b"\n\r\n"));
        assert_eq!(got, vec![event("message", "one\ntwo", None)]);
    }

    #[test]
    fn sse_event_without_blank_line_is_not_dispatched() {
        let mut parser = SseParser::default();
        assert!(parser.feed(b"event: line\nid: c9\ndata: {}\n").is_empty());
        // A comment-only block or an event with no data dispatches nothing either.
        let mut parser = SseParser::default();
        assert!(parser.feed(b":ping\n\nevent: restart\n\n").is_empty());
    }

    #[test]
    fn sse_retry_and_empty_id() {
        let mut parser = SseParser::default();
        let got = parser.feed(b"retry: 1500\nid: a\ndata: x\n\nid\ndata: y\n\n");
        assert_eq!(parser.retry_ms, Some(1500));
        assert_eq!(
            got,
            vec![
                event("message", "x", Some("a")),
                event("message", "y", None)
            ]
        );
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
    fn config_file_lines_and_errors_never_echo_values() {
        let path = Path::new("cli.conf");
        let parsed = parse_config(
            "# mine\nurl = https://fp.example.org/\n\napi_key = \"fp_secret\"\n",
            path,
        )
        .unwrap();
        assert_eq!(
            parsed,
            FileSettings {
                url: Some("https://fp.example.org/".to_owned()),
                api_key: Some("fp_secret".to_owned()),
            }
        );
        match parse_config("fp_secret_without_a_name\n", path) {
            Err(Failure::Usage(message)) => assert!(!message.contains("fp_secret")),
            other => panic!("{other:?}"),
        }
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

    #[test]
    fn base_url_must_be_http() {
        assert_eq!(
            base_url("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(matches!(base_url("127.0.0.1:8080"), Err(Failure::Usage(_))));
        assert!(matches!(base_url("ftp://x"), Err(Failure::Usage(_))));
    }

    #[test]
    fn api_failure_names_code_status_and_request_id() {
        let failure = ApiFailure {
            status: StatusCode::UNAUTHORIZED,
            code: Some("unauthorized".to_owned()),
            message: "send a valid API key".to_owned(),
            request_id: Some("r-1".to_owned()),
            retry_after: None,
        };
        assert_eq!(
            failure.to_string(),
            "send a valid API key [unauthorized, HTTP 401, request id r-1]"
        );
    }

    #[test]
    fn metrics_read_like_a_person_would_write_them() {
        let lines = metrics_lines(&json!({
            "cpuPercent": 3.25, "cpuOfLimitPercent": 6.5, "memoryBytes": 47_185_920u64, "memoryLimitBytes": 536_870_912u64,
            "memoryPercent": 8.79, "networkRxBytes": 1536, "networkTxBytes": 10,
            "blockReadBytes": 0, "blockWriteBytes": 4096, "pids": 7,
            "sampledAt": "2026-01-01T00:00:00Z"
        }));
        assert_eq!(lines[0], "cpu         3.2 % (6.5 % of its limit)");
        assert_eq!(lines[1], "memory      45.0 MiB of 512.0 MiB (8.8 %)");
        assert_eq!(lines[2], "network     received 1.5 KiB, sent 10 B");
        assert_eq!(lines[3], "disk        read 0 B, written 4.0 KiB");
        assert_eq!(lines[4], "processes   7");
    }
}
