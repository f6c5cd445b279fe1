//! The batch envelopes: the native `{"events": [...]}` and Segment's `{"batch": [...],
//! "sentAt": ...}`. The array is counted while it is parsed and the parse stops at the
//! first element past the limit: collecting it whole first would let a few KB of gzip
//! (`{"events":[0,0,0,…]}`, millions of elements) cost tens of MB before the limit applied.
//! Elements are borrowed from the body, never copied.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::FormatError;

/// Which array an envelope holds, what its elements are called, and how many it may hold.
#[derive(Debug, Clone, Copy)]
pub struct EnvelopeShape {
    /// The field holding the array: `events` or `batch`.
    pub array: &'static str,
    /// What one element is, in messages: `events` or `messages`.
    pub items: &'static str,
    pub max_items: usize,
}

/// An envelope read within its limit.
#[derive(Debug)]
pub struct Envelope<'a> {
    /// At least one and at most `max_items` elements, in order.
    pub items: Vec<&'a RawValue>,
    /// Segment's `sentAt` (the native envelope has none and ignores it).
    pub sent_at: Option<&'a RawValue>,
}

impl EnvelopeShape {
    /// Reads `json` as this envelope: `413` past `max_items` elements (found while
    /// parsing), `400` for an empty array or a body of another shape.
    pub fn parse<'a>(&self, json: &'a [u8]) -> Result<Envelope<'a>, FormatError> {
        let past_limit = Cell::new(false);
        let mut deserializer = serde_json::Deserializer::from_slice(json);
        let parsed = EnvelopeSeed {
            shape: self,
            past_limit: &past_limit,
        }
        .deserialize(&mut deserializer)
        .and_then(|envelope| deserializer.end().map(|()| envelope));
        match parsed {
            Ok(envelope) if envelope.items.is_empty() => Err(FormatError::field(
                self.array,
                format!("must contain at least one {}", self.singular()),
            )),
            Ok(envelope) => Ok(envelope),
            Err(_) if past_limit.get() => Err(self.too_many()),
            Err(error) => Err(FormatError::Malformed(format!(
                "the body must be {{\"{}\": [...]}}: {error}",
                self.array
            ))),
        }
    }

    pub fn too_many(&self) -> FormatError {
        FormatError::TooLarge(format!(
            "a batch holds at most {} {}, got more",
            self.max_items, self.items
        ))
    }

    fn singular(&self) -> &'static str {
        match self.items {
            "messages" => "message",
            _ => "event",
        }
    }
}

struct EnvelopeSeed<'s> {
    shape: &'s EnvelopeShape,
    past_limit: &'s Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for EnvelopeSeed<'_> {
    type Value = Envelope<'de>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EnvelopeSeed<'_> {
    type Value = Envelope<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        write!(
            formatter,
            "an object with an \"{}\" array",
            self.shape.array
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut items = None;
        let mut sent_at = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == self.shape.array {
                if items.is_some() {
                    return Err(de::Error::duplicate_field(self.shape.array));
                }
                items = Some(map.next_value_seed(BoundedArray {
                    max_items: self.shape.max_items,
                    past_limit: self.past_limit,
                })?);
            } else if key == "sentAt" {
                if sent_at.is_some() {
                    return Err(de::Error::duplicate_field("sentAt"));
                }
                sent_at = Some(map.next_value::<Option<&'de RawValue>>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        let items = items.ok_or_else(|| de::Error::missing_field(self.shape.array))?;
        Ok(Envelope {
            items,
            sent_at: sent_at.flatten(),
        })
    }
}

/// An array of at most `max_items` raw elements; one more fails the parse there and then.
struct BoundedArray<'s> {
    max_items: usize,
    past_limit: &'s Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for BoundedArray<'_> {
    type Value = Vec<&'de RawValue>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for BoundedArray<'_> {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        write!(formatter, "an array of at most {} elements", self.max_items)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            if items.len() == self.max_items {
                self.past_limit.set(true);
                return Err(de::Error::custom(format_args!(
                    "more than {} elements",
                    self.max_items
                )));
            }
            items.push(item);
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, ServiceError};

    const NATIVE: EnvelopeShape = EnvelopeShape {
        array: "events",
        items: "events",
        max_items: 3,
    };

    #[test]
    fn elements_are_borrowed_in_order_and_other_fields_ignored() {
        let body = br#"{"other": [1, {"x": 2}], "events": [{"a": 1}, 2, "three"], "sentAt": "s"}"#;
        let envelope = NATIVE.parse(body).unwrap();
        let items: Vec<&str> = envelope.items.iter().map(|raw| raw.get()).collect();
        assert_eq!(items, [r#"{"a": 1}"#, "2", r#""three""#]);
        assert_eq!(envelope.sent_at.map(RawValue::get), Some(r#""s""#));
    }

    #[test]
    fn one_element_past_the_limit_is_too_large_even_in_a_body_cut_short() {
        let error = NATIVE.parse(br#"{"events": [0, 0, 0, 0, 0"#).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::PayloadTooLarge);
        assert_eq!(
            error.to_string(),
            "a batch holds at most 3 events, got more"
        );
        assert!(NATIVE.parse(br#"{"events": [0, 0, 0]}"#).is_ok());
    }

    #[test]
    fn an_empty_missing_or_repeated_array_is_a_bad_request() {
        let empty = NATIVE.parse(br#"{"events": []}"#).unwrap_err();
        assert_eq!(empty.kind(), ErrorKind::InvalidRequest);
        assert_eq!(empty.field_errors()[0].field, "events");
        for body in [
            &br#"{"batch": [1]}"#[..],
            br#"{"events": [1], "events": [2]}"#,
            br#"[[1]]"#,
            br#"{"events": [1]} trailing"#,
            br#"{"events": [1], "sentAt": 1, "sentAt": 2}"#,
        ] {
            let error = NATIVE.parse(body).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidRequest, "{error:?}");
        }
    }

    #[test]
    fn a_null_sent_at_is_none() {
        let envelope = NATIVE.parse(br#"{"events": [1], "sentAt": null}"#).unwrap();
        assert!(envelope.sent_at.is_none());
    }
}
