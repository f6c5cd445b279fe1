use serde::Serialize;
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

    /// `raw` if it is an object (the parser that produced it has checked its syntax).
    pub fn from_raw(raw: &RawValue) -> Option<JsonObject> {
        is_object(raw.get()).then(|| JsonObject(raw.to_owned()))
    }

    /// Checks `text` (e.g. a JSON string inside a body, or a stored row) and keeps it.
    pub fn parse(text: String) -> Result<JsonObject, String> {
        let raw = RawValue::from_string(text).map_err(|error| error.to_string())?;
        if is_object(raw.get()) {
            Ok(JsonObject(raw))
        } else {
            Err("must be a JSON object".to_string())
        }
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

    /// The parsed tree, for the few places that need one (schema validation).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).expect("checked when the object was made")
    }
}

fn is_object(text: &str) -> bool {
    text.trim_start().starts_with('{')
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
    fn keeps_objects_as_sent_and_refuses_other_values() {
        let raw: Box<RawValue> = serde_json::from_str(r#"{"b": 1, "a": [2]}"#).unwrap();
        assert_eq!(
            JsonObject::from_raw(&raw).unwrap().as_str(),
            r#"{"b": 1, "a": [2]}"#
        );
        let array: Box<RawValue> = serde_json::from_str("[1]").unwrap();
        assert!(JsonObject::from_raw(&array).is_none());
        assert!(JsonObject::parse("\"text\"".into()).is_err());
        assert!(JsonObject::parse("{\"open\": ".into()).is_err());
        assert_eq!(JsonObject::parse("{}".into()).unwrap(), JsonObject::empty());
    }
}
