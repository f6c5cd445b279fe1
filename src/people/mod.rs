//! People: who an event belongs to, and what funnels and retention count over people's
//! timelines (API.md, "People", "funnel", "retention"). Pure computation; the stores keep
//! the joins (`Joins`), `reports` gathers the timelines.
//!
//! An event's person is its `userId`; else the user its `anonymousId` is joined to; else
//! the `anonymousId` itself. People are compared by a 64-bit key of that id (`Person`),
//! the same key for a user and an anonymous id that spell the same, as unique-user
//! sketches count them.
//!
//! - `funnel`     the deepest path per person, and the counts per step
//! - `postings`   the per-person index: who did an event type when, 12 bytes an event
//! - `retention`  cohorts by first start event, returns per following period
//! - `sessions`   a person's visits: runs of events without a long gap

pub mod funnel;
pub mod postings;
pub mod retention;
pub mod sessions;

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::model::Event;

/// The event type a Segment `alias` call is stored as (`previousId` in its properties).
pub const ALIAS_EVENT_TYPE: &str = "alias";

/// Milliseconds since the Unix epoch.
pub type Moment = i64;

/// A person's key: the first 8 bytes of SHA-256 over their id (a collision among a
/// partner's people is as likely as 1 in 2^64 / people²).
pub type Person = u64;

pub fn person_key(id: &str) -> Person {
    let digest = Sha256::digest(id.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// The median of `durations` (ms) in seconds: the middle one, or the mean of the middle
/// two (`None` for none).
pub fn median_seconds(durations: &mut [i64]) -> Option<f64> {
    if durations.is_empty() {
        return None;
    }
    durations.sort_unstable();
    let middle = durations.len() / 2;
    let ms = if durations.len() % 2 == 1 {
        durations[middle] as f64
    } else {
        (durations[middle - 1] as f64 + durations[middle] as f64) / 2.0
    };
    Some(ms / 1_000.0)
}

/// A partner's joins: anonymous id → the user it was first seen with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Joins {
    users: HashMap<String, String>,
}

impl Joins {
    pub fn insert(&mut self, anonymous_id: String, user_id: String) {
        self.users.entry(anonymous_id).or_insert(user_id);
    }

    pub fn user_of(&self, anonymous_id: &str) -> Option<&str> {
        self.users.get(anonymous_id).map(String::as_str)
    }

    /// Gives `event` (one being counted, never one being listed) its person as its user
    /// id when its anonymous id is joined, so whatever counts actors counts people.
    pub fn resolve(&self, event: &mut Event) {
        if event.user_id.is_none()
            && let Some(user) = event
                .anonymous_id
                .as_deref()
                .and_then(|id| self.user_of(id))
        {
            event.user_id = Some(user.to_string());
        }
    }
}

/// The anonymous ids of `events` without a user id: the joins that resolving them needs.
pub fn anonymous_ids<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<String> {
    let ids: std::collections::BTreeSet<&str> = events
        .into_iter()
        .filter(|event| event.user_id.is_none())
        .filter_map(|event| event.anonymous_id.as_deref())
        .collect();
    ids.into_iter().map(str::to_string).collect()
}

/// The joins an event asks for, as (anonymous id, user id): its anonymous id when it
/// carries a user id too (identify, or any event with both), and an alias's `previousId`.
pub fn joins_of(event: &Event) -> Vec<(String, String)> {
    let Some(user) = event.user_id.as_deref() else {
        return Vec::new();
    };
    let mut joins = Vec::new();
    if let Some(anonymous) = event.anonymous_id.as_deref() {
        joins.push((anonymous.to_string(), user.to_string()));
    }
    if event.event_type == ALIAS_EVENT_TYPE {
        let properties = event.properties.to_value();
        if let Some(previous) = properties.get("previousId").and_then(|id| id.as_str())
            && previous != user
            && Some(previous) != event.anonymous_id.as_deref()
        {
            joins.push((previous.to_string(), user.to_string()));
        }
    }
    joins
}
