//! Ingestion endpoints: one event, the legacy form, and (in `batch`) many. Each authenticates,
//! charges the partner's rate limit, validates, and hands the events to the queue.

mod batch;

pub use batch::batch;

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
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
use crate::limits::{Budget, LimitScope, RateDecision, ReplayRefusal};
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
    parts: &Parts,
    credential: Option<PresentedCredential>,
) -> Result<IngestContext, ApiError> {
    let key = require_ingest_key(authenticate(state, credential).await?)?;
    let partner = state
        .directory
        .partner(key.partner_id)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("the API key's partner no longer exists"))?;
    let received_at = Utc::now();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
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
        correlation_id: correlation_of(parts),
        received_at,
        rate_limit: None,
    })
}

/// Charges `events` to the key's and the partner's per-minute budgets, together.
async fn charge(
    state: &AppState,
    context: &mut IngestContext,
    events: usize,
) -> Result<(), ApiError> {
    let limits = &state.config.limits;
    let budgets = [
        Budget {
            scope: LimitScope::Key(context.key.id),
            per_minute: limits.key_rate_limit_per_minute,
        },
        Budget {
            scope: LimitScope::Partner(context.partner.id),
            per_minute: context
                .partner
                .rate_limit_per_minute
                .unwrap_or(limits.default_rate_limit_per_minute),
        },
    ];
    let cost = u32::try_from(events).unwrap_or(u32::MAX);
    match state.rate_limits.check(&budgets, cost).await {
        (RateDecision::Allowed(status), _) => {
            context.rate_limit = Some(status);
            Ok(())
        }
        (
            RateDecision::Limited {
                status,
                retry_after,
            },
            budget,
        ) => {
            state
                .metrics
                .rate_limited
                .with_label_values(&[budget.scope.label()])
                .inc();
            let owner = match budget.scope {
                LimitScope::Key(_) => "API key",
                LimitScope::Partner(_) => "partner",
            };
            let mut error = ApiError::new(
                ErrorKind::RateLimited,
                format!(
                    "the {owner}'s limit of {} events per minute is exhausted",
                    budget.per_minute
                ),
            );
            error.retry_after = Some(retry_after);
            error.rate_limit = Some(status);
            Err(error)
        }
    }
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

/// Charges, validates and queues one event object: the single-event endpoints' answer.
async fn accept_one(
    state: &AppState,
    mut context: IngestContext,
    object: &Map<String, Value>,
) -> Result<Response, ApiError> {
    charge(state, &mut context, 1).await?;
    let event = state
        .ingestor
        .prepare(&context.caller(), object)
        .await
        .map_err(rejection_error)?;
    let accepted = AcceptedEvent::of(&event);
    enqueue(state, vec![event])?;
    Ok(context.accepted(accepted))
}

/// `POST /api/v1/events`
pub async fn single(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let context = authorize(&state, &parts, presented_credential(&parts)).await?;
    let bytes = json_bytes(&parts.headers, body, BodyKind::JsonOrBeacon)?;
    let object = as_object(parse_value(&bytes)?, "the event")?;
    accept_one(&state, context, &object).await
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
    let context = authorize(&state, &parts, credential).await?;
    translate_legacy_properties(&mut object)?;
    accept_one(&state, context, &object).await
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
