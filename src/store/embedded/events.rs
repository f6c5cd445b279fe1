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

use super::remembered::Learnt;
use super::{
    EVENT_IDS, EVENTS_BY_PARTNER, EVENTS_BY_SUBSYSTEM, EmbeddedStore, backfill, breakdowns, export,
    joins, keys, rollups, rows, storage_error,
};
use crate::model::Event;
use crate::rollups::{Hour, RollupDelta};
use crate::store::{
    EnrichStored, EventPage, EventQuery, EventScope, EventStore, ExportPage, ExportQuery,
    StoreError, WriteOutcome,
};

/// Rows one page may read past filters before it returns early with a cursor, so a
/// selective filter over a long range can't hold a read for long.
const MAX_ROWS_SCANNED_PER_PAGE: usize = 50_000;

pub(super) type EventTable<'txn> = WriteTable<'txn, &'static [u8], &'static [u8]>;

/// The tables an event's rows live in (by partner, by subsystem, the id index), opened
/// for writing.
pub(super) fn event_tables(
    transaction: &redb::WriteTransaction,
) -> Result<(EventTable<'_>, EventTable<'_>, EventTable<'_>), StoreError> {
    let open = |table| transaction.open_table(table).map_err(storage_error);
    Ok((
        open(EVENTS_BY_PARTNER)?,
        open(EVENTS_BY_SUBSYSTEM)?,
        open(EVENT_IDS)?,
    ))
}

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
        let remembered = Arc::clone(&self.remembered);
        self.blocking(move |database| {
            let transaction = database.begin_write().map_err(storage_error)?;
            let mut outcome = WriteOutcome::default();
            // Only what this transaction inserts is counted, in this same transaction.
            let mut delta = RollupDelta::default();
            // And the partner-hours it writes into, for the breakdown fold.
            let mut touched = std::collections::BTreeSet::new();
            // And the events whose joins it records.
            let mut inserted = Vec::new();
            {
                let (mut by_partner, mut by_subsystem, mut event_ids) = event_tables(&transaction)?;
                for event in events.iter() {
                    if insert_event(event, &mut by_partner, &mut by_subsystem, &mut event_ids)? {
                        outcome.inserted += 1;
                        touched.insert((event.partner_id, Hour::of(event.timestamp)));
                        inserted.push(event);
                    } else {
                        outcome.duplicates += 1;
                    }
                }
            }
            let mut learnt = Learnt::default();
            if !inserted.is_empty() {
                // Joins first: the sketches count each event as its person, this batch's
                // joins included.
                let users = joins::record(&transaction, &inserted, &remembered, &mut learnt)?;
                for (event, user) in inserted.iter().zip(&users) {
                    delta.add_as(event, user.as_deref().or(event.actor()));
                }
                rollups::apply(&transaction, &delta)?;
                breakdowns::touch(&transaction, &touched, chrono::Utc::now())?;
            }
            transaction.commit().map_err(storage_error)?;
            remembered.committed(learnt);
            Ok(outcome)
        })
        .await
    }

    /// A step at a time (`backfill::BACKFILL_ROWS_PER_STEP` rows): rows are read and
    /// written on the blocking pool, `enrich` (borrowed, so it can't go there) runs here.
    async fn backfill_enrichment(
        &self,
        partner: Uuid,
        from: Hour,
        to: Hour,
        enrich: &EnrichStored<'_>,
    ) -> Result<u64, StoreError> {
        let mut enriched = 0;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let step = self
                .blocking(move |database| {
                    backfill::read_step(database, partner, (from, to), after.as_deref())
                })
                .await?;
            let mut events = step.events;
            for (_, event) in &mut events {
                event.enrichment = Some(enrich(event));
            }
            if !events.is_empty() {
                enriched += self
                    .blocking(move |database| {
                        backfill::write_step(database, &events, chrono::Utc::now())
                    })
                    .await?;
            }
            match step.next {
                Some(next) => after = Some(next),
                None => return Ok(enriched),
            }
        }
    }

    async fn export_page(&self, query: &ExportQuery) -> Result<ExportPage, StoreError> {
        let query = query.clone();
        self.blocking(move |database| export::page(database, &query))
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
                        matching_event(&query, partner_id, key, value.value())?
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
                        matching_event(&query, partner_id, key, body.value())?
                    }
                };
                last_key = Some(key.to_vec());
                items.extend(event);
            }
            let more_rows = rows.next().is_some();
            let next_cursor = if more_rows { last_key } else { None };
            Ok(EventPage { items, next_cursor })
        })
        .await
    }
}

/// The event of a row whose key is `owner | time | event id` (any owner), if it is in the
/// query's range and passes its filters. Those are checked on the row's fields as stored;
/// only a row that passes is turned into an event and has its payload parsed.
pub(super) fn matching_event(
    query: &EventQuery,
    partner_id: Uuid,
    key: &[u8],
    row: &[u8],
) -> Result<Option<Event>, StoreError> {
    let (micros, id_bytes) = keys::split_event_key(key)?;
    let view = rows::view(micros, row)?;
    // Keys hold whole microseconds: the exact time settles a bound inside one.
    let in_range = query.from <= view.timestamp() && view.timestamp() < query.to;
    let wanted = in_range
        && query
            .filter
            .matches_fields(view.event_type(), view.user_id(), view.is_valid());
    if !wanted {
        return Ok(None);
    }
    let parts = rows::KeyParts {
        partner_id,
        micros,
        event_id: rows::event_id_from_bytes(id_bytes)?,
    };
    view.into_event(parts, query.with_payload).map(Some)
}

/// The start of the UTC day of `partner`'s earliest stored event.
pub(super) fn first_event_day(
    database: &redb::Database,
    partner: Uuid,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
    let transaction = database.begin_read().map_err(storage_error)?;
    let events = transaction
        .open_table(EVENTS_BY_PARTNER)
        .map_err(storage_error)?;
    let range = keys::owner_range(partner);
    let Some(first) = events
        .range::<&[u8]>(keys::borrowed(&range))
        .map_err(storage_error)?
        .next()
    else {
        return Ok(None);
    };
    let (micros, _) = keys::split_event_key(first.map_err(storage_error)?.0.value())?;
    Ok(chrono::DateTime::from_timestamp_micros(micros)
        .map(|at| at.date_naive().and_time(chrono::NaiveTime::MIN).and_utc()))
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::model::JsonObject;
    use crate::model::test_support::sample_event;
    use crate::store::EventFilter;

    /// Overwrites the stored `properties` text of `event` with text of the same length
    /// that is not JSON, as a damaged or hostile row would hold.
    fn corrupt_payload_of(store: &EmbeddedStore, event: &Event, valid: &str, broken: &str) {
        let key = keys::event_key(
            event.partner_id,
            event.timestamp,
            &rows::event_id_bytes(&event.event_id),
        );
        let transaction = store.database.begin_write().unwrap();
        {
            let mut table = transaction.open_table(EVENTS_BY_PARTNER).unwrap();
            let mut row = table.get(key.as_slice()).unwrap().unwrap().value().to_vec();
            let at = row
                .windows(valid.len())
                .position(|window| window == valid.as_bytes())
                .expect("the payload text is in the row");
            row[at..at + broken.len()].copy_from_slice(broken.as_bytes());
            table.insert(key.as_slice(), row.as_slice()).unwrap();
        }
        transaction.commit().unwrap();
    }

    fn query_of(event: &Event, event_type: &str) -> EventQuery {
        EventQuery {
            scope: EventScope::Partner(event.partner_id),
            from: event.timestamp - Duration::hours(1),
            to: event.timestamp + Duration::hours(1),
            filter: EventFilter {
                event_type: Some(event_type.into()),
                ..EventFilter::default()
            },
            limit: 100,
            cursor: None,
            with_payload: true,
        }
    }

    #[tokio::test]
    async fn payloads_of_rows_the_filters_exclude_are_not_parsed() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let wanted = sample_event("wanted");
        let mut excluded = sample_event("excluded");
        excluded.event_type = "purchase".into();
        let valid = r#"{"sku":"abc"}"#;
        excluded.properties = JsonObject::parse(valid.into()).unwrap();
        store
            .write_events(&[wanted.clone(), excluded.clone()])
            .await
            .unwrap();
        corrupt_payload_of(&store, &excluded, valid, r#"{"sku":"abc"!"#);

        let page = store
            .query_events(&query_of(&wanted, "page_view"))
            .await
            .expect("a row the filter excludes is never parsed");
        let ids: Vec<&str> = page.items.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["wanted"]);

        let returned = store.query_events(&query_of(&excluded, "purchase")).await;
        assert!(
            matches!(returned, Err(StoreError::Corrupt(_))),
            "a row that is returned still has its payload parsed: {returned:?}"
        );
    }
}
