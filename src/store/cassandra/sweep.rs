//! Cassandra's retention sweep, for a retention shortened after events were written (their
//! TTL covers the rest): every UTC day that ended before the cutoff goes whole. Its events
//! are read an hour at a time for what must go with them (the sketches they were counted
//! in, their id claims, their anonymous ids' hours), then its day partitions are deleted (the partner's and its
//! subsystems', every bucket) and its hours recounted empty.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use uuid::Uuid;

use super::CassandraStore;
use super::erase::{delete_claims, events_of};
use super::rollups::{all, drop_sketches, rebuild_where};
use crate::model::Event;
use crate::rollups::{HOURS_PER_DAY, Hour, RollupDelta};
use crate::store::{Erased, StoreError};

pub(super) async fn sweep(
    store: &CassandraStore,
    partner: Uuid,
    cutoff: DateTime<Utc>,
) -> Result<Erased, StoreError> {
    let Some(last) = cutoff.date_naive().pred_opt() else {
        return Ok(Erased::default());
    };
    let days: Vec<(NaiveDate,)> = store
        .select(
            &store.statements.select_event_days,
            (partner, NaiveDate::MIN, last),
        )
        .await?;
    let mut swept = Erased::default();
    for (day,) in days {
        let erased = sweep_day(store, partner, day).await?;
        swept.events += erased.events;
        swept.hours += erased.hours;
    }
    Ok(swept)
}

async fn sweep_day(
    store: &CassandraStore,
    partner: Uuid,
    day: NaiveDate,
) -> Result<Erased, StoreError> {
    let first = Hour::of(day.and_time(NaiveTime::MIN).and_utc());
    let end = Hour(first.0 + HOURS_PER_DAY);
    let mut swept = Erased::default();
    let mut subsystems = BTreeSet::new();
    for hour in (first.0..end.0).map(Hour) {
        let events = events_of(store, partner, hour, |_| true).await?;
        if events.is_empty() {
            continue;
        }
        let mut counted = RollupDelta::default();
        events.iter().for_each(|event| counted.add(event));
        drop_sketches(store, &counted).await?;
        delete_claims(store, partner, &events).await?;
        forget_anonymous_hour(store, partner, hour, &events).await?;
        subsystems.extend(events.iter().map(|event| event.subsystem_id));
        swept.events += events.len() as u64;
        swept.hours += 1;
    }
    let statements = &store.lifecycle_statements;
    let buckets = 0..i32::try_from(store.buckets).unwrap_or(i32::MAX);
    let partitions: Vec<_> = buckets
        .clone()
        .map(|bucket| store.execute(&statements.delete_partner_day, (partner, day, bucket)))
        .collect();
    all(store, partitions).await?;
    let of_subsystems: Vec<_> = subsystems
        .iter()
        .flat_map(|subsystem| buckets.clone().map(move |bucket| (*subsystem, bucket)))
        .map(|(subsystem, bucket)| {
            store.execute(&statements.delete_subsystem_day, (subsystem, day, bucket))
        })
        .collect();
    all(store, of_subsystems).await?;
    rebuild_where(store, partner, (first, end), |_| true).await?;
    let owners = std::iter::once(partner).chain(subsystems);
    let days: Vec<_> = owners
        .map(|owner| store.execute(&statements.delete_event_day, (owner, day)))
        .collect();
    all(store, days).await?;
    Ok(swept)
}

/// Deletes the rows recording that the hour held events of anonymous ids without a user.
async fn forget_anonymous_hour(
    store: &CassandraStore,
    partner: Uuid,
    hour: Hour,
    events: &[Event],
) -> Result<(), StoreError> {
    let anonymous: BTreeSet<&str> = events
        .iter()
        .filter(|event| event.user_id.is_none())
        .filter_map(|event| event.anonymous_id.as_deref())
        .collect();
    let statement = &store.lifecycle_statements.delete_anonymous_hour;
    let column = i32::try_from(hour.0).unwrap_or(i32::MAX);
    let deletions: Vec<_> = anonymous
        .into_iter()
        .map(|anonymous| store.execute(statement, (partner, anonymous, column)))
        .collect();
    all(store, deletions).await
}
