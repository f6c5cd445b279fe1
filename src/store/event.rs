use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// An event as stored and as returned by `GET /api/v1/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    /// The client's id when it sent one (de-duplication key), else a generated UUIDv7.
    pub event_id: String,
    pub partner_id: Uuid,
    pub subsystem_id: Uuid,
    pub event_type: String,
    pub timestamp: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    /// Always a JSON object.
    pub properties: Value,
    pub context: Map<String, Value>,
    pub is_valid: bool,
    pub validation_errors: Vec<String>,
    pub correlation_id: String,
    /// Whether the client chose `event_id` (a resend may repeat it). Server-made ids are
    /// unique by construction, so stores may skip de-duplication for them. Not stored.
    #[serde(skip)]
    pub client_event_id: bool,
}

impl StoredEvent {
    /// The identity used for unique-user counts: the user id, else the anonymous id.
    pub fn actor(&self) -> Option<&str> {
        self.user_id.as_deref().or(self.anonymous_id.as_deref())
    }
}
