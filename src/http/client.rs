//! Who is on the other end of a request: address and user agent, for rate limits
//! and the audit trail.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::http::AppState;
use crate::store::audit::Origin;

fn ip_from(
    state: &AppState,
    headers: &HeaderMap,
    connect: Option<&ConnectInfo<SocketAddr>>,
) -> Option<String> {
    if state.config.accounts.trust_proxy_headers {
        let forwarded = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_owned())
            .filter(|v| v.parse::<std::net::IpAddr>().is_ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    connect.map(|c| c.0.ip().to_string())
}

pub fn ip_of(state: &AppState, request: &Request) -> Option<String> {
    ip_from(
        state,
        request.headers(),
        request.extensions().get::<ConnectInfo<SocketAddr>>(),
    )
}

/// The request's origin, as recorded in the audit log.
pub struct Client(pub Origin);

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ip = ip_from(
            state,
            &parts.headers,
            parts.extensions.get::<ConnectInfo<SocketAddr>>(),
        );
        let user_agent = parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Self(Origin { ip, user_agent }))
    }
}
