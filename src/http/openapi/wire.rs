//! Schemas for the bodies whose Rust types are not serde structs (event objects are read
//! field by field, health answers are built as JSON). Report schemas are derived on the
//! report types themselves (`reports::aggregate`). Each is checked against real values in
//! the tests of `openapi`, so a change on either side fails a test instead of drifting.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::error::FieldError;

/// An RFC 9457 problem: every error answer (`application/problem+json`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// `urn:volcanion:problem:<kind>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request's `X-Correlation-ID`.
    pub correlation_id: Option<String>,
    /// Per field (or per event), where there are several.
    #[serde(default)]
    pub errors: Option<Vec<FieldError>>,
}

/// One event in the native format.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code, reason = "a schema: events are read field by field")]
pub struct EventInput {
    /// 1..200 printable characters (alias `eventName`).
    #[schema(min_length = 1, max_length = 200)]
    event_type: String,
    /// The client's id: sending the same id again stores the event once.
    event_id: Option<String>,
    /// Default: now (alias `eventTimestamp`).
    timestamp: Option<DateTime<Utc>>,
    /// `userId` or `anonymousId` is required.
    user_id: Option<String>,
    anonymous_id: Option<String>,
    /// A subsystem code or id; required unless the key is pinned to a subsystem.
    subsystem: Option<String>,
    #[schema(value_type = Option<Object>)]
    properties: Option<serde_json::Value>,
    /// `ip`, `userAgent`, `locale`, …
    #[schema(value_type = Option<Object>)]
    context: Option<serde_json::Value>,
}

/// `{"events": [...]}`: up to 1000 events.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code, reason = "a schema: the envelope is read lazily")]
pub struct BatchInput {
    #[schema(min_items = 1, max_items = 1000)]
    events: Vec<EventInput>,
}

/// The legacy shape: the key travels in the body.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code, reason = "a schema: events are read field by field")]
pub struct LegacyInput {
    /// An `ingest` API key (unless one is in the headers).
    api_key: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    event_name: String,
    event_timestamp: Option<DateTime<Utc>>,
    user_id: Option<String>,
    anonymous_id: Option<String>,
    subsystem: Option<String>,
    #[schema(value_type = Option<Object>)]
    event_properties: Option<serde_json::Value>,
    /// `eventProperties` as a JSON string.
    event_properties_json: Option<String>,
}

/// A Segment message (see Segment's HTTP Tracking API); `track` needs `event`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code, reason = "a schema: messages are read field by field")]
pub struct SegmentMessage {
    user_id: Option<String>,
    anonymous_id: Option<String>,
    event: Option<String>,
    message_id: Option<String>,
    timestamp: Option<DateTime<Utc>>,
    sent_at: Option<DateTime<Utc>>,
    write_key: Option<String>,
    #[schema(value_type = Option<Object>)]
    properties: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    traits: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    context: Option<serde_json::Value>,
}

/// A Segment batch: up to 2,500 messages, 500 KB.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code, reason = "a schema: the envelope is read lazily")]
pub struct SegmentBatch {
    #[schema(min_items = 1, max_items = 2500)]
    batch: Vec<SegmentMessage>,
    sent_at: Option<DateTime<Utc>>,
    write_key: Option<String>,
}

/// The optional replay guard of the ingest endpoints.
#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code, reason = "parameters: read from the headers by admission")]
pub struct ReplayGuardHeaders {
    /// RFC 3339 or unix seconds, within ±5 minutes of the server's clock.
    #[serde(rename = "X-Request-Timestamp")]
    request_timestamp: Option<String>,
    /// Never seen within the window (a `409` otherwise).
    #[serde(rename = "X-Request-Nonce")]
    request_nonce: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[expect(dead_code, reason = "describes the statuses `http::health` writes")]
pub enum ComponentStatus {
    Up,
    Degraded,
    Down,
    Disabled,
}

/// `{"status": "up" | "down"}`.
#[derive(Serialize, ToSchema)]
pub struct HealthStatus {
    pub status: ComponentStatus,
}

#[derive(Serialize, ToSchema)]
pub struct StoreHealth {
    pub status: ComponentStatus,
    /// `embedded` or `cassandra`.
    pub backend: String,
    pub error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RedisHealth {
    pub status: ComponentStatus,
    /// What stands in while Redis is down (empty otherwise).
    pub fallback: String,
}

#[derive(Serialize, ToSchema)]
pub struct QueueHealth {
    pub status: ComponentStatus,
    pub depth: u64,
    pub capacity: u64,
    pub bytes: u64,
}

#[derive(Serialize, ToSchema)]
pub struct HealthComponents {
    pub store: StoreHealth,
    pub redis: RedisHealth,
    pub queue: QueueHealth,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: ComponentStatus,
    pub components: HealthComponents,
}
