//! The write path: validated events (`event`), the bounded queue (`queue`), the
//! pipeline that feeds it (`pipeline`) and the batch writers that drain it (`writer`).

pub mod event;
pub mod pipeline;
pub mod queue;
pub mod writer;

pub use pipeline::{Caller, Ingestor, Rejection};
pub use queue::{EnqueueError, IngestQueue};

#[cfg(test)]
pub(crate) mod test_support {
    use chrono::Utc;
    use uuid::Uuid;

    use crate::store::StoredEvent;

    pub fn sample_event(event_id: &str) -> StoredEvent {
        StoredEvent {
            event_id: event_id.to_string(),
            partner_id: Uuid::nil(),
            subsystem_id: Uuid::nil(),
            event_type: "page_view".into(),
            timestamp: Utc::now(),
            received_at: Utc::now(),
            user_id: Some("u1".into()),
            anonymous_id: None,
            properties: serde_json::json!({}),
            context: Default::default(),
            is_valid: true,
            validation_errors: Vec::new(),
            correlation_id: "c1".into(),
            client_event_id: true,
        }
    }
}
