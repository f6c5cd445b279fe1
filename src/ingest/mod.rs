//! The write path: admission (`admission`: replay guard, rate charge), the edge that
//! validates events (`event`), the pipeline that resolves and checks them and waits for
//! their acknowledgement (`pipeline`), the bounded queue with its receipts (`queue`) and
//! the batch writers that drain it (`writer`). `segment` translates Segment's messages
//! into the same drafts.

pub mod admission;
pub mod event;
pub mod event_types;
pub mod pipeline;
pub mod queue;
pub mod segment;
pub mod writer;

pub use admission::{Admission, RateLimited, ReplayHeaders};
pub use pipeline::{AckPolicy, Ingestor, NotStored, Origin, Rejection};
pub use queue::{EnqueueError, IngestQueue};

#[cfg(test)]
pub(crate) mod test_support {
    use chrono::Utc;
    use uuid::Uuid;

    use crate::model::{Event, JsonObject};

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
}
