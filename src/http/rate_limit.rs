//! Every rate limit of the API, kept in memory: the general budget (a
//! middleware: per verified user, else per client address), login attempts,
//! password resets, signups and their password steps, deploys and lifecycle
//! actions. Fixed windows; the platform runs as one process on one host, so a
//! process-local counter is the whole truth; a restart forgets.
//!
//! Every table here holds at most `RATE_LIMIT_MAX_KEYS` keys, each stored as a
//! keyed 64-bit hash whatever its length, so a flood of new keys (addresses,
//! emails, made-up credentials) costs a bounded amount of memory.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::caller::session_token;
use super::error::ApiError;
use super::AppState;
use crate::config::RateLimitConfig;
use crate::store::audit::Origin;

/// The longest an email address can be (RFC 5321); a longer one is refused
/// before it becomes a key.
const MAX_EMAIL: usize = 254;

/// How long a credential that checked out keys the general budget by its user.
const VERIFIED_TTL: Duration = Duration::from_secs(600);

/// Step-1 submissions are counted over a day, longer than any signup session.
const SIGNUP_PASSWORD_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Keys that live for `ttl` from when they were first seen, at most `cap` of
/// them. `order` holds each live key once, oldest first, so expired keys leave
/// from its front on every write, and when the table is full the oldest key
/// leaves early (its window was the nearest to ending anyway).
struct Expiring<V> {
    ttl: Duration,
    cap: usize,
    hasher: RandomState,
    entries: HashMap<u64, (Instant, V)>,
    order: VecDeque<(Instant, u64)>,
}

impl<V> Expiring<V> {
    fn new(ttl: Duration, cap: usize) -> Self {
        Self {
            ttl,
            cap: cap.max(1),
            hasher: RandomState::new(),
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn id(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn sweep(&mut self, now: Instant) {
        while let Some(&(start, id)) = self.order.front() {
            if now.saturating_duration_since(start) < self.ttl {
                break;
            }
            self.order.pop_front();
            self.entries.remove(&id);
        }
    }

    /// The live entry for `id`: when it started, and its value.
    fn get(&mut self, id: u64, now: Instant) -> Option<&mut (Instant, V)> {
        self.sweep(now);
        self.entries.get_mut(&id)
    }

    /// The live entry for `id`, started now with `fresh` if there is none.
    fn entry(&mut self, id: u64, now: Instant, fresh: impl FnOnce() -> V) -> &mut (Instant, V) {
        self.sweep(now);
        if !self.entries.contains_key(&id) {
            while self.entries.len() >= self.cap {
                match self.order.pop_front() {
                    Some((_, oldest)) => self.entries.remove(&oldest),
                    None => break,
                };
            }
            self.order.push_back((now, id));
        }
        self.entries.entry(id).or_insert_with(|| (now, fresh()))
    }
}

pub struct RateLimiter {
    limit: u32,
    window: Duration,
    counters: Mutex<Expiring<u32>>,
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration, max_keys: usize) -> Self {
        let window = window.max(Duration::from_secs(1));
        Self {
            limit: limit.max(1),
            window,
            counters: Mutex::new(Expiring::new(window, max_keys)),
        }
    }

    /// Counts one hit for `key`; `Err(retry_after)` once the window's budget is spent.
    pub fn hit(&self, key: &str) -> Result<(), Duration> {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        // Read under the lock, so the table sees time move forward only.
        let now = Instant::now();
        self.count(&mut counters, key, now)
    }

    fn count(&self, counters: &mut Expiring<u32>, key: &str, now: Instant) -> Result<(), Duration> {
        let id = counters.id(key.as_bytes());
        let (start, count) = counters.entry(id, now, || 0);
        if *count >= self.limit {
            return Err(self.window.saturating_sub(now.duration_since(*start)));
        }
        *count += 1;
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
    reset: RateLimiter,
    signup_passwords: RateLimiter,
    actions: RateLimiter,
    support: RateLimiter,
    /// Credentials that checked out lately, and whose they are.
    verified: Mutex<Expiring<Uuid>>,
}

/// The client address as a key; IPv6 by its /64, the block one host is given.
fn address(ip: Option<&str>) -> String {
    match ip.and_then(|ip| ip.parse::<IpAddr>().ok()) {
        Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let [a, b, c, d, ..] = v6.segments();
            format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
        }
        Some(IpAddr::V6(v6)) => v6.to_canonical().to_string(),
        Some(v4) => v4.to_string(),
        None => "-".to_owned(),
    }
}

fn ip(origin: &Origin) -> String {
    address(origin.ip.as_deref())
}

/// An email as a key: trimmed and lowercased; longer than an address can be
/// is refused here, before it costs anything.
fn email_key(email: &str) -> Result<String, ApiError> {
    let email = email.trim();
    if email.len() > MAX_EMAIL {
        return Err(ApiError::validation(
            "email",
            "max_length",
            format!("email must be at most {MAX_EMAIL} bytes"),
        ));
    }
    Ok(format!("email:{}", email.to_lowercase()))
}

/// The request's credential as the caller extractor reads it: the
/// `Authorization` header when there is one, else the session cookie.
fn credential(headers: &HeaderMap) -> Option<Vec<u8>> {
    match headers.get(AUTHORIZATION) {
        Some(header) => Some(header.as_bytes().to_vec()),
        None => session_token(headers).map(String::into_bytes),
    }
}

impl Limiters {
    pub fn new(cfg: &RateLimitConfig) -> Self {
        let limiter = |limit, window| RateLimiter::new(limit, window, cfg.max_keys);
        let secs = Duration::from_secs;
        Self {
            general: limiter(cfg.general, secs(cfg.general_window_secs)),
            login: limiter(cfg.login, secs(cfg.login_window_secs)),
            reset: limiter(cfg.reset, secs(cfg.reset_window_secs)),
            signup_passwords: limiter(cfg.wizard_passwords, SIGNUP_PASSWORD_WINDOW),
            actions: limiter(cfg.actions, secs(cfg.actions_window_secs)),
            support: limiter(cfg.support, secs(cfg.support_window_secs)),
            verified: Mutex::new(Expiring::new(VERIFIED_TTL, cfg.max_keys)),
        }
    }

    /// The general budget: per user once the request's credential has checked
    /// out (`verified`), else per client address, so a made-up cookie or key
    /// spends its address's budget rather than getting a fresh one.
    pub fn general(&self, headers: &HeaderMap, ip: Option<&str>) -> Result<(), ApiError> {
        let user = credential(headers).and_then(|c| {
            let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            let id = verified.id(&c);
            verified.get(id, Instant::now()).map(|(_, user)| *user)
        });
        let key = match user {
            Some(user) => format!("user:{user}"),
            None => format!("ip:{}", address(ip)),
        };
        self.general.check(&key, "requests")
    }

    /// The caller extractor saw this request's credential check out as `user`'s.
    pub fn verified(&self, headers: &HeaderMap, user: Uuid) {
        if let Some(c) = credential(headers) {
            let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            let id = verified.id(&c);
            verified.entry(id, Instant::now(), || user);
        }
    }

    /// A login: counted per client address and per email.
    pub fn login_attempt(&self, origin: &Origin, email: &str) -> Result<(), ApiError> {
        let email = email_key(email)?;
        self.login
            .check(&format!("ip:{}", ip(origin)), "attempts from this address")?;
        self.login.check(&email, "attempts for this account")
    }

    /// A password-reset request: per client address and per email, on a budget
    /// of its own, so asking for resets never locks anyone out of logging in.
    pub fn reset_request(&self, origin: &Origin, email: &str) -> Result<(), ApiError> {
        let email = email_key(email)?;
        self.reset.check(
            &format!("ip:{}", ip(origin)),
            "reset requests from this address",
        )?;
        self.reset.check(&email, "reset requests for this account")
    }

    /// A password-reset confirmation (a password hash): per client address.
    pub fn reset_confirm(&self, origin: &Origin) -> Result<(), ApiError> {
        self.reset.check(
            &format!("confirm-ip:{}", ip(origin)),
            "reset attempts from this address",
        )
    }

    /// A password change (two password hashes), per user, on the login budget.
    pub fn password_change(&self, user: Uuid) -> Result<(), ApiError> {
        self.login
            .check(&format!("password-user:{user}"), "password changes")
    }

    /// A new signup session, per client address (on the login budget).
    pub fn signup(&self, origin: &Origin) -> Result<(), ApiError> {
        self.login.check(
            &format!("signup-ip:{}", ip(origin)),
            "signups from this address",
        )
    }

    /// A password for the wizard's step 1 (a password hash): per signup session,
    /// and per client address on the login budget.
    pub fn signup_password(&self, origin: &Origin, session: Uuid) -> Result<(), ApiError> {
        self.signup_passwords
            .check(&format!("session:{session}"), "passwords for this signup")?;
        self.login.check(
            &format!("signup-password-ip:{}", ip(origin)),
            "passwords from this address",
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
    pub fn user_action(&self, user: Uuid, what: &str) -> Result<(), ApiError> {
        self.actions.check(&format!("user:{user}"), what)
    }

    /// A message from the support form (a mail to the operators): per client
    /// address, and per user when signed in, on a budget of its own.
    pub fn support_message(&self, origin: &Origin, user: Option<Uuid>) -> Result<(), ApiError> {
        self.support
            .check(&format!("ip:{}", ip(origin)), "messages from this address")?;
        match user {
            Some(user) => self
                .support
                .check(&format!("user:{user}"), "messages from this account"),
            None => Ok(()),
        }
    }
}

/// The general limit, before anything else runs.
pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // The pages' static files are embedded and cheap; a page load asks for
    // several, and they must not spend the general budget.
    if request.uri().path().starts_with("/assets/") {
        return next.run(request).await;
    }
    let ip = super::client::ip_of(&state, &request);
    if let Err(e) = state.limits.general(request.headers(), ip.as_deref()) {
        return e.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_budget_then_refuses_until_the_window_ends() {
        let limiter = RateLimiter::new(3, Duration::from_secs(60), 100);
        for _ in 0..3 {
            assert!(limiter.hit("a").is_ok());
        }
        let retry = limiter.hit("a").expect_err("fourth hit");
        assert!(retry <= Duration::from_secs(60) && retry > Duration::from_secs(58));
        assert!(limiter.hit("b").is_ok(), "keys are independent");
    }

    #[test]
    fn a_key_gets_a_new_budget_once_its_window_has_passed() {
        let limiter = RateLimiter::new(1, Duration::from_secs(60), 100);
        let mut table = Expiring::new(Duration::from_secs(60), 100);
        let t0 = Instant::now();
        assert!(limiter.count(&mut table, "a", t0).is_ok());
        assert!(limiter
            .count(&mut table, "a", t0 + Duration::from_secs(59))
            .is_err());
        assert!(limiter
            .count(&mut table, "a", t0 + Duration::from_secs(60))
            .is_ok());
    }

    #[test]
    fn a_hundred_thousand_distinct_keys_never_hold_more_than_the_cap() {
        let cap = 10_000;
        let limiter = RateLimiter::new(5, Duration::from_secs(60), cap);
        let mut table = Expiring::new(Duration::from_secs(60), cap);
        let t0 = Instant::now();
        let mut most = (0, 0);
        for i in 0..100_000u32 {
            let now = t0 + Duration::from_micros(u64::from(i));
            assert!(limiter
                .count(&mut table, &format!("ip:10.{i}"), now)
                .is_ok());
            assert!(table.len() <= cap && table.order.len() <= cap);
            most.0 = most.0.max(table.entries.capacity());
            most.1 = most.1.max(table.order.capacity());
        }
        // Allocated room stays flat too (the hash table keeps some for deletions).
        assert!(most.0 < 4 * cap && most.1 < 2 * cap, "{most:?}");
        // The newest keys are the ones kept, with their counts.
        let last = t0 + Duration::from_micros(100_000);
        for _ in 0..4 {
            assert!(limiter.count(&mut table, "ip:10.99999", last).is_ok());
        }
        assert!(limiter.count(&mut table, "ip:10.99999", last).is_err());
    }

    #[test]
    fn expired_keys_leave_on_the_next_write() {
        let mut table = Expiring::new(Duration::from_secs(10), 100);
        let t0 = Instant::now();
        for i in 0..50u64 {
            table.entry(i, t0, || ());
        }
        table.entry(1000, t0 + Duration::from_secs(10), || ());
        assert_eq!(table.len(), 1);
        assert_eq!(table.order.len(), 1);
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_block() {
        assert_eq!(
            address(Some("2001:db8:1:2:aaaa::1")),
            address(Some("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            address(Some("2001:db8:1:2::1")),
            address(Some("2001:db8:1:3::1"))
        );
        assert_eq!(address(Some("::ffff:10.0.0.1")), "10.0.0.1");
        assert_eq!(address(Some("10.0.0.1")), "10.0.0.1");
        assert_eq!(address(None), "-");
    }

    #[test]
    fn an_email_past_254_bytes_is_refused_before_it_is_a_key() {
        let long = format!("{}@example.org", "a".repeat(250));
        assert!(matches!(email_key(&long), Err(ApiError::Validation { .. })));
        assert_eq!(
            email_key(" Ada@Example.org ").unwrap(),
            "email:ada@example.org"
        );
    }

    fn config() -> RateLimitConfig {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            limits: RateLimitConfig,
        }
        Cli::parse_from(["test", "--rate-limit-general", "2"]).limits
    }

    fn headers(name: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        h
    }

    #[test]
    fn made_up_credentials_spend_the_address_budget_and_verified_ones_their_users() {
        let limits = Limiters::new(&config());
        let ip = Some("192.0.2.7");
        for i in 0..2 {
            let forged = headers("cookie", &format!("fp_session=forged{i}"));
            assert!(limits.general(&forged, ip).is_ok());
        }
        let forged = headers("authorization", "Bearer made-up");
        assert!(limits.general(&forged, ip).is_err(), "the address is spent");

        let real = headers("authorization", "Bearer real-key");
        limits.verified(&real, Uuid::nil());
        assert!(limits.general(&real, ip).is_ok(), "the user has its own");
        assert!(limits.general(&real, ip).is_ok());
        assert!(limits.general(&real, ip).is_err(), "and spends it");
        assert!(
            limits.general(&HeaderMap::new(), Some("192.0.2.8")).is_ok(),
            "other addresses are untouched"
        );
    }

    #[test]
    fn support_messages_count_per_address_and_per_signed_in_user() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            limits: RateLimitConfig,
        }
        let cfg = Cli::parse_from(["test", "--rate-limit-support", "1"]).limits;
        let limits = Limiters::new(&cfg);
        let at = |ip: &str| Origin {
            ip: Some(ip.to_owned()),
            user_agent: None,
        };
        let user = Uuid::from_u128(7);
        assert!(limits.support_message(&at("192.0.2.1"), Some(user)).is_ok());
        assert!(
            limits.support_message(&at("192.0.2.1"), None).is_err(),
            "the address is spent"
        );
        assert!(
            limits
                .support_message(&at("192.0.2.2"), Some(user))
                .is_err(),
            "so is the user, from any address"
        );
        assert!(limits.support_message(&at("192.0.2.3"), None).is_ok());
    }
}
