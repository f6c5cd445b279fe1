use std::borrow::Cow;

use serde::{Deserializer, Serialize};
use serde_json::value::RawValue;

/// A JSON object kept as the text it arrived as: checked once at the edge, then carried
/// through the queue and stores without being parsed into a tree or re-encoded.
#[derive(Clone, Serialize)]
#[serde(transparent)]
pub struct JsonObject(Box<RawValue>);

impl JsonObject {
    pub fn empty() -> JsonObject {
        JsonObject(RawValue::from_string("{}".to_string()).expect("valid JSON"))
    }

    /// `raw` if it is an object of strict JSON (see `check_strict`).
    pub fn from_raw(raw: &RawValue) -> Result<JsonObject, String> {
        check_object(raw.get())?;
        Ok(JsonObject(raw.to_owned()))
    }

    /// Checks `text` (e.g. a JSON string inside a body, or a stored row) and keeps it.
    pub fn parse(text: String) -> Result<JsonObject, String> {
        let raw = RawValue::from_string(text).map_err(|error| error.to_string())?;
        check_object(raw.get())?;
        Ok(JsonObject(raw))
    }

    /// Encodes a tree built in code (translated formats, tests).
    pub fn from_map(map: &serde_json::Map<String, serde_json::Value>) -> JsonObject {
        JsonObject(serde_json::value::to_raw_value(map).expect("a map always serializes"))
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    pub fn as_raw(&self) -> &RawValue {
        &self.0
    }

    /// The object without its top-level field `name` (every occurrence of it), if it has
    /// one: the other members in their order, each value's text as sent (only the spacing
    /// between members goes), with no tree built; `None`, and no walk, when the text
    /// can't name it.
    pub fn without_field(&self, name: &str) -> Option<JsonObject> {
        let text = self.as_str();
        // Checked on every event: a scan for `"name"`, without building the needle. A key
        // spelled with escapes (`"\u0069p"`) needs a backslash, so one sends us walking.
        let named = text.match_indices(name).any(|(at, _)| {
            at > 0
                && text.as_bytes()[at - 1] == b'"'
                && text.as_bytes().get(at + name.len()) == Some(&b'"')
        });
        if !named && !text.contains('\\') {
            return None;
        }
        let kept = serde_json::Deserializer::from_str(text)
            .deserialize_map(CutField { name })
            .expect("checked when the object was made")?;
        // Serialized, not parsed: the values are copied as they are, and the result needs
        // no second check (`RawValue::from_string` would walk it all again).
        let object = serde_json::value::to_raw_value(&Members(kept))
            .expect("keys and checked values always serialize");
        Some(JsonObject(object))
    }

    /// The parsed tree, for the few places that need one (schema validation).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).expect("checked when the object was made")
    }
}

/// Walks an object's members, keeping every one not named `name` as its key and its
/// value's raw text; `None` when no member is named `name`.
struct CutField<'a> {
    name: &'a str,
}

impl<'de> serde::de::Visitor<'de> for CutField<'_> {
    type Value = Option<Vec<(Cow<'de, str>, &'de RawValue)>>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut kept = Vec::with_capacity(map.size_hint().unwrap_or(8));
        let mut cut = false;
        while let Some(key) = map.next_key_seed(Key)? {
            let value: &'de RawValue = map.next_value()?;
            if key == self.name {
                cut = true;
            } else {
                kept.push((key, value));
            }
        }
        Ok(cut.then_some(kept))
    }
}

/// The members `CutField` kept, written back as an object in their order.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl Serialize for Members<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// A key, borrowed from the text unless it has escapes.
struct Key;

impl<'de> serde::de::DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a key")
    }

    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(key))
    }

    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key.to_string()))
    }
}

fn check_object(text: &str) -> Result<(), String> {
    if !text.trim_start().starts_with('{') {
        return Err("must be a JSON object".to_string());
    }
    check_strict(text)
}

/// The raw-value parser that splits a body skips over values without decoding them, so
/// it lets through what a full parse refuses (a lone surrogate escape, `1e400`). Walking
/// the value with `deserialize_any` decodes every string and number without building a
/// tree, so what is kept here always parses later (schema checks, readers of the API).
fn check_strict(text: &str) -> Result<(), String> {
    serde_json::from_str::<Strict>(text)
        .map(|_| ())
        .map_err(|error| format!("is not valid JSON: {error}"))
}

struct Strict;

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Strict, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_str<E>(self, _: &str) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        while seq.next_element::<Strict>()?.is_some() {}
        Ok(Strict)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        while map.next_entry::<Strict, Strict>()?.is_some() {}
        Ok(Strict)
    }
}

impl PartialEq for JsonObject {
    fn eq(&self, other: &JsonObject) -> bool {
        self.as_str() == other.as_str()
    }
}

impl std::fmt::Debug for JsonObject {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_is_taken_out_only_where_the_object_holds_it() {
        let context =
            JsonObject::parse(r#"{"ip": "203.0.113.9", "page": {"ip": "x"}}"#.into()).unwrap();
        let without = context.without_field("ip").unwrap();
        assert_eq!(without.to_value(), serde_json::json!({"page": {"ip": "x"}}));
        assert!(
            without.without_field("ip").is_none(),
            "a nested field stays"
        );
        assert!(JsonObject::empty().without_field("ip").is_none());
    }

    #[test]
    fn a_field_is_cut_wherever_it_stands_and_the_rest_kept_in_order_as_sent() {
        let cut = |text: &str| {
            JsonObject::parse(text.to_string())
                .unwrap()
                .without_field("ip")
                .map(|object| object.as_str().to_string())
        };
        assert_eq!(
            cut(r#"{"ip": "203.0.113.9", "b": 1.50, "a": {"ip": 2}}"#).as_deref(),
            Some(r#"{"b":1.50,"a":{"ip": 2}}"#)
        );
        assert_eq!(
            cut(r#"{"z": [1, "ip"] , "ip":"x","a":null}"#).as_deref(),
            Some(r#"{"z":[1, "ip"],"a":null}"#)
        );
        assert_eq!(cut(r#" { "ip" : {"v": "}"} } "#).as_deref(), Some("{}"));
        assert_eq!(
            cut(r#"{"ip": 1, "ip": 2, "k\n": "\"ip\""}"#).as_deref(),
            Some(r#"{"k\n":"\"ip\""}"#)
        );
        assert_eq!(
            cut(r#"{"i\u0070": "x", "a": 1}"#).as_deref(),
            Some(r#"{"a":1}"#)
        );
        assert_eq!(cut(r#"{"a": "ip", "b": "\"ip\"", "ipv6": 1}"#), None);
    }

    #[test]
    fn keeps_objects_as_sent_and_refuses_other_values() {
        let raw: Box<RawValue> = serde_json::from_str(r#"{"b": 1, "a": [2]}"#).unwrap();
        assert_eq!(
            JsonObject::from_raw(&raw).unwrap().as_str(),
            r#"{"b": 1, "a": [2]}"#
        );
        let array: Box<RawValue> = serde_json::from_str("[1]").unwrap();
        assert!(JsonObject::from_raw(&array).is_err());
        assert!(JsonObject::parse("\"text\"".into()).is_err());
        assert!(JsonObject::parse("{\"open\": ".into()).is_err());
        assert_eq!(JsonObject::parse("{}".into()).unwrap(), JsonObject::empty());
    }

    #[test]
    fn text_a_full_parse_would_refuse_is_refused_at_once() {
        for lenient in [r#"{"a": "\ud800"}"#, r#"{"a": 1e400}"#] {
            let raw: Box<RawValue> = serde_json::from_str(lenient).unwrap();
            assert!(JsonObject::from_raw(&raw).is_err(), "{lenient}");
        }
        let fine: Box<RawValue> =
            serde_json::from_str(r#"{"a": "\u00e9", "b": [1.5, null]}"#).unwrap();
        assert_eq!(JsonObject::from_raw(&fine).unwrap().to_value()["a"], "é");
    }
}
