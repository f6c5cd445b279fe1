//! Events in the embedded store. The by-partner table holds each event's row; the
//! by-subsystem table holds only the partner id, since the rest of its key is the same
//! as the partner row's (time and event id): an event's body is stored once. Client-chosen
//! ids are de-duplicated through the id index; server-made ids (UUIDv7) are unique by
//! construction and skip it, as in the Cassandra store. A client id never replaces a
//! server-made event that has the same time and id.

use std::sync::Arc;

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, Table as WriteTable};
use uuid::Uuid;

use super::{
    EVENT_IDS, EVENTS_BY_PARTNER, EVENTS_BY_SUBSYSTEM, EmbeddedStore, keys, rollups, rows,
    storage_error,
};
use crate::model::Event;
use crate::rollups::RollupDelta;
use crate::store::{EventPage, EventQuery, EventScope, EventStore, StoreError, WriteOutcome};

/// Rows one page may read past filters before it returns early with a cursor, so a
/// selective filter over a long range can't hold a read for long.
const MAX_ROWS_SCANNED_PER_PAGE: usize = 50_000;

type EventTable<'txn> = WriteTable<'txn, &'static [u8], &'static [u8]>;

/// Inserts one event's rows unless its id was stored before; whether it was new.
fn insert_event(
    event: &Event,
    by_partner: &mut EventTable<'_>,
    by_subsystem: &mut EventTable<'_>,
    event_ids: &mut EventTable<'_>,
) -> Result<bool, StoreError> {
    let id_bytes = rows::event_id_bytes(&event.event_id);
    if event.client_event_id {
        let id_key = keys::prefixed(event.partner_id, &id_bytes);
        if event_ids
            .get(id_key.as_slice())
            .map_err(storage_error)?
            .is_some()
        {
            return Ok(false);
        }
        let micros = event.timestamp.timestamp_micros().to_be_bytes();
        event_ids
            .insert(id_key.as_slice(), micros.as_slice())
            .map_err(storage_error)?;
    }
    let row = rows::encode(event)?;
    let partner_key = keys::event_key(event.partner_id, event.timestamp, &id_bytes);
    let replaced = by_partner
        .insert(partner_key.as_slice(), row.as_slice())
        .map_err(storage_error)?
        .map(|earlier| earlier.value().to_vec());
    if let Some(earlier) = replaced {
        // Only a server-made event can hold a key the id index does not know: a client id
        // naming it is a duplicate and never replaces it (put back, rare, so the common
        // path costs no extra lookup).
        by_partner
            .insert(partner_key.as_slice(), earlier.as_slice())
            .map_err(storage_error)?;
        return Ok(false);
    }
    let subsystem_key = keys::event_key(event.subsystem_id, event.timestamp, &id_bytes);
    by_subsystem
        .insert(
            subsystem_key.as_slice(),
            event.partner_id.as_bytes().as_slice(),
        )
        .map_err(storage_error)?;
    Ok(true)
}

#[async_trait]
impl EventStore for EmbeddedStore {
    async fn write_events(&self, events: &[Event]) -> Result<WriteOutcome, StoreError> {
        self.write_batch(events.into()).await
    }

    async fn write_batch(&self, events: Arc<[Event]>) -> Result<WriteOutcome, StoreError> {
        self.blocking(move |database| {
            let transaction = database.begin_write().map_err(storage_error)?;
            let mut outcome = WriteOutcome::default();
            // Only what this transaction inserts is counted, in this same transaction.
            let mut delta = RollupDelta::default();
            {
                let mut by_partner = transaction
                    .open_table(EVENTS_BY_PARTNER)
                    .map_err(storage_error)?;
                let mut by_subsystem = transaction
                    .open_table(EVENTS_BY_SUBSYSTEM)
                    .map_err(storage_error)?;
                let mut event_ids = transaction.open_table(EVENT_IDS).map_err(storage_error)?;
                for event in events.iter() {
                    if insert_event(event, &mut by_partner, &mut by_subsystem, &mut event_ids)? {
                        outcome.inserted += 1;
                        delta.add(event);
                    } else {
                        outcome.duplicates += 1;
                    }
                }
            }
            if !delta.is_empty() {
                rollups::apply(&transaction, &delta)?;
            }
            transaction.commit().map_err(storage_error)?;
            Ok(outcome)
        })
        .await
    }

    async fn query_events(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        let query = query.clone();
        self.blocking(move |database| {
            let (table, owner) = match query.scope {
                EventScope::Partner(id) => (EVENTS_BY_PARTNER, id),
                EventScope::Subsystem(id) => (EVENTS_BY_SUBSYSTEM, id),
            };
            let range = keys::time_range(owner, query.from, query.to, query.cursor.as_deref())?;
            let transaction = database.begin_read().map_err(storage_error)?;
            let index = transaction.open_table(table).map_err(storage_error)?;
            let bodies = transaction
                .open_table(EVENTS_BY_PARTNER)
                .map_err(storage_error)?;
            let mut rows = index
                .range::<&[u8]>(keys::borrowed(&range))
                .map_err(storage_error)?
                .rev();
            let mut items = Vec::with_capacity(query.limit.min(1024));
            let mut last_key: Option<Vec<u8>> = None;
            let mut scanned = 0usize;
            while items.len() < query.limit && scanned < MAX_ROWS_SCANNED_PER_PAGE {
                let Some(row) = rows.next() else {
                    return Ok(EventPage {
                        items,
                        next_cursor: None,
                    });
                };
                let (key, value) = row.map_err(storage_error)?;
                scanned += 1;
                let key = key.value();
                let event = match query.scope {
                    EventScope::Partner(partner_id) => {
                        decode(partner_id, key, value.value(), query.with_payload)?
                    }
                    EventScope::Subsystem(_) => {
                        let partner_id = Uuid::from_slice(value.value())
                            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
                        let partner_key = keys::reowned(partner_id, key);
                        let body = bodies
                            .get(partner_key.as_slice())
                            .map_err(storage_error)?
                            .ok_or_else(|| {
                                StoreError::Corrupt("a subsystem row without its event".into())
                            })?;
                        decode(partner_id, key, body.value(), query.with_payload)?
                    }
                };
                last_key = Some(key.to_vec());
                // Keys hold whole microseconds: the exact time settles a bound inside one.
                let in_range = query.from <= event.timestamp && event.timestamp < query.to;
                if in_range && query.filter.matches(&event) {
                    items.push(event);
                }
            }
            let more_rows = rows.next().is_some();
            let next_cursor = if more_rows { last_key } else { None };
            Ok(EventPage { items, next_cursor })
        })
        .await
    }
}

/// The event of a row whose key is `owner | time | event id` (any owner).
fn decode(partner_id: Uuid, key: &[u8], row: &[u8], payload: bool) -> Result<Event, StoreError> {
    let (micros, id_bytes) = keys::split_event_key(key)?;
    let parts = rows::KeyParts {
        partner_id,
        micros,
        event_id: rows::event_id_from_bytes(id_bytes)?,
    };
    rows::decode(parts, row, payload)
}
