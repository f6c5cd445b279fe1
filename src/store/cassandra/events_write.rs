//! Writing events. Each client-chosen id is first claimed (`event_claims`), so an id is
//! stored once across writers and instances; the rows then go out as unlogged batches, one
//! partition per batch, split to stay under the size limit.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use futures::{StreamExt, TryStreamExt};
use scylla::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

use super::event_claims::{Claim, claim};
use super::joins;
use super::rows::EventRow;
use super::{CassandraStore, driver_error, rollups};
use crate::model::Event;
use crate::rollups::Hour;
use crate::store::{StoreError, WriteOutcome};

/// Cassandra's largest TTL (20 years).
const MAX_TTL_SECONDS: i64 = 630_720_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// Bind values of an events insert: the row, then `USING TTL ?` (0 = never expires).
#[derive(SerializeRow)]
#[scylla(flavor = "enforce_order", skip_name_checks)]
struct EventInsert {
    #[scylla(flatten)]
    row: EventRow,
    ttl_seconds: i32,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum EventsTable {
    ByPartner,
    BySubsystem,
}

/// One partition of one events table.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct PartitionKey {
    table: EventsTable,
    owner: Uuid,
    day: NaiveDate,
    bucket: i32,
}

impl PartitionKey {
    fn of(table: EventsTable, row: &EventRow) -> PartitionKey {
        let owner = match table {
            EventsTable::ByPartner => row.partner_id,
            EventsTable::BySubsystem => row.subsystem_id,
        };
        PartitionKey {
            table,
            owner,
            day: row.day,
            bucket: row.bucket,
        }
    }
}

pub async fn write_events(
    store: &CassandraStore,
    events: &[Event],
) -> Result<WriteOutcome, StoreError> {
    let mut outcome = WriteOutcome::default();
    let mut seen = HashSet::with_capacity(events.len());
    let mut first_writes = Vec::with_capacity(events.len());
    for event in events {
        if seen.insert((event.partner_id, event.event_id.as_str())) {
            first_writes.push(event);
        } else {
            outcome.duplicates += 1;
        }
    }
    // Futures built up front: a closure over borrowed events inside the stream would not
    // be `Send` for every lifetime, which the async trait requires.
    let pending_claims: Vec<_> = first_writes
        .iter()
        .map(|event| claim(store, event))
        .collect();
    let claims: Vec<Claim> = futures::stream::iter(pending_claims)
        .buffer_unordered(store.write_concurrency)
        .try_collect()
        .await?;
    let mut partitions: HashMap<PartitionKey, Vec<EventInsert>> = HashMap::new();
    let mut hours: HashMap<(Uuid, Hour), i32> = HashMap::new();
    for claim in claims {
        let (row, ttl_seconds) = match claim {
            Claim::Store(row, ttl_seconds) => (*row, ttl_seconds),
            Claim::CompleteSubsystemRow(row, ttl_seconds) => {
                outcome.duplicates += 1;
                let key = PartitionKey::of(EventsTable::BySubsystem, &row);
                partitions.entry(key).or_default().push(EventInsert {
                    row: *row,
                    ttl_seconds,
                });
                continue;
            }
            Claim::Duplicate => {
                outcome.duplicates += 1;
                continue;
            }
        };
        outcome.inserted += 1;
        let hour = hours
            .entry((row.partner_id, Hour::of(row.event_time)))
            .or_insert(ttl_seconds);
        *hour = longest_ttl(*hour, ttl_seconds);
        partitions
            .entry(PartitionKey::of(EventsTable::BySubsystem, &row))
            .or_default()
            .push(EventInsert {
                row: row.clone(),
                ttl_seconds,
            });
        partitions
            .entry(PartitionKey::of(EventsTable::ByPartner, &row))
            .or_default()
            .push(EventInsert { row, ttl_seconds });
    }
    // Days and hours marked before the rows: a reader may see one marked and empty, never
    // rows in one that is not marked. Joins of duplicates too: a batch retried after its
    // claims were written still records them (the first pairing wins, so again is a no-op).
    futures::try_join!(
        record_event_days(store, &partitions),
        rollups::touch(store, &hours),
        joins::record(store, &first_writes),
    )?;
    let batches: Vec<(EventsTable, Vec<EventInsert>)> = partitions
        .into_iter()
        .flat_map(|(key, inserts)| {
            split_by_size(inserts, store.max_batch_bytes)
                .into_iter()
                .map(move |chunk| (key.table, chunk))
        })
        .collect();
    let pending_batches: Vec<_> = batches
        .into_iter()
        .map(|(table, inserts)| write_batch(store, table, inserts))
        .collect();
    futures::stream::iter(pending_batches)
        .buffer_unordered(store.write_concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(outcome)
}

/// Marks the days the rows fall on, per owner, before the rows are written (a day marked
/// but left empty by a failed write only costs readers one empty partition read). The
/// mark lives as long as the longest-lived row written with it (TTL 0: forever).
async fn record_event_days(
    store: &CassandraStore,
    partitions: &HashMap<PartitionKey, Vec<EventInsert>>,
) -> Result<(), StoreError> {
    let mut days: HashMap<(Uuid, NaiveDate), i32> = HashMap::new();
    for (key, inserts) in partitions {
        for insert in inserts {
            let ttl = days
                .entry((key.owner, key.day))
                .or_insert(insert.ttl_seconds);
            *ttl = longest_ttl(*ttl, insert.ttl_seconds);
        }
    }
    let pending: Vec<_> = days
        .into_iter()
        .map(|((owner, day), ttl_seconds)| {
            store.execute(
                &store.statements.insert_event_day,
                (owner, day, ttl_seconds),
            )
        })
        .collect();
    futures::stream::iter(pending)
        .buffer_unordered(store.write_concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// The longer of two TTLs, where 0 means forever.
fn longest_ttl(a: i32, b: i32) -> i32 {
    if a == 0 || b == 0 { 0 } else { a.max(b) }
}

/// The partner's `retentionDays` in seconds (0: kept until deleted), cached briefly.
pub(super) async fn ttl_seconds(
    store: &CassandraStore,
    partner_id: Uuid,
) -> Result<i32, StoreError> {
    use crate::store::MetadataStore;
    let retention_days = store
        .retention_days
        .try_get_with(partner_id, async {
            let partner = store.partner(partner_id).await?;
            Ok::<_, StoreError>(partner.and_then(|partner| partner.retention_days))
        })
        .await
        .map_err(|error| StoreError::Unavailable(error.to_string()))?;
    let seconds = retention_days.map_or(0, |days| {
        (i64::from(days) * SECONDS_PER_DAY).min(MAX_TTL_SECONDS)
    });
    Ok(i32::try_from(seconds).unwrap_or(i32::MAX))
}

/// Groups of consecutive inserts whose rows together stay under `max_bytes` (a single
/// larger row still goes alone: Cassandra decides about it).
fn split_by_size(inserts: Vec<EventInsert>, max_bytes: usize) -> Vec<Vec<EventInsert>> {
    let mut chunks = Vec::new();
    let mut current: Vec<EventInsert> = Vec::new();
    let mut current_bytes = 0;
    for insert in inserts {
        let size = insert.row.approximate_size();
        if !current.is_empty() && current_bytes + size > max_bytes {
            chunks.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current_bytes += size;
        current.push(insert);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

async fn write_batch(
    store: &CassandraStore,
    table: EventsTable,
    inserts: Vec<EventInsert>,
) -> Result<(), StoreError> {
    let statement: &PreparedStatement = match table {
        EventsTable::ByPartner => &store.statements.insert_event_by_partner,
        EventsTable::BySubsystem => &store.statements.insert_event_by_subsystem,
    };
    if let [single] = inserts.as_slice() {
        return store.execute(statement, single).await;
    }
    let mut batch = Batch::new(BatchType::Unlogged);
    for _ in &inserts {
        batch.append_statement(statement.clone());
    }
    // Every statement is an idempotent upsert into the same partition.
    batch.set_is_idempotent(true);
    store
        .session
        .batch(&batch, &inserts)
        .await
        .map_err(driver_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::JsonObject;
    use crate::model::test_support::sample_event;
    use crate::store::cassandra::rows::Placement;

    fn insert(properties_bytes: usize) -> EventInsert {
        let mut event = sample_event("x");
        event.properties = JsonObject::parse(
            serde_json::json!({ "blob": "a".repeat(properties_bytes) }).to_string(),
        )
        .unwrap();
        let placement = Placement::of(&event, 1);
        EventInsert {
            row: EventRow::from_event(&event, placement).unwrap(),
            ttl_seconds: 0,
        }
    }

    #[test]
    fn batches_are_split_to_stay_under_the_size_limit() {
        let inserts: Vec<EventInsert> = (0..10).map(|_| insert(10_000)).collect();
        let chunks = split_by_size(inserts, 40 * 1024);
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 10);
        for chunk in &chunks {
            let bytes: usize = chunk.iter().map(|i| i.row.approximate_size()).sum();
            assert!(bytes <= 40 * 1024, "{bytes}");
        }
    }

    #[test]
    fn an_oversized_row_goes_alone() {
        let chunks = split_by_size(vec![insert(10), insert(60_000), insert(10)], 40 * 1024);
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1, 1]);
    }
}
