//! Rollups in the embedded store, written in the transaction that inserts the events they
//! count, so they can't disagree with the events, whatever fails.
//! - `rollup_cells`: `partner | hour | subsystem | validity | event type` → the cell's
//!   count (u64, big-endian). One entry per cell, so a batch reads and writes only the
//!   cells it adds to, however many event types its hours hold (layout 5; before it, one
//!   row per hour held every cell of the hour and each batch rewrote it whole);
//! - `rollup_sketches`: `owner | type | hour` → that hour's actor sketch, where `type` is
//!   the event type with a two-byte length before it (length 0: all types), so one range
//!   read returns one owner's sketches of one type, hour by hour;
//! - `rollup_day_cells` and `rollup_day_sketches`: the same per UTC day (keyed by its
//!   first hour), so a 30-day report merges 30 sketches rather than 720.
//!
//! Rebuilding and verifying them from the raw events is `rollups_repair`.

use std::collections::BTreeMap;

use redb::{ReadableTable, Table as WriteTable};
use uuid::Uuid;

use super::{
    ROLLUP_CELLS, ROLLUP_DAY_CELLS, ROLLUP_DAY_SKETCHES, ROLLUP_SKETCHES, Table, keys,
    storage_error,
};
use crate::rollups::{
    ActorSketch, ActorUnion, CountCell, Hour, HourCounts, HourRollup, RollupDelta, RollupQuery,
    SketchKey, class_byte, runs, split_class,
};
use crate::store::StoreError;

pub(super) type RollupTable<'txn> = WriteTable<'txn, &'static [u8], &'static [u8]>;
/// (subsystem, event type, validity, bot): what a cell counts within a partner-hour.
pub(super) type CellKey = (Uuid, String, bool, bool);

const OWNER_LEN: usize = 16;
const HOUR_LEN: usize = 4;
/// `partner | hour | subsystem | class`, before the event type (class: `class_byte`, so
/// cells written before the bot partition, with a validity byte, read as humans').
const CELL_FIXED_LEN: usize = OWNER_LEN + HOUR_LEN + OWNER_LEN + 1;

/// `partner | hour`: the start of an hour's cells.
pub(super) fn hour_prefix(partner: Uuid, hour: Hour) -> Vec<u8> {
    keys::prefixed(partner, &hour.to_be_bytes())
}

pub(super) fn cell_key(
    partner: Uuid,
    hour: Hour,
    (subsystem, event_type, is_valid, is_bot): &CellKey,
) -> Vec<u8> {
    let mut key = Vec::with_capacity(CELL_FIXED_LEN + event_type.len());
    key.extend_from_slice(&hour_prefix(partner, hour));
    key.extend_from_slice(subsystem.as_bytes());
    key.push(class_byte(*is_valid, *is_bot));
    key.extend_from_slice(event_type.as_bytes());
    key
}

/// The hour and cell a `rollup_cells` key names.
pub(super) fn split_cell_key(key: &[u8]) -> Result<(Hour, CellKey), StoreError> {
    let corrupt = || StoreError::Corrupt("a rollup cell key that does not decode".into());
    if key.len() < CELL_FIXED_LEN {
        return Err(corrupt());
    }
    let hour_bytes = &key[OWNER_LEN..OWNER_LEN + HOUR_LEN];
    let hour = Hour(u32::from_be_bytes(
        hour_bytes.try_into().expect("four bytes"),
    ));
    let subsystem =
        Uuid::from_slice(&key[OWNER_LEN + HOUR_LEN..CELL_FIXED_LEN - 1]).map_err(|_| corrupt())?;
    let (is_valid, is_bot) = split_class(key[CELL_FIXED_LEN - 1]);
    let event_type = std::str::from_utf8(&key[CELL_FIXED_LEN..]).map_err(|_| corrupt())?;
    Ok((hour, (subsystem, event_type.to_string(), is_valid, is_bot)))
}

pub(super) fn decode_count(bytes: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("a rollup count that is not eight bytes".into()))?;
    Ok(u64::from_be_bytes(bytes))
}

/// Set in a sketch key's type length for the bot partition: event types are at most 200
/// characters, so keys written before the partition existed read as humans'.
const BOTS_BIT: u16 = 0x8000;

fn sketch_prefix(owner: Uuid, event_type: Option<&str>, bots: bool) -> Vec<u8> {
    let name = event_type.unwrap_or_default().as_bytes();
    let length = u16::try_from(name.len()).expect("event types are at most 200 characters");
    let length = if bots { length | BOTS_BIT } else { length };
    let mut key = keys::prefixed(owner, &length.to_be_bytes());
    key.extend_from_slice(name);
    key
}

pub(super) fn sketch_key(key: &SketchKey) -> Vec<u8> {
    let mut bytes = sketch_prefix(key.owner, key.event_type.as_deref(), key.bots);
    bytes.extend_from_slice(&key.hour.to_be_bytes());
    bytes
}

/// The keys of one owner's sketches of one type and partition over hours `from..to`.
pub(super) fn sketch_range(
    owner: Uuid,
    event_type: Option<&str>,
    bots: bool,
    from: Hour,
    to: Hour,
) -> (Vec<u8>, Vec<u8>) {
    let prefix = sketch_prefix(owner, event_type, bots);
    let mut start = prefix.clone();
    start.extend_from_slice(&from.to_be_bytes());
    let mut end = prefix;
    end.extend_from_slice(&to.to_be_bytes());
    (start, end)
}

/// The hour at the end of a sketch key.
fn sketch_hour(key: &[u8]) -> Result<Hour, StoreError> {
    let tail = key
        .len()
        .checked_sub(HOUR_LEN)
        .map(|start| &key[start..])
        .ok_or_else(|| StoreError::Corrupt("a rollup key that is too short".into()))?;
    Ok(Hour(u32::from_be_bytes(
        tail.try_into().expect("four bytes"),
    )))
}

pub(super) fn decode_sketch(bytes: &[u8]) -> Result<ActorSketch, StoreError> {
    ActorSketch::from_bytes(bytes).map_err(StoreError::Corrupt)
}

/// A grain of rollups: its two tables.
#[derive(Clone, Copy)]
pub(super) struct Level {
    pub(super) cells: Table,
    pub(super) sketches: Table,
}

impl Level {
    pub(super) fn open<'txn>(
        self,
        transaction: &'txn redb::WriteTransaction,
    ) -> Result<(RollupTable<'txn>, RollupTable<'txn>), StoreError> {
        Ok((
            transaction.open_table(self.cells).map_err(storage_error)?,
            transaction
                .open_table(self.sketches)
                .map_err(storage_error)?,
        ))
    }
}

pub(super) const HOURS: Level = Level {
    cells: ROLLUP_CELLS,
    sketches: ROLLUP_SKETCHES,
};
pub(super) const DAYS: Level = Level {
    cells: ROLLUP_DAY_CELLS,
    sketches: ROLLUP_DAY_SKETCHES,
};

/// What applying a delta read and wrote: rollup entries and their bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct RollupWork {
    pub entries_read: usize,
    pub bytes_read: usize,
    pub entries_written: usize,
    pub bytes_written: usize,
}

impl RollupWork {
    fn read(&mut self, bytes: usize) {
        self.entries_read += 1;
        self.bytes_read += bytes;
    }

    fn wrote(&mut self, bytes: usize) {
        self.entries_written += 1;
        self.bytes_written += bytes;
    }
}

/// Adds what a batch of inserted events contributes, to hours and days.
pub(super) fn apply(
    transaction: &redb::WriteTransaction,
    delta: &RollupDelta,
) -> Result<RollupWork, StoreError> {
    let mut work = RollupWork::default();
    apply_level(transaction, HOURS, delta, &mut work)?;
    apply_level(transaction, DAYS, &delta.by_day(), &mut work)?;
    Ok(work)
}

pub(super) fn apply_level(
    transaction: &redb::WriteTransaction,
    level: Level,
    delta: &RollupDelta,
    work: &mut RollupWork,
) -> Result<(), StoreError> {
    let (mut cells, mut sketches) = level.open(transaction)?;
    add(delta, &mut cells, &mut sketches, work)
}

fn add(
    delta: &RollupDelta,
    cells: &mut RollupTable<'_>,
    sketches: &mut RollupTable<'_>,
    work: &mut RollupWork,
) -> Result<(), StoreError> {
    for ((partner, hour), counts) in &delta.counts {
        for (cell, count) in counts {
            let key = cell_key(*partner, *hour, cell);
            let stored = match cells.get(key.as_slice()).map_err(storage_error)? {
                Some(stored) => {
                    work.read(stored.value().len());
                    decode_count(stored.value())?
                }
                None => 0,
            };
            let value = stored.saturating_add(*count).to_be_bytes();
            work.wrote(value.len());
            cells
                .insert(key.as_slice(), value.as_slice())
                .map_err(storage_error)?;
        }
    }
    for (sketch_key_parts, coupons) in &delta.actors {
        let key = sketch_key(sketch_key_parts);
        let mut sketch = match sketches.get(key.as_slice()).map_err(storage_error)? {
            Some(stored) => {
                work.read(stored.value().len());
                decode_sketch(stored.value())?
            }
            None => ActorSketch::default(),
        };
        coupons.iter().for_each(|coupon| sketch.add(*coupon));
        let value = sketch.to_bytes();
        work.wrote(value.len());
        sketches
            .insert(key.as_slice(), value.as_slice())
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
        let cells = transaction.open_table(level.cells).map_err(storage_error)?;
        let sketches = transaction
            .open_table(level.sketches)
            .map_err(storage_error)?;
        let part = RollupQuery {
            from: run.from,
            to: run.to,
            ..query.clone()
        };
        rollups.extend(read_level(&cells, &sketches, &part)?);
    }
    Ok(rollups)
}

fn read_level(
    cells: &impl ReadableTable<&'static [u8], &'static [u8]>,
    sketches: &impl ReadableTable<&'static [u8], &'static [u8]>,
    query: &RollupQuery,
) -> Result<Vec<HourRollup>, StoreError> {
    let mut hours: BTreeMap<Hour, HourRollup> = BTreeMap::new();
    for (hour, counts) in stored_counts(cells, query.partner_id, query.from, query.to)? {
        let wanted: Vec<CountCell> = counts
            .cells
            .into_iter()
            .filter(|cell| query.wants(cell))
            .collect();
        if !wanted.is_empty() {
            let rollup = HourRollup {
                hour,
                cells: wanted,
                actors: None,
            };
            hours.insert(hour, rollup);
        }
    }
    let mut actors: BTreeMap<Hour, ActorUnion> = BTreeMap::new();
    for bots in query.partitions() {
        let (start, end) = sketch_range(
            query.sketch_owner(),
            query.event_type.as_deref(),
            *bots,
            query.from,
            query.to,
        );
        for row in sketches
            .range::<&[u8]>(start.as_slice()..end.as_slice())
            .map_err(storage_error)?
        {
            let (key, value) = row.map_err(storage_error)?;
            let hour = sketch_hour(key.value())?;
            if hours.contains_key(&hour) {
                let sketch = decode_sketch(value.value())?;
                actors.entry(hour).or_default().add_sketch(&sketch);
            }
        }
    }
    for (hour, union) in actors {
        if let Some(rollup) = hours.get_mut(&hour) {
            rollup.actors = Some(union.to_sketch());
        }
    }
    Ok(hours.into_values().collect())
}

/// A partner's stored counts for hours `from..to` (days, in a day table).
pub(super) fn stored_counts(
    cells: &impl ReadableTable<&'static [u8], &'static [u8]>,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<BTreeMap<Hour, HourCounts>, StoreError> {
    let start = hour_prefix(partner, from);
    let end = hour_prefix(partner, to);
    let mut by_hour: BTreeMap<Hour, BTreeMap<CellKey, u64>> = BTreeMap::new();
    for row in cells
        .range::<&[u8]>(start.as_slice()..end.as_slice())
        .map_err(storage_error)?
    {
        let (key, value) = row.map_err(storage_error)?;
        let (hour, cell) = split_cell_key(key.value())?;
        by_hour
            .entry(hour)
            .or_default()
            .insert(cell, decode_count(value.value())?);
    }
    Ok(by_hour
        .into_iter()
        .map(|(hour, cells)| {
            let mut counts = HourCounts::default();
            counts.add(&cells);
            (hour, counts)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::sample_event;

    /// The rollup work of one batch (an event of type `page_view`) into an hour that
    /// already holds `types` other event types.
    fn work_of_a_batch_into_an_hour_of(types: usize) -> RollupWork {
        let dir = tempfile::TempDir::new().unwrap();
        let database = redb::Database::create(dir.path().join("rollups.redb")).unwrap();
        let event = sample_event("e");
        let transaction = database.begin_write().unwrap();
        let mut earlier = RollupDelta::default();
        for n in 0..types {
            let mut other = event.clone();
            other.event_type = format!("a_rather_long_event_type_name_number_{n}");
            earlier.add(&other);
        }
        earlier.add(&event);
        apply(&transaction, &earlier).unwrap();
        transaction.commit().unwrap();

        let transaction = database.begin_write().unwrap();
        let mut batch = RollupDelta::default();
        batch.add(&event);
        apply(&transaction, &batch).unwrap()
    }

    #[test]
    fn a_batch_reads_and_writes_the_same_rollup_bytes_however_many_types_its_hour_holds() {
        let few = work_of_a_batch_into_an_hour_of(1);
        let many = work_of_a_batch_into_an_hour_of(5_000);
        assert_eq!(
            many, few,
            "the rollup work of one batch grew with the hour's types"
        );
        assert!(few.bytes_read + few.bytes_written < 4_096, "{few:?}");
    }

    #[test]
    fn cell_keys_decode_to_their_hour_and_cell() {
        let cell = (Uuid::from_u128(9), "checkout".to_string(), false, true);
        let key = cell_key(Uuid::from_u128(1), Hour(42), &cell);
        assert_eq!(split_cell_key(&key).unwrap(), (Hour(42), cell));
        assert!(key.starts_with(&hour_prefix(Uuid::from_u128(1), Hour(42))));
    }
}
