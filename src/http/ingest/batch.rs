//! `POST /api/v1/events/batch`: events are judged one by one; the good ones are stored
//! together, and one bad event never sinks the others.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::request::Parts;
use axum::response::Response;
use serde::Serialize;
use serde_json::value::RawValue;

use tracing::Instrument;

use super::envelope::EnvelopeShape;
use super::{IngestRequest, fields_of, read_json, validate_span};
use crate::error::{ErrorKind, FieldError};
use crate::http::body::Sender;
use crate::http::extract::presented_credential;
use crate::http::openapi::{BatchInput, ReplayGuardHeaders};
use crate::http::problem::ApiError;
use crate::http::state::AppState;
use crate::model::Event;

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BatchResult {
    index: usize,
    event_id: Option<String>,
    is_valid: Option<bool>,
    validation_errors: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<EventError>,
}

/// Why one event of a batch was refused (the batch itself still succeeds).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct EventError {
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

impl BatchResult {
    fn accepted(index: usize, event: &Event) -> BatchResult {
        BatchResult {
            index,
            event_id: Some(event.event_id.clone()),
            is_valid: Some(event.is_valid),
            validation_errors: event.validation_errors.clone(),
            error: None,
        }
    }

    fn refused(index: usize, error: ApiError) -> BatchResult {
        BatchResult {
            index,
            event_id: None,
            is_valid: None,
            validation_errors: Vec::new(),
            error: Some(error.into()),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BatchResponse {
    accepted: usize,
    rejected: usize,
    results: Vec<BatchResult>,
}

#[utoipa::path(post, path = "/api/v1/events/batch", tag = "ingestion",
    request_body(content = BatchInput, content_type = "application/json",
                 description = "Up to 1000 events (5 MiB); may be gzip-compressed"),
    params(ReplayGuardHeaders),
    responses((status = 202, description = "Judged one by one: the good ones are stored", body = BatchResponse)),
    security(("apiKey" = []), ("bearer" = []), ("apiKeyQuery" = [])))]
pub async fn batch(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    body: Body,
) -> Result<Response, ApiError> {
    // The key is checked before a byte of the body is read.
    let mut request = IngestRequest::open(&state, &parts, presented_credential(&parts)).await?;
    let outcome = accept_batch(&state, &parts, body, &mut request).await;
    request.settle(&state, outcome).await
}

async fn accept_batch(
    state: &AppState,
    parts: &Parts,
    body: Body,
    request: &mut IngestRequest,
) -> Result<Response, ApiError> {
    let max_bytes = state.config.http.max_batch_request_size.as_u64() as usize;
    let body = read_json(state, parts, body, max_bytes, Sender::Authenticated).await?;
    let envelope = native_envelope(state.config.ingest.max_batch_events).parse(&body.bytes)?;
    let count = envelope.items.len();
    request.charge(state, count).await?;
    let max_event_bytes = state.config.ingest.max_event_size.as_u64() as usize;
    let mut results = Vec::with_capacity(count);
    let mut accepted = Vec::with_capacity(count);
    let mut to_retry = None;
    let validation = async {
        for (index, raw) in envelope.items.into_iter().enumerate() {
            match prepare(state, request, raw, max_event_bytes).await {
                Ok(event) => {
                    results.push(BatchResult::accepted(index, &event));
                    accepted.push(event);
                }
                Err(error) => {
                    if to_retry.is_none() && is_worth_retrying(&error) {
                        to_retry = Some(ApiError::new(error.kind, error.detail.clone()));
                    }
                    results.push(BatchResult::refused(index, error));
                }
            }
        }
    };
    validation.instrument(validate_span(count)).await;
    let accepted_count = accepted.len();
    if accepted_count == 0 {
        // Nothing was accepted, and the client should send the same batch again later (a
        // 202 would tell it the batch was dealt with). `settle` gives the nonce back.
        if let Some(error) = to_retry {
            return Err(error);
        }
        // Nothing was accepted: the corrected batch may reuse the request's nonce.
        request.give_back_nonce(state).await;
    }
    drop(body);
    state.ingestor.accept(accepted).await?;
    Ok(request.accepted(BatchResponse {
        accepted: accepted_count,
        rejected: results.len() - accepted_count,
        results,
    }))
}

/// The native envelope, `{"events": [...]}`, of at most `max_events` events.
pub(crate) fn native_envelope(max_events: usize) -> EnvelopeShape {
    EnvelopeShape {
        array: "events",
        items: "events",
        max_items: max_events,
    }
}

/// A refusal the same event may not meet when sent again later: the store or the
/// service was unavailable.
fn is_worth_retrying(error: &ApiError) -> bool {
    error.kind == ErrorKind::Unavailable
}

async fn prepare(
    state: &AppState,
    request: &IngestRequest,
    raw: &RawValue,
    max_bytes: usize,
) -> Result<Event, ApiError> {
    if raw.get().len() > max_bytes {
        return Err(ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!("the event is larger than {max_bytes} bytes"),
        ));
    }
    let fields = fields_of(raw.get().as_bytes(), "each event")?;
    Ok(state.ingestor.prepare(&request.origin(), &fields).await?)
}
