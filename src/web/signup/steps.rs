//! Steps 1–4 of the wizard as forms: account, intended use (and the sandbox
//! suggestion), subdomain, terms. Each GET shows the step (sending a visitor
//! who skipped one back to it), each POST records it through the API's own
//! operation and redirects to the next (post/redirect/get), or shows the step
//! again with its errors beside the fields. The terms step deploys.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::super::error::WebError;
use super::super::form::{FieldErrors, PageForm};
use super::super::layout::{Layout, Section};
use super::super::session::Member;
use super::{current, forget_session, from_our_pages, keep_session, next_page};
use crate::domain::password;
use crate::http::client::Client;
use crate::http::error::ApiError;
use crate::http::wizard::deploy::{self, DeployRequest};
use crate::http::wizard::session::open;
use crate::http::wizard::steps::{
    fill, sandbox_suggestion, AccountStep, StepInput, SubdomainStep, TermsStep, UseStep,
};
use crate::http::wizard::subdomain::{check, SubdomainCheck};
use crate::http::wizard::usable;
use crate::http::AppState;
use crate::store::audit::Origin;
use crate::store::signup::SignupSession;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/signup", get(account_page).post(account))
        .route("/signup/password-strength", post(strength))
        .route("/signup/use", get(use_page).post(intended_use))
        .route("/signup/sandbox", get(sandbox_page))
        .route("/signup/subdomain", get(subdomain_page).post(subdomain))
        .route("/signup/subdomain-check", get(subdomain_check))
        .route("/signup/terms", get(terms_page).post(terms))
}

/// The frame of a wizard page; a signed-in visitor keeps their navigation.
fn frame(title: &str, member: Option<Member>, headers: &HeaderMap) -> Layout {
    let caller = member.map(|Member(c)| c);
    Layout::new(title, Section::Home)
        .signed_in(caller.as_ref())
        .with_notice(headers)
}

fn refused(page: impl IntoResponse) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
}

/// The session a step page needs: one that has done the steps before `step`.
/// Anyone else goes to the step they are at (or to step 1).
async fn session_for(
    state: &AppState,
    headers: &HeaderMap,
    step: i32,
) -> Result<Result<SignupSession, Redirect>, WebError> {
    let Some(session) = current(state, headers).await? else {
        return Ok(Err(Redirect::to("/signup")));
    };
    if session.tenant_id.is_some() || session.steps_done < step - 1 {
        return Ok(Err(Redirect::to(&next_page(&session))));
    }
    if usable(&session).is_err() {
        return Ok(Err(Redirect::to("/signup")));
    }
    Ok(Ok(session))
}

// Step 1: account ----------------------------------------------------------

/// zxcvbn's score in words, for the strength indicator.
pub struct StrengthView {
    pub score: u8,
    pub label: &'static str,
    pub warning: Option<String>,
    pub suggestions: Vec<String>,
}

fn strength_view(password: &str, email: &str) -> Option<StrengthView> {
    if password.is_empty() {
        return None;
    }
    let s = password::strength(password, email);
    let label = match s.score {
        0 => "Very weak",
        1 => "Weak",
        2 => "Fair",
        3 => "Good",
        _ => "Strong",
    };
    let mut suggestions = s.suggestions;
    if let Err(e) = password::check(password, email) {
        suggestions.insert(0, format!("Your {e}."));
    }
    Some(StrengthView {
        score: s.score,
        label,
        warning: s.warning,
        suggestions,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "signup/account.html")]
pub struct AccountPage {
    layout: Layout,
    step: u8,
    email: String,
    /// Not `name`: the field macro's own parameter is called that.
    full_name: String,
    strength: Option<StrengthView>,
    errors: FieldErrors,
}

async fn account_page(
    State(state): State<AppState>,
    member: Option<Member>,
    headers: HeaderMap,
) -> Result<AccountPage, WebError> {
    let session = current(&state, &headers)
        .await?
        .filter(|s| usable(s).is_ok());
    Ok(AccountPage {
        layout: frame("Create your account", member, &headers),
        step: 1,
        email: session
            .as_ref()
            .map(|s| s.email.clone())
            .unwrap_or_default(),
        full_name: session.and_then(|s| s.name).unwrap_or_default(),
        strength: None,
        errors: FieldErrors::new(),
    })
}

#[derive(Deserialize)]
pub struct AccountForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default, rename = "passwordConfirm")]
    password_confirm: String,
    #[serde(default)]
    name: String,
}

/// Step 1: opens a signup session for the email (or keeps the one this browser
/// has for it), then records the password and name.
async fn account(
    State(state): State<AppState>,
    member: Option<Member>,
    Client(origin): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<AccountForm>,
) -> Result<Response, WebError> {
    from_our_pages(&state, &headers)?;
    let mut errors = FieldErrors::new();
    if form.email.trim().is_empty() {
        errors.add("email", "Enter your email address.");
    }
    if form.password.is_empty() {
        errors.add("password", "Choose a password.");
    } else if form.password != form.password_confirm {
        errors.add("passwordConfirm", "The two passwords are not the same.");
    }
    if errors.is_empty() {
        match save_account(&state, &origin, &headers, &form).await {
            Ok(Ok(id)) => {
                return Ok(([keep_session(&state, id)], Redirect::to("/signup/use")).into_response())
            }
            Ok(Err(message)) => errors.add("email", message),
            Err(e) => errors.absorb(e)?,
        }
    }
    let strength = strength_view(&form.password, &form.email);
    Ok(refused(AccountPage {
        layout: frame("Create your account", member, &headers),
        step: 1,
        email: form.email,
        full_name: form.name,
        strength,
        errors,
    }))
}

/// The session for this email, with step 1 recorded; `Ok(Err(message))` when
/// the email already has an account.
async fn save_account(
    state: &AppState,
    origin: &Origin,
    headers: &HeaderMap,
    form: &AccountForm,
) -> Result<Result<uuid::Uuid, &'static str>, ApiError> {
    let same_email = |s: &SignupSession| s.email.eq_ignore_ascii_case(form.email.trim());
    let kept = match current(state, headers).await {
        Ok(found) => found.filter(|s| same_email(s) && usable(s).is_ok()),
        Err(_) => None,
    };
    let session = match kept {
        Some(s) => s,
        None => open(state, origin, &form.email).await?,
    };
    if session.login_required {
        return Ok(Err(
            "An account already exists for this email address: sign in instead.",
        ));
    }
    let step = AccountStep {
        password: form.password.clone(),
        name: Some(form.name.clone()),
    };
    let (saved, _) = fill(
        state,
        origin,
        &session.id.to_string(),
        StepInput::Account(step),
    )
    .await?;
    Ok(Ok(saved.id))
}

#[derive(Template, WebTemplate)]
#[template(path = "signup/strength.html")]
pub struct StrengthFragment {
    strength: Option<StrengthView>,
}

#[derive(Deserialize)]
pub struct StrengthForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    email: String,
}

/// The live strength indicator (the API's scoring; stores nothing).
async fn strength(PageForm(form): PageForm<StrengthForm>) -> StrengthFragment {
    StrengthFragment {
        strength: strength_view(&form.password, &form.email),
    }
}

// Step 2: intended use ----------------------------------------------------

#[derive(Template, WebTemplate)]
#[template(path = "signup/use.html")]
pub struct UsePage {
    layout: Layout,
    step: u8,
    intended_use: String,
    other_text: String,
    errors: FieldErrors,
}

async fn use_page(
    State(state): State<AppState>,
    member: Option<Member>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let session = match session_for(&state, &headers, 2).await? {
        Ok(s) => s,
        Err(to) => return Ok(to.into_response()),
    };
    Ok(UsePage {
        layout: frame("What is the instance for?", member, &headers),
        step: 2,
        intended_use: session.intended_use.unwrap_or_default(),
        other_text: session.intended_use_other.unwrap_or_default(),
        errors: FieldErrors::new(),
    }
    .into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UseForm {
    intended_use: Option<String>,
    #[serde(default)]
    other_text: String,
}

async fn intended_use(
    State(state): State<AppState>,
    member: Option<Member>,
    Client(origin): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<UseForm>,
) -> Result<Response, WebError> {
    from_our_pages(&state, &headers)?;
    let session = match session_for(&state, &headers, 2).await? {
        Ok(s) => s,
        Err(to) => return Ok(to.into_response()),
    };
    let mut errors = FieldErrors::new();
    match form.intended_use.as_deref() {
        None => errors.add("intendedUse", "Choose what the instance is for."),
        Some(choice) => {
            let step = UseStep {
                intended_use: choice.to_owned(),
                other_text: Some(form.other_text.clone()),
            };
            match fill(
                &state,
                &origin,
                &session.id.to_string(),
                StepInput::Use(step),
            )
            .await
            {
                Ok((_, feedback)) if feedback.suggestion.is_some() => {
                    return Ok(Redirect::to("/signup/sandbox").into_response())
                }
                Ok(_) => return Ok(Redirect::to("/signup/subdomain").into_response()),
                Err(e) => errors.absorb(e)?,
            }
        }
    }
    Ok(refused(UsePage {
        layout: frame("What is the instance for?", member, &headers),
        step: 2,
        intended_use: form.intended_use.unwrap_or_default(),
        other_text: form.other_text,
        errors,
    }))
}

#[derive(Template, WebTemplate)]
#[template(path = "signup/sandbox.html")]
pub struct SandboxPage {
    layout: Layout,
    step: u8,
    purpose: String,
    message: String,
    sandbox_url: String,
}

/// After "testing" or "learning": the sandbox may be all they need.
async fn sandbox_page(
    State(state): State<AppState>,
    member: Option<Member>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let session = match session_for(&state, &headers, 3).await? {
        Ok(s) => s,
        Err(to) => return Ok(to.into_response()),
    };
    let purpose = session.intended_use.unwrap_or_default();
    let Some(suggestion) = sandbox_suggestion(&state, &purpose) else {
        return Ok(Redirect::to("/signup/subdomain").into_response());
    };
    Ok(SandboxPage {
        layout: frame("The Fresco sandbox", member, &headers),
        step: 2,
        purpose,
        message: suggestion.message,
        sandbox_url: suggestion.sandbox_url,
    }
    .into_response())
}

// Step 3: subdomain -------------------------------------------------------

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

/// API messages start in lower case; a sentence on a page does not.
fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
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

// Step 4: terms, then deploy ----------------------------------------------

#[derive(Template, WebTemplate)]
#[template(path = "signup/terms.html")]
pub struct TermsPage {
    layout: Layout,
    step: u8,
    terms_version: String,
    subdomain: String,
    errors: FieldErrors,
}

async fn terms_page(
    State(state): State<AppState>,
    member: Option<Member>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let session = match session_for(&state, &headers, 4).await? {
        Ok(s) => s,
        Err(to) => return Ok(to.into_response()),
    };
    Ok(TermsPage {
        layout: frame("Accept the terms", member, &headers),
        step: 4,
        terms_version: state.config.accounts.terms_version.clone(),
        subdomain: session.subdomain.unwrap_or_default(),
        errors: FieldErrors::new(),
    }
    .into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TermsForm {
    accepted: Option<String>,
    #[serde(default)]
    terms_version: String,
}

/// Step 4, then the deployment: the account and the tenant are created, the
/// person is signed in and sent to watch the progress.
async fn terms(
    State(state): State<AppState>,
    member: Option<Member>,
    Client(origin): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<TermsForm>,
) -> Result<Response, WebError> {
    from_our_pages(&state, &headers)?;
    let session = match session_for(&state, &headers, 4).await? {
        Ok(s) => s,
        Err(to) => return Ok(to.into_response()),
    };
    let id = session.id.to_string();
    let mut errors = FieldErrors::new();
    let step = TermsStep {
        accepted: form.accepted.is_some(),
        terms_version: form.terms_version,
    };
    let deployed = match fill(&state, &origin, &id, StepInput::Terms(step)).await {
        Ok(_) => deploy::run(&state, &origin, &id, DeployRequest::default()).await,
        Err(e) => Err(e),
    };
    match deployed {
        Ok((session_cookie, tenant)) => {
            let to = format!("/signup/progress/{}", tenant.id);
            let mut response = Redirect::to(&to).into_response();
            // Appended, not inserted: two cookies, each its own Set-Cookie.
            let headers = response.headers_mut();
            for (name, value) in session_cookie.iter() {
                headers.append(name, value.clone());
            }
            let (name, value) = forget_session(&state);
            headers.append(name, value);
            return Ok(response);
        }
        Err(ApiError::Validation { details, .. }) if details["field"] == "accepted" => {
            errors.add("accepted", "Accept the terms to create your instance.");
        }
        // The signup cap: a refusal to show above the form, not an error page.
        Err(ApiError::Forbidden(message)) => errors.form = Some(capitalise(&message)),
        Err(e) => errors.absorb(e)?,
    }
    Ok(refused(TermsPage {
        layout: frame("Accept the terms", member, &headers),
        step: 4,
        terms_version: state.config.accounts.terms_version.clone(),
        subdomain: session.subdomain.unwrap_or_default(),
        errors,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suggestion_button_overrides_the_typed_subdomain() {
        let typed = ("subdomain".to_owned(), "taken".to_owned());
        let picked = ("subdomain".to_owned(), "taken-study".to_owned());
        assert_eq!(chosen(&[typed.clone()]), "taken");
        assert_eq!(chosen(&[typed, picked]), "taken-study");
        assert_eq!(chosen(&[]), "");
    }

    #[test]
    fn the_strength_indicator_names_the_rule_a_password_breaks() {
        assert!(strength_view("", "a@b.c").is_none());
        let short = strength_view("abc", "a@b.c").unwrap();
        assert!(
            short.suggestions[0].contains("at least"),
            "{:?}",
            short.suggestions
        );
        let strong = strength_view("violet-tundra-42-kettle!", "a@b.c").unwrap();
        assert!(strong.score >= 3 && strong.label != "Weak");
    }
}
