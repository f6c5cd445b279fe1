//! Fuzz entry points of the wire floor (`fuzz/fuzz_targets/{gzip_body,events_query}.rs`,
//! replayed by `tests/fuzz_corpus.rs`): a decompressed body stays within its byte limit;
//! an events query keeps its bounds and its cursor decodes one way. Not an API.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Query;
use axum::http::{Request, Response, Uri, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use tower::{Layer, ServiceExt};
use tower_http::decompression::RequestDecompressionLayer;

use crate::auth::ReadTarget;
use crate::config::Config;
use crate::error::ErrorKind;
use crate::http::body::{BodyGuard, Sender};
use crate::http::events::{EventsParams, event_query};
use crate::ingest::format::native::single_event_limit;
use crate::store::EventQuery;
use crate::store::fuzz::{CURSOR_OWNER, check_store_cursor};

/// A body sent with `content-encoding: gzip`, through the router's decompression layer
/// and `BodyGuard::read` under the one-event limit. Returns what the guard read (the
/// caller may compare it with a reference decoder) or why it refused.
pub fn gzip_body(compressed: &[u8]) -> Result<Bytes, ErrorKind> {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime");
    }
    let max_bytes = gzip_body_limit();
    let guard = BodyGuard::new(2 * max_bytes as u64, Duration::from_secs(30));
    let request = Request::builder()
        .method("POST")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Body::from(compressed.to_vec()))
        .expect("a valid request");
    let read = tower::service_fn(|request: Request<_>| async {
        let (parts, body) = request.into_parts();
        let outcome = guard
            .read(
                &parts.headers,
                Body::new(body),
                max_bytes,
                Sender::Authenticated,
            )
            .await
            .map(|body| body.bytes)
            .map_err(|error| error.kind);
        let mut response = Response::new(Body::empty());
        response.extensions_mut().insert(outcome);
        Ok::<_, std::convert::Infallible>(response)
    });
    let service = RequestDecompressionLayer::new().layer(read);
    let response = RUNTIME
        .with(|runtime| runtime.block_on(service.oneshot(request)))
        .expect("infallible");
    let outcome = response
        .extensions()
        .get::<Result<Bytes, ErrorKind>>()
        .cloned()
        .expect("a gzip body reaches the guard");
    match &outcome {
        Ok(bytes) => assert!(bytes.len() <= max_bytes, "{} bytes read", bytes.len()),
        Err(kind) => assert!(
            matches!(kind, ErrorKind::PayloadTooLarge | ErrorKind::InvalidRequest),
            "{kind:?}"
        ),
    }
    outcome
}

/// The largest body `gzip_body` accepts.
pub fn gzip_body_limit() -> usize {
    single_event_limit(&Config::defaults())
}

/// `GET /api/v1/events?…`: the query string (`from`, `to`, `limit`, `cursor`, filters)
/// for both scopes, and a cursor it carries through both stores' cursor decoders.
pub fn events_query(query_string: &[u8]) {
    let Ok(text) = std::str::from_utf8(query_string) else {
        return;
    };
    let Ok(uri) = format!("/api/v1/events?{text}").parse::<Uri>() else {
        return;
    };
    let owner = CURSOR_OWNER;
    for target in [
        ReadTarget {
            partner_id: owner,
            subsystem_id: None,
        },
        ReadTarget {
            partner_id: owner,
            subsystem_id: Some(owner),
        },
    ] {
        let Ok(Query(params)) = Query::<EventsParams>::try_from_uri(&uri) else {
            return;
        };
        match event_query(params, target) {
            Ok(query) => check_events_query(&query, &uri),
            Err(error) => assert_eq!(error.kind, ErrorKind::InvalidRequest),
        }
    }
}

fn check_events_query(query: &EventQuery, uri: &Uri) {
    assert!(query.from < query.to);
    assert!((1..=1000).contains(&query.limit), "limit {}", query.limit);
    let Some(cursor) = &query.cursor else { return };
    let sent: Vec<_> = form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .filter(|(name, _)| name == "cursor")
        .collect();
    if let [(_, text)] = sent.as_slice() {
        assert_eq!(
            URL_SAFE_NO_PAD.encode(cursor),
            *text,
            "a cursor decodes one way"
        );
    }
    check_store_cursor(query.scope, query.from, query.to, cursor);
}
