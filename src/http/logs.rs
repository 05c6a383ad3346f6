//! `GET /api/v1/tenants/{id}/logs`: a tenant container's output, as Fresco
//! wrote it, stdout and stderr kept apart. Without `follow`: JSON (or JSON Lines,
//! or a plain-text download). With `follow`: Server-Sent Events, chosen over a
//! WebSocket because the flow is one-way, passes through every proxy as plain
//! HTTP, and browsers resume it by themselves with `Last-Event-ID`. The Docker
//! request lives inside the response stream: when the client goes away, the
//! stream is dropped and the engine connection with it.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::caller::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiQuery, TenantPath};
use super::tenants::load_visible;
use super::ApiRouter;
use utoipa_axum::routes;
use crate::http::AppState;
use crate::domain::TenantId;
use crate::provision::runtime::{LogLine, LogRequest, LogStream};
use crate::provision::RunState;
use crate::telemetry::GaugeGuard;

/// Keepalive comments on idle streams, so proxies do not cut them.
pub const KEEPALIVE: Duration = Duration::from_secs(15);
const DEFAULT_TAIL: u64 = 1000;
const MAX_LINES: u64 = 100_000;
/// Lines fetched before "now" when a follow starts from now (see `logs`).
const FOLLOW_OVERLAP: u64 = 200;

pub fn router() -> ApiRouter {
    ApiRouter::new().routes(routes!(logs))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Only the last N lines (default 1000 without follow; all since `since` with follow).
    pub tail: Option<u64>,
    /// RFC 3339 time, or relative: `30s`, `10m`, `2h`, `1d`.
    pub since: Option<String>,
    /// RFC 3339 time, or relative (that long ago).
    pub until: Option<String>,
    /// `stdout`, `stderr` or `all` (default).
    pub stream: Option<String>,
    /// Prefix plain-text lines with their timestamps.
    pub timestamps: Option<bool>,
    /// Only lines containing this text.
    pub q: Option<String>,
    /// Keep the stream open (Server-Sent Events).
    pub follow: Option<bool>,
    /// `json` (default), `ndjson`, or `text` (a download).
    pub format: Option<String>,
}

/// One line of output.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LineView {
    /// Resume point: send it back as `Last-Event-ID`.
    pub id: String,
    pub timestamp: DateTime<Utc>,
    pub stream: LogStream,
    pub text: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LogsView {
    pub data: Vec<LineView>,
}

/// Parses RFC 3339 or a relative duration (`90s`, `10m`, `2h`, `1d`) into a time.
pub fn parse_time(field: &str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    let bad = || {
        ApiError::validation(
            field,
            "time",
            format!("{field} must be an RFC 3339 time or a duration like 30s, 10m, 2h, 1d"),
        )
    };
    let (digits, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => n,
        "m" => n.checked_mul(60).ok_or_else(bad)?,
        "h" => n.checked_mul(3600).ok_or_else(bad)?,
        "d" => n.checked_mul(86_400).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    chrono::Duration::try_seconds(seconds)
        .and_then(|d| Utc::now().checked_sub_signed(d))
        .ok_or_else(bad)
}

/// Where a reader is in a container's output: the last line's timestamp and how
/// many earlier lines share it (one write of several lines shares a timestamp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub nanos: i64,
    pub seq: u32,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{}-{}", self.nanos, self.seq)
    }

    pub fn parse(raw: &str) -> Option<Self> {
        let (nanos, seq) = raw.trim().split_once('-')?;
        Some(Self {
            nanos: nanos.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }

    fn time(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_nanos(self.nanos)
    }
}

/// Numbers lines by timestamp and drops the ones at or before a resume point.
struct Numbering {
    last: Option<Cursor>,
    after: Option<Cursor>,
}

impl Numbering {
    fn new(after: Option<Cursor>) -> Self {
        Self { last: None, after }
    }

    /// The line's cursor, or None when it was already delivered.
    fn number(&mut self, line: &LogLine) -> Option<Cursor> {
        let nanos = line.timestamp.timestamp_nanos_opt().unwrap_or(i64::MAX);
        let seq = match self.last {
            Some(c) if c.nanos == nanos => c.seq + 1,
            _ => 0,
        };
        let cursor = Cursor { nanos, seq };
        self.last = Some(cursor);
        match self.after {
            Some(a) if (cursor.nanos, cursor.seq) <= (a.nanos, a.seq) => None,
            _ => Some(cursor),
        }
    }
}

struct Filter {
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    q: Option<String>,
}

impl Filter {
    fn keeps(&self, line: &LogLine) -> bool {
        self.since.is_none_or(|s| line.timestamp >= s)
            && self.until.is_none_or(|u| line.timestamp <= u)
            && self.q.as_deref().is_none_or(|q| line.text.contains(q))
    }
}

fn view(line: LogLine, cursor: Cursor) -> LineView {
    LineView {
        id: cursor.encode(),
        timestamp: line.timestamp,
        stream: line.stream,
        text: line.text,
    }
}

/// A tenant container's output; `follow=true` streams it as Server-Sent Events.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/logs", operation_id = "tenants.getContainerLogs", tag = "tenants",
    params(("id" = uuid::Uuid, Path, description = "tenant id"), LogsQuery),
    responses(
        (status = 200, body = LogsView, description = "lines; `text/event-stream` with follow (events `line`, `restart`, `end`), `text/plain` with format=text, JSON Lines with format=ndjson"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn logs(
    State(state): State<AppState>,
    caller: Caller,
    path: TenantPath,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<LogsQuery>,
) -> Result<Response, ApiError> {
    let tenant = load_visible(&state, &caller, &path).await?;
    let (stdout, stderr) = match q.stream.as_deref().unwrap_or("all") {
        "all" => (true, true),
        "stdout" => (true, false),
        "stderr" => (false, true),
        _ => {
            return Err(ApiError::validation(
                "stream",
                "one_of",
                "stream must be stdout, stderr or all",
            ))
        }
    };
    let since = q
        .since
        .as_deref()
        .map(|s| parse_time("since", s))
        .transpose()?;
    let until = q
        .until
        .as_deref()
        .map(|s| parse_time("until", s))
        .transpose()?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(Cursor::parse);
    if q.tail.is_some_and(|t| t > MAX_LINES) {
        return Err(ApiError::validation(
            "tail",
            "range",
            format!("tail must be at most {MAX_LINES}"),
        ));
    }
    let follow = q.follow.unwrap_or(false);
    // `tail=0` while following means "from now on". The Docker request starts
    // only when the response body is first polled, so "now" is pinned to the
    // request's arrival: Docker is asked for a short tail (cheap: it reads from
    // the end of the log, where a `since` would make it scan the whole file) and
    // lines older than the request are dropped here.
    let pinned = matches!((follow, q.tail, since, resume), (true, Some(0), None, None));
    let (since, tail) = if pinned {
        (None, Some(FOLLOW_OVERLAP))
    } else {
        (since, q.tail)
    };
    let filter = Filter {
        since: if pinned { Some(Utc::now()) } else { since },
        until,
        q: q.q.clone().filter(|s| !s.is_empty()),
    };
    let request = LogRequest {
        follow: false,
        stdout,
        stderr,
        since: resume.map(|c| c.time()).or(since),
        until,
        tail: if resume.is_some() { None } else { tail },
    };
    let id = tenant.tenant_id();
    if follow {
        let shutdown = state.shutdown.clone().cancelled_owned();
        let follow = Follow::new(&state, id, request, filter, resume);
        let stream = futures::stream::unfold(follow, |mut f| async move {
            f.next().await.map(|e| (Ok::<_, Infallible>(e), f))
        });
        return Ok(Sse::new(stream.take_until(shutdown))
            .keep_alive(KeepAlive::new().interval(KEEPALIVE).text("keepalive"))
            .into_response());
    }
    let request = LogRequest {
        tail: request.tail.or(Some(DEFAULT_TAIL)),
        ..request
    };
    let mut numbering = Numbering::new(resume);
    let mut lines = Vec::new();
    let mut source = state.runtime.logs(id, request);
    while let Some(item) = source.next().await {
        let line = item.map_err(|e| ApiError::Internal(e.to_string()))?;
        if let Some(cursor) = numbering.number(&line) {
            if filter.keeps(&line) {
                lines.push(view(line, cursor));
            }
        }
        if lines.len() as u64 >= MAX_LINES {
            break;
        }
    }
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(LogsView { data: lines }).into_response()),
        "ndjson" => {
            let body: String = lines
                .iter()
                .filter_map(|l| serde_json::to_string(l).ok())
                .map(|l| l + "\n")
                .collect();
            Ok(([(CONTENT_TYPE, "application/x-ndjson")], body).into_response())
        }
        "text" => {
            let stamp = q.timestamps.unwrap_or(false);
            let body: String = lines
                .iter()
                .map(|l| {
                    if stamp {
                        format!("{} {}\n", l.timestamp.to_rfc3339(), l.text)
                    } else {
                        format!("{}\n", l.text)
                    }
                })
                .collect();
            let filename = format!(
                "{}-{}.log",
                tenant.subdomain,
                Utc::now().format("%Y%m%dT%H%M%SZ")
            );
            let disposition = format!("attachment; filename=\"{filename}\"");
            Ok((
                [
                    (CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
                    (CONTENT_DISPOSITION, disposition),
                ],
                body,
            )
                .into_response())
        }
        _ => Err(ApiError::validation(
            "format",
            "one_of",
            "format must be json, ndjson or text",
        )),
    }
}

/// A followed log: reopens the Docker stream when the container restarts, ends
/// with an `end` event when it stops for good.
struct Follow {
    state: AppState,
    tenant: TenantId,
    request: LogRequest,
    filter: Filter,
    numbering: Numbering,
    source: Option<BoxStream<'static, Result<LogLine, crate::provision::RuntimeError>>>,
    started_at: Option<DateTime<Utc>>,
    pending: VecDeque<Event>,
    done: bool,
    _open: GaugeGuard,
}

enum Settled {
    Running { restarted: bool },
    Stopped,
    Removed,
}

impl Follow {
    fn new(
        state: &AppState,
        tenant: TenantId,
        request: LogRequest,
        filter: Filter,
        resume: Option<Cursor>,
    ) -> Self {
        Self {
            _open: GaugeGuard::new(&state.telemetry.open_log_streams),
            state: state.clone(),
            tenant,
            request: LogRequest {
                follow: true,
                ..request
            },
            filter,
            numbering: Numbering::new(resume),
            source: None,
            started_at: None,
            pending: VecDeque::new(),
            done: false,
        }
    }

    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.done {
                return None;
            }
            if self.source.is_none() {
                if self.started_at.is_none() {
                    self.started_at = self
                        .state
                        .runtime
                        .inspect(self.tenant)
                        .await
                        .ok()
                        .flatten()
                        .and_then(|c| c.started_at);
                }
                let mut request = self.request.clone();
                if let Some(last) = self.numbering.last {
                    // Reopening: from the last delivered line's second on; the
                    // numbering drops what was already sent.
                    request.since = Some(last.time());
                    request.tail = None;
                    self.numbering = Numbering::new(Some(last));
                }
                self.source = Some(self.state.runtime.logs(self.tenant, request));
            }
            let item = match self.source.as_mut() {
                Some(source) => source.next().await,
                None => None,
            };
            match item {
                Some(Ok(line)) => {
                    let Some(cursor) = self.numbering.number(&line) else {
                        continue;
                    };
                    if !self.filter.keeps(&line) {
                        continue;
                    }
                    let data = json!({ "timestamp": line.timestamp, "stream": line.stream, "text": line.text });
                    return Some(
                        Event::default()
                            .event("line")
                            .id(cursor.encode())
                            .data(data.to_string()),
                    );
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "log stream broke");
                    self.source = None;
                    self.pending.push_back(
                        Event::default().event("error").data(
                            json!({ "message": "the log stream broke; reconnect to resume" })
                                .to_string(),
                        ),
                    );
                    self.done = true;
                }
                None => {
                    self.source = None;
                    match self.settle().await {
                        Settled::Running { restarted: true } => {
                            let message = "container restarted; following the new process";
                            self.pending.push_back(
                                Event::default()
                                    .event("restart")
                                    .data(json!({ "message": message }).to_string()),
                            );
                        }
                        Settled::Running { restarted: false } => {}
                        Settled::Stopped => {
                            let message =
                                "container stopped; its last lines stay readable without follow";
                            self.pending.push_back(Event::default().event("end").data(
                                json!({ "reason": "stopped", "message": message }).to_string(),
                            ));
                            self.done = true;
                        }
                        Settled::Removed => {
                            let message = "container removed";
                            self.pending.push_back(Event::default().event("end").data(
                                json!({ "reason": "removed", "message": message }).to_string(),
                            ));
                            self.done = true;
                        }
                    }
                }
            }
        }
    }

    /// After Docker ended the stream: did the container restart, stop or vanish?
    /// A crashed container may be restarted by its policy a moment later.
    async fn settle(&mut self) -> Settled {
        for _ in 0..20 {
            match self.state.runtime.inspect(self.tenant).await {
                Ok(None) => return Settled::Removed,
                Ok(Some(c)) if c.state == RunState::Running => {
                    let restarted = c.started_at != self.started_at;
                    self.started_at = c.started_at;
                    return Settled::Running { restarted };
                }
                // Restarting, or exited and perhaps about to be restarted: look again.
                Ok(Some(_)) => {}
                Err(e) => tracing::warn!(error = %e, "inspect while following logs failed"),
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        Settled::Stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(nanos: i64) -> LogLine {
        LogLine {
            timestamp: DateTime::from_timestamp_nanos(nanos),
            stream: LogStream::Stdout,
            text: String::new(),
        }
    }

    #[test]
    fn numbering_resumes_after_the_cursor_even_within_one_timestamp() {
        let mut first = Numbering::new(None);
        let cursors: Vec<Cursor> = [10, 20, 20, 20, 30]
            .iter()
            .map(|n| first.number(&line(*n)).unwrap())
            .collect();
        assert_eq!(cursors[2], Cursor { nanos: 20, seq: 1 });
        // Resume after the second line stamped 20: the third 20 and the 30 remain.
        let mut again = Numbering::new(Some(cursors[2]));
        let kept: Vec<Cursor> = [10, 20, 20, 20, 30]
            .iter()
            .filter_map(|n| again.number(&line(*n)))
            .collect();
        assert_eq!(kept, vec![cursors[3], cursors[4]]);
        assert_eq!(Cursor::parse(&cursors[3].encode()), Some(cursors[3]));
    }

    #[test]
    fn relative_and_absolute_times() {
        let ten = parse_time("since", "10m").unwrap();
        assert!((Utc::now() - ten).num_seconds() - 600 <= 1);
        assert!(parse_time("since", "2026-01-01T00:00:00Z").is_ok());
        for bad in ["", "10", "m", "10y", "-5m", "99999999999999999d"] {
            assert!(parse_time("since", bad).is_err(), "{bad}");
        }
    }
}
