//! Writing what a fold recounted (`breakdowns_fold`, `breakdowns_day_fold`): an hour's or a
//! day's cells, its sketches and stamps, in a write transaction that first checks the
//! stamp the recount read is still there. Only the rows that changed are written, found
//! before it (`fold_writes`).

use chrono::Utc;
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction};
use uuid::Uuid;

use super::breakdowns::{BREAKDOWN_ROW_BYTES, Grain, decode_stamp, hour_key, marked_hours, stamp};
use super::breakdowns_fold::Recount;
use super::fold_writes::{self, CellWrites, RowWrites};
use super::rollup_sketches::EncodedSketches;
use super::rollups::{DAYS, HOURS, Level};
use super::rollups_repair::day_after;
use super::{
    BREAKDOWN_CELLS, BREAKDOWN_DAYS_PENDING, BREAKDOWN_FOLDS, BREAKDOWN_MARKS,
    PEOPLE_ANONYMOUS_HOURS, PEOPLE_JOINS, anonymous_hours, rollup_sketches, storage_error,
};
use crate::rollups::{CellName, Cells, Hour};
use crate::store::StoreError;

/// One cell of an hour (or day) encoded to be written (`replace`): its name, and its
/// table cut into rows of at most `BREAKDOWN_ROW_BYTES`.
pub(super) type EncodedCell = (Vec<u8>, Vec<Vec<u8>>);

/// `cells`' cells of `hour`, encoded before the write transaction: encoding is most of a
/// fold's writing work, and the events' writers wait while one is open.
pub(super) fn encode_cells(cells: &Cells, hour: Hour) -> Result<Vec<EncodedCell>, StoreError> {
    let first = CellName {
        bots: false,
        filter: None,
        dimension: String::new(),
    };
    let of_hour = cells
        .range((hour, first)..)
        .take_while(|((at, _), _)| *at == hour);
    of_hour
        .map(|((_, name), cell)| {
            let pieces = cell.encode(BREAKDOWN_ROW_BYTES);
            if pieces.len() > usize::from(u16::MAX) + 1 {
                return Err(StoreError::Corrupt(
                    "a breakdown cell of more than 65,536 rows".into(),
                ));
            }
            Ok((name.to_bytes(), pieces))
        })
        .collect()
}

/// Replaces every stored cell of one hour (or day) with `encoded` and records which cells
/// it holds, in one write transaction (a rebuild; a fold reads `CellWrites` before its own).
pub(super) fn replace(
    transaction: &WriteTransaction,
    partner: Uuid,
    grain: Grain,
    hour: Hour,
    encoded: &[EncodedCell],
) -> Result<(), StoreError> {
    let writes = {
        let open = |table| transaction.open_table(table).map_err(storage_error);
        let tables = (&open(BREAKDOWN_CELLS)?, &open(BREAKDOWN_FOLDS)?);
        CellWrites::read(tables, (partner, grain, hour), encoded)?
    };
    writes.apply(transaction)
}

/// What writing `encoded` and `sketches` (into `level`) changes, read before the write
/// transaction (`fold_writes`).
fn changes(
    read: &ReadTransaction,
    (partner, grain, hour): (Uuid, Grain, Hour),
    encoded: &[EncodedCell],
    (level, sketches): (Level, &EncodedSketches),
) -> Result<(CellWrites, RowWrites), StoreError> {
    let tables = (&open(read, BREAKDOWN_CELLS)?, &open(read, BREAKDOWN_FOLDS)?);
    let cells = CellWrites::read(tables, (partner, grain, hour), encoded)?;
    let sketches = fold_writes::sketch_writes(&open(read, level.sketches)?, sketches)?;
    Ok((cells, sketches))
}

fn open(
    read: &ReadTransaction,
    table: super::Table,
) -> Result<redb::ReadOnlyTable<&'static [u8], &'static [u8]>, StoreError> {
    read.open_table(table).map_err(storage_error)
}

/// Removes the stamp at `key` if it is still `expected`; whether it was.
fn take_stamp(
    transaction: &WriteTransaction,
    table: super::Table,
    key: &[u8],
    expected: u64,
) -> Result<bool, StoreError> {
    let mut table = transaction.open_table(table).map_err(storage_error)?;
    let current = match table.get(key).map_err(storage_error)? {
        Some(stored) => Some(decode_stamp(stored.value())?),
        None => None,
    };
    if current != Some(expected) {
        return Ok(false);
    }
    table.remove(key).map_err(storage_error)?;
    Ok(true)
}

/// What an hour's fold does with the day sketches its sketches are part of.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum DaySketches {
    /// Rebuilds them from the day's hour sketches as stored.
    Refresh,
    /// Leaves them to the day's fold, which writes them from its recount.
    ToTheDayFold,
}

/// Writes `hour`'s `cells` and sketches from `recount` (read when its stamp was `mark`),
/// and marks its day pending; the day's pending stamp set, or `None` (nothing written)
/// when a write or a join came between.
pub(super) fn write_hour(
    database: &Database,
    partner: Uuid,
    (hour, mark): (Hour, u64),
    (recount, cells): (&Recount, &Cells),
    day_sketches: DaySketches,
) -> Result<Option<u64>, StoreError> {
    let unjoined = recount.unjoined_in(hour);
    let encoded = encode_cells(cells, hour)?;
    let sketches = recount
        .rollups
        .as_ref()
        .map(|rollups| rollup_sketches::hour_sketches(rollups, hour))
        .unwrap_or_default();
    let read = database.begin_read().map_err(storage_error)?;
    let at = (partner, Grain::Hour, hour);
    let (cell_writes, sketch_writes) = changes(&read, at, &encoded, (HOURS, &sketches))?;
    let tables = (
        open(&read, PEOPLE_JOINS)?,
        open(&read, PEOPLE_ANONYMOUS_HOURS)?,
    );
    let unrecorded = anonymous_hours::unrecorded((&tables.0, &tables.1), partner, hour, &unjoined)?;
    drop((tables, read));
    // A join recorded since the recount: fold again, as that join's person.
    let Some(unrecorded) = unrecorded else {
        return Ok(None);
    };
    let transaction = database.begin_write().map_err(storage_error)?;
    if !take_stamp(
        &transaction,
        BREAKDOWN_MARKS,
        &hour_key(partner, hour),
        mark,
    )? {
        return Ok(None);
    }
    // A join recorded since the recount found none of the hour's anonymous ids' hours (they
    // are recorded below): fold again, as that join's person.
    if !anonymous_hours::record(&transaction, partner, &unjoined, &unrecorded)? {
        transaction.abort().map_err(storage_error)?;
        return Ok(None);
    }
    cell_writes.apply(&transaction)?;
    // A join since the events were written changes who they count as.
    if let Some(rollups) = &recount.rollups {
        sketch_writes.apply(&transaction, HOURS.sketches)?;
        if day_sketches == DaySketches::Refresh {
            rollup_sketches::refresh_day_sketches(&transaction, hour, rollups)?;
        }
        anonymous_hours::recounted(&transaction, partner, (hour, hour.next()))?;
    }
    // The day's cells no longer agree with its hours: refold it once it is ready.
    let mut pending = transaction
        .open_table(BREAKDOWN_DAYS_PENDING)
        .map_err(storage_error)?;
    let stamped = stamp(&mut pending, &hour_key(partner, hour.day()), Utc::now())?;
    drop(pending);
    transaction.commit().map_err(storage_error)?;
    Ok(Some(stamped))
}

/// Writes ended `day`'s cells and sketches from `recount` (a recount of the day when its
/// pending stamp was `pending`, with its rollups); false (nothing written) when one of its
/// hours is marked or was refolded meanwhile. Its sketches are written from the recount
/// too: hours folded together with their day leave them to it (`ToTheDayFold`: one union,
/// not one per hour), and a crash between those hours' folds and the day's leaves the day
/// pending, so the next day fold writes them.
pub(super) fn write_day(
    database: &Database,
    partner: Uuid,
    (day, pending): (Hour, u64),
    recount: &Recount,
    declared: &[String],
) -> Result<bool, StoreError> {
    let cells = encode_cells(&recount.breakdowns.day_cells(declared), day)?;
    let sketches = recount
        .rollups
        .as_ref()
        .map(rollup_sketches::day_sketches)
        .unwrap_or_default();
    let read = database.begin_read().map_err(storage_error)?;
    let (cell_writes, sketch_writes) =
        changes(&read, (partner, Grain::Day, day), &cells, (DAYS, &sketches))?;
    drop(read);
    let transaction = database.begin_write().map_err(storage_error)?;
    let marked = {
        let marks = transaction
            .open_table(BREAKDOWN_MARKS)
            .map_err(storage_error)?;
        !marked_hours(&marks, partner, day, day_after(day))?.is_empty()
    };
    if marked
        || !take_stamp(
            &transaction,
            BREAKDOWN_DAYS_PENDING,
            &hour_key(partner, day),
            pending,
        )?
    {
        return Ok(false);
    }
    cell_writes.apply(&transaction)?;
    sketch_writes.apply(&transaction, DAYS.sketches)?;
    transaction.commit().map_err(storage_error)?;
    Ok(true)
}
