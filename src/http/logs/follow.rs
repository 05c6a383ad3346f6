//! A followed log (Server-Sent Events): reopens the Docker stream when the
//! container restarts, announces the restart, and ends with an `end` event when
//! the container stops for good or is removed.

use std::collections::VecDeque;
use std::time::Duration;

use axum::response::sse::Event;
use axum::response::Response;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::json;

use super::cursor::{Cursor, Filter, Numbering};
use crate::domain::TenantId;
use crate::http::streams::{self, StreamAccess};
use crate::http::AppState;
use crate::provision::runtime::{LogLine, LogRequest};
use crate::provision::{RunState, RuntimeError};
use crate::telemetry::GaugeGuard;

/// The SSE response of a followed log; it ends at shutdown and when the caller
/// loses access (`streams`).
pub fn respond(
    state: &AppState,
    access: StreamAccess,
    tenant: TenantId,
    request: LogRequest,
    filter: Filter,
    resume: Option<Cursor>,
) -> Response {
    let follow = Follow::new(state, tenant, request, filter, resume);
    let stream = futures::stream::unfold(
        follow,
        |mut f| async move { f.next().await.map(|e| (e, f)) },
    );
    streams::respond(access, stream)
}

struct Follow {
    state: AppState,
    tenant: TenantId,
    request: LogRequest,
    filter: Filter,
    numbering: Numbering,
    source: Option<BoxStream<'static, Result<LogLine, RuntimeError>>>,
    started_at: Option<DateTime<Utc>>,
    pending: VecDeque<Event>,
    done: bool,
    _open: GaugeGuard,
}

/// What the container did after Docker ended a log stream.
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
                self.open().await;
            }
            let item = match self.source.as_mut() {
                Some(source) => source.next().await,
                None => None,
            };
            match item {
                Some(Ok(line)) => {
                    if let Some(event) = self.line_event(line) {
                        return Some(event);
                    }
                }
                Some(Err(e)) => self.broke(e),
                None => self.ended().await,
            }
        }
    }

    /// Opens the Docker stream: from the request at first, from the last
    /// delivered line's second when reopening (the numbering drops repeats).
    async fn open(&mut self) {
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
            request.since = Some(last.time());
            request.tail = None;
            self.numbering = Numbering::new(Some(last));
        }
        self.source = Some(self.state.runtime.logs(self.tenant, request));
    }

    /// A `line` event, unless the line was already delivered or is filtered out.
    fn line_event(&mut self, line: LogLine) -> Option<Event> {
        let cursor = self.numbering.number(&line)?;
        if !self.filter.keeps(&line) {
            return None;
        }
        let data = json!({ "timestamp": line.timestamp, "stream": line.stream, "text": line.text });
        Some(
            Event::default()
                .event("line")
                .id(cursor.encode())
                .data(data.to_string()),
        )
    }

    fn broke(&mut self, e: RuntimeError) {
        tracing::warn!(error = %e, "log stream broke");
        self.source = None;
        self.pending.push_back(
            Event::default().event("error").data(
                json!({ "message": "the log stream broke; reconnect to resume" }).to_string(),
            ),
        );
        self.done = true;
    }

    /// Docker ended the stream: go on after a restart, end after a stop or removal.
    async fn ended(&mut self) {
        self.source = None;
        let end = |reason: &str, message: &str| {
            Event::default()
                .event("end")
                .data(json!({ "reason": reason, "message": message }).to_string())
        };
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
                let message = "container stopped; its last lines stay readable without follow";
                self.pending.push_back(end("stopped", message));
                self.done = true;
            }
            Settled::Removed => {
                self.pending.push_back(end("removed", "container removed"));
                self.done = true;
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
