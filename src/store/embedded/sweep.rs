//! The embedded store's retention sweep: a partner's events past its retention go, whole
//! hours at a time (those ending at or before the cutoff), a day's hours together, by the
//! erasure's steps (`erase`: bounded transactions, counts subtracted, the hours and their
//! day folded again, empty), then the anonymous ids' rows of those hours. Freed pages are
//! reused by later writes, so a steady ingest under a retention keeps the file's size;
//! `compact` (offline: `volcanion compact`) gives them back to the file system.

use std::path::Path;

use chrono::{DateTime, Utc};
use redb::{Database, ReadableDatabase};
use uuid::Uuid;

use super::breakdowns::hour_at;
use super::erase::{Doomed, erase_hours};
use super::rollups_repair::{day_after, event_hour};
use super::{
    DATABASE_FILE, EVENTS_BY_PARTNER, EmbeddedStore, PEOPLE_ANONYMOUS_HOURS, keys, storage_error,
};
use crate::rollups::Hour;
use crate::store::{Erased, StoreError};

impl EmbeddedStore {
    /// Compacts the file in `data_dir` (it must not be open elsewhere: redb refuses a
    /// second holder), until no further compaction frees anything; its size before and after.
    pub fn compact(data_dir: &Path) -> Result<(u64, u64), StoreError> {
        let path = data_dir.join(DATABASE_FILE);
        let size = || std::fs::metadata(&path).map(|meta| meta.len());
        let unavailable =
            |error: String| StoreError::Unavailable(format!("{}: {error}", path.display()));
        let before = size().map_err(|error| unavailable(error.to_string()))?;
        let mut database = Database::open(&path).map_err(|error| unavailable(error.to_string()))?;
        while database
            .compact()
            .map_err(|error| unavailable(error.to_string()))?
        {}
        drop(database);
        let after = size().map_err(|error| unavailable(error.to_string()))?;
        Ok((before, after))
    }
}

/// Anonymous-hour rows removed per write transaction.
const ROWS_PER_TRANSACTION: usize = 10_000;

pub(super) fn sweep(
    database: &Database,
    partner: Uuid,
    cutoff: DateTime<Utc>,
) -> Result<Erased, StoreError> {
    // The hours before the cutoff's hour end at or before it.
    let end = Hour::of(cutoff);
    let mut swept = Erased::default();
    while let Some(day) = first_day(database, partner, end)? {
        let hours: Vec<Hour> = (day.0..day_after(day).0.min(end.0)).map(Hour).collect();
        let erased = erase_hours(database, partner, &hours, Doomed::All)?;
        if erased.events == 0 {
            break; // nothing it could take: never loop on it
        }
        swept.events += erased.events;
        swept.hours += erased.hours;
    }
    forget_anonymous_hours(database, partner, end)?;
    Ok(swept)
}

/// The day of the partner's first event before hour `end`.
fn first_day(database: &Database, partner: Uuid, end: Hour) -> Result<Option<Hour>, StoreError> {
    let transaction = database.begin_read().map_err(storage_error)?;
    let events = transaction
        .open_table(EVENTS_BY_PARTNER)
        .map_err(storage_error)?;
    let range = keys::time_range(partner, DateTime::UNIX_EPOCH, end.start(), None)?;
    let first = events
        .range::<&[u8]>(keys::borrowed(&range))
        .map_err(storage_error)?
        .next();
    match first {
        Some(row) => Ok(Some(
            event_hour(row.map_err(storage_error)?.0.value())?.day(),
        )),
        None => Ok(None),
    }
}

/// Removes the partner's anonymous-hour rows of hours before `end`
/// (`partner | anonymous id | 0 | hour`), a bounded transaction at a time.
fn forget_anonymous_hours(database: &Database, partner: Uuid, end: Hour) -> Result<(), StoreError> {
    loop {
        let expired: Vec<Vec<u8>> = {
            let transaction = database.begin_read().map_err(storage_error)?;
            let table = transaction
                .open_table(PEOPLE_ANONYMOUS_HOURS)
                .map_err(storage_error)?;
            let range = keys::owner_range(partner);
            let mut expired = Vec::new();
            for row in table
                .range::<&[u8]>(keys::borrowed(&range))
                .map_err(storage_error)?
            {
                let key = row.map_err(storage_error)?.0.value().to_vec();
                if hour_at(&key, 0)? < end {
                    expired.push(key);
                    if expired.len() == ROWS_PER_TRANSACTION {
                        break;
                    }
                }
            }
            expired
        };
        if expired.is_empty() {
            return Ok(());
        }
        let transaction = database.begin_write().map_err(storage_error)?;
        {
            let mut table = transaction
                .open_table(PEOPLE_ANONYMOUS_HOURS)
                .map_err(storage_error)?;
            for key in &expired {
                table.remove(key.as_slice()).map_err(storage_error)?;
            }
        }
        transaction.commit().map_err(storage_error)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::sample_event;
    use crate::store::{EventStore, LifecycleStore, PeopleStore};

    #[tokio::test]
    async fn compaction_gives_back_what_a_sweep_freed() {
        let dir = tempfile::TempDir::new().unwrap();
        let partner = Uuid::now_v7();
        {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            let long_ago = Utc::now() - chrono::Duration::days(30);
            let events: Vec<_> = (0..20_000)
                .map(|n| {
                    let mut event = sample_event(&format!("e{n}"));
                    event.partner_id = partner;
                    event.timestamp = long_ago + chrono::Duration::seconds(n);
                    event.client_event_id = true;
                    event
                })
                .collect();
            store.write_events(&events).await.unwrap();
            let swept = store.sweep_expired(partner, Utc::now()).await.unwrap();
            assert_eq!(swept.events, 20_000);
        }
        let (before, after) = EmbeddedStore::compact(dir.path()).unwrap();
        assert!(after < before, "{before} bytes before, {after} after");
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let left = store.first_event_day(partner).await.unwrap();
        assert_eq!(
            left, None,
            "the compacted file opens, empty of the partner's events"
        );
    }
}
