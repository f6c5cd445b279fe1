//! Enriching events stored before enrichment existed (`EventStore::backfill_enrichment`),
//! and marking the hours of a file written before breakdowns (layout 5) so the settler
//! folds them. The body of an event is stored once, in the by-partner table (the
//! by-subsystem row holds only the partner id), so a backfill rewrites that row alone;
//! each hour it changes is marked, so its breakdown cells are refolded with the pages,
//! countries… it now has.

use std::ops::Bound;

use chrono::{DateTime, Utc};
use redb::{Database, ReadableDatabase, ReadableTable};
use uuid::Uuid;

use super::breakdowns::{hour_key, stamp};
use super::rollups_repair::event_hour;
use super::{BREAKDOWN_MARKS, EVENTS_BY_PARTNER, keys, rows, storage_error};
use crate::model::Event;
use crate::rollups::Hour;
use crate::store::StoreError;

/// Rows one backfill step reads (and at most rewrites), each step its own transactions,
/// so a long history neither holds a write for long nor fills memory.
pub(super) const BACKFILL_ROWS_PER_STEP: usize = 5_000;

/// Events not enriched among the next rows of a backfill, with their keys, and where the
/// next step starts (`None`: the range is done).
pub(super) struct Step {
    pub events: Vec<(Vec<u8>, Event)>,
    pub next: Option<Vec<u8>>,
}

/// Reads up to `BACKFILL_ROWS_PER_STEP` rows of the partner's hours `from..to` from
/// `after` (exclusive; `None`: the start) and returns those stored without enrichment.
pub(super) fn read_step(
    database: &Database,
    partner: Uuid,
    (from, to): (Hour, Hour),
    after: Option<&[u8]>,
) -> Result<Step, StoreError> {
    let mut range = keys::time_range(partner, from.start(), to.start(), None)?;
    if let Some(after) = after {
        range.0 = Bound::Excluded(after.to_vec());
    }
    let transaction = database.begin_read().map_err(storage_error)?;
    let table = transaction
        .open_table(EVENTS_BY_PARTNER)
        .map_err(storage_error)?;
    let mut step = Step {
        events: Vec::new(),
        next: None,
    };
    let mut rows_read = table
        .range::<&[u8]>(keys::borrowed(&range))
        .map_err(storage_error)?;
    for _ in 0..BACKFILL_ROWS_PER_STEP {
        let Some(row) = rows_read.next() else {
            step.next = None;
            return Ok(step);
        };
        let (key, value) = row.map_err(storage_error)?;
        let key = key.value();
        step.next = Some(key.to_vec());
        let (micros, id_bytes) = keys::split_event_key(key)?;
        let parts = rows::KeyParts {
            partner_id: partner,
            micros,
            event_id: rows::event_id_from_bytes(id_bytes)?,
        };
        let event = rows::decode(parts, value.value(), true)?;
        if event.enrichment.is_none() {
            step.events.push((key.to_vec(), event));
        }
    }
    if rows_read.next().is_none() {
        step.next = None;
    }
    Ok(step)
}

/// Stores the enriched events of a step in their rows and marks their hours; the
/// number stored.
pub(super) fn write_step(
    database: &Database,
    enriched: &[(Vec<u8>, Event)],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let transaction = database.begin_write().map_err(storage_error)?;
    {
        let mut events = transaction
            .open_table(EVENTS_BY_PARTNER)
            .map_err(storage_error)?;
        let mut marks = transaction
            .open_table(BREAKDOWN_MARKS)
            .map_err(storage_error)?;
        let mut marked = None;
        for (key, event) in enriched {
            let row = rows::encode(event)?;
            events
                .insert(key.as_slice(), row.as_slice())
                .map_err(storage_error)?;
            let hour = (event.partner_id, Hour::of(event.timestamp));
            if marked != Some(hour) {
                stamp(&mut marks, &hour_key(hour.0, hour.1), now)?;
                marked = Some(hour);
            }
        }
    }
    transaction.commit().map_err(storage_error)?;
    Ok(enriched.len() as u64)
}

/// Marks every partner-hour holding events (layout 5 → 6: those hours were never
/// folded), with stamp 0 so the first settle round folds them. One seek per
/// partner-hour, not a read of every event.
pub(super) fn mark_every_hour(transaction: &redb::WriteTransaction) -> Result<usize, StoreError> {
    let events = transaction
        .open_table(EVENTS_BY_PARTNER)
        .map_err(storage_error)?;
    let mut marks = transaction
        .open_table(BREAKDOWN_MARKS)
        .map_err(storage_error)?;
    let mut marked = 0;
    let mut start: Vec<u8> = Vec::new();
    loop {
        let next = events
            .range::<&[u8]>(start.as_slice()..)
            .map_err(storage_error)?
            .next();
        let Some(row) = next else {
            return Ok(marked);
        };
        let key = row.map_err(storage_error)?.0.value().to_vec();
        let partner = super::breakdowns::owner_of(&key)?;
        let hour = event_hour(&key)?;
        marks
            .insert(
                hour_key(partner, hour).as_slice(),
                0u64.to_be_bytes().as_slice(),
            )
            .map_err(storage_error)?;
        marked += 1;
        start = keys::prefixed(partner, &hour_end_micros(hour).to_be_bytes());
    }
}

/// The first microsecond past `hour`, as event keys hold it.
fn hour_end_micros(hour: Hour) -> u64 {
    u64::try_from(hour.end().timestamp_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::sample_event;
    use crate::people::sessions::VisitTally;
    use crate::rollups::{BreakdownQuery, visits_cell};
    use crate::store::embedded::BREAKDOWN_CELLS;
    use crate::store::embedded::{EmbeddedStore, as_layout_left};
    use crate::store::{BreakdownStore, EventStore, RollupStore};

    fn marks(store: &EmbeddedStore) -> Vec<(Hour, u64)> {
        let transaction = store.database.begin_read().unwrap();
        let table = transaction.open_table(BREAKDOWN_MARKS).unwrap();
        table
            .iter()
            .unwrap()
            .map(|row| {
                let (key, value) = row.unwrap();
                let hour = super::super::breakdowns::hour_at(key.value(), 0).unwrap();
                let stamp = super::super::breakdowns::decode_stamp(value.value()).unwrap();
                (hour, stamp)
            })
            .collect()
    }

    /// u1's page views at 10:00 and 10:10, then 40 minutes apart, then 13:10 (from `ten`).
    fn page_views_from(ten: DateTime<Utc>) -> Vec<crate::model::Event> {
        [0, 10, 50, 70, 190]
            .iter()
            .map(|minutes| {
                let mut event = sample_event(&format!("e{minutes}"));
                event.timestamp = ten + chrono::Duration::minutes(*minutes);
                event
            })
            .collect()
    }

    #[tokio::test]
    async fn a_file_of_layout_5_gets_each_hour_with_events_marked_once_and_folded() {
        let dir = tempfile::TempDir::new().unwrap();
        let ten: DateTime<Utc> = "2026-11-20T10:00:00Z".parse().unwrap();
        {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            store.write_events(&page_views_from(ten)).await.unwrap();
            // As layout 5 left it: no marks, the old version.
            as_layout_left(&store.database, 5, BREAKDOWN_MARKS);
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let hour = Hour::of(ten);
        let expected = vec![(hour, 0), (hour.next(), 0), (Hour(hour.0 + 3), 0)];
        assert_eq!(marks(&store), expected);
        let outcome = store.settle_rollups(Utc::now()).await.unwrap();
        assert_eq!(outcome.folded, 4, "three hours and their day, at once");
        drop(store);
        assert!(
            EmbeddedStore::open(dir.path()).is_ok(),
            "now of the current layout"
        );
    }

    #[tokio::test]
    async fn a_file_of_layout_9_gets_its_days_folded_again_with_their_visits() {
        let dir = tempfile::TempDir::new().unwrap();
        let ten: DateTime<Utc> = "2026-11-20T10:00:00Z".parse().unwrap();
        let partner = sample_event("any").partner_id;
        {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            store.write_events(&page_views_from(ten)).await.unwrap();
            store.settle_rollups(Utc::now()).await.unwrap();
            // As layout 9 left it: days folded without visits (here, no cells at all).
            as_layout_left(&store.database, 9, BREAKDOWN_CELLS);
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(marks(&store).len(), 3, "every hour with events marked");
        let outcome = store.settle_rollups(Utc::now()).await.unwrap();
        assert_eq!(outcome.folded, 4, "three hours and their day");
        let day = Hour::of(ten).day();
        let query = BreakdownQuery {
            partner_id: partner,
            names: vec![visits_cell(None, false)],
            from: day,
            to: Hour(day.0 + 24),
            whole_days: [day].into(),
        };
        let read = store.breakdown_cells(&query).await.unwrap();
        assert!(read.days.contains(&day));
        let parts = read.tables[0][0].1.parts().iter().map(Vec::as_slice);
        let tally = VisitTally::from_parts(parts).unwrap();
        assert_eq!((tally.visits, tally.bounces), (3, 1));
    }
}
