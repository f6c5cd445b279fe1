//! An export's pages from the embedded store: the owner's keys read forward from the
//! position (keys sort as the export does: `owner | micros | event id`, a UUID's tag
//! before a text id's), one short read transaction a page, so an export of any size never
//! holds a transaction (and the pages it pins) for long.

use std::ops::Bound;

use redb::ReadableDatabase;
use uuid::Uuid;

use super::{EVENTS_BY_PARTNER, EVENTS_BY_SUBSYSTEM, keys, rows, storage_error};
use crate::model::Event;
use crate::store::{EventQuery, EventScope, ExportPage, ExportPosition, ExportQuery, StoreError};

/// Rows one page may read past the filters before it returns, as the listing's pages do.
const MAX_ROWS_SCANNED_PER_PAGE: usize = 50_000;

pub(super) fn page(
    database: &redb::Database,
    query: &ExportQuery,
) -> Result<ExportPage, StoreError> {
    let (table, owner) = match query.scope {
        EventScope::Partner(id) => (EVENTS_BY_PARTNER, id),
        EventScope::Subsystem(id) => (EVENTS_BY_SUBSYSTEM, id),
    };
    let (start, end) = keys::time_range(owner, query.from, query.to, None)?;
    let start = match &query.after {
        Some(after) => Bound::Excluded(position_key(owner, after)),
        None => start,
    };
    let transaction = database.begin_read().map_err(storage_error)?;
    let index = transaction.open_table(table).map_err(storage_error)?;
    let bodies = transaction
        .open_table(EVENTS_BY_PARTNER)
        .map_err(storage_error)?;
    // The listing's row reader, which checks the range's exact bounds and the filters.
    let listing = EventQuery {
        scope: query.scope,
        from: query.from,
        to: query.to,
        filter: query.filter.clone(),
        limit: query.limit,
        cursor: None,
        with_payload: true,
    };
    let mut page = ExportPage::default();
    let mut last_read: Option<Vec<u8>> = None;
    let range = (
        start.as_ref().map(Vec::as_slice),
        end.as_ref().map(Vec::as_slice),
    );
    for (scanned, row) in index
        .range::<&[u8]>(range)
        .map_err(storage_error)?
        .enumerate()
    {
        if page.items.len() == query.limit || scanned == MAX_ROWS_SCANNED_PER_PAGE {
            page.next = match (page.items.last(), &last_read) {
                (Some(event), _) if page.items.len() == query.limit => {
                    Some(ExportPosition::of(event))
                }
                (_, Some(key)) => Some(position_of(key)?),
                _ => None,
            };
            return Ok(page);
        }
        let (key, value) = row.map_err(storage_error)?;
        let key = key.value();
        let event: Option<Event> = match query.scope {
            EventScope::Partner(partner_id) => {
                super::events::matching_event(&listing, partner_id, key, value.value())?
            }
            EventScope::Subsystem(_) => {
                let partner_id = Uuid::from_slice(value.value())
                    .map_err(|error| StoreError::Corrupt(error.to_string()))?;
                let body = bodies
                    .get(keys::reowned(partner_id, key).as_slice())
                    .map_err(storage_error)?
                    .ok_or_else(|| {
                        StoreError::Corrupt("a subsystem row without its event".into())
                    })?;
                super::events::matching_event(&listing, partner_id, key, body.value())?
            }
        };
        last_read = Some(key.to_vec());
        page.items.extend(event);
    }
    Ok(page)
}

/// The key an event at `position` has under `owner`.
fn position_key(owner: Uuid, position: &ExportPosition) -> Vec<u8> {
    keys::event_key(
        owner,
        position.timestamp,
        &rows::event_id_bytes(&position.event_id),
    )
}

/// The position of a row read past the filters: its key's time (whole microseconds, all
/// the order needs) and id.
fn position_of(key: &[u8]) -> Result<ExportPosition, StoreError> {
    let (micros, id_bytes) = keys::split_event_key(key)?;
    Ok(ExportPosition {
        timestamp: chrono::DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| StoreError::Corrupt("an event time out of range".into()))?,
        event_id: rows::event_id_from_bytes(id_bytes)?,
    })
}
