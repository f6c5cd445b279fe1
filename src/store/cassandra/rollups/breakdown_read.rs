//! What a breakdown report reads: cells over a range, as the tables of their folded hours,
//! and of their whole days where the day's cells are current, plus the hours not folded
//! yet (read raw by the report). The folds are read once for all the cells, so every
//! cell counts the same hours.
//!
//! An hour's cells are current when the hour is settled (`rollup_hours`: folded at its
//! latest touch) and its breakdown fold row covers that same fold; hours folded before
//! breakdowns existed have no such row and count as unsettled until a rebuild folds them.
//! A day's cells are current when none of its hours is unsettled and its breakdown fold
//! row covers the sum of their folds (as a day row's `covers`): any refold raises it.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::try_join_all;

use super::CassandraStore;
use super::breakdown_rows::{FoldMark, Stored, cell_parts, fold_marks};
use super::horizon::day_end;
use super::layout::{Grain, HourFold, covers_by_day, hour_folds};
use crate::rollups::{BreakdownQuery, BreakdownRead, EncodedTable, Hour};
use crate::store::StoreError;

pub(in crate::store::cassandra) async fn read(
    store: &CassandraStore,
    query: &BreakdownQuery,
) -> Result<BreakdownRead, StoreError> {
    let partner = query.partner_id;
    let folds = hour_folds(store, partner, query.from, query.to).await?;
    let mut marks = fold_marks(store, partner, Grain::Hour, query.from, query.to).await?;
    // People's postings: folds of older releases wrote none, so their hours are read raw.
    let postings = query.names.iter().any(|name| name.is_postings());
    marks.retain(|_, mark| mark.people || !postings);
    let (mut current, mut unsettled) = current_hours(&folds, &marks);
    let cells: Vec<Vec<u8>> = query.names.iter().map(|name| name.to_bytes()).collect();
    let mut tables: Vec<Vec<(Hour, EncodedTable)>> = vec![Vec::new(); cells.len()];

    // Whole days whose cells are current for every name; a day being rewritten for one
    // name is answered by its hours for all, so that all count the same hours.
    let mut days = current_days(store, query, &folds).await?;
    let day_tables = stored_cells(store, partner, Grain::Day, &cells, &days).await?;
    days.retain(|day, _| {
        let rewriting = |stored: &BTreeMap<Hour, Stored>| matches!(stored[day], Stored::Rewriting);
        !day_tables.iter().any(rewriting)
    });
    for (stored, read) in day_tables.into_iter().zip(&mut tables) {
        for (day, stored) in stored {
            if let (true, Stored::Table(table)) = (days.contains_key(&day), stored) {
                read.push((day, table));
            }
        }
    }
    let in_no_day = |hour: &Hour| !days.contains_key(&hour.day());
    current.retain(|hour, _| in_no_day(hour));
    unsettled.retain(in_no_day);

    // Hours: one being rewritten for any name is read raw, and no name's cell counts it.
    let mut hour_tables = Vec::with_capacity(cells.len());
    for stored in stored_cells(store, partner, Grain::Hour, &cells, &current).await? {
        let mut found = Vec::new();
        for (hour, stored) in stored {
            match stored {
                Stored::Table(table) => found.push((hour, table)),
                Stored::Rewriting => {
                    unsettled.insert(hour);
                }
                Stored::Absent => {}
            }
        }
        hour_tables.push(found);
    }
    for (stored, read) in hour_tables.into_iter().zip(&mut tables) {
        read.extend(
            stored
                .into_iter()
                .filter(|(hour, _)| !unsettled.contains(hour)),
        );
    }
    Ok(BreakdownRead {
        tables,
        days: days.into_keys().collect(),
        unsettled,
    })
}

/// Each cell's table, as its period's fold wrote it, for every period (hour or day) of
/// `folds`, in the cells' order; the cells are read concurrently.
async fn stored_cells(
    store: &CassandraStore,
    partner: uuid::Uuid,
    grain: Grain,
    cells: &[Vec<u8>],
    folds: &BTreeMap<Hour, i64>,
) -> Result<Vec<BTreeMap<Hour, Stored>>, StoreError> {
    let periods = folds.keys().copied().collect();
    let reads = cells
        .iter()
        .map(|cell| cell_parts(store, partner, grain, cell, &periods));
    let mut stored = Vec::with_capacity(cells.len());
    for mut parts in try_join_all(reads).await? {
        let mut tables = BTreeMap::new();
        for (period, fold) in folds {
            let table = match parts.remove(period) {
                Some(parts) => parts.of_fold(*fold)?,
                None => Stored::Absent,
            };
            tables.insert(*period, table);
        }
        stored.push(tables);
    }
    Ok(stored)
}

/// The query's whole days whose cells are current (with the fold whose parts to take): no
/// hour of theirs unsettled, and a day fold row that covers their hours' folds.
async fn current_days(
    store: &CassandraStore,
    query: &BreakdownQuery,
    folds: &[HourFold],
) -> Result<BTreeMap<Hour, i64>, StoreError> {
    let open_days: BTreeSet<Hour> = folds
        .iter()
        .filter(|fold| !fold.is_settled())
        .map(|fold| fold.hour().day())
        .collect();
    let days: BTreeSet<Hour> = query
        .whole_days
        .iter()
        .filter(|day| query.from <= **day && day_end(**day) <= query.to)
        .filter(|day| !open_days.contains(day))
        .copied()
        .collect();
    let (Some(first), Some(last)) = (days.first(), days.last()) else {
        return Ok(BTreeMap::new());
    };
    let covers = covers_by_day(folds);
    let day_marks = fold_marks(store, query.partner_id, Grain::Day, *first, last.next()).await?;
    let postings = query.names.iter().any(|name| name.is_postings());
    Ok(days
        .into_iter()
        .filter_map(|day| {
            let mark = day_marks
                .get(&day)
                .filter(|mark| mark.people || !postings)?;
            (mark.covers.is_some() && mark.covers == covers.get(&day).copied())
                .then_some((day, mark.fold))
        })
        .collect())
}

/// The hours whose cells are current (with the fold whose parts to take), and the others
/// that have events: not folded since their latest write, or not by a breakdown fold.
pub(super) fn current_hours<'a>(
    folds: impl IntoIterator<Item = &'a HourFold>,
    marks: &BTreeMap<Hour, FoldMark>,
) -> (BTreeMap<Hour, i64>, BTreeSet<Hour>) {
    let mut current = BTreeMap::new();
    let mut unsettled = BTreeSet::new();
    for fold in folds {
        let hour = fold.hour();
        match marks.get(&hour) {
            Some(mark) if fold.is_settled() && mark.covers == fold.folded_at => {
                current.insert(hour, mark.fold);
            }
            _ => {
                unsettled.insert(hour);
            }
        }
    }
    (current, unsettled)
}
