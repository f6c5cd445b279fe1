//! `POST /api/events/ingest`: the legacy shape (`ingest::format::legacy`), with `apiKey`
//! in the body when the headers hold no key.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::request::Parts;
use axum::response::Response;

use super::{AcceptedEvent, accepted_event, request};
use crate::http::openapi::{LegacyInput, Problem, ReplayGuardHeaders};
use crate::http::problem::ApiError;
use crate::http::state::AppState;
use crate::ingest::format::legacy::Legacy;

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
    let format = Legacy::new(&state.config);
    let request = request(&state, &parts, body);
    let submitted = state.submission().one(request, &format).await?;
    Ok(accepted_event(submitted))
}
