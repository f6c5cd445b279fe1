//! Rollups in the embedded store, written in the transaction that inserts the events they
//! count, so they can't disagree with the events, whatever fails.
//! - `rollup_counts`: `partner | hour` → the hour's `HourCounts` (postcard);
//! - `rollup_sketches`: `owner | type | hour` → that hour's actor sketch, where `type` is
//!   the event type with a two-byte length before it (length 0: all types), so one range
//!   read returns one owner's sketches of one type, hour by hour;
//! - `rollup_day_counts` and `rollup_day_sketches`: the same per UTC day (keyed by its
//!   first hour), so a 30-day report merges 30 sketches rather than 720.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use redb::{ReadableTable, Table as WriteTable};
use uuid::Uuid;

use super::{
    EVENTS_BY_PARTNER, ROLLUP_COUNTS, ROLLUP_DAY_COUNTS, ROLLUP_DAY_SKETCHES, ROLLUP_SKETCHES,
    Table, keys, rows, storage_error,
};
use crate::model::Event;
use crate::rollups::{
    ActorSketch, CountCell, HOURS_PER_DAY, Hour, HourCounts, HourRollup, RollupDelta,
    RollupDifference, RollupQuery, SketchKey, differences, runs,
};
use crate::store::StoreError;

type RollupTable<'txn> = WriteTable<'txn, &'static [u8], &'static [u8]>;

fn counts_key(partner: Uuid, hour: Hour) -> Vec<u8> {
    keys::prefixed(partner, &hour.to_be_bytes())
}

fn sketch_prefix(owner: Uuid, event_type: Option<&str>) -> Vec<u8> {
    let name = event_type.unwrap_or_default().as_bytes();
    let length = u16::try_from(name.len()).expect("event types are at most 200 characters");
    let mut key = keys::prefixed(owner, &length.to_be_bytes());
    key.extend_from_slice(name);
    key
}

fn sketch_key(key: &SketchKey) -> Vec<u8> {
    let mut bytes = sketch_prefix(key.owner, key.event_type.as_deref());
    bytes.extend_from_slice(&key.hour.to_be_bytes());
    bytes
}

/// The hour at the end of a rollup key.
fn hour_of(key: &[u8]) -> Result<Hour, StoreError> {
    let tail = key
        .len()
        .checked_sub(4)
        .map(|start| &key[start..])
        .ok_or_else(|| StoreError::Corrupt("a rollup key that is too short".into()))?;
    Ok(Hour(u32::from_be_bytes(
        tail.try_into().expect("four bytes"),
    )))
}

fn decode_counts(bytes: &[u8]) -> Result<HourCounts, StoreError> {
    postcard::from_bytes(bytes).map_err(|error| StoreError::Corrupt(error.to_string()))
}

fn encode_counts(counts: &HourCounts) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(counts).map_err(|error| StoreError::Corrupt(error.to_string()))
}

fn decode_sketch(bytes: &[u8]) -> Result<ActorSketch, StoreError> {
    ActorSketch::from_bytes(bytes).map_err(StoreError::Corrupt)
}

/// A grain of rollups: its two tables, and what a delta of hours becomes in it.
#[derive(Clone, Copy)]
struct Level {
    counts: Table,
    sketches: Table,
}

impl Level {
    fn open<'txn>(
        self,
        transaction: &'txn redb::WriteTransaction,
    ) -> Result<(RollupTable<'txn>, RollupTable<'txn>), StoreError> {
        Ok((
            transaction.open_table(self.counts).map_err(storage_error)?,
            transaction
                .open_table(self.sketches)
                .map_err(storage_error)?,
        ))
    }
}

const HOURS: Level = Level {
    counts: ROLLUP_COUNTS,
    sketches: ROLLUP_SKETCHES,
};
const DAYS: Level = Level {
    counts: ROLLUP_DAY_COUNTS,
    sketches: ROLLUP_DAY_SKETCHES,
};

/// Adds what a batch of inserted events contributes, to hours and days.
pub(super) fn apply(
    transaction: &redb::WriteTransaction,
    delta: &RollupDelta,
) -> Result<(), StoreError> {
    apply_level(transaction, HOURS, delta)?;
    apply_level(transaction, DAYS, &delta.by_day())
}

fn apply_level(
    transaction: &redb::WriteTransaction,
    level: Level,
    delta: &RollupDelta,
) -> Result<(), StoreError> {
    let (mut counts, mut sketches) = level.open(transaction)?;
    add(delta, &mut counts, &mut sketches)
}

fn add(
    delta: &RollupDelta,
    counts: &mut RollupTable<'_>,
    sketches: &mut RollupTable<'_>,
) -> Result<(), StoreError> {
    for ((partner, hour), cells) in &delta.counts {
        let key = counts_key(*partner, *hour);
        let mut hour_counts = match counts.get(key.as_slice()).map_err(storage_error)? {
            Some(stored) => decode_counts(stored.value())?,
            None => HourCounts::default(),
        };
        hour_counts.add(cells);
        counts
            .insert(key.as_slice(), encode_counts(&hour_counts)?.as_slice())
            .map_err(storage_error)?;
    }
    for (sketch_key_parts, coupons) in &delta.actors {
        let key = sketch_key(sketch_key_parts);
        let mut sketch = match sketches.get(key.as_slice()).map_err(storage_error)? {
            Some(stored) => decode_sketch(stored.value())?,
            None => ActorSketch::default(),
        };
        coupons.iter().for_each(|coupon| sketch.add(*coupon));
        sketches
            .insert(key.as_slice(), sketch.to_bytes().as_slice())
            .map_err(storage_error)?;
    }
    Ok(())
}

/// The whole hours of `query` that have events, its `whole_days` as one rollup each.
pub(super) fn read(
    transaction: &redb::ReadTransaction,
    query: &RollupQuery,
) -> Result<Vec<HourRollup>, StoreError> {
    let mut rollups = Vec::new();
    for run in runs(query.from, query.to, &query.whole_days) {
        let level = if run.days { DAYS } else { HOURS };
        let counts = transaction
            .open_table(level.counts)
            .map_err(storage_error)?;
        let sketches = transaction
            .open_table(level.sketches)
            .map_err(storage_error)?;
        let part = RollupQuery {
            from: run.from,
            to: run.to,
            ..query.clone()
        };
        rollups.extend(read_level(&counts, &sketches, &part)?);
    }
    Ok(rollups)
}

fn read_level(
    counts: &impl ReadableTable<&'static [u8], &'static [u8]>,
    sketches: &impl ReadableTable<&'static [u8], &'static [u8]>,
    query: &RollupQuery,
) -> Result<Vec<HourRollup>, StoreError> {
    let start = counts_key(query.partner_id, query.from);
    let end = counts_key(query.partner_id, query.to);
    let mut hours: BTreeMap<Hour, HourRollup> = BTreeMap::new();
    for row in counts
        .range::<&[u8]>(start.as_slice()..end.as_slice())
        .map_err(storage_error)?
    {
        let (key, value) = row.map_err(storage_error)?;
        let hour = hour_of(key.value())?;
        let cells: Vec<CountCell> = decode_counts(value.value())?
            .cells
            .into_iter()
            .filter(|cell| query.wants(cell))
            .collect();
        if !cells.is_empty() {
            hours.insert(
                hour,
                HourRollup {
                    hour,
                    cells,
                    actors: None,
                },
            );
        }
    }
    let prefix = sketch_prefix(query.sketch_owner(), query.event_type.as_deref());
    let mut start = prefix.clone();
    start.extend_from_slice(&query.from.to_be_bytes());
    let mut end = prefix;
    end.extend_from_slice(&query.to.to_be_bytes());
    for row in sketches
        .range::<&[u8]>(start.as_slice()..end.as_slice())
        .map_err(storage_error)?
    {
        let (key, value) = row.map_err(storage_error)?;
        if let Some(rollup) = hours.get_mut(&hour_of(key.value())?) {
            rollup.actors = Some(decode_sketch(value.value())?);
        }
    }
    Ok(hours.into_values().collect())
}

/// The rollups a recount of a partner's raw events gives for hours `from..to`.
pub(super) fn recount(
    events: &impl ReadableTable<&'static [u8], &'static [u8]>,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<RollupDelta, StoreError> {
    let range = keys::time_range(partner, from.start(), to.start(), None)?;
    let mut delta = RollupDelta::default();
    for row in events
        .range::<&[u8]>(keys::borrowed(&range))
        .map_err(storage_error)?
    {
        let (key, value) = row.map_err(storage_error)?;
        delta.add(&decode_event(partner, key.value(), value.value())?);
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

/// A partner's stored counts for hours `from..to`.
pub(super) fn stored_counts(
    counts: &impl ReadableTable<&'static [u8], &'static [u8]>,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<BTreeMap<Hour, HourCounts>, StoreError> {
    let start = counts_key(partner, from);
    let end = counts_key(partner, to);
    let mut stored = BTreeMap::new();
    for row in counts
        .range::<&[u8]>(start.as_slice()..end.as_slice())
        .map_err(storage_error)?
    {
        let (key, value) = row.map_err(storage_error)?;
        stored.insert(hour_of(key.value())?, decode_counts(value.value())?);
    }
    Ok(stored)
}

/// The whole UTC days covering `from..to`.
fn whole_days(from: Hour, to: Hour) -> (Hour, Hour) {
    let end = if to.starts_day() {
        to
    } else {
        Hour(to.day().0.saturating_add(HOURS_PER_DAY))
    };
    (from.day(), end)
}

/// Replaces a partner's rollups for the days covering hours `from..to` with a recount of
/// its raw events; the recount.
pub(super) fn rebuild(
    transaction: &redb::WriteTransaction,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<RollupDelta, StoreError> {
    let (from, to) = whole_days(from, to);
    let delta = recount(
        &transaction
            .open_table(EVENTS_BY_PARTNER)
            .map_err(storage_error)?,
        partner,
        from,
        to,
    )?;
    let by_day = delta.by_day();
    for (level, level_delta) in [(HOURS, &delta), (DAYS, &by_day)] {
        clear(transaction, level, partner, (from, to), level_delta)?;
        apply_level(transaction, level, level_delta)?;
    }
    Ok(delta)
}

/// Deletes a partner's rollups of one level in hours `from..to`.
fn clear(
    transaction: &redb::WriteTransaction,
    level: Level,
    partner: Uuid,
    (from, to): (Hour, Hour),
    delta: &RollupDelta,
) -> Result<(), StoreError> {
    let (mut counts, mut sketches) = level.open(transaction)?;
    // Sketches exist only beside counts: their owners are the partner and the subsystems
    // its counted cells (stale or fresh) name.
    let mut owners: BTreeSet<Uuid> = BTreeSet::from([partner]);
    for hour_counts in stored_counts(&counts, partner, from, to)?.values() {
        owners.extend(hour_counts.cells.iter().map(|cell| cell.subsystem_id));
    }
    owners.extend(delta.actors.keys().map(|key| key.owner));
    let start = counts_key(partner, from);
    let end = counts_key(partner, to);
    counts
        .retain_in::<&[u8], _>(start.as_slice()..end.as_slice(), |_, _| false)
        .map_err(storage_error)?;
    for owner in owners {
        let range = keys::owner_range(owner);
        let stale: Vec<Vec<u8>> = sketches
            .range::<&[u8]>(keys::borrowed(&range))
            .map_err(storage_error)?
            .filter_map(|row| {
                let (key, _) = row.ok()?;
                let hour = hour_of(key.value()).ok()?;
                (from <= hour && hour < to).then(|| key.value().to_vec())
            })
            .collect();
        for key in stale {
            sketches.remove(key.as_slice()).map_err(storage_error)?;
        }
    }
    Ok(())
}

/// The hours of `from..to`, and the days covering them, whose stored counts differ from a
/// recount of the partner's raw events.
pub(super) fn verify(
    transaction: &redb::ReadTransaction,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<Vec<RollupDifference>, StoreError> {
    let (first_day, past_days) = whole_days(from, to);
    let events = transaction
        .open_table(EVENTS_BY_PARTNER)
        .map_err(storage_error)?;
    let recounted = recount(&events, partner, first_day, past_days)?;
    let mut hours = recounted.counts_of(partner);
    hours.retain(|hour, _| from <= *hour && *hour < to);
    let stored = |table| -> Result<_, StoreError> {
        let counts = transaction.open_table(table).map_err(storage_error)?;
        stored_counts(&counts, partner, first_day, past_days)
    };
    let mut stored_hours = stored(HOURS.counts)?;
    stored_hours.retain(|hour, _| from <= *hour && *hour < to);
    let mut found = differences(&stored_hours, &hours);
    let days = differences(
        &stored(DAYS.counts)?,
        &recounted.by_day().counts_of(partner),
    );
    found.extend(days.into_iter().map(|difference| RollupDifference {
        hours: HOURS_PER_DAY,
        ..difference
    }));
    Ok(found)
}

/// Every partner with events, for rebuilding a whole store.
pub(super) fn partners_with_events(
    events: &impl ReadableTable<&'static [u8], &'static [u8]>,
) -> Result<Vec<Uuid>, StoreError> {
    let mut partners = Vec::new();
    let mut next: Bound<Vec<u8>> = Bound::Unbounded;
    loop {
        let range = (next.as_ref().map(Vec::as_slice), Bound::Unbounded);
        let Some(row) = events.range::<&[u8]>(range).map_err(storage_error)?.next() else {
            return Ok(partners);
        };
        let (key, _) = row.map_err(storage_error)?;
        let owner = Uuid::from_slice(&key.value()[..16])
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        partners.push(owner);
        next = match keys::owner_range(owner).1 {
            Bound::Excluded(past) => Bound::Included(past),
            _ => return Ok(partners),
        };
    }
}

/// Rebuilds every partner's rollups from its events; the number of events counted.
pub(super) fn rebuild_all(transaction: &redb::WriteTransaction) -> Result<u64, StoreError> {
    let partners = partners_with_events(
        &transaction
            .open_table(EVENTS_BY_PARTNER)
            .map_err(storage_error)?,
    )?;
    let mut events = 0;
    for partner in partners {
        let delta = rebuild(transaction, partner, Hour(0), Hour(u32::MAX).day())?;
        events += delta
            .counts
            .values()
            .flat_map(|cells| cells.values())
            .sum::<u64>();
    }
    Ok(events)
}
