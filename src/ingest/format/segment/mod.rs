//! Segment's endpoints in the native event's terms (`Segment`): the single calls and the
//! batch, with Segment's rules for a batch in part refused, and the
//! write key a body may carry. One message becomes a draft in `message`.

mod message;

use serde::Deserialize;

pub use self::message::{
    ALIAS_EVENT_TYPE, GROUP_EVENT_TYPE, IDENTIFY_EVENT_TYPE, PAGE_EVENT_TYPE, SCREEN_EVENT_TYPE,
    SegmentCall, TRUSTED_CLOCK_SKEW, corrected, translate,
};
use super::envelope::EnvelopeShape;
use super::{Arrival, BatchFormat, EventDraft, EventFields, Format, FormatError, bytes};
use crate::config::Config;
use crate::error::{ErrorKind, Failure, FieldError, ServiceError};

/// Segment's documented limits: one message, one batch request's body, one batch's messages.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
pub const MAX_BATCH_BYTES: usize = 500 * 1024;
pub const MAX_BATCH_MESSAGES: usize = 2_500;

/// Segment's endpoints: a single call (`/v1/track`, `/v1/t`, …: one message of that
/// call), or a batch (`/v1/batch`, `/v1/import`, analytics.js's `/v1/b`: each message
/// names its `type`).
pub struct Segment {
    /// The call an endpoint stands for; `None` for a batch.
    call: Option<SegmentCall>,
    max_body_bytes: usize,
    max_message_bytes: usize,
}

impl Segment {
    pub fn message(call: SegmentCall, config: &Config) -> Segment {
        let max_message_bytes = message_limit(config);
        Segment {
            call: Some(call),
            max_body_bytes: max_message_bytes,
            max_message_bytes,
        }
    }

    pub fn batch(config: &Config) -> Segment {
        Segment {
            call: None,
            max_body_bytes: MAX_BATCH_BYTES.min(bytes(config.http.max_batch_request_size)),
            max_message_bytes: message_limit(config),
        }
    }
}

/// Segment's envelope, `{"batch": [...], "sentAt": ...}`, of at most 2,500 messages.
pub const ENVELOPE: EnvelopeShape = EnvelopeShape {
    array: "batch",
    items: "messages",
    max_items: MAX_BATCH_MESSAGES,
};

impl Format for Segment {
    const ITEM: &'static str = "message";
    const KEY_IN_BODY: bool = true;

    fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    fn key_in_body(&self, body: &[u8]) -> Result<Option<String>, FormatError> {
        Ok(write_key_in(body))
    }

    fn draft(
        &self,
        fields: EventFields<'_>,
        arrival: Arrival,
    ) -> Result<EventDraft, Vec<FieldError>> {
        translate(&fields, self.call, arrival)
    }
}

impl BatchFormat for Segment {
    fn envelope(&self) -> EnvelopeShape {
        ENVELOPE
    }

    fn max_item_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Our own trouble (the store, overload) fails the whole batch, so that the library
    /// retries it; `messageId`s keep the retry from storing twice.
    fn fails_the_batch(&self, refusal: &Failure) -> bool {
        !is_the_messages_fault(refusal)
    }

    fn when_none_accepted(&self, refusals: Vec<Failure>) -> Result<Vec<Failure>, Failure> {
        Err(EveryMessageRefused::of(refusals).into())
    }
}

/// The largest message: Segment's 32 KB, or less if `ingest.max_event_size` says so.
fn message_limit(config: &Config) -> usize {
    MAX_MESSAGE_BYTES.min(bytes(config.ingest.max_event_size))
}

/// Refusals that resending the same message could never turn into a success.
fn is_the_messages_fault(refusal: &Failure) -> bool {
    matches!(
        refusal.kind(),
        ErrorKind::InvalidRequest
            | ErrorKind::Forbidden
            | ErrorKind::Unprocessable
            | ErrorKind::PayloadTooLarge
    )
}

/// A batch none of whose messages can be stored: `400`, which the libraries drop rather
/// than retry, naming every message's fields as `batch[i].field`.
#[derive(Debug, thiserror::Error)]
#[error("no message of the batch can be stored: {}", crate::error::FieldErrors(.0.clone()))]
pub struct EveryMessageRefused(Vec<FieldError>);

impl EveryMessageRefused {
    fn of(refusals: Vec<Failure>) -> EveryMessageRefused {
        let errors = refusals.iter().enumerate().flat_map(|(index, refusal)| {
            let refusal = refusal.as_service_error();
            let fields = refusal.field_errors();
            if fields.is_empty() {
                return vec![FieldError::new(
                    format!("batch[{index}]"),
                    refusal.client_detail(),
                )];
            }
            fields
                .into_iter()
                .map(|error| {
                    FieldError::new(format!("batch[{index}].{}", error.field), error.message)
                })
                .collect()
        });
        EveryMessageRefused(errors.collect())
    }
}

impl ServiceError for EveryMessageRefused {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidRequest
    }

    fn field_errors(&self) -> Vec<FieldError> {
        self.0.clone()
    }
}

/// The body's `writeKey`, if it is a JSON object holding one as a string.
pub fn write_key_in(json: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct WriteKey {
        #[serde(rename = "writeKey")]
        write_key: Option<String>,
    }
    serde_json::from_slice::<WriteKey>(json)
        .ok()?
        .write_key
        .filter(|key| !key.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_key_is_found_in_a_body_of_any_shape() {
        let body = br#"{"batch": [{"type": "track"}], "writeKey": "vt_a", "sentAt": "x"}"#;
        assert_eq!(write_key_in(body).as_deref(), Some("vt_a"));
        assert_eq!(write_key_in(br#"{"writeKey": 5}"#), None);
        assert_eq!(write_key_in(br#"{"writeKey": " "}"#), None);
        assert_eq!(write_key_in(b"[1]"), None);
    }

    #[test]
    fn a_batch_refused_whole_names_each_messages_fields() {
        let refusals: Vec<Failure> = vec![
            crate::error::FieldErrors::one("event", "is required").into(),
            FormatError::TooLarge("the message is larger than 32768 bytes".into()).into(),
        ];
        let batch = Segment::batch(&Config::defaults());
        let error = batch.when_none_accepted(refusals).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidRequest);
        let fields = error.as_service_error().field_errors();
        let fields: Vec<&str> = fields.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["batch[0].event", "batch[1]"]);
        assert!(
            error
                .to_string()
                .starts_with("no message of the batch can be stored: ")
        );
    }

    #[test]
    fn the_libraries_retry_only_what_is_not_the_messages_fault() {
        let batch = Segment::batch(&Config::defaults());
        assert!(!batch.fails_the_batch(&FormatError::Malformed("x".into()).into()));
        let ours: Failure = crate::error::InternalError("x".into()).into();
        assert!(batch.fails_the_batch(&ours));
        let full = format!("{{\"batch\": [{}0]}}", "0,".repeat(MAX_BATCH_MESSAGES - 1));
        assert!(ENVELOPE.parse(full.as_bytes()).is_ok());
        let too_many = format!("{{\"batch\": [{}0]}}", "0,".repeat(MAX_BATCH_MESSAGES));
        let too_many = ENVELOPE.parse(too_many.as_bytes()).unwrap_err();
        assert_eq!(too_many.kind(), ErrorKind::PayloadTooLarge);
        assert_eq!(
            ENVELOPE.parse(br#"{"batch": []}"#).unwrap_err().kind(),
            ErrorKind::InvalidRequest
        );
    }
}
