//! Segment's endpoints: the tracking API (`/v1/track` … `/v1/alias`, `/v1/batch`,
//! `/v1/import`), analytics.js's short forms (`/v1/t` … `/v1/s`, `/v1/b`: `text/plain`
//! bodies with the write key inside) and the settings analytics.js loads first
//! (`settings`). Messages are translated by `ingest::segment` and go through the one
//! pipeline; answers are Segment's: `200 {"success": true}`.
//!
//! The write key is an `ingest` key, as the Basic-auth username, a bearer token or
//! `writeKey` in the body. A key in the headers is checked before the body is read; a body
//! holding its own key is read from the unknown senders' budget, as on the legacy endpoint.

pub(crate) mod settings;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tracing::Instrument;

use super::envelope::EnvelopeShape;
use super::{IngestRequest, fields_of, read_json, validate_span};
use crate::auth::PresentedCredential;
use crate::error::{ErrorKind, FieldError};
use crate::http::body::{GuardedBody, Sender};
use crate::http::extract::{client_address, presented_credential};
use crate::http::problem::ApiError;
use crate::http::state::AppState;
use crate::ingest::segment::{
    Arrival, MAX_BATCH_BYTES, MAX_BATCH_MESSAGES, MAX_MESSAGE_BYTES, SegmentCall, parse_sent_at,
    translate,
};
use crate::model::Event;

/// Every Segment route, for `http::router` to merge.
pub fn routes() -> Router<Arc<AppState>> {
    let mut router = Router::new()
        .route("/v1/batch", post(batch))
        .route("/v1/import", post(batch))
        .route("/v1/b", post(batch))
        .route("/v1/projects/{write_key}/settings", get(settings::settings));
    for call in SegmentCall::ALL {
        let short_form = &call.name()[..1];
        router = router
            .route(&format!("/v1/{}", call.name()), single_call(call))
            .route(&format!("/v1/{short_form}"), single_call(call));
    }
    router
}

fn single_call(call: SegmentCall) -> MethodRouter<Arc<AppState>> {
    post(
        move |State(state): State<Arc<AppState>>, parts: Parts, body: Body| async move {
            single(&state, &parts, body, call).await
        },
    )
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Success {
    success: bool,
    /// The messages of a batch that were refused (absent when none was): the others are
    /// stored, and the answer stays a success so the library does not resend them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rejected: Vec<RefusedMessage>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RefusedMessage {
    index: usize,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldError>,
}

async fn single(
    state: &AppState,
    parts: &Parts,
    body: Body,
    call: SegmentCall,
) -> Result<Response, ApiError> {
    let (mut request, body) = open_with_body(state, parts, body, message_limit(state)).await?;
    let outcome = async {
        let fields = fields_of(&body.bytes, "the message")?;
        let arrival = Arrival {
            received_at: request.received_at,
            batch_sent_at: None,
        };
        let translated = translate(&fields, Some(call), arrival);
        request.charge(state, 1).await?;
        let event = state
            .ingestor
            .prepare_translated(&request.origin(), translated)
            .instrument(validate_span(1))
            .await?;
        drop(fields);
        drop(body);
        state.ingestor.accept(vec![event]).await?;
        Ok(request.answered(StatusCode::OK, success(Vec::new())))
    }
    .await;
    request.settle(state, outcome).await
}

/// Segment's envelope, `{"batch": [...], "sentAt": ...}`, of at most 2,500 messages.
pub(crate) const ENVELOPE: EnvelopeShape = EnvelopeShape {
    array: "batch",
    items: "messages",
    max_items: MAX_BATCH_MESSAGES,
};

async fn batch(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    body: Body,
) -> Result<Response, ApiError> {
    let max_bytes = MAX_BATCH_BYTES.min(state.config.http.max_batch_request_size.as_u64() as usize);
    let (mut request, body) = open_with_body(&state, &parts, body, max_bytes).await?;
    let outcome = accept_batch(&state, &mut request, body).await;
    request.settle(&state, outcome).await
}

async fn accept_batch(
    state: &AppState,
    request: &mut IngestRequest,
    body: GuardedBody,
) -> Result<Response, ApiError> {
    let envelope = ENVELOPE.parse(&body.bytes)?;
    let count = envelope.items.len();
    request.charge(state, count).await?;
    let arrival = Arrival {
        received_at: request.received_at,
        batch_sent_at: envelope.sent_at.and_then(|raw| parse_sent_at(raw.get())),
    };
    let max_message_bytes = message_limit(state);
    let mut accepted = Vec::with_capacity(count);
    let mut rejected = Vec::new();
    let validation = async {
        for (index, raw) in envelope.items.into_iter().enumerate() {
            match prepare(state, request, raw, arrival, max_message_bytes).await {
                Ok(event) => accepted.push(event),
                Err(error) if is_the_messages_fault(&error) => rejected.push(RefusedMessage {
                    index,
                    status: error.status().as_u16(),
                    detail: error.detail,
                    errors: error.errors,
                }),
                // Our own trouble (the store, overload): the whole batch is answered so
                // that the library retries it, and `messageId`s keep the retry from
                // storing twice.
                Err(error) => return Err(error),
            }
        }
        Ok(())
    };
    validation.instrument(validate_span(count)).await?;
    if accepted.is_empty() {
        return Err(every_message_refused(rejected));
    }
    drop(body);
    state.ingestor.accept(accepted).await?;
    Ok(request.answered(StatusCode::OK, success(rejected)))
}

async fn prepare(
    state: &AppState,
    request: &IngestRequest,
    raw: &RawValue,
    arrival: Arrival,
    max_bytes: usize,
) -> Result<Event, ApiError> {
    if raw.get().len() > max_bytes {
        return Err(ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!("the message is larger than {max_bytes} bytes"),
        ));
    }
    let fields = fields_of(raw.get().as_bytes(), "each message")?;
    let translated = translate(&fields, None, arrival);
    Ok(state
        .ingestor
        .prepare_translated(&request.origin(), translated)
        .await?)
}

/// Refusals that resending the same message could never turn into a success.
fn is_the_messages_fault(error: &ApiError) -> bool {
    matches!(
        error.kind,
        ErrorKind::InvalidRequest
            | ErrorKind::Forbidden
            | ErrorKind::Unprocessable
            | ErrorKind::PayloadTooLarge
    )
}

/// A batch none of whose messages can be stored: `400`, which the libraries drop rather
/// than retry, naming every message's fields as `batch[i].field`.
fn every_message_refused(rejected: Vec<RefusedMessage>) -> ApiError {
    let errors = rejected
        .into_iter()
        .flat_map(|refused| {
            let index = refused.index;
            if refused.errors.is_empty() {
                return vec![FieldError::new(format!("batch[{index}]"), refused.detail)];
            }
            let fields = refused.errors.into_iter();
            fields
                .map(|error| {
                    FieldError::new(format!("batch[{index}].{}", error.field), error.message)
                })
                .collect()
        })
        .collect();
    let mut error = ApiError::fields(errors);
    error.detail = format!("no message of the batch can be stored: {}", error.detail);
    error
}

fn success(rejected: Vec<RefusedMessage>) -> Success {
    Success {
        success: true,
        rejected,
    }
}

/// The largest message: Segment's 32 KB, or less if `ingest.max_event_size` says so.
fn message_limit(state: &AppState) -> usize {
    let configured = state.config.ingest.max_event_size.as_u64();
    MAX_MESSAGE_BYTES.min(usize::try_from(configured).unwrap_or(usize::MAX))
}

/// Authenticates the request and reads its body: after checking a key in the headers,
/// or, when the key is the body's `writeKey`, from the unknown senders' budget first.
async fn open_with_body(
    state: &AppState,
    parts: &Parts,
    body: Body,
    max_bytes: usize,
) -> Result<(IngestRequest, GuardedBody), ApiError> {
    if let Some(credential) = presented_credential(parts) {
        let mut request = IngestRequest::open(state, parts, Some(credential)).await?;
        return match read_json(state, parts, body, max_bytes, Sender::Authenticated).await {
            Ok(body) => Ok((request, body)),
            Err(error) => {
                request.give_back_nonce(state).await;
                Err(error)
            }
        };
    }
    let body = read_json(state, parts, body, max_bytes, Sender::Unknown).await?;
    let write_key = write_key_in(&body.bytes)
        .map(|key| PresentedCredential::in_body(key).with_client(client_address(parts)));
    let request = IngestRequest::open(state, parts, write_key).await?;
    Ok((request, body))
}

/// The body's `writeKey`, if it is a JSON object holding one as a string.
fn write_key_in(json: &[u8]) -> Option<String> {
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
        let refused = vec![
            RefusedMessage {
                index: 0,
                status: 400,
                detail: "event: is required".into(),
                errors: vec![FieldError::new("event", "is required")],
            },
            RefusedMessage {
                index: 2,
                status: 413,
                detail: "the message is larger than 32768 bytes".into(),
                errors: Vec::new(),
            },
        ];
        let error = every_message_refused(refused);
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        let fields: Vec<&str> = error.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["batch[0].event", "batch[2]"]);
    }

    #[test]
    fn the_libraries_retry_only_what_is_not_the_messages_fault() {
        assert!(is_the_messages_fault(&ApiError::invalid("x")));
        assert!(!is_the_messages_fault(&ApiError::new(
            ErrorKind::Unavailable,
            "x"
        )));
        let full = format!("{{\"batch\": [{}0]}}", "0,".repeat(MAX_BATCH_MESSAGES - 1));
        assert!(ENVELOPE.parse(full.as_bytes()).is_ok());
        let too_many = format!("{{\"batch\": [{}0]}}", "0,".repeat(MAX_BATCH_MESSAGES));
        let too_many = ENVELOPE.parse(too_many.as_bytes()).unwrap_err();
        assert_eq!(too_many.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            ENVELOPE.parse(br#"{"batch": []}"#).unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
    }
}
