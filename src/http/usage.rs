//! Tenant resource usage over HTTP: current use with an optional history series
//! (`tenants.getMetrics`), and a live stream of samples.

use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::Event;
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::caller::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::parse_time;
use super::extract::{ApiQuery, TenantPath};
use super::streams::{self, StreamAccess};
use super::tenants::load_visible;
use super::ApiRouter;
use crate::http::AppState;
use crate::store::usage::{self, UsagePoint};
use crate::telemetry::GaugeGuard;
use crate::usage::CurrentUsage;
use utoipa_axum::routes;

/// At most this many points per series; longer ranges are downsampled.
const MAX_POINTS: i64 = 300;

pub fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(get_metrics))
        .routes(routes!(stream_metrics))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Series start: RFC 3339 or relative (`1h`); default 1 hour ago.
    pub from: Option<String>,
    /// Series end; default now.
    pub to: Option<String>,
    /// Bucket width in seconds; default chosen to give at most 300 points.
    pub step: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = MetricsView)]
pub struct UsageView {
    /// Null when the container is not running.
    pub current: Option<CurrentUsage>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub step_seconds: i64,
    pub series: Vec<UsagePoint>,
}

/// Current use (CPU, memory, network, block I/O, pids) and its history.
#[utoipa::path(get, path = "/api/v1/tenants/{id}/metrics", operation_id = "tenants.getMetrics", tag = "tenants",
    params(("id" = uuid::Uuid, Path, description = "tenant id"), UsageQuery),
    responses((status = 200, body = UsageView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn get_metrics(
    State(state): State<AppState>,
    caller: Caller,
    path: TenantPath,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<Json<UsageView>, ApiError> {
    let tenant = load_visible(&state, &caller, &path).await?;
    let to =
        q.to.as_deref()
            .map(|t| parse_time("to", t))
            .transpose()?
            .unwrap_or_else(Utc::now);
    let from = q
        .from
        .as_deref()
        .map(|t| parse_time("from", t))
        .transpose()?
        .unwrap_or(to - chrono::Duration::hours(1));
    if from >= to {
        return Err(ApiError::validation(
            "from",
            "order",
            "from must be before to",
        ));
    }
    let span = (to - from).num_seconds().max(1);
    let min_step = (span + MAX_POINTS - 1) / MAX_POINTS;
    let step = match q.step {
        Some(s) if s < 1 => {
            return Err(ApiError::validation(
                "step",
                "minimum",
                "step must be at least 1 second",
            ))
        }
        Some(s) if s < min_step => {
            return Err(ApiError::validation(
                "step",
                "max_points",
                format!(
                "step must be at least {min_step} s for this range (at most {MAX_POINTS} points)"
            ),
            ))
        }
        Some(s) => s,
        None => min_step.max(state.usage.config().metrics_interval_secs as i64),
    };
    let series = usage::series(&state.pool, tenant.tenant_id(), from, to, step).await?;
    let current = state.usage.current(&tenant).await;
    Ok(Json(UsageView {
        current,
        from,
        to,
        step_seconds: step,
        series,
    }))
}

/// Current use every few seconds (Server-Sent Events, event `metrics`).
#[utoipa::path(get, path = "/api/v1/tenants/{id}/metrics/stream", operation_id = "tenants.streamMetrics", tag = "tenants",
    params(("id" = uuid::Uuid, Path, description = "tenant id")),
    responses((status = 200, description = "`text/event-stream` of `metrics` events (data: CurrentMetrics or null); `end` (reason `unauthorized`) when the caller loses access"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn stream_metrics(
    State(state): State<AppState>,
    caller: Caller,
    path: TenantPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = load_visible(&state, &caller, &path).await?;
    let access = StreamAccess::open(&state, &caller, &headers, &tenant)?;
    let every = Duration::from_secs(state.usage.config().stream_interval_secs.max(1));
    let guard = GaugeGuard::new(&state.telemetry.open_event_streams);
    let seed = (state, tenant, guard, true);
    let events = futures::stream::unfold(seed, move |(state, tenant, guard, first)| async move {
        if !first {
            tokio::time::sleep(every).await;
        }
        let current = state.usage.current(&tenant).await;
        let event = Event::default()
            .event("metrics")
            .data(json!(current).to_string());
        Some((event, (state, tenant, guard, false)))
    });
    Ok(streams::respond(access, events))
}
