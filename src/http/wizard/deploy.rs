//! The wizard's last step: the account and the tenant, created in one
//! transaction; the person is signed in and the deployment queued.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::subdomain::suggestions;
use super::{load, usable, STEPS};
use crate::domain::{Subdomain, TenantId};
use crate::http::auth::{open_session, send_verification_to};
use crate::http::client::Client;
use crate::http::error::{ApiError, ErrorBody, OnConflict};
use crate::http::extract::ApiJson;
use crate::http::AppState;
use crate::store::audit::{self, Entry, Origin};
use crate::store::signup::{self, SignupSession};
use crate::store::tenants::{self, NewTenant, Tenant};
use crate::store::{users, StoreError};

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
    /// What the person should do next: confirm the email (a link is on its way)
    /// before creating more instances.
    pub message: String,
}

/// The instance preferences, if they are a JSON object of at most 4 KiB.
fn configuration(body: DeployRequest) -> Result<Value, ApiError> {
    let configuration = body.configuration.unwrap_or(json!({}));
    if !configuration.is_object() || configuration.to_string().len() > 4096 {
        return Err(ApiError::validation(
            "configuration",
            "shape",
            "configuration must be a JSON object of at most 4 KiB",
        ));
    }
    Ok(configuration)
}

/// The password hash and subdomain of a session whose four steps are done.
fn completed<'s>(
    state: &AppState,
    session: &'s SignupSession,
) -> Result<(&'s str, Subdomain), ApiError> {
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
    let subdomain = state
        .config
        .subdomain(wanted)
        .map_err(|e| ApiError::validation("subdomain", e.rule(), e.to_string()))?;
    Ok((hash, subdomain))
}

/// Unverified accounts (every account the wizard creates) may hold one
/// tenant each, and all of them together `UNVERIFIED_TENANT_CAP`: past it the
/// wizard takes no new signups until some confirm their email or go.
async fn room_for_unverified(
    state: &AppState,
    tx: &mut Transaction<'_, Postgres>,
) -> Result<(), ApiError> {
    let held = users::lock_and_count_unverified_tenants(tx).await?;
    if held >= state.config.accounts.unverified_tenant_cap {
        return Err(ApiError::Forbidden(
            "the platform is not taking new signups right now (too many instances wait for their \
             owners to confirm their email); try again later"
                .into(),
        ));
    }
    Ok(())
}

/// Creates the account and the tenant in one transaction, signs the user in
/// (session cookie) and queues the deployment. The account starts unverified: a
/// confirmation link is mailed, and until it is used this is the account's only
/// tenant (`tenants.create` asks for a verified email). A repeated submit
/// returns the same tenant.
#[utoipa::path(post, path = "/api/v1/wizard/sessions/{id}/deploy", operation_id = "wizard.deployTenant", tag = "wizard",
    params(("id" = Uuid, Path, description = "signup session id")), request_body = DeployRequest,
    responses((status = 202, body = DeployView, description = "queued; sets the session cookie"),
        (status = 403, body = ErrorBody, description = "UNVERIFIED_TENANT_CAP reached: no new signups for now"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn deploy(
    State(state): State<AppState>,
    Client(origin): Client,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DeployRequest>,
) -> Result<Response, ApiError> {
    let (headers, tenant) = run(&state, &origin, &id, body).await?;
    Ok((
        StatusCode::ACCEPTED,
        headers,
        Json(deploy_view(&state, &tenant)),
    )
        .into_response())
}

/// The operation behind `wizard.deployTenant`, shared with the wizard's pages:
/// the tenant, and the new session's Set-Cookie (empty for a repeated submit,
/// which signs no one in).
pub(crate) async fn run(
    state: &AppState,
    origin: &Origin,
    id: &str,
    body: DeployRequest,
) -> Result<(HeaderMap, Tenant), ApiError> {
    state.limits.wizard_deploy(origin)?;
    let configuration = configuration(body)?;
    let session = load(state, id).await?;
    let mut tx = state.pool.begin().await?;
    let session = signup::get_for_update(&mut tx, session.id).await?;
    if let Some(tenant_id) = session.tenant_id {
        // A double submit: the same tenant, and no second login from a session id.
        let tenant = tenants::get(&state.pool, TenantId(tenant_id)).await?;
        return Ok((HeaderMap::new(), tenant));
    }
    usable(&session)?;
    let (hash, subdomain) = completed(state, &session)?;
    room_for_unverified(state, &mut tx).await?;
    let (user_id, tenant) =
        create_account_and_tenant(state, &mut tx, &session, hash, &subdomain).await?;
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
    let entry = Entry::new(Some(user_id), "wizard.deploy")
        .on("tenant", tenant.id)
        .with(json!({ "subdomain": tenant.subdomain }));
    audit::record(&mut *tx, origin, entry).await?;
    tx.commit().await.on_conflict(|| {
        ApiError::conflict(
            "subdomain_taken",
            format!("subdomain \"{subdomain}\" was taken meanwhile"),
        )
    })?;
    let (headers, _) = open_session(state, user_id, false, origin).await?;
    send_verification_to(state, user_id, &session.email).await?;
    tracing::info!(tenant_id = %tenant.id, subdomain = %tenant.subdomain, "signup deployed");
    Ok((headers, tenant))
}

/// The member and their tenant (queued for deployment), in the caller's
/// transaction. A subdomain taken since step 3 comes back with suggestions.
async fn create_account_and_tenant(
    state: &AppState,
    tx: &mut Transaction<'_, Postgres>,
    session: &SignupSession,
    hash: &str,
    subdomain: &Subdomain,
) -> Result<(Uuid, Tenant), ApiError> {
    let user_id = users::insert_member(tx, &session.email, session.name.as_deref(), hash)
        .await
        .on_conflict(|| {
            ApiError::conflict(
                "account_exists",
                "an account already exists for this email: log in instead",
            )
        })?;
    let new = NewTenant {
        user_id,
        subdomain,
        image: None,
        resource_limits: json!({}),
    };
    match tenants::insert(tx, new).await {
        Ok(tenant) => Ok((user_id, tenant)),
        Err(StoreError::Conflict(_)) => Err(ApiError::ConflictWith {
            code: "subdomain_taken",
            message: format!(
                "subdomain \"{subdomain}\" was taken meanwhile; choose another in step 3"
            ),
            details: json!({ "suggestions": suggestions(state, subdomain.as_str()).await?, "missingStep": 3 }),
        }),
        Err(e) => Err(e.into()),
    }
}

fn deploy_view(state: &AppState, tenant: &Tenant) -> DeployView {
    DeployView {
        tenant_id: tenant.id,
        status: tenant.status.to_string(),
        url: state.config.tenants.tenant_url(&tenant.subdomain),
        status_url: format!("/api/v1/tenants/{}/deployment", tenant.id),
        message: "your instance is on its way. We sent you a link to confirm your email \
                  address: until you confirm it, this is the only instance your account may \
                  have"
            .into(),
    }
}
