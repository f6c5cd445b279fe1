//! What writing a fold changes, read before its write transaction (`breakdowns_write`):
//! the rows that differ from those stored and the rows to remove. Reading and comparing
//! them is most of a write's work (pages read from disk, rows compared), and the events'
//! writers wait while a write transaction is open, so it is done from a read transaction
//! first, and the write transaction only writes what changed.
//!
//! That is safe because every write of an hour's (or day's) cells and sketches removes
//! its mark (or pending stamp) in the same transaction, and every other writer of them
//! (ingestion, erasure, a join) sets it: if anything read here changed since, the write
//! finds its stamp gone and writes nothing.

use redb::WriteTransaction;
use uuid::Uuid;

use super::breakdowns::{Grain, cell_key, cell_prefix, fold_key};
use super::breakdowns_write::EncodedCell;
use super::rollup_sketches::EncodedSketches;
use super::rollups_repair::Readable;
use super::{BREAKDOWN_CELLS, BREAKDOWN_FOLDS, Table, storage_error};
use crate::rollups::Hour;
use crate::store::StoreError;

/// Rows of one table to write and key ranges of it to empty.
#[derive(Debug, Default)]
pub(super) struct RowWrites {
    puts: Vec<(Vec<u8>, Vec<u8>)>,
    removals: Vec<(Vec<u8>, Vec<u8>)>,
}

impl RowWrites {
    /// Puts `value` at `key` unless it is there already (a write costs far more than a read).
    fn put_changed(
        &mut self,
        table: &impl Readable,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), StoreError> {
        let same = table
            .get(key)
            .map_err(storage_error)?
            .is_some_and(|stored| stored.value() == value);
        if !same {
            self.puts.push((key.to_vec(), value.to_vec()));
        }
        Ok(())
    }

    /// Empties `start..end` if it holds a row.
    fn remove_any(
        &mut self,
        table: &impl Readable,
        (start, end): (Vec<u8>, Vec<u8>),
    ) -> Result<(), StoreError> {
        let any = table
            .range::<&[u8]>(start.as_slice()..end.as_slice())
            .map_err(storage_error)?
            .next()
            .is_some();
        if any {
            self.removals.push((start, end));
        }
        Ok(())
    }

    pub(super) fn apply(
        &self,
        transaction: &WriteTransaction,
        table: Table,
    ) -> Result<(), StoreError> {
        let mut table = transaction.open_table(table).map_err(storage_error)?;
        for (key, value) in &self.puts {
            table
                .insert(key.as_slice(), value.as_slice())
                .map_err(storage_error)?;
        }
        for (start, end) in &self.removals {
            table
                .retain_in::<&[u8], _>(start.as_slice()..end.as_slice(), |_, _| false)
                .map_err(storage_error)?;
        }
        Ok(())
    }
}

/// What replacing one hour's (or day's) stored cells with `encoded` writes: the cell rows
/// that differ, the rows past a cell's new last one and those of cells gone, and the fold
/// record (the names of the cells it holds) when it changes.
#[derive(Debug)]
pub(super) struct CellWrites {
    rows: RowWrites,
    folds: RowWrites,
}

impl CellWrites {
    pub(super) fn read(
        (cells, folds): (&impl Readable, &impl Readable),
        (partner, grain, hour): (Uuid, Grain, Hour),
        encoded: &[EncodedCell],
    ) -> Result<CellWrites, StoreError> {
        let fold = fold_key(partner, grain, hour);
        let stored: Vec<Vec<u8>> = match folds.get(fold.as_slice()).map_err(storage_error)? {
            Some(names) => postcard::from_bytes(names.value())
                .map_err(|error| StoreError::Corrupt(error.to_string()))?,
            None => Vec::new(),
        };
        let of_hour = |prefix: &[u8], from: u16| {
            (
                cell_key(prefix, hour, from),
                cell_key(prefix, hour.next(), 0),
            )
        };
        let mut rows = RowWrites::default();
        for (name, pieces) in encoded {
            let prefix = cell_prefix(partner, grain, name);
            // At most 65,536 parts (`encode_cells`), so every part number fits.
            for (part, piece) in (0..=u16::MAX).zip(pieces) {
                rows.put_changed(cells, &cell_key(&prefix, hour, part), piece)?;
            }
            let tail = u16::try_from(pieces.len()).unwrap_or(u16::MAX);
            rows.remove_any(cells, of_hour(&prefix, tail))?;
        }
        let names: Vec<&Vec<u8>> = encoded.iter().map(|(name, _)| name).collect();
        for gone in stored.iter().filter(|name| !names.contains(name)) {
            rows.remove_any(cells, of_hour(&cell_prefix(partner, grain, gone), 0))?;
        }
        let mut record = RowWrites::default();
        if names.is_empty() {
            // The range holding exactly `fold`.
            let next = [fold.as_slice(), &[0]].concat();
            record.remove_any(folds, (fold, next))?;
        } else if names.iter().copied().ne(stored.iter()) {
            let encoded = postcard::to_stdvec(&names).expect("byte strings always encode");
            record.puts.push((fold, encoded));
        }
        Ok(CellWrites {
            rows,
            folds: record,
        })
    }

    pub(super) fn apply(&self, transaction: &WriteTransaction) -> Result<(), StoreError> {
        self.rows.apply(transaction, BREAKDOWN_CELLS)?;
        self.folds.apply(transaction, BREAKDOWN_FOLDS)
    }
}

/// The sketches of `sketches` that differ from those stored in `table`.
pub(super) fn sketch_writes(
    table: &impl Readable,
    sketches: &EncodedSketches,
) -> Result<RowWrites, StoreError> {
    let mut writes = RowWrites::default();
    for (key, sketch) in sketches {
        writes.put_changed(table, key, sketch)?;
    }
    Ok(writes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::EmbeddedStore;

    fn hour() -> Hour {
        Hour::of("2026-11-20T10:00:00Z".parse().unwrap())
    }

    /// What a fold of `encoded` would write over what is stored, then writes it.
    fn fold(store: &EmbeddedStore, partner: Uuid, encoded: &[EncodedCell]) -> (usize, usize) {
        use redb::ReadableDatabase;
        let writes = {
            let transaction = store.database.begin_read().unwrap();
            let cells = transaction.open_table(BREAKDOWN_CELLS).unwrap();
            let folds = transaction.open_table(BREAKDOWN_FOLDS).unwrap();
            CellWrites::read((&cells, &folds), (partner, Grain::Hour, hour()), encoded).unwrap()
        };
        let counts = (
            writes.rows.puts.len() + writes.folds.puts.len(),
            writes.rows.removals.len() + writes.folds.removals.len(),
        );
        let transaction = store.database.begin_write().unwrap();
        writes.apply(&transaction).unwrap();
        transaction.commit().unwrap();
        counts
    }

    fn cell(name: &str, parts: &[&str]) -> EncodedCell {
        let parts = parts.iter().map(|part| part.as_bytes().to_vec()).collect();
        (name.as_bytes().to_vec(), parts)
    }

    #[test]
    fn a_refold_writes_only_the_rows_that_changed_and_removes_those_gone() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let partner = Uuid::new_v4();
        let first = [cell("country", &["a", "b", "c"]), cell("page", &["x"])];
        // Four rows and the fold record.
        assert_eq!(fold(&store, partner, &first), (5, 0));
        assert_eq!(fold(&store, partner, &first), (0, 0), "nothing changed");
        let second = [cell("country", &["a", "B"]), cell("page", &["x"])];
        // One row changed, the third part gone; the names are the same.
        assert_eq!(fold(&store, partner, &second), (1, 1));
        let third = [cell("country", &["a", "B"])];
        // The page cell gone, and the record of names rewritten.
        assert_eq!(fold(&store, partner, &third), (1, 1));
        // Nothing left: the country rows and the record go.
        assert_eq!(fold(&store, partner, &[]), (0, 2));
        let transaction = redb::ReadableDatabase::begin_read(&*store.database).unwrap();
        let cells = transaction.open_table(BREAKDOWN_CELLS).unwrap();
        let folds = transaction.open_table(BREAKDOWN_FOLDS).unwrap();
        assert_eq!(redb::ReadableTableMetadata::len(&cells).unwrap(), 0);
        assert_eq!(redb::ReadableTableMetadata::len(&folds).unwrap(), 0);
    }
}
