//! `POST /api/events/ingest`, the legacy shape: the native event with `apiKey` in the body
//! (when the headers hold no key) and `eventProperties` (an object) or
//! `eventPropertiesJson` (a JSON string) for `properties`.

use serde_json::value::RawValue;

use super::native::{parse_event, single_event_limit};
use super::{Arrival, EventDraft, EventFields, Format, FormatError, fields_of};
use crate::config::Config;
use crate::error::FieldError;

pub struct Legacy {
    max_body_bytes: usize,
}

impl Legacy {
    pub fn new(config: &Config) -> Legacy {
        Legacy {
            max_body_bytes: single_event_limit(config),
        }
    }
}

impl Format for Legacy {
    const ITEM: &'static str = "event";
    const KEY_IN_BODY: bool = true;

    fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// `apiKey`, if it is a string; the body must be one JSON object.
    fn key_in_body(&self, body: &[u8]) -> Result<Option<String>, FormatError> {
        let fields = fields_of(body, "the", Self::ITEM)?;
        Ok(fields
            .get("apiKey")
            .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok()))
    }

    fn draft(
        &self,
        mut fields: EventFields<'_>,
        _: Arrival,
    ) -> Result<EventDraft, Vec<FieldError>> {
        fields.remove("apiKey");
        let decoded_properties = properties_json(&mut fields)?;
        let mut fields = fields;
        if let Some(properties) = &decoded_properties {
            fields.insert("properties".into(), properties);
        }
        parse_event(&fields)
    }
}

/// Moves `eventProperties` to `properties`, and decodes `eventPropertiesJson` (a string
/// holding JSON), which the caller then uses as `properties`.
pub fn properties_json(
    fields: &mut EventFields<'_>,
) -> Result<Option<Box<RawValue>>, Vec<FieldError>> {
    if let Some(properties) = fields.remove("eventProperties") {
        fields.insert("properties".into(), properties);
    }
    let Some(raw) = fields.remove("eventPropertiesJson") else {
        return Ok(None);
    };
    let refused = |message: String| vec![FieldError::new("eventPropertiesJson", message)];
    match serde_json::from_str::<Option<String>>(raw.get()) {
        Ok(None) => Ok(None),
        Ok(Some(text)) => RawValue::from_string(text)
            .map(Some)
            .map_err(|error| refused(format!("is not valid JSON: {error}"))),
        Err(_) => Err(refused(
            "must be a string holding a JSON object".to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn draft(body: &str) -> Result<EventDraft, Vec<FieldError>> {
        let arrival = Arrival {
            received_at: Utc::now(),
            batch_sent_at: None,
        };
        Legacy::new(&Config::defaults())
            .draft(fields_of(body.as_bytes(), "the", "event").unwrap(), arrival)
    }

    #[test]
    fn the_key_is_read_from_the_body_and_never_kept() {
        let body = r#"{"apiKey": "vt_x", "eventName": "a", "userId": "u"}"#;
        let legacy = Legacy::new(&Config::defaults());
        assert_eq!(
            legacy.key_in_body(body.as_bytes()).unwrap().as_deref(),
            Some("vt_x")
        );
        assert!(legacy.key_in_body(br#"{"apiKey": 5}"#).unwrap().is_none());
        assert!(legacy.key_in_body(b"[1]").is_err());
        assert!(!draft(body).unwrap().properties.as_str().contains("vt_x"));
    }

    #[test]
    fn properties_come_from_event_properties_or_its_json_text() {
        let object = r#"{"eventName": "a", "userId": "u", "eventProperties": {"n": 1}}"#;
        assert_eq!(draft(object).unwrap().properties.as_str(), r#"{"n": 1}"#);
        let text = r#"{"eventName": "a", "userId": "u", "eventPropertiesJson": "{\"n\": 2}"}"#;
        assert_eq!(draft(text).unwrap().properties.as_str(), r#"{"n": 2}"#);
    }

    #[test]
    fn event_properties_json_that_is_no_json_text_names_the_field() {
        for bad in [r#""{nope""#, "5"] {
            let body =
                format!(r#"{{"eventName": "a", "userId": "u", "eventPropertiesJson": {bad}}}"#);
            let errors = draft(&body).unwrap_err();
            assert_eq!(errors[0].field, "eventPropertiesJson", "{bad}");
        }
    }
}
