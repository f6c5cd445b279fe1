//! `rollups verify` for breakdown cells: a day at a time, the day's events are recounted
//! once and each folded hour's stored cells (and the day's, when current and wholly in the
//! range) are checked against the recount with `check_tables`. Hours not folded yet, or
//! whose cells a rebuild is rewriting, are left out: reports read them raw. The recount
//! uses the partner's declared dimensions as they are now: after a change to them, the
//! property cells of earlier folds show as differences until a rebuild refolds them.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt};
use uuid::Uuid;

use super::CassandraStore;
use super::breakdown_read::current_hours;
use super::breakdown_rows::{Stored, cell_index, cell_parts, fold_marks};
use super::breakdowns::recount_cells;
use super::horizon::{day_end, days};
use super::layout::{Grain, covers_by_day, hour_folds};
use crate::rollups::{
    BreakdownDifference, Cell, CellName, Cells, HOURS_PER_DAY, Hour, check_tables,
};
use crate::store::StoreError;

pub(in crate::store::cassandra) async fn verify(
    store: &CassandraStore,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<Vec<BreakdownDifference>, StoreError> {
    let mut found = Vec::new();
    for day in days(from, to) {
        let (start, end) = (day.max(from), day_end(day).min(to));
        let folds = hour_folds(store, partner, day, day_end(day)).await?;
        if folds.is_empty() {
            continue;
        }
        let marks = fold_marks(store, partner, Grain::Hour, start, end).await?;
        let in_range = folds
            .iter()
            .filter(|fold| (start..end).contains(&fold.hour()));
        let (hours, _) = current_hours(in_range, &marks);
        let day_fold = if from <= day && day_end(day) <= to && folds.iter().all(|f| f.is_settled())
        {
            let covers = covers_by_day(&folds).get(&day).copied();
            let marks = fold_marks(store, partner, Grain::Day, day, day.next()).await?;
            marks
                .get(&day)
                .filter(|mark| mark.covers.is_some() && mark.covers == covers)
                .map(|mark| mark.fold)
        } else {
            None
        };
        if hours.is_empty() && day_fold.is_none() {
            continue;
        }
        let fold = recount_cells(store, partner, start, end).await?;
        let (stored, rewriting) = stored_tables(store, partner, Grain::Hour, &hours).await?;
        let mut recounted = fold.recount.hour_counts(&fold.declared);
        recounted.retain(|(hour, _), _| hours.contains_key(hour) && !rewriting.contains(hour));
        found.extend(check_tables(partner, 1, &stored, &recounted));
        if let Some(day_fold) = day_fold {
            let folded = BTreeMap::from([(day, day_fold)]);
            let (stored, rewriting) = stored_tables(store, partner, Grain::Day, &folded).await?;
            if rewriting.is_empty() {
                let recounted = fold.recount.day_counts(&fold.declared);
                found.extend(check_tables(partner, HOURS_PER_DAY, &stored, &recounted));
            }
        }
    }
    Ok(found)
}

/// The stored tables of the cells the folds of `hours` (hour or day, with the fold whose
/// parts are current) wrote, and the hours whose cells are being rewritten (left out).
async fn stored_tables(
    store: &CassandraStore,
    partner: Uuid,
    grain: Grain,
    hours: &BTreeMap<Hour, i64>,
) -> Result<(Cells, BTreeSet<Hour>), StoreError> {
    let (Some(first), Some(last)) = (hours.keys().next(), hours.keys().next_back()) else {
        return Ok(Default::default());
    };
    let mut cells: BTreeMap<Vec<u8>, BTreeSet<Hour>> = BTreeMap::new();
    for (hour, cell) in cell_index(store, partner, grain, *first, last.next()).await? {
        if hours.contains_key(&hour) {
            cells.entry(cell).or_default().insert(hour);
        }
    }
    let reads = cells.into_iter().map(|(cell, at)| async move {
        let parts = cell_parts(store, partner, grain, &cell, &at).await?;
        Ok::<_, StoreError>((cell, parts))
    });
    let read: Vec<_> = futures::stream::iter(reads)
        .buffer_unordered(store.write_concurrency)
        .try_collect()
        .await?;
    let mut tables = BTreeMap::new();
    let mut rewriting = BTreeSet::new();
    for (cell, parts) in read {
        let name = CellName::from_bytes(&cell).map_err(StoreError::Corrupt)?;
        for (hour, parts) in parts {
            let Some(fold) = hours.get(&hour) else {
                continue;
            };
            match parts.of_fold(*fold)? {
                Stored::Table(table) => {
                    let cell = Cell::decode(&name, &table).map_err(StoreError::Corrupt)?;
                    tables.insert((hour, name.clone()), cell);
                }
                Stored::Absent => {}
                Stored::Rewriting => {
                    rewriting.insert(hour);
                }
            }
        }
    }
    tables.retain(|(hour, _), _| !rewriting.contains(hour));
    Ok((tables, rewriting))
}
