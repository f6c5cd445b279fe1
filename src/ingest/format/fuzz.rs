//! Fuzz entry points of the wire formats (`fuzz/fuzz_targets/{native_event,batch,legacy,
//! segment}.rs`, replayed by `tests/fuzz_corpus.rs`): each runs what its endpoint runs on
//! the body, up to where the directory or the store would be needed, and panics when an
//! invariant breaks: an accepted event keeps the field rules, depth and size limits, and
//! sent again in the native format it is accepted as the same event. Not an API.

use chrono::DateTime;
use serde::Serialize;

use super::fields::{EARLIEST_TIMESTAMP, MAX_ID_CHARS, shape_problem};
use super::legacy::{Legacy, properties_json};
use super::native::{Native, parse_event};
use super::segment::{ENVELOPE as SEGMENT_ENVELOPE, SegmentCall, translate};
use super::{
    Arrival, BatchFormat, EventDraft, EventFields, Format, event_fields, fields_of, parse_sent_at,
};
use crate::config::Config;
use crate::error::{ErrorKind, FieldError, ServiceError};
use crate::model::{JsonObject, check_event_type};

/// A fixed receive time, so seeds can target the clock-skew rule.
const RECEIVED_AT_SECONDS: i64 = 1_800_000_000;

/// `POST /api/v1/events`: the body split into fields, then validated as one event.
pub fn native_event(body: &[u8]) {
    match fields_of(body, "the", "event") {
        Ok(fields) => {
            check_event(&fields);
        }
        Err(error) => assert_eq!(error.kind(), ErrorKind::InvalidRequest),
    }
}

/// `POST /api/v1/events/batch`: the envelope, its count limit, then each event as in
/// `native_event` (an event over `ingest.max_event_size` is refused unread).
pub fn batch(body: &[u8]) {
    let format = Native::batch(&Config::defaults());
    let shape = format.envelope();
    let Ok(envelope) = shape.parse(body) else {
        return;
    };
    let count = envelope.items.len();
    assert!(
        (1..=shape.max_items).contains(&count),
        "{count} events in an envelope read"
    );
    for raw in envelope.items {
        let text = raw.get();
        assert!(
            body.as_ptr_range().contains(&text.as_ptr()),
            "an event of a batch is borrowed from the body, not copied"
        );
        if text.len() > format.max_item_bytes() {
            continue;
        }
        match fields_of(text.as_bytes(), "each", "event") {
            Ok(fields) => {
                check_event(&fields);
            }
            Err(error) => assert_eq!(error.kind(), ErrorKind::InvalidRequest),
        }
    }
}

/// `POST /api/events/ingest`: `apiKey` taken out, `eventProperties` or the JSON text of
/// `eventPropertiesJson` moved to `properties`, then validated as in `native_event`.
pub fn legacy(body: &[u8]) {
    let legacy = Legacy::new(&Config::defaults());
    if legacy.key_in_body(body).is_err() {
        return;
    }
    let Ok(mut fields) = fields_of(body, "the", "event") else {
        return;
    };
    fields.remove("apiKey");
    let decoded_properties = match properties_json(&mut fields) {
        Ok(decoded) => decoded,
        Err(errors) => {
            assert_eq!(errors[0].field, "eventPropertiesJson");
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
    let received_at = DateTime::from_timestamp(RECEIVED_AT_SECONDS, 0).expect("valid");
    if let Ok(envelope) = SEGMENT_ENVELOPE.parse(body) {
        let arrival = Arrival {
            received_at,
            batch_sent_at: envelope.sent_at.and_then(|raw| parse_sent_at(raw.get())),
        };
        for raw in envelope.items {
            if let Ok(fields) = fields_of(raw.get().as_bytes(), "each", "message") {
                check_translation(translate(&fields, None, arrival));
            }
        }
    }
    let Ok(fields) = fields_of(body, "the", "message") else {
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

fn check_translation(outcome: Result<EventDraft, Vec<FieldError>>) {
    match outcome {
        Ok(draft) => check_draft(&draft),
        Err(errors) => assert!(!errors.is_empty(), "a refusal names what is wrong"),
    }
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
