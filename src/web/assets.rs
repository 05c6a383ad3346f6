//! The pages' static files, embedded in the binary. Each is served under a path
//! that carries a hash of its content (`/assets/<hash>/<name>`), so it can be
//! cached for a year: a new build with a changed file has a new URL.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::http::AppState;

#[derive(rust_embed::RustEmbed)]
#[folder = "src/web/assets/"]
struct Files;

struct Asset {
    hash: String,
    body: Vec<u8>,
}

fn short_hash(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..6])
}

/// Every embedded file with its short content hash, built once. Stylesheets
/// name fonts and images relatively (`url("fonts/x.woff2")`); those become
/// hashed URLs too, so every asset can be cached for good.
fn assets() -> &'static HashMap<String, Asset> {
    static ASSETS: OnceLock<HashMap<String, Asset>> = OnceLock::new();
    ASSETS.get_or_init(|| {
        let mut all: HashMap<String, Asset> = Files::iter()
            .filter_map(|name| {
                let body = Files::get(&name)?.data.into_owned();
                Some((
                    name.into_owned(),
                    Asset {
                        hash: short_hash(&body),
                        body,
                    },
                ))
            })
            .collect();
        let hashed: Vec<(String, String)> = all
            .iter()
            .map(|(name, a)| {
                (
                    format!("url(\"{name}\")"),
                    format!("url(\"/assets/{}/{name}\")", a.hash),
                )
            })
            .collect();
        for (name, asset) in all.iter_mut().filter(|(n, _)| n.ends_with(".css")) {
            let mut css = String::from_utf8_lossy(&asset.body).into_owned();
            for (relative, absolute) in &hashed {
                css = css.replace(relative, absolute);
            }
            debug_assert!(!name.is_empty());
            asset.hash = short_hash(css.as_bytes());
            asset.body = css.into_bytes();
        }
        all
    })
}

/// The URL of an embedded file, e.g. `url("app.css")`. An unknown name is a
/// programming error, caught by the page tests (the URL answers 404).
pub fn url(name: &str) -> String {
    match assets().get(name) {
        Some(asset) => format!("/assets/{}/{name}", asset.hash),
        None => format!("/assets/missing/{name}"),
    }
}

/// The names of every embedded asset.
pub fn names() -> impl Iterator<Item = &'static str> {
    assets().keys().map(String::as_str)
}

/// An asset's bytes as served (stylesheets with hashed URLs), for size checks.
pub fn served(name: &str) -> Option<&'static [u8]> {
    assets().get(name).map(|a| a.body.as_slice())
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("woff2") => "font/woff2",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

async fn serve(Path((hash, name)): Path<(String, String)>) -> Response {
    let Some(asset) = assets().get(&name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // An old hash still gets the current file, but only briefly cached.
    let cache = if asset.hash == hash {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type(&name))),
            (CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        asset.body.clone(),
    )
        .into_response()
}

pub fn router() -> Router<AppState> {
    Router::new().route("/assets/{hash}/{*name}", get(serve))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_hashed_url() {
        let css = url("app.css");
        assert!(
            css.starts_with("/assets/") && css.ends_with("/app.css"),
            "{css}"
        );
        assert_eq!(css.len(), "/assets//app.css".len() + 12);
        assert!(url("nope.css").contains("/missing/"));
        let served = String::from_utf8(served("app.css").unwrap().to_vec()).unwrap();
        let font = url("fonts/quicksand-latin-400.woff2");
        assert!(
            served.contains(&format!("url(\"{font}\")")),
            "fonts get hashed URLs"
        );
    }
}
