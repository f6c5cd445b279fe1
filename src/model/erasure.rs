//! An erasure (API.md, "Data lifecycle"): a request to erase one person's events (or a
//! whole partner's: a purge) from every table, run as a job that ends with a receipt, and,
//! with `suppress`, the person's new events dropped at ingest from then on.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::person_ids::owned_by;
use crate::model::Event;

/// Whom an erasure erases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ErasureSubject {
    /// Every event whose person is this user: its own, and those without a user id whose
    /// anonymous id is joined to it.
    UserId(String),
    /// Every event carrying this anonymous id.
    AnonymousId(String),
    /// The whole partner: every event, and what was counted and kept from them (a purge).
    PartnerId(Uuid),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ErasureStatus {
    Pending,
    Running,
    Done,
    Failed,
}

impl ErasureStatus {
    pub fn is_finished(self) -> bool {
        matches!(self, ErasureStatus::Done | ErasureStatus::Failed)
    }
}

/// An erasure job and, once done, its receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Erasure {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub subject: ErasureSubject,
    /// The anonymous ids joined to the user when the job started: erased with it, and
    /// recognised at ingest when `suppress` is set.
    #[serde(default)]
    pub anonymous_ids: BTreeSet<String>,
    pub suppress: bool,
    pub status: ErasureStatus,
    pub events_deleted: u64,
    /// Hours whose counts, sketches and cells were recounted without the events.
    pub hours_recounted: u64,
    pub requested_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Why a `failed` job stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Rounds that failed in a row (a job is retried, then marked failed).
    #[serde(default)]
    pub failed_rounds: u32,
}

impl Erasure {
    pub fn new(partner_id: Uuid, subject: ErasureSubject, suppress: bool) -> Erasure {
        Erasure {
            id: Uuid::now_v7(),
            partner_id,
            subject,
            anonymous_ids: BTreeSet::new(),
            suppress,
            status: ErasureStatus::Pending,
            events_deleted: 0,
            hours_recounted: 0,
            requested_at: Utc::now(),
            completed_at: None,
            error: None,
            failed_rounds: 0,
        }
    }

    /// Whether an event with these ids is one this erasure erases (or suppresses).
    pub fn covers(&self, user_id: Option<&str>, anonymous_id: Option<&str>) -> bool {
        match &self.subject {
            ErasureSubject::UserId(user) => {
                owned_by(user, &self.anonymous_ids, (user_id, anonymous_id))
            }
            ErasureSubject::AnonymousId(erased) => anonymous_id == Some(erased.as_str()),
            ErasureSubject::PartnerId(_) => true,
        }
    }

    pub fn covers_event(&self, event: &Event) -> bool {
        self.covers(event.user_id.as_deref(), event.anonymous_id.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_covers_its_events_and_its_joined_anonymous_ones_without_another_user() {
        let mut erasure = Erasure::new(Uuid::nil(), ErasureSubject::UserId("u1".into()), false);
        erasure.anonymous_ids.insert("a1".into());
        assert!(erasure.covers(Some("u1"), None));
        assert!(erasure.covers(Some("u1"), Some("a9")));
        assert!(erasure.covers(None, Some("a1")));
        assert!(
            !erasure.covers(Some("u2"), Some("a1")),
            "another user's event"
        );
        assert!(!erasure.covers(None, Some("a2")));
        assert!(!erasure.covers(None, None));
    }

    #[test]
    fn an_anonymous_id_covers_every_event_carrying_it() {
        let erasure = Erasure::new(Uuid::nil(), ErasureSubject::AnonymousId("a1".into()), true);
        assert!(erasure.covers(None, Some("a1")));
        assert!(erasure.covers(Some("u7"), Some("a1")));
        assert!(
            !erasure.covers(Some("a1"), None),
            "a user id is not an anonymous id"
        );
    }

    #[test]
    fn a_subject_is_written_as_the_request_names_it() {
        let subject = serde_json::to_value(ErasureSubject::UserId("u1".into())).unwrap();
        assert_eq!(subject, serde_json::json!({"userId": "u1"}));
    }
}
