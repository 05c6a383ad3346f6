//! Steps 1, 2 and 4 of the wizard as forms: account, intended use (and the
//! sandbox suggestion), terms (step 3 is `subdomain`). Each GET shows the step (sending a visitor
//! who skipped one back to it), each POST records it through the API's own
//! operation and redirects to the next (post/redirect/get), or shows the step
//! again with its errors beside the fields. The terms step deploys.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::super::error::WebError;
use super::super::form::{FieldErrors, PageForm};
use super::super::layout::{Layout, Section};
use super::super::session::Member;
use super::{
    capitalise, current, forget_session, frame, from_our_pages, keep_session, refused, session_for,
};
use crate::http::client::Client;
use crate::http::error::ApiError;
use crate::http::wizard::deploy::{self, DeployRequest};
use crate::http::wizard::session::open;
use crate::http::wizard::steps::{
    fill, sandbox_suggestion, AccountStep, StepInput, TermsStep, UseStep,
};
use crate::http::wizard::usable;
use crate::http::AppState;
use crate::store::audit::Origin;
use crate::store::signup::SignupSession;
use crate::web::account::strength::StrengthView;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/signup", get(account_page).post(account))
        .route("/signup/use", get(use_page).post(intended_use))
        .route("/signup/sandbox", get(sandbox_page))
        .route("/signup/terms", get(terms_page).post(terms))
}

// Step 1: account ----------------------------------------------------------

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
    let strength = StrengthView::of(&form.password, &form.email);
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
