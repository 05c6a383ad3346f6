//! The API's error type and envelope.
//!
//! Every failure leaves as `{"error":{"code","message","details"},"meta":{"requestId"}}`
//! with a status that says whose fault it is. Client errors carry a message a
//! person can act on. Server errors are logged with the request id and answered
//! with a generic message: internal details (SQL, Docker) never reach the client.

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
    #[error("missing or invalid API key")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{message}")]
    Validation { message: String, details: Value },
    #[error("{0}")]
    Unavailable(String),
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

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            Self::Validation { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
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
            StoreError::Db(e) => Self::Internal(e.to_string()),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let request_id = request_id::current();
        let (message, details) = match self {
            Self::Internal(detail) => {
                tracing::error!(request_id = %request_id, error = %detail, "request failed");
                (
                    "internal error; quote the request id when reporting it".to_owned(),
                    Value::Null,
                )
            }
            Self::Validation { message, details } => (message, details),
            other => (other.to_string(), Value::Null),
        };
        let body = json!({
            "error": { "code": code, "message": message, "details": details },
            "meta": { "requestId": request_id },
        });
        (status, Json(body)).into_response()
    }
}
