//! The hours that counted an anonymous id apart from its person, in the embedded store:
//! - `people_anonymous_hours`: `partner | anonymous id | 0 | hour` → nothing: the folded
//!   hours holding events of the anonymous id without a user id. Their postings and
//!   sketches counted the anonymous id, so a join first recorded later marks them to be
//!   folded again. Written by the hour's fold, not with each batch: an identify-heavy
//!   ingest would otherwise rewrite a page of this table for most anonymous events;
//! - `people_pending`: `partner | hour` → since when (µs) the hour's sketches still count
//!   a joined anonymous id apart, until its fold rewrites them (reports' `dataAsOf`).

use std::collections::BTreeSet;

use chrono::Utc;
use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use uuid::Uuid;

use super::breakdowns::{hour_key, marked_hours, stamp};
use super::rollups_repair::Readable;
use super::{
    BREAKDOWN_MARKS, PEOPLE_ANONYMOUS_HOURS, PEOPLE_JOINS, PEOPLE_PENDING, keys, storage_error,
};
use crate::rollups::Hour;
use crate::store::StoreError;

/// `partner | anonymous id | 0`: the start of the id's hours.
pub(super) fn anonymous_prefix(partner: Uuid, anonymous: &[u8]) -> Vec<u8> {
    let mut key = keys::prefixed(partner, anonymous);
    key.push(0);
    key
}

/// `partner | anonymous id | 0 | hour`: the entry of the id's events in `hour`.
fn hour_entry(partner: Uuid, anonymous: &str, hour: Hour) -> Vec<u8> {
    let mut key = anonymous_prefix(partner, anonymous.as_bytes());
    key.extend_from_slice(&hour.to_be_bytes());
    key
}

/// The entries of the anonymous ids `unjoined` (the events of `hour` without a user id,
/// that its fold found no join for) that `record` must write, read before the fold's write
/// transaction (a refold finds most of them, and an insert rewrites its page even then);
/// `None` when one of them has been joined since the fold read its events (the fold must
/// then be done again).
pub(super) fn unrecorded(
    (joins, hours): (&impl Readable, &impl Readable),
    partner: Uuid,
    hour: Hour,
    unjoined: &[String],
) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
    if joined_any(joins, partner, unjoined)? {
        return Ok(None);
    }
    let mut entries = Vec::new();
    for anonymous in unjoined {
        let entry = hour_entry(partner, anonymous, hour);
        if hours
            .get(entry.as_slice())
            .map_err(storage_error)?
            .is_none()
        {
            entries.push(entry);
        }
    }
    Ok(Some(entries))
}

fn joined_any(
    joins: &impl Readable,
    partner: Uuid,
    anonymous: &[String],
) -> Result<bool, StoreError> {
    for anonymous in anonymous {
        let key = keys::prefixed(partner, anonymous.as_bytes());
        if joins.get(key.as_slice()).map_err(storage_error)?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Records the `entries` `unrecorded` found for `unjoined`, so a join first recorded later
/// marks their hour, in the fold's write transaction: false, writing nothing, when one of
/// `unjoined` was joined since (the fold must then be done again).
pub(super) fn record(
    transaction: &WriteTransaction,
    partner: Uuid,
    unjoined: &[String],
    entries: &[Vec<u8>],
) -> Result<bool, StoreError> {
    let joins = transaction
        .open_table(PEOPLE_JOINS)
        .map_err(storage_error)?;
    if joined_any(&joins, partner, unjoined)? {
        return Ok(false);
    }
    let mut hours = transaction
        .open_table(PEOPLE_ANONYMOUS_HOURS)
        .map_err(storage_error)?;
    for entry in entries {
        hours
            .insert(entry.as_slice(), [].as_slice())
            .map_err(storage_error)?;
    }
    Ok(true)
}

/// Marks every folded hour holding events of `anonymous` without a user id (their
/// postings name the anonymous id), so the settler folds them again under the user, and
/// holds reports' `dataAsOf` back until it has.
pub(super) fn mark(
    transaction: &WriteTransaction,
    partner: Uuid,
    anonymous: &[u8],
) -> Result<(), StoreError> {
    let prefix = anonymous_prefix(partner, anonymous);
    let mut end = prefix.clone();
    *end.last_mut().expect("the 0 byte") = 1;
    let folded: Vec<Hour> = {
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
    if folded.is_empty() {
        return Ok(());
    }
    let mut marks = transaction
        .open_table(BREAKDOWN_MARKS)
        .map_err(storage_error)?;
    let now = Utc::now();
    for hour in &folded {
        stamp(&mut marks, &hour_key(partner, *hour), now)?;
    }
    drop(marks);
    hold_back(transaction, partner, folded, now)
}

/// Holds reports' `dataAsOf` back to `now` until the partner's hours not folded yet are:
/// their sketches counted the events of an anonymous id just joined as that id's (at
/// write), and which of them hold such events is known only to their fold. Once a batch
/// with new joins.
pub(super) fn hold_back_unfolded(
    transaction: &WriteTransaction,
    partner: Uuid,
) -> Result<(), StoreError> {
    let unfolded = {
        let marks = transaction
            .open_table(BREAKDOWN_MARKS)
            .map_err(storage_error)?;
        marked_hours(&marks, partner, Hour(0), Hour(u32::MAX))?
    };
    hold_back(transaction, partner, unfolded, Utc::now())
}

/// Records `hours` as pending a recount since `now`, unless they already are.
pub(super) fn hold_back(
    transaction: &WriteTransaction,
    partner: Uuid,
    hours: impl IntoIterator<Item = Hour>,
    now: chrono::DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut pending = transaction
        .open_table(PEOPLE_PENDING)
        .map_err(storage_error)?;
    let held: BTreeSet<Vec<u8>> = {
        let range = keys::owner_range(partner);
        let mut held = BTreeSet::new();
        for row in pending
            .range::<&[u8]>(keys::borrowed(&range))
            .map_err(storage_error)?
        {
            held.insert(row.map_err(storage_error)?.0.value().to_vec());
        }
        held
    };
    let micros = now.timestamp_micros().to_be_bytes();
    for hour in hours {
        let key = hour_key(partner, hour);
        if !held.contains(&key) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::{anonymous_event, identify_event};
    use crate::store::embedded::EmbeddedStore;
    use crate::store::{EventStore, PeopleStore, RollupStore};

    #[tokio::test]
    async fn a_join_before_the_fold_holds_reports_back_and_a_join_during_it_makes_it_fold_again() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let visit = anonymous_event("v1", "a1", "2026-11-20T10:05:00Z");
        let partner = visit.partner_id;
        store.write_events(&[visit]).await.unwrap();
        assert_eq!(store.recount_pending_since(partner).await.unwrap(), None);
        let mut sign_in = identify_event("i1", "a1", "u1");
        sign_in.partner_id = partner;
        store.write_events(&[sign_in]).await.unwrap();
        assert!(
            store
                .recount_pending_since(partner)
                .await
                .unwrap()
                .is_some(),
            "the unfolded hour's sketches still count a1"
        );
        let ten = Hour::of("2026-11-20T10:00:00Z".parse().unwrap());
        // A fold that read the hour before the join, writing after it, must not record a1.
        let transaction = store.database.begin_write().unwrap();
        let unjoined = ["a1".to_string()];
        let a1_entry = [hour_entry(partner, "a1", ten)];
        assert!(!record(&transaction, partner, &unjoined, &a1_entry).unwrap());
        let a2 = ["a2".to_string()];
        assert!(
            record(
                &transaction,
                partner,
                &a2,
                &[hour_entry(partner, "a2", ten)]
            )
            .unwrap()
        );
        transaction.commit().unwrap();

        let later = chrono::Utc::now() + chrono::Duration::minutes(3);
        store.settle_rollups(later).await.unwrap();
        assert_eq!(store.recount_pending_since(partner).await.unwrap(), None);
        let transaction = store.database.begin_read().unwrap();
        let hours = transaction.open_table(PEOPLE_ANONYMOUS_HOURS).unwrap();
        let key = |anonymous: &str| {
            let mut key = anonymous_prefix(partner, anonymous.as_bytes());
            key.extend_from_slice(&ten.to_be_bytes());
            key
        };
        assert!(
            hours.get(key("a1").as_slice()).unwrap().is_none(),
            "a1 is u1"
        );
        assert!(hours.get(key("a2").as_slice()).unwrap().is_some());
    }

    #[tokio::test]
    async fn a_join_recorded_after_a_fold_marks_the_hours_of_the_anonymous_events() {
        use crate::store::embedded::breakdowns::marked_hours;

        let dir = tempfile::TempDir::new().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let visit = anonymous_event("v1", "a1", "2026-11-20T10:05:00Z");
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

        let mut sign_in = identify_event("i1", "a1", "u1");
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
