//! The field rules every wire format reads its fields with: names as the client spelled
//! them (first name wins, so errors point at them), small values decoded, `properties` and
//! `context` only checked to be objects within the depth and size bounds and kept as the
//! text they came in.

use chrono::{DateTime, Utc};
use serde_json::Value;
use serde_json::value::RawValue;

use super::EventFields;
use crate::error::FieldError;
use crate::model::{JsonObject, check_event_type};

pub(crate) const MAX_ID_CHARS: usize = 255;
/// How deep `properties` and `context` may nest, and how many values each may hold: a
/// parsed tree (for schema validation) then stays a small multiple of the event's bytes.
pub const MAX_JSON_DEPTH: usize = 32;
pub const MAX_JSON_VALUES: usize = 10_000;
/// Earliest accepted event time; anything before is a client clock or encoding bug.
pub(crate) const EARLIEST_TIMESTAMP: &str = "2000-01-01T00:00:00Z";

/// Every wire format reads its fields with these rules.
pub(crate) struct Fields<'a, 'b> {
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

    pub(super) fn timestamp(&mut self, names: &[&'static str]) -> Option<DateTime<Utc>> {
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
