//! Ingestion endpoints, one module per wire format (`native`, `batch`, `legacy`,
//! `segment`): each hands the request to `ingest::Submission` with its format and writes
//! the wire answer. This module reads what every format shares off the wire: the
//! credential and replay headers, the correlation id, and the body (`WireBody`).

pub(crate) mod batch;
pub(crate) mod legacy;
pub(crate) mod native;
pub(crate) mod segment;

pub use batch::batch;
pub use legacy::legacy;
pub use native::single;
pub use segment::routes as segment_routes;

use axum::Json;
use axum::body::Body;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Failure;
use crate::http::body::GuardedBody;
use crate::http::correlation::CorrelationId;
use crate::http::extract::{BodyKind, check_content_type, client_address, presented_credential};
use crate::http::problem::{Answered, write_rate_limit_headers};
use crate::http::state::AppState;
use crate::ingest::{Acknowledged, ReplayHeaders, Request, Sender, Submitted};

/// The request's body as `ingest` reads it: JSON (or a beacon's `text/plain`), under the
/// in-flight budget and deadline.
pub(crate) struct WireBody<'a> {
    state: &'a AppState,
    parts: &'a Parts,
    body: Body,
}

impl crate::ingest::Body for WireBody<'_> {
    type Bytes = GuardedBody;

    async fn read(self, sender: Sender, max_bytes: usize) -> Result<GuardedBody, Failure> {
        let headers = &self.parts.headers;
        check_content_type(headers, BodyKind::JsonOrBeacon).map_err(Answered)?;
        let bodies = &self.state.bodies;
        let read = bodies.read(headers, self.body, max_bytes, sender).await;
        Ok(read.map_err(Answered)?)
    }
}

/// An ingest request as the wire carries it.
pub(crate) fn request<'a>(
    state: &'a AppState,
    parts: &'a Parts,
    body: Body,
) -> Request<'a, WireBody<'a>> {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    Request {
        credential: presented_credential(parts),
        replay: ReplayHeaders {
            timestamp: header("x-request-timestamp"),
            nonce: header("x-request-nonce"),
        },
        correlation_id: parts
            .extensions
            .get::<CorrelationId>()
            .map(|id| id.0.clone())
            .unwrap_or_default(),
        client: client_address(parts),
        user_agent: header("user-agent"),
        body: WireBody { state, parts, body },
    }
}

/// A success answer with the rate-limit state (Segment's endpoints answer `200`).
pub(crate) fn answered<T, B: Serialize>(
    submitted: Submitted<T>,
    status: StatusCode,
    body: impl FnOnce(T) -> B,
) -> Response {
    let mut response = (status, Json(body(submitted.outcome))).into_response();
    if let Some(limit) = &submitted.rate_limit {
        write_rate_limit_headers(limit, response.headers_mut());
    }
    response
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AcceptedEvent {
    event_id: String,
    is_valid: bool,
    validation_errors: Vec<String>,
    received_at: DateTime<Utc>,
}

impl AcceptedEvent {
    fn of(acknowledged: Acknowledged) -> AcceptedEvent {
        AcceptedEvent {
            event_id: acknowledged.event_id,
            is_valid: acknowledged.is_valid,
            validation_errors: acknowledged.validation_errors,
            received_at: acknowledged.received_at,
        }
    }
}

/// The answer to a one-event endpoint: `202` with the event.
pub(crate) fn accepted_event(submitted: Submitted<Acknowledged>) -> Response {
    answered(submitted, StatusCode::ACCEPTED, AcceptedEvent::of)
}
