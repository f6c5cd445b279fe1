//! `POST /api/v1/events`: one event in the native format.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::request::Parts;
use axum::response::Response;

use super::{AcceptedEvent, IngestRequest, fields_of, read_json, single_event_limit};
use crate::http::body::Sender;
use crate::http::extract::presented_credential;
use crate::http::openapi::{EventInput, Problem, ReplayGuardHeaders};
use crate::http::problem::ApiError;
use crate::http::state::AppState;

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
    // The key is checked before a byte of the body is read.
    let mut request = IngestRequest::open(&state, &parts, presented_credential(&parts)).await?;
    let outcome = async {
        let body = read_json(
            &state,
            &parts,
            body,
            single_event_limit(&state),
            Sender::Authenticated,
        )
        .await?;
        let fields = fields_of(&body.bytes, "the event")?;
        let event = request.prepare_one(&state, &fields).await?;
        drop(body);
        request.accept_one(&state, event).await
    }
    .await;
    request.settle(&state, outcome).await
}
