//! Failures as pages: 404, 403, 409, 429, 500 and 503 each render the error
//! page with a sentence a person can act on and, for server errors, the request
//! id to quote. A page that needs a signed-in user sends a visitor to the login
//! page, with the way back.

use askama::Template;
use askama_web::WebTemplate;
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::layout::{Layout, Section};
use crate::http::error::ApiError;
use crate::http::request_id;
use crate::store::StoreError;

#[derive(Debug)]
pub enum WebError {
    /// Not signed in: go to the login page, then back to `next`.
    SignIn {
        next: String,
    },
    NotFound,
    Forbidden(String),
    /// A refusal a person can act on (a conflict, a rate limit, bad input that
    /// has no form field to sit beside).
    Refused {
        status: StatusCode,
        message: String,
    },
    Unavailable(String),
    Internal(String),
}

#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub layout: Layout,
    pub status: u16,
    pub heading: &'static str,
    pub message: String,
    pub request_id: Option<String>,
}

impl WebError {
    pub fn sign_in(next: &str) -> Self {
        Self::SignIn {
            next: next.to_owned(),
        }
    }
}

/// The login page's URL that leads back to `next` (a local path only, so the
/// link cannot send anyone to another site).
pub fn login_url(next: &str) -> String {
    if is_local_path(next) && next != "/" {
        format!("/login?next={}", urlencode(next))
    } else {
        "/login".to_owned()
    }
}

/// A path on this site: starts with one `/`, not `//` or `/\` (which browsers
/// read as another host).
pub fn is_local_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && !path.chars().any(|c| c.is_control())
}

pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl From<ApiError> for WebError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Unauthorized | ApiError::BadCredentials => Self::sign_in("/"),
            ApiError::NotFound(_) => Self::NotFound,
            ApiError::Forbidden(m) => Self::Forbidden(m),
            ApiError::Csrf => Self::Forbidden(ApiError::Csrf.to_string()),
            ApiError::DatabaseUnavailable(cause) => {
                tracing::warn!(error = %cause, "page: database unavailable");
                Self::Unavailable(
                    "The platform's database is not reachable right now. Try again in a few seconds."
                        .into(),
                )
            }
            ApiError::Unavailable(m) => Self::Unavailable(m),
            ApiError::Busy { message, .. } => Self::Unavailable(message),
            ApiError::Internal(detail) => Self::Internal(detail),
            other => {
                let status = other.status();
                Self::Refused {
                    status,
                    message: other.to_string(),
                }
            }
        }
    }
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<sqlx::Error> for WebError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::from(e).into()
    }
}

impl From<askama::Error> for WebError {
    fn from(e: askama::Error) -> Self {
        Self::Internal(format!("rendering a page: {e}"))
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, heading, message, request_id) = match self {
            Self::SignIn { next } => {
                let mut response = Redirect::to(&login_url(&next)).into_response();
                // htmx follows this header instead of swapping the login page in.
                if let Ok(v) = HeaderValue::from_str(&login_url(&next)) {
                    response.headers_mut().insert("hx-redirect", v);
                }
                debug_assert!(response.headers().contains_key(LOCATION));
                return response;
            }
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "Page not found",
                "There is nothing at this address, or it is not yours to see. Check the link, or go back to your dashboard.".to_owned(),
                None,
            ),
            Self::Forbidden(m) => (StatusCode::FORBIDDEN, "Not allowed", m, None),
            Self::Refused { status, message } => {
                (status, "That did not work", message, None)
            }
            Self::Unavailable(m) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                m,
                None,
            ),
            Self::Internal(detail) => {
                let id = request_id::current();
                tracing::error!(request_id = %id, error = %detail, "page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The platform hit an error it did not expect. Try again; if it keeps happening, contact support and quote the request id below.".to_owned(),
                    Some(id),
                )
            }
        };
        let page = ErrorPage {
            layout: Layout::new(heading, Section::Home),
            status: status.as_u16(),
            heading,
            message,
            request_id,
        };
        (status, page).into_response()
    }
}

/// The HTML 404 for any path no page or endpoint matches.
pub async fn not_found() -> WebError {
    WebError::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_way_back_after_login_stays_on_this_site() {
        assert_eq!(login_url("/instances/abc"), "/login?next=/instances/abc");
        assert_eq!(login_url("//evil.example"), "/login");
        assert_eq!(login_url("/\\evil.example"), "/login");
        assert_eq!(login_url("https://evil.example"), "/login");
        assert_eq!(login_url("/a?b=c&d"), "/login?next=/a%3Fb%3Dc%26d");
    }
}
