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
    let marks = fold_marks(store, partner, Grain::Hour, query.from, query.to).await?;
    let (mut current, mut unsettled) = current_hours(&folds, &marks);
    let cells: Vec<Vec<u8>> = query.names.iter().map(|name| name.to_bytes()).collect();
    let mut tables: Vec<Vec<(Hour, EncodedTable)>> = vec![Vec::new(); cells.len()];

    // Whole days whose cells are current for every name; a day being rewritten for one
    // name is answered by its hours for all, so that all count the same hours.
    let mut days = current_days(store, query, &folds).await?;
    let wanted = days.keys().copied().collect();
    let day_parts = try_join_all(
        (cells.iter()).map(|cell| cell_parts(store, partner, Grain::Day, cell, &wanted)),
    )
    .await?;
    let mut day_tables = Vec::with_capacity(cells.len());
    for mut parts in day_parts {
        let mut stored = BTreeMap::new();
        for (day, fold) in &days {
            let parts = parts.remove(day);
            stored.insert(
                *day,
                parts.map_or(Ok(Stored::Absent), |parts| parts.of_fold(*fold))?,
            );
        }
        day_tables.push(stored);
    }
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
    let hours = current.keys().copied().collect();
    let hour_parts = try_join_all(
        (cells.iter()).map(|cell| cell_parts(store, partner, Grain::Hour, cell, &hours)),
    )
    .await?;
    let mut hour_tables = Vec::with_capacity(cells.len());
    for mut parts in hour_parts {
        let mut stored = Vec::new();
        for (hour, fold) in &current {
            match parts
                .remove(hour)
                .map(|parts| parts.of_fold(*fold))
                .transpose()?
            {
                Some(Stored::Table(table)) => stored.push((*hour, table)),
                Some(Stored::Rewriting) => {
                    unsettled.insert(*hour);
                }
                Some(Stored::Absent) | None => {}
            }
        }
        hour_tables.push(stored);
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
    Ok(days
        .into_iter()
        .filter_map(|day| {
            let mark = day_marks.get(&day)?;
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
