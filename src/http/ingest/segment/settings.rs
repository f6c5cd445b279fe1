//! `GET /v1/projects/{writeKey}/settings`: what analytics.js loads from its `cdnURL` before
//! sending anything. Ours turns on its one built-in destination, "Segment.io", pointed
//! back at this service (the host the browser reached us by, so a proxy in front works),
//! and nothing else: no device-mode destinations, no remote plugins, no telemetry.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::auth::PresentedCredential;
use crate::http::extract::client_address;
use crate::http::problem::ApiError;
use crate::http::state::AppState;
use crate::telemetry::record_partner;

/// Browsers may keep the settings a few minutes; shared caches may not (the answer
/// depends on the `Host` the request came with).
const CACHE_CONTROL: &str = "private, max-age=300";

#[utoipa::path(get, path = "/v1/projects/{write_key}/settings", tag = "segment",
    params(("write_key" = String, Path, description = "An `ingest` API key (Segment's write key)")),
    responses((status = 200, description = "The settings analytics.js loads first", body = Object)))]
pub async fn settings(
    State(state): State<Arc<AppState>>,
    Path(write_key): Path<String>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let credential =
        PresentedCredential::in_body(write_key.clone()).with_client(client_address(&parts));
    let sender = state
        .authenticator
        .sender(Some(credential))
        .instrument(tracing::info_span!("authenticate"))
        .await?;
    record_partner(sender.partner.id);
    let host = public_host(&parts.headers).unwrap_or_else(|| state.config.http.listen.to_string());
    let document = settings_document(&write_key, &host, public_scheme(&parts.headers));
    let mut response = Json(document).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    headers.insert(
        header::VARY,
        HeaderValue::from_static("host, x-forwarded-host, x-forwarded-proto"),
    );
    Ok(response)
}

/// The settings analytics.js needs: the "Segment.io" destination with our host and the
/// write key it puts in every message, and empty everything else.
fn settings_document(write_key: &str, host: &str, scheme: &str) -> Value {
    json!({
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": format!("{host}/v1"),
                "protocol": scheme,
                "unbundledIntegrations": [],
                "addBundledMetadata": false,
                "maybeBundledConfigIds": {},
            }
        },
        "plan": {
            "track": {"__default": {"enabled": true, "integrations": {}}},
            "identify": {"__default": {"enabled": true}},
            "group": {"__default": {"enabled": true}},
        },
        "edgeFunction": {},
        "analyticsNextEnabled": true,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": false,
        "remotePlugins": [],
    })
}

/// The host (and port) clients reach us by: a proxy's `X-Forwarded-Host`, else `Host`.
/// Only host characters pass, so a forged header can't smuggle anything into the URL.
fn public_host(headers: &HeaderMap) -> Option<String> {
    let value = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let host = value("x-forwarded-host")
        .and_then(|hosts| hosts.split(',').next())
        .or_else(|| value(header::HOST.as_str()))?
        .trim();
    let host_chars = |c: char| c.is_ascii_alphanumeric() || ".-:[]_".contains(c);
    (!host.is_empty() && host.chars().all(host_chars)).then(|| host.to_string())
}

/// `https` behind a TLS proxy that says so (`X-Forwarded-Proto`); else `http`, which is
/// what this service itself serves.
fn public_scheme(headers: &HeaderMap) -> &'static str {
    let forwarded = headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .and_then(|protos| protos.split(',').next())
        .map(|proto| proto.trim().to_ascii_lowercase());
    match forwarded.as_deref() {
        Some("https") => "https",
        _ => "http",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn the_destination_points_back_at_the_host_the_browser_used() {
        let direct = headers(&[("host", "127.0.0.1:8080")]);
        assert_eq!(public_host(&direct).as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(public_scheme(&direct), "http");
        let proxied = headers(&[
            ("host", "10.0.0.5:8080"),
            ("x-forwarded-host", "track.example.com, inner"),
            ("x-forwarded-proto", "HTTPS"),
        ]);
        assert_eq!(public_host(&proxied).as_deref(), Some("track.example.com"));
        assert_eq!(public_scheme(&proxied), "https");
        let document = settings_document("vt_k", "track.example.com", "https");
        let destination = &document["integrations"]["Segment.io"];
        assert_eq!(destination["apiHost"], "track.example.com/v1");
        assert_eq!(destination["apiKey"], "vt_k");
        assert_eq!(document["metrics"]["sampleRate"], 0);
    }

    #[test]
    fn a_host_header_with_more_than_a_host_is_not_used() {
        let forged = headers(&[("host", "evil.example/x?")]);
        assert_eq!(public_host(&forged), None);
    }
}
