//! Long-lived event streams (followed logs, tenant events, usage samples): who
//! may keep one open, and how many. A stream is authorised when it opens, like
//! any request, and then again every `STREAM_RECHECK_SECS` (the keepalive
//! interval by default) with one read by unique keys. Once the session or key is
//! gone (logout, revocation, password reset, expiry) or the tenant is no longer
//! the caller's to see (an admin demoted), the stream ends with an `end` event,
//! reason `unauthorized`. Each user holds at most `STREAMS_PER_USER` streams; a
//! slot is taken when a stream opens and given back when it is dropped, so a
//! client that disconnects frees it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use serde_json::json;
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use uuid::Uuid;

use super::caller::{Caller, Credential, Via};
use super::error::ApiError;
use super::{AppState, KEEPALIVE};
use crate::store::tenants::Tenant;
use crate::store::{sessions, users, StoreError};

const ACCESS_ENDED: &str = "access ended (signed out, key revoked, password reset or role \
     changed); sign in again to reconnect";

/// The right to keep one stream open: the caller's credential to check again,
/// and the caller's slot.
pub struct StreamAccess {
    state: AppState,
    credential: Credential,
    via: Via,
    tenant: Uuid,
    _slot: Slot,
}

impl StreamAccess {
    /// Takes one of the caller's stream slots (429 when all are in use).
    pub fn open(
        state: &AppState,
        caller: &Caller,
        headers: &HeaderMap,
        tenant: &Tenant,
    ) -> Result<Self, ApiError> {
        let credential = caller.credential(headers).ok_or(ApiError::Unauthorized)?;
        let StreamSlot(slot) = StreamSlot::take(state, caller)?;
        Ok(Self {
            state: state.clone(),
            credential,
            via: caller.via,
            tenant: tenant.id,
            _slot: slot,
        })
    }

    /// Whether the credential is still live and the tenant still the caller's
    /// to see: one read by unique keys, which never extends a session.
    async fn still_allowed(&self) -> Result<bool, StoreError> {
        let pool = &self.state.pool;
        let found = match &self.credential {
            Credential::Session(id) => sessions::recheck(pool, *id, self.tenant).await?,
            Credential::ApiKey(hash) => users::recheck_api_key(pool, hash, self.tenant).await?,
        };
        Ok(found.is_some_and(|(user, owner)| {
            let caller = Caller {
                user,
                via: self.via,
            };
            owner.is_some_and(|owner| caller.may_see_owned_by(owner))
        }))
    }

    /// The last event of the stream, when the caller may no longer watch it.
    async fn lost(&self) -> Option<Event> {
        let (name, data) = match self.still_allowed().await {
            Ok(true) => return None,
            Ok(false) => (
                "end",
                json!({ "reason": "unauthorized", "message": ACCESS_ENDED }),
            ),
            // Not knowing is not access: the client reconnects, which checks afresh.
            Err(e) => {
                tracing::warn!(error = %e, "re-checking a stream's access failed");
                (
                    "error",
                    json!({ "message": "could not check access to this stream; reconnect to resume" }),
                )
            }
        };
        Some(Event::default().event(name).data(data.to_string()))
    }
}

/// The SSE response for `events`: keepalive comments, the end at shutdown, and
/// the end once the caller loses access.
pub fn respond<S>(access: StreamAccess, events: S) -> Response
where
    S: Stream<Item = Event> + Send + 'static,
{
    let shutdown = access.state.shutdown.clone().cancelled_owned();
    let every = Duration::from_secs(access.state.config.streams.recheck_secs.max(1));
    let mut ticks = interval_at(Instant::now() + every, every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let guarded = Guarded {
        events: events.boxed(),
        access,
        ticks,
        ended: false,
    };
    let stream = futures::stream::unfold(guarded, |mut g| async move {
        g.next().await.map(|e| (Ok::<_, Infallible>(e), g))
    });
    Sse::new(stream.take_until(shutdown))
        .keep_alive(KeepAlive::new().interval(KEEPALIVE).text("keepalive"))
        .into_response()
}

struct Guarded {
    events: BoxStream<'static, Event>,
    access: StreamAccess,
    ticks: tokio::time::Interval,
    ended: bool,
}

impl Guarded {
    /// The next event of the stream, unless a re-check ends it first. Waiting
    /// for the next event is cancel-safe: a stream keeps its own progress.
    async fn next(&mut self) -> Option<Event> {
        if self.ended {
            return None;
        }
        loop {
            tokio::select! {
                event = self.events.next() => return event,
                _ = self.ticks.tick() => {}
            }
            if let Some(end) = self.access.lost().await {
                self.ended = true;
                return Some(end);
            }
        }
    }
}

/// Open streams per user, for the whole process. It lives here rather than in
/// `AppState` so the count is one place; user ids are unique, so two platforms
/// in one process (the tests) do not share a count.
static OPEN: LazyLock<Mutex<HashMap<Uuid, u32>>> = LazyLock::new(Default::default);

/// One of a user's stream slots, for a stream that is not about one tenant
/// (the dashboard's badges); given back on drop.
pub struct StreamSlot(Slot);

impl StreamSlot {
    /// Takes one of the caller's `STREAMS_PER_USER` slots (429 when all are in use).
    pub fn take(state: &AppState, caller: &Caller) -> Result<Self, ApiError> {
        let limit = state.config.streams.per_user;
        Slot::take(caller.user.id, limit)
            .map(Self)
            .ok_or_else(|| ApiError::RateLimited {
                message: format!(
                    "too many open streams: at most {limit} per user; close one and try again"
                ),
                retry_after_secs: KEEPALIVE.as_secs(),
            })
    }
}

/// One of a user's stream slots, given back on drop.
struct Slot(Uuid);

impl Slot {
    fn take(user: Uuid, limit: u32) -> Option<Self> {
        let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(user).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Self(user))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.0) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Slot;

    #[test]
    fn slots_are_counted_per_user_and_freed_on_drop() {
        let (alice, bob) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let held: Vec<Slot> = (0..3).map(|_| Slot::take(alice, 3).unwrap()).collect();
        assert!(Slot::take(alice, 3).is_none(), "a fourth slot");
        assert!(
            Slot::take(bob, 3).is_some(),
            "another user has slots of his own"
        );
        drop(held);
        assert!(
            Slot::take(alice, 3).is_some(),
            "dropped slots are free again"
        );
    }
}
