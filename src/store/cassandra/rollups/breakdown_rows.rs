//! How breakdown cells sit in their tables (`cql/008_breakdowns.cql`): the grain and
//! period of a row, the fold rows that say which cells are current, the cells index, and
//! one cell's parts as read, whole only when every part of the current fold is there.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::CassandraStore;
use super::layout::{Grain, column, hour_of};
use crate::rollups::{EncodedTable, HOURS_PER_DAY, Hour};
use crate::store::StoreError;

/// Fold rows are small: 30 days of them per partition, at both grains.
const FOLD_PERIOD_HOURS: u32 = 720;

/// The `grain` column.
pub(super) fn grain_code(grain: Grain) -> i32 {
    match grain {
        Grain::Hour => 0,
        Grain::Day => 1,
    }
}

/// Hours per partition of the cells and their parts: a day of hour cells (a busy cell's
/// hour is tens of KB, so 30 days of them would make partitions of tens of MB), 30 days of
/// day cells.
fn cell_period_hours(grain: Grain) -> u32 {
    match grain {
        Grain::Hour => HOURS_PER_DAY,
        Grain::Day => 720,
    }
}

/// The period of `hour`'s cells and parts at `grain`.
pub(super) fn cell_period(grain: Grain, hour: Hour) -> i32 {
    i32::try_from(hour.0 / cell_period_hours(grain)).unwrap_or(i32::MAX)
}

pub(super) fn fold_period(hour: Hour) -> i32 {
    i32::try_from(hour.0 / FOLD_PERIOD_HOURS).unwrap_or(i32::MAX)
}

/// Each period of `period_hours` that `from..to` overlaps, with the hour bounds inside it.
fn spans(from: Hour, to: Hour, period_hours: u32) -> impl Iterator<Item = (i32, i32, i32)> {
    let (first, last) = (from.0 / period_hours, to.0.saturating_sub(1) / period_hours);
    (first..=last).filter(move |_| from < to).map(move |p| {
        let start = Hour((p * period_hours).max(from.0));
        let end = Hour(((p + 1) * period_hours).min(to.0));
        (
            i32::try_from(p).unwrap_or(i32::MAX),
            column(start),
            column(end),
        )
    })
}

/// A folded hour's or day's fold row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FoldMark {
    /// The timestamp its cells were written at: only parts of this fold are current.
    pub(super) fold: i64,
    /// What it counted (see the table's comment).
    pub(super) covers: Option<i64>,
    /// Whether the fold wrote people's postings (folds before step 10 did not).
    pub(super) people: bool,
}

/// (hour, fold, covers, people) as `select_folds` reads them.
type FoldRow = (i32, Option<i64>, Option<i64>, Option<bool>);

/// The fold rows of a partner's hours (or days) in `from..to`.
pub(super) async fn fold_marks(
    store: &CassandraStore,
    partner: Uuid,
    grain: Grain,
    from: Hour,
    to: Hour,
) -> Result<BTreeMap<Hour, FoldMark>, StoreError> {
    let statement = &store.breakdown_statements.select_folds;
    let mut marks = BTreeMap::new();
    for (period, start, end) in spans(from, to, FOLD_PERIOD_HOURS) {
        let values = (partner, grain_code(grain), period, start, end);
        let rows: Vec<FoldRow> = store.select(statement, values).await?;
        marks.extend(rows.into_iter().filter_map(|(hour, fold, covers, people)| {
            Some((
                hour_of(hour),
                FoldMark {
                    fold: fold?,
                    covers,
                    people: people.unwrap_or(false),
                },
            ))
        }));
    }
    Ok(marks)
}

/// The cells (encoded names) the folds of a partner's hours (or days) in `from..to` wrote.
pub(super) async fn cell_index(
    store: &CassandraStore,
    partner: Uuid,
    grain: Grain,
    from: Hour,
    to: Hour,
) -> Result<BTreeSet<(Hour, Vec<u8>)>, StoreError> {
    let statement = &store.breakdown_statements.select_cells;
    let mut cells = BTreeSet::new();
    for (period, start, end) in spans(from, to, cell_period_hours(grain)) {
        let values = (partner, grain_code(grain), period, start, end);
        let rows: Vec<(i32, Vec<u8>)> = store.select(statement, values).await?;
        cells.extend(rows.into_iter().map(|(hour, cell)| (hour_of(hour), cell)));
    }
    Ok(cells)
}

/// (part, parts of its fold, fold, encoded table part)
type PartRow = (i32, Option<i32>, Option<i64>, Vec<u8>);

/// One cell's stored parts for one hour or day, of whatever folds wrote them.
#[derive(Debug, Default)]
pub(super) struct CellParts {
    rows: Vec<PartRow>,
}

/// What a cell holds for one fold.
#[derive(Debug)]
pub(super) enum Stored {
    Table(EncodedTable),
    /// The fold wrote no such cell (no event had its values).
    Absent,
    /// A later fold (a rebuild) is rewriting it, or its parts are not all there yet: read
    /// the hour raw meanwhile.
    Rewriting,
}

impl CellParts {
    /// The table fold `fold` wrote. Parts of older folds are leftovers a concurrent fold
    /// could not see to delete, and are ignored.
    pub(super) fn of_fold(self, fold: i64) -> Result<Stored, StoreError> {
        if self.rows.iter().any(|row| row.2.is_some_and(|f| f > fold)) {
            return Ok(Stored::Rewriting);
        }
        let current: BTreeMap<i32, (Option<i32>, Vec<u8>)> = self
            .rows
            .into_iter()
            .filter(|row| row.2 == Some(fold))
            .map(|(part, parts, _, bytes)| (part, (parts, bytes)))
            .collect();
        let Some((_, (expected, _))) = current.first_key_value() else {
            return Ok(Stored::Absent);
        };
        let whole = expected.is_some_and(|expected| {
            current.values().all(|(parts, _)| *parts == Some(expected))
                && current.keys().copied().eq(0..expected)
        });
        if !whole {
            return Ok(Stored::Rewriting);
        }
        let parts = current.into_values().map(|(_, bytes)| bytes);
        Ok(Stored::Table(EncodedTable::from_parts(parts.collect())))
    }
}

/// One cell's parts over `hours` of a partner (at `grain`), by hour: one read per period
/// holding any of them.
pub(super) async fn cell_parts(
    store: &CassandraStore,
    partner: Uuid,
    grain: Grain,
    cell: &[u8],
    hours: &BTreeSet<Hour>,
) -> Result<BTreeMap<Hour, CellParts>, StoreError> {
    let statement = &store.breakdown_statements.select_parts;
    let mut by_period: BTreeMap<i32, (Hour, Hour)> = BTreeMap::new();
    for hour in hours {
        let span = by_period
            .entry(cell_period(grain, *hour))
            .or_insert((*hour, hour.next()));
        span.1 = hour.next();
    }
    let reads = by_period.into_iter().map(|(period, (start, end))| {
        let values = (
            partner,
            grain_code(grain),
            cell,
            period,
            column(start),
            column(end),
        );
        store.select::<(i32, i32, Option<i32>, Option<i64>, Option<Vec<u8>>)>(statement, values)
    });
    let mut parts: BTreeMap<Hour, CellParts> = BTreeMap::new();
    for rows in futures::future::try_join_all(reads).await? {
        for (hour, part, count, fold, bytes) in rows {
            let entry = parts.entry(hour_of(hour)).or_default();
            entry
                .rows
                .push((part, count, fold, bytes.unwrap_or_default()));
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollups::{KeptValue, VALUE_CAP, ValueTable};

    fn table(values: usize) -> ValueTable {
        let mut table = ValueTable::default();
        for n in 0..values {
            let kept = KeptValue {
                events: n as u64 + 1,
                error: 0,
                actors: Vec::new(),
            };
            table.values.insert(format!("/page/{n:04}"), kept);
        }
        table
    }

    fn parts_of(rows: &[(i32, i32, i64, &ValueTable)]) -> CellParts {
        CellParts {
            rows: rows
                .iter()
                .map(|(part, count, fold, table)| {
                    (*part, Some(*count), Some(*fold), table.to_bytes())
                })
                .collect(),
        }
    }

    #[test]
    fn only_a_whole_set_of_the_current_folds_parts_is_a_table() {
        let whole = table(VALUE_CAP.min(200));
        let split = whole.split(1_024);
        assert!(split.len() > 2);
        let count = split.len() as i32;
        let rows: Vec<_> = (0..count)
            .map(|i| (i, count, 7, &split[i as usize]))
            .collect();
        match parts_of(&rows).of_fold(7).unwrap() {
            Stored::Table(joined) => assert_eq!(joined.decode().unwrap(), whole),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parts_of(&rows[1..]).of_fold(7).unwrap(),
            Stored::Rewriting
        ));
        let mut newer = rows.clone();
        newer[0].2 = 9;
        assert!(
            matches!(parts_of(&newer).of_fold(7).unwrap(), Stored::Rewriting),
            "a rebuild is writing a later fold"
        );
        assert!(
            matches!(parts_of(&rows).of_fold(9).unwrap(), Stored::Absent),
            "the current fold wrote no such cell: older parts are leftovers"
        );
    }

    #[test]
    fn spans_split_a_range_at_period_boundaries() {
        let parts: Vec<_> = spans(Hour(20), Hour(50), 24).collect();
        assert_eq!(parts, [(0, 20, 24), (1, 24, 48), (2, 48, 50)]);
        assert_eq!(spans(Hour(5), Hour(5), 24).count(), 0);
        assert_eq!(cell_period(Grain::Hour, Hour(47)), 1);
        assert_eq!(cell_period(Grain::Day, Hour(47)), 0);
    }
}
