//! The wire formats, one file each, turning the shape a client sends into the event
//! drafts the pipeline takes: `native` (one event, or `{"events": [...]}`), `legacy`
//! (`apiKey` and `eventPropertiesJson` in the body) and `segment` (Segment's calls and
//! batches). They share the field rules (`fields`) and the batch envelope counted while it
//! is parsed (`envelope`). Adding a format is one file here implementing `Format` (and
//! `BatchFormat` for an envelope of many), plus its route in `http::ingest`.

pub mod envelope;
pub mod fields;
#[doc(hidden)]
pub mod fuzz;
pub mod legacy;
pub mod native;
pub mod segment;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::error::Category;
use serde_json::value::RawValue;

use self::envelope::EnvelopeShape;
use crate::error::{ErrorKind, Failure, FieldError, FieldErrors, ServiceError};
use crate::model::JsonObject;

/// An event object's top-level fields, as raw JSON borrowed from the request body.
pub type EventFields<'a> = HashMap<String, &'a RawValue>;

/// Splits one JSON object into its fields without decoding their values.
pub fn event_fields(json: &[u8]) -> Result<EventFields<'_>, serde_json::Error> {
    serde_json::from_slice(json)
}

/// The fields of one event object; `article` and `item` name it in the error ("the
/// event", "each message").
pub fn fields_of<'a>(
    json: &'a [u8],
    article: &str,
    item: &str,
) -> Result<EventFields<'a>, FormatError> {
    event_fields(json).map_err(|error| match error.classify() {
        Category::Data => FormatError::Malformed(format!("{article} {item} must be a JSON object")),
        _ => FormatError::Malformed(format!("the body is not valid JSON: {error}")),
    })
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

/// When the request arrived, and the `sentAt` of its batch envelope, if any.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    pub received_at: DateTime<Utc>,
    pub batch_sent_at: Option<DateTime<Utc>>,
}

/// A `sentAt` JSON value (a quoted RFC 3339 time); anything else counts as absent.
pub fn parse_sent_at(json: &str) -> Option<DateTime<Utc>> {
    let text: String = serde_json::from_str(json).ok()?;
    DateTime::parse_from_rfc3339(&text)
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

/// A body, or one element of a batch, that is not the shape its format reads.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Fields(FieldErrors),
}

impl FormatError {
    pub fn field(field: &str, message: impl Into<String>) -> FormatError {
        FormatError::Fields(FieldErrors::one(field, message))
    }
}

impl ServiceError for FormatError {
    fn kind(&self) -> ErrorKind {
        match self {
            FormatError::Malformed(_) | FormatError::Fields(_) => ErrorKind::InvalidRequest,
            FormatError::TooLarge(_) => ErrorKind::PayloadTooLarge,
        }
    }

    fn field_errors(&self) -> Vec<FieldError> {
        match self {
            FormatError::Fields(errors) => errors.0.clone(),
            _ => Vec::new(),
        }
    }
}

/// A wire format: how large its body may be, where its key may be besides the headers,
/// and how one of its event objects becomes a draft.
pub trait Format: Sync {
    /// What one event is called in answers: `event`, or Segment's `message`.
    const ITEM: &'static str;
    /// Whether a body may carry the key in place of the headers; such a body is read
    /// (from the unknown senders' budget) before the sender is known.
    const KEY_IN_BODY: bool = false;

    fn max_body_bytes(&self) -> usize;

    /// The key the body carries, if any (only asked when `KEY_IN_BODY`).
    fn key_in_body(&self, _body: &[u8]) -> Result<Option<String>, FormatError> {
        Ok(None)
    }

    fn draft(
        &self,
        fields: EventFields<'_>,
        arrival: Arrival,
    ) -> Result<EventDraft, Vec<FieldError>>;
}

/// A format whose body is an envelope of many events, judged one by one
/// (`ingest::batch`): how large each may be, and what a refusal does to the rest.
pub trait BatchFormat: Format {
    fn envelope(&self) -> EnvelopeShape;

    fn max_item_bytes(&self) -> usize;

    /// Whether this refusal of one event fails the whole batch (Segment's libraries
    /// resend a failed batch whole) rather than only that event.
    fn fails_the_batch(&self, refusal: &Failure) -> bool;

    /// What a batch none of whose events was accepted gets: the refusals, answered one by
    /// one, or one failure for the whole batch.
    fn when_none_accepted(&self, refusals: Vec<Failure>) -> Result<Vec<Failure>, Failure>;
}

/// The configured size of one event, and of one request's body, in bytes.
fn bytes(size: bytesize::ByteSize) -> usize {
    usize::try_from(size.as_u64()).unwrap_or(usize::MAX)
}
