//! The account pages: password reset and email verification (reached from
//! emailed links), the signed-in user's settings (profile, password, API keys),
//! and the terms, privacy and service-level pages. Every change goes through
//! the API's own operation (`http::auth::{password, profile, verification}`,
//! `http::api_keys`), so a rule, a rate limit or an audit entry lives in one
//! place.

mod api_keys;
mod legal;
mod password;
mod profile;
mod reset;
pub mod strength;
mod verify;

use axum::Router;
use chrono::{DateTime, Utc};

use crate::http::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(reset::router())
        .merge(verify::router())
        .merge(strength::router())
        .merge(profile::router())
        .merge(password::router())
        .merge(api_keys::router())
        .merge(legal::router())
}

/// Which settings page is open, for the settings sub-navigation
/// (`account/settings_nav.html`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingsTab {
    Profile,
    Password,
    ApiKeys,
}

/// A moment as the pages show it: to the minute, in UTC (the server does not
/// know the reader's zone; the `<time>` element carries the exact instant).
pub fn when(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_read_to_the_minute_in_utc() {
        let t = DateTime::parse_from_rfc3339("2026-11-23T22:28:59.5Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(when(&t), "2026-11-23 22:28 UTC");
    }
}
