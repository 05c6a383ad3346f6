//! Extractors that turn malformed input into the API's error envelope instead of
//! axum's plain-text rejections.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::domain::TenantId;

/// A JSON body.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::Validation {
                message: format!(
                    "request body does not match the expected shape: {}",
                    e.body_text()
                ),
                details: serde_json::Value::Null,
            }),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::BadRequest(
                "send the body as JSON with Content-Type: application/json".into(),
            )),
            Err(e) => Err(ApiError::BadRequest(format!(
                "request body is not valid JSON: {}",
                e.body_text()
            ))),
        }
    }
}

/// Query parameters.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(e @ QueryRejection::FailedToDeserializeQueryString(_)) => {
                Err(ApiError::Validation {
                    message: format!("invalid query parameters: {}", e.body_text()),
                    details: serde_json::Value::Null,
                })
            }
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// A tenant id in the path. Anything that is not an id names no tenant: 404.
pub struct TenantPath(pub TenantId);

impl<S: Send + Sync> FromRequestParts<S> for TenantPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e: PathRejection| ApiError::BadRequest(e.body_text()))?;
        raw.parse()
            .map(Self)
            .map_err(|_| ApiError::tenant_not_found())
    }
}

/// `?page=&perPage=` on every list.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page, 1-100 (default 20).
    #[param(rename = "perPage")]
    pub per_page: Option<u32>,
}

impl Page {
    /// (page, per page, offset), or a 422 naming the bad parameter.
    pub fn resolve(&self) -> Result<(i64, i64, i64), ApiError> {
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(20);
        if page == 0 {
            return Err(ApiError::validation("page", "minimum", "page starts at 1"));
        }
        if !(1..=100).contains(&per_page) {
            return Err(ApiError::validation(
                "perPage",
                "range",
                "perPage must be between 1 and 100",
            ));
        }
        let (page, per_page) = (page as i64, per_page as i64);
        Ok((page, per_page, (page - 1) * per_page))
    }
}

/// A page of results.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageMeta {
    pub page: i64,
    pub per_page: i64,
    pub total: i64,
}
