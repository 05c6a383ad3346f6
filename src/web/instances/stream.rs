//! `GET /dashboard/stream` (`?tenant=<id>` for one instance's page): the live
//! status badges, as Server-Sent Events named `status-<tenant id>` whose data
//! is the badge partial, for htmx's `sse-swap`. Built on `state.activity` (the
//! triggers' NOTIFY fan-out): each change of one of the caller's tenants sends
//! its badge again, if it looks different. The session is checked again every
//! `STREAM_RECHECK_SECS`, like the API's streams (`http::streams`): once it is
//! gone (signed out, expired) the stream ends.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::broadcast;
use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};
use uuid::Uuid;

use super::{visible, Badge, BadgeFragment};
use crate::http::caller::Caller;
use crate::http::streams::StreamSlot;
use crate::http::{AppState, KEEPALIVE};
use crate::store::notify::Change;
use crate::store::tenants::{self, ListFilter, Tenant};
use crate::store::{sessions, StoreError};
use crate::web::error::WebError;
use crate::web::session::Member;

#[derive(Deserialize)]
pub struct StreamQuery {
    tenant: Option<String>,
    /// When the page read the tenants (Unix ms): badges not changed since are
    /// already on it, and are not swapped (nor announced) again.
    seen: Option<i64>,
}

struct Badges {
    state: AppState,
    user: Uuid,
    session: Uuid,
    /// One instance (its page), or all of the user's (the dashboard).
    only: Option<Uuid>,
    receiver: broadcast::Receiver<Change>,
    ticks: Interval,
    /// The badge last sent per tenant, so an unchanged one is not sent again.
    sent: HashMap<Uuid, String>,
    pending: VecDeque<Event>,
    started: bool,
    ended: bool,
    /// From the query: what the page already shows (first pass only).
    seen: Option<i64>,
    /// Held while the stream is open.
    _slot: StreamSlot,
}

impl Badges {
    /// Queues the badge of `t` if it differs from the one last sent.
    fn offer(&mut self, t: &Tenant) {
        let badge = Badge::of(t);
        let Ok(html) = (BadgeFragment { badge: &badge }).render() else {
            return;
        };
        if self.sent.get(&t.id) == Some(&html) {
            return;
        }
        // Unchanged since the page was rendered: the page has this badge.
        // (A second of slack against clock skew between the reads.)
        if self
            .seen
            .is_some_and(|seen| t.updated_at.timestamp_millis() < seen - 1000)
        {
            self.sent.insert(t.id, html);
            return;
        }
        self.pending.push_back(
            Event::default()
                .event(format!("status-{}", t.id))
                .data(html.trim()),
        );
        self.sent.insert(t.id, html);
    }

    /// Every watched tenant's badge (at the start, and after missed notices).
    async fn all(&mut self) -> Result<(), StoreError> {
        let found = match self.only {
            Some(id) => vec![tenants::get(&self.state.pool, crate::domain::TenantId(id)).await?],
            None => {
                let filter = ListFilter {
                    owner: Some(self.user),
                    ..Default::default()
                };
                tenants::list(&self.state.pool, &filter, 500, 0).await?.0
            }
        };
        found.iter().for_each(|t| self.offer(t));
        Ok(())
    }

    async fn changed(&mut self, id: Uuid) -> Result<(), StoreError> {
        if self.only.is_some_and(|only| only != id) {
            return Ok(());
        }
        let t = tenants::get(&self.state.pool, crate::domain::TenantId(id)).await?;
        // The dashboard shows the user's own; an instance page was checked when
        // the stream opened (admins may watch any).
        if self.only.is_some() || t.user_id == self.user {
            self.offer(&t);
        }
        Ok(())
    }

    /// Whether the session still stands: one read by primary key that never
    /// extends it.
    async fn still_signed_in(&self) -> bool {
        let tenant = self.only.unwrap_or_else(Uuid::nil);
        match sessions::recheck(&self.state.pool, self.session, tenant).await {
            Ok(Some((user, owner))) => {
                let caller = Caller {
                    user,
                    via: crate::http::caller::Via::Session(self.session),
                };
                self.only.is_none() || owner.is_some_and(|o| caller.may_see_owned_by(o))
            }
            Ok(None) => false,
            // Not knowing is not access; the browser reconnects and is checked afresh.
            Err(_) => false,
        }
    }

    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if self.ended {
                return None;
            }
            if !self.started {
                self.started = true;
                if let Err(e) = self.all().await {
                    tracing::warn!(error = %e, "badge stream: first read failed");
                }
                self.seen = None;
                continue;
            }
            let result = tokio::select! {
                change = self.receiver.recv() => match change {
                    Ok(c) => self.changed(c.tenant_id).await,
                    Err(broadcast::error::RecvError::Lagged(_)) => self.all().await,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = self.ticks.tick() => {
                    if !self.still_signed_in().await {
                        self.ended = true;
                        return Some(Event::default().event("end").data("signed out"));
                    }
                    Ok(())
                }
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "badge stream: reading a tenant failed");
            }
        }
    }
}

pub async fn stream(
    State(state): State<AppState>,
    Member(caller): Member,
    Query(q): Query<StreamQuery>,
) -> Result<Response, WebError> {
    let only = match q.tenant.as_deref() {
        Some(id) => Some(visible(&state, &caller, id).await?.id),
        None => None,
    };
    let Some(session) = caller.session_id() else {
        return Err(WebError::sign_in("/dashboard"));
    };
    // The same per-user cap as the API's streams: a page left open in many
    // tabs cannot hold connections without bound.
    let slot = StreamSlot::take(&state, &caller)?;
    let every = Duration::from_secs(state.config.streams.recheck_secs.max(1));
    let mut ticks = interval_at(Instant::now() + every, every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let shutdown = state.shutdown.clone().cancelled_owned();
    let badges = Badges {
        receiver: state.activity.subscribe(),
        state,
        user: caller.user.id,
        session,
        only,
        ticks,
        sent: HashMap::new(),
        pending: VecDeque::new(),
        started: false,
        ended: false,
        seen: q.seen,
        _slot: slot,
    };
    let events = futures::stream::unfold(badges, |mut b| async move {
        b.next().await.map(|e| (Ok::<_, Infallible>(e), b))
    });
    Ok(Sse::new(events.take_until(shutdown))
        .keep_alive(KeepAlive::new().interval(KEEPALIVE).text("keepalive"))
        .into_response())
}
