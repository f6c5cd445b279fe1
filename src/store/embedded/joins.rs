//! People's joins in the embedded store (`people`), written in the transaction that stores
//! the events asking for them:
//! - `people_joins`: `partner | anonymous id` → the user it was first seen with;
//! - `people_join_conflicts`: `partner | anonymous id | 0 | other user` → when a later,
//!   different pairing was first seen (recorded, never merged);
//! - `people_anonymous_hours`: `partner | anonymous id | 0 | hour` → nothing: the hours
//!   holding events of the anonymous id without a user id. Their postings and sketches
//!   counted the anonymous id, so a join first recorded later marks them to be folded
//!   again;
//! - `people_pending`: `partner | hour` → when a join first marked it (µs): its sketches
//!   still count the anonymous id, until its fold rewrites them (reports' `dataAsOf`).
//!
//! Ids hold no control characters (the ingest rule), so the 0 byte ends the anonymous id.

use std::collections::{BTreeSet, HashMap};

use chrono::Utc;
use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use uuid::Uuid;

use super::breakdowns::{hour_key, stamp};
use super::rollups_repair::Readable;
use super::{
    BREAKDOWN_MARKS, EVENTS_BY_PARTNER, PEOPLE_ANONYMOUS_HOURS, PEOPLE_JOIN_CONFLICTS,
    PEOPLE_JOINS, PEOPLE_PENDING, keys, rows, storage_error,
};
use crate::model::Event;
use crate::people::{Joins, joins_of};
use crate::rollups::Hour;
use crate::store::StoreError;

/// `partner | anonymous id | 0`: the start of the id's conflicts or hours.
fn anonymous_prefix(partner: Uuid, anonymous: &str) -> Vec<u8> {
    let mut key = keys::prefixed(partner, anonymous.as_bytes());
    key.push(0);
    key
}

/// Records the joins `events` ask for (events just inserted), and the hours of those
/// without a user id; a new join marks the hours of its anonymous id's earlier events.
/// How many joins were new.
pub(super) fn record<'a>(
    transaction: &WriteTransaction,
    events: impl IntoIterator<Item = &'a Event>,
) -> Result<usize, StoreError> {
    let events: Vec<&Event> = events.into_iter().collect();
    let anonymous_hours: BTreeSet<Vec<u8>> = events
        .iter()
        .filter(|event| event.user_id.is_none())
        .filter_map(|event| {
            let anonymous = event.anonymous_id.as_deref()?;
            let mut key = anonymous_prefix(event.partner_id, anonymous);
            key.extend_from_slice(&Hour::of(event.timestamp).to_be_bytes());
            Some(key)
        })
        .collect();
    if !anonymous_hours.is_empty() {
        let mut table = transaction
            .open_table(PEOPLE_ANONYMOUS_HOURS)
            .map_err(storage_error)?;
        for key in anonymous_hours {
            table
                .insert(key.as_slice(), [].as_slice())
                .map_err(storage_error)?;
        }
    }
    // Most batches ask for no join: then no joins table is opened.
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
                    mark_anonymous_hours(transaction, event.partner_id, &anonymous)?;
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

/// Marks every hour holding events of `anonymous` without a user id (their postings name
/// the anonymous id), so the settler folds them again under the user.
fn mark_anonymous_hours(
    transaction: &WriteTransaction,
    partner: Uuid,
    anonymous: &str,
) -> Result<(), StoreError> {
    let prefix = anonymous_prefix(partner, anonymous);
    let mut end = prefix.clone();
    *end.last_mut().expect("the 0 byte") = 1;
    let hours: Vec<Hour> = {
        let table = transaction
            .open_table(PEOPLE_ANONYMOUS_HOURS)
            .map_err(storage_error)?;
        let mut hours = Vec::new();
        for row in table
            .range::<&[u8]>(prefix.as_slice()..end.as_slice())
            .map_err(storage_error)?
        {
            let key = row.map_err(storage_error)?.0.value().to_vec();
            hours.push(super::breakdowns::hour_at(&key, 0)?);
        }
        hours
    };
    if hours.is_empty() {
        return Ok(());
    }
    let mut marks = transaction
        .open_table(BREAKDOWN_MARKS)
        .map_err(storage_error)?;
    let mut pending = transaction
        .open_table(PEOPLE_PENDING)
        .map_err(storage_error)?;
    let now = Utc::now();
    for hour in hours {
        let key = hour_key(partner, hour);
        stamp(&mut marks, &key, now)?;
        if pending
            .get(key.as_slice())
            .map_err(storage_error)?
            .is_none()
        {
            let micros = now.timestamp_micros().to_be_bytes();
            pending
                .insert(key.as_slice(), micros.as_slice())
                .map_err(storage_error)?;
        }
    }
    Ok(())
}

/// The fold of `hour` has recounted it as the people its events now belong to.
pub(super) fn recounted(
    transaction: &WriteTransaction,
    partner: Uuid,
    (from, to): (Hour, Hour),
) -> Result<(), StoreError> {
    let (start, end) = (hour_key(partner, from), hour_key(partner, to));
    transaction
        .open_table(PEOPLE_PENDING)
        .map_err(storage_error)?
        .retain_in::<&[u8], _>(start.as_slice()..end.as_slice(), |_, _| false)
        .map_err(storage_error)?;
    Ok(())
}

/// When the earliest pending recount of the partner's hours was marked.
pub(super) fn pending_since(
    database: &redb::Database,
    partner: Uuid,
) -> Result<Option<chrono::DateTime<Utc>>, StoreError> {
    let transaction = database.begin_read().map_err(storage_error)?;
    let table = transaction
        .open_table(PEOPLE_PENDING)
        .map_err(storage_error)?;
    let range = keys::owner_range(partner);
    let mut earliest: Option<i64> = None;
    for row in table
        .range::<&[u8]>(keys::borrowed(&range))
        .map_err(storage_error)?
    {
        let value = row.map_err(storage_error)?.1;
        let bytes: [u8; 8] = value
            .value()
            .try_into()
            .map_err(|_| StoreError::Corrupt("a pending recount that is not 8 bytes".into()))?;
        let micros = i64::from_be_bytes(bytes);
        earliest = Some(earliest.map_or(micros, |found| found.min(micros)));
    }
    Ok(earliest.and_then(chrono::DateTime::from_timestamp_micros))
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

/// Records the joins and anonymous hours of every stored event: for a data dir written
/// before they were kept (layouts 5 to 7), once, when it is opened.
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
            if !joins_of(&event).is_empty() || event.user_id.is_none() {
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
            let joins = store.joins_among(partner, vec!["a1".into()]).await;
            assert_eq!(joins.unwrap().user_of("a1"), Some("u1"));
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
        let joins = store.joins_among(partner, vec!["a1".into()]).await.unwrap();
        assert_eq!(
            joins.user_of("a1"),
            Some("u1"),
            "recorded again in stored order"
        );
    }

    #[tokio::test]
    async fn a_join_recorded_after_a_fold_marks_the_hours_of_the_anonymous_events() {
        use crate::rollups::Hour;
        use crate::store::RollupStore;
        use crate::store::embedded::breakdowns::marked_hours;

        let dir = tempfile::TempDir::new().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let mut visit = sample_event("v1");
        visit.user_id = None;
        visit.anonymous_id = Some("a1".into());
        visit.timestamp = "2026-11-20T10:05:00Z".parse().unwrap();
        let partner = visit.partner_id;
        let mut other = visit.clone();
        other.event_id = "v2".into();
        other.anonymous_id = Some("a2".into());
        other.timestamp = "2026-11-20T12:05:00Z".parse().unwrap();
        store.write_events(&[visit, other]).await.unwrap();
        let later = chrono::Utc::now() + chrono::Duration::minutes(3);
        store.settle_rollups(later).await.unwrap();
        let day = Hour::of("2026-11-20T00:00:00Z".parse().unwrap());
        let marked = |store: &EmbeddedStore| {
            let transaction = store.database.begin_read().unwrap();
            let marks = transaction.open_table(BREAKDOWN_MARKS).unwrap();
            marked_hours(&marks, partner, day, Hour(day.0 + 24)).unwrap()
        };
        assert!(marked(&store).is_empty(), "both hours folded");

        let mut sign_in = identify("i1", "a1", "u1");
        sign_in.partner_id = partner;
        sign_in.timestamp = "2026-11-20T15:00:00Z".parse().unwrap();
        store.write_events(&[sign_in.clone()]).await.unwrap();
        let ten = Hour::of("2026-11-20T10:00:00Z".parse().unwrap());
        let fifteen = Hour::of(sign_in.timestamp);
        assert_eq!(
            marked(&store),
            [ten, fifteen].into(),
            "a1's hour is folded again, a2's is not"
        );
        let pending = store.recount_pending_since(partner).await.unwrap();
        assert!(pending.is_some(), "reports' dataAsOf waits for the recount");
        assert_eq!(
            store.recount_pending_since(Uuid::now_v7()).await.unwrap(),
            None
        );
        store.settle_rollups(later).await.unwrap();
        assert_eq!(store.recount_pending_since(partner).await.unwrap(), None);
        sign_in.event_id = "i2".into();
        store.write_events(&[sign_in]).await.unwrap();
        assert_eq!(
            marked(&store),
            [fifteen].into(),
            "a known join marks nothing"
        );
    }
}
