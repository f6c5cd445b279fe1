//! Folding an ended UTC day's marked hours and then the day from one recount of the day's
//! events. Folding each hour and then the day reads every event twice; what marks many
//! hours of ended days at once (an erasure, a sweep, a seed of history) reads them once
//! this way. Each hour is still written in a short transaction of its own, under
//! `fold_hour`'s stamp checks; the day last, only if none of its hours was written to or
//! refolded by another fold since the recount. What a check refuses stays marked for the
//! next fold.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use redb::{Database, ReadableDatabase};
use uuid::Uuid;

use super::breakdowns::{decode_stamp, hour_key, marks_in};
use super::breakdowns_fold::{Recount, declared_cached, recounted};
use super::breakdowns_write::DaySketches::ToTheDayFold;
use super::breakdowns_write::{write_day, write_hour};
use super::rollups_repair::day_after;
use super::{BREAKDOWN_DAYS_PENDING, BREAKDOWN_MARKS, storage_error};
use crate::rollups::Hour;
use crate::store::StoreError;

/// A pause between a fold's write transactions, for the events' writers waiting.
const WRITERS_TURN: Duration = Duration::from_millis(2);

/// What folding a day did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct DayFolded {
    /// Hours and days written.
    pub(super) folds: usize,
    /// Whether the day is current: no hour of it marked, and its cells written.
    pub(super) current: bool,
}

/// Folds ended `day`'s marked hours and then the day, if every mark is at or before
/// `horizon` (µs; else `None`, nothing done: the day is still being written to).
pub(super) fn fold_ended_day(
    database: &Database,
    partner: Uuid,
    day: Hour,
    horizon: u64,
    cache: &mut HashMap<Uuid, Vec<String>>,
) -> Result<Option<DayFolded>, StoreError> {
    Ok(match read_day(database, partner, day, horizon, cache)? {
        DayRead::Unsettled => None,
        DayRead::Current => Some(DayFolded {
            folds: 0,
            current: true,
        }),
        DayRead::Recounted(read) => Some(write_folds(database, partner, day, read)?),
    })
}

enum DayRead {
    /// A mark is past the horizon.
    Unsettled,
    /// Nothing is marked or pending.
    Current,
    Recounted(Box<DayRecount>),
}

/// A day's marks and pending stamp, and its events recounted, all as one read saw them.
struct DayRecount {
    marks: BTreeMap<Hour, u64>,
    pending: Option<u64>,
    recount: Recount,
    declared: Vec<String>,
}

fn read_day(
    database: &Database,
    partner: Uuid,
    day: Hour,
    horizon: u64,
    cache: &mut HashMap<Uuid, Vec<String>>,
) -> Result<DayRead, StoreError> {
    let transaction = database.begin_read().map_err(storage_error)?;
    let marks = transaction
        .open_table(BREAKDOWN_MARKS)
        .map_err(storage_error)?;
    let marks = marks_in(&marks, partner, day, day_after(day))?;
    if marks.values().any(|mark| *mark > horizon) {
        return Ok(DayRead::Unsettled);
    }
    let pending = transaction
        .open_table(BREAKDOWN_DAYS_PENDING)
        .map_err(storage_error)?
        .get(hour_key(partner, day).as_slice())
        .map_err(storage_error)?
        .map(|stamp| decode_stamp(stamp.value()))
        .transpose()?;
    if marks.is_empty() && pending.is_none() {
        return Ok(DayRead::Current);
    }
    let declared = declared_cached(&transaction, partner, cache)?;
    let range = (day, day_after(day));
    let recount = recounted(&transaction, partner, range, &declared)?;
    Ok(DayRead::Recounted(Box::new(DayRecount {
        marks,
        pending,
        recount,
        declared,
    })))
}

/// Writes each marked hour of `read` whose mark is unchanged, then the day if every one
/// was written.
fn write_folds(
    database: &Database,
    partner: Uuid,
    day: Hour,
    read: Box<DayRecount>,
) -> Result<DayFolded, StoreError> {
    let mut folded = DayFolded::default();
    let mut pending = read.pending;
    let mut all_hours = true;
    if !read.marks.is_empty() {
        let cells = read.recount.breakdowns.hour_cells(&read.declared);
        for (hour, mark) in read.marks {
            let recounted = (&read.recount, &cells);
            match write_hour(database, partner, (hour, mark), recounted, ToTheDayFold)? {
                Some(stamped) => {
                    pending = Some(stamped);
                    folded.folds += 1;
                }
                None => all_hours = false,
            }
            // redb's write lock is not fair: writing hours back to back would keep the
            // events' writers waiting until the day is done (an ingest p99 of 2 s, measured).
            std::thread::sleep(WRITERS_TURN);
        }
    }
    if let (true, Some(pending)) = (all_hours, pending)
        && write_day(
            database,
            partner,
            (day, pending),
            &read.recount,
            &read.declared,
        )?
    {
        folded.folds += 1;
        folded.current = true;
    }
    Ok(folded)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::model::test_support::{anonymous_event, sample_event};
    use crate::model::{Enrichment, Event};
    use crate::store::embedded::anonymous_hours::anonymous_prefix;
    use crate::store::embedded::{EmbeddedStore, PEOPLE_ANONYMOUS_HOURS};
    use crate::store::{BreakdownStore, EventStore, RollupStore};

    const DAY: &str = "2026-11-20T00:00:00Z";

    fn on_page(mut event: Event, partner: Uuid, page: &str) -> Event {
        event.partner_id = partner;
        event.enrichment = Some(Enrichment {
            page: Some(page.into()),
            ..Enrichment::default()
        });
        event
    }

    fn event_at(partner: Uuid, id: &str, at: &str, page: &str) -> Event {
        let mut event = sample_event(id);
        event.timestamp = at.parse().unwrap();
        on_page(event, partner, page)
    }

    /// A store holding three hours of an ended day, one with an anonymous visitor no join
    /// names (and the directory it lives in).
    async fn three_hours() -> (tempfile::TempDir, EmbeddedStore, Uuid) {
        let dir = tempfile::TempDir::new().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let partner = Uuid::now_v7();
        let events = vec![
            event_at(partner, "e1", "2026-11-20T10:05:00Z", "/a"),
            event_at(partner, "e2", "2026-11-20T10:35:00Z", "/b"),
            on_page(
                anonymous_event("e3", "a1", "2026-11-20T11:10:00Z"),
                partner,
                "/a",
            ),
            event_at(partner, "e4", "2026-11-20T15:00:00Z", "/a"),
        ];
        store.write_events(&events).await.unwrap();
        (dir, store, partner)
    }

    fn marks_of_day(store: &EmbeddedStore, partner: Uuid) -> BTreeMap<Hour, u64> {
        let transaction = store.database.begin_read().unwrap();
        let marks = transaction.open_table(BREAKDOWN_MARKS).unwrap();
        let day = Hour::of(DAY.parse().unwrap());
        marks_in(&marks, partner, day, day_after(day)).unwrap()
    }

    async fn assert_current(store: &EmbeddedStore, partner: Uuid) {
        let day = Hour::of(DAY.parse().unwrap());
        let (from, to) = (day, day_after(day));
        assert_eq!(marks_of_day(store, partner), BTreeMap::new());
        assert_eq!(
            store.verify_breakdowns(partner, from, to).await.unwrap(),
            []
        );
        assert_eq!(store.verify_rollups(partner, from, to).await.unwrap(), []);
    }

    fn later() -> DateTime<Utc> {
        Utc::now() + chrono::Duration::minutes(3)
    }

    #[tokio::test]
    async fn an_ended_days_hours_and_the_day_fold_from_one_recount() {
        let (_dir, store, partner) = three_hours().await;
        assert_eq!(marks_of_day(&store, partner).len(), 3);

        let outcome = store.settle_rollups(later()).await.unwrap();
        assert_eq!(outcome.folded, 4, "three hours and their day");
        assert_current(&store, partner).await;
        // The anonymous visitor is recorded in the one hour it was seen in.
        let transaction = store.database.begin_read().unwrap();
        let table = transaction.open_table(PEOPLE_ANONYMOUS_HOURS).unwrap();
        let prefix = anonymous_prefix(partner, b"a1");
        let hours: Vec<Vec<u8>> = table
            .range::<&[u8]>(prefix.as_slice()..)
            .unwrap()
            .map(|row| row.unwrap().0.value().to_vec())
            .take_while(|key| key.starts_with(&prefix))
            .map(|key| key[prefix.len()..].to_vec())
            .collect();
        let eleven = Hour::of("2026-11-20T11:00:00Z".parse().unwrap());
        assert_eq!(hours, [eleven.to_be_bytes().to_vec()]);
    }

    #[tokio::test]
    async fn a_write_after_the_recount_keeps_its_hour_marked_and_the_day_unwritten() {
        let (_dir, store, partner) = three_hours().await;
        let day = Hour::of(DAY.parse().unwrap());
        let mut cache = HashMap::new();
        let DayRead::Recounted(read) =
            read_day(&store.database, partner, day, u64::MAX, &mut cache).unwrap()
        else {
            panic!("three marked hours are recounted");
        };
        let late = event_at(partner, "late", "2026-11-20T15:30:00Z", "/c");
        store.write_events(&[late]).await.unwrap();

        let folded = write_folds(&store.database, partner, day, read).unwrap();
        assert_eq!(folded.folds, 2, "the two hours not written to since");
        assert!(!folded.current, "the day waits for the hour written to");
        let fifteen = Hour::of("2026-11-20T15:00:00Z".parse().unwrap());
        assert_eq!(
            marks_of_day(&store, partner)
                .into_keys()
                .collect::<Vec<_>>(),
            [fifteen]
        );

        let again = fold_ended_day(&store.database, partner, day, u64::MAX, &mut cache).unwrap();
        assert_eq!(
            again,
            Some(DayFolded {
                folds: 2,
                current: true
            })
        );
        assert_current(&store, partner).await;
    }

    #[tokio::test]
    async fn a_day_with_an_hour_written_to_within_the_horizon_is_left_whole() {
        let (_dir, store, partner) = three_hours().await;
        let day = Hour::of(DAY.parse().unwrap());
        let mut cache = HashMap::new();
        let folded = fold_ended_day(&store.database, partner, day, 0, &mut cache).unwrap();
        assert_eq!(folded, None);
        assert_eq!(marks_of_day(&store, partner).len(), 3, "nothing folded");
    }
}
