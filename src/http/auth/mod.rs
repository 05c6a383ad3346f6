//! `/api/v1/auth`: sign-in sessions (`session`), the caller's profile
//! (`profile`), password change, strength and reset (`password`), and email
//! verification (`verification`). The helpers here (password hashing off the
//! async runtime, one hash per core at most; opening a session, emailed links)
//! are shared with the wizard.

pub(crate) mod password;
pub(crate) mod profile;
pub(crate) mod session;
pub(crate) mod verification;

pub(crate) use verification::send_verification_to;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::http::header::SET_COOKIE;
use axum::http::HeaderMap;
use serde::Serialize;
use tokio::sync::Semaphore;
use utoipa_axum::routes;

use super::caller::session_cookie;
use super::error::ApiError;
use super::{ApiRouter, AppState};
use crate::domain::password as rules;
use crate::mail::OutgoingMail;
use crate::store::audit::Origin;
use crate::store::sessions;

pub fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(session::login))
        .routes(routes!(session::logout))
        .routes(routes!(profile::me, profile::update_me))
        .routes(routes!(password::change_password))
        .routes(routes!(password::password_strength))
        .routes(routes!(password::request_reset))
        .routes(routes!(password::confirm_reset))
        .routes(routes!(verification::request_verification))
        .routes(routes!(verification::confirm_verification))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub message: String,
}

/// Argon2id takes 19 MiB and a core for each hash. One hash per core runs at
/// once, process-wide (the cores and the memory are the process's,
/// whichever request asks); a request that cannot start one within `HASH_WAIT`
/// is told to come back (503 + `Retry-After`) instead of queueing without bound.
static HASHING: LazyLock<HashGate> = LazyLock::new(|| {
    map_large_blocks_apart();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    HashGate::new(cores, HASH_WAIT)
});

/// glibc raises its mmap threshold after the first large free; from then on a
/// hash's 19 MiB (64-byte aligned) come from the heap and leave holes the next
/// hash cannot reuse: measured, 19 MiB of RSS kept per hash, even one at a
/// time. A fixed threshold gives each large block a mapping of its own,
/// returned to the system when freed.
fn map_large_blocks_apart() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: sets one allocator parameter; glibc takes its arena lock to do it.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

const HASH_WAIT: Duration = Duration::from_secs(2);

struct HashGate {
    permits: Arc<Semaphore>,
    wait: Duration,
}

impl HashGate {
    fn new(permits: usize, wait: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits.max(1))),
            wait,
        }
    }

    /// Runs `work` on the blocking pool once a permit is free. The permit goes with
    /// the work, so a request dropped mid-hash still holds it until done.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| ApiError::Busy {
                message: "the server is busy checking passwords; try again in a moment".into(),
                retry_after_secs: 1,
            })?
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let out = work();
            drop(permit);
            out
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
    }
}

pub async fn hash_password(password: String) -> Result<String, ApiError> {
    HASHING
        .run(move || rules::hash(&password))
        .await?
        .map_err(ApiError::Internal)
}

pub(super) async fn verify_password(
    password: String,
    hash: Option<String>,
) -> Result<bool, ApiError> {
    HASHING
        .run(move || {
            // Without a user, verify against a dummy hash: same cost, same answer time.
            let hash = hash.unwrap_or_else(|| rules::dummy_hash().to_owned());
            rules::verify(&password, &hash)
        })
        .await
}

/// Checks the password rules, naming the broken one.
pub fn check_password(password: &str, email: &str, field: &str) -> Result<(), ApiError> {
    rules::check(password, email).map_err(|e| ApiError::validation(field, e.rule(), e.to_string()))
}

/// Opens a session for the user: the cookie header to set and its expiry.
pub async fn open_session(
    state: &AppState,
    user_id: uuid::Uuid,
    remember: bool,
    origin: &Origin,
) -> Result<(HeaderMap, chrono::DateTime<chrono::Utc>), ApiError> {
    let accounts = &state.config.accounts;
    let ttl = if remember {
        chrono::Duration::days(accounts.session_remember_days)
    } else {
        chrono::Duration::hours(accounts.session_ttl_hours)
    };
    let session = sessions::create(
        &state.pool,
        user_id,
        remember,
        ttl,
        origin.ip.as_deref(),
        origin.user_agent.as_deref(),
    )
    .await?;
    let mut headers = HeaderMap::new();
    headers.insert(
        SET_COOKIE,
        session_cookie(state, &session.token, ttl.num_seconds()),
    );
    Ok((headers, session.expires_at))
}

/// Sends a mail off the request path: the answer does not wait for the SMTP
/// server, so its time says nothing about whether a mail was sent (whether an
/// account exists). A failed send is logged without the mail's content (it
/// holds tokens).
pub(crate) fn send_later(state: &AppState, mail: OutgoingMail) {
    let mailer = state.mailer.clone();
    let subject = mail.subject.clone();
    tokio::spawn(async move {
        if let Err(e) = mailer.send(mail).await {
            tracing::warn!(error = %e, subject = %subject, "mail not sent");
        }
    });
}

/// A link to a page of the web app carrying an emailed token. The token rides in
/// the fragment, which browsers never send: it stays out of access logs and
/// `Referer`; the page reads it and posts it in a JSON body.
pub(super) fn link(state: &AppState, path: &str, token: &str) -> String {
    format!(
        "{}/{path}#token={token}",
        state.config.accounts.platform_url.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn no_more_hashes_run_at_once_than_the_gate_has_permits() {
        let gate = Arc::new(HashGate::new(2, Duration::from_secs(10)));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (gate, running, most) = (gate.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    gate.run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap().is_ok(), "each waits its turn");
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_hash_that_cannot_start_in_time_is_refused_with_retry_after() {
        let gate = Arc::new(HashGate::new(1, Duration::from_millis(50)));
        let (release, held) = std::sync::mpsc::channel::<()>();
        let holder = tokio::spawn({
            let gate = gate.clone();
            async move { gate.run(move || held.recv()).await }
        });
        while gate.permits.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let refused = gate.run(|| ()).await;
        assert!(
            matches!(
                refused,
                Err(ApiError::Busy {
                    retry_after_secs: 1,
                    ..
                })
            ),
            "{refused:?}"
        );
        release.send(()).unwrap();
        assert!(holder.await.unwrap().is_ok());
        assert!(
            gate.run(|| ()).await.is_ok(),
            "free again once the hash is done"
        );
    }
}
