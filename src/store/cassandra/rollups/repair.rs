//! Repairs over a partner's range: `rebuild` recounts and replaces its rollups, `verify`
//! reports where the stored ones differ from a recount. Both walk the range in bounded
//! pieces and recount hour by hour, so memory holds one hour's recount (and one day's
//! counts), however long the range.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{NaiveDate, NaiveTime, Utc};
use uuid::Uuid;

use super::breakdowns::recount_hours;
use super::horizon::{Horizon, chunks, day_end, days};
use super::layout::{HourFold, covers_by_day, day_rows, hour_folds, hour_rows};
use super::recount::{fold_day, recount, store_fold};
use super::touch::touch;
use super::{CassandraStore, micros};
use crate::rollups::{HOURS_PER_DAY, Hour, HourCounts, RollupDifference, differences};
use crate::store::StoreError;
use crate::store::cassandra::events_write::ttl_seconds;

/// Recounts a partner's hours `from..to`, one hour at a time (memory holds one hour's
/// recount): settled ones are stored at once; those still being written to, or with events
/// but no touch (written before rollups existed), are touched and left to `settle`. Only
/// hours with a fold row or on a day with events are visited. The number of events
/// recounted.
pub(in crate::store::cassandra) async fn rebuild(
    store: &CassandraStore,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<u64, StoreError> {
    rebuild_where(store, partner, (from, to), |_| true).await
}

/// `rebuild` of only the hours of `from..to` that `wanted` names (an erasure's).
pub(in crate::store::cassandra) async fn rebuild_where(
    store: &CassandraStore,
    partner: Uuid,
    (from, to): (Hour, Hour),
    wanted: impl Fn(Hour) -> bool,
) -> Result<u64, StoreError> {
    let now = Utc::now();
    let horizon = Horizon::new(now, store.rollup_settle);
    let event_days = days_with_events(store, partner, from, to).await?;
    let mut recounted = 0;
    let mut visited_days = BTreeSet::new();
    for (start, end) in chunks(from, to) {
        let touches: HashMap<Hour, Option<i64>> = hour_folds(store, partner, start, end)
            .await?
            .into_iter()
            .map(|fold| (fold.hour(), fold.touched_at))
            .collect();
        let hours: BTreeSet<Hour> = (start.0..end.0)
            .map(Hour)
            .filter(|hour| touches.contains_key(hour) || event_days.contains(&hour.day()))
            .filter(|hour| wanted(*hour))
            .collect();
        let mut untouched = HashMap::new();
        for hour in hours {
            let touched = touches.get(&hour).copied().flatten();
            if touched.is_some_and(|touched| !horizon.settles(touched)) {
                continue; // still being written to: `settle` folds it later
            }
            let (delta, breakdowns) = recount_hours(store, partner, hour, hour.next()).await?;
            let counted = !delta.is_empty();
            match touched {
                Some(touched) if horizon.settles(touched) => {
                    let fold = (&delta, &breakdowns);
                    recounted +=
                        store_fold(store, partner, hour, fold, touched, micros(now)).await?;
                    visited_days.insert(hour.day());
                }
                Some(_) => {}
                None if counted => {
                    untouched.insert((partner, hour), ttl_seconds(store, partner).await?);
                }
                None => {}
            }
        }
        touch(store, &untouched).await?;
    }
    // Day rows built from the hours just replaced are rebuilt too.
    for day in days(from, to).filter(|day| horizon.has_ended(*day) && visited_days.contains(day)) {
        fold_day(store, partner, day, Some(micros(now))).await?;
    }
    Ok(recounted)
}

/// The UTC days (by first hour) in `from..to` on which the partner has events.
async fn days_with_events(
    store: &CassandraStore,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<BTreeSet<Hour>, StoreError> {
    if from >= to {
        return Ok(BTreeSet::new());
    }
    let (first, last) = (
        from.start().date_naive(),
        Hour(to.0 - 1).start().date_naive(),
    );
    let rows: Vec<(NaiveDate,)> = store
        .select(&store.statements.select_event_days, (partner, first, last))
        .await?;
    Ok(rows
        .into_iter()
        .map(|(day,)| Hour::of(day.and_time(NaiveTime::MIN).and_utc()))
        .collect())
}

/// The settled hours of `from..to`, and the current day rows of the days inside it, whose
/// counts differ from a recount (unsettled hours are read raw, so they cannot be wrong).
/// Walks a day at a time, recounting hour by hour, and only days with events or rollups.
pub(in crate::store::cassandra) async fn verify(
    store: &CassandraStore,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<Vec<RollupDifference>, StoreError> {
    let event_days = days_with_events(store, partner, from, to).await?;
    let mut found = Vec::new();
    for day in days(from, to) {
        let (start, end) = (day.max(from), day_end(day).min(to));
        let rows = hour_rows(store, partner, day, day_end(day)).await?;
        if rows.is_empty() && !event_days.contains(&day) {
            continue;
        }
        let mut stored = BTreeMap::new();
        let mut unsettled = BTreeSet::new();
        let mut folds = Vec::with_capacity(rows.len());
        for row in rows {
            match (row.fold.is_settled(), row.counts()?) {
                (true, Some(counts)) => {
                    stored.insert(row.fold.hour(), counts);
                }
                _ => {
                    unsettled.insert(row.fold.hour());
                }
            }
            folds.push(row.fold);
        }
        stored.retain(|hour, _| start <= *hour && *hour < end);
        let mut recounted = BTreeMap::new();
        let mut whole_day = HourCounts::default();
        for hour in (day.0..day_end(day).0).map(Hour) {
            let counts = recount(store, partner, hour, hour.next()).await?;
            if let Some(counts) = counts.counts_of(partner).remove(&hour) {
                whole_day.merge(&counts);
                let wanted = start <= hour && hour < end && !unsettled.contains(&hour);
                if wanted {
                    recounted.insert(hour, counts);
                }
            }
        }
        found.extend(differences(&stored, &recounted));
        if from <= day && day_end(day) <= to {
            found.extend(day_difference(store, partner, day, &folds, whole_day).await?);
        }
    }
    Ok(found)
}

/// The day row of `day`, if current, against the recount of the whole day.
async fn day_difference(
    store: &CassandraStore,
    partner: Uuid,
    day: Hour,
    folds: &[HourFold],
    recounted: HourCounts,
) -> Result<Vec<RollupDifference>, StoreError> {
    let covers = covers_by_day(folds);
    let mut found = Vec::new();
    for row in day_rows(store, partner, day, day.next()).await? {
        let counts = match row.counts()? {
            Some(counts) if row.is_current(&covers) => counts,
            _ => continue,
        };
        let stored = BTreeMap::from([(day, counts)]);
        let recounted = BTreeMap::from([(day, recounted.clone())]);
        found.extend(
            differences(&stored, &recounted)
                .into_iter()
                .map(|difference| RollupDifference {
                    hours: HOURS_PER_DAY,
                    ..difference
                }),
        );
    }
    Ok(found)
}
