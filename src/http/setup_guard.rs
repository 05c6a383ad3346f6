//! `GET /api/v1/setup-guard`: the setup-claim guard. Fresco gives a fresh
//! instance to whoever opens `/setup` first; every tenant container therefore
//! carries a second Traefik router for `/setup` on its host whose `forwardAuth`
//! middleware asks this endpoint first. It admits only a browser holding the
//! owner's claim: the one-time link from `tenants.get` (`?claim=<token>`), which
//! it turns into a cookie on the tenant's host (Traefik copies the cookie onto
//! Fresco's answer), or that cookie afterwards. Everyone else gets a page
//! saying the instance is being set up by its owner.

use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use utoipa_axum::routes;

use super::caller::cookie;
use super::error::ApiError;
use super::{ApiRouter, AppState};
use crate::domain::Subdomain;
use crate::provision::labels::{CLAIM_COOKIE, SETUP_PATH};
use crate::store::setup_claims;
use crate::store::tenants::{self, Tenant};

/// The query parameter of the one-time link.
pub const CLAIM_PARAM: &str = "claim";

pub fn router() -> ApiRouter {
    ApiRouter::new().routes(routes!(guard))
}

/// Asked by Traefik before a tenant's `/setup`: 200 lets the request through.
#[utoipa::path(get, path = "/api/v1/setup-guard", operation_id = "setup.guard", tag = "platform",
    params(
        ("X-Forwarded-Host" = String, Header, description = "the tenant's host, as Traefik received it"),
        ("X-Forwarded-Uri" = String, Header, description = "path and query of the request to /setup"),
        ("X-Forwarded-Proto" = Option<String>, Header, description = "http or https"),
    ),
    responses(
        (status = 200, description = "the browser holds the owner's claim (a first use of the link sets the claim cookie)"),
        (status = 403, description = "an HTML page: the instance is being set up by its owner", content_type = "text/html"),
        (status = 500, body = super::error::ErrorBody)))]
pub async fn guard(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(tenant) = tenant_of(&state, &headers).await? else {
        return Ok(refusal(&state));
    };
    let id = tenant.tenant_id();
    if let Some(cookie) = cookie(&headers, CLAIM_COOKIE) {
        if setup_claims::cookie_admits(&state.pool, id, &cookie).await? {
            return Ok(StatusCode::OK.into_response());
        }
    }
    let Some(link) = header(&headers, "x-forwarded-uri").and_then(claim_param) else {
        return Ok(refusal(&state));
    };
    let expires = cookie_expiry(&tenant);
    let Some(cookie) = setup_claims::redeem_link(&state.pool, id, link, expires).await? else {
        return Ok(refusal(&state));
    };
    let secure = header(&headers, "x-forwarded-proto") == Some("https")
        || state.config.tenants.tenant_url_scheme == "https";
    let max_age = (expires - Utc::now()).num_seconds().max(60);
    let set_cookie = format!(
        "{CLAIM_COOKIE}={cookie}; Path={SETUP_PATH}; Max-Age={max_age}; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    );
    tracing::info!(tenant_id = %id, "setup claim link used");
    Ok(([(SET_COOKIE, set_cookie)], StatusCode::OK).into_response())
}

/// The live tenant whose host the request was for.
async fn tenant_of(state: &AppState, headers: &HeaderMap) -> Result<Option<Tenant>, ApiError> {
    let Some(host) = header(headers, "x-forwarded-host") else {
        return Ok(None);
    };
    let host = host
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let suffix = format!(".{}", state.config.tenants.base_domain.to_ascii_lowercase());
    let Some(Ok(subdomain)) = host.strip_suffix(&suffix).map(Subdomain::parse) else {
        return Ok(None);
    };
    Ok(tenants::live_by_subdomain(&state.pool, &subdomain).await?)
}

/// The claim cookie lasts as long as the setup window (at least two hours from now).
fn cookie_expiry(tenant: &Tenant) -> DateTime<Utc> {
    let window = chrono::Duration::hours(super::tenants::SETUP_WINDOW_HOURS);
    let from_start = tenant.first_started_at.map(|t| t + window);
    from_start
        .filter(|d| *d > Utc::now() + window)
        .unwrap_or_else(|| Utc::now() + window)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `claim=<token>` from the query of a forwarded URI.
fn claim_param(uri: &str) -> Option<&str> {
    let (_, query) = uri.split_once('?')?;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == CLAIM_PARAM)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn refusal(state: &AppState) -> Response {
    let platform = html_escape(state.config.accounts.platform_url.trim_end_matches('/'));
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Being set up by its owner</title></head><body>\
         <main><h1>This Fresco instance is being set up by its owner</h1>\
         <p>Only the person who created it can open its first-run setup.</p>\
         <p>If this instance is yours, open the setup link shown for it on \
         <a href=\"{platform}\">Fresco Platform</a>; each link works once.</p></main></body></html>\n"
    );
    (
        StatusCode::FORBIDDEN,
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header::COOKIE;

    #[test]
    fn finds_the_claim_in_the_query_and_the_cookie_in_the_header() {
        assert_eq!(claim_param("/setup?claim=abc123"), Some("abc123"));
        assert_eq!(
            claim_param("/setup?step=2&claim=abc123&x=1"),
            Some("abc123")
        );
        assert_eq!(claim_param("/setup"), None);
        assert_eq!(claim_param("/setup?claim="), None);
        assert_eq!(claim_param("/setup?claim=a%27b"), None);
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, "a=1; fp_setup_claim=tok; b=2".parse().unwrap());
        assert_eq!(cookie(&headers, CLAIM_COOKIE).as_deref(), Some("tok"));
        assert_eq!(cookie(&headers, "c"), None);
    }
}
