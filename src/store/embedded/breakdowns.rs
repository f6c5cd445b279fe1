//! Breakdown cells in the embedded store (docs/BREAKDOWNS.md, "What a store does with it").
//! The events' write transaction only marks the partner-hours it wrote into (`touch`):
//! applying a batch to the cells would cost tens of µs per event, so `breakdowns_fold`
//! recounts an hour from its stored events once no write has touched it for
//! `store.breakdown_settle`, and an ended UTC day once all its hours are folded.
//! - `breakdown_cells`: `partner | grain | name length | CellName bytes | hour | part` →
//!   one part of the cell's `ValueTable` (`split` at `BREAKDOWN_ROW_BYTES`), so one cell's
//!   hours (or days) over a range are one range scan;
//! - `breakdown_folds`: `partner | grain | hour` → the names of the cells the last fold of
//!   that hour (or day, by its first hour) wrote: the hour is folded, and the next fold
//!   knows which cells to replace;
//! - `breakdown_marks`: `partner | hour` → a stamp (the instant of the last write into the
//!   hour since its fold, in µs, strictly increasing per entry): the hour is unsettled;
//! - `breakdown_days_pending`: `partner | day` → a stamp set when one of the day's hours is
//!   (re)folded: the day's cells are not current until the day is refolded.
//!
//! A fold removes a mark (or pending day) only if its stamp is the one it read before
//! recounting, in the transaction that writes the cells: a write in between keeps it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use redb::{ReadableTable, WriteTransaction};
use uuid::Uuid;

use super::rollups_repair::{Readable, day_after};
use super::{
    BREAKDOWN_CELLS, BREAKDOWN_DAYS_PENDING, BREAKDOWN_FOLDS, BREAKDOWN_MARKS, keys, storage_error,
};
use crate::rollups::{BreakdownQuery, BreakdownRead, EncodedTable, Hour};
use crate::store::StoreError;

/// The most bytes one stored row of a breakdown cell holds: a table past it is cut into
/// parts (`ValueTable::split`; any limit from 16 KiB holds a dense sketch). Small enough
/// that redb keeps rows in ordinary pages and a read decodes only the rows it asks for,
/// large enough that a typical cell (a few thousand values) is one row.
pub(super) const BREAKDOWN_ROW_BYTES: usize = 256 * 1024;

const OWNER_LEN: usize = 16;
const HOUR_LEN: usize = 4;
const PART_LEN: usize = 2;

/// Which cells: an hour's, or a UTC day's (keyed by its first hour).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Grain {
    Hour = 0,
    Day = 1,
}

/// `partner | grain | name length | name`: the start of one cell's rows.
pub(super) fn cell_prefix(partner: Uuid, grain: Grain, name: &[u8]) -> Vec<u8> {
    let length = u16::try_from(name.len()).expect("a cell name is far below 64 KiB");
    let mut key = keys::prefixed(partner, &[grain as u8]);
    key.extend_from_slice(&length.to_be_bytes());
    key.extend_from_slice(name);
    key
}

pub(super) fn cell_key(prefix: &[u8], hour: Hour, part: u16) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + HOUR_LEN + PART_LEN);
    key.extend_from_slice(prefix);
    key.extend_from_slice(&hour.to_be_bytes());
    key.extend_from_slice(&part.to_be_bytes());
    key
}

/// `partner | grain | hour`.
pub(super) fn fold_key(partner: Uuid, grain: Grain, hour: Hour) -> Vec<u8> {
    let mut key = keys::prefixed(partner, &[grain as u8]);
    key.extend_from_slice(&hour.to_be_bytes());
    key
}

/// `partner | hour` (marks and pending days).
pub(super) fn hour_key(partner: Uuid, hour: Hour) -> Vec<u8> {
    keys::prefixed(partner, &hour.to_be_bytes())
}

/// The hour (and owner) of a key ending in `hour` or `hour | part`.
pub(super) fn hour_at(key: &[u8], end_len: usize) -> Result<Hour, StoreError> {
    let end = key
        .len()
        .checked_sub(end_len)
        .filter(|end| *end >= HOUR_LEN)
        .ok_or_else(|| StoreError::Corrupt("a breakdown key that is too short".into()))?;
    let bytes: [u8; HOUR_LEN] = key[end - HOUR_LEN..end].try_into().expect("four bytes");
    Ok(Hour(u32::from_be_bytes(bytes)))
}

pub(super) fn owner_of(key: &[u8]) -> Result<Uuid, StoreError> {
    key.get(..OWNER_LEN)
        .and_then(|bytes| Uuid::from_slice(bytes).ok())
        .ok_or_else(|| StoreError::Corrupt("a breakdown key without its partner".into()))
}

pub(super) fn decode_stamp(bytes: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("a breakdown stamp that is not eight bytes".into()))?;
    Ok(u64::from_be_bytes(bytes))
}

pub(super) fn micros(instant: DateTime<Utc>) -> u64 {
    u64::try_from(instant.timestamp_micros()).unwrap_or(0)
}

/// Sets the stamp at `key` to `now`, or just past the stamp it held if that is not older
/// (so every touch changes it, whatever the clock does); the stamp set.
pub(super) fn stamp(
    table: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
    key: &[u8],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let previous = match table.get(key).map_err(storage_error)? {
        Some(stored) => Some(decode_stamp(stored.value())?),
        None => None,
    };
    let value = previous
        .map_or(0, |stored| stored.saturating_add(1))
        .max(micros(now));
    table
        .insert(key, value.to_be_bytes().as_slice())
        .map_err(storage_error)?;
    Ok(value)
}

/// In the events' transaction: marks each partner-hour the batch inserted events into
/// (one entry per partner-hour, not per event).
pub(super) fn touch(
    transaction: &WriteTransaction,
    hours: &BTreeSet<(Uuid, Hour)>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut marks = transaction
        .open_table(BREAKDOWN_MARKS)
        .map_err(storage_error)?;
    for (partner, hour) in hours {
        stamp(&mut marks, &hour_key(*partner, *hour), now)?;
    }
    Ok(())
}

/// The partner's marked (unsettled) hours in `from..to`.
pub(super) fn marked_hours(
    marks: &impl Readable,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<BTreeSet<Hour>, StoreError> {
    Ok(marks_in(marks, partner, from, to)?.into_keys().collect())
}

/// The marked hours of `from..to` with their stamps.
pub(super) fn marks_in(
    marks: &impl Readable,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<BTreeMap<Hour, u64>, StoreError> {
    let (start, end) = (hour_key(partner, from), hour_key(partner, to));
    let mut hours = BTreeMap::new();
    for row in marks
        .range::<&[u8]>(start.as_slice()..end.as_slice())
        .map_err(storage_error)?
    {
        let (key, stamp) = row.map_err(storage_error)?;
        hours.insert(hour_at(key.value(), 0)?, decode_stamp(stamp.value())?);
    }
    Ok(hours)
}

/// The joined tables of one cell over hours (or days) `from..to`, by hour.
#[cfg(test)]
pub(super) fn read_cell(
    cells: &impl Readable,
    prefix: &[u8],
    from: Hour,
    to: Hour,
) -> Result<BTreeMap<Hour, crate::rollups::ValueTable>, StoreError> {
    let encoded = read_encoded_cell(cells, prefix, from, to)?;
    let decode = |(hour, table): (Hour, EncodedTable)| Ok((hour, table.decode()?));
    encoded
        .into_iter()
        .map(decode)
        .collect::<Result<_, String>>()
        .map_err(StoreError::Corrupt)
}

/// The same, left encoded (what a report reads: it decodes only what it lists). The rows
/// are copied: a page guard must not outlive its read transaction (a later write may free
/// the page).
pub(super) fn read_encoded_cell(
    cells: &impl Readable,
    prefix: &[u8],
    from: Hour,
    to: Hour,
) -> Result<BTreeMap<Hour, EncodedTable>, StoreError> {
    let (start, end) = (cell_key(prefix, from, 0), cell_key(prefix, to, 0));
    let mut parts: BTreeMap<Hour, Vec<Vec<u8>>> = BTreeMap::new();
    for row in cells
        .range::<&[u8]>(start.as_slice()..end.as_slice())
        .map_err(storage_error)?
    {
        let (key, value) = row.map_err(storage_error)?;
        parts
            .entry(hour_at(key.value(), PART_LEN)?)
            .or_default()
            .push(value.value().to_vec());
    }
    Ok(parts
        .into_iter()
        .map(|(hour, parts)| (hour, EncodedTable::from_parts(parts)))
        .collect())
}

/// Whether the day's cells are current: folded, with no hour refolded since (pending) and
/// none written to since its fold (marked).
pub(super) fn day_current(
    folds: &impl Readable,
    pending: &impl Readable,
    marks: &impl Readable,
    partner: Uuid,
    day: Hour,
) -> Result<bool, StoreError> {
    let folded = folds
        .get(fold_key(partner, Grain::Day, day).as_slice())
        .map_err(storage_error)?
        .is_some();
    let refolded = pending
        .get(hour_key(partner, day).as_slice())
        .map_err(storage_error)?
        .is_some();
    Ok(folded && !refolded && marked_hours(marks, partner, day, day_after(day))?.is_empty())
}

/// What `BreakdownStore::breakdown_cells` answers: every name's cells from one read
/// transaction, so all of them see the same folds.
pub(super) fn read(
    transaction: &redb::ReadTransaction,
    query: &BreakdownQuery,
) -> Result<BreakdownRead, StoreError> {
    let open = |table| transaction.open_table(table).map_err(storage_error);
    let (cells, folds) = (open(BREAKDOWN_CELLS)?, open(BREAKDOWN_FOLDS)?);
    let (marks, pending) = (open(BREAKDOWN_MARKS)?, open(BREAKDOWN_DAYS_PENDING)?);
    let partner = query.partner_id;
    let unsettled = marked_hours(&marks, partner, query.from, query.to)?;
    let mut covered = Vec::new();
    let inside = |day: &&Hour| day.starts_day() && day_after(**day) <= query.to;
    for day in query.whole_days.range(query.from..).filter(inside) {
        if day_current(&folds, &pending, &marks, partner, *day)? {
            covered.push(*day);
        }
    }
    let stretches = uncovered(query.from, query.to, &covered);
    let mut tables = Vec::with_capacity(query.names.len());
    for name in &query.names {
        let name = name.to_bytes();
        let mut read = Vec::new();
        let day_prefix = cell_prefix(partner, Grain::Day, &name);
        for day in &covered {
            read.extend(read_encoded_cell(&cells, &day_prefix, *day, day.next())?);
        }
        let hour_prefix = cell_prefix(partner, Grain::Hour, &name);
        for (from, to) in &stretches {
            let hours = read_encoded_cell(&cells, &hour_prefix, *from, *to)?;
            read.extend(
                hours
                    .into_iter()
                    .filter(|(hour, _)| !unsettled.contains(hour)),
            );
        }
        tables.push(read);
    }
    Ok(BreakdownRead {
        tables,
        days: covered.into_iter().collect(),
        unsettled,
    })
}

/// The stretches of `from..to` outside the (ordered) days `covered`.
fn uncovered(from: Hour, to: Hour, covered: &[Hour]) -> Vec<(Hour, Hour)> {
    let mut stretches = Vec::new();
    let mut start = from;
    for day in covered {
        if start < *day {
            stretches.push((start, *day));
        }
        start = day_after(*day);
    }
    if start < to {
        stretches.push((start, to));
    }
    stretches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cells_hours_sort_together_and_decode_to_their_hour() {
        let partner = Uuid::from_u128(7);
        let page = cell_prefix(partner, Grain::Hour, b"page");
        let pages = cell_prefix(partner, Grain::Hour, b"pages");
        assert!(cell_key(&page, Hour(9), 3) < cell_key(&page, Hour(10), 0));
        // The length before the name keeps `page` apart from `pages`, whatever the hour.
        assert!(cell_key(&page, Hour(u32::MAX), 9) < cell_key(&pages, Hour(0), 0));
        assert_eq!(
            hour_at(&cell_key(&page, Hour(42), 1), PART_LEN).unwrap(),
            Hour(42)
        );
        assert_eq!(hour_at(&hour_key(partner, Hour(5)), 0).unwrap(), Hour(5));
        assert_eq!(owner_of(&hour_key(partner, Hour(5))).unwrap(), partner);
    }

    #[test]
    fn covered_days_split_a_range_into_the_hours_around_them() {
        let (day, next) = (Hour(48), Hour(72));
        assert_eq!(
            uncovered(Hour(40), Hour(100), &[day, next]),
            [(Hour(40), day), (Hour(96), Hour(100))]
        );
        assert_eq!(uncovered(Hour(48), Hour(72), &[day]), []);
        assert_eq!(uncovered(Hour(1), Hour(2), &[]), [(Hour(1), Hour(2))]);
    }
}
