//! `POST /api/v1/tenants`: a new tenant, for the caller (members, within their
//! quota) or, for admins, for any owner with a pinned image or other limits.
//!
//! Email verification: a member needs a verified email to create a tenant here
//! (the signup wizard's one tenant per unverified account is the exception).
//! An admin's `ownerEmail` attaches the tenant only to an account that is
//! verified, or to one nobody has signed in to yet (no password: an account an
//! admin created this way, new or earlier). Such an account gets its password
//! through an emailed reset link, and using that link verifies the address. An
//! unverified account with a password (someone signed up with that address
//! and never proved it) is refused: the tenant could go to the wrong person.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::{view, TenantView};
use crate::domain::{Email, Role, Subdomain};
use crate::http::caller::Caller;
use crate::http::client::Client;
use crate::http::error::{ApiError, ErrorBody, OnConflict};
use crate::http::extract::ApiJson;
use crate::http::AppState;
use crate::provision::runtime::routing_labels;
use crate::provision::spec::ResourceLimits;
use crate::store::audit::{self, Entry};
use crate::store::tenants::{self, NewTenant};
use crate::store::users;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTenant {
    pub subdomain: String,
    /// Admins only: the owner (created as a member if new). Members own what they create.
    pub owner_email: Option<String>,
    /// Admins only: pins this tenant to an image other than FRESCO_IMAGE.
    pub image: Option<String>,
    /// Admins only: overrides of the configured limits.
    #[schema(value_type = Object)]
    pub resource_limits: Option<ResourceLimits>,
}

/// A create request that passed every check that needs no database.
struct Checked<'a> {
    subdomain: Subdomain,
    owner: Option<Email>,
    image: Option<&'a str>,
    limits: Value,
}

fn valid_image(image: &str) -> bool {
    (1..=255).contains(&image.len())
        && image
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"./:_@-".contains(&b))
        && image.as_bytes()[0].is_ascii_alphanumeric()
}

fn check<'a>(
    state: &AppState,
    caller: &Caller,
    body: &'a CreateTenant,
) -> Result<Checked<'a>, ApiError> {
    let subdomain = state
        .config
        .subdomain(&body.subdomain)
        .map_err(|e| ApiError::validation("subdomain", e.rule(), e.to_string()))?;
    if !caller.is_admin()
        && (body.owner_email.is_some() || body.image.is_some() || body.resource_limits.is_some())
    {
        return Err(ApiError::Forbidden(
            "ownerEmail, image and resourceLimits are for platform admins".into(),
        ));
    }
    let owner = body
        .owner_email
        .as_deref()
        .map(|e| {
            Email::parse(e).map_err(|_| {
                ApiError::validation(
                    "ownerEmail",
                    "format",
                    "ownerEmail must be an email address",
                )
            })
        })
        .transpose()?;
    let image = body.image.as_deref();
    if image.is_some_and(|i| !valid_image(i)) {
        return Err(ApiError::validation(
            "image",
            "format",
            "image must be a Docker image reference such as registry/name:tag",
        ));
    }
    let limits = body.resource_limits.clone().unwrap_or_default();
    if let Some(problem) = limits.problem() {
        return Err(ApiError::validation("resourceLimits", "range", problem));
    }
    let limits = serde_json::to_value(&limits).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Checked {
        subdomain,
        owner,
        image,
        limits,
    })
}

/// A pinned image present locally must carry no `traefik.*` labels (it could
/// route itself). One not present yet, or an engine that does not answer, is
/// checked again by the reconciler before the container is created.
async fn check_image_labels(state: &AppState, image: &str) -> Result<(), ApiError> {
    let labels = match state.runtime.image_labels(image).await {
        Ok(labels) => labels,
        Err(e) => {
            tracing::warn!(error = %e, "image labels unknown; the reconciler checks them");
            None
        }
    };
    let routing = routing_labels(labels.iter().flatten());
    if routing.is_empty() {
        return Ok(());
    }
    Err(ApiError::validation(
        "image",
        "labels",
        format!(
            "image carries Traefik labels ({}); pin an image without traefik.* labels",
            routing.join(", ")
        ),
    ))
}

/// The account an admin's `ownerEmail` names, created (without a password) if
/// new; refused when it has a password but no verified email.
async fn owner_for(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    email: &Email,
) -> Result<uuid::Uuid, ApiError> {
    let owner = users::find_or_create_by_email(tx, email.as_str(), Role::Member).await?;
    if users::holder_unverified(tx, owner.id).await? {
        return Err(ApiError::conflict(
            "owner_unverified",
            format!(
                "the account {email} has not verified its email address; it must verify it \
                 before a tenant can be attached to it"
            ),
        ));
    }
    Ok(owner.id)
}

/// Requests a new tenant. Members own what they create, up to their quota.
#[utoipa::path(post, path = "/api/v1/tenants", operation_id = "tenants.create", tag = "tenants", request_body = CreateTenant,
    responses((status = 202, body = TenantView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "not allowed, quota reached, or the caller's email is not verified yet"),
        (status = 409, body = ErrorBody, description = "subdomain taken, or `ownerEmail` names an account that has not verified its email"),
        (status = 422, body = ErrorBody, description = "invalid input, or a pinned `image` carries `traefik.*` labels"),
        (status = 429, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Client(origin): Client,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    state
        .limits
        .user_action(caller.user.id, "deployments and lifecycle actions")?;
    let wanted = check(&state, &caller, &body)?;
    if !caller.is_admin() && !users::is_verified(&state.pool, caller.user.id).await? {
        return Err(ApiError::Forbidden(
            "verify your email address first: POST /api/v1/auth/verify-email sends you a link"
                .into(),
        ));
    }
    if let Some(image) = wanted.image {
        check_image_labels(&state, image).await?;
    }
    let mut tx = state.pool.begin().await?;
    let owner_id = match &wanted.owner {
        Some(e) => owner_for(&mut tx, e).await?,
        None => caller.user.id,
    };
    if !caller.is_admin() {
        let live = tenants::lock_and_count_live_for(&mut tx, owner_id).await?;
        let quota = state.config.accounts.tenant_quota;
        if live >= quota {
            return Err(ApiError::Forbidden(format!(
                "tenant quota reached: you may have {quota} instances; destroy one to create another"
            )));
        }
    }
    let subdomain = &wanted.subdomain;
    let taken = || {
        ApiError::conflict(
            "subdomain_taken",
            format!("subdomain \"{subdomain}\" is already taken"),
        )
    };
    let new = NewTenant {
        user_id: owner_id,
        subdomain,
        image: wanted.image,
        resource_limits: wanted.limits,
    };
    let tenant = tenants::insert(&mut tx, new).await.on_conflict(taken)?;
    tx.commit().await.on_conflict(taken)?;
    let entry = Entry::new(Some(caller.user.id), "tenant.create").on("tenant", tenant.id);
    audit::record(&state.pool, &origin, entry).await?;
    tracing::info!(tenant_id = %tenant.id, subdomain = %tenant.subdomain, "tenant requested");
    Ok((StatusCode::ACCEPTED, Json(view(&state, &tenant))))
}
