//! The edge of ingestion: one event object in, a validated `EventDraft` out (or every
//! field problem at once). Fields arrive as raw JSON (`EventFields`): small ones are
//! decoded, `properties` and `context` are only checked to be objects and kept as the
//! text they came in. After this, the rest of the pipeline can't see a malformed event.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::FieldError;
use crate::model::{JsonObject, check_event_type};

pub(crate) const MAX_ID_CHARS: usize = 255;
/// How deep `properties` and `context` may nest, and how many values each may hold: a
/// parsed tree (for schema validation) then stays a small multiple of the event's bytes.
pub const MAX_JSON_DEPTH: usize = 32;
pub const MAX_JSON_VALUES: usize = 10_000;
/// Earliest accepted event time; anything before is a client clock or encoding bug.
pub(crate) const EARLIEST_TIMESTAMP: &str = "2000-01-01T00:00:00Z";

/// An event object's top-level fields, as raw JSON borrowed from the request body.
pub type EventFields<'a> = HashMap<String, &'a RawValue>;

/// Splits one JSON object into its fields without decoding their values.
pub fn event_fields(json: &[u8]) -> Result<EventFields<'_>, serde_json::Error> {
    serde_json::from_slice(json)
}

/// A well-formed event whose subsystem is not yet resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft {
    pub event_id: Option<String>,
    pub event_type: String,
    pub timestamp: Option<DateTime<Utc>>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    /// Subsystem code or id, as the client sent it.
    pub subsystem: Option<String>,
    pub properties: JsonObject,
    pub context: JsonObject,
}

/// Field names as the client spelled them (first name wins), so errors point at them.
/// Other wire formats (`segment`) read their fields with the same rules.
pub(super) struct Fields<'a, 'b> {
    fields: &'b EventFields<'a>,
    pub(super) errors: Vec<FieldError>,
}

impl<'a, 'b> Fields<'a, 'b> {
    pub(super) fn new(fields: &'b EventFields<'a>) -> Fields<'a, 'b> {
        Fields {
            fields,
            errors: Vec::new(),
        }
    }

    pub(super) fn find(&self, names: &[&'static str]) -> Option<(&'static str, &'a RawValue)> {
        names.iter().find_map(|name| {
            self.fields
                .get(*name)
                .filter(|raw| raw.get().trim() != "null")
                .map(|raw| (*name, *raw))
        })
    }

    pub(super) fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    /// The decoded value of a small field (ids, names, timestamps). The body's parser
    /// only skimmed it, so decoding can still fail (`1e400`, a lone surrogate escape).
    pub(super) fn value(&mut self, names: &[&'static str]) -> Option<(&'static str, Value)> {
        let (name, raw) = self.find(names)?;
        match serde_json::from_str(raw.get()) {
            Ok(value) => Some((name, value)),
            Err(error) => {
                self.fail(name, format!("is not valid JSON: {error}"));
                None
            }
        }
    }

    /// A string id; numbers are accepted and kept as their decimal text (Segment allows both).
    pub(super) fn identifier(&mut self, names: &[&'static str]) -> Option<String> {
        let (name, value) = self.value(names)?;
        let text = match value {
            Value::String(text) => text,
            Value::Number(number) => number.to_string(),
            _ => {
                self.fail(name, "must be a string");
                return None;
            }
        };
        if text.trim().is_empty() {
            self.fail(name, "must not be blank");
            None
        } else if text.chars().count() > MAX_ID_CHARS {
            self.fail(name, format!("must be at most {MAX_ID_CHARS} characters"));
            None
        } else if text.chars().any(char::is_control) {
            self.fail(name, "must not contain control characters");
            None
        } else {
            Some(text)
        }
    }

    pub(super) fn event_type(&mut self, names: &[&'static str]) -> Option<String> {
        if self.find(names).is_none() {
            self.fail(names[0], "is required");
            return None;
        }
        let (name, value) = self.value(names)?;
        let Value::String(text) = value else {
            self.fail(name, "must be a string");
            return None;
        };
        match check_event_type(&text) {
            Ok(()) => Some(text),
            Err(message) => {
                self.fail(name, message);
                None
            }
        }
    }

    fn timestamp(&mut self, names: &[&'static str]) -> Option<DateTime<Utc>> {
        let (name, parsed) = self.instant(names)?;
        self.not_too_early(name, parsed)
    }

    /// An RFC 3339 instant, any year (a device clock may be decades off), with its name.
    pub(super) fn instant(
        &mut self,
        names: &[&'static str],
    ) -> Option<(&'static str, DateTime<Utc>)> {
        let (name, value) = self.value(names)?;
        let parsed = value
            .as_str()
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok());
        let Some(parsed) = parsed else {
            self.fail(
                name,
                "must be an RFC 3339 timestamp such as 2026-11-21T10:30:00Z",
            );
            return None;
        };
        Some((name, parsed.with_timezone(&Utc)))
    }

    /// `time` as the event time, unless it is before 2000 (a clock or encoding bug).
    pub(super) fn not_too_early(
        &mut self,
        name: &str,
        time: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let earliest = DateTime::parse_from_rfc3339(EARLIEST_TIMESTAMP).expect("valid constant");
        if time < earliest {
            self.fail(name, format!("must not be before {EARLIEST_TIMESTAMP}"));
            return None;
        }
        Some(time)
    }

    /// `userId` or `anonymousId` is required (unless one of them was already at fault).
    pub(super) fn require_identity(
        &mut self,
        user_id: &Option<String>,
        anonymous_id: &Option<String>,
    ) {
        let named = |error: &FieldError| error.field == "userId" || error.field == "anonymousId";
        if user_id.is_none() && anonymous_id.is_none() && !self.errors.iter().any(named) {
            self.fail("userId", "userId or anonymousId is required");
        }
    }

    pub(super) fn object(&mut self, names: &[&'static str]) -> JsonObject {
        let Some((name, raw)) = self.find(names) else {
            return JsonObject::empty();
        };
        let object = match JsonObject::from_raw(raw) {
            Ok(object) => object,
            Err(problem) => {
                self.fail(name, problem);
                return JsonObject::empty();
            }
        };
        if let Some(problem) = shape_problem(object.as_str()) {
            self.fail(name, problem);
            return JsonObject::empty();
        }
        object
    }
}

/// Why JSON text nests too deep or holds too many values, if it does. One pass over the
/// bytes (strings skipped), no tree built.
pub(crate) fn shape_problem(text: &str) -> Option<String> {
    let (mut depth, mut values) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for byte in text.bytes() {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                values += 1;
                if depth > MAX_JSON_DEPTH {
                    return Some(format!("must not nest deeper than {MAX_JSON_DEPTH} levels"));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' => values += 1,
            _ => {}
        }
        if values > MAX_JSON_VALUES {
            return Some(format!("must hold at most {MAX_JSON_VALUES} values"));
        }
    }
    None
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

/// The event time to store: the client's, unless it is further ahead of `received_at`
/// than the allowed skew, in which case the receive time wins (the event is kept).
pub fn effective_timestamp(
    claimed: Option<DateTime<Utc>>,
    received_at: DateTime<Utc>,
    max_skew: chrono::Duration,
) -> DateTime<Utc> {
    match claimed {
        Some(claimed) if claimed <= received_at + max_skew => claimed,
        _ => received_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    #[test]
    fn future_timestamps_beyond_the_skew_are_clamped_to_receive_time() {
        let now = Utc::now();
        let skew = chrono::Duration::minutes(10);
        let slightly_ahead = now + chrono::Duration::minutes(5);
        assert_eq!(
            effective_timestamp(Some(slightly_ahead), now, skew),
            slightly_ahead
        );
        assert_eq!(
            effective_timestamp(Some(now + chrono::Duration::days(1)), now, skew),
            now
        );
        assert_eq!(effective_timestamp(None, now, skew), now);
    }
}
