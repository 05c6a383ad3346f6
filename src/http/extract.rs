//! Extractors that turn malformed input into the API's error envelope instead of
//! axum's plain-text rejections, and refuse input Postgres could not store.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ApiError;
use crate::domain::TenantId;

/// A JSON body. Text with a NUL character is refused here (422): Postgres cannot
/// store it, and no field of the API has a use for it.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let value = match axum::Json::<Value>::from_request(req, state).await {
            Ok(axum::Json(v)) => v,
            // A body without a declared length that runs past `DefaultBodyLimit`.
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(super::bounds::too_large())
            }
            Err(JsonRejection::MissingJsonContentType(_)) => {
                return Err(ApiError::BadRequest(
                    "send the body as JSON with Content-Type: application/json".into(),
                ))
            }
            Err(e) => {
                return Err(ApiError::BadRequest(format!(
                    "request body is not valid JSON: {}",
                    e.body_text()
                )))
            }
        };
        if let Some(field) = nul_in(&value) {
            return Err(no_nul(&field));
        }
        serde_json::from_value(value)
            .map(Self)
            .map_err(|e| ApiError::Validation {
                message: format!("request body does not match the expected shape: {e}"),
                details: Value::Null,
            })
    }
}

/// The path (`data.password`, `items.0`) of the first string holding a NUL, if any.
fn nul_in(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => s.contains('\0').then(String::new),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_in(v).map(|rest| join(&i.to_string(), &rest))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                return Some(k.replace('\0', "\\u0000"));
            }
            nul_in(v).map(|rest| join(k, &rest))
        }),
        _ => None,
    }
}

fn join(head: &str, rest: &str) -> String {
    if rest.is_empty() {
        head.to_owned()
    } else {
        format!("{head}.{rest}")
    }
}

fn no_nul(field: &str) -> ApiError {
    ApiError::validation(
        field,
        "no_nul",
        "text may not contain NUL (\\u0000) characters",
    )
}

/// Query parameters.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // `%00` is the only way a NUL reaches a query string.
        let query = parts.uri.query().unwrap_or_default();
        if let Some(pair) = query.split('&').find(|pair| pair.contains("%00")) {
            return Err(no_nul(pair.split('=').next().unwrap_or_default()));
        }
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
    #[param(minimum = 1)]
    pub page: Option<u32>,
    /// Items per page, 1-100 (default 20).
    #[param(rename = "perPage", minimum = 1, maximum = 100)]
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
    /// How many there are in all (absent on a page after a cursor: the first
    /// page said).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    /// Where a list that pages by cursor goes on (`?after=`); absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Parses RFC 3339 or a relative duration (`90s`, `10m`, `2h`, `1d`) into a time.
pub fn parse_time(field: &str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    let bad = || {
        ApiError::validation(
            field,
            "time",
            format!("{field} must be an RFC 3339 time or a duration like 30s, 10m, 2h, 1d"),
        )
    };
    let (digits, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => n,
        "m" => n.checked_mul(60).ok_or_else(bad)?,
        "h" => n.checked_mul(3600).ok_or_else(bad)?,
        "d" => n.checked_mul(86_400).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    chrono::Duration::try_seconds(seconds)
        .and_then(|d| Utc::now().checked_sub_signed(d))
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_absolute_times() {
        let ten = parse_time("since", "10m").unwrap();
        assert!((Utc::now() - ten).num_seconds() - 600 <= 1);
        assert!(parse_time("since", "2026-01-01T00:00:00Z").is_ok());
        for bad in ["", "10", "m", "10y", "-5m", "99999999999999999d"] {
            assert!(parse_time("since", bad).is_err(), "{bad}");
        }
    }
}
