//! `POST /api/v1/events`: one event in the native format.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::request::Parts;
use axum::response::Response;

use super::{AcceptedEvent, accepted_event, request};
use crate::http::openapi::{EventInput, Problem, ReplayGuardHeaders};
use crate::http::problem::ApiError;
use crate::http::state::AppState;
use crate::ingest::format::native::Native;

#[utoipa::path(post, path = "/api/v1/events", tag = "ingestion",
    request_body(content = EventInput, content_type = "application/json",
                 description = "One event (`text/plain` for browsers' `sendBeacon`); may be gzip-compressed"),
    params(ReplayGuardHeaders),
    responses((status = 202, description = "Accepted and durable", body = AcceptedEvent),
              (status = 422, description = "Refused by its event structure (mode `reject`)", body = Problem, content_type = "application/problem+json")),
    security(("apiKey" = []), ("bearer" = []), ("apiKeyQuery" = [])))]
pub async fn single(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    body: Body,
) -> Result<Response, ApiError> {
    let format = Native::single(&state.config);
    let request = request(&state, &parts, body);
    let submitted = state.submission().one(request, &format).await?;
    Ok(accepted_event(submitted))
}
