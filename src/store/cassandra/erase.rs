//! Erasing a person's events from some hours on Cassandra: the hours' events are read a
//! page at a time; the sketches those the erasure covers were counted in are dropped, the
//! events deleted from both events tables and the id claims, then the hours recounted
//! (`rollups::rebuild_where`: counts, sketches, breakdown cells and postings, then their
//! day). Every step is idempotent, so a job resumed after a crash finishes what the
//! crashed one began.

use uuid::Uuid;

use super::CassandraStore;
use super::rollups::{all, drop_sketches, rebuild_where};
use super::rows::Placement;
use crate::model::{Erasure, Event};
use crate::rollups::{Hour, RollupDelta};
use crate::store::{Erased, EventQuery, EventScope, EventStore, StoreError};

/// Events read per page while looking for the covered ones.
const PAGE: usize = 1_000;

pub(super) async fn erase_hours(
    store: &CassandraStore,
    erasure: &Erasure,
    hours: &[Hour],
) -> Result<Erased, StoreError> {
    let partner = erasure.partner_id;
    let mut erased = Erased::default();
    for hour in hours {
        let covered = events_of(store, partner, *hour, |event| erasure.covers_event(event)).await?;
        if covered.is_empty() {
            continue;
        }
        let mut counted = RollupDelta::default();
        covered.iter().for_each(|event| counted.add(event));
        drop_sketches(store, &counted).await?;
        delete(store, partner, &covered).await?;
        erased.events += covered.len() as u64;
        erased.hours += 1;
    }
    // Every hour asked for is recounted, those without covered events left too: its
    // postings still named the person, so a crashed round deleted them before recounting.
    if let (Some(first), Some(last)) = (hours.first(), hours.last()) {
        rebuild_where(store, partner, (*first, last.next()), |hour| {
            hours.contains(&hour)
        })
        .await?;
    }
    Ok(erased)
}

/// The events of the partner's `hour` that `wanted` takes (without payload).
pub(super) async fn events_of(
    store: &CassandraStore,
    partner: Uuid,
    hour: Hour,
    wanted: impl Fn(&Event) -> bool,
) -> Result<Vec<Event>, StoreError> {
    let mut query = EventQuery {
        scope: EventScope::Partner(partner),
        from: hour.start(),
        to: hour.next().start(),
        filter: Default::default(),
        limit: PAGE,
        cursor: None,
        with_payload: false,
    };
    let mut covered = Vec::new();
    loop {
        let page = store.query_events(&query).await?;
        covered.extend(page.items.into_iter().filter(|event| wanted(event)));
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return Ok(covered),
        }
    }
}

async fn delete(store: &CassandraStore, partner: Uuid, events: &[Event]) -> Result<(), StoreError> {
    delete_rows(store, partner, events).await?;
    delete_claims(store, partner, events).await
}

async fn delete_rows(
    store: &CassandraStore,
    partner: Uuid,
    events: &[Event],
) -> Result<(), StoreError> {
    let statements = &store.lifecycle_statements;
    let mut deletions = Vec::with_capacity(events.len() * 2);
    for event in events {
        let Placement {
            day,
            event_time,
            bucket,
        } = Placement::of(event, store.buckets);
        let id = event.event_id.as_str();
        let (by_partner, by_subsystem) = (
            (partner, day, bucket, event_time, id),
            (event.subsystem_id, day, bucket, event_time, id),
        );
        deletions.push(store.execute(&statements.delete_event_by_partner, by_partner));
        deletions.push(store.execute(&statements.delete_event_by_subsystem, by_subsystem));
    }
    all(store, deletions).await
}

/// Deletes the events' id claims (a client may send the ids again).
pub(super) async fn delete_claims(
    store: &CassandraStore,
    partner: Uuid,
    events: &[Event],
) -> Result<(), StoreError> {
    let statement = &store.lifecycle_statements.delete_event_id;
    let claims: Vec<_> = events
        .iter()
        .map(|event| store.execute(statement, (partner, event.event_id.as_str())))
        .collect();
    all(store, claims).await
}
