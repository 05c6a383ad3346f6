//! `/api/v1/api-keys`: self-service API keys. The full key is shown once, in the
//! answer that creates it; afterwards only its prefix.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::caller::Caller;
use super::client::Client;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use super::ApiRouter;
use crate::http::AppState;
use crate::store::audit::{self, Entry, Origin};
use crate::store::users::{self, ApiKeyInfo};
use utoipa_axum::routes;

pub fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateKey {
    /// What the key is for.
    pub name: String,
    /// When the key stops working (optional).
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKey {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    /// The full key: shown this once, stored only as a hash.
    pub key: String,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyList {
    pub data: Vec<ApiKeyInfo>,
}

/// The caller's keys (prefix, use, expiry; never the key).
#[utoipa::path(get, path = "/api/v1/api-keys", operation_id = "apiKeys.list", tag = "apiKeys",
    responses((status = 200, body = KeyList), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<KeyList>, ApiError> {
    Ok(Json(KeyList {
        data: users::list_api_keys(&state.pool, caller.user.id).await?,
    }))
}

/// Creates a key for the caller.
#[utoipa::path(post, path = "/api/v1/api-keys", operation_id = "apiKeys.create", tag = "apiKeys", request_body = CreateKey,
    responses((status = 201, body = CreatedKey), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Client(origin): Client,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let view = create_key(&state, &caller, &origin, body).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Checks the name and expiry, stores the key's hash and records it; the one
/// answer that holds the full key. Shared by the API and the settings page.
pub(crate) async fn create_key(
    state: &AppState,
    caller: &Caller,
    origin: &Origin,
    body: CreateKey,
) -> Result<CreatedKey, ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::validation(
            "name",
            "length",
            "name must be 1 to 100 characters",
        ));
    }
    if body.expires_at.is_some_and(|e| e <= Utc::now()) {
        return Err(ApiError::validation(
            "expiresAt",
            "future",
            "expiresAt must be in the future",
        ));
    }
    let mut tx = state.pool.begin().await?;
    let key =
        users::insert_api_key_expiring(&mut tx, caller.user.id, name, body.expires_at).await?;
    tx.commit().await?;
    audit::record(
        &state.pool,
        origin,
        Entry::new(Some(caller.user.id), "key.create").on("api_key", key.id),
    )
    .await?;
    Ok(CreatedKey {
        id: key.id,
        name: name.to_owned(),
        prefix: key.prefix.clone(),
        key: key.secret,
        expires_at: body.expires_at,
    })
}

/// Revokes one of the caller's keys.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", operation_id = "apiKeys.revoke", tag = "apiKeys",
    params(("id" = Uuid, Path, description = "key id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Client(origin): Client,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    revoke_key(&state, &caller, &origin, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes one of the caller's live keys (anything else is a 404) and records
/// it. Shared by the API and the settings page.
pub(crate) async fn revoke_key(
    state: &AppState,
    caller: &Caller,
    origin: &Origin,
    id: &str,
) -> Result<(), ApiError> {
    let missing = || ApiError::NotFound("no such API key".into());
    let id: Uuid = id.parse().map_err(|_| missing())?;
    if !users::revoke_api_key(&state.pool, caller.user.id, id).await? {
        return Err(missing());
    }
    audit::record(
        &state.pool,
        origin,
        Entry::new(Some(caller.user.id), "key.revoke").on("api_key", id),
    )
    .await?;
    Ok(())
}
