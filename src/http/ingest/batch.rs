//! `POST /api/v1/events/batch`: events are judged one by one (`ingest::batch`); the good
//! ones are stored together, and one bad event never sinks the others.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use serde::Serialize;

use super::{answered, request};
use crate::error::FieldError;
use crate::http::openapi::{BatchInput, ReplayGuardHeaders};
use crate::http::problem::ApiError;
use crate::http::state::AppState;
use crate::ingest::Verdict;
use crate::ingest::format::native::Native;

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

/// Why one event was refused (the batch itself still succeeds).
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
    fn of(index: usize, verdict: Verdict) -> BatchResult {
        match verdict {
            Verdict::Accepted(event) => BatchResult {
                index,
                event_id: Some(event.event_id),
                is_valid: Some(event.is_valid),
                validation_errors: event.validation_errors,
                error: None,
            },
            Verdict::Refused(refusal) => BatchResult {
                index,
                event_id: None,
                is_valid: None,
                validation_errors: Vec::new(),
                error: Some(ApiError::from(refusal).into()),
            },
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BatchResponse {
    accepted: usize,
    rejected: usize,
    results: Vec<BatchResult>,
}

impl BatchResponse {
    fn of(verdicts: Vec<Verdict>) -> BatchResponse {
        let results: Vec<BatchResult> = verdicts
            .into_iter()
            .enumerate()
            .map(|(index, verdict)| BatchResult::of(index, verdict))
            .collect();
        let accepted = results
            .iter()
            .filter(|result| result.error.is_none())
            .count();
        BatchResponse {
            accepted,
            rejected: results.len() - accepted,
            results,
        }
    }
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
    let format = Native::batch(&state.config);
    let request = request(&state, &parts, body);
    let submitted = state.submission().batch(request, &format).await?;
    Ok(answered(submitted, StatusCode::ACCEPTED, BatchResponse::of))
}
