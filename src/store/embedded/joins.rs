//! People's joins in the embedded store (`people`), written in the transaction that stores
//! the events asking for them:
//! - `people_joins`: `partner | anonymous id` → the user it was first seen with;
//! - `people_user_ids`: `partner | user | 0 | anonymous id` → nothing: the same joins by
//!   user, for a person's lookup;
//! - `people_join_conflicts`: `partner | anonymous id | 0 | other user` → when a later,
//!   different pairing was first seen (recorded, never merged).
//!
//! A join first recorded marks the hours that counted its anonymous id apart
//! (`anonymous_hours`). Ids hold no control characters (the ingest rule), so the 0 byte
//! ends the anonymous id.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, WriteTransaction};
use uuid::Uuid;

use super::anonymous_hours;
use super::remembered::{Learnt, Remembered};
use super::rollups_repair::Readable;
use super::{
    EVENTS_BY_PARTNER, PEOPLE_JOIN_CONFLICTS, PEOPLE_JOINS, PEOPLE_USER_IDS, keys, rows,
    storage_error,
};
use crate::model::Event;
use crate::people::{Joins, joins_of};
use crate::store::StoreError;

/// Records the joins `events` (just inserted) ask for, then gives each event the user its
/// anonymous id is joined to (this batch's joins included; `None` for an event with a user
/// id or without a join). `learnt` gathers what the process may remember once the
/// transaction commits.
pub(super) fn record(
    transaction: &WriteTransaction,
    events: &[&Event],
    remembered: &Remembered,
    learnt: &mut Learnt,
) -> Result<Vec<Option<Arc<str>>>, StoreError> {
    record_joins(transaction, events, remembered, learnt)?;
    let table = transaction
        .open_table(PEOPLE_JOINS)
        .map_err(storage_error)?;
    let mut batch: HashMap<Vec<u8>, Option<Arc<str>>> = HashMap::new();
    let mut users = Vec::with_capacity(events.len());
    for event in events {
        let (None, Some(anonymous)) = (&event.user_id, &event.anonymous_id) else {
            users.push(None);
            continue;
        };
        let key = keys::prefixed(event.partner_id, anonymous.as_bytes());
        if let Some(user) = remembered.user(&key) {
            users.push(Some(user));
            continue;
        }
        let user = match batch.get(&key) {
            Some(user) => user.clone(),
            None => {
                let user: Option<Arc<str>> =
                    match table.get(key.as_slice()).map_err(storage_error)? {
                        Some(user) => Some(text(user.value())?.into()),
                        None => None,
                    };
                if let Some(user) = &user {
                    learnt.users.push((key.clone(), user.clone()));
                }
                batch.insert(key, user.clone());
                user
            }
        };
        users.push(user);
    }
    Ok(users)
}
/// Records the joins `events` ask for: a new one marks the hours of its anonymous id's
/// earlier events; a different user for a joined id is a conflict, recorded once.
fn record_joins(
    transaction: &WriteTransaction,
    events: &[&Event],
    remembered: &Remembered,
    learnt: &mut Learnt,
) -> Result<(), StoreError> {
    // Most batches ask for no join, or only for joins this process already knows: then
    // no joins table is opened.
    let asked: Vec<(&Event, Vec<u8>, String)> = events
        .iter()
        .flat_map(|event| {
            joins_of(event).into_iter().map(move |(anonymous, user)| {
                let key = keys::prefixed(event.partner_id, anonymous.as_bytes());
                (*event, key, user)
            })
        })
        .filter(|(_, key, user)| remembered.user(key).as_deref() != Some(user.as_str()))
        .collect();
    if asked.is_empty() {
        return Ok(());
    }
    let mut joins = transaction
        .open_table(PEOPLE_JOINS)
        .map_err(storage_error)?;
    let mut conflicts = transaction
        .open_table(PEOPLE_JOIN_CONFLICTS)
        .map_err(storage_error)?;
    let mut by_user = transaction
        .open_table(PEOPLE_USER_IDS)
        .map_err(storage_error)?;
    let mut joined = BTreeSet::new();
    for (event, key, user) in asked {
        let first = joins
            .get(key.as_slice())
            .map_err(storage_error)?
            .map(|user| user.value().to_vec());
        match first {
            None => {
                joins
                    .insert(key.as_slice(), user.as_bytes())
                    .map_err(storage_error)?;
                let anonymous = &key[keys::OWNER_LEN..];
                let user_key = user_id_key(event.partner_id, user.as_bytes(), anonymous);
                by_user
                    .insert(user_key.as_slice(), [].as_slice())
                    .map_err(storage_error)?;
                anonymous_hours::mark(transaction, event.partner_id, anonymous)?;
                joined.insert(event.partner_id);
                learnt.users.push((key, user.into()));
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
            Some(first) => learnt.users.push((key, text(&first)?.into())),
        }
    }
    for partner in joined {
        anonymous_hours::hold_back_unfolded(transaction, partner)?;
    }
    Ok(())
}
/// Gives events their people (`Joins::resolve`) through `people_joins`, each anonymous id
/// looked up once.
pub(super) struct Resolver<'t, T: Readable> {
    table: &'t T,
    known: HashMap<(Uuid, String), Option<String>>,
}

impl<'t, T: Readable> Resolver<'t, T> {
    pub(super) fn new(table: &'t T) -> Self {
        Resolver {
            table,
            known: HashMap::new(),
        }
    }

    /// The user `event`'s anonymous id is joined to, for an event without a user id.
    pub(super) fn user_of(&mut self, event: &Event) -> Result<Option<String>, StoreError> {
        let (None, Some(anonymous)) = (&event.user_id, &event.anonymous_id) else {
            return Ok(None);
        };
        let key = (event.partner_id, anonymous.clone());
        if let Some(user) = self.known.get(&key) {
            return Ok(user.clone());
        }
        let stored = keys::prefixed(event.partner_id, anonymous.as_bytes());
        let user = match self.table.get(stored.as_slice()).map_err(storage_error)? {
            Some(user) => Some(text(user.value())?),
            None => None,
        };
        self.known.insert(key, user.clone());
        Ok(user)
    }

    /// Gives `event` its person as its user id (`Joins::resolve`).
    pub(super) fn resolve(&mut self, event: &mut Event) -> Result<(), StoreError> {
        if let Some(user) = self.user_of(event)? {
            event.user_id = Some(user);
        }
        Ok(())
    }
}

/// The joins of `anonymous_ids` (those that have one).
pub(super) fn among(
    table: &impl Readable,
    partner: Uuid,
    anonymous_ids: &[String],
) -> Result<Joins, StoreError> {
    let mut joins = Joins::default();
    for anonymous in anonymous_ids {
        let key = keys::prefixed(partner, anonymous.as_bytes());
        if let Some(user) = table.get(key.as_slice()).map_err(storage_error)? {
            joins.insert(anonymous.clone(), text(user.value())?);
        }
    }
    Ok(joins)
}

/// `partner | user | 0 | anonymous id`: a join's key by user.
pub(super) fn user_id_key(partner: Uuid, user: &[u8], anonymous: &[u8]) -> Vec<u8> {
    let mut key = keys::prefixed(partner, user);
    key.push(0);
    key.extend_from_slice(anonymous);
    key
}

/// The anonymous ids joined to `user`, in id order.
pub(super) fn anonymous_ids_of(
    database: &redb::Database,
    partner: Uuid,
    user: &str,
) -> Result<Vec<String>, StoreError> {
    let transaction = database.begin_read().map_err(storage_error)?;
    let table = transaction
        .open_table(PEOPLE_USER_IDS)
        .map_err(storage_error)?;
    let start = user_id_key(partner, user.as_bytes(), b"");
    let mut end = start.clone();
    *end.last_mut().expect("the 0 byte") = 1;
    let mut found = Vec::new();
    for row in table
        .range::<&[u8]>(start.as_slice()..end.as_slice())
        .map_err(storage_error)?
    {
        found.push(text(&row.map_err(storage_error)?.0.value()[start.len()..])?);
    }
    Ok(found)
}

/// Indexes every join by its user: for a data dir written before `people_user_ids` was
/// kept, once, when it is opened. How many joins it indexed.
pub(super) fn index_users(transaction: &WriteTransaction) -> Result<u64, StoreError> {
    let joins = transaction
        .open_table(PEOPLE_JOINS)
        .map_err(storage_error)?;
    let mut by_user = transaction
        .open_table(PEOPLE_USER_IDS)
        .map_err(storage_error)?;
    let mut indexed = 0;
    for row in joins.iter().map_err(storage_error)? {
        let (key, user) = row.map_err(storage_error)?;
        let key = key.value();
        let partner = super::breakdowns::owner_of(key)?;
        let user_key = user_id_key(partner, user.value(), &key[keys::OWNER_LEN..]);
        by_user
            .insert(user_key.as_slice(), [].as_slice())
            .map_err(storage_error)?;
        indexed += 1;
    }
    Ok(indexed)
}

/// Records the joins of every stored event: for a data dir written
/// before they were kept (layouts 5 to 7), once, when it is opened. How many joins it has.
pub(super) fn record_every_join(transaction: &WriteTransaction) -> Result<u64, StoreError> {
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
    let events: Vec<&Event> = events.iter().collect();
    record(
        transaction,
        &events,
        &Remembered::default(),
        &mut Learnt::default(),
    )?;
    let joins = transaction
        .open_table(PEOPLE_JOINS)
        .map_err(storage_error)?
        .len()
        .map_err(storage_error)?;
    Ok(joins)
}

fn text(bytes: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(bytes.to_vec()).map_err(|error| StoreError::Corrupt(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::identify_event;
    use crate::store::embedded::{EmbeddedStore, as_layout_left};
    use crate::store::{EventStore, PeopleStore};
    use redb::ReadableTableMetadata;

    #[tokio::test]
    async fn the_first_user_wins_and_an_older_file_gets_its_joins_recorded() {
        let dir = tempfile::TempDir::new().unwrap();
        let partner;
        {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            let first = identify_event("e1", "a1", "u1");
            partner = first.partner_id;
            let mut later = identify_event("e2", "a1", "u9");
            later.partner_id = partner;
            store.write_events(&[first, later]).await.unwrap();
            let joins = store.joins_among(partner, vec!["a1".into()]).await;
            assert_eq!(joins.unwrap().user_of("a1"), Some("u1"));
            let transaction = store.database.begin_read().unwrap();
            let conflicts = transaction.open_table(PEOPLE_JOIN_CONFLICTS).unwrap();
            assert_eq!(conflicts.len().unwrap(), 1, "the later pairing, recorded");
            drop((conflicts, transaction));
            // As layout 6 left it: no joins, the old version.
            as_layout_left(&store.database, 6, PEOPLE_JOINS);
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let joins = store.joins_among(partner, vec!["a1".into()]).await.unwrap();
        assert_eq!(
            joins.user_of("a1"),
            Some("u1"),
            "recorded again in stored order"
        );
        let ids_of = |store: &EmbeddedStore, user: &str| {
            let (store, user) = (store.clone(), user.to_string());
            async move { store.anonymous_ids_of(partner, user).await.unwrap() }
        };
        assert_eq!(ids_of(&store, "u1").await, ["a1"]);
        assert!(ids_of(&store, "u9").await.is_empty(), "not merged");
        // As layout 8 left it: joins, not indexed by user.
        as_layout_left(&store.database, 8, PEOPLE_USER_IDS);
        drop(store);
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(ids_of(&store, "u1").await, ["a1"], "indexed when opened");
    }
}
