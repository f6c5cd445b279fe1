//! Repairs over a partner's range: `rebuild` recounts and replaces its rollups, `verify`
//! reports where the stored ones differ from a recount. Both walk the range in chunks.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::Utc;
use uuid::Uuid;

use super::horizon::{Horizon, chunks, day_end, days};
use super::layout::{covers_by_day, day_rows, hour_folds, hour_rows};
use super::recount::{fold_day, recount, store_fold};
use super::touch::touch;
use super::{CassandraStore, micros};
use crate::rollups::{HOURS_PER_DAY, Hour, HourCounts, RollupDifference, differences};
use crate::store::StoreError;
use crate::store::cassandra::events_write::ttl_seconds;

/// Recounts a partner's hours `from..to`: settled ones are stored at once; those still
/// being written to, or with events but no touch (written before rollups existed), are
/// touched and left to `settle`. The number of events recounted.
pub(in crate::store::cassandra) async fn rebuild(
    store: &CassandraStore,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<u64, StoreError> {
    let now = Utc::now();
    let horizon = Horizon::new(now, store.rollup_settle);
    let mut recounted = 0;
    for (start, end) in chunks(from, to) {
        let touches: HashMap<Hour, Option<i64>> = hour_rows(store, partner, start, end)
            .await?
            .into_iter()
            .map(|row| (row.fold.hour(), row.fold.touched_at))
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
                Some(touched) if horizon.settles(touched) => {
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
    }
    // Day rows built from the hours just replaced are rebuilt too.
    for day in days(from, to).filter(|day| horizon.has_ended(*day)) {
        fold_day(store, partner, day, Some(micros(now))).await?;
    }
    Ok(recounted)
}

/// The settled hours of `from..to`, and the current day rows of the days inside it, whose
/// counts differ from a recount (unsettled hours are read raw, so they cannot be wrong).
pub(in crate::store::cassandra) async fn verify(
    store: &CassandraStore,
    partner: Uuid,
    from: Hour,
    to: Hour,
) -> Result<Vec<RollupDifference>, StoreError> {
    let mut found = Vec::new();
    let mut by_day: BTreeMap<Hour, HourCounts> = BTreeMap::new();
    for (start, end) in chunks(from, to) {
        let mut stored = BTreeMap::new();
        let mut unsettled = BTreeSet::new();
        for row in hour_rows(store, partner, start, end).await? {
            if row.fold.is_settled() {
                stored.insert(row.fold.hour(), row.counts()?);
            } else {
                unsettled.insert(row.fold.hour());
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
    }
    let covers = covers_by_day(&hour_folds(store, partner, from, to).await?);
    for row in day_rows(store, partner, from, to).await? {
        let day = row.day();
        let inside = from <= day && day_end(day) <= to;
        if inside && row.is_current(&covers) {
            let stored = BTreeMap::from([(day, row.counts()?)]);
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
