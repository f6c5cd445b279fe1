use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable};

use super::{
    EVENT_IDS, EVENTS_BY_PARTNER, EVENTS_BY_SUBSYSTEM, EmbeddedStore, from_json, keys,
    storage_error, to_json,
};
use crate::store::{
    EventPage, EventQuery, EventScope, EventStore, StoreError, StoredEvent, WriteOutcome,
};

/// Rows one page may read past filters before it returns early with a cursor, so a
/// selective filter over a long range can't hold a read for long.
const MAX_ROWS_SCANNED_PER_PAGE: usize = 50_000;

#[async_trait]
impl EventStore for EmbeddedStore {
    async fn write_events(&self, events: &[StoredEvent]) -> Result<WriteOutcome, StoreError> {
        let events = events.to_vec();
        self.blocking(move |database| {
            let transaction = database.begin_write().map_err(storage_error)?;
            let mut outcome = WriteOutcome::default();
            {
                let mut by_partner = transaction
                    .open_table(EVENTS_BY_PARTNER)
                    .map_err(storage_error)?;
                let mut by_subsystem = transaction
                    .open_table(EVENTS_BY_SUBSYSTEM)
                    .map_err(storage_error)?;
                let mut event_ids = transaction.open_table(EVENT_IDS).map_err(storage_error)?;
                for event in &events {
                    let id_key = keys::event_id_key(event.partner_id, &event.event_id);
                    if event_ids
                        .get(id_key.as_slice())
                        .map_err(storage_error)?
                        .is_some()
                    {
                        outcome.duplicates += 1;
                        continue;
                    }
                    let row = to_json(event)?;
                    let micros = event.timestamp.timestamp_micros().to_be_bytes();
                    event_ids
                        .insert(id_key.as_slice(), micros.as_slice())
                        .map_err(storage_error)?;
                    let partner_key =
                        keys::event_key(event.partner_id, event.timestamp, &event.event_id);
                    by_partner
                        .insert(partner_key.as_slice(), row.as_slice())
                        .map_err(storage_error)?;
                    let subsystem_key =
                        keys::event_key(event.subsystem_id, event.timestamp, &event.event_id);
                    by_subsystem
                        .insert(subsystem_key.as_slice(), row.as_slice())
                        .map_err(storage_error)?;
                    outcome.inserted += 1;
                }
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
            let table = transaction.open_table(table).map_err(storage_error)?;
            let mut rows = table
                .range::<&[u8]>(keys::borrowed(&range))
                .map_err(storage_error)?;
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
                let event: StoredEvent = from_json(value.value())?;
                last_key = Some(key.value().to_vec());
                if query.filter.matches(&event) {
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
