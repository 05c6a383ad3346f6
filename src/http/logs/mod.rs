//! `GET /api/v1/tenants/{id}/logs`: a tenant container's output, as Fresco
//! wrote it, stdout and stderr kept apart. Without `follow`: JSON (or JSON Lines,
//! or a plain-text download), written while it is read (`snapshot`). With `follow`: Server-Sent Events, chosen over a
//! WebSocket because the flow is one-way, passes through every proxy as plain
//! HTTP, and browsers resume it by themselves with `Last-Event-ID`. The Docker
//! request lives inside the response stream: when the client goes away, the
//! stream is dropped and the engine connection with it.

mod cursor;
mod follow;
mod snapshot;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::routes;

use super::caller::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{parse_time, ApiQuery, TenantPath};
use super::streams::StreamAccess;
use super::tenants::load_visible;
use super::{ApiRouter, AppState};
use crate::provision::runtime::{LogRequest, LogStream};
use crate::store::tenants::Tenant;
pub(crate) use cursor::Cursor;
use cursor::Filter;

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

/// What a logs request asks Docker for, and what it keeps of the answer.
struct Plan {
    request: LogRequest,
    filter: Filter,
    follow: bool,
}

/// Checks the query and turns it into a Docker request and a filter.
fn plan(q: &LogsQuery, resume: Option<Cursor>) -> Result<Plan, ApiError> {
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
    Ok(Plan {
        request,
        filter,
        follow,
    })
}

/// A tenant container's output; `follow=true` streams it as Server-Sent Events.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/logs", operation_id = "tenants.getContainerLogs", tag = "tenants",
    params(("id" = uuid::Uuid, Path, description = "tenant id"), LogsQuery),
    responses(
        (status = 200, body = LogsView, description = "lines; `text/event-stream` with follow (events `line`, `restart`, `end`; `end` has reason `stopped`, `removed` or `unauthorized`), `text/plain` with format=text, JSON Lines with format=ndjson"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn logs(
    State(state): State<AppState>,
    caller: Caller,
    path: TenantPath,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<LogsQuery>,
) -> Result<Response, ApiError> {
    let tenant = load_visible(&state, &caller, &path).await?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(Cursor::parse);
    let Plan {
        request,
        filter,
        follow,
    } = plan(&q, resume)?;
    let id = tenant.tenant_id();
    if follow {
        return open_follow(&state, &caller, &headers, &tenant, request, filter, resume);
    }
    let format = snapshot::Format::of(&q)?;
    snapshot::respond(
        &state,
        id,
        request,
        filter,
        resume,
        format,
        &tenant.subdomain,
    )
    .await
}

/// A followed log as Server-Sent Events, under the caller's stream slot and
/// access re-checks: the API's `follow=true` and the log viewer page's stream.
fn open_follow(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    tenant: &Tenant,
    request: LogRequest,
    filter: Filter,
    resume: Option<Cursor>,
) -> Result<Response, ApiError> {
    let access = StreamAccess::open(state, caller, headers, tenant)?;
    Ok(follow::respond(
        state,
        access,
        tenant.tenant_id(),
        request,
        filter,
        resume,
    ))
}

/// Every stream of the tenant's output after `resume` (the whole log without
/// one), followed: what `follow=true` answers, for the log viewer page. The
/// caller must already see the tenant (`load_visible`).
pub(crate) fn follow_all(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    tenant: &Tenant,
    resume: Option<Cursor>,
) -> Result<Response, ApiError> {
    let query = LogsQuery {
        follow: Some(true),
        ..Default::default()
    };
    let Plan {
        request, filter, ..
    } = plan(&query, resume)?;
    open_follow(state, caller, headers, tenant, request, filter, resume)
}

/// The last `tail` lines of every stream, each with its resume cursor: what
/// the API answers without `follow`, collected for a page to render.
pub(crate) async fn recent_lines(
    state: &AppState,
    tenant: &Tenant,
    tail: u64,
) -> Result<Vec<LineView>, ApiError> {
    let query = LogsQuery {
        tail: Some(tail),
        ..Default::default()
    };
    let Plan {
        request, filter, ..
    } = plan(&query, None)?;
    snapshot::collect(state, tenant.tenant_id(), request, filter)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
}
