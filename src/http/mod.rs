//! The HTTP API: one router per resource, merged here, with request ids, bounds
//! on request size, rate limits and a span per request named by its route pattern. Each route is
//! written once, in its handler's `#[utoipa::path]`, and registered with
//! `utoipa_axum::routes!`, so the OpenAPI document is what the router serves.

pub mod admin;
pub mod api_keys;
pub mod auth;
pub mod backups;
pub mod bounds;
pub mod caller;
pub mod client;
pub mod data_plane;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod logs;
pub mod openapi;
pub mod rate_limit;
pub mod request_id;
pub mod setup_guard;
mod state;
pub mod streams;
pub mod telemetry;
pub mod tenants;
pub mod usage;
pub mod wizard;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::Router;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use error::ApiError;
pub use state::AppState;

/// Keepalive comments on idle event streams, so proxies do not cut them.
pub const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// A resource's routes together with their OpenAPI description.
pub type ApiRouter = OpenApiRouter<AppState>;

fn api() -> ApiRouter {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(health::router())
        .merge(openapi::router())
        .merge(auth::router())
        .merge(api_keys::router())
        .merge(wizard::router())
        .merge(tenants::router())
        .merge(logs::router())
        .merge(events::router())
        .merge(usage::router())
        .merge(telemetry::router())
        .merge(setup_guard::router())
        .merge(admin::router())
        .merge(data_plane::router())
        .merge(backups::router())
}

/// The OpenAPI document of everything `router` serves, with the errors every
/// operation can answer (added once, in `openapi::complete_contract`).
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = api().into_openapi();
    openapi::complete_contract(&mut doc);
    doc
}

/// Unknown API paths answer in JSON, anything else with the HTML 404 page.
async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = uri.path();
    if path.starts_with("/api/") || path == "/api" || path == "/metrics" {
        ApiError::NotFound("no such endpoint".into()).into_response()
    } else {
        crate::web::error::not_found().await.into_response()
    }
}

pub fn router(state: AppState) -> Router {
    let (routes, _) = api().split_for_parts();
    routes
        .merge(crate::web::router())
        .fallback(not_found)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(state.clone(), rate_limit::middleware))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), telemetry::middleware))
        .layer(DefaultBodyLimit::max(bounds::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(bounds::middleware))
        .layer(axum::middleware::from_fn(crate::web::page_headers))
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
