//! The HTTP API: one router per resource, merged here, with request ids, rate
//! limits and a span per request named by its route pattern. Every route is
//! registered through `ApiRouter`, which keeps the list the OpenAPI test checks
//! against the generated document.

pub mod account;
pub mod admin;
pub mod api_keys;
pub mod auth;
pub mod client;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod logs;
pub mod metrics;
pub mod observe;
pub mod openapi;
pub mod rate_limit;
pub mod request_id;
pub mod tenants;
pub mod wizard;

use axum::extract::{MatchedPath, Request};
use axum::handler::Handler;
use axum::routing::{delete, get, patch, post};
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::app::AppState;
use error::ApiError;

/// A router that remembers what it serves: (METHOD, path) pairs.
pub struct ApiRouter {
    router: Router<AppState>,
    routes: Vec<(&'static str, &'static str)>,
}

macro_rules! method {
    ($name:ident, $routing:ident, $verb:literal) => {
        pub fn $name<H, T>(mut self, path: &'static str, handler: H) -> Self
        where
            H: Handler<T, AppState>,
            T: 'static,
        {
            self.router = self.router.route(path, $routing(handler));
            self.routes.push(($verb, path));
            self
        }
    };
}

impl ApiRouter {
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            routes: Vec::new(),
        }
    }

    method!(get, get, "GET");
    method!(post, post, "POST");
    method!(patch, patch, "PATCH");
    method!(delete, delete, "DELETE");

    pub fn merge(mut self, other: ApiRouter) -> Self {
        self.router = self.router.merge(other.router);
        self.routes.extend(other.routes);
        self
    }
}

impl Default for ApiRouter {
    fn default() -> Self {
        Self::new()
    }
}

fn api() -> ApiRouter {
    ApiRouter::new()
        .merge(health::router())
        .merge(openapi::router())
        .merge(account::router())
        .merge(api_keys::router())
        .merge(wizard::router())
        .merge(tenants::router())
        .merge(logs::router())
        .merge(events::router())
        .merge(metrics::router())
        .merge(observe::router())
        .merge(admin::router())
}

/// Every (METHOD, path) the API serves, as registered.
pub fn route_table() -> Vec<(&'static str, &'static str)> {
    api().routes
}

pub fn router(state: AppState) -> Router {
    api()
        .router
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(state.clone(), rate_limit::middleware))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), observe::middleware))
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
