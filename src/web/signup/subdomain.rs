//! Step 3 of the wizard: the subdomain, with its availability checked live
//! while typing (the API's `wizard.checkSubdomain`), clickable suggestions and
//! a preview of the instance's address.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::super::error::WebError;
use super::super::form::{FieldErrors, PageForm};
// `Section`: base.html names it.
use super::super::layout::{Layout, Section};
use super::super::session::Member;
use super::{capitalise, frame, from_our_pages, refused, session_for};
use crate::http::client::Client;
use crate::http::error::ApiError;
use crate::http::wizard::steps::{fill, StepInput, SubdomainStep};
use crate::http::wizard::subdomain::{check, SubdomainCheck};
use crate::http::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/signup/subdomain", get(subdomain_page).post(subdomain))
        .route("/signup/subdomain-check", get(subdomain_check))
}

/// What the status region beside the subdomain says.
#[derive(Default)]
pub struct Availability {
    /// Why the subdomain cannot be had (shown as the field's error).
    pub error: Option<String>,
    pub available: Option<String>,
    pub suggestions: Vec<String>,
}

impl From<SubdomainCheck> for Availability {
    fn from(c: SubdomainCheck) -> Self {
        let message = c.message.unwrap_or_default();
        Self {
            available: c
                .available
                .then(|| format!("\u{201c}{}\u{201d} is available.", c.subdomain)),
            error: (!c.available && !c.subdomain.is_empty()).then_some(message),
            suggestions: c.suggestions,
        }
    }
}

/// The address the instance will have, for the preview.
fn preview(state: &AppState, wanted: &str) -> String {
    let shown = wanted.trim().to_lowercase();
    let shown = if shown.is_empty() {
        "your-study"
    } else {
        shown.as_str()
    };
    state.config.tenants.tenant_url(shown)
}

#[derive(Template, WebTemplate)]
#[template(path = "signup/subdomain.html")]
pub struct SubdomainPage {
    layout: Layout,
    step: u8,
    subdomain: String,
    domain: String,
    preview: String,
    status: Availability,
    errors: FieldErrors,
}

async fn subdomain_page(
    State(state): State<AppState>,
    member: Option<Member>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let session = match session_for(&state, &headers, 3).await? {
        Ok(s) => s,
        Err(to) => return Ok(to.into_response()),
    };
    let subdomain = session.subdomain.unwrap_or_default();
    Ok(SubdomainPage {
        layout: frame("Choose your subdomain", member, &headers),
        step: 3,
        preview: preview(&state, &subdomain),
        domain: state.config.tenants.base_domain.clone(),
        subdomain,
        status: Availability::default(),
        errors: FieldErrors::new(),
    }
    .into_response())
}

/// The chosen subdomain. Suggestion buttons submit a form of their own, but a
/// browser that ignores the `form` attribute would send both the field and
/// the button: the button comes later, so the last value wins.
fn chosen(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == "subdomain")
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default()
}

async fn subdomain(
    State(state): State<AppState>,
    member: Option<Member>,
    Client(origin): Client,
    headers: HeaderMap,
    PageForm(pairs): PageForm<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    from_our_pages(&state, &headers)?;
    let session = match session_for(&state, &headers, 3).await? {
        Ok(s) => s,
        Err(to) => return Ok(to.into_response()),
    };
    let wanted = chosen(&pairs);
    let mut errors = FieldErrors::new();
    let mut status = Availability::default();
    if wanted.is_empty() {
        errors.add("subdomain", "Choose a subdomain.");
    } else {
        let step = SubdomainStep {
            subdomain: wanted.clone(),
        };
        match fill(
            &state,
            &origin,
            &session.id.to_string(),
            StepInput::Subdomain(step),
        )
        .await
        {
            Ok(_) => return Ok(Redirect::to("/signup/terms").into_response()),
            Err(ApiError::ConflictWith {
                message, details, ..
            }) => {
                errors.add("subdomain", capitalise(&message));
                status.suggestions = strings(&details["suggestions"]);
            }
            Err(e) => {
                errors.absorb(e)?;
                status.suggestions = check(&state, &wanted).await?.suggestions;
            }
        }
    }
    status.error = errors.get("subdomain").map(capitalise);
    Ok(refused(SubdomainPage {
        layout: frame("Choose your subdomain", member, &headers),
        step: 3,
        preview: preview(&state, &wanted),
        domain: state.config.tenants.base_domain.clone(),
        subdomain: wanted,
        status,
        errors,
    }))
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

#[derive(Template, WebTemplate)]
#[template(path = "signup/subdomain_check.html")]
pub struct CheckFragment {
    status: Availability,
    preview: String,
}

#[derive(Deserialize)]
pub struct CheckQuery {
    #[serde(default)]
    subdomain: String,
}

/// The live availability check while typing (the API's `wizard.checkSubdomain`).
async fn subdomain_check(
    State(state): State<AppState>,
    Query(q): Query<CheckQuery>,
) -> Result<CheckFragment, WebError> {
    let wanted = q.subdomain.trim();
    let mut status = if wanted.is_empty() {
        Availability::default()
    } else {
        Availability::from(check(&state, wanted).await?)
    };
    status.error = status.error.map(|e| capitalise(&e));
    Ok(CheckFragment {
        status,
        preview: preview(&state, wanted),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suggestion_button_overrides_the_typed_subdomain() {
        let typed = ("subdomain".to_owned(), "taken".to_owned());
        let picked = ("subdomain".to_owned(), "taken-study".to_owned());
        assert_eq!(chosen(std::slice::from_ref(&typed)), "taken");
        assert_eq!(chosen(&[typed, picked]), "taken-study");
        assert_eq!(chosen(&[]), "");
    }
}
