//! Rebuilding and verifying the embedded rollups from the raw events, one partner-day at
//! a time: a day is recounted hour by hour and replaced in a transaction of its own, so
//! memory holds at most one hour's recount and a transaction at most one day of one
//! partner's rollups, however long the history. A rebuild cut short leaves each day either
//! rebuilt or as it was, and running it again finishes the job. The layout upgrade
//! (`rollups_upgrade`) rebuilds every partner's days with the same steps.

use std::collections::{BTreeMap, BTreeSet};

use chrono::DateTime;
use redb::{Database, ReadableTable};
use uuid::Uuid;

use super::joins::Resolver;
use super::rollups::{
    DAYS, HOURS, RollupWork, apply_level, hour_prefix, sketch_range, split_cell_key, stored_counts,
};
use super::{
    EVENT_TYPES, EVENTS_BY_PARTNER, PEOPLE_JOINS, ROLLUP_CELLS, ROLLUP_DAY_CELLS, keys, rows,
    storage_error,
};
use crate::model::Event;
use crate::rollups::{HOURS_PER_DAY, Hour, HourCounts, RollupDelta, RollupDifference, differences};
use crate::store::StoreError;

/// Any table of byte keys and values, read (in a read or a write transaction).
pub(super) trait Readable: ReadableTable<&'static [u8], &'static [u8]> {}
impl<T: ReadableTable<&'static [u8], &'static [u8]>> Readable for T {}

/// What a rebuild did: events recounted, and the partner-days (one transaction each).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rebuilt {
    pub events: u64,
    pub days: usize,
}

pub(super) fn day_after(day: Hour) -> Hour {
    Hour(day.0.saturating_add(HOURS_PER_DAY))
}

/// The whole UTC days covering `from..to`.
fn whole_days(from: Hour, to: Hour) -> (Hour, Hour) {
    let end = if to.starts_day() {
        to
    } else {
        day_after(to.day())
    };
    (from.day(), end)
}

/// The hour of an event key's time.
pub(super) fn event_hour(key: &[u8]) -> Result<Hour, StoreError> {
    let (micros, _) = keys::split_event_key(key)?;
    let instant = DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| StoreError::Corrupt("an event time out of range".into()))?;
    Ok(Hour::of(instant))
}

/// The first day in `from..to` (`from` a day's first hour) where the partner has events
/// or stored rollup cells: the days a rebuild or verify visits, skipping empty ones.
fn next_day(
    events: &impl Readable,
    hour_cells: &impl Readable,
    day_cells: &impl Readable,
    partner: Uuid,
    (from, to): (Hour, Hour),
) -> Result<Option<Hour>, StoreError> {
    let mut found: Option<Hour> = None;
    let range = keys::time_range(partner, from.start(), to.start(), None)?;
    if let Some(row) = events
        .range::<&[u8]>(keys::borrowed(&range))
        .map_err(storage_error)?
        .next()
    {
        let hour = event_hour(row.map_err(storage_error)?.0.value())?;
        found = Some(hour.day());
    }
    let (start, end) = (hour_prefix(partner, from), hour_prefix(partner, to));
    let firsts = [
        hour_cells.range::<&[u8]>(start.as_slice()..end.as_slice()),
        day_cells.range::<&[u8]>(start.as_slice()..end.as_slice()),
    ];
    for rows in firsts {
        if let Some(row) = rows.map_err(storage_error)?.next() {
            let (hour, _) = split_cell_key(row.map_err(storage_error)?.0.value())?;
            found = Some(found.map_or(hour.day(), |day| day.min(hour.day())));
        }
    }
    Ok(found.filter(|day| *day < to))
}

/// The rollups of a partner's raw events in hours `from..to`, each counted as its person
/// (`joins::Resolver` over `people_joins`).
fn recount(
    (events, joins): (&impl Readable, &impl Readable),
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<RollupDelta, StoreError> {
    let range = keys::time_range(partner, from.start(), to.start(), None)?;
    let mut delta = RollupDelta::default();
    let mut resolver = Resolver::new(joins);
    for row in events
        .range::<&[u8]>(keys::borrowed(&range))
        .map_err(storage_error)?
    {
        let (key, value) = row.map_err(storage_error)?;
        let mut event = decode_event(partner, key.value(), value.value())?;
        resolver.resolve(&mut event)?;
        delta.add(&event);
    }
    Ok(delta)
}

fn decode_event(partner_id: Uuid, key: &[u8], row: &[u8]) -> Result<Event, StoreError> {
    let (micros, id_bytes) = keys::split_event_key(key)?;
    let parts = rows::KeyParts {
        partner_id,
        micros,
        event_id: rows::event_id_from_bytes(id_bytes)?,
    };
    rows::decode(parts, row, false)
}

/// Replaces one partner-day's rollups (its hours and its day) with a recount of its raw
/// events, and records the event types it finds; the number of events recounted.
pub(super) fn rebuild_day(
    transaction: &redb::WriteTransaction,
    partner: Uuid,
    day: Hour,
) -> Result<u64, StoreError> {
    let end = day_after(day);
    clear_day(transaction, partner, day)?;
    super::breakdowns_repair::rebuild_day(transaction, partner, day)?;
    let events = transaction
        .open_table(EVENTS_BY_PARTNER)
        .map_err(storage_error)?;
    let joins = transaction
        .open_table(PEOPLE_JOINS)
        .map_err(storage_error)?;
    let mut types = transaction.open_table(EVENT_TYPES).map_err(storage_error)?;
    let mut recounted = 0;
    let mut work = RollupWork::default();
    let mut hour = day;
    while hour < end {
        let delta = recount((&events, &joins), partner, hour, hour.next())?;
        hour = hour.next();
        if delta.is_empty() {
            continue;
        }
        apply_level(transaction, HOURS, &delta, &mut work)?;
        apply_level(transaction, DAYS, &delta.by_day(), &mut work)?;
        for counts in delta.counts_of(partner).values() {
            recounted += counts.total();
            for cell in &counts.cells {
                let key = keys::prefixed(partner, cell.event_type.as_bytes());
                types
                    .insert(key.as_slice(), [].as_slice())
                    .map_err(storage_error)?;
            }
        }
    }
    Ok(recounted)
}

/// Deletes a partner-day's stored cells, hour and day, and the sketches they name
/// (sketches exist only beside cells: the partner's and its subsystems', overall and per
/// type).
pub(super) fn clear_day(
    transaction: &redb::WriteTransaction,
    partner: Uuid,
    day: Hour,
) -> Result<(), StoreError> {
    let end = day_after(day);
    let (start_key, end_key) = (hour_prefix(partner, day), hour_prefix(partner, end));
    let mut scopes: BTreeSet<(Uuid, Option<String>)> = BTreeSet::from([(partner, None)]);
    for level in [HOURS, DAYS] {
        let (mut cells, _) = level.open(transaction)?;
        for row in cells
            .range::<&[u8]>(start_key.as_slice()..end_key.as_slice())
            .map_err(storage_error)?
        {
            let (_, (subsystem, event_type, _, _)) =
                split_cell_key(row.map_err(storage_error)?.0.value())?;
            scopes.insert((partner, Some(event_type.clone())));
            scopes.insert((subsystem, None));
            scopes.insert((subsystem, Some(event_type)));
        }
        cells
            .retain_in::<&[u8], _>(start_key.as_slice()..end_key.as_slice(), |_, _| false)
            .map_err(storage_error)?;
    }
    let (_, mut hour_sketches) = HOURS.open(transaction)?;
    let (_, mut day_sketches) = DAYS.open(transaction)?;
    let partitions = scopes
        .iter()
        .flat_map(|scope| [(scope, false), (scope, true)]);
    for ((owner, event_type), bots) in partitions {
        let (start, stop) = sketch_range(*owner, event_type.as_deref(), bots, day, end);
        hour_sketches
            .retain_in::<&[u8], _>(start.as_slice()..stop.as_slice(), |_, _| false)
            .map_err(storage_error)?;
        day_sketches
            .retain_in::<&[u8], _>(start.as_slice()..stop.as_slice(), |_, _| false)
            .map_err(storage_error)?;
    }
    Ok(())
}

/// Replaces a partner's rollups for the days covering hours `from..to` with a recount of
/// its raw events, one day per transaction.
pub(super) fn rebuild(
    database: &Database,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<Rebuilt, StoreError> {
    let (mut cursor, past) = whole_days(from, to);
    let mut rebuilt = Rebuilt::default();
    loop {
        let transaction = database.begin_write().map_err(storage_error)?;
        let day = {
            let events = transaction
                .open_table(EVENTS_BY_PARTNER)
                .map_err(storage_error)?;
            let hour_cells = transaction
                .open_table(ROLLUP_CELLS)
                .map_err(storage_error)?;
            let day_cells = transaction
                .open_table(ROLLUP_DAY_CELLS)
                .map_err(storage_error)?;
            next_day(&events, &hour_cells, &day_cells, partner, (cursor, past))?
        };
        let Some(day) = day else {
            return Ok(rebuilt);
        };
        rebuilt.events += rebuild_day(&transaction, partner, day)?;
        rebuilt.days += 1;
        transaction.commit().map_err(storage_error)?;
        cursor = day_after(day);
    }
}

/// The hours of `from..to`, and the days covering them, whose stored counts differ from a
/// recount of the partner's raw events; read a day at a time.
pub(super) fn verify(
    transaction: &redb::ReadTransaction,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<Vec<RollupDifference>, StoreError> {
    let events = transaction
        .open_table(EVENTS_BY_PARTNER)
        .map_err(storage_error)?;
    let joins = transaction
        .open_table(PEOPLE_JOINS)
        .map_err(storage_error)?;
    let hour_cells = transaction
        .open_table(ROLLUP_CELLS)
        .map_err(storage_error)?;
    let day_cells = transaction
        .open_table(ROLLUP_DAY_CELLS)
        .map_err(storage_error)?;
    let (mut cursor, past) = whole_days(from, to);
    let mut found = Vec::new();
    while let Some(day) = next_day(&events, &hour_cells, &day_cells, partner, (cursor, past))? {
        let end = day_after(day);
        let mut recounted: BTreeMap<Hour, HourCounts> = BTreeMap::new();
        let mut whole_day = HourCounts::default();
        let mut hour = day;
        while hour < end {
            let counts = recount((&events, &joins), partner, hour, hour.next())?;
            let counts = counts.counts_of(partner);
            for (counted, hour_counts) in counts {
                whole_day.merge(&hour_counts);
                recounted.insert(counted, hour_counts);
            }
            hour = hour.next();
        }
        let inside = |hour: &Hour| from <= *hour && *hour < to;
        recounted.retain(|hour, _| inside(hour));
        let mut stored = stored_counts(&hour_cells, partner, day, end)?;
        stored.retain(|hour, _| inside(hour));
        found.extend(differences(&stored, &recounted));
        let recounted_day = match whole_day.cells.is_empty() {
            true => BTreeMap::new(),
            false => BTreeMap::from([(day, whole_day)]),
        };
        let stored_day = stored_counts(&day_cells, partner, day, day.next())?;
        found.extend(
            differences(&stored_day, &recounted_day)
                .into_iter()
                .map(|difference| RollupDifference {
                    hours: HOURS_PER_DAY,
                    ..difference
                }),
        );
        cursor = end;
    }
    Ok(found)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::model::test_support::sample_event;
    use crate::store::embedded::EmbeddedStore;
    use crate::store::{EventStore, RollupStore};

    /// Events of two partners over `days` days from 2026-01-01, three types a day.
    pub(in crate::store::embedded) async fn store_with_days(
        days: u32,
    ) -> (tempfile::TempDir, EmbeddedStore, Vec<Uuid>) {
        let dir = tempfile::TempDir::new().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let partners = vec![Uuid::now_v7(), Uuid::now_v7()];
        let start: chrono::DateTime<chrono::Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut events = Vec::new();
        for (p, partner) in partners.iter().enumerate() {
            for day in 0..days {
                for n in 0..6u32 {
                    let mut event = sample_event(&format!("p{p}d{day}n{n}"));
                    event.partner_id = *partner;
                    event.subsystem_id = Uuid::from_u128(u128::from(n % 2) + 1);
                    event.event_type = format!("type_{}", n % 3);
                    event.is_valid = n != 5;
                    event.timestamp = start
                        + chrono::Duration::days(i64::from(day))
                        + chrono::Duration::hours(i64::from(n * 4));
                    events.push(event);
                }
            }
        }
        store.write_events(&events).await.unwrap();
        (dir, store, partners)
    }

    #[tokio::test]
    async fn a_rebuild_walks_one_partner_day_per_transaction_and_agrees_with_verify() {
        let (_dir, store, partners) = store_with_days(40).await;
        let (from, to) = (Hour(0), Hour(u32::MAX).day());
        // Wrong counts on one day, which the rebuild must replace.
        let tampered_day = Hour::of("2026-01-10T00:00:00Z".parse().unwrap());
        {
            let transaction = store.database.begin_write().unwrap();
            clear_day(&transaction, partners[0], tampered_day).unwrap();
            transaction.commit().unwrap();
        }
        assert!(
            !store
                .verify_rollups(partners[0], from, to)
                .await
                .unwrap()
                .is_empty()
        );

        let rebuilt = rebuild(&store.database, partners[0], from, to).unwrap();
        assert_eq!(
            rebuilt,
            Rebuilt {
                events: 240,
                days: 40
            },
            "one transaction per day with events, none for the empty ones"
        );
        for partner in &partners {
            assert_eq!(store.verify_rollups(*partner, from, to).await.unwrap(), []);
        }
    }
}
