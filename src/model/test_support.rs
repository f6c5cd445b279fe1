//! Fixtures for unit tests in any layer: they sit here, on the ground floor, so that a
//! store or rollup test needs nothing from the floors above it.

use chrono::Utc;
use uuid::Uuid;

use super::{Event, JsonObject};

/// A valid event with nil partner and subsystem ids, received now.
pub fn sample_event(event_id: &str) -> Event {
    Event {
        event_id: event_id.to_string(),
        partner_id: Uuid::nil(),
        subsystem_id: Uuid::nil(),
        event_type: "page_view".into(),
        timestamp: Utc::now(),
        received_at: Utc::now(),
        user_id: Some("u1".into()),
        anonymous_id: None,
        properties: JsonObject::empty(),
        context: JsonObject::empty(),
        is_valid: true,
        validation_errors: Vec::new(),
        correlation_id: "c1".into(),
        client_event_id: true,
    }
}
