//! Plain-bytes entry points to every decoder a client can reach, for the fuzz targets in
//! `fuzz/` and the corpus replay test (`tests/fuzz_corpus.rs`). Each runs the code its
//! endpoint runs, from the bytes on the wire up to where a store, the directory or the
//! network would be needed, and panics when an invariant breaks: an accepted event
//! re-validates and stays within the field, depth and size limits; a decompressed body
//! stays within its byte limit; a cursor a decoder accepts stays inside its query.
//! Not an API: hidden from the docs, and nothing in the service calls it.

use std::ops::Bound;
use std::sync::LazyLock;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Query;
use axum::http::{Request, Response, Uri, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tower::{Layer, ServiceExt};
use tower_http::decompression::RequestDecompressionLayer;
use uuid::Uuid;

use crate::auth::ReadTarget;
use crate::config::Config;
use crate::error::ErrorKind;
use crate::http::body::{BodyGuard, Sender};
use crate::http::events::{EventsParams, event_query};
use crate::http::ingest::batch::native_envelope;
use crate::http::ingest::fields_of;
use crate::http::ingest::legacy::legacy_properties_json;
use crate::http::ingest::segment::ENVELOPE as SEGMENT_ENVELOPE;
use crate::ingest::event::{
    EARLIEST_TIMESTAMP, EventDraft, EventFields, MAX_ID_CHARS, event_fields, parse_event,
    shape_problem,
};
use crate::ingest::segment::{Arrival, SegmentCall, parse_sent_at, translate};
use crate::model::{JsonObject, check_event_type};
use crate::store::cassandra::cursor::{self, QueryIdentity, QueryShape};
use crate::store::embedded::keys;
use crate::store::{EventQuery, EventScope, StoreError};

/// Bucket count of the Cassandra cursors checked here (more than one, as in the tests).
pub const CASSANDRA_BUCKETS: u32 = 3;
/// The owner and time range of `store_cursor`'s query: fixed, so seeds can target it.
pub const CURSOR_OWNER: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
pub const CURSOR_FROM_SECONDS: i64 = 1_800_000_000;
pub const CURSOR_TO_SECONDS: i64 = CURSOR_FROM_SECONDS + 7 * 86_400;

/// The limits of the default configuration, read once.
struct Limits {
    max_batch_events: usize,
    max_event_bytes: usize,
    /// The body limit of a one-event endpoint (what `single_event_limit` gives).
    single_event_body_bytes: usize,
}

static LIMITS: LazyLock<Limits> = LazyLock::new(|| {
    let config = Config::defaults();
    let max_event_bytes = config.ingest.max_event_size.as_u64() as usize;
    Limits {
        max_batch_events: config.ingest.max_batch_events,
        max_event_bytes,
        single_event_body_bytes: max_event_bytes
            .min(config.http.max_request_size.as_u64() as usize),
    }
});

/// `POST /api/v1/events`: the body split into fields, then validated as one event.
pub fn native_event(body: &[u8]) {
    match fields_of(body, "the event") {
        Ok(fields) => {
            check_event(&fields);
        }
        Err(error) => assert_eq!(error.kind, ErrorKind::InvalidRequest),
    }
}

/// `POST /api/v1/events/batch`: the envelope, its count limit, then each event as in
/// `native_event` (an event over `ingest.max_event_size` is refused unread).
pub fn batch(body: &[u8]) {
    let Ok(envelope) = native_envelope(LIMITS.max_batch_events).parse(body) else {
        return;
    };
    let count = envelope.items.len();
    assert!(
        (1..=LIMITS.max_batch_events).contains(&count),
        "{count} events in an envelope read"
    );
    for raw in envelope.items {
        let text = raw.get();
        assert!(
            body.as_ptr_range().contains(&text.as_ptr()),
            "an event of a batch is borrowed from the body, not copied"
        );
        if text.len() > LIMITS.max_event_bytes {
            continue;
        }
        match fields_of(text.as_bytes(), "each event") {
            Ok(fields) => {
                check_event(&fields);
            }
            Err(error) => assert_eq!(error.kind, ErrorKind::InvalidRequest),
        }
    }
}

/// `POST /api/events/ingest`: `apiKey` taken out, `eventProperties` or the JSON text of
/// `eventPropertiesJson` moved to `properties`, then validated as in `native_event`.
pub fn legacy(body: &[u8]) {
    let Ok(mut fields) = fields_of(body, "the event") else {
        return;
    };
    let _key = fields
        .remove("apiKey")
        .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok());
    let decoded_properties = match legacy_properties_json(&mut fields) {
        Ok(decoded) => decoded,
        Err(error) => {
            assert_eq!(error.errors[0].field, "eventPropertiesJson");
            return;
        }
    };
    for moved in ["apiKey", "eventProperties", "eventPropertiesJson"] {
        assert!(!fields.contains_key(moved), "{moved} is still a field");
    }
    if let Some(properties) = &decoded_properties {
        fields.insert("properties".into(), properties);
    }
    let draft = check_event(&fields);
    if let (Some(draft), Some(properties)) = (draft, &decoded_properties) {
        assert_eq!(draft.properties.as_str(), properties.get());
    }
}

/// `POST /v1/batch` (also `/v1/import` and analytics.js's `/v1/b`): Segment's envelope,
/// then each message translated as its `type` says, with the clock-skew rule against a
/// fixed receive time; and the same body as one message of each single-call endpoint.
pub fn segment(body: &[u8]) {
    let received_at = DateTime::from_timestamp(CURSOR_FROM_SECONDS, 0).expect("valid");
    if let Ok(envelope) = SEGMENT_ENVELOPE.parse(body) {
        let arrival = Arrival {
            received_at,
            batch_sent_at: envelope.sent_at.and_then(|raw| parse_sent_at(raw.get())),
        };
        for raw in envelope.items {
            if let Ok(fields) = fields_of(raw.get().as_bytes(), "each message") {
                check_translation(translate(&fields, None, arrival));
            }
        }
    }
    let Ok(fields) = fields_of(body, "the message") else {
        return;
    };
    let arrival = Arrival {
        received_at,
        batch_sent_at: None,
    };
    for call in SegmentCall::ALL {
        check_translation(translate(&fields, Some(call), arrival));
    }
}

fn check_translation(outcome: Result<EventDraft, Vec<crate::error::FieldError>>) {
    match outcome {
        Ok(draft) => check_draft(&draft),
        Err(errors) => assert!(!errors.is_empty(), "a refusal names what is wrong"),
    }
}

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
    let max_bytes = LIMITS.single_event_body_bytes;
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
    LIMITS.single_event_body_bytes
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

/// Which stores accepted a cursor (in either scope).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CursorAcceptance {
    pub embedded: bool,
    pub cassandra: bool,
}

/// The bytes of a decoded cursor, as both stores read them for a fixed query
/// (`CURSOR_OWNER`, `CURSOR_FROM_SECONDS..CURSOR_TO_SECONDS`, both scopes).
pub fn store_cursor(cursor: &[u8]) -> CursorAcceptance {
    let from = DateTime::from_timestamp(CURSOR_FROM_SECONDS, 0).expect("in range");
    let to = DateTime::from_timestamp(CURSOR_TO_SECONDS, 0).expect("in range");
    let mut accepted = CursorAcceptance::default();
    for scope in [
        EventScope::Partner(CURSOR_OWNER),
        EventScope::Subsystem(CURSOR_OWNER),
    ] {
        let by_scope = check_store_cursor(scope, from, to, cursor);
        accepted.embedded |= by_scope.embedded;
        accepted.cassandra |= by_scope.cassandra;
    }
    accepted
}

fn check_store_cursor(
    scope: EventScope,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    cursor: &[u8],
) -> CursorAcceptance {
    let mut accepted = CursorAcceptance::default();
    let owner = match scope {
        EventScope::Partner(id) | EventScope::Subsystem(id) => id,
    };
    match keys::time_range(owner, from, to, Some(cursor)) {
        Ok((start, end)) => {
            let (whole_start, whole_end) =
                keys::time_range(owner, from, to, None).expect("no cursor");
            assert_eq!(start, whole_start, "a page starts where its query does");
            assert_eq!(end, Bound::Excluded(cursor.to_vec()));
            let (Bound::Included(low), Bound::Excluded(high)) = (&whole_start, &whole_end) else {
                panic!("a time range is [from, to)");
            };
            assert!(cursor >= low.as_slice() && cursor < high.as_slice());
            let (micros, event_id) = keys::split_event_key(cursor).expect("an event key");
            assert!(!event_id.is_empty());
            assert!(micros >= from.timestamp_micros().max(0));
            assert!(micros <= to.timestamp_micros());
            accepted.embedded = true;
        }
        Err(error) => assert!(matches!(error, StoreError::InvalidCursor), "{error}"),
    }
    let identity = QueryIdentity { scope, from, to };
    let shape = QueryShape::of(from, to, CASSANDRA_BUCKETS);
    match cursor::decode(cursor, identity, shape) {
        Ok(position) => {
            assert!(position.page_size > 0 && position.page_size <= 5_000);
            assert!(position.day_offset < shape.days);
            assert_eq!(position.buckets.len(), CASSANDRA_BUCKETS as usize);
            assert_eq!(
                cursor::encode(identity, &position),
                cursor,
                "an accepted cursor is one the encoder makes"
            );
            accepted.cassandra = true;
        }
        Err(error) => assert!(matches!(error, StoreError::InvalidCursor), "{error}"),
    }
    accepted
}

/// Validates one event; an accepted one must keep every promise of `parse_event`.
fn check_event(fields: &EventFields<'_>) -> Option<EventDraft> {
    match parse_event(fields) {
        Ok(draft) => {
            check_draft(&draft);
            Some(draft)
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "a refusal names what is wrong");
            None
        }
    }
}

fn check_draft(draft: &EventDraft) {
    assert_eq!(check_event_type(&draft.event_type), Ok(()));
    let identifiers = [
        &draft.event_id,
        &draft.user_id,
        &draft.anonymous_id,
        &draft.subsystem,
    ];
    for identifier in identifiers.into_iter().flatten() {
        assert!(!identifier.trim().is_empty(), "{identifier:?}");
        assert!(identifier.chars().count() <= MAX_ID_CHARS, "{identifier:?}");
        assert!(!identifier.chars().any(char::is_control), "{identifier:?}");
    }
    assert!(draft.user_id.is_some() || draft.anonymous_id.is_some());
    if let Some(timestamp) = draft.timestamp {
        let earliest = DateTime::parse_from_rfc3339(EARLIEST_TIMESTAMP).expect("valid constant");
        assert!(timestamp >= earliest, "{timestamp}");
    }
    for object in [&draft.properties, &draft.context] {
        let text = object.as_str();
        assert!(text.trim_start().starts_with('{'), "{text}");
        assert_eq!(shape_problem(text), None, "{text}");
        serde_json::from_str::<serde_json::Value>(text).expect("a kept object parses");
    }
    let resent = serde_json::to_vec(&ResentEvent::of(draft)).expect("serializes");
    let fields = event_fields(&resent).expect("a re-encoded event splits into fields");
    let again = parse_event(&fields).expect("an accepted event, sent again, is accepted");
    assert_eq!(
        &again, draft,
        "an accepted event, sent again, is the same event"
    );
}

/// An accepted event written back in the native format.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResentEvent<'a> {
    event_type: &'a str,
    event_id: Option<&'a str>,
    timestamp: Option<String>,
    user_id: Option<&'a str>,
    anonymous_id: Option<&'a str>,
    subsystem: Option<&'a str>,
    properties: &'a JsonObject,
    context: &'a JsonObject,
}

impl ResentEvent<'_> {
    fn of(draft: &EventDraft) -> ResentEvent<'_> {
        ResentEvent {
            event_type: &draft.event_type,
            event_id: draft.event_id.as_deref(),
            timestamp: draft.timestamp.map(|timestamp| timestamp.to_rfc3339()),
            user_id: draft.user_id.as_deref(),
            anonymous_id: draft.anonymous_id.as_deref(),
            subsystem: draft.subsystem.as_deref(),
            properties: &draft.properties,
            context: &draft.context,
        }
    }
}
