//! Form posts: the urlencoded body a `<form>` sends (with or without htmx), and
//! the errors that go back beside each field.

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::WebError;
use crate::http::error::ApiError;
use crate::http::AppState;

/// A submitted form. A body that is not the form the page sends (a script's
/// guess) is a 400 page, never a panic.
pub struct PageForm<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for PageForm<T> {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, WebError> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(value)) => Ok(Self(value)),
            Err(rejection) => Err(WebError::Refused {
                status: axum::http::StatusCode::BAD_REQUEST,
                message: format!(
                    "The form could not be read ({}). Reload the page and try again.",
                    rejection.body_text()
                ),
            }),
        }
    }
}

/// Errors to show next to form fields, plus one for the form as a whole.
#[derive(Debug, Default)]
pub struct FieldErrors {
    fields: Vec<(String, String)>,
    pub form: Option<String>,
}

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.fields.push((field.to_owned(), message.into()));
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    pub fn has(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.form.is_none()
    }

    /// Puts an API refusal where a person will see it: a validation error
    /// beside its field (API field names are camelCase; form fields use the
    /// same names), anything the user can act on above the form. Errors that are
    /// not about the input (the database is down) stay errors.
    pub fn absorb(&mut self, e: ApiError) -> Result<(), WebError> {
        match e {
            ApiError::Validation { message, details } => {
                match details.get("field").and_then(Value::as_str) {
                    Some(field) => self.add(field, message),
                    None => self.form = Some(message),
                }
                Ok(())
            }
            ApiError::BadCredentials
            | ApiError::Conflict { .. }
            | ApiError::ConflictWith { .. }
            | ApiError::RateLimited { .. }
            | ApiError::BadRequest(_)
            | ApiError::Gone(_) => {
                self.form = Some(e.to_string());
                Ok(())
            }
            other => Err(other.into()),
        }
    }
}
