//! What a breakdown report reads: one cell over a range, as the tables of its folded hours,
//! and of its whole days where the day's cells are current, plus the hours not folded yet
//! (read raw by the report).
//!
//! An hour's cells are current when the hour is settled (`rollup_hours`: folded at its
//! latest touch) and its breakdown fold row covers that same fold; hours folded before
//! breakdowns existed have no such row and count as unsettled until a rebuild folds them.
//! A day's cells are current when none of its hours is unsettled and its breakdown fold
//! row covers the sum of their folds (as a day row's `covers`): any refold raises it.

use std::collections::{BTreeMap, BTreeSet};

use super::CassandraStore;
use super::breakdown_rows::{FoldMark, Stored, cell_parts, fold_marks};
use super::horizon::day_end;
use super::layout::{Grain, HourFold, covers_by_day, hour_folds};
use crate::rollups::{BreakdownQuery, BreakdownRead, Hour};
use crate::store::StoreError;

pub(in crate::store::cassandra) async fn read(
    store: &CassandraStore,
    query: &BreakdownQuery,
) -> Result<BreakdownRead, StoreError> {
    let partner = query.partner_id;
    let folds = hour_folds(store, partner, query.from, query.to).await?;
    let marks = fold_marks(store, partner, Grain::Hour, query.from, query.to).await?;
    let (mut current, mut unsettled) = current_hours(&folds, &marks);
    let cell = query.name.to_bytes();
    let mut tables = Vec::new();

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
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        let covers = covers_by_day(&folds);
        let day_marks = fold_marks(store, partner, Grain::Day, *first, last.next()).await?;
        let current_days: BTreeMap<Hour, i64> = days
            .into_iter()
            .filter_map(|day| {
                let mark = day_marks.get(&day)?;
                (mark.covers.is_some() && mark.covers == covers.get(&day).copied())
                    .then_some((day, mark.fold))
            })
            .collect();
        let wanted = current_days.keys().copied().collect();
        let mut parts = cell_parts(store, partner, Grain::Day, &cell, &wanted).await?;
        for (day, fold) in current_days {
            let stored = match parts.remove(&day) {
                Some(parts) => parts.of_fold(fold)?,
                None => Stored::Absent,
            };
            match stored {
                Stored::Table(table) => tables.push(table),
                Stored::Absent => {}
                // Its cells are being rebuilt: its hours answer instead.
                Stored::Rewriting => continue,
            }
            let in_day = |hour: &Hour| hour.day() != day;
            current.retain(|hour, _| in_day(hour));
            unsettled.retain(in_day);
        }
    }

    let hours = current.keys().copied().collect();
    let mut parts = cell_parts(store, partner, Grain::Hour, &cell, &hours).await?;
    for (hour, fold) in current {
        let stored = match parts.remove(&hour) {
            Some(parts) => parts.of_fold(fold)?,
            None => Stored::Absent,
        };
        match stored {
            Stored::Table(table) => tables.push(table),
            Stored::Absent => {}
            Stored::Rewriting => {
                unsettled.insert(hour);
            }
        }
    }
    Ok(BreakdownRead { tables, unsettled })
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
