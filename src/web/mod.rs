//! The pages people use: server-rendered HTML (askama templates beside the
//! handlers, in `templates/`), enhanced by htmx and its SSE extension, with
//! every asset embedded in the binary. Pages call the same domain and store
//! code as the API (and the API's operations where one exists, so a rule lives
//! in one place); they never call the API over HTTP.
//!
//! Every page works without JavaScript; a strict Content-Security-Policy allows
//! only the platform's own scripts and styles (no inline script, style or
//! `hx-on`).

pub(crate) mod account;
mod admin;
pub mod assets;
mod auth;
pub mod error;
pub mod form;
mod instances;
mod landing;
pub mod layout;
mod logs;
mod notifications;
pub mod session;
mod signup;
mod support;

use axum::extract::Request;
use axum::http::header::{CONTENT_TYPE, COOKIE};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;

use crate::http::AppState;

/// Scripts, styles, fonts, images and connections only from the platform
/// itself; no framing; forms post only here.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
frame-ancestors 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(assets::router())
        .merge(landing::router())
        .merge(auth::router())
        .merge(notifications::router())
        .merge(support::router())
        .merge(signup::router())
        .merge(account::router())
        .merge(instances::router())
        .merge(logs::router())
        .merge(admin::router())
}

/// Security headers on every page (the HTML 404 too: this wraps the whole
/// router), and the shown notice's cookie cleared.
pub async fn page_headers(request: Request, next: Next) -> Response {
    let had_notice = request
        .headers()
        .get_all(COOKIE)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.contains("fp_notice=")));
    let mut response = next.run(request).await;
    let is_html = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let headers = response.headers_mut();
    if is_html {
        headers.insert("content-security-policy", HeaderValue::from_static(CSP));
        headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
        headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
        headers.insert("cache-control", HeaderValue::from_static("no-store"));
        if had_notice && response.status().is_success() {
            let (name, value) = layout::Notice::clear();
            response.headers_mut().append(name, value);
        }
    }
    response.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}
