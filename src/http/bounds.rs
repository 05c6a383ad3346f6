//! Bounds on what a request may carry, checked before any work is done on it:
//! the URI (path and query), the headers and the declared body length. Bodies
//! sent without a length are cut at the same size by `DefaultBodyLimit` when a
//! handler reads them (`extract::ApiJson` answers that with the same 413).
//!
//! hyper has its own, larger limits (about 400 KiB of request head, 100 headers)
//! and answers 431 without our envelope beyond them.

use axum::extract::Request;
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Largest request body (every body the API takes is a small JSON object).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest path plus query string.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Largest sum of header names and values.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

pub async fn middleware(request: Request, next: Next) -> Response {
    match check(&request) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

fn check(request: &Request) -> Result<(), ApiError> {
    let uri = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if uri > MAX_URI_BYTES {
        return Err(ApiError::UriTooLong(format!(
            "the path and query string may be at most {MAX_URI_BYTES} bytes"
        )));
    }
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers > MAX_HEADER_BYTES {
        return Err(ApiError::HeadersTooLarge(format!(
            "request headers may be at most {MAX_HEADER_BYTES} bytes in all"
        )));
    }
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    Ok(())
}

/// The 413 for a body over `MAX_BODY_BYTES`.
pub fn too_large() -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the request body may be at most {} KiB",
        MAX_BODY_BYTES / 1024
    ))
}
