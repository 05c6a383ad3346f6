//! The wizard's four steps, in order: account (password, name), intended use,
//! subdomain, terms. Going back to an earlier step is fine; skipping ahead is not.

use axum::extract::{Path, State};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::subdomain::{suggestions, taken};
use super::{load, session_view, usable, SessionView, Suggestion, STEPS};
use crate::domain::password::{self, Strength};
use crate::http::auth::{check_password, hash_password};
use crate::http::client::Client;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::ApiJson;
use crate::http::AppState;
use crate::store::audit::Origin;
use crate::store::signup::{self, SignupSession, StepData};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepUpdate {
    /// 1 account, 2 intended use, 3 subdomain, 4 terms.
    pub step: i32,
    /// Step 1 `{password, name?}`; step 2 `{intendedUse: study|testing|learning|other, otherText?}`;
    /// step 3 `{subdomain}`; step 4 `{accepted: true, termsVersion}`.
    #[schema(value_type = Object)]
    pub data: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct AccountStep {
    pub(crate) password: String,
    pub(crate) name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UseStep {
    pub(crate) intended_use: String,
    pub(crate) other_text: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SubdomainStep {
    pub(crate) subdomain: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct TermsStep {
    pub(crate) accepted: bool,
    pub(crate) terms_version: String,
}

/// One step's input, typed.
pub(crate) enum StepInput {
    Account(AccountStep),
    Use(UseStep),
    Subdomain(SubdomainStep),
    Terms(TermsStep),
}

impl StepInput {
    fn step(&self) -> i32 {
        match self {
            Self::Account(_) => 1,
            Self::Use(_) => 2,
            Self::Subdomain(_) => 3,
            Self::Terms(_) => 4,
        }
    }
}

/// What a saved step adds to the session's view.
#[derive(Default)]
pub(crate) struct Feedback {
    pub(crate) strength: Option<Strength>,
    pub(crate) suggestion: Option<Suggestion>,
}

pub(crate) type Saved = Result<(SignupSession, Feedback), ApiError>;

fn parse_step<T: DeserializeOwned>(data: Value, step: i32) -> Result<T, ApiError> {
    serde_json::from_value(data).map_err(|e| ApiError::Validation {
        message: format!("step {step} data does not match its shape: {e}"),
        details: json!({ "field": "data", "rule": "shape", "step": step }),
    })
}

/// Fills in one step. Steps go in order; going back to an earlier one is fine.
#[utoipa::path(post, path = "/api/v1/wizard/sessions/{id}/steps", operation_id = "wizard.updateSession", tag = "wizard",
    params(("id" = Uuid, Path, description = "signup session id")), request_body = StepUpdate,
    responses((status = 200, body = SessionView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 410, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "too many passwords being hashed; see `Retry-After`")))]
pub async fn update_session(
    State(state): State<AppState>,
    Client(origin): Client,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StepUpdate>,
) -> Result<Json<SessionView>, ApiError> {
    let session = load(&state, &id).await?;
    usable(&session)?;
    may_fill(&session, body.step)?;
    let input = match body.step {
        1 => StepInput::Account(parse_step(body.data, 1)?),
        2 => StepInput::Use(parse_step(body.data, 2)?),
        3 => StepInput::Subdomain(parse_step(body.data, 3)?),
        _ => StepInput::Terms(parse_step(body.data, 4)?),
    };
    let (saved, feedback) = save(&state, &origin, &session, input).await?;
    let mut view = session_view(&saved);
    view.strength = feedback.strength;
    view.suggestion = feedback.suggestion;
    Ok(Json(view))
}

/// Whether `step` may be filled in now: steps go in order, going back is fine.
fn may_fill(session: &SignupSession, step: i32) -> Result<(), ApiError> {
    if !(1..=STEPS).contains(&step) {
        return Err(ApiError::validation(
            "step",
            "range",
            "step must be 1, 2, 3 or 4",
        ));
    }
    if step > session.steps_done + 1 {
        let missing = session.steps_done + 1;
        return Err(ApiError::ConflictWith {
            code: "step_out_of_order",
            message: format!("complete step {missing} first"),
            details: json!({ "missingStep": missing }),
        });
    }
    Ok(())
}

/// Records one step of the signup session `id`, with the same checks as
/// `wizard.updateSession` (the wizard's pages call this).
pub(crate) async fn fill(state: &AppState, origin: &Origin, id: &str, input: StepInput) -> Saved {
    let session = load(state, id).await?;
    usable(&session)?;
    may_fill(&session, input.step())?;
    save(state, origin, &session, input).await
}

async fn save(
    state: &AppState,
    origin: &Origin,
    session: &SignupSession,
    input: StepInput,
) -> Saved {
    match input {
        StepInput::Account(step) => account(state, origin, session, step).await,
        StepInput::Use(step) => intended_use(state, session, step).await,
        StepInput::Subdomain(step) => subdomain(state, session, step).await,
        StepInput::Terms(step) => terms(state, session, step).await,
    }
}

/// The sandbox suggestion for people who only test or learn Fresco.
pub(crate) fn sandbox_suggestion(state: &AppState, intended_use: &str) -> Option<Suggestion> {
    matches!(intended_use, "testing" | "learning").then(|| Suggestion {
        message: "To try Fresco or learn it, the public sandbox may be all you need; you can still go on."
            .into(),
        sandbox_url: state.config.accounts.sandbox_url.clone(),
    })
}

/// Step 1: the password (hashed now, kept with the session) and a name. Each
/// hash costs 19 MiB and a core for a while, so the passwords a session and an
/// address may submit are counted.
async fn account(
    state: &AppState,
    origin: &Origin,
    session: &SignupSession,
    step: AccountStep,
) -> Saved {
    check_password(&step.password, &session.email, "password")?;
    let name = step
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    if name.is_some_and(|n| n.chars().count() > 100) {
        return Err(ApiError::validation(
            "name",
            "length",
            "name must be at most 100 characters",
        ));
    }
    let strength = Some(password::strength(&step.password, &session.email));
    state.limits.signup_password(origin, session.id)?;
    let hash = hash_password(step.password).await?;
    let data = StepData::Account {
        name,
        password_hash: &hash,
    };
    let saved = signup::save_step(&state.pool, session.id, data).await?;
    Ok((
        saved,
        Feedback {
            strength,
            ..Default::default()
        },
    ))
}

/// Step 2: what the instance is for; testing and learning hear of the sandbox.
async fn intended_use(state: &AppState, session: &SignupSession, step: UseStep) -> Saved {
    let other = step
        .other_text
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    match step.intended_use.as_str() {
        "study" | "testing" | "learning" => {}
        "other" if other.is_some_and(|t| t.chars().count() <= 500) => {}
        "other" => {
            return Err(ApiError::validation(
                "otherText",
                "required",
                "describe your intended use (up to 500 characters)",
            ))
        }
        _ => {
            return Err(ApiError::validation(
                "intendedUse",
                "one_of",
                "intendedUse must be one of study, testing, learning, other",
            ))
        }
    }
    let suggestion = sandbox_suggestion(state, &step.intended_use);
    let data = StepData::IntendedUse {
        intended_use: &step.intended_use,
        other,
    };
    let saved = signup::save_step(&state.pool, session.id, data).await?;
    Ok((
        saved,
        Feedback {
            suggestion,
            ..Default::default()
        },
    ))
}

/// Step 3: the subdomain, valid and free now (deploy checks again).
async fn subdomain(state: &AppState, session: &SignupSession, step: SubdomainStep) -> Saved {
    let subdomain = state
        .config
        .subdomain(step.subdomain.trim())
        .map_err(|e| ApiError::validation("subdomain", e.rule(), e.to_string()))?;
    if taken(state, subdomain.as_str()).await? {
        return Err(ApiError::ConflictWith {
            code: "subdomain_taken",
            message: format!("subdomain \"{subdomain}\" is already taken"),
            details: json!({ "suggestions": suggestions(state, subdomain.as_str()).await? }),
        });
    }
    let data = StepData::Subdomain(subdomain.as_str());
    let saved = signup::save_step(&state.pool, session.id, data).await?;
    Ok((saved, Feedback::default()))
}

/// Step 4: the current terms, accepted.
async fn terms(state: &AppState, session: &SignupSession, step: TermsStep) -> Saved {
    if !step.accepted {
        return Err(ApiError::validation(
            "accepted",
            "required",
            "the terms must be accepted to continue",
        ));
    }
    let current = &state.config.accounts.terms_version;
    if &step.terms_version != current {
        return Err(ApiError::validation(
            "termsVersion",
            "current",
            format!("accept the current terms (version {current})"),
        ));
    }
    let data = StepData::Terms { version: current };
    let saved = signup::save_step(&state.pool, session.id, data).await?;
    Ok((saved, Feedback::default()))
}
