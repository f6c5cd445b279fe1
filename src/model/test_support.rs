//! Fixtures for unit tests in any layer: they sit here, on the ground floor, so that a
//! store or rollup test needs nothing from the floors above it.

use chrono::Utc;
use uuid::Uuid;

use super::{
    ApiKey, Code, EntityStatus, Event, JsonObject, Partner, Scope, SecretHash, Subsystem,
    SubsystemType,
};

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
        enrichment: None,
        client_event_id: true,
    }
}

/// `sample_event` by an anonymous visitor only, at `time` (RFC 3339).
pub fn anonymous_event(event_id: &str, anonymous: &str, time: &str) -> Event {
    let mut event = sample_event(event_id);
    event.user_id = None;
    event.anonymous_id = Some(anonymous.to_string());
    event.timestamp = time.parse().expect("an RFC 3339 time");
    event
}

/// `sample_event` carrying both ids, as an `identify` does.
pub fn identify_event(event_id: &str, anonymous: &str, user: &str) -> Event {
    let mut event = sample_event(event_id);
    event.anonymous_id = Some(anonymous.to_string());
    event.user_id = Some(user.to_string());
    event
}

/// An active partner with the default rate limit.
pub fn sample_partner() -> Partner {
    Partner {
        id: Uuid::now_v7(),
        code: Code::parse("acme").expect("a valid code"),
        name: "Acme".into(),
        email: None,
        contact_person: None,
        status: EntityStatus::Active,
        rate_limit_per_minute: None,
        retention_days: None,
        store_client_ip: false,
        own_hosts: Vec::new(),
        dimensions: Vec::new(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

/// An active web subsystem of `partner_id`, under `code`.
pub fn sample_subsystem(partner_id: Uuid, code: &str) -> Subsystem {
    Subsystem {
        id: Uuid::now_v7(),
        partner_id,
        code: Code::parse(code).expect("a valid code"),
        name: code.into(),
        subsystem_type: SubsystemType::Web,
        description: None,
        status: EntityStatus::Active,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

/// An `ingest` key of `partner_id`, pinned to `subsystem_id` if given (its hash is no
/// real secret's: it is never verified).
pub fn sample_ingest_key(partner_id: Uuid, subsystem_id: Option<Uuid>) -> ApiKey {
    ApiKey {
        id: Uuid::now_v7(),
        partner_id,
        key_id: "k1".into(),
        name: None,
        scopes: vec![Scope::Ingest],
        subsystem_id,
        expires_at: None,
        revoked_at: None,
        replaced_by: None,
        created_at: Utc::now(),
        secret_hash: SecretHash {
            iterations: 1,
            salt: String::new(),
            hash: String::new(),
            check: None,
        },
    }
}
