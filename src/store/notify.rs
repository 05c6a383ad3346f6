//! The platform's NOTIFY channels and the one LISTEN loop that follows them.
//!
//! Two channels: `TENANT_CHANNEL` wakes the reconciler (the API sends a tenant
//! id when it records an intent); `ACTIVITY_CHANNEL` carries what changed about
//! a tenant (status, a deployment-log row, an alert), sent by the triggers of
//! the observability migration and fanned out to open event streams by
//! `Activity`. Notifications are only hints: readers go back to the tables, so
//! a dropped connection loses nothing but time.

use std::time::Duration;

use serde::Deserialize;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Wakes the reconciler; the payload is a tenant id.
pub const TENANT_CHANNEL: &str = "fresco_tenant_changes";

/// Tenant activity, sent by triggers; the payload is `{"tenantId","kind"}`.
pub const ACTIVITY_CHANNEL: &str = "fresco_tenant_activity";

/// How long to wait before listening again after a failure.
const RECONNECT_DELAY: Duration = Duration::from_secs(2);

/// Hands every payload sent on `channel` to `on_payload` until `shutdown`,
/// reconnecting (after a short pause) whenever the connection or LISTEN fails.
pub async fn listen(
    pool: &PgPool,
    channel: &str,
    shutdown: &CancellationToken,
    mut on_payload: impl FnMut(&str),
) {
    loop {
        match PgListener::connect_with(pool).await {
            Ok(mut listener) => match listener.listen(channel).await {
                Ok(()) => loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        message = listener.recv() => match message {
                            Ok(n) => on_payload(n.payload()),
                            Err(e) => {
                                tracing::warn!(channel, error = %e, "notification stream broke; reconnecting");
                                break;
                            }
                        },
                    }
                },
                Err(e) => tracing::warn!(channel, error = %e, "LISTEN failed; retrying"),
            },
            Err(e) => {
                tracing::warn!(channel, error = %e, "cannot listen for notifications; retrying")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(RECONNECT_DELAY) => {}
        }
    }
}

/// A change to some tenant, as a trigger reported it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub tenant_id: uuid::Uuid,
    pub kind: String,
}

/// Fans tenant activity out to every open event stream of this process.
#[derive(Debug, Clone)]
pub struct Activity {
    sender: broadcast::Sender<Change>,
}

impl Activity {
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(1024);
        Self { sender }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }

    /// Follows `ACTIVITY_CHANNEL` until `shutdown`.
    pub async fn run(self, pool: PgPool, shutdown: CancellationToken) {
        listen(&pool, ACTIVITY_CHANNEL, &shutdown, |payload| {
            if let Ok(change) = serde_json::from_str::<Change>(payload) {
                let _ = self.sender.send(change);
            }
        })
        .await
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}
