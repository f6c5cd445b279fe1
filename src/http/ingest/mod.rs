//! Ingestion endpoints, one module per wire format (`native`, `batch`, `legacy`,
//! `segment`), each translating its body into `EventFields`/`EventDraft` and sharing this
//! context: authenticate the sender, pass admission, hand the events over (waiting until
//! they are stored, by default), answer with the rate-limit state.

pub(crate) mod batch;
pub(crate) mod envelope;
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
use serde_json::error::Category;
use tracing::Instrument;

use crate::auth::{KeyHolder, PresentedCredential};
use crate::http::body::{GuardedBody, Sender};
use crate::http::correlation::{CorrelationId, record_partner};
use crate::http::extract::{BodyKind, check_content_type};
use crate::http::problem::{ApiError, write_rate_limit_headers};
use crate::http::state::AppState;
use crate::ingest::event::{EventFields, event_fields};
use crate::ingest::{Origin, ReplayHeaders};
use crate::limits::{NonceClaim, RateLimitStatus};
use crate::model::Event;

/// An authenticated ingest request that passed the replay guard.
struct IngestRequest {
    sender: KeyHolder,
    correlation_id: String,
    received_at: DateTime<Utc>,
    rate_limit: Option<RateLimitStatus>,
    /// The nonce this request took, given back if it ends up refused.
    nonce: Option<NonceClaim>,
}

impl IngestRequest {
    /// Authenticates the sender (an `ingest` key) and checks the replay-guard headers.
    async fn open(
        state: &AppState,
        parts: &Parts,
        credential: Option<PresentedCredential>,
    ) -> Result<IngestRequest, ApiError> {
        let sender = state
            .authenticator
            .sender(credential)
            .instrument(tracing::info_span!("authenticate"))
            .await?;
        record_partner(sender.partner.id);
        let received_at = Utc::now();
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|value| value.to_str().ok())
        };
        let replay = ReplayHeaders {
            timestamp: header("x-request-timestamp"),
            nonce: header("x-request-nonce"),
        };
        let nonce = state
            .admission
            .check_replay(&sender, replay, received_at)
            .await?;
        Ok(IngestRequest {
            sender,
            correlation_id: parts
                .extensions
                .get::<CorrelationId>()
                .map(|id| id.0.clone())
                .unwrap_or_default(),
            received_at,
            rate_limit: None,
            nonce,
        })
    }

    /// The answer to the request: a refusal gives its nonce back (only an accepted request
    /// spends one), so the client's corrected retry is not mistaken for a replay.
    async fn settle(
        mut self,
        state: &AppState,
        outcome: Result<Response, ApiError>,
    ) -> Result<Response, ApiError> {
        if outcome.is_err() {
            self.give_back_nonce(state).await;
        }
        outcome
    }

    async fn give_back_nonce(&mut self, state: &AppState) {
        if let Some(claim) = self.nonce.take() {
            state.admission.release_nonce(claim).await;
        }
    }

    /// Charges `events` to the key's and the partner's budgets (not while the store fails
    /// writes: such a request is refused before it costs the sender any quota).
    async fn charge(&mut self, state: &AppState, events: usize) -> Result<(), ApiError> {
        state.ingestor.check_store_writable()?;
        match state.admission.charge(&self.sender, events).await {
            Ok(status) => {
                self.rate_limit = Some(status);
                Ok(())
            }
            Err(limited) => {
                let status = limited.status;
                Err(ApiError::from(limited).with_rate_limit(status))
            }
        }
    }

    fn origin(&self) -> Origin<'_> {
        Origin {
            sender: &self.sender,
            correlation_id: &self.correlation_id,
            received_at: self.received_at,
        }
    }

    fn accepted(&self, body: impl Serialize) -> Response {
        self.answered(StatusCode::ACCEPTED, body)
    }

    /// A success answer with the rate-limit state (Segment's endpoints answer `200`).
    fn answered(&self, status: StatusCode, body: impl Serialize) -> Response {
        let mut response = (status, Json(body)).into_response();
        if let Some(status) = &self.rate_limit {
            write_rate_limit_headers(status, response.headers_mut());
        }
        response
    }

    /// Charges and validates one event of a single-event endpoint.
    async fn prepare_one(
        &mut self,
        state: &AppState,
        fields: &EventFields<'_>,
    ) -> Result<Event, ApiError> {
        self.charge(state, 1).await?;
        let origin = self.origin();
        let prepared = state
            .ingestor
            .prepare(&origin, fields)
            .instrument(validate_span(1))
            .await;
        Ok(prepared?)
    }

    /// Stores one event and answers 202 with it. Called once the body is dropped, so a
    /// request waiting for the store holds no body bytes.
    async fn accept_one(&self, state: &AppState, event: Event) -> Result<Response, ApiError> {
        let answer = AcceptedEvent::of(&event);
        state.ingestor.accept(vec![event]).await?;
        Ok(self.accepted(answer))
    }
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
    fn of(event: &Event) -> AcceptedEvent {
        AcceptedEvent {
            event_id: event.event_id.clone(),
            is_valid: event.is_valid,
            validation_errors: event.validation_errors.clone(),
            received_at: event.received_at,
        }
    }
}

/// The span around the checks of a request's events (one per request, not per event).
fn validate_span(events: usize) -> tracing::Span {
    tracing::info_span!("validate", events)
}

/// A JSON (or beacon `text/plain`) body, read under the in-flight budget and deadline.
async fn read_json(
    state: &AppState,
    parts: &Parts,
    body: Body,
    max_bytes: usize,
    sender: Sender,
) -> Result<GuardedBody, ApiError> {
    check_content_type(&parts.headers, BodyKind::JsonOrBeacon)?;
    state
        .bodies
        .read(&parts.headers, body, max_bytes, sender)
        .await
}

/// The largest body of a one-event endpoint: one event (`ingest.max_event_size`).
fn single_event_limit(state: &AppState) -> usize {
    let config = &state.config;
    let event = config.ingest.max_event_size.as_u64();
    usize::try_from(event.min(config.http.max_request_size.as_u64())).unwrap_or(usize::MAX)
}

/// The fields of one event object; `what` names it in the error ("the event").
pub(crate) fn fields_of<'a>(json: &'a [u8], what: &str) -> Result<EventFields<'a>, ApiError> {
    event_fields(json).map_err(|error| match error.classify() {
        Category::Data => ApiError::invalid(format!("{what} must be a JSON object")),
        _ => ApiError::invalid(format!("the body is not valid JSON: {error}")),
    })
}
