//! `GET /dashboard`: the built-in dashboard, one page whose HTML, CSS, JS and chart
//! library (uPlot, vendored under `assets/dashboard/vendor/`) are compiled into the binary,
//! so it works offline. The page itself needs no credentials: it reads the JSON API with
//! the key the person types in (or passes as `#key=…`), sent as a header, never a cookie.

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::http::problem::ApiError;
use crate::http::state::AppState;

/// Only files of our own origin, no inline script or style, no framing, no plugins, and
/// fetches only to this service: the key in `sessionStorage` has nowhere else to go. No
/// form is ever submitted natively (the script handles them), so one sent before the
/// script ran can't put the typed key in a URL.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Revalidated on every load (answered `304` while unchanged), so an upgraded binary's
/// page is never mixed with an older cached script.
const CACHE_CONTROL: &str = "no-cache";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    /// Of the content, computed at compile time: an edited file is never answered `304`.
    hash: u64,
}

macro_rules! asset {
    ($name:literal, $content_type:literal) => {{
        const BODY: &[u8] = include_bytes!(concat!("../../assets/dashboard/", $name));
        Asset {
            name: $name,
            content_type: $content_type,
            body: BODY,
            hash: fnv1a(BODY),
        }
    }};
}

/// FNV-1a, 64 bits: small enough to run in a `const`, and plenty to tell versions apart.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut index = 0;
    while index < bytes.len() {
        hash ^= bytes[index] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        index += 1;
    }
    hash
}

impl Asset {
    fn etag(&self) -> String {
        format!("\"{:016x}\"", self.hash)
    }
}

const INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");

const ASSETS: &[Asset] = &[
    asset!("dashboard.css", "text/css; charset=utf-8"),
    asset!("dashboard.js", "text/javascript; charset=utf-8"),
    asset!("panels.js", "text/javascript; charset=utf-8"),
    asset!("people.js", "text/javascript; charset=utf-8"),
    asset!("vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    asset!("vendor/uPlot.min.css", "text/css; charset=utf-8"),
    asset!("vendor/LICENSE", "text/plain; charset=utf-8"),
];

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/", get(page))
        .route("/dashboard/{*name}", get(file))
}

async fn page(request_headers: HeaderMap) -> Response {
    serve(&INDEX, &request_headers)
}

async fn file(Path(name): Path<String>, request_headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|asset| asset.name == name) {
        Some(asset) => serve(asset, &request_headers),
        None => ApiError::not_found(format!("the dashboard has no file '{name}'")).into_response(),
    }
}

fn serve(asset: &Asset, request_headers: &HeaderMap) -> Response {
    let etag = asset.etag();
    let unchanged = request_headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tags| tags.as_bytes() == etag.as_bytes());
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let headers = response.headers_mut();
    let fixed = HeaderValue::from_static;
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag);
    }
    headers.insert(header::CACHE_CONTROL, fixed(CACHE_CONTROL));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        fixed(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, fixed("nosniff"));
    headers.insert(header::REFERRER_POLICY, fixed("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, fixed("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_links_is_served() {
        let html = std::str::from_utf8(INDEX.body).unwrap();
        for asset in ASSETS.iter().filter(|asset| asset.name != "vendor/LICENSE") {
            let link = format!("/dashboard/{}", asset.name);
            assert!(html.contains(&link), "index.html links {link}");
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let html = std::str::from_utf8(INDEX.body).unwrap();
        assert!(!html.contains("<script>") && !html.contains("style="));
        assert!(!html.contains("<style"));
    }

    #[test]
    fn unchanged_files_are_answered_not_modified() {
        let mut request_headers = HeaderMap::new();
        let etag = INDEX.etag();
        request_headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&etag).unwrap());
        let response = serve(&INDEX, &request_headers);
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(response.headers()[header::ETAG], etag.as_str());
    }

    #[test]
    fn files_of_different_content_have_different_tags() {
        let mut tags: Vec<String> = ASSETS.iter().map(Asset::etag).collect();
        tags.push(INDEX.etag());
        tags.sort();
        tags.dedup();
        assert_eq!(tags.len(), ASSETS.len() + 1);
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
    }
}
