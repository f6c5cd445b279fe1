//! Upgrading an older file's rollups to the current layout: every partner's days are
//! rebuilt from the events (`rollups_repair::rebuild_day`), a partner-day per transaction,
//! and how far the upgrade got is recorded after each, so an interrupted upgrade resumes
//! where it stopped; the file is marked with the new layout only at the end.

use std::ops::Bound;

use redb::{Database, ReadableTable};
use uuid::Uuid;

use super::rollups_repair::{Readable, Rebuilt, day_after, event_hour, rebuild_day};
use super::{
    EVENTS_BY_PARTNER, LAYOUT_KEY, LAYOUT_VERSION, OLD_ROLLUP_COUNTS, OLD_ROLLUP_DAY_COUNTS,
    ROLLUP_CELLS, ROLLUP_DAY_CELLS, ROLLUP_DAY_SKETCHES, ROLLUP_SKETCHES, STORE_META, keys,
    storage_error,
};
use crate::rollups::Hour;
use crate::store::StoreError;

/// `partner | next day` (STORE_META): how far an unfinished layout upgrade got.
const UPGRADE_KEY: &[u8] = b"rollup_upgrade";

/// Rebuilds every partner's rollups into the current layout, from the events, a
/// partner-day per transaction, resuming an upgrade that was cut short; marks the file
/// with the current layout once every day is done.
pub(super) fn upgrade(database: &Database) -> Result<Rebuilt, StoreError> {
    let mut position = start_upgrade(database)?;
    let mut rebuilt = Rebuilt::default();
    loop {
        let transaction = database.begin_write().map_err(storage_error)?;
        let next = {
            let events = transaction
                .open_table(EVENTS_BY_PARTNER)
                .map_err(storage_error)?;
            next_partner_day(&events, position)?
        };
        let Some((partner, day)) = next else {
            super::joins::record_every_join(&transaction)?;
            let mut meta = transaction.open_table(STORE_META).map_err(storage_error)?;
            meta.insert(LAYOUT_KEY, [LAYOUT_VERSION].as_slice())
                .map_err(storage_error)?;
            meta.remove(UPGRADE_KEY).map_err(storage_error)?;
            drop(meta);
            transaction.commit().map_err(storage_error)?;
            return Ok(rebuilt);
        };
        rebuilt.events += rebuild_day(&transaction, partner, day)?;
        rebuilt.days += 1;
        position = (partner, day_after(day));
        transaction
            .open_table(STORE_META)
            .map_err(storage_error)?
            .insert(UPGRADE_KEY, encode_position(position).as_slice())
            .map_err(storage_error)?;
        transaction.commit().map_err(storage_error)?;
    }
}

/// Where an upgrade resumes; a new one first empties every rollup table (and drops the
/// tables of older layouts), which is cheap in redb whatever their size.
fn start_upgrade(database: &Database) -> Result<(Uuid, Hour), StoreError> {
    let transaction = database.begin_write().map_err(storage_error)?;
    let stored = transaction
        .open_table(STORE_META)
        .map_err(storage_error)?
        .get(UPGRADE_KEY)
        .map_err(storage_error)?
        .map(|value| decode_position(value.value()))
        .transpose()?;
    if let Some(position) = stored {
        return Ok(position);
    }
    for old in [OLD_ROLLUP_COUNTS, OLD_ROLLUP_DAY_COUNTS] {
        transaction.delete_table(old).map_err(storage_error)?;
    }
    for table in [
        ROLLUP_CELLS,
        ROLLUP_DAY_CELLS,
        ROLLUP_SKETCHES,
        ROLLUP_DAY_SKETCHES,
    ] {
        transaction.delete_table(table).map_err(storage_error)?;
        transaction.open_table(table).map_err(storage_error)?;
    }
    let position = (Uuid::nil(), Hour(0));
    transaction
        .open_table(STORE_META)
        .map_err(storage_error)?
        .insert(UPGRADE_KEY, encode_position(position).as_slice())
        .map_err(storage_error)?;
    transaction.commit().map_err(storage_error)?;
    Ok(position)
}

fn encode_position((partner, day): (Uuid, Hour)) -> Vec<u8> {
    keys::prefixed(partner, &day.to_be_bytes())
}

fn decode_position(bytes: &[u8]) -> Result<(Uuid, Hour), StoreError> {
    let corrupt = || StoreError::Corrupt("an upgrade position that does not decode".into());
    let (partner, day) = bytes.split_at_checked(16).ok_or_else(corrupt)?;
    let partner = Uuid::from_slice(partner).map_err(|_| corrupt())?;
    let day = Hour(u32::from_be_bytes(day.try_into().map_err(|_| corrupt())?));
    Ok((partner, day))
}

/// The first partner-day with events at or after `(partner, day)`, in key order.
fn next_partner_day(
    events: &impl Readable,
    (partner, day): (Uuid, Hour),
) -> Result<Option<(Uuid, Hour)>, StoreError> {
    let range = keys::time_range(partner, day.start(), Hour(u32::MAX).start(), None)?;
    let first = |start: Bound<&[u8]>| -> Result<Option<Vec<u8>>, StoreError> {
        let mut rows = events
            .range::<&[u8]>((start, Bound::Unbounded))
            .map_err(storage_error)?;
        Ok(match rows.next() {
            Some(row) => Some(row.map_err(storage_error)?.0.value().to_vec()),
            None => None,
        })
    };
    let mut key = first(keys::borrowed(&range).0)?;
    if key
        .as_ref()
        .is_none_or(|key| !key.starts_with(partner.as_bytes()))
    {
        // Nothing left of this partner: the next partner's first event.
        key = match keys::owner_range(partner).1 {
            Bound::Excluded(past) => first(Bound::Included(past.as_slice()))?,
            _ => None,
        };
    }
    let Some(key) = key else {
        return Ok(None);
    };
    let owner =
        Uuid::from_slice(&key[..16]).map_err(|error| StoreError::Corrupt(error.to_string()))?;
    Ok(Some((owner, event_hour(&key)?.day())))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use redb::ReadableDatabase;

    use super::*;
    use crate::store::RollupStore;
    use crate::store::embedded::EmbeddedStore;
    use crate::store::embedded::rollups_repair::clear_day;
    use crate::store::embedded::rollups_repair::tests::store_with_days;

    #[tokio::test]
    async fn an_interrupted_upgrade_resumes_where_it_stopped_and_marks_the_layout_at_the_end() {
        let (dir, store, partners) = store_with_days(5).await;
        let (from, to) = (Hour(0), Hour(u32::MAX).day());
        // As if an upgrade from layout 4 had done the first partner's first two days.
        let resume_at = (
            partners[0],
            Hour::of("2026-01-03T00:00:00Z".parse().unwrap()),
        );
        {
            let transaction = store.database.begin_write().unwrap();
            let mut meta = transaction.open_table(STORE_META).unwrap();
            meta.insert(LAYOUT_KEY, [4u8].as_slice()).unwrap();
            meta.insert(UPGRADE_KEY, encode_position(resume_at).as_slice())
                .unwrap();
            drop(meta);
            // Days not yet upgraded have no rollups; a day already done is left alone
            // (emptied here, it stays so: the upgrade does not start over).
            clear_day(&transaction, partners[0], Hour(resume_at.1.0 - 48)).unwrap();
            for day in 2..5 {
                clear_day(
                    &transaction,
                    partners[0],
                    Hour(resume_at.1.0 + (day - 2) * 24),
                )
                .unwrap();
            }
            for day in 0..5 {
                clear_day(
                    &transaction,
                    partners[1],
                    Hour(resume_at.1.0 + day * 24 - 48),
                )
                .unwrap();
            }
            transaction.commit().unwrap();
        }
        drop(store);

        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(
            store.verify_rollups(partners[1], from, to).await.unwrap(),
            []
        );
        let left: BTreeSet<Hour> = store
            .verify_rollups(partners[0], from, to)
            .await
            .unwrap()
            .iter()
            .map(|difference| difference.hour.day())
            .collect();
        assert_eq!(
            left,
            BTreeSet::from([Hour(resume_at.1.0 - 48)]),
            "only the day before the resume point, which the upgrade had done"
        );
        let transaction = store.database.begin_read().unwrap();
        let meta = transaction.open_table(STORE_META).unwrap();
        assert_eq!(
            meta.get(LAYOUT_KEY).unwrap().unwrap().value(),
            [LAYOUT_VERSION]
        );
        assert!(meta.get(UPGRADE_KEY).unwrap().is_none());
    }
}
