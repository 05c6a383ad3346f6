//! The signup wizard: check a subdomain, open a signup session, fill in its four
//! steps in order (account, intended use, subdomain, terms), then deploy, which
//! creates the user and the tenant in one transaction and signs the user in.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::account::{check_password, hash_password, open_session};
use super::client::Client;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery};
use super::ApiRouter;
use crate::app::AppState;
use crate::domain::password::{self, Strength};
use crate::domain::Subdomain;
use crate::store::audit::{self, Entry};
use crate::store::signup::{self, SignupSession, StepData};
use crate::store::tenants::{self, NewTenant};
use crate::store::{users, StoreError};

pub const STEPS: i32 = 4;

pub fn router() -> ApiRouter {
    ApiRouter::new()
        .get("/api/v1/wizard/subdomain-check", check_subdomain)
        .post("/api/v1/wizard/sessions", create_session)
        .get("/api/v1/wizard/sessions/{id}", get_session)
        .post("/api/v1/wizard/sessions/{id}/steps", update_session)
        .post("/api/v1/wizard/sessions/{id}/deploy", deploy)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubdomainQuery {
    pub subdomain: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubdomainCheck {
    pub subdomain: String,
    pub valid: bool,
    pub available: bool,
    /// The rule an invalid subdomain breaks (`length`, `characters`, `hyphens`, `punycode`, `reserved`).
    pub rule: Option<String>,
    pub message: Option<String>,
    /// Three available alternatives when the subdomain is taken or reserved.
    pub suggestions: Vec<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSignup {
    pub email: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignupView {
    pub session_id: Uuid,
    pub expires_at: DateTime<Utc>,
    /// `account` to go on with step 1, or `login` when the email already has an account.
    pub next: String,
    pub message: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub session_id: Uuid,
    pub email: String,
    pub steps_done: i32,
    /// The next step to fill in; null once all four are done.
    pub next_step: Option<i32>,
    pub expires_at: DateTime<Utc>,
    pub intended_use: Option<String>,
    pub subdomain: Option<String>,
    pub terms_version: Option<String>,
    pub tenant_id: Option<Uuid>,
    /// Step 1: the password's strength.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strength: Option<Strength>,
    /// Step 2: testing or learning? The sandbox may suit better.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<Suggestion>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Suggestion {
    pub message: String,
    pub sandbox_url: String,
}

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
struct AccountStep {
    password: String,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UseStep {
    intended_use: String,
    other_text: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SubdomainStep {
    subdomain: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TermsStep {
    accepted: bool,
    terms_version: String,
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// Free-form instance preferences, kept with the tenant (at most 4 KiB).
    #[schema(value_type = Object)]
    #[serde(default)]
    pub configuration: Option<Value>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeployView {
    pub tenant_id: Uuid,
    pub status: String,
    pub url: String,
    /// Poll this for the progress step.
    pub status_url: String,
}

fn session_view(s: &SignupSession) -> SessionView {
    SessionView {
        session_id: s.id,
        email: s.email.clone(),
        steps_done: s.steps_done,
        next_step: (s.steps_done < STEPS).then_some(s.steps_done + 1),
        expires_at: s.expires_at,
        intended_use: s.intended_use.clone(),
        subdomain: s.subdomain.clone(),
        terms_version: s.terms_version.clone(),
        tenant_id: s.tenant_id,
        strength: None,
        suggestion: None,
    }
}

/// Up to three available subdomains close to `wanted`.
async fn suggestions(state: &AppState, wanted: &str) -> Result<Vec<String>, ApiError> {
    let mut base: String = wanted
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    while base.contains("--") {
        base = base.replace("--", "-");
    }
    let mut base = base.trim_matches('-').chars().take(50).collect::<String>();
    if base.len() < 3 {
        base = format!("study-{base}").trim_end_matches('-').to_owned();
    }
    let mut candidates: Vec<String> = ["study", "lab", "research", "team", "project"]
        .iter()
        .map(|s| format!("{base}-{s}"))
        .chain((2..12).map(|n| format!("{base}{n}")))
        .filter(|c| Subdomain::parse(c).is_ok())
        .collect();
    candidates.dedup();
    let taken = tenants::taken_subdomains(&state.pool, &candidates).await?;
    Ok(candidates
        .into_iter()
        .filter(|c| !taken.contains(c))
        .take(3)
        .collect())
}

async fn taken(state: &AppState, subdomain: &str) -> Result<bool, ApiError> {
    let wanted = [subdomain.to_owned()];
    Ok(!tenants::taken_subdomains(&state.pool, &wanted)
        .await?
        .is_empty())
}

async fn check(state: &AppState, wanted: &str) -> Result<SubdomainCheck, ApiError> {
    let mut answer = SubdomainCheck {
        subdomain: wanted.to_owned(),
        valid: true,
        available: false,
        rule: None,
        message: None,
        suggestions: vec![],
    };
    match Subdomain::parse(wanted) {
        Err(e) => {
            answer.valid = false;
            answer.rule = Some(e.rule().to_owned());
            answer.message = Some(e.to_string());
            if e.rule() == "reserved" {
                answer.suggestions = suggestions(state, wanted).await?;
            }
        }
        Ok(s) if taken(state, s.as_str()).await? => {
            answer.message = Some(format!("\"{s}\" is already taken"));
            answer.suggestions = suggestions(state, wanted).await?;
        }
        Ok(_) => answer.available = true,
    }
    Ok(answer)
}

/// Is this subdomain valid and free? With suggestions when it is not.
#[utoipa::path(get, path = "/api/v1/wizard/subdomain-check", operation_id = "wizard.checkSubdomain", tag = "wizard",
    params(SubdomainQuery), responses((status = 200, body = SubdomainCheck)))]
pub async fn check_subdomain(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<SubdomainQuery>,
) -> Result<Json<SubdomainCheck>, ApiError> {
    Ok(Json(check(&state, q.subdomain.trim()).await?))
}

/// Opens a signup session (valid for an hour). An email that already has an
/// account gets the same answer shape, telling the person to log in.
#[utoipa::path(post, path = "/api/v1/wizard/sessions", operation_id = "wizard.createSignupSession", tag = "wizard",
    request_body = CreateSignup,
    responses((status = 201, body = SignupView), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn create_session(
    State(state): State<AppState>,
    Client(origin): Client,
    ApiJson(body): ApiJson<CreateSignup>,
) -> Result<(StatusCode, Json<SignupView>), ApiError> {
    state.limits.login.check(
        &format!("signup-ip:{}", origin.ip.as_deref().unwrap_or("-")),
        "signups from this address",
    )?;
    let email = body.email.trim();
    if !super::tenants::valid_email(email) {
        return Err(ApiError::validation(
            "email",
            "format",
            "email must be an email address",
        ));
    }
    // The same work on both paths (a lookup and an insert), so the answer time
    // does not tell a stranger more than the answer does.
    let exists = users::account_by_email(&state.pool, email).await?.is_some();
    let ttl = chrono::Duration::minutes(state.config.accounts.signup_ttl_minutes);
    let session = signup::create(&state.pool, email, exists, ttl).await?;
    let (next, message) = if exists {
        (
            "login",
            "an account already exists for this email: log in instead",
        )
    } else {
        ("account", "continue with step 1: choose a password")
    };
    let view = SignupView {
        session_id: session.id,
        expires_at: session.expires_at,
        next: next.into(),
        message: message.into(),
    };
    Ok((StatusCode::CREATED, Json(view)))
}

async fn load(state: &AppState, id: &str) -> Result<SignupSession, ApiError> {
    let missing = || ApiError::NotFound("no such signup session".into());
    let id: Uuid = id.parse().map_err(|_| missing())?;
    match signup::get(&state.pool, id).await {
        Ok(s) => Ok(s),
        Err(StoreError::NotFound) => Err(missing()),
        Err(e) => Err(e.into()),
    }
}

fn usable(s: &SignupSession) -> Result<(), ApiError> {
    if s.login_required {
        return Err(ApiError::conflict(
            "account_exists",
            "an account already exists for this email: log in instead",
        ));
    }
    if s.tenant_id.is_some() {
        return Err(ApiError::conflict(
            "session_deployed",
            "this signup is complete; sign in to manage your instance",
        ));
    }
    if s.expires_at <= Utc::now() {
        return Err(ApiError::Gone(
            "this signup session has expired; start again".into(),
        ));
    }
    Ok(())
}

/// Where a signup session stands.
#[utoipa::path(get, path = "/api/v1/wizard/sessions/{id}", operation_id = "wizard.getSession", tag = "wizard",
    params(("id" = Uuid, Path, description = "signup session id")),
    responses((status = 200, body = SessionView), (status = 404, body = ErrorBody)))]
pub async fn get_session(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SessionView>, ApiError> {
    let session = load(&state, &id).await?;
    Ok(Json(session_view(&session)))
}

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
        (status = 410, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_session(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StepUpdate>,
) -> Result<Json<SessionView>, ApiError> {
    let session = load(&state, &id).await?;
    usable(&session)?;
    if !(1..=STEPS).contains(&body.step) {
        return Err(ApiError::validation(
            "step",
            "range",
            "step must be 1, 2, 3 or 4",
        ));
    }
    if body.step > session.steps_done + 1 {
        let missing = session.steps_done + 1;
        return Err(ApiError::ConflictWith {
            code: "step_out_of_order",
            message: format!("complete step {missing} first"),
            details: json!({ "missingStep": missing }),
        });
    }
    let mut strength = None;
    let mut suggestion = None;
    let saved = match body.step {
        1 => {
            let step: AccountStep = parse_step(body.data, 1)?;
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
            strength = Some(password::strength(&step.password, &session.email));
            let hash = hash_password(step.password).await?;
            signup::save_step(
                &state.pool,
                session.id,
                StepData::Account {
                    name,
                    password_hash: &hash,
                },
            )
            .await?
        }
        2 => {
            let step: UseStep = parse_step(body.data, 2)?;
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
            if matches!(step.intended_use.as_str(), "testing" | "learning") {
                suggestion = Some(Suggestion {
                    message: "To try Fresco or learn it, the public sandbox may be all you need; you can still go on."
                        .into(),
                    sandbox_url: state.config.accounts.sandbox_url.clone(),
                });
            }
            let data = StepData::IntendedUse {
                intended_use: &step.intended_use,
                other,
            };
            signup::save_step(&state.pool, session.id, data).await?
        }
        3 => {
            let step: SubdomainStep = parse_step(body.data, 3)?;
            let subdomain = Subdomain::parse(step.subdomain.trim())
                .map_err(|e| ApiError::validation("subdomain", e.rule(), e.to_string()))?;
            if taken(&state, subdomain.as_str()).await? {
                return Err(ApiError::ConflictWith {
                    code: "subdomain_taken",
                    message: format!("subdomain \"{subdomain}\" is already taken"),
                    details: json!({ "suggestions": suggestions(&state, subdomain.as_str()).await? }),
                });
            }
            signup::save_step(
                &state.pool,
                session.id,
                StepData::Subdomain(subdomain.as_str()),
            )
            .await?
        }
        _ => {
            let step: TermsStep = parse_step(body.data, 4)?;
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
            signup::save_step(
                &state.pool,
                session.id,
                StepData::Terms { version: current },
            )
            .await?
        }
    };
    let mut view = session_view(&saved);
    view.strength = strength;
    view.suggestion = suggestion;
    Ok(Json(view))
}

/// Creates the account and the tenant in one transaction, signs the user in
/// (session cookie) and queues the deployment. A repeated submit returns the
/// same tenant.
#[utoipa::path(post, path = "/api/v1/wizard/sessions/{id}/deploy", operation_id = "wizard.deployTenant", tag = "wizard",
    params(("id" = Uuid, Path, description = "signup session id")), request_body = DeployRequest,
    responses((status = 202, body = DeployView, description = "queued; sets the session cookie"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn deploy(
    State(state): State<AppState>,
    Client(origin): Client,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DeployRequest>,
) -> Result<Response, ApiError> {
    state.limits.actions.check(
        &format!("deploy-ip:{}", origin.ip.as_deref().unwrap_or("-")),
        "deployments from this address",
    )?;
    let configuration = body.configuration.unwrap_or(json!({}));
    if !configuration.is_object() || configuration.to_string().len() > 4096 {
        return Err(ApiError::validation(
            "configuration",
            "shape",
            "configuration must be a JSON object of at most 4 KiB",
        ));
    }
    let session = load(&state, &id).await?;
    let mut tx = state.pool.begin().await?;
    let session = signup::get_for_update(&mut tx, session.id).await?;
    if let Some(tenant_id) = session.tenant_id {
        // A double submit: the same tenant, and no second login from a session id.
        let tenant = tenants::get(&state.pool, crate::domain::TenantId(tenant_id)).await?;
        return Ok((StatusCode::ACCEPTED, Json(deploy_view(&state, &tenant))).into_response());
    }
    usable(&session)?;
    if session.steps_done < STEPS {
        let missing = session.steps_done + 1;
        return Err(ApiError::ConflictWith {
            code: "step_missing",
            message: format!("complete step {missing} before deploying"),
            details: json!({ "missingStep": missing }),
        });
    }
    let (Some(hash), Some(wanted)) = (
        session.password_hash.as_deref(),
        session.subdomain.as_deref(),
    ) else {
        return Err(ApiError::ConflictWith {
            code: "step_missing",
            message: "complete steps 1 and 3 before deploying".into(),
            details: json!({ "missingStep": 1 }),
        });
    };
    let subdomain = Subdomain::parse(wanted)
        .map_err(|e| ApiError::validation("subdomain", e.rule(), e.to_string()))?;
    let user_id = users::insert_member(&mut tx, &session.email, session.name.as_deref(), hash)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::conflict(
                "account_exists",
                "an account already exists for this email: log in instead",
            ),
            other => other.into(),
        })?;
    let new = NewTenant {
        user_id,
        subdomain: &subdomain,
        image: None,
        resource_limits: json!({}),
    };
    let tenant = match tenants::insert(&mut tx, new).await {
        Ok(t) => t,
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::ConflictWith {
                code: "subdomain_taken",
                message: format!(
                    "subdomain \"{subdomain}\" was taken meanwhile; choose another in step 3"
                ),
                details: json!({ "suggestions": suggestions(&state, subdomain.as_str()).await?, "missingStep": 3 }),
            })
        }
        Err(e) => return Err(e.into()),
    };
    tenants::set_signup_metadata(
        &mut tx,
        tenant.id,
        &configuration,
        session.intended_use.as_deref(),
        session.terms_version.as_deref(),
        session.terms_accepted_at,
    )
    .await?;
    signup::mark_deployed(&mut tx, session.id, user_id, tenant.id).await?;
    let audit_entry = Entry {
        user_id: Some(user_id),
        action: "wizard.deploy",
        target_type: Some("tenant"),
        target_id: Some(tenant.id.to_string()),
        metadata: json!({ "subdomain": tenant.subdomain }),
    };
    audit::record(&mut *tx, &origin, audit_entry).await?;
    tx.commit()
        .await
        .map_err(|e| match StoreError::from_sqlx(e) {
            StoreError::Conflict(_) => ApiError::conflict(
                "subdomain_taken",
                format!("subdomain \"{subdomain}\" was taken meanwhile"),
            ),
            other => other.into(),
        })?;
    let (headers, _) = open_session(&state, user_id, false, &origin).await?;
    tracing::info!(tenant_id = %tenant.id, subdomain = %tenant.subdomain, "signup deployed");
    Ok((
        StatusCode::ACCEPTED,
        headers,
        Json(deploy_view(&state, &tenant)),
    )
        .into_response())
}

fn deploy_view(state: &AppState, tenant: &tenants::Tenant) -> DeployView {
    DeployView {
        tenant_id: tenant.id,
        status: tenant.status.clone(),
        url: state.config.tenants.tenant_url(&tenant.subdomain),
        status_url: format!("/api/v1/tenants/{}/deployment", tenant.id),
    }
}
