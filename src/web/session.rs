//! Who is looking at a page: the session cookie, read exactly as the API reads
//! it (`http::caller::session_caller`), so the pages and the API share one
//! notion of a session and one CSRF rule (cookie-authenticated changes come
//! from the platform's own origin).

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;

use super::error::WebError;
use crate::http::caller::{session_caller, Caller};
use crate::http::error::ApiError;
use crate::http::AppState;

/// A signed-in user; anyone else is sent to the login page and back.
pub struct Member(pub Caller);

/// The page's path and query, for the way back after login.
fn here(parts: &Parts) -> String {
    parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned())
}

impl FromRequestParts<AppState> for Member {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        match session_caller(parts, state).await {
            Ok(caller) => Ok(Self(caller)),
            Err(ApiError::Unauthorized) => {
                // After a form post, come back to the page the form was on.
                let next = if parts.method == axum::http::Method::GET {
                    here(parts)
                } else {
                    "/dashboard".to_owned()
                };
                Err(WebError::sign_in(&next))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// A signed-in admin; a signed-in user who is not one sees a 403 page.
pub struct Admin(pub Caller);

impl FromRequestParts<AppState> for Admin {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let Member(caller) =
            <Member as FromRequestParts<AppState>>::from_request_parts(parts, state).await?;
        if !caller.is_admin() {
            return Err(WebError::Forbidden(
                "This page is for platform admins.".into(),
            ));
        }
        Ok(Self(caller))
    }
}

/// `Option<Member>`: pages anyone may see, which show more when signed in.
impl OptionalFromRequestParts<AppState> for Member {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, WebError> {
        match session_caller(parts, state).await {
            Ok(caller) => Ok(Some(Self(caller))),
            Err(ApiError::Unauthorized) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
