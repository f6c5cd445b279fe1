//! `POST /api/events/ingest`: the legacy shape, with `apiKey` in the body and
//! `eventProperties` (an object) or `eventPropertiesJson` (a JSON string) for properties.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::request::Parts;
use axum::response::Response;
use serde_json::value::RawValue;

use super::{AcceptedEvent, IngestRequest, fields_of, read_json, single_event_limit};
use crate::auth::PresentedCredential;
use crate::http::body::Sender;
use crate::http::extract::{client_address, presented_credential};
use crate::http::openapi::{LegacyInput, Problem, ReplayGuardHeaders};
use crate::http::problem::ApiError;
use crate::http::state::AppState;
use crate::ingest::event::EventFields;

#[utoipa::path(post, path = "/api/events/ingest", tag = "ingestion",
    request_body(content = LegacyInput, content_type = "application/json",
                 description = "One event in the legacy shape, the key as `apiKey` in the body (or in the headers)"),
    params(ReplayGuardHeaders),
    responses((status = 202, description = "Accepted and durable", body = AcceptedEvent),
              (status = 422, description = "Refused by its event structure (mode `reject`)", body = Problem, content_type = "application/problem+json")),
    security((), ("apiKey" = []), ("bearer" = [])))]
pub async fn legacy(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    body: Body,
) -> Result<Response, ApiError> {
    // A key in the headers is checked first, as elsewhere. A key in the body can only be
    // checked after reading it: at most one event's worth, from the unknown senders' budget.
    let (early, sender) = match presented_credential(&parts) {
        Some(credential) => {
            let request = IngestRequest::open(&state, &parts, Some(credential)).await?;
            (Some(request), Sender::Authenticated)
        }
        None => (None, Sender::Unknown),
    };
    let body = read_json(&state, &parts, body, single_event_limit(&state), sender).await?;
    let mut fields = fields_of(&body.bytes, "the event")?;
    let body_key = fields
        .remove("apiKey")
        .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
        .map(|token| PresentedCredential::in_body(token).with_client(client_address(&parts)));
    let mut request = match early {
        Some(request) => request,
        None => IngestRequest::open(&state, &parts, body_key).await?,
    };
    let prepared = match legacy_properties_json(&mut fields) {
        Ok(decoded_properties) => {
            let mut fields = fields;
            if let Some(properties) = &decoded_properties {
                fields.insert("properties".into(), properties);
            }
            request.prepare_one(&state, &fields).await
        }
        Err(error) => Err(error),
    };
    drop(body);
    let outcome = match prepared {
        Ok(event) => request.accept_one(&state, event).await,
        Err(error) => Err(error),
    };
    request.settle(&state, outcome).await
}

/// Moves `eventProperties` to `properties`, and decodes `eventPropertiesJson` (a string
/// holding JSON), which the caller then uses as `properties`.
pub(crate) fn legacy_properties_json(
    fields: &mut EventFields<'_>,
) -> Result<Option<Box<RawValue>>, ApiError> {
    if let Some(properties) = fields.remove("eventProperties") {
        fields.insert("properties".into(), properties);
    }
    let Some(raw) = fields.remove("eventPropertiesJson") else {
        return Ok(None);
    };
    match serde_json::from_str::<Option<String>>(raw.get()) {
        Ok(None) => Ok(None),
        Ok(Some(text)) => RawValue::from_string(text).map(Some).map_err(|error| {
            ApiError::field("eventPropertiesJson", format!("is not valid JSON: {error}"))
        }),
        Err(_) => Err(ApiError::field(
            "eventPropertiesJson",
            "must be a string holding a JSON object",
        )),
    }
}
