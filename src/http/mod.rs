//! The HTTP API: one router per resource, merged here, with request ids and a
//! span per request named by its route pattern.

pub mod admin;
pub mod auth;
pub mod error;
pub mod extract;
pub mod health;
pub mod request_id;
pub mod tenants;

use axum::extract::{MatchedPath, Request};
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::app::AppState;
use error::ApiError;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(tenants::router())
        .merge(admin::router())
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
            let route = route.unwrap_or_else(|| "unmatched".to_owned());
            tracing::info_span!(
                "request",
                method = %req.method(),
                route = %route,
                request_id = %req.headers().get(request_id::HEADER).and_then(|v| v.to_str().ok()).unwrap_or("-"),
            )
        }))
        .layer(axum::middleware::from_fn(request_id::middleware))
        .with_state(state)
}
