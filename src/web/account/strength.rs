//! The live password-strength indicator: `POST /password-strength` scores a
//! candidate password with the API's rules and zxcvbn (`domain::password`)
//! and answers the partial `account/strength.html`, which htmx swaps into an
//! `aria-live` region under the password field. Nothing is stored or logged.
//!
//! Reusable by any page with a new-password field: the field may be named
//! `newPassword` or `password`; an `email` field (or the signed-in user's
//! address) lets the score penalise passwords made from the address. Send only
//! those fields (`hx-params`), never a current password.

use askama::Template;
use askama_web::WebTemplate;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;

use crate::domain::password;
use crate::http::AppState;
use crate::web::form::PageForm;
use crate::web::session::Member;

/// What the indicator shows for one candidate password.
pub struct StrengthView {
    /// zxcvbn's 0–4 score (the bar fills this many of its four segments).
    pub score: u8,
    pub label: &'static str,
    /// A broken rule (too short, the email address): the password would be refused.
    pub problem: Option<String>,
    pub warning: Option<String>,
    pub suggestion: Option<String>,
}

impl StrengthView {
    /// The indicator for `candidate`; `None` for an empty field (nothing to say).
    pub fn of(candidate: &str, email: &str) -> Option<Self> {
        if candidate.is_empty() {
            return None;
        }
        let scored = password::strength(candidate, email);
        let label = match scored.score {
            0 => "very weak",
            1 => "weak",
            2 => "fair",
            3 => "strong",
            _ => "very strong",
        };
        Some(Self {
            score: scored.score.min(4),
            label,
            problem: password::check(candidate, email)
                .err()
                .map(|e| e.to_string()),
            warning: scored.warning,
            suggestion: scored.suggestions.into_iter().next(),
        })
    }
}

/// The indicator's content, alone (the htmx answer) or included in a page.
#[derive(Template, WebTemplate)]
#[template(path = "account/strength.html")]
pub struct StrengthPartial {
    pub strength: Option<StrengthView>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StrengthForm {
    #[serde(default)]
    new_password: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

async fn score(member: Option<Member>, PageForm(form): PageForm<StrengthForm>) -> StrengthPartial {
    let candidate = form.new_password.or(form.password).unwrap_or_default();
    let email = form
        .email
        .filter(|e| !e.trim().is_empty())
        .or_else(|| member.map(|Member(c)| c.user.email))
        .unwrap_or_default();
    StrengthPartial {
        strength: StrengthView::of(&candidate, &email),
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/password-strength", post(score))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_indicator_names_broken_rules_and_orders_passwords() {
        assert!(StrengthView::of("", "a@b.c").is_none());
        let short = StrengthView::of("abc", "a@b.c").unwrap();
        assert!(short.problem.unwrap().contains("at least"));
        let strong = StrengthView::of("violet-tundra-42-kettle!", "a@b.c").unwrap();
        assert!(strong.problem.is_none());
        assert!(strong.score >= 3, "{}", strong.label);
        let html = StrengthPartial {
            strength: Some(strong),
        }
        .render()
        .unwrap();
        assert!(
            html.contains("strength-bar") && html.contains("strong"),
            "{html}"
        );
        assert_eq!(
            StrengthPartial { strength: None }.render().unwrap().trim(),
            ""
        );
    }
}
