use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::model::{Enrichment, JsonObject};

/// A validated event: what the queue carries, the stores keep, and
/// `GET /api/v1/events` returns. Every wire format is translated into this.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// The client's id when it sent one (de-duplication key), else a generated UUIDv7.
    pub event_id: String,
    pub partner_id: Uuid,
    pub subsystem_id: Uuid,
    pub event_type: String,
    pub timestamp: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    #[schema(value_type = Object)]
    pub properties: JsonObject,
    #[schema(value_type = Object)]
    pub context: JsonObject,
    pub is_valid: bool,
    pub validation_errors: Vec<String>,
    pub correlation_id: String,
    /// What ingestion derived from the event (page, referrer, campaign, device, country);
    /// absent for events stored before enrichment existed.
    pub enrichment: Option<Enrichment>,
    /// Whether the client chose `event_id` (a resend may repeat it). Server-made ids are
    /// unique by construction, so stores may skip de-duplication for them. Not stored.
    #[serde(skip)]
    pub client_event_id: bool,
}

impl Event {
    /// About how many bytes of memory this event holds (for queue budgets).
    pub fn approximate_size(&self) -> usize {
        const FIXED: usize = 160;
        FIXED
            + self.event_id.len()
            + self.event_type.len()
            + self.user_id.as_ref().map_or(0, String::len)
            + self.anonymous_id.as_ref().map_or(0, String::len)
            + self.properties.as_str().len()
            + self.context.as_str().len()
            + self
                .validation_errors
                .iter()
                .map(String::len)
                .sum::<usize>()
            + self.correlation_id.len()
            + self
                .enrichment
                .as_ref()
                .map_or(0, Enrichment::approximate_size)
    }

    /// The identity used for unique-user counts: the user id, else the anonymous id.
    pub fn actor(&self) -> Option<&str> {
        self.user_id.as_deref().or(self.anonymous_id.as_deref())
    }
}

const MAX_EVENT_TYPE_CHARS: usize = 200;

/// The rule for event type names: 1..=200 characters, not blank, no control characters
/// (Segment-style names such as "Order Completed" are fine).
pub fn check_event_type(text: &str) -> Result<(), String> {
    let length = text.chars().count();
    if text.trim().is_empty() {
        Err("must not be blank".to_string())
    } else if length > MAX_EVENT_TYPE_CHARS {
        Err(format!(
            "must be at most {MAX_EVENT_TYPE_CHARS} characters, got {length}"
        ))
    } else if text.chars().any(char::is_control) {
        Err("must not contain control characters".to_string())
    } else {
        Ok(())
    }
}
