//! How rollups sit in their tables: hours and days keyed by 30-day period and hour column,
//! pending touches spread over shards, counts encoded with postcard and split into parts
//! (`parts`) of at most `cassandra.max_batch_size` bytes each.

use std::collections::{BTreeMap, BTreeSet};

use scylla::DeserializeRow;
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

use super::{CassandraStore, all};
use crate::rollups::{Hour, HourCounts};
use crate::store::StoreError;

/// Rollup partitions hold 30 days of hours.
const HOURS_PER_PERIOD: u32 = 720;
/// `rollup_pending` is spread over this many partitions.
pub(super) const PENDING_SHARDS: i32 = 16;
/// `event_type` of the sketch over all event types.
pub(super) const ALL_TYPES: &str = "";
/// Put before the `event_type` of a bot partition's sketch: event types hold no control
/// characters, so it can't meet a real type, and sketches written before the partition
/// existed are humans'.
const BOTS_MARK: char = '\u{1}';

/// The `event_type` key of a sketch: its type (`ALL_TYPES` for all) in its partition.
pub(super) fn sketch_type(event_type: Option<&str>, bots: bool) -> String {
    let name = event_type.unwrap_or(ALL_TYPES);
    if bots {
        format!("{BOTS_MARK}{name}")
    } else {
        name.to_string()
    }
}

pub(super) fn period(hour: Hour) -> i32 {
    i32::try_from(hour.0 / HOURS_PER_PERIOD).unwrap_or(i32::MAX)
}

pub(super) fn column(hour: Hour) -> i32 {
    i32::try_from(hour.0).unwrap_or(i32::MAX)
}

/// The hour an `hour` or `day` column holds.
pub(super) fn hour_of(column: i32) -> Hour {
    Hour(u32::try_from(column).unwrap_or(0))
}

/// A stable shard for the partner (UUIDv7's low bits are random).
pub(super) fn shard(partner: Uuid) -> i32 {
    i32::try_from(partner.as_u128() % PENDING_SHARDS as u128).unwrap_or(0)
}

/// Each period `from..to` overlaps, with the hour bounds inside it.
fn periods(from: Hour, to: Hour) -> impl Iterator<Item = (i32, i32, i32)> {
    let (first, last) = (
        from.0 / HOURS_PER_PERIOD,
        to.0.saturating_sub(1) / HOURS_PER_PERIOD,
    );
    (first..=last).filter(move |_| from < to).map(move |p| {
        let start = Hour((p * HOURS_PER_PERIOD).max(from.0));
        let end = Hour(((p + 1) * HOURS_PER_PERIOD).min(to.0));
        (p as i32, column(start), column(end))
    })
}

/// Rows of a per-period table over hours `from..to`, decoded as `R`.
pub(super) async fn rows_over<R>(
    store: &CassandraStore,
    statement: &PreparedStatement,
    key: (Uuid, Option<&str>),
    from: Hour,
    to: Hour,
) -> Result<Vec<R>, StoreError>
where
    R: for<'frame, 'metadata> scylla::deserialize::row::DeserializeRow<'frame, 'metadata>,
{
    let mut rows = Vec::new();
    for (period, start, end) in periods(from, to) {
        rows.extend(match key.1 {
            Some(event_type) => {
                store
                    .select(statement, (key.0, event_type, period, start, end))
                    .await?
            }
            None => store.select(statement, (key.0, period, start, end)).await?,
        });
    }
    Ok(rows)
}

/// An hour's latest touch and the touch its fold covers (`select_rollup_hour_folds`).
#[derive(DeserializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
pub(super) struct HourFold {
    hour: i32,
    pub(super) touched_at: Option<i64>,
    pub(super) folded_at: Option<i64>,
}

impl HourFold {
    pub(super) fn hour(&self) -> Hour {
        hour_of(self.hour)
    }

    /// Folded at the latest touch (a touch whose TTL ran out leaves the fold standing).
    pub(super) fn is_settled(&self) -> bool {
        self.folded_at.is_some() && self.folded_at >= self.touched_at
    }
}

/// The columns of `select_rollup_hours`: an `HourFold`'s, then the counts.
type HourColumns = (i32, Option<i64>, Option<i64>, Option<Vec<u8>>);

/// An hour's fold with the counts stored by it (`select_rollup_hours`, and its parts).
pub(super) struct HourRow {
    pub(super) fold: HourFold,
    counts: Option<Vec<u8>>,
    parts: Option<Parts>,
}

impl HourRow {
    /// The counts of the fold; `None` while its parts are being rewritten (a rebuild):
    /// the hour is then read raw, as if unsettled.
    pub(super) fn counts(&self) -> Result<Option<HourCounts>, StoreError> {
        stored_counts(self.parts.as_ref(), self.counts.as_deref())
    }
}

/// A partner's hour rows over `from..to`, with their counts.
pub(super) async fn hour_rows(
    store: &CassandraStore,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<Vec<HourRow>, StoreError> {
    let statement = &store.statements.select_rollup_hours;
    let rows: Vec<HourColumns> = rows_over(store, statement, (partner, None), from, to).await?;
    let parts_statement = &store.statements.select_rollup_hour_parts;
    let mut parts = parts_over(store, parts_statement, partner, from, to).await?;
    Ok(rows
        .into_iter()
        .map(|(hour, touched_at, folded_at, counts)| HourRow {
            parts: parts.remove(&hour_of(hour)),
            fold: HourFold {
                hour,
                touched_at,
                folded_at,
            },
            counts,
        })
        .collect())
}

/// The parts of one hour's (or day's) counts as read: they are whole when every row
/// belongs to the same fold and all of its parts are there.
#[derive(Default)]
pub(super) struct Parts {
    folds: BTreeSet<(Option<i64>, Option<i32>)>,
    parts: BTreeMap<i32, Vec<u8>>,
}

impl Parts {
    fn counts(&self) -> Result<Option<HourCounts>, StoreError> {
        let whole = match self.folds.iter().collect::<Vec<_>>().as_slice() {
            [(Some(_), Some(expected))] => {
                usize::try_from(*expected).ok() == Some(self.parts.len())
                    && self.parts.keys().copied().eq(0..*expected)
            }
            _ => false,
        };
        if !whole {
            return Ok(None);
        }
        let mut counts = HourCounts::default();
        for bytes in self.parts.values() {
            counts.merge(&decode_counts(Some(bytes))?);
        }
        Ok(Some(counts))
    }
}

/// The columns of `select_rollup_hour_parts` / `select_rollup_day_parts`.
type PartColumns = (i32, i32, Option<i32>, Option<i64>, Option<Vec<u8>>);

/// The count parts of a partner's hours (or days) over `from..to`, by hour.
pub(super) async fn parts_over(
    store: &CassandraStore,
    statement: &PreparedStatement,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<BTreeMap<Hour, Parts>, StoreError> {
    let rows: Vec<PartColumns> = rows_over(store, statement, (partner, None), from, to).await?;
    let mut by_hour: BTreeMap<Hour, Parts> = BTreeMap::new();
    for (hour, part, parts, fold, counts) in rows {
        let entry = by_hour.entry(hour_of(hour)).or_default();
        entry.folds.insert((fold, parts));
        entry.parts.insert(part, counts.unwrap_or_default());
    }
    Ok(by_hour)
}

/// Counts from parts when there are any, else from the row's own column (folds written
/// before parts existed).
fn stored_counts(
    parts: Option<&Parts>,
    legacy: Option<&[u8]>,
) -> Result<Option<HourCounts>, StoreError> {
    match parts {
        Some(parts) => parts.counts(),
        None => decode_counts(legacy).map(Some),
    }
}

/// Which rollup grain a fold writes.
#[derive(Clone, Copy)]
pub(super) enum Grain {
    Hour,
    Day,
}

/// Writes `counts` as the parts of `hour` (a day's first hour for days), each at most
/// `cassandra.max_batch_size` bytes, at cell timestamp `written_at`, then deletes the
/// parts a previous fold had beyond them.
pub(super) async fn write_parts(
    store: &CassandraStore,
    grain: Grain,
    (partner, hour): (Uuid, Hour),
    counts: &HourCounts,
    written_at: i64,
    ttl: i32,
) -> Result<(), StoreError> {
    let statements = &store.statements;
    let (insert, delete) = match grain {
        Grain::Hour => (
            &statements.insert_rollup_hour_part,
            &statements.delete_rollup_hour_parts,
        ),
        Grain::Day => (
            &statements.insert_rollup_day_part,
            &statements.delete_rollup_day_parts,
        ),
    };
    let parts = counts.split(store.max_batch_bytes);
    let count = i32::try_from(parts.len()).unwrap_or(i32::MAX);
    let mut writes = Vec::with_capacity(parts.len());
    for (index, part) in parts.iter().enumerate() {
        let index = i32::try_from(index).unwrap_or(i32::MAX);
        let values = (
            partner,
            period(hour),
            column(hour),
            index,
            count,
            written_at,
            encode_counts(part)?,
            written_at,
            ttl,
        );
        writes.push(store.execute(insert, values));
    }
    all(store, writes).await?;
    store
        .execute(
            delete,
            (written_at, partner, period(hour), column(hour), count),
        )
        .await
}

/// A partner's hour folds over `from..to` (without their counts).
pub(super) async fn hour_folds(
    store: &CassandraStore,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<Vec<HourFold>, StoreError> {
    let statement = &store.statements.select_rollup_hour_folds;
    rows_over(store, statement, (partner, None), from, to).await
}

#[derive(DeserializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
pub(super) struct DayColumns {
    day: i32,
    covers: Option<i64>,
    counts: Option<Vec<u8>>,
}

pub(super) struct DayRow {
    day: i32,
    covers: Option<i64>,
    counts: Option<Vec<u8>>,
    parts: Option<Parts>,
}

impl DayRow {
    pub(super) fn day(&self) -> Hour {
        hour_of(self.day)
    }

    /// Built from the folds its hours have now (`covers` is their sum, see `covers_by_day`).
    pub(super) fn is_current(&self, covers: &BTreeMap<Hour, i64>) -> bool {
        self.covers.is_some() && self.covers == covers.get(&self.day()).copied()
    }

    /// The day's counts; `None` while its parts are being rewritten (not current then).
    pub(super) fn counts(&self) -> Result<Option<HourCounts>, StoreError> {
        stored_counts(self.parts.as_ref(), self.counts.as_deref())
    }
}

/// A partner's day rows over `from..to`.
pub(super) async fn day_rows(
    store: &CassandraStore,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<Vec<DayRow>, StoreError> {
    let statement = &store.statements.select_rollup_days;
    let rows: Vec<DayColumns> = rows_over(store, statement, (partner, None), from, to).await?;
    let parts_statement = &store.statements.select_rollup_day_parts;
    let mut parts = parts_over(store, parts_statement, partner, from, to).await?;
    Ok(rows
        .into_iter()
        .map(|row| DayRow {
            parts: parts.remove(&hour_of(row.day)),
            day: row.day,
            covers: row.covers,
            counts: row.counts,
        })
        .collect())
}

/// The sum of the folds of each day's hours (what a current day row `covers`).
pub(super) fn covers_by_day(folds: &[HourFold]) -> BTreeMap<Hour, i64> {
    let mut covers = BTreeMap::new();
    for fold in folds {
        *covers.entry(fold.hour().day()).or_default() += fold.folded_at.unwrap_or(0);
    }
    covers
}

fn decode_counts(bytes: Option<&[u8]>) -> Result<HourCounts, StoreError> {
    match bytes {
        Some(bytes) => postcard::from_bytes(bytes)
            .map_err(|error| StoreError::Corrupt(format!("rollup counts: {error}"))),
        None => Ok(HourCounts::default()),
    }
}

pub(super) fn encode_counts(counts: &HourCounts) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(counts).map_err(|error| StoreError::Corrupt(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts_of(rows: &[(i32, i32, i64, &HourCounts)]) -> Parts {
        let mut parts = Parts::default();
        for (part, count, fold, counts) in rows {
            parts.folds.insert((Some(*fold), Some(*count)));
            parts.parts.insert(*part, encode_counts(counts).unwrap());
        }
        parts
    }

    #[test]
    fn only_a_whole_set_of_one_folds_parts_gives_counts() {
        let cells: BTreeMap<(Uuid, String, bool, bool), u64> = (0..4u64)
            .map(|n| {
                (
                    (Uuid::from_u128(1), format!("type_{n}"), true, false),
                    n + 1,
                )
            })
            .collect();
        let mut counts = HourCounts::default();
        counts.add(&cells);
        let split = counts.split(40);
        assert_eq!(split.len(), 4);
        let whole: Vec<_> = (0..4).map(|i| (i, 4, 7, &split[i as usize])).collect();
        assert_eq!(parts_of(&whole).counts().unwrap(), Some(counts.clone()));

        let missing = parts_of(&whole[..3]);
        assert_eq!(missing.counts().unwrap(), None, "a part still to come");
        let mut mixed = whole.clone();
        mixed[2].2 = 6;
        assert_eq!(
            parts_of(&mixed).counts().unwrap(),
            None,
            "parts of two folds"
        );
        assert_eq!(
            stored_counts(None, None).unwrap(),
            Some(HourCounts::default()),
            "a fold of no events has no parts"
        );
    }

    #[test]
    fn periods_split_a_range_at_thirty_day_boundaries() {
        let parts: Vec<_> = periods(Hour(700), Hour(1_500)).collect();
        assert_eq!(parts, [(0, 700, 720), (1, 720, 1_440), (2, 1_440, 1_500)]);
        assert_eq!(periods(Hour(5), Hour(5)).count(), 0);
        assert_eq!(
            periods(Hour(719), Hour(720)).collect::<Vec<_>>(),
            [(0, 719, 720)]
        );
    }
}
