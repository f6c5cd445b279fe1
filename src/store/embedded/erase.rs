//! Erasing events from some hours of the embedded store: a person's (an erasure) or all
//! of them (their retention has passed), in steps that each leave the store consistent,
//! so a crash between them loses nothing:
//! 1. a read transaction finds up to `DELETES_PER_TRANSACTION` of the hour's events that
//!    go (ingestion goes on);
//! 2. a short write transaction deletes them from the events tables and the id index,
//!    takes their counts off the hour and day cells (counts subtract exactly), drops the
//!    hour's sketches they were counted in (a sketch cannot forget a member) with the day
//!    sketches rebuilt from the hours left, marks the hour for folding, holds reports'
//!    `dataAsOf` back until it is, and adds what it did to the erasure's record;
//! 3. once every hour is done, they are folded at once: breakdown cells, postings and
//!    sketches recounted from the events left, an ended day's hours with the day (visits,
//!    pages) from one recount of it (`breakdowns_day_fold`). A fold that finds an hour
//!    written to meanwhile leaves it to the settler, which folds every marked hour anyway,
//!    crash or not.

use std::collections::{BTreeSet, HashMap};

use chrono::Utc;
use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};
use uuid::Uuid;

use super::breakdowns::{decode_stamp, hour_key, touch};
use super::breakdowns_day_fold::fold_ended_day;
use super::breakdowns_fold::fold_hour;
use super::events::event_tables;
use super::rollup_sketches::refresh_day_sketch;
use super::rollups::{DAYS, HOURS, Level, cell_key, decode_count, sketch_key};
use super::rollups_repair::day_after;
use super::{
    BREAKDOWN_MARKS, EVENTS_BY_PARTNER, anonymous_hours, keys, lifecycle, rows, storage_error,
};
use crate::model::{Erasure, Event};
use crate::rollups::{Hour, RollupDelta};
use crate::store::{Erased, StoreError};

/// Folds tried for an hour a concurrent write keeps touching, before the settler is left
/// to fold it.
const FOLD_ATTEMPTS: usize = 3;
/// Events deleted per write transaction, so a large hour never holds the writers long.
const DELETES_PER_TRANSACTION: usize = 5_000;

/// Events found to delete: their keys, and the events (without payload).
type Found = Vec<(Vec<u8>, Event)>;

/// Which events of the hours go.
#[derive(Clone, Copy)]
pub(super) enum Doomed<'a> {
    /// Those an erasure covers; what is done is added to its record.
    Covered(&'a Erasure),
    /// All of them (their retention has passed).
    All,
}

impl Doomed<'_> {
    fn takes(self, view: &rows::RowView<'_>) -> bool {
        match self {
            Doomed::Covered(erasure) => erasure.covers(view.user_id(), view.anonymous_id()),
            Doomed::All => true,
        }
    }
}

/// Erases the `doomed` events of `hours`, a bounded transaction at a time, then folds
/// those hours (and their ended days).
pub(super) fn erase_hours(
    database: &Database,
    partner: Uuid,
    hours: &[Hour],
    doomed: Doomed<'_>,
) -> Result<Erased, StoreError> {
    let mut erased = Erased::default();
    let mut touched = BTreeSet::new();
    for hour in hours {
        let mut after = None;
        loop {
            let (found, last) = doomed_events(database, partner, *hour, doomed, after)?;
            if found.is_empty() {
                break;
            }
            let transaction = database.begin_write().map_err(storage_error)?;
            let deleted = delete_events(&transaction, &found)?;
            let mut done = Erased {
                events: deleted.len() as u64,
                hours: 0,
            };
            if !deleted.is_empty() {
                done.hours = u64::from(touched.insert(*hour));
                let mut delta = RollupDelta::default();
                deleted.iter().for_each(|event| delta.add(event));
                subtract(&transaction, &delta)?;
                let now = Utc::now();
                touch(&transaction, &BTreeSet::from([(partner, *hour)]), now)?;
                anonymous_hours::hold_back(&transaction, partner, [*hour], now)?;
                if let Doomed::Covered(erasure) = doomed {
                    lifecycle::add_progress(&transaction, erasure, done)?;
                }
            }
            transaction.commit().map_err(storage_error)?;
            erased.events += done.events;
            erased.hours += done.hours;
            after = Some(last);
        }
    }
    fold_now(database, partner, &touched)?;
    Ok(erased)
}

/// Up to `DELETES_PER_TRANSACTION` keys and events (without payload) of `hour` that go,
/// after the key `after`; and the last key read.
fn doomed_events(
    database: &Database,
    partner: Uuid,
    hour: Hour,
    doomed: Doomed<'_>,
    after: Option<Vec<u8>>,
) -> Result<(Found, Vec<u8>), StoreError> {
    let transaction = database.begin_read().map_err(storage_error)?;
    let events = transaction
        .open_table(EVENTS_BY_PARTNER)
        .map_err(storage_error)?;
    let range = keys::time_range(partner, hour.start(), hour.next().start(), None)?;
    let start = match after {
        Some(last) => std::ops::Bound::Excluded(last),
        None => range.0,
    };
    let mut found = Vec::new();
    let mut last = Vec::new();
    for row in events
        .range::<&[u8]>(keys::borrowed(&(start, range.1)))
        .map_err(storage_error)?
    {
        let (key, value) = row.map_err(storage_error)?;
        let (micros, id_bytes) = keys::split_event_key(key.value())?;
        let view = rows::view(micros, value.value())?;
        last = key.value().to_vec();
        if Hour::of(view.timestamp()) == hour && doomed.takes(&view) {
            let parts = rows::KeyParts {
                partner_id: partner,
                micros,
                event_id: rows::event_id_from_bytes(id_bytes)?,
            };
            found.push((last.clone(), view.into_event(parts, false)?));
            if found.len() == DELETES_PER_TRANSACTION {
                break;
            }
        }
    }
    Ok((found, last))
}

/// Deletes the events found (those still there) from both events tables and the id
/// index; the events deleted.
fn delete_events(transaction: &WriteTransaction, found: &Found) -> Result<Vec<Event>, StoreError> {
    let (mut by_partner, mut by_subsystem, mut event_ids) = event_tables(transaction)?;
    let mut deleted = Vec::with_capacity(found.len());
    for (key, event) in found {
        if by_partner
            .remove(key.as_slice())
            .map_err(storage_error)?
            .is_none()
        {
            continue; // erased by an earlier round
        }
        let subsystem_key = keys::reowned(event.subsystem_id, key);
        by_subsystem
            .remove(subsystem_key.as_slice())
            .map_err(storage_error)?;
        let id_key = keys::prefixed(event.partner_id, &rows::event_id_bytes(&event.event_id));
        event_ids.remove(id_key.as_slice()).map_err(storage_error)?;
        deleted.push(event.clone());
    }
    Ok(deleted)
}

/// Takes `delta`'s counts off the hour and day cells, and drops the hour sketches it
/// names (their folds recount them), rebuilding their day sketches from the hours left.
fn subtract(transaction: &WriteTransaction, delta: &RollupDelta) -> Result<(), StoreError> {
    subtract_counts(transaction, HOURS, delta)?;
    subtract_counts(transaction, DAYS, &delta.by_day())?;
    let (_, mut hours) = HOURS.open(transaction)?;
    let (_, mut days) = DAYS.open(transaction)?;
    for key in delta.actors.keys() {
        hours
            .remove(sketch_key(key).as_slice())
            .map_err(storage_error)?;
        refresh_day_sketch(&hours, &mut days, key)?;
    }
    Ok(())
}

fn subtract_counts(
    transaction: &WriteTransaction,
    level: Level,
    delta: &RollupDelta,
) -> Result<(), StoreError> {
    let (mut cells, _) = level.open(transaction)?;
    for ((partner, hour), counts) in &delta.counts {
        for (cell, count) in counts {
            let key = cell_key(*partner, *hour, cell);
            let stored = match cells.get(key.as_slice()).map_err(storage_error)? {
                Some(stored) => decode_count(stored.value())?,
                None => 0,
            };
            match stored.saturating_sub(*count) {
                0 => cells.remove(key.as_slice()).map(drop),
                left => cells
                    .insert(key.as_slice(), left.to_be_bytes().as_slice())
                    .map(drop),
            }
            .map_err(storage_error)?;
        }
    }
    Ok(())
}

/// Folds `hours` now, whatever their age: those of ended days with their day, from one
/// recount of it, the others one by one. What a concurrent write keeps from folding is
/// left to the settler.
pub(super) fn fold_now(
    database: &Database,
    partner: Uuid,
    hours: &BTreeSet<Hour>,
) -> Result<(), StoreError> {
    let mut declared = HashMap::new();
    let days: BTreeSet<Hour> = hours.iter().map(|hour| hour.day()).collect();
    for day in days {
        let of_day = hours.iter().filter(|hour| hour.day() == day);
        fold_day_now(database, partner, (day, of_day), &mut declared)?;
    }
    Ok(())
}

fn fold_day_now<'a>(
    database: &Database,
    partner: Uuid,
    (day, hours): (Hour, impl Iterator<Item = &'a Hour>),
    declared: &mut HashMap<Uuid, Vec<String>>,
) -> Result<(), StoreError> {
    if day_after(day).start() <= Utc::now() {
        for _ in 0..FOLD_ATTEMPTS {
            let folded = fold_ended_day(database, partner, day, u64::MAX, declared)?;
            if folded.is_none_or(|folded| folded.current) {
                break;
            }
        }
        return Ok(());
    }
    for hour in hours {
        for _ in 0..FOLD_ATTEMPTS {
            let Some(mark) = mark_of(database, partner, *hour)? else {
                break;
            };
            if fold_hour(database, partner, *hour, mark, declared)? {
                break;
            }
        }
    }
    Ok(())
}

fn mark_of(database: &Database, partner: Uuid, hour: Hour) -> Result<Option<u64>, StoreError> {
    let transaction = database.begin_read().map_err(storage_error)?;
    let table = transaction
        .open_table(BREAKDOWN_MARKS)
        .map_err(storage_error)?;
    let stored = table
        .get(hour_key(partner, hour).as_slice())
        .map_err(storage_error)?;
    stored.map(|stamp| decode_stamp(stamp.value())).transpose()
}
