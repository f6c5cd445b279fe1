//! What an export reads from a store (API.md, "Export"): the events of a scope in a time
//! range, ascending by (timestamp, event id), a page at a time, each page starting after
//! the position the one before ended at. A position is an event's own time and id, so a
//! client that lost its connection resumes from the last event it received, on any
//! instance, and the next page starts exactly after it: no gap, no repeat.
//!
//! The order: the timestamp to the microsecond (the embedded store's keys hold whole
//! microseconds), then the event id, UUIDs (as the service makes them) before other ids,
//! each kind in byte order.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{EventFilter, EventScope};
use crate::model::Event;

/// An event's place in an export: its timestamp and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportPosition {
    pub timestamp: DateTime<Utc>,
    pub event_id: String,
}

impl ExportPosition {
    pub fn of(event: &Event) -> ExportPosition {
        ExportPosition {
            timestamp: event.timestamp,
            event_id: event.event_id.clone(),
        }
    }

    /// How this position sorts among others (`order`).
    pub fn cmp_order(&self, other: &ExportPosition) -> Ordering {
        order(self.timestamp, &self.event_id).cmp(&order(other.timestamp, &other.event_id))
    }
}

/// The sort key of an event at `timestamp` with `event_id`: whole microseconds, then the
/// id's kind (a UUID first), then its bytes.
pub fn order(timestamp: DateTime<Utc>, event_id: &str) -> (i64, bool, IdBytes<'_>) {
    // A UUID as the service writes it: hyphenated (36 characters), lower case. Checked
    // without formatting it back, since a Cassandra page sorts by this per comparison.
    let canonical = event_id.len() == 36 && !event_id.bytes().any(|b| b.is_ascii_uppercase());
    match Uuid::try_parse(event_id) {
        Ok(uuid) if canonical => (
            timestamp.timestamp_micros(),
            false,
            IdBytes::Uuid(*uuid.as_bytes()),
        ),
        _ => (
            timestamp.timestamp_micros(),
            true,
            IdBytes::Text(event_id.as_bytes()),
        ),
    }
}

/// An id's bytes as the order compares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum IdBytes<'a> {
    Uuid([u8; 16]),
    Text(&'a [u8]),
}

/// One page of an export.
#[derive(Debug, Clone)]
pub struct ExportQuery {
    pub scope: EventScope,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub filter: EventFilter,
    /// Start after this event (exclusive); `None`: from `from`.
    pub after: Option<ExportPosition>,
    /// Most events the page holds.
    pub limit: usize,
}

/// The events of one page in order, and where the next page starts (`None`: the export
/// is complete). A page may hold fewer than its limit, even none, when the store stopped
/// at its bound of rows read past the filters: `next` is then the last row it read.
#[derive(Debug, Clone, Default)]
pub struct ExportPage {
    pub items: Vec<Event>,
    pub next: Option<ExportPosition>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_sort_before_other_ids_within_a_microsecond_and_time_comes_first() {
        let at: DateTime<Utc> = "2026-11-20T10:00:00.000001Z".parse().unwrap();
        let uuid = "0192f6a0-0000-7000-8000-000000000000";
        assert!(order(at, uuid) < order(at, "0"));
        assert!(order(at, "a") < order(at, "b"));
        let later = at + chrono::Duration::microseconds(1);
        assert!(order(at, "z") < order(later, "a"));
        let same_micro = at + chrono::Duration::nanoseconds(500);
        assert_eq!(order(at, "a"), order(same_micro, "a"), "whole microseconds");
        assert!(order(at, "0192F6A0-0000-7000-8000-000000000000") > order(at, uuid));
    }
}
