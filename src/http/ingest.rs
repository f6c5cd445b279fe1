//! Ingestion endpoints: one event, a batch, and the legacy form. Each authenticates,
//! charges the partner's rate limit, validates, and hands the events to the queue.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::auth::ApiKey;
use crate::error::{ApiError, ErrorKind, FieldError, RateLimitStatus};
use crate::http::correlation::CorrelationId;
use crate::http::extract::{
    BodyKind, PresentedCredential, authenticate, json_bytes, presented_credential,
    require_ingest_key,
};
use crate::http::state::AppState;
use crate::ingest::{Caller, EnqueueError, Rejection};
use crate::limits::{LimitScope, RateDecision, ReplayRefusal};
use crate::store::StoredEvent;
use crate::tenants::Partner;

const QUEUE_FULL_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AcceptedEvent {
    event_id: String,
    is_valid: bool,
    validation_errors: Vec<String>,
    received_at: DateTime<Utc>,
}

impl AcceptedEvent {
    fn of(event: &StoredEvent) -> AcceptedEvent {
        AcceptedEvent {
            event_id: event.event_id.clone(),
            is_valid: event.is_valid,
            validation_errors: event.validation_errors.clone(),
            received_at: event.received_at,
        }
    }
}

/// An authenticated ingest request: the key, its partner, and the partner's limit status.
struct IngestContext {
    key: Arc<ApiKey>,
    partner: Arc<Partner>,
    correlation_id: String,
    received_at: DateTime<Utc>,
    rate_limit: Option<RateLimitStatus>,
}

impl IngestContext {
    fn caller(&self) -> Caller<'_> {
        Caller {
            key: &self.key,
            partner: &self.partner,
            correlation_id: &self.correlation_id,
            received_at: self.received_at,
        }
    }

    fn accepted(&self, body: impl Serialize) -> Response {
        let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
        if let Some(status) = self.rate_limit {
            status.write_headers(response.headers_mut());
        }
        response
    }
}

async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    credential: Option<PresentedCredential>,
    correlation_id: String,
) -> Result<IngestContext, ApiError> {
    let key = require_ingest_key(authenticate(state, credential).await?)?;
    let partner = state
        .directory
        .partner(key.partner_id)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("the API key's partner no longer exists"))?;
    let received_at = Utc::now();
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    state
        .replay_guard
        .check(
            partner.id,
            header("x-request-timestamp"),
            header("x-request-nonce"),
            received_at,
        )
        .await
        .map_err(|refusal| match refusal {
            ReplayRefusal::Replayed => ApiError::new(ErrorKind::Conflict, refusal.to_string()),
            ReplayRefusal::Malformed { header, message } => ApiError::field(header, message),
            ReplayRefusal::Stale(_) => ApiError::field("X-Request-Timestamp", refusal.to_string()),
        })?;
    Ok(IngestContext {
        key,
        partner,
        correlation_id,
        received_at,
        rate_limit: None,
    })
}

/// Charges `events` to the key's and then the partner's per-minute budget.
async fn charge(
    state: &AppState,
    context: &mut IngestContext,
    events: usize,
) -> Result<(), ApiError> {
    let limits = &state.config.limits;
    let cost = u32::try_from(events).unwrap_or(u32::MAX);
    let partner_quota = context
        .partner
        .rate_limit_per_minute
        .unwrap_or(limits.default_rate_limit_per_minute);
    let budgets = [
        (
            LimitScope::Key(context.key.id),
            limits.key_rate_limit_per_minute,
            "API key",
        ),
        (
            LimitScope::Partner(context.partner.id),
            partner_quota,
            "partner",
        ),
    ];
    for (scope, per_minute, owner) in budgets {
        match state.rate_limits.check(scope, per_minute, cost).await {
            RateDecision::Allowed(status) => {
                let tighter = context
                    .rate_limit
                    .is_none_or(|current| status.remaining < current.remaining);
                if tighter {
                    context.rate_limit = Some(status);
                }
            }
            RateDecision::Limited {
                status,
                retry_after,
            } => {
                state
                    .metrics
                    .rate_limited
                    .with_label_values(&[scope.label()])
                    .inc();
                let mut error = ApiError::new(
                    ErrorKind::RateLimited,
                    format!("the {owner}'s limit of {per_minute} events per minute is exhausted"),
                );
                error.retry_after = Some(retry_after);
                error.rate_limit = Some(status);
                return Err(error);
            }
        }
    }
    Ok(())
}

fn enqueue(state: &AppState, events: Vec<StoredEvent>) -> Result<(), ApiError> {
    state.ingestor.enqueue(events).map_err(|error| match error {
        EnqueueError::Full => ApiError::unavailable(
            "the ingest queue is full; retry shortly",
            QUEUE_FULL_RETRY_AFTER,
        ),
        EnqueueError::Closed => {
            ApiError::unavailable("the service is shutting down", QUEUE_FULL_RETRY_AFTER)
        }
    })
}

fn rejection_error(rejection: Rejection) -> ApiError {
    match rejection {
        Rejection::Invalid(errors) => ApiError::fields(errors),
        Rejection::Forbidden(reason) => ApiError::forbidden(reason),
        Rejection::SchemaRejected {
            event_type,
            violations,
        } => {
            let errors = violations
                .into_iter()
                .map(|violation| {
                    FieldError::new(
                        format!("properties{}", violation.pointer.trim_end_matches('/')),
                        violation.message,
                    )
                })
                .collect();
            ApiError::new(
                ErrorKind::Unprocessable,
                format!("the properties do not match the event structure for '{event_type}'"),
            )
            .with_errors(errors)
        }
        Rejection::Store(error) => error.into(),
    }
}

fn as_object(value: Value, what: &str) -> Result<Map<String, Value>, ApiError> {
    match value {
        Value::Object(object) => Ok(object),
        _ => Err(ApiError::invalid(format!("{what} must be a JSON object"))),
    }
}

fn parse_value(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|error| ApiError::invalid(format!("the body is not valid JSON: {error}")))
}

/// `POST /api/v1/events`
pub async fn single(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let correlation_id = correlation_of(&parts);
    let mut context = authorize(
        &state,
        &parts.headers,
        presented_credential(&parts),
        correlation_id,
    )
    .await?;
    let bytes = json_bytes(&parts.headers, body, BodyKind::JsonOrBeacon)?;
    let object = as_object(parse_value(&bytes)?, "the event")?;
    charge(&state, &mut context, 1).await?;
    let event = state
        .ingestor
        .prepare(&context.caller(), &object)
        .await
        .map_err(rejection_error)?;
    let accepted = AcceptedEvent::of(&event);
    enqueue(&state, vec![event])?;
    Ok(context.accepted(accepted))
}

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

/// `POST /api/v1/events/batch`: events are judged one by one; the good ones are queued
/// together, and one bad event never sinks the others.
pub async fn batch(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let correlation_id = correlation_of(&parts);
    let mut context = authorize(
        &state,
        &parts.headers,
        presented_credential(&parts),
        correlation_id,
    )
    .await?;
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

/// `POST /api/events/ingest`: the legacy shape, with `apiKey` in the body and
/// `eventProperties` (object) or `eventPropertiesJson` (a JSON string).
pub async fn legacy(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = json_bytes(&parts.headers, body, BodyKind::JsonOrBeacon)?;
    let mut object = as_object(parse_value(&bytes)?, "the event")?;
    let body_key = match object.remove("apiKey") {
        Some(Value::String(key)) => Some(PresentedCredential {
            token: key,
            bearer: false,
        }),
        _ => None,
    };
    let credential = presented_credential(&parts).or(body_key);
    let mut context = authorize(&state, &parts.headers, credential, correlation_of(&parts)).await?;
    translate_legacy_properties(&mut object)?;
    charge(&state, &mut context, 1).await?;
    let event = state
        .ingestor
        .prepare(&context.caller(), &object)
        .await
        .map_err(rejection_error)?;
    let accepted = AcceptedEvent::of(&event);
    enqueue(&state, vec![event])?;
    Ok(context.accepted(accepted))
}

fn translate_legacy_properties(object: &mut Map<String, Value>) -> Result<(), ApiError> {
    if let Some(properties) = object.remove("eventProperties") {
        object.insert("properties".into(), properties);
    }
    match object.remove("eventPropertiesJson") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(text)) => {
            let parsed: Value = serde_json::from_str(&text).map_err(|error| {
                ApiError::field("eventPropertiesJson", format!("is not valid JSON: {error}"))
            })?;
            object.insert("properties".into(), parsed);
            Ok(())
        }
        Some(_) => Err(ApiError::field(
            "eventPropertiesJson",
            "must be a string holding a JSON object",
        )),
    }
}

fn correlation_of(parts: &Parts) -> String {
    parts
        .extensions
        .get::<CorrelationId>()
        .map(|id| id.0.clone())
        .unwrap_or_default()
}
