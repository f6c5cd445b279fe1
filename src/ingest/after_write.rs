//! What runs after a batch is stored and before its events' receipts complete: each step
//! sees the stored batch once, in order, so that by the time a caller gets its 202 (with
//! durable acknowledgement) everything the batch makes stale is already dropped. Today
//! that is one step, late events invalidating their partners' settled reports; a new
//! consumer of stored batches (an ingestion ledger, a people index) is one more field
//! here and one more line in `batch_stored`, not another closure in the wiring.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::Event;
use crate::redis::{Invalidation, InvalidationBus};
use crate::rollups::Hour;

/// The steps that follow every stored batch, built once in the wiring and shared by the
/// batch writers.
pub struct AfterWrite {
    /// Drops settled reports here and tells the other instances.
    invalidations: Arc<InvalidationBus>,
}

impl AfterWrite {
    pub fn new(invalidations: InvalidationBus) -> AfterWrite {
        AfterWrite {
            invalidations: Arc::new(invalidations),
        }
    }

    /// Runs every step for a batch the store has just taken. Async so a step may write
    /// (a ledger row); the writer awaits it before completing the batch's receipts.
    pub async fn batch_stored(&self, events: &[Event]) {
        self.batch_stored_at(events, Utc::now());
    }

    fn batch_stored_at(&self, events: &[Event], now: DateTime<Utc>) {
        self.invalidate_late_reports(events, now);
    }

    /// Stored events timed before the current hour began land in settled report ranges:
    /// their partners' settled reports are dropped here and on every other instance.
    /// Applied here before the events' 202s, so no answer after one is stale.
    fn invalidate_late_reports(&self, events: &[Event], now: DateTime<Utc>) {
        for partner in partners_with_late_events(events, now) {
            self.invalidations
                .publish_from_sync(Invalidation::LateEvents(partner));
        }
    }
}

/// The partners with an event timed before the hour `now` falls in, each once.
fn partners_with_late_events(events: &[Event], now: DateTime<Utc>) -> BTreeSet<Uuid> {
    let settled_before = Hour::of(now).start();
    events
        .iter()
        .filter(|event| event.timestamp < settled_before)
        .map(|event| event.partner_id)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::model::test_support::sample_event;

    /// An `AfterWrite` without Redis, and what its bus applied on this instance.
    fn recorded() -> (AfterWrite, Arc<Mutex<Vec<Invalidation>>>) {
        let applied = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&applied);
        let bus = InvalidationBus::new(
            None,
            Arc::new(move |change| sink.lock().unwrap().push(change)),
        );
        (AfterWrite::new(bus), applied)
    }

    fn event_at(partner: Uuid, timestamp: &str) -> Event {
        let mut event = sample_event(timestamp);
        event.partner_id = partner;
        event.timestamp = timestamp.parse().unwrap();
        event
    }

    fn now() -> DateTime<Utc> {
        "2026-03-10T14:20:00Z".parse().unwrap()
    }

    #[test]
    fn late_events_invalidate_their_partners_settled_reports_once_each() {
        let (after_write, applied) = recorded();
        let (late, also_late, on_time) =
            (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let batch = [
            event_at(late, "2026-03-10T13:59:59Z"),
            event_at(late, "2026-03-01T08:00:00Z"),
            event_at(also_late, "2026-03-09T23:00:00Z"),
            event_at(on_time, "2026-03-10T14:00:00Z"),
        ];
        after_write.batch_stored_at(&batch, now());
        assert_eq!(
            *applied.lock().unwrap(),
            [
                Invalidation::LateEvents(late),
                Invalidation::LateEvents(also_late)
            ]
        );
    }

    #[test]
    fn events_of_the_current_hour_invalidate_nothing() {
        let (after_write, applied) = recorded();
        let partner = Uuid::from_u128(1);
        let batch = [
            event_at(partner, "2026-03-10T14:00:00Z"),
            event_at(partner, "2026-03-10T14:19:59Z"),
        ];
        after_write.batch_stored_at(&batch, now());
        assert!(applied.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_stored_batch_runs_the_steps_against_the_clock() {
        let (after_write, applied) = recorded();
        let partner = Uuid::from_u128(7);
        after_write
            .batch_stored(&[event_at(partner, "2020-01-01T00:00:00Z")])
            .await;
        assert_eq!(
            *applied.lock().unwrap(),
            [Invalidation::LateEvents(partner)]
        );
    }
}
