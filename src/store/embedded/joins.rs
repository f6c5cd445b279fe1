//! People's joins in the embedded store (`people`): `partner | anonymous id` → the user it
//! was first seen with, written in the transaction that stores the event asking for it,
//! and `partner | anonymous id | 0 | other user` → when a later, different pairing was
//! first seen (recorded, never merged). Ids hold no control characters (the ingest rule),
//! so the 0 byte ends the anonymous id.

use redb::{ReadableTable, WriteTransaction};
use uuid::Uuid;

use super::{EVENTS_BY_PARTNER, PEOPLE_JOIN_CONFLICTS, PEOPLE_JOINS, keys, rows, storage_error};
use crate::model::Event;
use crate::people::{Joins, joins_of};
use crate::store::StoreError;

/// Records the joins `events` ask for (events just inserted); how many were new.
pub(super) fn record<'a>(
    transaction: &WriteTransaction,
    events: impl IntoIterator<Item = &'a Event>,
) -> Result<usize, StoreError> {
    // Most batches ask for none: then no table is opened.
    let asked: Vec<(&Event, Vec<(String, String)>)> = events
        .into_iter()
        .map(|event| (event, joins_of(event)))
        .filter(|(_, joins)| !joins.is_empty())
        .collect();
    if asked.is_empty() {
        return Ok(0);
    }
    let mut joins = transaction
        .open_table(PEOPLE_JOINS)
        .map_err(storage_error)?;
    let mut conflicts = transaction
        .open_table(PEOPLE_JOIN_CONFLICTS)
        .map_err(storage_error)?;
    let mut recorded = 0;
    for (event, asked) in asked {
        for (anonymous, user) in asked {
            let key = keys::prefixed(event.partner_id, anonymous.as_bytes());
            let first = joins
                .get(key.as_slice())
                .map_err(storage_error)?
                .map(|user| user.value().to_vec());
            match first {
                None => {
                    joins
                        .insert(key.as_slice(), user.as_bytes())
                        .map_err(storage_error)?;
                    recorded += 1;
                }
                Some(first) if first != user.as_bytes() => {
                    let mut conflict = key;
                    conflict.push(0);
                    conflict.extend_from_slice(user.as_bytes());
                    if conflicts
                        .get(conflict.as_slice())
                        .map_err(storage_error)?
                        .is_none()
                    {
                        let micros = event.received_at.timestamp_micros().to_be_bytes();
                        conflicts
                            .insert(conflict.as_slice(), micros.as_slice())
                            .map_err(storage_error)?;
                    }
                }
                Some(_) => {}
            }
        }
    }
    Ok(recorded)
}

/// Every join of `partner`.
pub(super) fn read(
    transaction: &redb::ReadTransaction,
    partner: Uuid,
) -> Result<Joins, StoreError> {
    let table = transaction
        .open_table(PEOPLE_JOINS)
        .map_err(storage_error)?;
    let range = keys::owner_range(partner);
    let mut joins = Joins::default();
    for row in table
        .range::<&[u8]>(keys::borrowed(&range))
        .map_err(storage_error)?
    {
        let (key, user) = row.map_err(storage_error)?;
        let anonymous = text(&key.value()[16..])?;
        joins.insert(anonymous, text(user.value())?);
    }
    Ok(joins)
}

/// Records the joins of every stored event: for a data dir written before joins were
/// kept (layouts 5 and 6), once, when it is opened.
pub(super) fn record_every_join(transaction: &WriteTransaction) -> Result<usize, StoreError> {
    let events: Vec<Event> = {
        let table = transaction
            .open_table(EVENTS_BY_PARTNER)
            .map_err(storage_error)?;
        let mut found = Vec::new();
        for row in table.iter().map_err(storage_error)? {
            let (key, value) = row.map_err(storage_error)?;
            let key = key.value();
            let (micros, id_bytes) = keys::split_event_key(key)?;
            let parts = rows::KeyParts {
                partner_id: super::breakdowns::owner_of(key)?,
                micros,
                event_id: rows::event_id_from_bytes(id_bytes)?,
            };
            let event = rows::decode(parts, value.value(), true)?;
            if !joins_of(&event).is_empty() {
                found.push(event);
            }
        }
        found
    };
    record(transaction, &events)
}

fn text(bytes: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(bytes.to_vec()).map_err(|error| StoreError::Corrupt(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::sample_event;
    use crate::store::embedded::{EmbeddedStore, LAYOUT_KEY, STORE_META};
    use crate::store::{EventStore, PeopleStore};
    use redb::ReadableTableMetadata;

    fn identify(id: &str, anonymous: &str, user: &str) -> Event {
        let mut event = sample_event(id);
        event.anonymous_id = Some(anonymous.to_string());
        event.user_id = Some(user.to_string());
        event
    }

    #[tokio::test]
    async fn the_first_user_wins_and_an_older_file_gets_its_joins_recorded() {
        let dir = tempfile::TempDir::new().unwrap();
        let partner;
        {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            let first = identify("e1", "a1", "u1");
            partner = first.partner_id;
            let mut later = identify("e2", "a1", "u9");
            later.partner_id = partner;
            store.write_events(&[first, later]).await.unwrap();
            let joins = store.joins(partner).await.unwrap();
            assert_eq!(joins.user_of("a1"), Some("u1"));
            let transaction = store.database.begin_write().unwrap();
            let conflicts = transaction.open_table(PEOPLE_JOIN_CONFLICTS).unwrap();
            assert_eq!(conflicts.len().unwrap(), 1, "the later pairing, recorded");
            drop(conflicts);
            // As layout 6 left it: no joins, the old version.
            transaction
                .open_table(PEOPLE_JOINS)
                .unwrap()
                .retain(|_, _| false)
                .unwrap();
            transaction
                .open_table(STORE_META)
                .unwrap()
                .insert(LAYOUT_KEY, [6u8].as_slice())
                .unwrap();
            transaction.commit().unwrap();
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let joins = store.joins(partner).await.unwrap();
        assert_eq!(
            joins.user_of("a1"),
            Some("u1"),
            "recorded again in stored order"
        );
    }
}
