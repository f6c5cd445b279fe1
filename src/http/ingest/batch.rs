//! `POST /api/v1/events/batch`: events are judged one by one; the good ones are queued
//! together, and one bad event never sinks the others.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::request::Parts;
use axum::response::Response;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{IngestContext, as_object, authorize, charge, enqueue, parse_value, rejection_error};
use crate::error::{ApiError, ErrorKind, FieldError};
use crate::http::extract::{BodyKind, json_bytes, presented_credential};
use crate::http::state::AppState;
use crate::store::StoredEvent;

#[derive(Deserialize)]
struct BatchEnvelope<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BatchResult {
    index: usize,
    event_id: Option<String>,
    is_valid: Option<bool>,
    validation_errors: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<EventError>,
}

/// Why one event of a batch was refused (the batch itself still succeeds).
#[derive(Serialize)]
struct EventError {
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldError>,
}

impl From<ApiError> for EventError {
    fn from(error: ApiError) -> EventError {
        EventError {
            status: error.status().as_u16(),
            detail: error.detail,
            errors: error.errors,
        }
    }
}

#[derive(Serialize)]
struct BatchResponse {
    accepted: usize,
    rejected: usize,
    results: Vec<BatchResult>,
}

pub async fn batch(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut context = authorize(&state, &parts, presented_credential(&parts)).await?;
    let bytes = json_bytes(&parts.headers, body, BodyKind::JsonOrBeacon)?;
    let envelope: BatchEnvelope = serde_json::from_slice(&bytes).map_err(|error| {
        ApiError::invalid(format!("the body must be {{\"events\": [...]}}: {error}"))
    })?;
    let max_events = state.config.ingest.max_batch_events;
    if envelope.events.is_empty() {
        return Err(ApiError::field("events", "must contain at least one event"));
    }
    if envelope.events.len() > max_events {
        return Err(ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!(
                "a batch holds at most {max_events} events, got {}",
                envelope.events.len()
            ),
        ));
    }
    charge(&state, &mut context, envelope.events.len()).await?;
    let max_event_bytes = state.config.ingest.max_event_size.as_u64() as usize;
    let mut results = Vec::with_capacity(envelope.events.len());
    let mut accepted = Vec::with_capacity(envelope.events.len());
    for (index, raw) in envelope.events.into_iter().enumerate() {
        let prepared = prepare_raw(&state, &context, raw, max_event_bytes).await;
        results.push(match prepared {
            Ok(event) => {
                let result = BatchResult {
                    index,
                    event_id: Some(event.event_id.clone()),
                    is_valid: Some(event.is_valid),
                    validation_errors: event.validation_errors.clone(),
                    error: None,
                };
                accepted.push(event);
                result
            }
            Err(error) => BatchResult {
                index,
                event_id: None,
                is_valid: None,
                validation_errors: Vec::new(),
                error: Some(error.into()),
            },
        });
    }
    let accepted_count = accepted.len();
    enqueue(&state, accepted)?;
    Ok(context.accepted(BatchResponse {
        accepted: accepted_count,
        rejected: results.len() - accepted_count,
        results,
    }))
}

async fn prepare_raw(
    state: &AppState,
    context: &IngestContext,
    raw: &RawValue,
    max_bytes: usize,
) -> Result<StoredEvent, ApiError> {
    if raw.get().len() > max_bytes {
        return Err(ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!("the event is larger than {max_bytes} bytes"),
        ));
    }
    let object = as_object(parse_value(raw.get().as_bytes())?, "each event")?;
    state
        .ingestor
        .prepare(&context.caller(), &object)
        .await
        .map_err(rejection_error)
}
