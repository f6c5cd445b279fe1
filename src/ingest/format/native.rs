//! The native format: one event object (`eventType`, `eventName`, …) in, a validated
//! `EventDraft` out (or every field problem at once), for `POST /api/v1/events` and each
//! element of `POST /api/v1/events/batch` (`{"events": [...]}`).

use super::envelope::EnvelopeShape;
use super::fields::Fields;
use super::{Arrival, BatchFormat, EventDraft, EventFields, Format, bytes};
use crate::config::Config;
use crate::error::{ErrorKind, Failure, FieldError};

/// The native endpoints, the key always in the headers: one event (`POST
/// /api/v1/events`), or a batch (`POST /api/v1/events/batch`, `{"events": [...]}`, each
/// event judged on its own).
pub struct Native {
    max_body_bytes: usize,
    max_events: usize,
    max_event_bytes: usize,
}

impl Native {
    pub fn single(config: &Config) -> Native {
        Native {
            max_body_bytes: single_event_limit(config),
            max_events: 1,
            max_event_bytes: bytes(config.ingest.max_event_size),
        }
    }

    pub fn batch(config: &Config) -> Native {
        Native {
            max_body_bytes: bytes(config.http.max_batch_request_size),
            max_events: config.ingest.max_batch_events,
            max_event_bytes: bytes(config.ingest.max_event_size),
        }
    }
}

impl Format for Native {
    const ITEM: &'static str = "event";

    fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    fn draft(&self, fields: EventFields<'_>, _: Arrival) -> Result<EventDraft, Vec<FieldError>> {
        parse_event(&fields)
    }
}

impl BatchFormat for Native {
    fn envelope(&self) -> EnvelopeShape {
        native_envelope(self.max_events)
    }

    fn max_item_bytes(&self) -> usize {
        self.max_event_bytes
    }

    /// Our own trouble with one event (the store) is that event's refusal; the others
    /// are still stored.
    fn fails_the_batch(&self, _: &Failure) -> bool {
        false
    }

    /// Nothing stored: if it was our trouble, the client sends the same batch again later
    /// (a 202 would tell it the batch was dealt with); else the answer lists why each was
    /// refused.
    fn when_none_accepted(&self, mut refusals: Vec<Failure>) -> Result<Vec<Failure>, Failure> {
        match refusals
            .iter()
            .position(|refusal| refusal.kind() == ErrorKind::Unavailable)
        {
            Some(ours) => Err(refusals.swap_remove(ours)),
            None => Ok(refusals),
        }
    }
}

/// The largest body of a one-event endpoint: one event (`ingest.max_event_size`), and no
/// more than any request (`http.max_request_size`).
pub fn single_event_limit(config: &Config) -> usize {
    bytes(config.ingest.max_event_size).min(bytes(config.http.max_request_size))
}

/// The native envelope, `{"events": [...]}`, of at most `max_events` events.
pub fn native_envelope(max_events: usize) -> EnvelopeShape {
    EnvelopeShape {
        array: "events",
        items: "events",
        max_items: max_events,
    }
}

/// Validates one event object of the native API (`eventType`, `eventName`, …).
pub fn parse_event(fields: &EventFields<'_>) -> Result<EventDraft, Vec<FieldError>> {
    let mut fields = Fields::new(fields);
    let event_type = fields.event_type(&["eventType", "eventName"]);
    let event_id = fields.identifier(&["eventId"]);
    let timestamp = fields.timestamp(&["timestamp", "eventTimestamp"]);
    let user_id = fields.identifier(&["userId"]);
    let anonymous_id = fields.identifier(&["anonymousId"]);
    let subsystem = fields.identifier(&["subsystem", "subsystemId"]);
    let properties = fields.object(&["properties"]);
    let context = fields.object(&["context"]);
    fields.require_identity(&user_id, &anonymous_id);
    match event_type {
        Some(event_type) if fields.errors.is_empty() => Ok(EventDraft {
            event_id,
            event_type,
            timestamp,
            user_id,
            anonymous_id,
            subsystem,
            properties,
            context,
        }),
        _ => Err(fields.errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::format::event_fields;
    use crate::ingest::format::fields::MAX_JSON_VALUES;
    use crate::model::JsonObject;
    use serde_json::{Value, json};

    fn parse(value: Value) -> Result<EventDraft, Vec<FieldError>> {
        let json = serde_json::to_vec(&value).unwrap();
        parse_event(&event_fields(&json).unwrap())
    }

    fn fields_of(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|error| error.field).collect()
    }

    #[test]
    fn accepts_a_minimal_event_with_aliases() {
        let draft = parse(json!({"eventName": "Order Completed", "anonymousId": "a1", "eventTimestamp": "2026-11-21T10:30:00+02:00"})).unwrap();
        assert_eq!(draft.event_type, "Order Completed");
        assert_eq!(
            draft.timestamp.unwrap().to_rfc3339(),
            "2026-11-21T08:30:00+00:00"
        );
        assert_eq!(draft.properties, JsonObject::empty());
    }

    #[test]
    fn numeric_user_ids_are_kept_as_text() {
        let draft = parse(json!({"eventType": "x", "userId": 42})).unwrap();
        assert_eq!(draft.user_id.as_deref(), Some("42"));
    }

    #[test]
    fn requires_event_type_and_an_identity() {
        let errors = parse(json!({"properties": {}})).unwrap_err();
        assert_eq!(fields_of(errors), ["eventType", "userId"]);
    }

    #[test]
    fn refuses_blank_long_and_control_character_event_types() {
        for bad in [
            json!("   "),
            json!("x".repeat(201)),
            json!("a\u{0007}b"),
            json!(5),
        ] {
            let errors = parse(json!({"eventType": bad, "userId": "u"})).unwrap_err();
            assert_eq!(fields_of(errors), ["eventType"], "{bad}");
        }
        assert!(parse(json!({"eventType": "x".repeat(200), "userId": "u"})).is_ok());
    }

    #[test]
    fn properties_are_kept_as_sent() {
        let json = br#"{"eventType": "x", "userId": "u", "properties": {"b": 2,  "a": 1.50}}"#;
        let draft = parse_event(&event_fields(json).unwrap()).unwrap();
        assert_eq!(draft.properties.as_str(), r#"{"b": 2,  "a": 1.50}"#);
    }

    #[test]
    fn values_a_full_parse_refuses_are_field_errors_not_panics() {
        let json = br#"{"eventType": "\ud800", "userId": 1e400, "properties": {"n": 1e400}}"#;
        let errors = parse_event(&event_fields(json).unwrap()).unwrap_err();
        assert_eq!(fields_of(errors), ["eventType", "userId", "properties"]);
    }

    #[test]
    fn deep_or_huge_properties_are_refused_by_field() {
        let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
        let json = format!(r#"{{"eventType": "x", "userId": "u", "properties": {{"a": {deep}}}}}"#);
        let errors = parse_event(&event_fields(json.as_bytes()).unwrap()).unwrap_err();
        assert_eq!(fields_of(errors), ["properties"]);
        let zeros = vec!["0"; MAX_JSON_VALUES + 1].join(",");
        let json = format!(r#"{{"eventType": "x", "userId": "u", "context": {{"a": [{zeros}]}}}}"#);
        let errors = parse_event(&event_fields(json.as_bytes()).unwrap()).unwrap_err();
        assert_eq!(fields_of(errors), ["context"]);
        let strings = r#"{"eventType": "x", "userId": "u", "properties": {"a": "[[[[,,,\"]]"}}"#;
        assert!(parse_event(&event_fields(strings.as_bytes()).unwrap()).is_ok());
    }

    #[test]
    fn reports_each_malformed_field() {
        let errors = parse(json!({
            "eventType": "x", "userId": "u", "timestamp": "yesterday",
            "properties": [1], "context": "ctx"
        }))
        .unwrap_err();
        assert_eq!(fields_of(errors), ["timestamp", "properties", "context"]);
    }

    #[test]
    fn refuses_timestamps_before_2000() {
        let errors =
            parse(json!({"eventType": "x", "userId": "u", "timestamp": "1970-01-01T00:00:00Z"}))
                .unwrap_err();
        assert_eq!(fields_of(errors), ["timestamp"]);
    }
}
