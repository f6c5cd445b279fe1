//! Breakdown cells folded by recount (docs/BREAKDOWNS.md, "What a store does with it"):
//! an hour's fold reads its events once for the counts and the cells (`recount_hours`,
//! called where the counts are recounted), and `store_fold` writes the cells just before it
//! marks the hour settled; a day's cells are a recount of the whole day, written by
//! `fold_day` with its day row. Either replaces every cell of the hour or day: the cells
//! the previous fold wrote and this one has not are deleted.
//!
//! Every row goes out `USING TIMESTAMP` the fold's `written_at` (the touch it covers, or a
//! rebuild's time) with the partner's TTL, like the counts, and the fold row naming
//! `written_at` is written last: a reader takes only parts of the fold its fold row names,
//! so an older fold never overwrites a newer one, and a cell being rewritten is read raw.
//!
//! Mid-rebuild (a fold of an already folded hour or day, at a later timestamp), a report
//! reading one cell sees the previous fold's table until the rebuild writes that cell's
//! parts, then reads the hour raw (parts of a later fold than its fold row names) until
//! the fold row is written; a cell the recount no longer has is gone just before that.
//! It never sees parts of two folds joined into one table.

use std::collections::{BTreeMap, BTreeSet};

use futures::FutureExt;
use futures::future::BoxFuture;
use scylla::serialize::batch::BatchValues;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

use super::breakdown_rows::{cell_index, cell_period, fold_period, grain_code};
use super::horizon::day_end;
use super::layout::{Grain, column};
use super::recount::{each_event, recount_with};
use super::{CassandraStore, all};
use crate::model::Event;
use crate::rollups::{BreakdownRecount, Cell, CellName, Cells, Hour, RollupDelta};
use crate::store::cassandra::driver_error;
use crate::store::{MetadataStore, StoreError};

/// A partner's events recounted into breakdown cells, under the dimensions the partner
/// declared when they were read.
#[derive(Debug, Default)]
pub(super) struct BreakdownFold {
    pub(super) recount: BreakdownRecount,
    pub(super) declared: Vec<String>,
}

impl BreakdownFold {
    fn add(&mut self, event: &Event) {
        self.recount.add(event, &self.declared);
    }
}

/// The partner's declared property dimensions (none for a partner deleted meanwhile).
async fn declared(store: &CassandraStore, partner: Uuid) -> Result<Vec<String>, StoreError> {
    let partner = store.partner(partner).await?;
    Ok(partner
        .map(|partner| partner.dimensions)
        .unwrap_or_default())
}

/// The counts and the breakdown cells of a partner's hours `from..to`, from one read of
/// the events (with their properties only when the partner declared dimensions).
pub(super) async fn recount_hours(
    store: &CassandraStore,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<(RollupDelta, BreakdownFold), StoreError> {
    let mut fold = BreakdownFold {
        declared: declared(store, partner).await?,
        ..BreakdownFold::default()
    };
    let with_payload = !fold.declared.is_empty();
    let counts = recount_with(store, partner, (from, to), with_payload, |event| {
        fold.add(event)
    })
    .await?;
    Ok((counts, fold))
}

/// The breakdown cells alone of a partner's hours `from..to` (a day's fold, verify).
pub(super) async fn recount_cells(
    store: &CassandraStore,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<BreakdownFold, StoreError> {
    let mut fold = BreakdownFold {
        declared: declared(store, partner).await?,
        ..BreakdownFold::default()
    };
    let with_payload = !fold.declared.is_empty();
    each_event(store, partner, (from, to), with_payload, |event| {
        fold.add(event)
    })
    .await?;
    Ok(fold)
}

/// Stores `fold`'s cells of `hour` as the fold of the touch `covers`, at `written_at`.
pub(super) async fn write_hour(
    store: &CassandraStore,
    partner: Uuid,
    hour: Hour,
    fold: &BreakdownFold,
    (covers, written_at, ttl): (i64, i64, i32),
) -> Result<(), StoreError> {
    let tables = cells_of(fold.recount.hour_cells(&fold.declared), hour);
    let at = Written {
        grain: Grain::Hour,
        hour,
        covers,
        written_at,
        ttl,
    };
    write_cells(store, partner, at, tables).await
}

/// Recounts `day` (its first hour) and stores its cells as the day fold of hour folds
/// summing to `covers`, at `written_at`: called where the day row is built.
pub(super) async fn fold_day(
    store: &CassandraStore,
    partner: Uuid,
    day: Hour,
    (covers, written_at, ttl): (i64, i64, i32),
) -> Result<(), StoreError> {
    let fold = recount_cells(store, partner, day, day_end(day)).await?;
    let tables = cells_of(fold.recount.day_cells(&fold.declared), day);
    let at = Written {
        grain: Grain::Day,
        hour: day,
        covers,
        written_at,
        ttl,
    };
    write_cells(store, partner, at, tables).await
}

/// The cells a recount made for `hour` (or the day starting at it), by name.
fn cells_of(cells: Cells, hour: Hour) -> BTreeMap<CellName, Cell> {
    cells
        .into_iter()
        .filter(|((at, _), _)| *at == hour)
        .map(|((_, name), table)| (name, table))
        .collect()
}

/// Index rows written per batch (one partition; ~50 bytes each).
const INDEX_BATCH: usize = 100;

/// Bind values of `insert_part` from its key, part number and columns.
type PartKey<'a> = (Uuid, i32, &'a [u8], i32, i32);

#[allow(clippy::type_complexity, reason = "the statement's eleven bind values")]
fn flat<'a>(
    (key, part, parts, fold, bytes, timestamp, ttl): (
        PartKey<'a>,
        i32,
        i32,
        i64,
        Vec<u8>,
        i64,
        i32,
    ),
) -> (
    Uuid,
    i32,
    &'a [u8],
    i32,
    i32,
    i32,
    i32,
    i64,
    Vec<u8>,
    i64,
    i32,
) {
    let (partner, grain, cell, period, hour) = key;
    (
        partner, grain, cell, period, hour, part, parts, fold, bytes, timestamp, ttl,
    )
}

/// Runs `statements` as one unlogged batch (each a write of one partition, idempotent).
async fn unlogged(
    store: &CassandraStore,
    statements: Vec<&PreparedStatement>,
    values: impl BatchValues + Send,
) -> Result<(), StoreError> {
    let mut batch = Batch::new(BatchType::Unlogged);
    for statement in statements {
        batch.append_statement(statement.clone());
    }
    batch.set_is_idempotent(true);
    store
        .session
        .batch(&batch, values)
        .await
        .map_err(driver_error)?;
    Ok(())
}

/// Which hour or day a fold writes, what it covers, and its timestamp and TTL.
#[derive(Clone, Copy)]
struct Written {
    grain: Grain,
    hour: Hour,
    covers: i64,
    written_at: i64,
    ttl: i32,
}

/// Replaces the cells of one hour or day with `tables`: their parts (and the deletion of
/// parts past them), the deletion of cells the previous fold had and this one has not, the
/// cells index, then the fold row.
async fn write_cells(
    store: &CassandraStore,
    partner: Uuid,
    at: Written,
    tables: BTreeMap<CellName, Cell>,
) -> Result<(), StoreError> {
    let statements = &store.breakdown_statements;
    let grain = grain_code(at.grain);
    let period = cell_period(at.grain, at.hour);
    let hour = column(at.hour);
    let previous: BTreeSet<Vec<u8>> = cell_index(store, partner, at.grain, at.hour, at.hour.next())
        .await?
        .into_iter()
        .map(|(_, cell)| cell)
        .collect();
    let cells: Vec<(Vec<u8>, Cell)> = tables
        .into_iter()
        .map(|(name, cell)| (name.to_bytes(), cell))
        .collect();
    let mut writes: Vec<BoxFuture<'_, Result<(), StoreError>>> = Vec::new();
    for (cell, table) in &cells {
        let parts = table.encode(store.max_batch_bytes);
        let count = i32::try_from(parts.len()).unwrap_or(i32::MAX);
        let part_row = |index: usize, part: &Vec<u8>| {
            let index = i32::try_from(index).unwrap_or(i32::MAX);
            let (fold, bytes) = (at.written_at, part.clone());
            let key = (partner, grain, cell.as_slice(), period, hour);
            (key, index, count, fold, bytes, at.written_at, at.ttl)
        };
        let past = (
            at.written_at,
            partner,
            grain,
            cell.as_slice(),
            period,
            hour,
            count,
        );
        if let [part] = parts.as_slice() {
            // Most cells are one part: it and the deletion of older parts past it go as one
            // mutation of the cell's partition.
            let both = vec![&statements.insert_part, &statements.delete_parts_from];
            let values = (flat(part_row(0, part)), past);
            writes.push(unlogged(store, both, values).boxed());
            continue;
        }
        for (index, part) in parts.iter().enumerate() {
            let values = flat(part_row(index, part));
            writes.push(store.execute(&statements.insert_part, values).boxed());
        }
        writes.push(store.execute(&statements.delete_parts_from, past).boxed());
    }
    let kept: BTreeSet<&[u8]> = cells.iter().map(|(cell, _)| cell.as_slice()).collect();
    for cell in previous
        .iter()
        .filter(|cell| !kept.contains(cell.as_slice()))
    {
        let values = (
            at.written_at,
            partner,
            grain,
            cell.as_slice(),
            period,
            hour,
            0,
        );
        writes.push(store.execute(&statements.delete_parts_from, values).boxed());
    }
    // The index: this fold's cells, and nothing older (cleared just before its timestamp),
    // in batches of its one partition.
    let clear = (at.written_at - 1, partner, grain, period, hour);
    writes.push(store.execute(&statements.clear_cells, clear).boxed());
    for chunk in cells.chunks(INDEX_BATCH) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|(cell, _)| {
                let key = (partner, grain, period, hour, cell.as_slice());
                (key.0, key.1, key.2, key.3, key.4, at.written_at, at.ttl)
            })
            .collect();
        let inserts = vec![&statements.insert_cell; rows.len()];
        writes.push(unlogged(store, inserts, rows).boxed());
    }
    all(store, writes).await?;
    let values = (
        partner,
        grain,
        fold_period(at.hour),
        hour,
        at.written_at,
        at.covers,
        at.written_at,
        at.ttl,
    );
    store.execute(&statements.insert_fold, values).await
}
