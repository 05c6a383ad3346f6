//! The API's error type and envelope.
//!
//! Every failure leaves as `{"error":{"code","message","details"},"meta":{"requestId"}}`
//! with a status that says whose fault it is. Client errors carry a message a
//! person can act on. Server errors are logged with the request id and answered
//! with a generic message: internal details (SQL, Docker) never reach the client.
//! A platform database that cannot be reached is a 503 `database_unavailable`
//! (with `Retry-After`), not a 500: the pool reconnects by itself when it returns.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::request_id;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("sign in, or send a valid API key as `Authorization: Bearer <key>`")]
    Unauthorized,
    #[error("email or password is not correct")]
    BadCredentials,
    #[error("{0}")]
    Forbidden(String),
    #[error("cross-site request refused: cookie-authenticated changes must come from the platform's own pages")]
    Csrf,
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{message}")]
    ConflictWith {
        code: &'static str,
        message: String,
        details: Value,
    },
    #[error("{message}")]
    Validation { message: String, details: Value },
    #[error("{0}")]
    Gone(String),
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UriTooLong(String),
    #[error("{0}")]
    HeadersTooLarge(String),
    #[error("{0}")]
    Unavailable(String),
    /// Postgres is down or out of connections; carries the cause, for the log only.
    #[error("{DATABASE_UNAVAILABLE}")]
    DatabaseUnavailable(String),
    /// Too much of a bounded resource is in use right now; come back shortly.
    #[error("{message}")]
    Busy {
        message: String,
        retry_after_secs: u64,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn validation(field: &str, rule: &str, message: impl Into<String>) -> Self {
        Self::Validation {
            message: message.into(),
            details: json!({ "field": field, "rule": rule }),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn tenant_not_found() -> Self {
        Self::NotFound("no such tenant".to_owned())
    }

    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::BadCredentials => (StatusCode::UNAUTHORIZED, "bad_credentials"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::Csrf => (StatusCode::FORBIDDEN, "csrf_refused"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Conflict { code, .. } | Self::ConflictWith { code, .. } => {
                (StatusCode::CONFLICT, code)
            }
            Self::Validation { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            Self::Gone(_) => (StatusCode::GONE, "expired"),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UriTooLong(_) => (StatusCode::URI_TOO_LONG, "uri_too_long"),
            Self::HeadersTooLarge(_) => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            Self::DatabaseUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
            }
            Self::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound("not found".to_owned()),
            StoreError::Conflict(c) => Self::conflict(
                "conflict",
                format!("conflicts with an existing record ({c})"),
            ),
            StoreError::Db(e) => e.into(),
        }
    }
}

/// Answers a unique-constraint violation with the client error the caller names
/// (a taken subdomain is a 409, not a 500); any other failure maps as usual.
/// Works on store results and on a transaction's commit, where a racing insert
/// can also lose.
pub trait OnConflict<T> {
    fn on_conflict(self, conflict: impl FnOnce() -> ApiError) -> Result<T, ApiError>;
}

impl<T> OnConflict<T> for Result<T, StoreError> {
    fn on_conflict(self, conflict: impl FnOnce() -> ApiError) -> Result<T, ApiError> {
        self.map_err(|e| match e {
            StoreError::Conflict(_) => conflict(),
            other => other.into(),
        })
    }
}

impl<T> OnConflict<T> for Result<T, sqlx::Error> {
    fn on_conflict(self, conflict: impl FnOnce() -> ApiError) -> Result<T, ApiError> {
        self.map_err(StoreError::from_sqlx).on_conflict(conflict)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if crate::store::unavailable(&e) {
            return Self::DatabaseUnavailable(e.to_string());
        }
        // Text Postgres cannot store (a NUL): the extractors refuse it first; this
        // catches input that arrives another way.
        if let sqlx::Error::Database(db) = &e {
            if matches!(db.code().as_deref(), Some("22021" | "22P05")) {
                return Self::Validation {
                    message: "text may not contain NUL (\\u0000) characters".into(),
                    details: Value::Null,
                };
            }
        }
        Self::Internal(e.to_string())
    }
}

const DATABASE_UNAVAILABLE: &str =
    "the platform database is not reachable right now; try again in a few seconds";
/// How long a client should wait before asking again while the database is away.
const DATABASE_RETRY_AFTER_SECS: u64 = 5;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let request_id = request_id::current();
        let retry_after = match &self {
            Self::RateLimited {
                retry_after_secs, ..
            }
            | Self::Busy {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Self::DatabaseUnavailable(_) => Some(DATABASE_RETRY_AFTER_SECS),
            _ => None,
        };
        let (message, details) = match self {
            Self::Internal(detail) => {
                tracing::error!(request_id = %request_id, error = %detail, "request failed");
                (
                    "internal error; quote the request id when reporting it".to_owned(),
                    Value::Null,
                )
            }
            Self::DatabaseUnavailable(cause) => {
                tracing::warn!(request_id = %request_id, error = %cause, "platform database unavailable");
                (DATABASE_UNAVAILABLE.to_owned(), Value::Null)
            }
            Self::Validation { message, details }
            | Self::ConflictWith {
                message, details, ..
            } => (message, details),
            other => (other.to_string(), Value::Null),
        };
        let body = json!({
            "error": { "code": code, "message": message, "details": details },
            "meta": { "requestId": request_id },
        });
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// The error envelope, as documented.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
    pub meta: ErrorMeta,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `validation_failed`, `subdomain_taken`.
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// For validation errors: the field and the rule it broke.
    #[schema(value_type = Object, nullable)]
    pub details: Value,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorMeta {
    pub request_id: String,
}
