//! `GET /api/v1/tenants/{id}/events`: a tenant's status transitions, deployment
//! log rows and resource alerts as they happen (Server-Sent Events), so the
//! wizard's progress step and dashboards update without polling. Postgres
//! triggers NOTIFY on every change; `store::notify::Activity` fans them out.
//! Event ids are resume points (`d<deployment row>.e<event row>`): a reconnect
//! with `Last-Event-ID` replays what was missed from the tables.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::Event;
use axum::response::Response;
use serde_json::json;
use tokio::sync::broadcast;

use super::caller::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::TenantPath;
use super::streams::{self, StreamAccess};
use super::tenants::load_visible;
use super::ApiRouter;
use crate::domain::TenantId;
use crate::http::AppState;
use crate::store::notify::Change;
use crate::store::{deployments, tenants, usage};
use crate::telemetry::GaugeGuard;
use utoipa_axum::routes;

pub fn router() -> ApiRouter {
    ApiRouter::new().routes(routes!(events))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Resume {
    deployment: i64,
    event: i64,
}

impl Resume {
    fn parse(raw: &str) -> Option<Self> {
        let (d, e) = raw.trim().split_once('.')?;
        Some(Self {
            deployment: d.strip_prefix('d')?.parse().ok()?,
            event: e.strip_prefix('e')?.parse().ok()?,
        })
    }

    fn encode(&self) -> String {
        format!("d{}.e{}", self.deployment, self.event)
    }
}

struct Stream {
    state: AppState,
    tenant: TenantId,
    resume: Resume,
    receiver: broadcast::Receiver<Change>,
    pending: std::collections::VecDeque<Event>,
    last_status: Option<serde_json::Value>,
    started: bool,
    _open: GaugeGuard,
}

impl Stream {
    /// Everything new since the resume point, then the status if it changed.
    async fn catch_up(&mut self) {
        let pool = &self.state.pool;
        if let Ok(rows) = deployments::after(pool, self.tenant, self.resume.deployment).await {
            for row in rows {
                self.resume.deployment = row.id;
                let data = serde_json::to_string(&row).unwrap_or_default();
                self.pending.push_back(
                    Event::default()
                        .event("deployment")
                        .id(self.resume.encode())
                        .data(data),
                );
            }
        }
        if let Ok(rows) = usage::events_after(pool, self.tenant, self.resume.event).await {
            for row in rows {
                self.resume.event = row.id;
                let data = serde_json::to_string(&row).unwrap_or_default();
                self.pending.push_back(
                    Event::default()
                        .event("alert")
                        .id(self.resume.encode())
                        .data(data),
                );
            }
        }
        if let Ok(t) = tenants::get(pool, self.tenant).await {
            let status = json!({
                "status": t.status,
                "desiredState": t.desired_state,
                "currentAction": t.current_action,
                "progress": t.progress,
                "lastError": t.last_error,
                "resourceAlert": t.resource_alert,
            });
            if self.last_status.as_ref() != Some(&status) {
                self.last_status = Some(status.clone());
                self.pending
                    .push_back(Event::default().event("status").data(status.to_string()));
            }
        }
    }

    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if !self.started {
                self.started = true;
                self.catch_up().await;
                continue;
            }
            match self.receiver.recv().await {
                Ok(change) if change.tenant_id == self.tenant.0 => self.catch_up().await,
                Ok(_) => {}
                // Missed some notifications: the tables still have everything.
                Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up().await,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// Live status transitions, deployment log rows and resource alerts (SSE).
#[utoipa::path(get, path = "/api/v1/tenants/{id}/events", operation_id = "tenants.streamEvents", tag = "tenants",
    params(("id" = uuid::Uuid, Path, description = "tenant id")),
    responses((status = 200, description = "`text/event-stream`: `status`, `deployment` and `alert` events; resume with Last-Event-ID; `end` (reason `unauthorized`) when the caller loses access"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    path: TenantPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = load_visible(&state, &caller, &path).await?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(Resume::parse)
        .unwrap_or_default();
    let access = StreamAccess::open(&state, &caller, &headers, &tenant)?;
    let stream = Stream {
        _open: GaugeGuard::new(&state.telemetry.open_event_streams),
        receiver: state.activity.subscribe(),
        tenant: tenant.tenant_id(),
        resume,
        pending: Default::default(),
        last_status: None,
        started: false,
        state,
    };
    let events = futures::stream::unfold(
        stream,
        |mut s| async move { s.next().await.map(|e| (e, s)) },
    );
    Ok(streams::respond(access, events))
}

#[cfg(test)]
mod tests {
    use super::Resume;

    #[test]
    fn resume_points_round_trip() {
        let r = Resume {
            deployment: 42,
            event: 7,
        };
        assert_eq!(Resume::parse(&r.encode()), Some(r));
        assert_eq!(Resume::parse("garbage"), None);
    }
}
