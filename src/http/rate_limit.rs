//! Every rate limit of the API, kept in memory: the general per-caller budget
//! (a middleware), login and password-reset attempts, signups, deploys and
//! lifecycle actions. Fixed windows; the platform runs as one process on one
//! host, so a process-local counter is the whole truth; a restart forgets.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::middleware::Next;
use axum::response::Response;

use super::error::ApiError;
use super::AppState;
use crate::store::audit::Origin;
use crate::store::users::hash_key;

pub struct RateLimiter {
    limit: u32,
    window: Duration,
    counters: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window: window.max(Duration::from_secs(1)),
            counters: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one hit for `key`; `Err(retry_after)` once the window's budget is spent.
    pub fn hit(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        if counters.len() > 100_000 {
            counters.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let entry = counters.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            return Err(self.window.saturating_sub(now.duration_since(entry.0)));
        }
        entry.1 += 1;
        Ok(())
    }

    /// `hit`, as the API's 429.
    pub fn check(&self, key: &str, what: &str) -> Result<(), ApiError> {
        self.hit(key).map_err(|retry| ApiError::RateLimited {
            message: format!("too many {what}; try again in {} s", retry.as_secs().max(1)),
            retry_after_secs: retry.as_secs().max(1),
        })
    }
}

/// The API's limiters, each rule a method: its budget and its key in one place.
pub struct Limiters {
    general: RateLimiter,
    login: RateLimiter,
    actions: RateLimiter,
}

fn ip(origin: &Origin) -> &str {
    origin.ip.as_deref().unwrap_or("-")
}

impl Limiters {
    pub fn new(cfg: &crate::config::RateLimitConfig) -> Self {
        Self {
            general: RateLimiter::new(cfg.general, Duration::from_secs(cfg.general_window_secs)),
            login: RateLimiter::new(cfg.login, Duration::from_secs(cfg.login_window_secs)),
            actions: RateLimiter::new(cfg.actions, Duration::from_secs(cfg.actions_window_secs)),
        }
    }

    /// A login or password-reset request: counted per client address and per email.
    pub fn login_attempt(&self, origin: &Origin, email: &str) -> Result<(), ApiError> {
        self.login_from(origin)?;
        self.login.check(
            &format!("email:{}", email.trim().to_lowercase()),
            "attempts for this account",
        )
    }

    /// A password-reset confirmation: counted per client address.
    pub fn login_from(&self, origin: &Origin) -> Result<(), ApiError> {
        self.login
            .check(&format!("ip:{}", ip(origin)), "attempts from this address")
    }

    /// A new signup session, per client address (on the login budget).
    pub fn signup(&self, origin: &Origin) -> Result<(), ApiError> {
        self.login.check(
            &format!("signup-ip:{}", ip(origin)),
            "signups from this address",
        )
    }

    /// A wizard deploy, per client address (on the actions budget).
    pub fn wizard_deploy(&self, origin: &Origin) -> Result<(), ApiError> {
        self.actions.check(
            &format!("deploy-ip:{}", ip(origin)),
            "deployments from this address",
        )
    }

    /// Something a signed-in user asks the platform to do (a deploy, a lifecycle
    /// action, an email), per user; `what` names it in the refusal.
    pub fn user_action(&self, user: uuid::Uuid, what: &str) -> Result<(), ApiError> {
        self.actions.check(&format!("user:{user}"), what)
    }
}

/// The general limit, per credential (a hash of it, never the credential) or per
/// client address for anonymous requests.
pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let credential = request
        .headers()
        .get(AUTHORIZATION)
        .or_else(|| request.headers().get(COOKIE))
        .map(|v| hex::encode(&hash_key(&String::from_utf8_lossy(v.as_bytes()))[..12]));
    let key = match credential {
        Some(c) => format!("cred:{c}"),
        None => format!(
            "ip:{}",
            super::client::ip_of(&state, &request).unwrap_or_default()
        ),
    };
    if let Err(e) = state.limits.general.check(&key, "requests") {
        return axum::response::IntoResponse::into_response(e);
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_budget_then_refuses_until_the_window_ends() {
        let limiter = RateLimiter::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(limiter.hit("a").is_ok());
        }
        let retry = limiter.hit("a").expect_err("fourth hit");
        assert!(retry <= Duration::from_secs(60) && retry > Duration::from_secs(58));
        assert!(limiter.hit("b").is_ok(), "keys are independent");
    }
}
