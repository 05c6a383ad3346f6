//! Who is calling: `Authorization: Bearer <api key>`. Keys are looked up by
//! their SHA-256 hash; the key itself is never stored or logged.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::app::AppState;
use crate::domain::Role;
use crate::store::tenants::Tenant;
use crate::store::users::{self, User};

pub struct Caller(pub User);

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.0.role() == Role::Admin
    }

    /// Owners see their own tenants, admins see all; anything else is reported
    /// exactly as a missing tenant.
    pub fn may_see(&self, tenant: &Tenant) -> bool {
        self.is_admin() || tenant.user_id == self.0.id
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "this endpoint is for platform admins".into(),
            ))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        let key = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= 200)
            .ok_or(ApiError::Unauthorized)?;
        let user = users::user_for_api_key(&state.pool, key)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        Ok(Self(user))
    }
}
