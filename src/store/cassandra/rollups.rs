//! Rollups in Cassandra are recounts (`cql/004_rollups.cql`). Cassandra has no
//! transaction spanning the rows of a batch and a total, and its counters are not
//! idempotent, so the write path only marks the partner-hours it writes into
//! (`touch`, before the rows); once an hour has not been touched for `rollup_settle`,
//! `settle` recounts its raw events and stores counts and sketches as folded at that touch.
//! Retries, duplicates, several instances and restarts therefore cannot skew the counts:
//! they are whatever the raw rows are. An hour touched since its fold (the current hour, a
//! late event) is `unsettled`, and reports read it raw until it is folded again.
//!
//! Ordering uses client timestamps (microseconds): a touch is written `USING TIMESTAMP` its
//! own value, a fold `USING TIMESTAMP` the touch it covers, and a pending entry is deleted
//! at that touch, so a later touch always survives an earlier fold. This holds as long as
//! `rollup_settle` exceeds the longest write plus the clock skew between instances.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use scylla::DeserializeRow;
use uuid::Uuid;

use super::CassandraStore;
use super::events_write::ttl_seconds;
use crate::rollups::{
    ActorSketch, ActorUnion, CountCell, HOURS_PER_DAY, Hour, HourCounts, HourRollup, RollupDelta,
    RollupDifference, RollupQuery, RollupRead, SettleOutcome, differences, runs,
};
use crate::store::{EventQuery, EventScope, EventStore, StoreError};

/// Rollup partitions hold 30 days of hours.
const HOURS_PER_PERIOD: u32 = 720;
/// `rollup_pending` is spread over this many partitions.
const PENDING_SHARDS: i32 = 16;
/// Pending hours one round reads per shard; the rest wait for the next round.
const PENDING_PER_ROUND: i32 = 5_000;
/// Hours folded at once.
const FOLD_CONCURRENCY: usize = 4;
/// Raw events read per page by a recount.
const RECOUNT_PAGE: usize = 5_000;
/// `event_type` of the sketch over all event types.
const ALL_TYPES: &str = "";

fn period(hour: Hour) -> i32 {
    i32::try_from(hour.0 / HOURS_PER_PERIOD).unwrap_or(i32::MAX)
}

fn column(hour: Hour) -> i32 {
    i32::try_from(hour.0).unwrap_or(i32::MAX)
}

fn micros(instant: DateTime<Utc>) -> i64 {
    instant.timestamp_micros()
}

/// A stable shard for the partner (UUIDv7's low bits are random).
fn shard(partner: Uuid) -> i32 {
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

/// Marks the partner-hours a batch writes into (with the longest TTL of its rows there),
/// before its rows are written.
pub(super) async fn touch(
    store: &CassandraStore,
    hours: &HashMap<(Uuid, Hour), i32>,
) -> Result<(), StoreError> {
    let now = micros(Utc::now());
    let statements = &store.statements;
    let marks: Vec<_> = hours
        .iter()
        .map(|(&(partner, hour), &ttl)| {
            let values = (now, ttl, now, partner, period(hour), column(hour));
            store.execute(&statements.touch_rollup_hour, values)
        })
        .collect();
    let pending: Vec<_> = hours
        .iter()
        .map(|(&(partner, hour), &ttl)| {
            let values = (shard(partner), partner, column(hour), now, now, ttl);
            store.execute(&statements.insert_rollup_pending, values)
        })
        .collect();
    futures::try_join!(all(store, marks), all(store, pending))?;
    Ok(())
}

/// Runs `writes`, `write_concurrency` at a time.
async fn all(
    store: &CassandraStore,
    writes: Vec<impl std::future::Future<Output = Result<(), StoreError>>>,
) -> Result<(), StoreError> {
    futures::stream::iter(writes)
        .buffer_unordered(store.write_concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

#[derive(DeserializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
struct HourRow {
    hour: i32,
    touched_at: Option<i64>,
    folded_at: Option<i64>,
    counts: Option<Vec<u8>>,
}

impl HourRow {
    fn hour(&self) -> Hour {
        Hour(u32::try_from(self.hour).unwrap_or(0))
    }

    /// Folded at the latest touch (a touch whose TTL ran out leaves the fold standing).
    fn is_settled(&self) -> bool {
        self.folded_at.is_some() && self.folded_at >= self.touched_at
    }

    fn counts(&self) -> Result<HourCounts, StoreError> {
        decode_counts(self.counts.as_deref())
    }
}

async fn hour_rows(
    store: &CassandraStore,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<Vec<HourRow>, StoreError> {
    let mut rows = Vec::new();
    for (period, start, end) in periods(from, to) {
        let statement = &store.statements.select_rollup_hours;
        rows.extend(
            store
                .select::<HourRow>(statement, (partner, period, start, end))
                .await?,
        );
    }
    Ok(rows)
}

#[derive(DeserializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
struct HourFold {
    hour: i32,
    touched_at: Option<i64>,
    folded_at: Option<i64>,
}

impl HourFold {
    fn hour(&self) -> Hour {
        Hour(u32::try_from(self.hour).unwrap_or(0))
    }

    fn is_settled(&self) -> bool {
        self.folded_at.is_some() && self.folded_at >= self.touched_at
    }
}

#[derive(DeserializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
struct DayRow {
    day: i32,
    covers: Option<i64>,
    counts: Option<Vec<u8>>,
}

/// Rows of a per-period table over hours `from..to`, decoded as `R`.
async fn rows_over<R>(
    store: &CassandraStore,
    statement: &scylla::statement::prepared::PreparedStatement,
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

fn decode_counts(bytes: Option<&[u8]>) -> Result<HourCounts, StoreError> {
    match bytes {
        Some(bytes) => postcard::from_bytes(bytes)
            .map_err(|error| StoreError::Corrupt(format!("rollup counts: {error}"))),
        None => Ok(HourCounts::default()),
    }
}

/// A rollup of `query`'s cells of `counts`, if any are left.
fn narrowed(query: &RollupQuery, hour: Hour, counts: HourCounts) -> Option<HourRollup> {
    let cells: Vec<CountCell> = counts
        .cells
        .into_iter()
        .filter(|cell| query.wants(cell))
        .collect();
    (!cells.is_empty()).then_some(HourRollup {
        hour,
        cells,
        actors: None,
    })
}

/// Attaches the sketches `statement` reads (hour or day ones) to `rollups`.
async fn attach_sketches(
    store: &CassandraStore,
    statement: &scylla::statement::prepared::PreparedStatement,
    query: &RollupQuery,
    (from, to): (Hour, Hour),
    rollups: &mut BTreeMap<Hour, HourRollup>,
) -> Result<(), StoreError> {
    let event_type = query.event_type.as_deref().unwrap_or(ALL_TYPES);
    let key = (query.sketch_owner(), Some(event_type));
    for (hour, bytes) in rows_over::<(i32, Vec<u8>)>(store, statement, key, from, to).await? {
        if let Some(rollup) = rollups.get_mut(&Hour(u32::try_from(hour).unwrap_or(0))) {
            rollup.actors = Some(ActorSketch::from_bytes(&bytes).map_err(StoreError::Corrupt)?);
        }
    }
    Ok(())
}

/// The sum of the folds of each day's hours (what a current day row `covers`).
fn covers_by_day(folds: &[HourFold]) -> BTreeMap<Hour, i64> {
    let mut covers = BTreeMap::new();
    for fold in folds {
        *covers.entry(fold.hour().day()).or_default() += fold.folded_at.unwrap_or(0);
    }
    covers
}

/// The settled hours of `query` with their counts and sketch (its whole days as one
/// rollup each where a current day row exists), and the unsettled hours.
pub(super) async fn read(
    store: &CassandraStore,
    query: &RollupQuery,
) -> Result<RollupRead, StoreError> {
    let statements = &store.statements;
    let partner = (query.partner_id, None);
    let folds: Vec<HourFold> = rows_over(
        store,
        &statements.select_rollup_hour_folds,
        partner,
        query.from,
        query.to,
    )
    .await?;
    let unsettled: BTreeSet<Hour> = folds
        .iter()
        .filter(|fold| !fold.is_settled())
        .map(HourFold::hour)
        .collect();
    let covers = covers_by_day(&folds);
    let wanted: BTreeSet<Hour> = query
        .whole_days
        .iter()
        .filter(|day| !unsettled.iter().any(|hour| hour.day() == **day))
        .copied()
        .collect();
    let mut days: BTreeMap<Hour, HourRollup> = BTreeMap::new();
    let mut current = BTreeSet::new();
    if !wanted.is_empty() {
        let rows: Vec<DayRow> = rows_over(
            store,
            &statements.select_rollup_days,
            partner,
            query.from,
            query.to,
        )
        .await?;
        for row in rows {
            let day = Hour(u32::try_from(row.day).unwrap_or(0));
            if wanted.contains(&day)
                && row.covers.is_some()
                && row.covers == covers.get(&day).copied()
            {
                current.insert(day);
                days.extend(
                    narrowed(query, day, decode_counts(row.counts.as_deref())?).map(|r| (day, r)),
                );
            }
        }
    }
    let mut rollups = Vec::new();
    for run in runs(query.from, query.to, &current) {
        let mut part = BTreeMap::new();
        if run.days {
            part.extend(
                days.range(run.from..run.to)
                    .map(|(day, rollup)| (*day, rollup.clone())),
            );
            attach_sketches(
                store,
                &statements.select_rollup_day_sketches,
                query,
                (run.from, run.to),
                &mut part,
            )
            .await?;
        } else {
            for row in hour_rows(store, query.partner_id, run.from, run.to).await? {
                if row.is_settled() {
                    part.extend(
                        narrowed(query, row.hour(), row.counts()?).map(|r| (row.hour(), r)),
                    );
                }
            }
            attach_sketches(
                store,
                &statements.select_rollup_sketches,
                query,
                (run.from, run.to),
                &mut part,
            )
            .await?;
        }
        rollups.extend(part.into_values());
    }
    Ok(RollupRead {
        hours: rollups,
        unsettled,
    })
}

/// Builds the day row of `day` from its 24 hours, if they are all settled: counts summed,
/// and for every owner and event type its hours' sketches merged. Written at the latest of
/// the hours' folds, or at `rewrite_at` (a rebuild replacing a row of the same folds).
async fn fold_day(
    store: &CassandraStore,
    partner: Uuid,
    day: Hour,
    rewrite_at: Option<i64>,
) -> Result<(), StoreError> {
    let end = Hour(day.0 + HOURS_PER_DAY);
    let rows = hour_rows(store, partner, day, end).await?;
    if rows.iter().any(|row| !row.is_settled()) {
        return Ok(());
    }
    let covers: i64 = rows.iter().filter_map(|row| row.folded_at).sum();
    let written_at = rewrite_at.unwrap_or_else(|| {
        rows.iter()
            .filter_map(|row| row.folded_at)
            .max()
            .unwrap_or(0)
    });
    let mut counts = HourCounts::default();
    for row in &rows {
        counts.merge(&row.counts()?);
    }
    let mut scopes: BTreeSet<(Uuid, String)> = BTreeSet::from([(partner, ALL_TYPES.to_string())]);
    for cell in &counts.cells {
        for owner in [partner, cell.subsystem_id] {
            scopes.insert((owner, ALL_TYPES.to_string()));
            scopes.insert((owner, cell.event_type.clone()));
        }
    }
    let ttl = ttl_seconds(store, partner).await?;
    let statements = &store.statements;
    let merges: Vec<_> = scopes
        .into_iter()
        .map(|(owner, event_type)| async move {
            let key = (owner, Some(event_type.as_str()));
            let sketches: Vec<(i32, Vec<u8>)> =
                rows_over(store, &statements.select_rollup_sketches, key, day, end).await?;
            let mut union = ActorUnion::default();
            for (_, bytes) in &sketches {
                union.add_sketch(&ActorSketch::from_bytes(bytes).map_err(StoreError::Corrupt)?);
            }
            let values = (
                owner,
                event_type.as_str(),
                period(day),
                column(day),
                union.to_sketch().to_bytes(),
                written_at,
                ttl,
            );
            store
                .execute(&statements.insert_rollup_day_sketch, values)
                .await
        })
        .collect();
    all(store, merges).await?;
    let encoded =
        postcard::to_stdvec(&counts).map_err(|error| StoreError::Corrupt(error.to_string()))?;
    store
        .execute(
            &statements.insert_rollup_day,
            (
                partner,
                period(day),
                column(day),
                covers,
                encoded,
                written_at,
                ttl,
            ),
        )
        .await
}

/// The rollups of a partner's raw events in hours `from..to`.
async fn recount(
    store: &CassandraStore,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<RollupDelta, StoreError> {
    let mut delta = RollupDelta::default();
    let mut query = EventQuery {
        scope: EventScope::Partner(partner),
        from: from.start(),
        to: to.start(),
        filter: Default::default(),
        limit: RECOUNT_PAGE,
        cursor: None,
        with_payload: false,
    };
    loop {
        let page = store.query_events(&query).await?;
        page.items.iter().for_each(|event| delta.add(event));
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return Ok(delta),
        }
    }
}

/// Stores `delta`'s rollups of `hour` as the fold of the touch `touched_at`, written at
/// cell timestamp `written_at`: sketches first, then the counts that mark it settled.
async fn store_fold(
    store: &CassandraStore,
    partner: Uuid,
    hour: Hour,
    delta: &RollupDelta,
    touched_at: i64,
    written_at: i64,
) -> Result<u64, StoreError> {
    let ttl = ttl_seconds(store, partner).await?;
    let statement = &store.statements.insert_rollup_sketch;
    let sketches: Vec<_> = delta
        .sketches()
        .filter(|(key, _)| key.hour == hour)
        .map(|(key, sketch)| {
            let event_type = key.event_type.clone().unwrap_or_default();
            let values = (
                key.owner,
                event_type,
                period(hour),
                column(hour),
                sketch.to_bytes(),
                written_at,
                ttl,
            );
            store.execute(statement, values)
        })
        .collect();
    all(store, sketches).await?;
    let counts = delta.counts_of(partner).remove(&hour).unwrap_or_default();
    let encoded =
        postcard::to_stdvec(&counts).map_err(|error| StoreError::Corrupt(error.to_string()))?;
    store
        .execute(
            &store.statements.fold_rollup_hour,
            (
                written_at,
                ttl,
                touched_at,
                encoded,
                partner,
                period(hour),
                column(hour),
            ),
        )
        .await?;
    Ok(counts.total())
}

/// The latest touch of one partner-hour.
async fn touched_at(
    store: &CassandraStore,
    partner: Uuid,
    hour: Hour,
) -> Result<Option<i64>, StoreError> {
    let rows = hour_rows(store, partner, hour, hour.next()).await?;
    Ok(rows.first().and_then(|row| row.touched_at))
}

/// Recounts the pending hours that no write has touched since `now - settle`.
pub(super) async fn settle(
    store: &CassandraStore,
    now: DateTime<Utc>,
) -> Result<SettleOutcome, StoreError> {
    let horizon = micros(now) - micros_of(store.rollup_settle);
    let mut outcome = SettleOutcome::default();
    let mut days: BTreeSet<(Uuid, Hour)> = BTreeSet::new();
    for shard in 0..PENDING_SHARDS {
        let pending: Vec<(Uuid, i32, i64)> = store
            .select(
                &store.statements.select_rollup_pending,
                (shard, PENDING_PER_ROUND),
            )
            .await?;
        let (due, waiting): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|(_, _, touched)| *touched <= horizon);
        outcome.waiting += waiting.len();
        let folds: Vec<_> = due
            .into_iter()
            .map(|(partner, hour, pending_touch)| async move {
                let hour = Hour(u32::try_from(hour).unwrap_or(0));
                let folded =
                    fold_pending(store, shard, partner, hour, pending_touch, horizon).await?;
                Ok::<_, StoreError>(folded.then_some((partner, hour.day())))
            })
            .collect();
        let folded: Vec<Option<(Uuid, Hour)>> = futures::stream::iter(folds)
            .buffer_unordered(FOLD_CONCURRENCY)
            .try_collect()
            .await?;
        outcome.folded += folded.iter().flatten().count();
        outcome.waiting += folded.iter().filter(|folded| folded.is_none()).count();
        days.extend(folded.into_iter().flatten());
    }
    // Days whose last hour has settled too get their day row, once per round.
    let ended = |day: &Hour| micros(Hour(day.0 + HOURS_PER_DAY).start()) <= horizon;
    let days: Vec<_> = days
        .into_iter()
        .filter(|(_, day)| ended(day))
        .map(|(partner, day)| fold_day(store, partner, day, None))
        .collect();
    futures::stream::iter(days)
        .buffer_unordered(FOLD_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(outcome)
}

/// Folds one pending hour if it is still settled; whether it did.
async fn fold_pending(
    store: &CassandraStore,
    shard: i32,
    partner: Uuid,
    hour: Hour,
    pending_touch: i64,
    horizon: i64,
) -> Result<bool, StoreError> {
    let done_at = match touched_at(store, partner, hour).await? {
        Some(touched) if touched > horizon => return Ok(false),
        Some(touched) => {
            let delta = recount(store, partner, hour, hour.next()).await?;
            store_fold(store, partner, hour, &delta, touched, touched).await?;
            touched
        }
        // The hour's touch expired with its events: nothing left to fold.
        None => pending_touch,
    };
    store
        .execute(
            &store.statements.delete_rollup_pending,
            (done_at, shard, partner, column(hour)),
        )
        .await?;
    Ok(true)
}

fn micros_of(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// Hours of `from..to` one recount covers at most (bounds a rebuild's memory).
const REBUILD_HOURS: u32 = 24;

/// Recounts a partner's hours `from..to`: settled ones are stored at once; those still
/// being written to, or with events but no touch (written before rollups existed), are
/// touched and left to `settle`. The number of events recounted.
pub(super) async fn rebuild(
    store: &CassandraStore,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<u64, StoreError> {
    let now = Utc::now();
    let horizon = micros(now) - micros_of(store.rollup_settle);
    let mut recounted = 0;
    let mut start = from;
    while start < to {
        let end = Hour(start.0.saturating_add(REBUILD_HOURS).min(to.0));
        let touches: HashMap<Hour, Option<i64>> = hour_rows(store, partner, start, end)
            .await?
            .into_iter()
            .map(|row| (row.hour(), row.touched_at))
            .collect();
        let delta = recount(store, partner, start, end).await?;
        let counted: BTreeSet<Hour> = delta.counts_of(partner).into_keys().collect();
        let mut untouched = HashMap::new();
        for hour in counted
            .iter()
            .chain(touches.keys())
            .collect::<BTreeSet<_>>()
        {
            match touches.get(hour).copied().flatten() {
                Some(touched) if touched <= horizon => {
                    recounted +=
                        store_fold(store, partner, *hour, &delta, touched, micros(now)).await?;
                }
                Some(_) => {}
                None => {
                    untouched.insert((partner, *hour), ttl_seconds(store, partner).await?);
                }
            }
        }
        touch(store, &untouched).await?;
        start = end;
    }
    // Day rows built from the hours just replaced are rebuilt too.
    let ended = |day: &Hour| micros(Hour(day.0 + HOURS_PER_DAY).start()) <= horizon;
    let mut day = from.day();
    while day < to {
        if ended(&day) {
            fold_day(store, partner, day, Some(micros(now))).await?;
        }
        day = Hour(day.0 + HOURS_PER_DAY);
    }
    Ok(recounted)
}

/// The settled hours of `from..to`, and the current day rows of the days inside it, whose
/// counts differ from a recount (unsettled hours are read raw, so they cannot be wrong).
pub(super) async fn verify(
    store: &CassandraStore,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<Vec<RollupDifference>, StoreError> {
    let mut found = Vec::new();
    let mut by_day: BTreeMap<Hour, HourCounts> = BTreeMap::new();
    let mut start = from;
    while start < to {
        let end = Hour(start.0.saturating_add(REBUILD_HOURS).min(to.0));
        let mut stored = BTreeMap::new();
        let mut unsettled = BTreeSet::new();
        for row in hour_rows(store, partner, start, end).await? {
            if row.is_settled() {
                stored.insert(row.hour(), row.counts()?);
            } else {
                unsettled.insert(row.hour());
            }
        }
        let mut recounted = recount(store, partner, start, end)
            .await?
            .counts_of(partner);
        for (hour, counts) in &recounted {
            by_day.entry(hour.day()).or_default().merge(counts);
        }
        recounted.retain(|hour, _| !unsettled.contains(hour));
        found.extend(differences(&stored, &recounted));
        start = end;
    }
    let folds: Vec<HourFold> = rows_over(
        store,
        &store.statements.select_rollup_hour_folds,
        (partner, None),
        from,
        to,
    )
    .await?;
    let covers = covers_by_day(&folds);
    let days: Vec<DayRow> = rows_over(
        store,
        &store.statements.select_rollup_days,
        (partner, None),
        from,
        to,
    )
    .await?;
    for row in days {
        let day = Hour(u32::try_from(row.day).unwrap_or(0));
        let inside = from <= day && day.0 + HOURS_PER_DAY <= to.0;
        if inside && row.covers.is_some() && row.covers == covers.get(&day).copied() {
            let stored = BTreeMap::from([(day, decode_counts(row.counts.as_deref())?)]);
            let recounted = BTreeMap::from([(day, by_day.remove(&day).unwrap_or_default())]);
            found.extend(
                differences(&stored, &recounted)
                    .into_iter()
                    .map(|difference| RollupDifference {
                        hours: HOURS_PER_DAY,
                        ..difference
                    }),
            );
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

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
