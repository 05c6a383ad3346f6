//! `GET /metrics` (Prometheus text) behind a bearer token, and the middleware
//! that counts and times every request by route pattern and status.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::{ApiError, ErrorBody};
use super::ApiRouter;
use crate::http::AppState;
use utoipa_axum::routes;

pub fn router() -> ApiRouter {
    ApiRouter::new().routes(routes!(prometheus))
}

/// Compares two secrets without leaking where they differ through timing.
fn same_secret(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}

/// Platform metrics for Prometheus; `Authorization: Bearer <METRICS_TOKEN>`.
#[utoipa::path(get, path = "/metrics", operation_id = "platform.metrics", tag = "platform",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody, description = "METRICS_TOKEN is not set")))]
pub async fn prometheus(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let Some(token) = state
        .config
        .observe
        .metrics_token
        .as_deref()
        .filter(|t| !t.is_empty())
    else {
        return Err(ApiError::NotFound(
            "the metrics endpoint is off; set METRICS_TOKEN to enable it".into(),
        ));
    };
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !same_secret(given, token) {
        return Err(ApiError::Unauthorized);
    }
    if let Ok(counts) = crate::store::tenants::count_by_status(&state.pool).await {
        state.telemetry.tenants.reset();
        for (status, n) in counts {
            state
                .telemetry
                .tenants
                .with_label_values(&[status.as_str()])
                .set(n);
        }
    }
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.telemetry.render(),
    )
        .into_response())
}

pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [method.as_str(), route.as_str(), status.as_str()];
    state
        .telemetry
        .http_requests
        .with_label_values(&labels)
        .inc();
    state
        .telemetry
        .http_duration
        .with_label_values(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}
